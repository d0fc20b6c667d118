//! The real bot (`App::build` + `run`) against a fake Bot API on 127.0.0.1, with
//! simulated citizens.

mod common;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use common::fake_telegram::{FakeTelegram, Scripted, TOKEN};
use sportello::app::App;
use sportello::config::{Config, Secret};
use sportello::store::Store;
use tokio::sync::oneshot;

struct Running {
    fake: FakeTelegram,
    store: Arc<Store>,
    http: SocketAddr,
    /// `/metrics` on its own address, when configured.
    metrics: Option<SocketAddr>,
    stop: Option<oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    _dir: tempfile::TempDir,
}

impl Running {
    /// Stops the bot, then checks that the logs (trace level, every test of this file
    /// writes to them) hold neither the token nor anything a citizen of this test wrote.
    async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap();
        }
        let logs = String::from_utf8_lossy(&LOGS.lock().unwrap()).into_owned();
        assert!(
            logs.contains("sqlx::query"),
            "the bots logged at trace level"
        );
        assert!(!logs.contains(TOKEN), "the token reached the logs");
        for said in self.fake.said().iter().filter(|said| said.len() > 3) {
            assert!(
                !logs.contains(said.as_str()),
                "a citizen's words reached the logs: {said:?}"
            );
        }
    }
}

static LOGS: std::sync::Mutex<Vec<u8>> = std::sync::Mutex::new(Vec::new());

struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        LOGS.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Every test's bot logs at trace level into one buffer, as `SPORTELLO_LOG=trace` would.
fn capture_logs() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_writer(|| LogWriter)
            .with_ansi(false)
            .with_env_filter(sportello::logging::filter(Some("trace")))
            .try_init();
    });
}

fn real_dialogues() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dialogues")
}

/// Writes the small inline dialogue folder, with changes, into `dir`.
fn fixture(dir: &std::path::Path, changes: &[(&str, &str)]) -> PathBuf {
    let root = dir.join("dialogues");
    for (name, contents) in common::files(changes) {
        let path = root.join(name);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, contents).unwrap();
    }
    root
}

