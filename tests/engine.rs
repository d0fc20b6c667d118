//! Conversations through the pure engine: a script in, the transcript out, compared to
//! an expectation that `UPDATE_EXPECT=1 cargo test` refreshes.

mod common;

use expect_test::{Expect, expect};
use sportello::dialogue::Bundle;
use sportello::dialogue::testing::Conversation;
use sportello::directory::Point;
use sportello::directory::hours::rome;
use sportello::engine::{Input, Output};

/// Runs `script` (one citizen message per line; `@lat,lon` shares a location; `#photo`
/// sends something unreadable) and compares the whole transcript.
fn check_at(
    bundle: &Bundle,
    now: chrono::DateTime<chrono::Utc>,
    lang: Option<&str>,
    script: &str,
    expect: Expect,
) {
    let mut conversation = Conversation::new(bundle, lang, now);
    let mut transcript = String::new();
    for line in script
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
    {
        let input = if let Some(point) = line.strip_prefix('@') {
            let (lat, lon) = point.split_once(',').unwrap();
            Input::Location(Point {
                lat: lat.parse().unwrap(),
                lon: lon.parse().unwrap(),
            })
        } else if line == "#photo" {
            Input::Unsupported
        } else if let Some(payload) = line.strip_prefix("#button ") {
            Input::Button(payload.to_string())
        } else {
            Input::Text(line.to_string())
        };
        conversation.send(input);
        transcript.push_str(&format!(
            "> {line}\n{}",
            sportello::engine::transcript(&conversation.last)
        ));
    }
    expect.assert_eq(&transcript);
}

fn check(script: &str, expect: Expect) {
    check_at(
        &common::mini(),
        rome(2026, 3, 17, 10, 0),
        None,
        script,
        expect,
    );
}

#[test]
fn a_whole_orientation_with_typos() {
    check(
        "/start
         ho un problema con l'afitto
         si
         Pioltelo
         no grazie",
        expect![[r#"
            > /start
            Informativa privacy: i tuoi dati restano qui.

            Sei d'accordo?
              1) Sì, accetto
              2) No
            > ho un problema con l'afitto
            Sei d'accordo?
              1) Sì, accetto
              2) No
            > si
            In che comune abiti?
              1) Pioltello
              2) Segrate
              3) Torna al menu
              4) Parla con una persona
              📍 /posizione LAT LON
            > Pioltelo
            Ecco dove puoi trovare aiuto vicino a te:

            • Sportello casa Segrate
              📍 Segrate, indirizzo da confermare (a 2,8 km)
              🕘 orari da confermare
              ✉️ casa@example.org

            Per tutto il distretto:

            • Ufficio di Piano
              🌐 https://example.org
            Posso aiutarti in altro?
              1) Sì
              2) No, grazie
              3) Parla con una persona
            > no grazie
            Grazie, a presto!
              1) Torna al menu
            [conversation ended]
        "#]],
    );
}

#[test]
fn buttons_by_number_and_a_place_by_cap_and_alias() {
    check(
        "/start
         1
         2
         20054
         1
         3
         milano 2",
        expect![[r#"
            > /start
            Informativa privacy: i tuoi dati restano qui.

            Sei d'accordo?
              1) Sì, accetto
              2) No
            > 1
            Di cosa hai bisogno?
              1) Casa
              2) Cibo e spesa
              3) Parla con una persona
            > 2
            In che comune abiti?
              1) Pioltello
              2) Segrate
              3) Torna al menu
              4) Parla con una persona
              📍 /posizione LAT LON
            > 20054
            Ecco dove puoi trovare aiuto vicino a te:

            • Caritas di Pioltello
              📍 Pioltello, Via Roma 1 (a 2,8 km)
              🕘 chiuso ora, apre oggi alle 15:00 (15:00–18:00)
              ☎️ 02 000
            Posso aiutarti in altro?
              1) Sì
              2) No, grazie
              3) Parla con una persona
            > 1
            Di cosa hai bisogno?
              1) Casa
              2) Cibo e spesa
              3) Parla con una persona
            > 3
            Ti passo a un volontario.
            [handover to a volunteer: need poverta.cibo, in hours]
            Ho chiesto a un volontario di aiutarti. Ti scriverà qui, appena possibile.
              1) Torna al menu
            > milano 2
            [sent to the volunteer]
        "#]],
    );
}

