//! A running bot with its coordination room, for the Matrix tests and the latency
//! benchmark: people on the test homeserver, the citizen on the fake Bot API. Mounted
//! next to `fake_telegram` and `people` (see tests/matrix.rs).
#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use matrix_sdk::ruma::api::client::room::create_room::v3::{
    Request as CreateRoomRequest, RoomPreset,
};
use matrix_sdk::ruma::events::InitialStateEvent;
use matrix_sdk::ruma::events::room::encryption::RoomEncryptionEventContent;
use matrix_sdk::ruma::{OwnedRoomId, OwnedUserId};
use sportello::app::App;
use sportello::config::{Config, Secret};
use sportello::store::Store;

use crate::fake_telegram::{FakeTelegram, TOKEN};
use crate::people::{PASSWORD, Person, unique};

pub struct Setup {
    pub fake: FakeTelegram,
    pub store: Arc<Store>,
    pub coordinator: Person,
    pub volunteer: Person,
    pub outsider: Person,
    pub bot: OwnedUserId,
    pub coordination: OwnedRoomId,
    config: Config,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Setup {
    pub async fn stop(mut self) {
        self.halt().await;
    }

    /// The bot's database.
    pub fn database_url(&self) -> &str {
        &self.config.database_url
    }

    /// Stops the bot (as a graceful shutdown); `start_bot` starts it again.
    pub async fn stop_bot(&mut self) {
        self.halt().await;
    }

    /// Starts the bot stopped by `stop_bot`, on the same database and data directory.
    pub async fn start_bot(&mut self) {
        let (store, stop, task) = start(self.config.clone()).await;
        self.store = store;
        self.stop = Some(stop);
        self.task = Some(task);
    }

    async fn halt(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    /// Stops the bot and starts it again on the same database and data directory.
    pub async fn restart(&mut self) {
        self.halt().await;
        self.start_bot().await;
    }
}

/// A coordination room made by the coordinator (creator), with a volunteer at power 50
/// and an outsider at 0, the bot invited; the bot running with Telegram and Matrix.
pub async fn setup(homeserver: &str, encrypted_coordination: bool) -> Setup {
    setup_with(homeserver, encrypted_coordination, None).await
}

/// The real dialogues with the volunteers' section of bot.yaml replaced.
fn dialogues_with_volunteers(dir: &std::path::Path, volunteers: &str) -> PathBuf {
    let source = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dialogues");
    let target = dir.join("dialogues");
    for (name, contents) in sportello::dialogue::load_sources(&source) {
        let path = target.join(&name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents.unwrap()).unwrap();
    }
    let bot = std::fs::read_to_string(target.join("bot.yaml")).unwrap();
    let start = bot.find("volunteers:").unwrap();
    let end = start + bot[start..].find("\n\n").unwrap();
    std::fs::write(
        target.join("bot.yaml"),
        format!("{}{volunteers}{}", &bot[..start], &bot[end..]),
    )
    .unwrap();
    target
}

pub async fn setup_with(
    homeserver: &str,
    encrypted_coordination: bool,
    volunteers_yaml: Option<&str>,
) -> Setup {
    let coordinator = Person::register(homeserver, &unique("coord")).await;
    let volunteer = Person::register(homeserver, &unique("vol")).await;
    let outsider = Person::register(homeserver, &unique("out")).await;
    let bot_name = unique("bot");
    let bot = Person::register(homeserver, &bot_name).await;
    let bot_user = bot.user.clone();
    drop(bot);

    let mut request = CreateRoomRequest::new();
    request.name = Some("Volontari".into());
    request.preset = Some(RoomPreset::PrivateChat);
    request.invite = vec![
        volunteer.user.clone(),
        outsider.user.clone(),
        bot_user.clone(),
    ];
    // Room version 12: the creator's power is implicit and may not be listed.
    let power =
        serde_json::json!({ "users": { volunteer.user.as_str(): 50, bot_user.as_str(): 50 } });
    request.power_level_content_override = Some(matrix_sdk::ruma::serde::Raw::from_json(
        serde_json::value::to_raw_value(&power).unwrap(),
    ));
    if encrypted_coordination {
        request.initial_state = vec![
            InitialStateEvent::with_empty_state_key(
                RoomEncryptionEventContent::with_recommended_defaults(),
            )
            .to_raw_any(),
        ];
    }
    let room = coordinator
        .client
        .create_room(request)
        .await
        .expect("the coordination room");
    let coordination = room.room_id().to_owned();
    volunteer.room(&coordination).await;
    outsider.room(&coordination).await;

    let fake = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let dialogues = match volunteers_yaml {
        Some(volunteers) => dialogues_with_volunteers(dir.path(), volunteers),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dialogues"),
    };
    let config = Config {
        database_url: format!("sqlite://{}/sportello.db", dir.path().display()),
        dialogues,
        data_dir: dir.path().join("data"),
        telegram_token: Some(Secret::new(TOKEN)),
        telegram_api_url: Some(fake.url.clone()),
        telegram_unlimited: true,
        matrix_homeserver: Some(homeserver.to_string()),
        matrix_user: Some(bot_name),
        matrix_password: Some(Secret::new(PASSWORD)),
        matrix_volunteers_room: Some(coordination.to_string()),
        http_addr: "127.0.0.1:0".into(),
        ..Config::default()
    };
    let (store, stop, task) = start(config.clone()).await;
    // The bot accepts the invitation to the coordination room.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let members = room
            .members(matrix_sdk::RoomMemberships::JOIN)
            .await
            .unwrap();
        if members.iter().any(|member| member.user_id() == bot_user) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the bot never joined the coordination room"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Setup {
        fake,
        store,
        coordinator,
        volunteer,
        outsider,
        bot: bot_user,
        coordination,
        config,
        stop: Some(stop),
        task: Some(task),
        _dir: dir,
    }
}

type Running = (
    Arc<Store>,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
);

async fn start(config: Config) -> Running {
    let app = App::build(config).await.expect("the bot starts");
    let store = app.store();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        app.run(async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    (store, stop, task)
}

/// A citizen asks for a person; returns the case number from the card.
pub async fn citizen_asks_for_a_person(setup: &Setup, chat: i64, seen: &mut usize) -> i64 {
    setup.fake.to_menu(chat, seen).await;
    setup.fake.text(chat, "casa");
    setup.fake.next(chat, seen).await;
    setup.fake.text(chat, "vorrei parlare con un operatore");
    let reply = setup.fake.next(chat, seen).await;
    assert!(reply.text.contains("volontari"), "{reply:?}");
    setup
        .volunteer
        .wait_for(Some(&setup.coordination), "📋 Caso")
        .await;
    let cases = setup.store.handovers().await.unwrap();
    cases.last().unwrap().case
}

/// A citizen's case claimed by the volunteer with `!prendi`: (case, case room); the
/// citizen has been told that a volunteer is with them.
pub async fn claimed_case(setup: &Setup, chat: i64, seen: &mut usize) -> (i64, OwnedRoomId) {
    let case = citizen_asks_for_a_person(setup, chat, seen).await;
    setup
        .volunteer
        .say(&setup.coordination, &format!("!prendi {case}"))
        .await;
    let room = setup
        .volunteer
        .wait_for(None, "Quello che scrivi qui arriva al cittadino")
        .await;
    let joined = setup.fake.next(chat, seen).await;
    assert!(joined.text.contains("Un volontario è con te"), "{joined:?}");
    (case, room)
}
