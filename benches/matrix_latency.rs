#![recursion_limit = "256"]
//! Relay latency on a local Synapse: from a citizen's message (offered to the fake Bot
//! API's getUpdates) to its appearance in the case room, and from a volunteer's message
//! (before sending it) to its arrival at the fake Telegram; median and p99 over 200
//! messages each way. Needs SPORTELLO_TEST_MATRIX_URL (as `.ci/run` sets it):
//! `cargo bench --bench matrix_latency`. Under `cargo test`, 5 messages each way.

#[path = "../tests/common/fake_telegram.rs"]
mod fake_telegram;
#[path = "../tests/common/matrix_people.rs"]
mod people;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use fake_telegram::{FakeTelegram, TOKEN};
use matrix_sdk::ruma::api::client::room::create_room::v3::{
    Request as CreateRoomRequest, RoomPreset,
};
use people::{PASSWORD, Person, unique};
use sportello::app::App;
use sportello::config::{Config, Secret};

fn summary(label: &str, mut latencies: Vec<Duration>) {
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
    println!(
        "{label:<44} median {:>7.1} ms   p99 {:>7.1} ms   ({} messages)",
        at(0.5).as_secs_f64() * 1000.0,
        at(0.99).as_secs_f64() * 1000.0,
        latencies.len()
    );
}

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let Some(homeserver) = std::env::var("SPORTELLO_TEST_MATRIX_URL")
        .ok()
        .filter(|url| !url.is_empty())
    else {
        println!("Matrix latency: skipped (set SPORTELLO_TEST_MATRIX_URL)");
        return;
    };
    let count = if full { 200 } else { 5 };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let volunteer = Person::register(&homeserver, &unique("vol")).await;
        let bot_name = unique("bot");
        let bot_user = Person::register(&homeserver, &bot_name).await.user.clone();
        let mut request = CreateRoomRequest::new();
        request.preset = Some(RoomPreset::PrivateChat);
        request.invite = vec![bot_user];
        let coordination = volunteer
            .client
            .create_room(request)
            .await
            .unwrap()
            .room_id()
            .to_owned();
        let fake = FakeTelegram::start().await;
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            database_url: format!("sqlite://{}/sportello.db", dir.path().display()),
            dialogues: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dialogues"),
            data_dir: dir.path().join("data"),
            telegram_token: Some(Secret::new(TOKEN)),
            telegram_api_url: Some(fake.url.clone()),
            telegram_unlimited: true,
            matrix_homeserver: Some(homeserver.clone()),
            matrix_user: Some(bot_name),
            matrix_password: Some(Secret::new(PASSWORD)),
            matrix_volunteers_room: Some(coordination.to_string()),
            matrix_encrypted: std::env::var("SPORTELLO_MATRIX_ENCRYPTED")
                .map_or(true, |value| value != "false"),
            http_addr: "127.0.0.1:0".into(),
            ..Config::default()
        };
        let app = App::build(config).await.expect("the bot starts");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let bot = tokio::spawn(app.run(async {
            let _ = stopped.await;
        }));
        let chat = 3001;
        let mut seen = 0;
        fake.text(chat, "/start");
        let privacy = fake.next(chat, &mut seen).await;
        fake.press(chat, &privacy.button("accetto").unwrap());
        fake.next(chat, &mut seen).await;
        fake.text(chat, "vorrei parlare con un operatore");
        fake.next(chat, &mut seen).await;
        volunteer.wait_for(Some(&coordination), "📋 Caso").await;
        volunteer.say(&coordination, "!prendi 1").await;
        let room = volunteer
            .wait_for(None, "Quello che scrivi qui arriva al cittadino")
            .await;
        fake.next(chat, &mut seen).await;

        let mut to_room = Vec::with_capacity(count);
        for n in 0..count {
            let started = Instant::now();
            fake.text(chat, &format!("messaggio del cittadino numero {n}."));
            volunteer
                .wait_for(
                    Some(&room),
                    &format!("Cittadino: messaggio del cittadino numero {n}."),
                )
                .await;
            to_room.push(started.elapsed());
        }
        let mut to_telegram = Vec::with_capacity(count);
        for n in 0..count {
            let started = Instant::now();
            volunteer
                .say(&room, &format!("risposta del volontario numero {n}."))
                .await;
            let sent = fake.next(chat, &mut seen).await;
            assert!(sent.text.contains(&format!("numero {n}.")));
            to_telegram.push(started.elapsed());
        }
        summary("citizen (Telegram) -> case room", to_room);
        summary("volunteer (case room) -> Telegram", to_telegram);
        let _ = stop.send(());
        let _ = bot.await;
    });
}