#[test]
fn shared_location_and_emergency_in_the_middle_of_a_flow() {
    check(
        "/start
         1
         1
         mi picchia
         2
         cibo
         @45.5,9.33",
        expect![[r#"
            > /start
            Informativa privacy: i tuoi dati restano qui.

            Sei d'accordo?
              1) Sì, accetto
              2) No
            > 1
            Di cosa hai bisogno?
              1) Casa
              2) Cibo e spesa
              3) Parla con una persona
            > 1
            Che aiuto cerchi per la casa?
              1) Affitto
              2) Bollette
              3) Torna al menu
              4) Parla con una persona
            > mi picchia
            Se sei in pericolo chiama subito il 112. Violenza: 1522.
              1) Parla con un volontario
              2) Torna all'inizio
            > 2
            Di cosa hai bisogno?
              1) Casa
              2) Cibo e spesa
              3) Parla con una persona
            > cibo
            In che comune abiti?
              1) Pioltello
              2) Segrate
              3) Torna al menu
              4) Parla con una persona
              📍 /posizione LAT LON
            > @45.5,9.33
            Ecco dove puoi trovare aiuto vicino a te:

            • Caritas di Pioltello
              📍 Pioltello, Via Roma 1 (a 0,1 km)
              🕘 chiuso ora, apre oggi alle 15:00 (15:00–18:00)
              ☎️ 02 000
            Posso aiutarti in altro?
              1) Sì
              2) No, grazie
              3) Parla con una persona
        "#]],
    );
}

#[test]
fn free_text_that_matches_nothing_is_asked_again_then_a_person_is_offered() {
    check(
        "/start
         1
         1
         boh
         non so
         ",
        expect![[r#"
            > /start
            Informativa privacy: i tuoi dati restano qui.

            Sei d'accordo?
              1) Sì, accetto
              2) No
            > 1
            Di cosa hai bisogno?
              1) Casa
              2) Cibo e spesa
              3) Parla con una persona
            > 1
            Che aiuto cerchi per la casa?
              1) Affitto
              2) Bollette
              3) Torna al menu
              4) Parla con una persona
            > boh
            Sono qui per aiutarti. Tocca un pulsante o scrivi il numero. Se preferisci, premi «Parla con una persona».
            Che aiuto cerchi per la casa?
              1) Affitto
              2) Bollette
              3) Torna al menu
              4) Parla con una persona
            > non so
            [handover to a volunteer: need casa.affitto, in hours]
            Ho chiesto a un volontario di aiutarti. Ti scriverà qui, appena possibile.
              1) Torna al menu
        "#]],
    );
}

#[test]
/// Two needs in one message: the first named now, the second offered at "anything else?".
fn two_needs_in_one_message_the_second_is_offered_after_the_first() {
    check(
        "/start
         1
         1
         sfratto e bollette
         2",
        expect![[r#"
            > /start
            Informativa privacy: i tuoi dati restano qui.

            Sei d'accordo?
              1) Sì, accetto
              2) No
            > 1
            Di cosa hai bisogno?
              1) Casa
              2) Cibo e spesa
              3) Parla con una persona
            > 1
            Che aiuto cerchi per la casa?
              1) Affitto
              2) Bollette
              3) Torna al menu
              4) Parla con una persona
            > sfratto e bollette
            In che comune abiti?
              1) Pioltello
              2) Segrate
              3) Torna al menu
              4) Parla con una persona
              📍 /posizione LAT LON
            > 2
            Ecco dove puoi trovare aiuto vicino a te:

            • Sportello casa Segrate
              📍 Segrate, indirizzo da confermare
              🕘 orari da confermare
              ✉️ casa@example.org

            Per tutto il distretto:

            • Ufficio di Piano
              🌐 https://example.org
            Mi avevi scritto anche di «Bollette». Vuoi vedere anche questo?

            Posso aiutarti in altro?
              1) Bollette
              2) Sì
              3) No, grazie
              4) Parla con una persona
        "#]],
    );
}

