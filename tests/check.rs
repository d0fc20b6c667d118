//! What `sportello check` tells an operator about a broken dialogue folder: every
//! problem at once, each at its file, line and column, with a hint.

mod common;

use common::{diagnostics_with, load_with, mini};
use expect_test::expect;

#[test]
fn the_fixture_is_clean() {
    let (_, diagnostics) = load_with(&[]);
    let errors: Vec<_> = diagnostics.iter().filter(|d| d.is_error()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    assert!(mini().flow("casa").is_some());
}

#[test]
fn a_misspelt_step_gets_a_did_you_mean() {
    let broken = common::HOUSING.replace("next: fine", "next: fien");
    expect![[r#"
        directory.yaml:9:12: warning: no source is written for the list of needs of organisation 'caritas-pioltello' (write where it was read and when: { value: ..., source: ..., checked: 2026-12-01 })
        directory.yaml:10:24: warning: no source is written for the phone of organisation 'caritas-pioltello' (write where it was read and when: { value: ..., source: ..., checked: 2026-12-01 })
        directory.yaml:12:38: warning: no source is written for the address of organisation 'caritas-pioltello' in pioltello (write where it was read and when: { value: ..., source: ..., checked: 2026-12-01 })
        directory.yaml:12:59: warning: no source is written for the opening hours of organisation 'caritas-pioltello' in pioltello (write where it was read and when: { value: ..., source: ..., checked: 2026-12-01 })
        directory.yaml:15:12: warning: no source is written for the list of needs of organisation 'sportello-segrate' (write where it was read and when: { value: ..., source: ..., checked: 2026-12-01 })
        directory.yaml:16:37: warning: no source is written for the email of organisation 'sportello-segrate' (write where it was read and when: { value: ..., source: ..., checked: 2026-12-01 })
        directory.yaml:18:36: warning: the address of organisation 'sportello-segrate' in segrate is unknown (ask the organisation and write it here)
        directory.yaml:18:49: warning: the opening hours of organisation 'sportello-segrate' in segrate are unknown (ask the organisation and write them like { mon-fri: ["09:00-12:00"] })
        directory.yaml:21:12: warning: no source is written for the list of needs of organisation 'ufficio-di-piano' (write where it was read and when: { value: ..., source: ..., checked: 2026-12-01 })
        directory.yaml:22:26: warning: no source is written for the website of organisation 'ufficio-di-piano' (write where it was read and when: { value: ..., source: ..., checked: 2026-12-01 })
        flows/casa.yaml:5:10: warning: a text of step 'bisogno' has no 'en' translation (citizens who chose that language read the Italian text instead)
        flows/casa.yaml:7:31: warning: a text of step 'bisogno' has no 'en' translation (citizens who chose that language read the Italian text instead)
        flows/casa.yaml:8:32: warning: a text of step 'bisogno' has no 'en' translation (citizens who chose that language read the Italian text instead)
        flows/casa.yaml:11:16: warning: a text of step 'dove' has no 'en' translation (citizens who chose that language read the Italian text instead)
        flows/casa.yaml:17:10: warning: a text of step 'altro' has no 'en' translation (citizens who chose that language read the Italian text instead)
        flows/casa.yaml:19:26: warning: a text of step 'altro' has no 'en' translation (citizens who chose that language read the Italian text instead)
        flows/casa.yaml:20:26: warning: a text of step 'altro' has no 'en' translation (citizens who chose that language read the Italian text instead)
        flows/casa.yaml:20:46: error: unknown step 'fien' (did you mean 'fine'?)
        flows/casa.yaml:23:5: warning: step 'fine' is never reached (no choice, next or goto leads here: link it or remove it)
        flows/casa.yaml:24:10: warning: a text of step 'fine' has no 'en' translation (citizens who chose that language read the Italian text instead)
        flows/emergenza.yaml:5:10: warning: a text of step 'numeri' has no 'en' translation (citizens who chose that language read the Italian text instead)
        flows/emergenza.yaml:7:31: warning: a text of step 'numeri' has no 'en' translation (citizens who chose that language read the Italian text instead)
        flows/emergenza.yaml:8:28: warning: a text of step 'numeri' has no 'en' translation (citizens who chose that language read the Italian text instead)
        flows/volontario.yaml:5:10: warning: a text of step 'passa' has no 'en' translation (citizens who chose that language read the Italian text instead)
    "#]]
    .assert_eq(&diagnostics_with(&[("flows/casa.yaml", &broken)]));
}

#[test]
fn every_mistake_of_a_file_is_reported_at_once() {
    let broken = r#"
flow: casa
steps:
  - id: bisogno
    sai: "Che aiuto cerchi?"
    choices:
      - { id: affitto, label: { en: "Rent" }, next: dove }
      - { id: affitto, label: "Affitto", match: [bollette], next: dove }
      - { id: bollette, label: "Bollette", match: [bollette], set: { need: casa.bolete }, next: dove }
  - id: dove
    ask_place: "Dove abiti, {nome}?"
  - id: dove
    say: "Ciao"
    end: maybe
"#;
    expect![[r#"
        directory.yaml:9:12: warning: no source is written for the list of needs of organisation 'caritas-pioltello' (write where it was read and when: { value: ..., source: ..., checked: 2026-12-01 })
        directory.yaml:10:24: warning: no source is written for the phone of organisation 'caritas-pioltello' (write where it was read and when: { value: ..., source: ..., checked: 2026-12-01 })
        directory.yaml:12:38: warning: no source is written for the address of organisation 'caritas-pioltello' in pioltello (write where it was read and when: { value: ..., source: ..., checked: 2026-12-01 })
        directory.yaml:12:59: warning: no source is written for the opening hours of organisation 'caritas-pioltello' in pioltello (write where it was read and when: { value: ..., source: ..., checked: 2026-12-01 })
        directory.yaml:15:12: warning: no source is written for the list of needs of organisation 'sportello-segrate' (write where it was read and when: { value: ..., source: ..., checked: 2026-12-01 })
        directory.yaml:16:37: warning: no source is written for the email of organisation 'sportello-segrate' (write where it was read and when: { value: ..., source: ..., checked: 2026-12-01 })
        directory.yaml:18:36: warning: the address of organisation 'sportello-segrate' in segrate is unknown (ask the organisation and write it here)
        directory.yaml:18:49: warning: the opening hours of organisation 'sportello-segrate' in segrate are unknown (ask the organisation and write them like { mon-fri: ["09:00-12:00"] })
        directory.yaml:21:12: warning: no source is written for the list of needs of organisation 'ufficio-di-piano' (write where it was read and when: { value: ..., source: ..., checked: 2026-12-01 })
        directory.yaml:22:26: warning: no source is written for the website of organisation 'ufficio-di-piano' (write where it was read and when: { value: ..., source: ..., checked: 2026-12-01 })
        flows/casa.yaml:4:5: error: step 'bisogno' has choices but no question (add `say:` with the question)
        flows/casa.yaml:5:5: error: unknown key `sai` in a step (did you mean 'say'?)
        flows/casa.yaml:7:31: error: the label has no Italian text (add `it: "..."`)
        flows/casa.yaml:8:31: warning: a text of step 'bisogno' has no 'en' translation (citizens who chose that language read the Italian text instead)
        flows/casa.yaml:9:9: error: unknown need 'casa.bolete' (use a need listed in directory.yaml)
        flows/casa.yaml:9:32: warning: a text of step 'bisogno' has no 'en' translation (citizens who chose that language read the Italian text instead)
        flows/casa.yaml:9:52: error: 'bollette' matches both choice 'affitto' and choice 'bollette' of step 'bisogno' (keep it in one choice only, so the bot knows what the citizen means)
        flows/casa.yaml:10:5: error: step 'dove' has no way forward (add `next:` with the following step, or `end: true` to close the conversation)
        flows/casa.yaml:11:16: error: unknown variable '{nome}' (a variable is set by a choice's `set:` or an `ask`'s `save:`)
        flows/casa.yaml:11:16: warning: a text of step 'dove' has no 'en' translation (citizens who chose that language read the Italian text instead)
        flows/casa.yaml:12:5: error: there are two steps called 'dove' in flow 'casa' (give each step its own id)
        flows/casa.yaml:12:5: error: step 'dove' has no way forward (add `next:` with the following step, or `end: true` to close the conversation)
        flows/casa.yaml:13:10: warning: a text of step 'dove' has no 'en' translation (citizens who chose that language read the Italian text instead)
        flows/casa.yaml:14:10: error: end should be `true` (remove `end:` if the step does not close the conversation)
        flows/emergenza.yaml:5:10: warning: a text of step 'numeri' has no 'en' translation (citizens who chose that language read the Italian text instead)
        flows/emergenza.yaml:7:31: warning: a text of step 'numeri' has no 'en' translation (citizens who chose that language read the Italian text instead)
        flows/emergenza.yaml:8:28: warning: a text of step 'numeri' has no 'en' translation (citizens who chose that language read the Italian text instead)
        flows/volontario.yaml:5:10: warning: a text of step 'passa' has no 'en' translation (citizens who chose that language read the Italian text instead)
    "#]]
    .assert_eq(&diagnostics_with(&[("flows/casa.yaml", broken)]));
}

#[test]
fn yaml_syntax_errors_point_at_the_place_and_explain() {
    let broken = "flow: casa\nsteps:\n  - id: a\n    say: Attenzione: testo\n    end: true\n";
    let text = diagnostics_with(&[("flows/casa.yaml", broken)]);
    assert!(text.contains("flows/casa.yaml:4:"), "{text}");
    assert!(text.contains("must be in quotes"), "{text}");
}

#[test]
fn loops_without_a_question_and_unreachable_flows_are_found() {
    let looping = r#"
flow: casa
steps:
  - { id: uno, say: "Uno", next: due }
  - { id: due, say: "Due", next: uno }
"#;
    let text = diagnostics_with(&[("flows/casa.yaml", looping)]);
    assert!(
        text.contains("leads back to itself without asking anything"),
        "{text}"
    );
    let lonely = "flow: sola\nsteps:\n  - { id: a, say: \"Ciao\", end: true }\n";
    let text = diagnostics_with(&[("flows/sola.yaml", lonely)]);
    assert!(
        text.contains("flows/sola.yaml:1:1: warning: flow 'sola' is never reached"),
        "{text}"
    );
}

#[test]
fn directory_and_places_mistakes() {
    let directory = r#"
needs:
  - { id: casa.affitto, label: "Affitto" }
organisations:
  - id: sportello
    name: "Sportello"
    needs: [casa.afitto]
    contacts: { phone: null }
    locations:
      - { place: pioltelo, address: null, hours: { mon-fry: ["9-12"], tue: ["18:00-09:00"] }, closed: ["2026-13-01"] }
"#;
    let text = diagnostics_with(&[("directory.yaml", directory)]);
    for wanted in [
        "error: unknown need 'casa.afitto' (did you mean 'casa.affitto'?)",
        "error: unknown place 'pioltelo' (did you mean 'pioltello'?)",
        "warning: organisation 'sportello' has no phone, email, website or address: citizens cannot reach it",
        "warning: no source is written for the list of needs of organisation 'sportello'",
        "warning: the address of organisation 'sportello' in pioltelo is unknown",
    ] {
        assert!(text.contains(wanted), "missing {wanted:?} in:\n{text}");
    }
}

#[test]
fn missing_files_and_wrong_shapes_never_panic() {
    let (_, diagnostics) =
        sportello::dialogue::load_from(std::path::Path::new("empty"), Vec::new());
    let text: String = diagnostics.iter().map(|d| format!("{d}\n")).collect();
    assert!(
        text.contains("bot.yaml:1:1: error: the folder has no bot.yaml"),
        "{text}"
    );
    for weird in [
        "",
        "- 1\n- 2\n",
        "just text",
        "steps: 5",
        "flow: [a]\nsteps: {}",
        "\u{feff}flow: casa",
    ] {
        let _ = diagnostics_with(&[("flows/casa.yaml", weird)]);
        let _ = diagnostics_with(&[("bot.yaml", weird)]);
        let _ = diagnostics_with(&[("directory.yaml", weird)]);
        let _ = diagnostics_with(&[("places.yaml", weird)]);
        let _ = diagnostics_with(&[("tests/x.yaml", weird)]);
    }
}

#[test]
fn dialogue_tests_report_expected_and_actual() {
    let test = r#"
test: affitto
conversation:
  - user: /start
  - user: "1"
  - user: affitto
  - bot: { contains: "comune" }
  - user: Pioltello
  - suggests: [caritas-pioltello]
"#;
    let (bundle, diagnostics) = load_with(&[("tests/affitto.yaml", test)]);
    assert!(diagnostics.iter().all(|d| !d.is_error()), "{diagnostics:?}");
    let failures = sportello::dialogue::testing::run_all(&bundle);
    assert_eq!(failures.len(), 1);
    let text = failures[0].to_string();
    assert!(
        text.starts_with("tests/affitto.yaml:9:5: test 'affitto' failed"),
        "{text}"
    );
    assert!(text.contains("expected: a suggestion of 'caritas-pioltello' (suggested: sportello-segrate, ufficio-di-piano)"), "{text}");
}

/// Facts read long ago are reported against the day given, and facts with no source
/// and organisations nobody can reach are reported too.
#[test]
fn old_facts_unsourced_facts_and_unreachable_organisations_are_reported() {
    let directory = r#"
sources:
  - { id: giornale, title: "Il giornale locale", checked: 2024-01-10 }
needs:
  - { id: casa.affitto, label: "Affitto" }
  - { id: poverta.bollette, label: "Bollette" }
  - { id: poverta.cibo, label: "Cibo" }
organisations:
  - id: caritas-pioltello
    name: "Caritas di Pioltello"
    needs: [poverta.cibo, poverta.bollette, casa.affitto]
    source: giornale
    contacts:
      phone: { value: "02 000", source: giornale }
      email: "caritas@example.org"
    locations:
      - { place: pioltello, address: null, hours: null }
  - id: nessuno
    name: "Nessun contatto"
    needs: [poverta.cibo]
    source: giornale
    contacts: { phone: null }
"#;
    let (bundle, diagnostics) = common::load_with(&[("directory.yaml", directory)]);
    let text: String = diagnostics
        .iter()
        .chain(&sportello::dialogue::stale_facts(
            &bundle,
            chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
        ))
        .map(|d| format!("{d}\n"))
        .collect();
    for wanted in [
        "warning: the phone of organisation 'caritas-pioltello' was checked 1056 days ago (2024-01-10)",
        "warning: no source is written for the email of organisation 'caritas-pioltello'",
        "warning: organisation 'nessuno' has no phone, email, website or address: citizens cannot reach it",
    ] {
        assert!(text.contains(wanted), "missing {wanted:?} in:\n{text}");
    }
    let fresh = sportello::dialogue::stale_facts(
        &bundle,
        chrono::NaiveDate::from_ymd_opt(2024, 6, 1).unwrap(),
    );
    assert!(fresh.is_empty(), "{fresh:?}");
}

#[test]
fn example_files_are_checked_line_by_line() {
    let bot = format!(
        "{}emergencies:\n  - id: esempi\n    need: emergenza.pericolo\n    goto: {{ flow: emergenza }}\n    examples: {{ folder: esempi, threshold: 2 }}\n",
        common::BOT
    );
    let told = diagnostics_with(&[
        ("bot.yaml", &bot),
        (
            "esempi/pochi.tsv",
            "# label, language, sentence\nviolenza\tit\tmi picchia\nuna riga senza tab\nno\tit\n",
        ),
    ]);
    assert!(
        told.contains("esempi/pochi.tsv:3:1: error: this line is not label, language and sentence separated by tabs"),
        "{told}"
    );
    assert!(told.contains("esempi/pochi.tsv:4:1: error"), "{told}");
    assert!(
        told.contains("the threshold should be a number between 0.5 and 1"),
        "{told}"
    );
    assert!(
        told.contains("emergency 'esempi' has too few examples in esempi"),
        "{told}"
    );
}

#[test]
fn a_doubt_above_the_threshold_is_an_error() {
    let bot = format!(
        "{}emergencies:\n  - id: esempi\n    need: emergenza.pericolo\n    goto: {{ flow: emergenza }}\n    examples: {{ folder: esempi, threshold: 0.7, doubt: 0.9 }}\n",
        common::BOT
    );
    let told = diagnostics_with(&[("bot.yaml", &bot)]);
    assert!(
        told.contains("doubt should be a number from 0.2 up to the threshold (0.7)"),
        "{told}"
    );
}

/// Requests labelled with the small menu's choices: food and housing told without the
/// menu's words.
const REQUESTS: &str = "# label, language, request
cibo\tit\til frigo e vuoto da giorni
cibo\tit\tnon ho niente da dare da mangiare ai bimbi
cibo\tit\tcerco la spesa gratis
cibo\tit\ta fine mese il frigo resta vuoto
cibo\tit\tdove danno la spesa a chi non ce la fa
cibo\tit\tsiamo senza niente in frigo
casa\tit\til proprietario vuole che lascio l appartamento
casa\tit\tcerco un appartamento in affitto basso
casa\tit\tl appartamento ha la muffa e il proprietario non ripara
casa\tit\tdevo lasciare l appartamento entro marzo
casa\tit\tnon trovo un appartamento per la mia famiglia
cas\tit\tuna riga con l'area scritta male
cas\tit\tun'altra riga con la stessa area scritta male
";

#[test]
fn a_menu_learns_its_choices_from_labelled_requests() {
    let welcome = common::WELCOME.replacen(
        "    choices:",
        "    examples: { folder: esempi }\n    choices:",
        1,
    );
    let housing = common::HOUSING.replacen(
        "    say: \"Posso aiutarti in altro?\"",
        "    say: \"Posso aiutarti in altro?\"\n    examples: { folder: esempi }",
        1,
    );
    let changes = [
        ("flows/benvenuto.yaml", welcome.as_str()),
        ("esempi/richieste.tsv", REQUESTS),
    ];
    let told = diagnostics_with(&changes);
    // A misspelt label is told once per file, with the labels that exist.
    assert!(
        told.contains("esempi/richieste.tsv:13:1: error: 'cas' is not a label the examples know (its lines are left out)"),
        "{told}"
    );
    assert!(
        told.contains("use one of: no, emergenza, casa, cibo"),
        "{told}"
    );
    assert!(!told.contains("richieste.tsv:14:1"), "{told}");
    // A step whose choices have no requests of their own cannot learn.
    let told = diagnostics_with(&[
        ("flows/benvenuto.yaml", welcome.as_str()),
        ("flows/casa.yaml", housing.as_str()),
        ("esempi/richieste.tsv", REQUESTS),
    ]);
    assert!(
        told.contains("step 'altro' has too few examples in esempi"),
        "{told}"
    );
    // `examples` belongs to a step with choices.
    let told = diagnostics_with(&[(
        "flows/casa.yaml",
        &common::HOUSING.replacen(
            "    ask_place: \"In che comune abiti?\"",
            "    ask_place: \"In che comune abiti?\"\n    examples: { folder: esempi }",
            1,
        ),
    )]);
    assert!(
        told.contains("`examples` is only for steps with `choices`"),
        "{told}"
    );
    // The learnt menu reads a request that none of its words match.
    let requests = REQUESTS
        .lines()
        .filter(|line| !line.starts_with("cas\t"))
        .collect::<Vec<_>>()
        .join("\n");
    let (bundle, diagnostics) = load_with(&[
        ("flows/benvenuto.yaml", welcome.as_str()),
        ("esempi/richieste.tsv", &requests),
    ]);
    assert!(diagnostics.iter().all(|d| !d.is_error()), "{diagnostics:?}");
    let mut conversation = sportello::dialogue::testing::Conversation::new(
        &bundle,
        None,
        sportello::dialogue::default_test_now(),
    );
    conversation.send(sportello::engine::Input::Text("/start".into()));
    conversation.send(sportello::engine::Input::Button("y".into()));
    conversation.send(sportello::engine::Input::Text(
        "nel frigo non c'è piu niente".into(),
    ));
    assert_eq!(
        (
            conversation.state.flow.as_str(),
            conversation.state.step.as_str()
        ),
        ("casa", "dove")
    );
}

#[test]
fn an_area_held_back_after_danger_must_be_a_flow() {
    let bot = format!(
        "{}{}",
        common::BOT,
        r#"emergencies:
  - id: violenza
    need: emergenza.violenza
    goto: { flow: emergenza }
    never_offer: [casa, all, conflitt]
    patterns:
      it: ["mi picchia"]
      en: ["hits me"]
"#
    );
    let text = diagnostics_with(&[("bot.yaml", &bot)]);
    assert!(
        text.contains("error: never_offer: there is no flow 'conflitt'"),
        "{text}"
    );
    assert!(!text.contains("no flow 'casa'"), "{text}");
    assert!(!text.contains("no flow 'all'"), "{text}");
}