async fn start_with(
    dialogues: Option<&dyn Fn(&std::path::Path) -> PathBuf>,
    tune: impl FnOnce(&mut Config),
) -> Running {
    capture_logs();
    let fake = FakeTelegram::start().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config {
        database_url: format!("sqlite://{}/sportello.db", dir.path().display()),
        dialogues: dialogues.map_or_else(real_dialogues, |make| make(dir.path())),
        data_dir: dir.path().join("data"),
        telegram_token: Some(Secret::new(TOKEN)),
        telegram_api_url: Some(fake.url.clone()),
        telegram_unlimited: true,
        http_addr: "127.0.0.1:0".into(),
        ..Config::default()
    };
    tune(&mut config);
    let app = App::build(config).await.expect("the bot starts");
    let http = app.http_addr().unwrap();
    let metrics = app.metrics_addr();
    let store = app.store();
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        app.run(async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    Running {
        fake,
        store,
        http,
        metrics,
        stop: Some(stop),
        task: Some(task),
        _dir: dir,
    }
}

async fn start() -> Running {
    start_with(None, |_| {}).await
}

/// Reads /metrics until every wanted line is there (a counter moves just after the
/// message it counts reaches the fake server).
async fn metrics_eventually(bot: &Running, wanted: &[&str]) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let metrics = reqwest::get(format!("http://{}/metrics", bot.http))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        if wanted.iter().all(|line| metrics.contains(line)) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "missing some of {wanted:?} in:\n{metrics}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_whole_orientation_with_a_typo_buttons_and_a_shared_location() {
    let bot = start().await;
    let chat = 1001;
    let mut seen = 0;
    bot.fake.to_menu(chat, &mut seen).await;
    bot.fake.text(chat, "ho un problema con l'afitto");
    let place = bot.fake.next(chat, &mut seen).await;
    assert!(place.text.contains("In che comune abiti?"), "{place:?}");
    assert!(
        place.asks_location(),
        "a button shares the location: {place:?}"
    );
    bot.fake.location(chat, 45.4995, 9.3290);
    let suggestions = bot.fake.next(chat, &mut seen).await;
    assert!(
        suggestions
            .text
            .contains("Comune di Pioltello - Sportello di Accoglienza Sociale"),
        "{suggestions:?}"
    );
    assert!(
        suggestions.text.contains("Posso aiutarti in altro?"),
        "one message per turn: {suggestions:?}"
    );
    assert_eq!(suggestions.parse_mode.as_deref(), Some("HTML"));
    // "No, grazie" by button: the end.
    let no = suggestions.button("No, grazie").expect("a no button");
    bot.fake.press(chat, &no);
    let end = bot.fake.next(chat, &mut seen).await;
    assert!(end.text.contains("Grazie"), "{end:?}");
    let conversation = bot
        .store
        .conversation("telegram", &chat.to_string())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(conversation.status, "closed");
    let commands = bot
        .fake
        .calls()
        .iter()
        .filter(|call| *call == "setmycommands")
        .count();
    assert_eq!(commands, 3, "Italian, English and the default");
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn photos_and_edited_messages_get_a_kind_reply() {
    let bot = start().await;
    let chat = 1002;
    let mut seen = 0;
    bot.fake.to_menu(chat, &mut seen).await;
    bot.fake.photo(chat);
    let reply = bot.fake.next(chat, &mut seen).await;
    assert!(
        reply.text.contains("Posso leggere solo messaggi scritti"),
        "{reply:?}"
    );
    assert!(
        reply.text.contains("Di cosa hai bisogno?"),
        "the question again: {reply:?}"
    );
    bot.fake.edited(chat, "casa");
    let reply = bot.fake.next(chat, &mut seen).await;
    assert!(
        reply.text.contains("Posso leggere solo messaggi scritti"),
        "{reply:?}"
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn markup_in_texts_stays_literal_and_long_texts_are_split_in_order() {
    let long = format!(
        "{}\n\n{}\n\nFINE",
        "primo paragrafo ".repeat(300),
        "secondo & <b>paragrafo</b> ".repeat(200)
    );
    let bot_yaml = common::BOT.replace(
        "privacy: { it: \"Informativa privacy: i tuoi dati restano qui.\", en: \"Privacy notice: your data stays here.\" }",
        &format!("privacy: {{ it: \"<b>Informativa</b> & [link](tg://user?id=1) *_ {long}\" }}"),
    );
    let make = move |dir: &std::path::Path| fixture(dir, &[("bot.yaml", &bot_yaml)]);
    let bot = start_with(Some(&make), |_| {}).await;
    let chat = 1003;
    bot.fake.text(chat, "/start");
    let mut count = 2;
    let sent = loop {
        let sent = bot.fake.wait_sent(chat, count).await;
        if sent
            .last()
            .is_some_and(|last| last.text.contains("Sei d'accordo?"))
        {
            break sent;
        }
        count += 1;
    };
    assert!(sent.len() >= 3, "{}", sent.len());
    assert!(
        sent[0]
            .text
            .starts_with("&lt;b&gt;Informativa&lt;/b&gt; &amp; [link](tg://user?id=1) *_"),
        "{:?}",
        sent[0].text
    );
    assert!(
        sent.iter()
            .all(|piece| piece.text.encode_utf16().count() <= 4096)
    );
    let last = sent.len() - 1;
    assert!(
        sent[last].text.contains("FINE"),
        "in order: {:?}",
        sent[last].text
    );
    assert!(
        sent[0].text.contains("primo") && !sent[last].text.contains("primo"),
        "in order"
    );
    assert!(
        sent[..last].iter().all(|piece| piece.markup.is_none()) && sent[last].markup.is_some(),
        "buttons under the last piece"
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telegram_429_and_500_are_retried_as_told() {
    let bot = start().await;
    let chat = 1004;
    bot.fake.fail_next(Scripted::TooManyRequests(2));
    bot.fake.fail_next(Scripted::ServerError);
    bot.fake.text(chat, "/start");
    let sent = bot.fake.wait_sent(chat, 1).await;
    assert!(sent[0].text.contains("Sei d'accordo?"));
    let attempts = bot.fake.attempts(chat);
    assert_eq!(attempts.len(), 3, "429, 500, then delivered");
    assert!(
        attempts[1] - attempts[0] >= Duration::from_millis(1900),
        "retry_after 2 s honoured: {:?}",
        attempts[1] - attempts[0]
    );
    metrics_eventually(
        &bot,
        &[
            "sportello_send_failures_total{kind=\"rate_limited\"} 1",
            "sportello_send_failures_total{kind=\"server\"} 1",
            "sportello_messages_sent_total 1",
        ],
    )
    .await;
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_duplicate_update_is_handled_once() {
    let bot = start().await;
    let chat = 1005;
    let mut seen = 0;
    let id = bot.fake.text(chat, "/start");
    bot.fake.next(chat, &mut seen).await;
    bot.fake
        .redeliver(id, FakeTelegram::text_update(chat, "/start"));
    bot.fake.text(chat, "1");
    let menu = bot.fake.next(chat, &mut seen).await;
    assert!(menu.text.contains("Di cosa hai bisogno?"), "{menu:?}");
    let transcript = bot
        .store
        .transcript("telegram", &chat.to_string())
        .await
        .unwrap();
    let said: Vec<&str> = transcript
        .iter()
        .filter(|(a, _)| a == "citizen")
        .map(|(_, t)| t.as_str())
        .collect();
    assert_eq!(said, ["/start", "1"]);
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_and_stale_buttons_change_nothing() {
    let bot = start().await;
    let chat = 1006;
    let mut seen = 0;
    bot.fake.to_menu(chat, &mut seen).await;
    let before = bot
        .store
        .conversation("telegram", &chat.to_string())
        .await
        .unwrap()
        .unwrap()
        .state;
    for forged in [
        "deadbeef:c:casa",
        "not ours at all",
        &format!("{}:c:casa", "x".repeat(70)),
    ] {
        bot.fake.press(chat, forged);
        let reply = bot.fake.next(chat, &mut seen).await;
        assert!(
            reply.text.contains("Questo pulsante è vecchio"),
            "{reply:?}"
        );
    }
    // A button of the same conversation but an older question (the consent one).
    let old = bot.fake.sent(chat)[0].button("accetto").unwrap();
    bot.fake.press(chat, &old);
    let reply = bot.fake.next(chat, &mut seen).await;
    assert!(
        reply.text.contains("Questo pulsante è vecchio"),
        "{reply:?}"
    );
    let after = bot
        .store
        .conversation("telegram", &chat.to_string())
        .await
        .unwrap()
        .unwrap()
        .state;
    assert_eq!(
        (after.flow, after.step, after.vars),
        (before.flow, before.step, before.vars)
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_bot_closes_the_conversation_instead_of_retrying() {
    let bot = start().await;
    let chat = 1007;
    let mut seen = 0;
    bot.fake.to_menu(chat, &mut seen).await;
    bot.fake.block(chat);
    bot.fake.text(chat, "casa");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let conversation = bot
            .store
            .conversation("telegram", &chat.to_string())
            .await
            .unwrap()
            .unwrap();
        if conversation.status == "closed" {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never closed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let attempts = bot.fake.attempts(chat).len();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        bot.fake.attempts(chat).len(),
        attempts,
        "no retry after a block"
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_metrics_and_the_interface_language() {
    let bot = start().await;
    let health = reqwest::get(format!("http://{}/healthz", bot.http))
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let chat = 1008;
    let mut seen = 0;
    bot.fake.text_in(chat, "en", "/start");
    let privacy = bot.fake.next(chat, &mut seen).await;
    assert!(privacy.text.contains("Do you agree?"), "{privacy:?}");
    metrics_eventually(
        &bot,
        &[
            "sportello_updates_received_total 1",
            "sportello_engine_latency_seconds_count 1",
            "sportello_handovers_waiting",
        ],
    )
    .await;
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_checks_its_secret_and_stores_before_answering() {
    let bot = start_with(None, |config| {
        config.telegram_webhook_url = Some("https://sportello.example/telegram/webhook".into());
        config.telegram_webhook_secret = Some(Secret::new("s3cret-webhook"));
    })
    .await;
    let chat = 1009;
    let url = format!("http://{}/telegram/webhook", bot.http);
    let update = {
        let mut update = FakeTelegram::text_update(chat, "/start");
        update["update_id"] = serde_json::json!(77);
        update.to_string()
    };
    let client = reqwest::Client::new();
    let post = |secret: Option<&str>| {
        let mut request = client
            .post(&url)
            .header("content-type", "application/json")
            .body(update.clone());
        if let Some(secret) = secret {
            request = request.header("X-Telegram-Bot-Api-Secret-Token", secret);
        }
        request.send()
    };
    assert_eq!(post(None).await.unwrap().status(), 401);
    assert_eq!(post(Some("wrong")).await.unwrap().status(), 401);
    assert!(
        bot.store
            .conversation("telegram", &chat.to_string())
            .await
            .unwrap()
            .is_none(),
        "nothing processed"
    );
    assert_eq!(post(Some("s3cret-webhook")).await.unwrap().status(), 200);
    let sent = bot.fake.wait_sent(chat, 1).await;
    assert!(sent[0].text.contains("Sei d'accordo?"));
    // Telegram retrying the same delivery changes nothing.
    assert_eq!(post(Some("s3cret-webhook")).await.unwrap().status(), 200);
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(bot.fake.sent(chat).len(), 1);
    assert!(bot.fake.calls().contains(&"setwebhook".to_string()));
    assert!(
        !bot.fake.calls().contains(&"getupdates".to_string()),
        "no polling in webhook mode"
    );
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_pace_one_message_per_second_per_chat() {
    let bot = start_with(None, |config| config.telegram_unlimited = false).await;
    let chat = 1010;
    bot.fake.text(chat, "/start");
    bot.fake.text(chat, "/privacy");
    bot.fake.text(chat, "/privacy");
    let sent = bot.fake.wait_sent(chat, 3).await;
    for pair in sent.windows(2) {
        assert!(
            pair[1].at - pair[0].at >= Duration::from_millis(900),
            "{:?}",
            pair[1].at - pair[0].at
        );
    }
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_update_that_fails_again_and_again_is_set_aside_and_the_queue_goes_on() {
    use sportello::store::Breakage;
    let bot = start().await;
    let (broken, panicking, fine) = (1101, 1102, 1103);
    bot.store
        .break_chat(Some((&broken.to_string(), Breakage::Error)));
    bot.fake.text(broken, "/start");
    bot.fake.text(fine, "/start");
    let sent = bot.fake.wait_sent(fine, 1).await;
    assert!(sent[0].text.contains("Sei d'accordo?"), "{sent:?}");
    metrics_eventually(&bot, &["sportello_dead_letters 1"]).await;
    // A panic while handling an update is caught and set aside the same way.
    bot.store
        .break_chat(Some((&panicking.to_string(), Breakage::Panic)));
    bot.fake.text(panicking, "/start");
    bot.fake.text(fine, "ciao");
    bot.fake.wait_sent(fine, 2).await;
    metrics_eventually(
        &bot,
        &["sportello_dead_letters 2", "sportello_inbox_depth 0"],
    )
    .await;
    // Mended, the chats are answered again.
    bot.store.break_chat(None);
    bot.fake.text(broken, "/start");
    let sent = bot.fake.wait_sent(broken, 1).await;
    assert!(sent[0].text.contains("Sei d'accordo?"), "{sent:?}");
    assert!(bot.fake.sent(panicking).is_empty());
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_is_unhealthy_while_a_message_waits_longer_than_allowed() {
    let bot = start_with(None, |config| config.health_max_wait_seconds = 1).await;
    let health = || async {
        reqwest::get(format!("http://{}/healthz", bot.http))
            .await
            .unwrap()
            .status()
    };
    assert_eq!(health().await, 200);
    let chat = 1104;
    // Telegram asks to wait 4 s: the answer is owed meanwhile.
    bot.fake.fail_next(Scripted::TooManyRequests(4));
    bot.fake.text(chat, "/start");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while health().await == 200 {
        assert!(std::time::Instant::now() < deadline, "never unhealthy");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bot.fake.wait_sent(chat, 1).await;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while health().await != 200 {
        assert!(std::time::Instant::now() < deadline, "never healthy again");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    bot.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_served_apart_from_the_public_address() {
    let bot = start_with(None, |config| {
        config.metrics_addr = Some("127.0.0.1:0".into());
    })
    .await;
    let public = reqwest::get(format!("http://{}/metrics", bot.http))
        .await
        .unwrap();
    assert_eq!(public.status(), 404, "no metrics on the public address");
    let private = reqwest::get(format!("http://{}/metrics", bot.metrics.unwrap()))
        .await
        .unwrap();
    assert_eq!(private.status(), 200);
    let text = private.text().await.unwrap();
    for metric in [
        "sportello_inbox_depth",
        "sportello_dead_letters",
        "sportello_oldest_owed_seconds",
        "sportello_volunteer_inbox_depth",
        "sportello_undecryptable_events",
    ] {
        assert!(text.contains(metric), "{metric} in {text}");
    }
    let health = reqwest::get(format!("http://{}/healthz", bot.http))
        .await
        .unwrap();
    assert_eq!(health.status(), 200, "healthz stays public");
    bot.stop().await;
}