#[test]
fn language_switch_keeps_the_place_in_the_conversation() {
    check(
        "/start
         1
         /lingua
         English
         /lingua
         1",
        expect![[r#"
            > /start
            Informativa privacy: i tuoi dati restano qui.

            Sei d'accordo?
              1) Sì, accetto
              2) No
            > 1
            Di cosa hai bisogno?
              1) Casa
              2) Cibo e spesa
              3) Parla con una persona
            > /lingua
            Scegli la lingua:
              1) Italiano
              2) English
            > English
            OK, let's speak English.
            What do you need?
              1) Housing
              2) Food
              3) Talk to a person
            > /lingua
            Choose your language:
              1) Italiano
              2) English
            > 1
            Va bene, parliamo in italiano.
            Di cosa hai bisogno?
              1) Casa
              2) Cibo e spesa
              3) Parla con una persona
        "#]],
    );
}

#[test]
fn interface_language_is_proposed_at_first_contact() {
    check_at(
        &common::mini(),
        rome(2026, 3, 17, 10, 0),
        Some("en-GB"),
        "/start\n1",
        expect![[r#"
        > /start
        Privacy notice: your data stays here.

        Do you agree?
          1) Yes, I agree
          2) No
        > 1
        What do you need?
          1) Housing
          2) Food
          3) Talk to a person
    "#]],
    );
}

#[test]
fn out_of_hours_handover_says_when_volunteers_are_back() {
    check_at(
        &common::mini(),
        rome(2026, 3, 21, 20, 0),
        None,
        "/start\n1\nvorrei parlare con un operatore",
        expect![[r#"
            > /start
            Informativa privacy: i tuoi dati restano qui.

            Sei d'accordo?
              1) Sì, accetto
              2) No
            > 1
            Di cosa hai bisogno?
              1) Casa
              2) Cibo e spesa
              3) Parla con una persona
            > vorrei parlare con un operatore
            Ti passo a un volontario.
            [handover to a volunteer: need -, out of hours]
            Adesso i volontari non ci sono. Tornano lunedì alle 9:00. Ti scriveranno qui. Se è urgente chiama il 112. Per violenza o stalking chiama il 1522, gratis, giorno e notte.
              1) Torna al menu
        "#]],
    );
}

#[test]
fn out_of_hours_the_citizen_also_hears_of_a_place_open_now() {
    // Caritas opens on Saturday morning; the volunteers do not.
    let directory = common::DIRECTORY.replace(
        r#"hours: { tue: ["15:00-18:00"], thu: ["09:30-12:00"] }"#,
        r#"hours: { sat: ["09:00-12:00"] }"#,
    );
    let (bundle, diagnostics) = common::load_with(&[("directory.yaml", &directory)]);
    assert!(diagnostics.iter().all(|d| !d.is_error()));
    check_at(
        &bundle,
        rome(2026, 3, 21, 10, 0),
        None,
        "/start\n1\n2\nPioltello\nvorrei parlare con un operatore",
        expect![[r#"
            > /start
            Informativa privacy: i tuoi dati restano qui.

            Sei d'accordo?
              1) Sì, accetto
              2) No
            > 1
            Di cosa hai bisogno?
              1) Casa
              2) Cibo e spesa
              3) Parla con una persona
            > 2
            In che comune abiti?
              1) Pioltello
              2) Segrate
              3) Torna al menu
              4) Parla con una persona
              📍 /posizione LAT LON
            > Pioltello
            Ecco dove puoi trovare aiuto vicino a te:

            • Caritas di Pioltello
              📍 Pioltello, Via Roma 1
              🕘 aperto ora, fino alle 12:00
              ☎️ 02 000
            Posso aiutarti in altro?
              1) Sì
              2) No, grazie
              3) Parla con una persona
            > vorrei parlare con un operatore
            Ti passo a un volontario.
            [handover to a volunteer: need poverta.cibo, out of hours]
            Adesso i volontari non ci sono. Tornano lunedì alle 9:00. Ti scriveranno qui. Se è urgente chiama il 112. Per violenza o stalking chiama il 1522, gratis, giorno e notte.

            Intanto puoi trovare aiuto anche qui:

            • Caritas di Pioltello
              📍 Pioltello, Via Roma 1
              🕘 aperto ora, fino alle 12:00
              ☎️ 02 000
              1) Torna al menu
        "#]],
    );
}

