#![recursion_limit = "256"]
//! Relay latency on a local Synapse: from a citizen's message (offered to the fake Bot
//! API's getUpdates) to its appearance in the case room, and from a volunteer's message
//! (before sending it) to its arrival at the fake Telegram; median and p99 over 200
//! messages each way, through an encrypted case room (the default). Needs
//! SPORTELLO_TEST_MATRIX_URL (as `.ci/run` sets it): `cargo bench --bench matrix_latency`.
//! Under `cargo test`, 5 messages each way.

#[path = "../tests/common/fake_telegram.rs"]
mod fake_telegram;
#[path = "../tests/common/matrix_case.rs"]
mod matrix_case;
#[path = "../tests/common/matrix_people.rs"]
mod people;

use std::time::{Duration, Instant};

use matrix_case::{claimed_case, setup};

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
        let setup = setup(&homeserver, false).await;
        let chat = 3001;
        let mut seen = 0;
        let (_, room) = claimed_case(&setup, chat, &mut seen).await;
        let (fake, volunteer) = (&setup.fake, &setup.volunteer);

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
        setup.stop().await;
    });
}
