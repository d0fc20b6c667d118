//! Load through the whole bot: 1,000 simulated citizens talk to the real `App` through
//! the fake Bot API on 127.0.0.1 (rate limits lifted by `telegram_unlimited`, since the
//! fake has none), on SQLite. Prints messages handled per second and the p50 and p99
//! time from an update being offered to `getUpdates` to the bot's reply arriving.
//! `cargo bench --bench telegram_load`; under `cargo test` a small smoke load runs.

#[path = "../tests/common/fake_telegram.rs"]
mod fake_telegram;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use fake_telegram::{FakeTelegram, TOKEN};
use sportello::app::App;
use sportello::config::{Config, Secret};

/// Consent, housing, rent, a comune with suggestions, yes: back to the menu.
const SCRIPT: &[&str] = &["/start", "1", "2", "1", "Pioltello", "1"];

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let (citizens, rounds) = if full { (1000, SCRIPT.len()) } else { (10, 3) };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let fake = FakeTelegram::start().await;
        let dir = tempfile::tempdir().unwrap();
        let config = Config {
            database_url: format!("sqlite://{}/load.db", dir.path().display()),
            dialogues: PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dialogues"),
            telegram_token: Some(Secret::new(TOKEN)),
            telegram_api_url: Some(fake.url.clone()),
            telegram_unlimited: true,
            http_addr: "127.0.0.1:0".into(),
            ..Config::default()
        };
        let app = App::build(config).await.expect("the bot starts");
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let bot = tokio::spawn(app.run(async {
            let _ = stopped.await;
        }));
        let fake = Arc::new(fake);
        let started = Instant::now();
        let mut citizens_tasks = Vec::new();
        for citizen in 0..citizens {
            let fake = fake.clone();
            citizens_tasks.push(tokio::spawn(async move {
                let chat = 10_000 + citizen as i64;
                let mut latencies = Vec::with_capacity(rounds);
                for (turn, text) in SCRIPT.iter().take(rounds).enumerate() {
                    let sent = Instant::now();
                    fake.text(chat, text);
                    fake.wait_count(chat, turn + 1).await;
                    latencies.push(sent.elapsed());
                }
                latencies
            }));
        }
        let mut latencies: Vec<Duration> = Vec::new();
        for task in citizens_tasks {
            latencies.extend(task.await.unwrap());
        }
        let elapsed = started.elapsed();
        latencies.sort();
        let at = |q: f64| latencies[((latencies.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "Telegram load, {citizens} citizens x {rounds} messages on SQLite: {:.0} messages/s, update to reply p50 {:.1} ms, p99 {:.1} ms ({} messages in {:.1} s)",
            latencies.len() as f64 / elapsed.as_secs_f64(),
            at(0.5).as_secs_f64() * 1000.0,
            at(0.99).as_secs_f64() * 1000.0,
            latencies.len(),
            elapsed.as_secs_f64()
        );
        let _ = stop.send(());
        bot.await.unwrap().unwrap();
    });
}