#[test]
fn declined_consent_asks_nothing_personal_and_emergencies_still_work() {
    check(
        "/start
         2
         casa
         voglio morire",
        expect![[r#"
            > /start
            Informativa privacy: i tuoi dati restano qui.

            Sei d'accordo?
              1) Sì, accetto
              2) No
            > 2
            Va bene. Senza il tuo consenso non posso continuare. Puoi cambiare idea quando vuoi. Se sei in pericolo chiama il 112.
              1) Sì, accetto
            > casa
            Sei d'accordo?
              1) Sì, accetto
              2) No
            > voglio morire
            Se sei in pericolo chiama subito il 112. Violenza: 1522.
              1) Parla con un volontario
              2) Torna all'inizio
        "#]],
    );
}

#[test]
fn before_consent_an_emergency_reaches_a_person_but_the_menu_asks_for_consent() {
    check(
        "mi picchia
         2
         mi picchia
         1",
        expect![[r#"
            > mi picchia
            Se sei in pericolo chiama subito il 112. Violenza: 1522.
              1) Parla con un volontario
              2) Torna all'inizio
            > 2
            Informativa privacy: i tuoi dati restano qui.

            Sei d'accordo?
              1) Sì, accetto
              2) No
            > mi picchia
            Se sei in pericolo chiama subito il 112. Violenza: 1522.
              1) Parla con un volontario
              2) Torna all'inizio
            > 1
            Ti passo a un volontario.
            [handover to a volunteer: need -, in hours]
            Ho chiesto a un volontario di aiutarti. Ti scriverà qui, appena possibile.
              1) Torna al menu
        "#]],
    );
}

#[test]
fn forget_asks_first_then_erases() {
    let bundle = common::mini();
    let mut conversation = Conversation::new(&bundle, None, rome(2026, 3, 17, 10, 0));
    for line in ["/start", "1", "1", "1", "Segrate", "/dimentica"] {
        conversation.send(Input::Text(line.into()));
    }
    assert_eq!(
        conversation.state.vars.get("comune").map(String::as_str),
        Some("Segrate")
    );
    conversation.send(Input::Text("2".into()));
    assert!(!conversation.last.contains(&Output::Forget), "no means no");
    conversation.send(Input::Text("/dimentica".into()));
    conversation.send(Input::Text("1".into()));
    assert!(conversation.last.contains(&Output::Forget));
    assert!(conversation.state.vars.is_empty());
    assert!(!conversation.state.consent);
}

#[test]
fn photos_forged_buttons_and_long_or_emoji_messages_lose_nothing() {
    check(
        "/start
         1
         #photo
         #button c:does-not-exist
         #button c:casa
         🙏🙏🙏",
        expect![[r#"
            > /start
            Informativa privacy: i tuoi dati restano qui.

            Sei d'accordo?
              1) Sì, accetto
              2) No
            > 1
            Di cosa hai bisogno?
              1) Casa
              2) Cibo e spesa
              3) Parla con una persona
            > #photo
            Posso leggere solo messaggi scritti, i pulsanti e la posizione.
            Di cosa hai bisogno?
              1) Casa
              2) Cibo e spesa
              3) Parla con una persona
            > #button c:does-not-exist
            Questo pulsante è vecchio. Ecco la domanda di adesso.
            Di cosa hai bisogno?
              1) Casa
              2) Cibo e spesa
              3) Parla con una persona
            > #button c:casa
            Che aiuto cerchi per la casa?
              1) Affitto
              2) Bollette
              3) Torna al menu
              4) Parla con una persona
            > 🙏🙏🙏
            Non ho capito. Scegli un pulsante o scrivi il numero.
            Che aiuto cerchi per la casa?
              1) Affitto
              2) Bollette
              3) Torna al menu
              4) Parla con una persona
        "#]],
    );
    let bundle = common::mini();
    let mut conversation = Conversation::new(&bundle, None, rome(2026, 3, 17, 10, 0));
    conversation.send(Input::Text("/start".into()));
    conversation.send(Input::Text("1".into()));
    let before = conversation.state.clone();
    let long = "affitto ".repeat(1250);
    let reply = conversation.say(&long);
    assert!(reply.contains("molto lungo"), "{reply}");
    assert_ne!(
        conversation.state.step, before.step,
        "the beginning of a long message is still read"
    );
}

