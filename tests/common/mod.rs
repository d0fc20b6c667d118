//! A small dialogue folder written inline, so each test reads what it runs.
#![allow(dead_code)]

use std::path::Path;

use sportello::diagnostics::Diagnostic;
use sportello::dialogue::{self, Bundle, sources_from};

pub const BOT: &str = r#"
languages: [it, en]
welcome: { flow: benvenuto }
privacy: { it: "Informativa privacy: i tuoi dati restano qui.", en: "Privacy notice: your data stays here." }
intents:
  - id: emergenza
    emergency: true
    match: ["mi picchia", "voglio morire"]
    goto: { flow: emergenza }
  - id: volontario
    match: [volontario, operatore]
    goto: { flow: volontario }
  - id: ricomincia
    match: [menu, ricomincia]
    goto: { flow: benvenuto }
volunteers:
  hours: { mon-fri: ["09:00-13:00", "14:30-18:00"] }
"#;

pub const WELCOME: &str = r#"
flow: benvenuto
steps:
  - id: menu
    say: { it: "Di cosa hai bisogno?", en: "What do you need?" }
    choices:
      - { id: casa, label: { it: "Casa", en: "Housing" }, match: [affitto, sfratto], set: { need: casa.affitto }, next: casa }
      - { id: cibo, label: { it: "Cibo e spesa", en: "Food" }, match: [mangiare, pacco alimentare], set: { need: poverta.cibo }, next: casa.dove }
"#;

pub const HOUSING: &str = r#"
flow: casa
steps:
  - id: bisogno
    say: "Che aiuto cerchi per la casa?"
    choices:
      - { id: affitto, label: "Affitto", match: [sfratto, "padrone di casa"], set: { need: casa.affitto }, next: dove }
      - { id: bollette, label: "Bollette", match: [luce, gas], set: { need: poverta.bollette }, next: dove }
    otherwise: volontario
  - id: dove
    ask_place: "In che comune abiti?"
    next: suggerisci
  - id: suggerisci
    suggest: { need: "{need}", max: 3 }
    next: altro
  - id: altro
    say: "Posso aiutarti in altro?"
    choices:
      - { id: si, label: "Sì", next: benvenuto }
      - { id: no, label: "No, grazie", next: fine }
  - id: volontario
    handover: { need: "{need}", note: "Chiede aiuto per la casa" }
  - id: fine
    say: "Grazie, a presto!"
    end: true
"#;

pub const VOLUNTEER: &str = r#"
flow: volontario
steps:
  - id: passa
    say: "Ti passo a un volontario."
    handover: { need: "{need}" }
"#;

pub const EMERGENCY: &str = r#"
flow: emergenza
steps:
  - id: numeri
    say: "Se sei in pericolo chiama subito il 112. Violenza: 1522."
    choices:
      - { id: persona, label: "Parla con un volontario", next: volontario }
      - { id: menu, label: "Torna all'inizio", next: benvenuto }
"#;

pub const DIRECTORY: &str = r#"
needs:
  - { id: casa.affitto, label: "Affitto" }
  - { id: poverta.bollette, label: "Bollette" }
  - { id: poverta.cibo, label: "Cibo" }
organisations:
  - id: caritas-pioltello
    name: "Caritas di Pioltello"
    needs: [poverta.cibo, poverta.bollette]
    contacts: { phone: "02 000", email: null }
    locations:
      - { place: pioltello, address: "Via Roma 1", hours: { tue: ["15:00-18:00"], thu: ["09:30-12:00"] } }
  - id: sportello-segrate
    name: "Sportello casa Segrate"
    needs: [casa.affitto, poverta.bollette]
    contacts: { phone: null, email: "casa@example.org" }
    locations:
      - { place: segrate, address: null, hours: null }
  - id: ufficio-di-piano
    name: "Ufficio di Piano"
    needs: [casa.affitto]
    contacts: { website: "https://example.org" }
"#;

pub const PLACES: &str = r#"
places:
  - { id: pioltello, name: Pioltello, kind: comune, cap: ["20096"], lat: 45.499, lon: 9.329 }
  - { id: seggiano, name: Seggiano, kind: frazione, of: pioltello, lat: 45.499, lon: 9.329 }
  - { id: segrate, name: Segrate, kind: comune, cap: ["20054"], lat: 45.490, lon: 9.296, aliases: ["Segrate centro"] }
  - { id: milano-due, name: Milano Due, kind: quartiere, of: segrate, lat: 45.490, lon: 9.296, aliases: ["Milano 2", "MI2"] }
"#;

/// The small folder's files, with `changes` replacing or adding files by name.
pub fn files<'a>(changes: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut files = vec![
        ("bot.yaml", BOT),
        ("flows/benvenuto.yaml", WELCOME),
        ("flows/casa.yaml", HOUSING),
        ("flows/volontario.yaml", VOLUNTEER),
        ("flows/emergenza.yaml", EMERGENCY),
        ("directory.yaml", DIRECTORY),
        ("places.yaml", PLACES),
    ];
    for (name, text) in changes {
        match files.iter_mut().find(|(known, _)| known == name) {
            Some(file) => file.1 = text,
            None => files.push((name, text)),
        }
    }
    files
}

pub fn load_with(changes: &[(&str, &str)]) -> (Bundle, Vec<Diagnostic>) {
    dialogue::load_from(Path::new("mini"), sources_from(&files(changes)))
}

/// The small folder, which must load without errors.
pub fn mini() -> Bundle {
    let (bundle, diagnostics) = load_with(&[]);
    let errors: Vec<String> = diagnostics
        .iter()
        .filter(|d| d.is_error())
        .map(|d| d.to_string())
        .collect();
    assert!(
        errors.is_empty(),
        "the fixture has errors:\n{}",
        errors.join("\n")
    );
    bundle
}

/// The diagnostics of the small folder with some files changed, one line each.
pub fn diagnostics_with(changes: &[(&str, &str)]) -> String {
    load_with(changes)
        .1
        .iter()
        .map(|d| format!("{d}\n"))
        .collect()
}
pub mod fake_telegram;
