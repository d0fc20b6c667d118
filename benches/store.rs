//! Persisted engine steps per second, one transaction per message, on SQLite and on
//! PostgreSQL, with one conversation and with 1,000 at once:
//! `cargo bench --bench store` (PostgreSQL when SPORTELLO_BENCH_POSTGRES_URL or
//! SPORTELLO_TEST_POSTGRES_URL names a server where it may create a database).
//! Under `cargo test` it runs a small smoke load instead.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use sportello::dialogue::{self, Bundle};
use sportello::engine::Input;
use sportello::store::{Inbound, Store};
use sqlx::{AssertSqlSafe, Connection, Executor};

/// A citizen's way through the real dialogues, repeated: consent, housing, rent, a
/// comune with suggestions, "yes, something else" back to the menu.
const SCRIPT: &[&str] = &[
    "/start", "1", "2", "1", "Pioltelo", "1", "2", "1", "Segrate", "1",
];

struct Figures {
    messages: usize,
    elapsed: Duration,
    latencies: Vec<Duration>,
}

impl Figures {
    fn print(&mut self, label: &str) {
        self.latencies.sort();
        let at =
            |q: f64| self.latencies[((self.latencies.len() as f64 - 1.0) * q).round() as usize];
        println!(
            "{label:<44} {:>8.0} messages/s   p50 {:>8.2} ms   p99 {:>8.2} ms   ({} messages)",
            self.messages as f64 / self.elapsed.as_secs_f64(),
            at(0.50).as_secs_f64() * 1000.0,
            at(0.99).as_secs_f64() * 1000.0,
            self.messages
        );
    }
}

async fn run(
    store: Arc<Store>,
    bundle: Arc<Bundle>,
    conversations: usize,
    messages_each: usize,
) -> Figures {
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(conversations);
    for citizen in 0..conversations {
        let (store, bundle) = (store.clone(), bundle.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::with_capacity(messages_each);
            let chat = format!(
                "bench-{citizen}-{}",
                Utc::now().timestamp_nanos_opt().unwrap_or_default()
            );
            for n in 0..messages_each {
                let inbound = Inbound {
                    channel: "bench".into(),
                    chat_id: chat.clone(),
                    update_id: Some(format!("{chat}-{n}")),
                    input: Input::Text(SCRIPT[n % SCRIPT.len()].into()),
                    interface_lang: None,
                    button_tag: None,
                    now: Utc::now(),
                };
                let sent = Instant::now();
                store.process(&bundle, inbound).await.expect("processed");
                latencies.push(sent.elapsed());
            }
            latencies
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await.expect("task"));
    }
    Figures {
        messages: conversations * messages_each,
        elapsed: started.elapsed(),
        latencies,
    }
}

async fn scenarios(label: &str, url: &str, bundle: Arc<Bundle>, full: bool) {
    let store = Arc::new(
        Store::open(url)
            .await
            .expect("the benchmark database opens"),
    );
    let (single, concurrent, each) = if full { (2000, 1000, 10) } else { (10, 5, 3) };
    run(store.clone(), bundle.clone(), 1, single)
        .await
        .print(&format!("{label}, 1 conversation"));
    run(store.clone(), bundle.clone(), concurrent, each)
        .await
        .print(&format!("{label}, {concurrent} conversations at once"));
    store.close().await;
}

fn main() {
    let full = std::env::args().any(|arg| arg == "--bench");
    let (bundle, diagnostics) =
        dialogue::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("dialogues"));
    assert!(diagnostics.iter().all(|d| !d.is_error()));
    let bundle = Arc::new(bundle);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}/bench.db", dir.path().display());
        scenarios("SQLite", &url, bundle.clone(), full).await;

        let postgres = std::env::var("SPORTELLO_BENCH_POSTGRES_URL")
            .or_else(|_| std::env::var("SPORTELLO_TEST_POSTGRES_URL"))
            .ok()
            .filter(|url| !url.is_empty());
        let Some(admin_url) = postgres else {
            println!("PostgreSQL: skipped (set SPORTELLO_BENCH_POSTGRES_URL)");
            return;
        };
        sqlx::any::install_default_drivers();
        let name = format!("sportello_bench_{}", std::process::id());
        let mut admin = sqlx::AnyConnection::connect(&admin_url)
            .await
            .expect("PostgreSQL answers");
        admin
            .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .unwrap();
        let base = admin_url
            .rsplit_once('/')
            .map(|(base, _)| base)
            .unwrap_or(&admin_url);
        scenarios(
            "PostgreSQL",
            &format!("{base}/{name}"),
            bundle.clone(),
            full,
        )
        .await;
        admin
            .execute(AssertSqlSafe(format!("DROP DATABASE {name} WITH (FORCE)")))
            .await
            .unwrap();
        admin.close().await.unwrap();
    });
}