#[test]
fn state_round_trips_through_json() {
    let bundle = common::mini();
    let mut conversation = Conversation::new(&bundle, None, rome(2026, 3, 17, 10, 0));
    for line in ["/start", "1", "1", "1"] {
        conversation.send(Input::Text(line.into()));
    }
    let json = serde_json::to_string(&conversation.state).unwrap();
    let back: sportello::engine::State = serde_json::from_str(&json).unwrap();
    assert_eq!(back, conversation.state);
}

/// Regression: a second "Intendi una di queste?" showed a button with no label when one
/// of the two choices was not among the buttons of the first question.
#[test]
fn a_second_did_you_mean_labels_every_button() {
    let housing = r#"
flow: casa
steps:
  - id: bisogno
    say: "Che aiuto cerchi per la casa?"
    choices:
      - { id: affitto_casa, label: "Affitto casa", set: { need: casa.affitto }, next: fine }
      - { id: affitto_negozio, label: "Affitto negozio", set: { need: casa.affitto }, next: fine }
      - { id: casa_popolare, label: "Casa popolare", set: { need: casa.affitto }, next: fine }
  - id: dove
    ask_place: "In che comune abiti?"
    next: fine
  - id: fine
    say: "Grazie, a presto!"
    end: true
"#;
    let (bundle, diagnostics) = common::load_with(&[("flows/casa.yaml", housing)]);
    assert!(diagnostics.iter().all(|d| !d.is_error()), "{diagnostics:?}");
    check_at(
        &bundle,
        rome(2026, 3, 17, 10, 0),
        None,
        "/start
         1
         1
         affitto
         casa",
        expect![[r#"
            > /start
            Informativa privacy: i tuoi dati restano qui.

            Sei d'accordo?
              1) Sì, accetto
              2) No
            > 1
            Di cosa hai bisogno?
              1) Casa
              2) Cibo e spesa
              3) Parla con una persona
            > 1
            Che aiuto cerchi per la casa?
              1) Affitto casa
              2) Affitto negozio
              3) Casa popolare
              4) Torna al menu
              5) Parla con una persona
            > affitto
            Intendi una di queste?
              1) Affitto casa
              2) Affitto negozio
              3) Torna al menu
              4) Parla con una persona
            > casa
            Intendi una di queste?
              1) Affitto casa
              2) Casa popolare
              3) Torna al menu
              4) Parla con una persona
        "#]],
    );
}

/// A need nobody offers: said before the comune is asked, with a person offered.
#[test]
fn a_need_nobody_offers_is_said_before_asking_the_comune() {
    let directory = common::DIRECTORY.replace(
        "needs: [poverta.cibo, poverta.bollette]",
        "needs: [poverta.bollette]",
    );
    let (bundle, diagnostics) = common::load_with(&[("directory.yaml", &directory)]);
    assert!(diagnostics.iter().all(|d| !d.is_error()), "{diagnostics:?}");
    assert!(
        diagnostics
            .iter()
            .any(|d| d.message == "no organisation offers 'poverta.cibo'"),
        "{diagnostics:?}"
    );
    check_at(
        &bundle,
        rome(2026, 3, 17, 10, 0),
        None,
        "/start
         1
         2",
        expect![[r#"
            > /start
            Informativa privacy: i tuoi dati restano qui.

            Sei d'accordo?
              1) Sì, accetto
              2) No
            > 1
            Di cosa hai bisogno?
              1) Casa
              2) Cibo e spesa
              3) Parla con una persona
            > 2
            Per questo non conosco ancora un posto nel distretto. Un volontario può aiutarti a trovare la strada giusta.
              1) Parla con una persona
              2) Torna al menu
        "#]],
    );
}
