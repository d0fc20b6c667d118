#![recursion_limit = "256"]
//! The handover end to end against a real Synapse (`SPORTELLO_TEST_MATRIX_URL`, started
//! by `.ci/run` through `scripts/synapse.sh`): volunteers are matrix-sdk clients, the
//! citizen talks through the fake Bot API.

#[path = "common/fake_telegram.rs"]
mod fake_telegram;
#[path = "common/matrix_case.rs"]
mod matrix_case;
#[path = "common/matrix_people.rs"]
mod people;

use std::path::PathBuf;
use std::time::Duration;

use fake_telegram::{FakeTelegram, TOKEN};
use matrix_case::{citizen_asks_for_a_person, claimed_case, setup, setup_with};
use matrix_sdk::ruma::RoomId;
use matrix_sdk::ruma::api::client::room::create_room::v3::{
    Request as CreateRoomRequest, RoomPreset,
};
use matrix_sdk::ruma::events::reaction::ReactionEventContent;
use matrix_sdk::ruma::events::relation::Annotation;
use people::{PASSWORD, Person, unique};

fn homeserver() -> Option<String> {
    match std::env::var("SPORTELLO_TEST_MATRIX_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the Matrix tests: set SPORTELLO_TEST_MATRIX_URL"
            );
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "skipped: Matrix test (set SPORTELLO_TEST_MATRIX_URL to run it)"
            );
            None
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn claim_relay_both_ways_note_info_and_close_in_an_encrypted_case_room() {
    let Some(homeserver) = homeserver() else {
        return;
    };
    let setup = setup(&homeserver, true).await;
    let chat = 2001;
    let mut seen = 0;
    let (case, room) = claimed_case(&setup, chat, &mut seen).await;
    let card = setup
        .volunteer
        .seen
        .lock()
        .unwrap()
        .iter()
        .find(|(_, body)| body.contains("📋 Caso"))
        .unwrap()
        .clone();
    assert_eq!(
        card.0, setup.coordination,
        "the first card, before the claim"
    );
    let card = card.1;
    assert!(
        card.contains("Bisogno:") && card.contains(&format!("!prendi {case}")),
        "{card}"
    );
    assert!(
        !card.contains(&chat.to_string()),
        "no Telegram id on the card: {card}"
    );
    assert_ne!(room, setup.coordination);
    setup
        .coordinator
        .wait_for(
            Some(&setup.coordination),
            &format!("Il caso {case} è stato preso"),
        )
        .await;
    let case_room = setup.volunteer.room(&room).await;
    assert!(
        case_room
            .latest_encryption_state()
            .await
            .unwrap()
            .is_encrypted(),
        "the case room is encrypted"
    );

    setup
        .volunteer
        .say(&room, "Buongiorno, sono qui per aiutarla")
        .await;
    let relayed = setup.fake.next(chat, &mut seen).await;
    assert!(
        relayed.text.contains("Buongiorno, sono qui per aiutarla"),
        "{relayed:?}"
    );
    setup.fake.text(chat, "Grazie, ho ricevuto lo sfratto");
    setup
        .volunteer
        .wait_for(Some(&room), "Cittadino: Grazie, ho ricevuto lo sfratto")
        .await;

    setup.volunteer.say(&room, "!nota richiamare lunedì").await;
    setup.volunteer.wait_for(Some(&room), "Nota salvata").await;
    setup.volunteer.say(&room, "!info").await;
    setup.volunteer.wait_for(Some(&room), "Nota di").await;
    assert_eq!(
        setup.fake.sent(chat).len(),
        seen,
        "notes and info never reach the citizen"
    );

    setup.volunteer.say(&room, "!chiudi").await;
    let closed = setup.fake.next(chat, &mut seen).await;
    assert!(
        closed.text.contains("Il volontario ha chiuso"),
        "{closed:?}"
    );
    assert_eq!(
        setup.store.case(case).await.unwrap().unwrap().status,
        "closed"
    );
    // Each message crossed once.
    assert_eq!(
        setup
            .volunteer
            .count("Cittadino: Grazie, ho ricevuto lo sfratto"),
        1
    );
    assert_eq!(
        setup
            .fake
            .sent(chat)
            .iter()
            .filter(|sent| sent.text.contains("Buongiorno, sono qui"))
            .count(),
        1
    );
    assert_eq!(
        setup.coordinator.count("non è cifrata"),
        0,
        "no warning for an encrypted coordination room"
    );
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_claims_race_one_wins_and_outsiders_are_refused() {
    let Some(homeserver) = homeserver() else {
        return;
    };
    let setup = setup(&homeserver, false).await;
    let chat = 2002;
    let mut seen = 0;
    let case = citizen_asks_for_a_person(&setup, chat, &mut seen).await;

    setup
        .outsider
        .say(&setup.coordination, &format!("!prendi {case}"))
        .await;
    setup
        .outsider
        .wait_for(Some(&setup.coordination), "Solo i volontari")
        .await;
    assert_eq!(
        setup.store.case(case).await.unwrap().unwrap().status,
        "waiting"
    );

    let claim = format!("!prendi {case}");
    tokio::join!(
        setup.volunteer.say(&setup.coordination, &claim),
        setup.coordinator.say(&setup.coordination, &claim)
    );
    setup
        .volunteer
        .wait_for(Some(&setup.coordination), "è già stato preso da")
        .await;
    let winner = setup
        .store
        .case(case)
        .await
        .unwrap()
        .unwrap()
        .claimed_by
        .unwrap();
    assert!(winner == setup.volunteer.user.as_str() || winner == setup.coordinator.user.as_str());
    assert_eq!(
        setup
            .volunteer
            .count(&format!("Il caso {case} è stato preso")),
        1,
        "one winner"
    );
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_released_case_goes_back_to_the_queue_and_is_claimed_again() {
    let Some(homeserver) = homeserver() else {
        return;
    };
    let setup = setup(&homeserver, false).await;
    let chat = 2003;
    let mut seen = 0;
    let (case, room) = claimed_case(&setup, chat, &mut seen).await;
    setup.volunteer.say(&room, "!rilascia").await;
    let released = setup.fake.next(chat, &mut seen).await;
    assert!(released.text.contains("un'altra persona"), "{released:?}");
    setup
        .coordinator
        .wait_for(Some(&setup.coordination), "ha rilasciato il caso")
        .await;
    assert_eq!(
        setup.store.case(case).await.unwrap().unwrap().status,
        "waiting"
    );
    setup
        .coordinator
        .say(&setup.coordination, &format!("!prendi {case}"))
        .await;
    let new_room = setup
        .coordinator
        .wait_for(None, "Quello che scrivi qui arriva al cittadino")
        .await;
    assert_ne!(new_room, room);
    assert_eq!(
        setup
            .store
            .case(case)
            .await
            .unwrap()
            .unwrap()
            .claimed_by
            .as_deref(),
        Some(setup.coordinator.user.as_str())
    );
    setup
        .coordinator
        .say(&new_room, "Eccomi, continuiamo")
        .await;
    let relayed = setup.fake.next(chat, &mut seen).await;
    assert!(
        relayed.text.contains("Un volontario è con te") || relayed.text.contains("Eccomi"),
        "{relayed:?}"
    );
    // The first volunteer, still in the old room, is told their words go nowhere.
    setup
        .volunteer
        .say(&room, "scritto nella stanza vecchia")
        .await;
    setup
        .volunteer
        .wait_for(Some(&room), "il cittadino non riceve più i messaggi")
        .await;
    assert!(
        setup
            .fake
            .sent(chat)
            .iter()
            .all(|sent| !sent.text.contains("scritto nella stanza vecchia"))
    );
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn out_of_hours_the_citizen_is_told_when_volunteers_are_back_and_the_card_says_so() {
    let Some(homeserver) = homeserver() else {
        return;
    };
    // Volunteers only in the first minute of each day: now is out of hours (almost surely).
    let closed =
        "volunteers:\n  hours:\n    mon-sun: [\"00:00-00:01\"]\n  wait_before_reminder: 10m";
    let setup = setup_with(&homeserver, false, Some(closed)).await;
    let chat = 2004;
    let mut seen = 0;
    setup.fake.to_menu(chat, &mut seen).await;
    setup.fake.text(chat, "vorrei parlare con un operatore");
    let reply = setup.fake.next(chat, &mut seen).await;
    assert!(
        reply.text.contains("Adesso i volontari non ci sono") && reply.text.contains("112"),
        "{reply:?}"
    );
    let card = setup
        .volunteer
        .wait_for(Some(&setup.coordination), "📋 Caso")
        .await;
    assert_eq!(card, setup.coordination);
    assert!(
        setup.volunteer.count("fuori orario") >= 1,
        "the card says the case came out of hours"
    );
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_unclaimed_case_is_announced_again_and_the_citizen_is_not_forgotten() {
    let Some(homeserver) = homeserver() else {
        return;
    };
    let always = "volunteers:\n  hours:\n    mon-sun: [\"00:00-24:00\"]\n    holidays: [\"00:00-24:00\"]\n  wait_before_reminder: 0m";
    let setup = setup_with(&homeserver, false, Some(always)).await;
    let chat = 2005;
    let mut seen = 0;
    citizen_asks_for_a_person(&setup, chat, &mut seen).await;
    setup
        .volunteer
        .wait_for(Some(&setup.coordination), "aspetta ancora un volontario")
        .await;
    let reminder = setup.fake.next(chat, &mut seen).await;
    assert!(
        reminder.text.contains("Non ti abbiamo dimenticato"),
        "{reminder:?}"
    );
    setup.stop().await;
}

fn spawn_bot(
    homeserver: &str,
    fake: &FakeTelegram,
    dir: &std::path::Path,
    bot_name: &str,
    coordination: &RoomId,
) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_sportello"))
        .arg("run")
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env(
            "SPORTELLO_DATABASE_URL",
            format!("sqlite://{}/sportello.db", dir.display()),
        )
        .env("SPORTELLO_DATA_DIR", dir.join("data"))
        .env("SPORTELLO_TELEGRAM_TOKEN", TOKEN)
        .env("SPORTELLO_TELEGRAM_API_URL", &fake.url)
        .env("SPORTELLO_TELEGRAM_UNLIMITED", "true")
        .env("SPORTELLO_HTTP_ADDR", "127.0.0.1:0")
        .env("SPORTELLO_MATRIX_HOMESERVER", homeserver)
        .env("SPORTELLO_MATRIX_USER", bot_name)
        .env("SPORTELLO_MATRIX_PASSWORD", PASSWORD)
        .env("SPORTELLO_MATRIX_VOLUNTEERS_ROOM", coordination.as_str())
        .env_remove("SPORTELLO_DIALOGUES")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("the bot starts")
}

/// For the tests that run the real `sportello run`: a volunteer, the bot's account, a
/// coordination room the volunteer made and invited the bot to, the fake Bot API and the
/// bot's directory.
async fn process_setup(
    homeserver: &str,
) -> (
    Person,
    String,
    matrix_sdk::ruma::OwnedRoomId,
    FakeTelegram,
    tempfile::TempDir,
) {
    let volunteer = Person::register(homeserver, &unique("vol")).await;
    let bot_name = unique("bot");
    let bot_user = Person::register(homeserver, &bot_name).await.user.clone();
    let mut request = CreateRoomRequest::new();
    request.preset = Some(RoomPreset::PrivateChat);
    request.invite = vec![bot_user];
    let room = volunteer.client.create_room(request).await.unwrap();
    let coordination = room.room_id().to_owned();
    let fake = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    (volunteer, bot_name, coordination, fake, dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bot_killed_in_the_middle_of_a_case_continues_it_without_losing_or_doubling_messages() {
    let Some(homeserver) = homeserver() else {
        return;
    };
    let (volunteer, bot_name, coordination, fake, dir) = process_setup(&homeserver).await;
    let mut bot = spawn_bot(&homeserver, &fake, dir.path(), &bot_name, &coordination);

    let chat = 2006;
    let mut seen = 0;
    fake.to_menu(chat, &mut seen).await;
    fake.text(chat, "vorrei parlare con un operatore");
    fake.next(chat, &mut seen).await;
    volunteer.wait_for(Some(&coordination), "📋 Caso").await;
    volunteer.say(&coordination, "!prendi 1").await;
    let case_room = volunteer
        .wait_for(None, "Quello che scrivi qui arriva al cittadino")
        .await;
    fake.next(chat, &mut seen).await;
    volunteer
        .say(&case_room, "primo messaggio del volontario")
        .await;
    assert!(
        fake.next(chat, &mut seen)
            .await
            .text
            .contains("primo messaggio del volontario")
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    bot.kill().unwrap();
    bot.wait().unwrap();

    // While the bot is down both sides write.
    volunteer
        .say(&case_room, "scritto mentre il bot era spento")
        .await;
    fake.text(chat, "anche io ho scritto nel frattempo");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut bot = spawn_bot(&homeserver, &fake, dir.path(), &bot_name, &coordination);
    let relayed = fake.next(chat, &mut seen).await;
    assert!(
        relayed.text.contains("scritto mentre il bot era spento"),
        "{relayed:?}"
    );
    volunteer
        .wait_for(
            Some(&case_room),
            "Cittadino: anche io ho scritto nel frattempo",
        )
        .await;
    volunteer.say(&case_room, "dopo il riavvio").await;
    assert!(
        fake.next(chat, &mut seen)
            .await
            .text
            .contains("dopo il riavvio")
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    bot.kill().unwrap();
    bot.wait().unwrap();
    for text in [
        "primo messaggio del volontario",
        "scritto mentre il bot era spento",
        "dopo il riavvio",
    ] {
        assert_eq!(
            fake.sent(chat)
                .iter()
                .filter(|sent| sent.text.contains(text))
                .count(),
            1,
            "{text} once"
        );
    }
    assert_eq!(
        volunteer.count("Cittadino: anche io ho scritto nel frattempo"),
        1
    );
    assert_eq!(
        volunteer.count("📋 Caso 1"),
        2,
        "one card in the coordination room, one in the case room"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reaction_on_the_card_claims_the_case_and_a_look_alike_name_is_not_a_volunteer() {
    let Some(homeserver) = homeserver() else {
        return;
    };
    let setup = setup(&homeserver, true).await;
    let chat = 2007;
    let mut seen = 0;
    let case = citizen_asks_for_a_person(&setup, chat, &mut seen).await;
    let card = setup
        .store
        .case_events(case)
        .await
        .unwrap()
        .into_iter()
        .find(|(room, _)| *room == setup.coordination.as_str())
        .map(|(_, event)| event);
    let card =
        matrix_sdk::ruma::OwnedEventId::try_from(card.expect("the card's event id")).unwrap();

    // The outsider takes the volunteer's display name: a name is not an authorisation.
    for person in [&setup.volunteer, &setup.outsider] {
        person
            .client
            .account()
            .set_display_name(Some("Giulia Rossi"))
            .await
            .unwrap();
    }
    let react = |person: &Person| {
        let card = card.clone();
        let coordination = setup.coordination.clone();
        let client = person.client.clone();
        async move {
            let room = client.get_room(&coordination).unwrap();
            room.send(ReactionEventContent::new(Annotation::new(
                card,
                "👍".into(),
            )))
            .await
            .unwrap();
        }
    };
    react(&setup.outsider).await;
    setup
        .outsider
        .wait_for(Some(&setup.coordination), "Solo i volontari")
        .await;
    assert_eq!(
        setup.store.case(case).await.unwrap().unwrap().status,
        "waiting"
    );

    react(&setup.volunteer).await;
    let room = setup
        .volunteer
        .wait_for(None, "Quello che scrivi qui arriva al cittadino")
        .await;
    assert_ne!(room, setup.coordination);
    setup
        .coordinator
        .wait_for(
            Some(&setup.coordination),
            &format!("Il caso {case} è stato preso da {}", setup.volunteer.user),
        )
        .await;
    let joined = setup.fake.next(chat, &mut seen).await;
    assert!(joined.text.contains("Un volontario è con te"), "{joined:?}");
    assert_eq!(
        setup
            .store
            .case(case)
            .await
            .unwrap()
            .unwrap()
            .claimed_by
            .as_deref(),
        Some(setup.volunteer.user.as_str())
    );
    // An invitation from anywhere else is declined.
    let mut request = CreateRoomRequest::new();
    request.preset = Some(RoomPreset::PrivateChat);
    request.invite = vec![setup.bot.clone()];
    let elsewhere = setup.outsider.client.create_room(request).await.unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let bot = elsewhere.get_member_no_sync(&setup.bot).await.unwrap();
        if bot.is_some_and(|bot| {
            *bot.membership() == matrix_sdk::ruma::events::room::member::MembershipState::Leave
        }) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the bot did not decline an invitation to another room"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A late reaction finds the case taken, and says by whom.
    react(&setup.coordinator).await;
    setup
        .coordinator
        .wait_for(Some(&setup.coordination), "è già stato preso da")
        .await;
    setup.stop().await;
}

/// The raw event as the homeserver now serves it to a volunteer.
async fn served_event(person: &Person, room: &RoomId, event: &str) -> String {
    let room = person.room(room).await;
    let event = <&matrix_sdk::ruma::EventId>::try_from(event).unwrap();
    let event = room.event(event, None).await.unwrap();
    event.raw().json().get().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forget_redacts_the_citizens_messages_on_matrix_and_closes_the_case() {
    let Some(homeserver) = homeserver() else {
        return;
    };
    let setup = setup(&homeserver, false).await;
    let chat = 2008;
    let mut seen = 0;
    let (case, room) = claimed_case(&setup, chat, &mut seen).await;
    setup
        .fake
        .text(chat, "Mi chiamo Maria Bianchi, via Dante 5");
    setup
        .volunteer
        .wait_for(Some(&room), "Cittadino: Mi chiamo Maria Bianchi")
        .await;
    setup
        .volunteer
        .say(&room, "Grazie Maria, la chiamo in via Dante")
        .await;
    setup.fake.next(chat, &mut seen).await;
    let events = setup.store.case_events(case).await.unwrap();
    let in_case_room: Vec<&String> = events
        .iter()
        .filter(|(r, _)| r == room.as_str())
        .map(|(_, event)| event)
        .collect();
    assert_eq!(
        in_case_room.len(),
        4,
        "card, transcript, the relayed message and the volunteer's are remembered: {events:?}"
    );
    assert!(
        events.iter().any(|(r, _)| r == setup.coordination.as_str()),
        "the card in the coordination room too"
    );

    setup.fake.text(chat, "/dimentica");
    let ask = setup.fake.next(chat, &mut seen).await;
    setup
        .fake
        .press(chat, &ask.button("cancella").expect("the erase button"));
    setup.fake.next(chat, &mut seen).await;
    setup
        .volunteer
        .wait_for(
            Some(&room),
            "il cittadino ha chiesto di cancellare i suoi dati",
        )
        .await;
    setup
        .coordinator
        .wait_for(
            Some(&setup.coordination),
            &format!("Caso {case} chiuso: il cittadino ha chiesto di cancellare"),
        )
        .await;
    assert_eq!(
        setup.store.case(case).await.unwrap().unwrap().status,
        "closed"
    );
    for (room, event) in &events {
        let served = served_event(
            &setup.volunteer,
            <&RoomId>::try_from(room.as_str()).unwrap(),
            event,
        )
        .await;
        assert!(
            served.contains("redacted_because") && !served.contains("Maria"),
            "{served}"
        );
    }
    assert!(setup.store.case_events(case).await.unwrap().is_empty());
    // The bot has left the case room: the volunteer's words no longer reach anyone.
    let case_room = setup.volunteer.room(&room).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let members = case_room
            .members(matrix_sdk::RoomMemberships::JOIN)
            .await
            .unwrap();
        if !members.iter().any(|member| member.user_id() == setup.bot) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the bot never left the erased case's room"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let before = setup.fake.sent(chat).len();
    setup.volunteer.say(&room, "ci sei ancora?").await;
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(setup.fake.sent(chat).len(), before);
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_citizen_who_blocks_the_bot_closes_the_case_and_the_volunteer_is_told() {
    let Some(homeserver) = homeserver() else {
        return;
    };
    let setup = setup(&homeserver, false).await;
    let chat = 2010;
    let mut seen = 0;
    let (case, room) = claimed_case(&setup, chat, &mut seen).await;
    setup.fake.block(chat);
    setup.volunteer.say(&room, "Mi senti?").await;
    setup
        .volunteer
        .wait_for(Some(&room), "Il cittadino ha chiuso la chat con il bot")
        .await;
    assert_eq!(
        setup.store.case(case).await.unwrap().unwrap().status,
        "closed"
    );
    setup.volunteer.say(&room, "Ci sei?").await;
    setup
        .volunteer
        .wait_for(Some(&room), "il cittadino non riceve più i messaggi")
        .await;
    setup.stop().await;
}

/// A homeserver of this test's own (the shared one must stay up for the other tests),
/// stopped and started with `scripts/synapse.sh`; stopped when dropped.
struct OwnHomeserver {
    dir: tempfile::TempDir,
    port: u16,
}

impl OwnHomeserver {
    fn script(&self, args: &[&str]) -> String {
        let output = std::process::Command::new(
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("scripts/synapse.sh"),
        )
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("scripts/synapse.sh runs");
        assert!(
            output.status.success(),
            "scripts/synapse.sh {args:?} failed"
        );
        String::from_utf8(output.stdout).unwrap().trim().to_string()
    }

    fn start(&self) -> String {
        let dir = self.dir.path().to_str().unwrap().to_string();
        self.script(&["start", &dir, &self.port.to_string()])
    }

    fn stop(&self) {
        let dir = self.dir.path().to_str().unwrap().to_string();
        self.script(&["stop", &dir]);
    }

    /// Holds `user` to one message a second, no burst (Synapse's admin API), so that
    /// what it sends in a row meets 429 M_LIMIT_EXCEEDED.
    async fn limit_messages(&self, url: &str, user: &matrix_sdk::ruma::UserId) {
        let dir = self.dir.path().to_str().unwrap().to_string();
        let admin = unique("admin");
        self.script(&[
            "register",
            &dir,
            &self.port.to_string(),
            &admin,
            PASSWORD,
            "admin",
        ]);
        let http = reqwest::Client::new();
        let login = serde_json::json!({
            "type": "m.login.password",
            "identifier": { "type": "m.id.user", "user": admin },
            "password": PASSWORD,
        });
        let login: serde_json::Value = serde_json::from_str(
            &http
                .post(format!("{url}/_matrix/client/v3/login"))
                .header("content-type", "application/json")
                .body(login.to_string())
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap(),
        )
        .unwrap();
        let token = login["access_token"].as_str().expect("the admin logs in");
        let limited = http
            .post(format!(
                "{url}/_synapse/admin/v1/users/{user}/override_ratelimit"
            ))
            .bearer_auth(token)
            .header("content-type", "application/json")
            .body(r#"{"messages_per_second": 1, "burst_count": 1}"#)
            .send()
            .await
            .unwrap();
        assert!(limited.status().is_success(), "{limited:?}");
    }

    /// How many requests the homeserver has answered with 429 so far.
    fn rate_limited(&self) -> usize {
        std::fs::read_to_string(self.dir.path().join("homeserver.log"))
            .unwrap_or_default()
            .lines()
            .filter(|line| line.contains(" 429 "))
            .count()
    }
}

impl Drop for OwnHomeserver {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_homeserver_stopped_for_a_while_delays_the_case_and_loses_nothing() {
    if homeserver().is_none() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let own = OwnHomeserver {
        dir: tempfile::tempdir().unwrap(),
        port,
    };
    let homeserver = own.start();
    let mut setup = setup(&homeserver, false).await;
    let chat = 2009;
    let mut seen = 0;
    let (_, room) = claimed_case(&setup, chat, &mut seen).await;

    own.stop();
    setup.fake.text(chat, "primo messaggio durante il guasto");
    let delayed = setup.fake.next(chat, &mut seen).await;
    assert!(
        delayed
            .text
            .contains("non riesco a raggiungere i volontari"),
        "{delayed:?}"
    );
    // The bot restarts while the homeserver is still down: it starts all the same.
    setup.restart().await;
    setup.fake.text(chat, "secondo messaggio durante il guasto");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(own.start(), homeserver);

    setup
        .volunteer
        .wait_for(
            Some(&room),
            "Cittadino: secondo messaggio durante il guasto",
        )
        .await;
    let relayed: Vec<String> = setup
        .volunteer
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(r, body)| *r == room && body.contains("durante il guasto"))
        // Queued while the homeserver was down, they may share one message.
        .flat_map(|(_, body)| body.lines().map(str::to_string).collect::<Vec<_>>())
        .collect();
    assert_eq!(
        relayed,
        [
            "Cittadino: primo messaggio durante il guasto",
            "Cittadino: secondo messaggio durante il guasto"
        ],
        "in order, once each"
    );
    setup
        .volunteer
        .say(&room, "Eccomi, il server è tornato")
        .await;
    let back = setup.fake.next(chat, &mut seen).await;
    assert!(back.text.contains("il server è tornato"), "{back:?}");

    // Now the homeserver answers 429 to the bot's bursts: the relay waits as told.
    own.limit_messages(&homeserver, &setup.bot).await;
    let limited_before = own.rate_limited();
    let burst: Vec<String> = (1..=5).map(|n| format!("raffica numero {n}")).collect();
    for text in &burst {
        setup.fake.text(chat, text);
    }
    setup
        .volunteer
        .wait_for(Some(&room), "Cittadino: raffica numero 5")
        .await;
    // Queued behind a rate-limited message, the burst's lines share Matrix messages.
    let messages: Vec<String> = setup
        .volunteer
        .seen
        .lock()
        .unwrap()
        .iter()
        .filter(|(r, body)| *r == room && body.contains("raffica"))
        .map(|(_, body)| body.clone())
        .collect();
    let relayed: Vec<String> = messages
        .iter()
        .flat_map(|body| body.lines().map(str::to_string))
        .collect();
    let expected: Vec<String> = burst
        .iter()
        .map(|text| format!("Cittadino: {text}"))
        .collect();
    assert_eq!(relayed, expected, "in order, once each, through the 429s");
    assert!(
        messages.len() < burst.len(),
        "the burst is coalesced, not one message each: {messages:#?}"
    );
    assert!(
        own.rate_limited() > limited_before,
        "the homeserver did answer 429"
    );
    assert_eq!(
        setup
            .fake
            .sent(chat)
            .iter()
            .filter(|sent| sent.text.contains("non riesco a raggiungere i volontari"))
            .count(),
        1,
        "the citizen is told once"
    );
    setup.stop().await;
}

/// The citizen's texts after `seen`, once `count` more have arrived.
async fn citizen_texts(
    fake: &FakeTelegram,
    chat: i64,
    seen: &mut usize,
    count: usize,
) -> Vec<String> {
    let sent = fake.wait_sent(chat, *seen + count).await;
    let texts = sent[*seen..].iter().map(|sent| sent.text.clone()).collect();
    *seen = sent.len();
    texts
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn twenty_five_messages_written_while_the_bot_is_down_reach_the_citizen_in_order_once_each() {
    let Some(homeserver) = homeserver() else {
        return;
    };
    let mut setup = setup(&homeserver, false).await;
    let chat = 2101;
    let mut seen = 0;
    let (_, room) = claimed_case(&setup, chat, &mut seen).await;
    setup.stop_bot().await;
    // More than a sync gives a room by default (10): the rest is in the room's history.
    for n in 1..=25 {
        setup
            .volunteer
            .say(&room, &format!("messaggio numero {n} del volontario"))
            .await;
    }
    setup.start_bot().await;
    let texts = citizen_texts(&setup.fake, chat, &mut seen, 25).await;
    for (n, text) in (1..=25).zip(&texts) {
        assert!(
            text.contains(&format!("messaggio numero {n} del volontario")),
            "message {n} in its place: {texts:#?}"
        );
    }
    // Nothing doubled, also after the next syncs.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(setup.fake.sent(chat).len(), seen, "no message twice");
    setup.volunteer.say(&room, "dopo il riavvio").await;
    assert!(
        setup
            .fake
            .next(chat, &mut seen)
            .await
            .text
            .contains("dopo il riavvio")
    );
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_error_while_handling_a_volunteers_message_is_retried_not_lost() {
    let Some(homeserver) = homeserver() else {
        return;
    };
    let setup = setup(&homeserver, false).await;
    let chat = 2102;
    let mut seen = 0;
    let (_, room) = claimed_case(&setup, chat, &mut seen).await;
    setup
        .store
        .fail_at(Some(sportello::store::FailPoint::BeforeCommit));
    setup
        .volunteer
        .say(&room, "scritto durante il guasto")
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        setup.fake.sent(chat).len(),
        seen,
        "nothing reaches the citizen while the database fails"
    );
    assert_eq!(
        setup.volunteer.count("il cittadino non riceve più"),
        0,
        "the volunteer is not told the case is closed"
    );
    setup.store.fail_at(None);
    let relayed = setup.fake.next(chat, &mut seen).await;
    assert!(
        relayed.text.contains("scritto durante il guasto"),
        "{relayed:?}"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(setup.fake.sent(chat).len(), seen, "once");
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_claim_the_bot_stopped_in_the_middle_of_is_finished_at_start_and_the_citizens_words_wait_for_it()
 {
    let Some(homeserver) = homeserver() else {
        return;
    };
    let mut setup = setup(&homeserver, false).await;
    let chat = 2103;
    let mut seen = 0;
    let case = citizen_asks_for_a_person(&setup, chat, &mut seen).await;
    // The claim recorded, then the bot stopped before the room was made.
    setup.stop_bot().await;
    let store = sportello::store::Store::open(setup.database_url())
        .await
        .unwrap();
    let claim = store
        .claim(case, setup.volunteer.user.as_str(), chrono::Utc::now())
        .await
        .unwrap();
    store.close().await;
    assert_eq!(claim, sportello::store::Claim::Claimed);
    setup.fake.text(chat, "scritto mentre il caso veniva preso");
    setup.start_bot().await;
    let room = setup
        .volunteer
        .wait_for(None, "Quello che scrivi qui arriva al cittadino")
        .await;
    let mut joined = false;
    while !joined {
        joined = setup
            .fake
            .next(chat, &mut seen)
            .await
            .text
            .contains("Un volontario è con te");
    }
    setup
        .volunteer
        .wait_for(
            Some(&room),
            "Cittadino: scritto mentre il caso veniva preso",
        )
        .await;
    setup.fake.text(chat, "e dopo che il caso è stato preso");
    setup
        .volunteer
        .wait_for(Some(&room), "Cittadino: e dopo che il caso è stato preso")
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        setup
            .volunteer
            .count("Cittadino: scritto mentre il caso veniva preso"),
        1,
        "held, then carried once"
    );
    assert_eq!(
        setup
            .volunteer
            .count("Quello che scrivi qui arriva al cittadino"),
        1,
        "one case room"
    );
    assert_eq!(
        setup
            .fake
            .sent(chat)
            .iter()
            .filter(|sent| sent.text.contains("Un volontario è con te"))
            .count(),
        1
    );
    let stored = setup.store.case(case).await.unwrap().unwrap();
    assert!(stored.room_ready && stored.room.as_deref() == Some(room.as_str()));
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_bot_killed_during_a_claim_finishes_it_after_the_restart_with_one_room_and_nothing_lost()
{
    let Some(homeserver) = homeserver() else {
        return;
    };
    let (volunteer, bot_name, coordination, fake, dir) = process_setup(&homeserver).await;
    let mut bot = spawn_bot(&homeserver, &fake, dir.path(), &bot_name, &coordination);

    let chat = 2104;
    let mut seen = 0;
    fake.to_menu(chat, &mut seen).await;
    fake.text(chat, "vorrei parlare con un operatore");
    fake.next(chat, &mut seen).await;
    volunteer.wait_for(Some(&coordination), "📋 Caso").await;
    fake.text(chat, "prima che il caso sia preso");
    tokio::time::sleep(Duration::from_millis(500)).await;
    volunteer.say(&coordination, "!prendi 1").await;
    // Killed while the claim is under way (wherever it is: the checks below hold for
    // any point), the citizen writing meanwhile.
    tokio::time::sleep(Duration::from_millis(150)).await;
    bot.kill().unwrap();
    bot.wait().unwrap();
    fake.text(chat, "mentre il bot era spento");
    let mut bot = spawn_bot(&homeserver, &fake, dir.path(), &bot_name, &coordination);
    let case_room = volunteer
        .wait_for(None, "Quello che scrivi qui arriva al cittadino")
        .await;
    volunteer
        .wait_for(Some(&case_room), "mentre il bot era spento")
        .await;
    let mut joined = false;
    while !joined {
        joined = fake
            .next(chat, &mut seen)
            .await
            .text
            .contains("Un volontario è con te");
    }
    volunteer
        .say(&case_room, "eccomi, sono il volontario")
        .await;
    let mut relayed = false;
    while !relayed {
        relayed = fake
            .next(chat, &mut seen)
            .await
            .text
            .contains("eccomi, sono il volontario");
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    bot.kill().unwrap();
    bot.wait().unwrap();
    let citizen = fake.sent(chat);
    let once = |text: &str| {
        citizen
            .iter()
            .filter(|sent| sent.text.contains(text))
            .count()
    };
    assert_eq!(once("Un volontario è con te"), 1, "the citizen told once");
    assert_eq!(once("eccomi, sono il volontario"), 1);
    assert_eq!(
        volunteer.count("Quello che scrivi qui arriva al cittadino"),
        1,
        "one case room"
    );
    for text in ["prima che il caso sia preso", "mentre il bot era spento"] {
        assert_eq!(
            volunteer
                .seen
                .lock()
                .unwrap()
                .iter()
                .filter(|(room, body)| room == &case_room && body.contains(text))
                .count(),
            1,
            "{text}: once in the case room"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn in_a_case_room_only_its_volunteer_or_a_coordinator_speaks_and_only_the_bot_invites() {
    let Some(homeserver) = homeserver() else {
        return;
    };
    let setup = setup(&homeserver, false).await;
    // The coordination room is not encrypted: the bot says so.
    setup
        .coordinator
        .wait_for(Some(&setup.coordination), "non è cifrata")
        .await;
    let chat = 2105;
    let mut seen = 0;
    let (_, room) = claimed_case(&setup, chat, &mut seen).await;

    // The volunteer cannot bring anyone into the case room, nor change it.
    let case_room = setup.volunteer.room(&room).await;
    assert!(
        case_room
            .invite_user_by_id(&setup.outsider.user)
            .await
            .is_err(),
        "only the bot invites"
    );
    assert!(
        case_room.set_name("altro nome".into()).await.is_err(),
        "only the bot changes the room"
    );

    // Someone else in the room (brought in by an administrator acting as the bot): a
    // second volunteer is told who holds the case; a coordinator speaks for the bot.
    let other = Person::register(&homeserver, &unique("vol2")).await;
    let coordination = setup.coordinator.room(&setup.coordination).await;
    coordination.invite_user_by_id(&other.user).await.unwrap();
    other.room(&setup.coordination).await;
    coordination
        .update_power_levels(vec![(&other.user, 50.into())])
        .await
        .unwrap();
    let admin = Person::login(&homeserver, setup.bot.as_str()).await;
    let admin_room = admin.room(&room).await;
    admin_room.invite_user_by_id(&other.user).await.unwrap();
    admin_room
        .invite_user_by_id(&setup.coordinator.user)
        .await
        .unwrap();
    other.say(&room, "scrivo io al cittadino").await;
    other
        .wait_for(
            Some(&room),
            &format!("Questo caso lo segue {}", setup.volunteer.user),
        )
        .await;
    setup.coordinator.say(&room, "sono la coordinatrice").await;
    let relayed = setup.fake.next(chat, &mut seen).await;
    assert!(
        relayed.text.contains("sono la coordinatrice"),
        "{relayed:?}"
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        setup
            .fake
            .sent(chat)
            .iter()
            .all(|sent| !sent.text.contains("scrivo io al cittadino")),
        "the second volunteer's words never reach the citizen"
    );
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_event_the_bot_cannot_decrypt_is_kept_counted_and_does_not_hold_back_the_room() {
    let Some(homeserver) = homeserver() else {
        return;
    };
    let setup = setup(&homeserver, false).await;
    let chat = 2106;
    let mut seen = 0;
    let (_, room) = claimed_case(&setup, chat, &mut seen).await;
    // An encrypted event with a session the bot never received (sent past the SDK,
    // which would encrypt it again).
    let token = setup.volunteer.client.access_token().unwrap();
    let content = serde_json::json!({
        "algorithm": "m.megolm.v1.aes-sha2",
        "ciphertext": "AwgAEnACgAkLmt6qF84IK++J7UDH2Za1YVchHyprqTqsg2yyOwAtHaZTwyNg37afzg8f3r9IsN9r4RNFg7MaZencUJe4qvELiDiopUjy5wYVDAtqdBzer5bWRD9ldxp1FLgbQvBcjkkywYjCsmsq6+hArLd9oAQZnGKn/qLsK+5uNX3PaWzDRC9wZPQvWYYPCTov3jCwXKTPsLKIiTrcCXDqMvnn8m+T3zF/I2zqxg158tnUwWWIw51UO",
        "device_id": "RJYKSTBOIE",
        "sender_key": "IlRMeOPX2e0MurIyfWEucYBRVOEEUMrOHqn/8mLqMjA",
        "session_id": "X3lUlvLELLYxeTx4yOVu6UDpasGEVO0Jbu+QFnm0cKQ"
    });
    let url = format!(
        "{homeserver}/_matrix/client/v3/rooms/{}/send/m.room.encrypted/sp-test-utd",
        room.as_str().replace('!', "%21").replace(':', "%3A")
    );
    let sent = reqwest::Client::new()
        .put(url)
        .bearer_auth(token)
        .json(&content)
        .send()
        .await
        .unwrap();
    assert!(sent.status().is_success(), "{sent:?}");
    setup
        .volunteer
        .say(&room, "dopo il messaggio illeggibile")
        .await;
    let relayed = setup.fake.next(chat, &mut seen).await;
    assert!(
        relayed.text.contains("dopo il messaggio illeggibile"),
        "{relayed:?}"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let (_, undecryptable) = setup.store.volunteer_inbox_depth().await.unwrap();
        if undecryptable == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the undecryptable event is kept and counted"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    setup.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_matrix_store_is_opened_only_with_its_passphrase() {
    let Some(homeserver) = homeserver() else {
        return;
    };
    let bot_name = unique("bot");
    let bot = Person::register(&homeserver, &bot_name).await;
    let mut request = CreateRoomRequest::new();
    request.preset = Some(RoomPreset::PrivateChat);
    let room = bot.client.create_room(request).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = |passphrase: &str| sportello::config::Config {
        database_url: format!("sqlite://{}/sportello.db", dir.path().display()),
        data_dir: dir.path().join("data"),
        matrix_homeserver: Some(homeserver.clone()),
        matrix_user: Some(bot_name.clone()),
        matrix_password: Some(sportello::config::Secret::new(PASSWORD)),
        matrix_volunteers_room: Some(room.room_id().to_string()),
        matrix_store_passphrase: Some(sportello::config::Secret::new(passphrase)),
        http_addr: "127.0.0.1:0".into(),
        ..sportello::config::Config::default()
    };
    let app = sportello::app::App::build(config("una frase lunga e segreta"))
        .await
        .expect("the first start makes the store");
    drop(app);
    let refused = sportello::app::App::build(config("un'altra frase"))
        .await
        .err()
        .expect("a wrong passphrase is refused");
    let told = format!("{refused:#}");
    assert!(told.contains("SPORTELLO_MATRIX_STORE_PASSPHRASE"), "{told}");
    assert!(
        !told.contains("un'altra frase"),
        "the passphrase is never shown: {told}"
    );
    let again = sportello::app::App::build(config("una frase lunga e segreta"))
        .await
        .expect("the right passphrase opens it");
    drop(again);
}
