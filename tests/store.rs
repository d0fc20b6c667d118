//! One conformance suite for every storage backend: each test body runs against a fresh
//! SQLite file and, when SPORTELLO_TEST_POSTGRES_URL is set (`.ci/run` sets it), against
//! a fresh PostgreSQL database of its own that is dropped afterwards.

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::{DateTime, Duration, Utc};
use sportello::dialogue::Bundle;
use sportello::directory::hours::rome;
use sportello::engine::{Input, Mode, Output};
use sportello::store::{FailPoint, Inbound, Processed, Store, StoreError};
use sqlx::{AssertSqlSafe, Connection, Executor};

/// A store on a database made for one test, removed when the test ends (even by a panic).
struct Db {
    store: Store,
    url: String,
    _dir: Option<tempfile::TempDir>,
    postgres: Option<PgDrop>,
}

/// Drops a test's PostgreSQL database.
struct PgDrop {
    admin_url: String,
    name: String,
}

impl Drop for PgDrop {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let statement = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop cannot await: a thread with a runtime of its own does the job.
        let _ = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                sqlx::any::install_default_drivers();
                if let Ok(mut connection) = sqlx::AnyConnection::connect(&admin_url).await {
                    let _ = connection.execute(AssertSqlSafe(statement)).await;
                    let _ = connection.close().await;
                }
            });
        })
        .join();
    }
}

async fn sqlite() -> Db {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}/sportello.db", dir.path().display());
    Db {
        store: Store::open(&url).await.unwrap(),
        url,
        _dir: Some(dir),
        postgres: None,
    }
}

/// The PostgreSQL URL for tests; in CI its absence is a failure, elsewhere a clear skip.
pub fn postgres_url() -> Option<String> {
    match std::env::var("SPORTELLO_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(url),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run the PostgreSQL tests: set SPORTELLO_TEST_POSTGRES_URL"
            );
            // Written past the test harness's capture, so that the skip shows.
            use std::io::Write;
            let _ = writeln!(
                std::io::stderr(),
                "skipped: PostgreSQL test (set SPORTELLO_TEST_POSTGRES_URL to run it)"
            );
            None
        }
    }
}

async fn postgres() -> Option<Db> {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let admin_url = postgres_url()?;
    let name = format!(
        "sportello_test_{}_{}_{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        Utc::now().timestamp_micros() % 1_000_000
    );
    sqlx::any::install_default_drivers();
    let mut admin = sqlx::AnyConnection::connect(&admin_url)
        .await
        .expect("the test PostgreSQL answers");
    admin
        .execute(AssertSqlSafe(format!("CREATE DATABASE {name}")))
        .await
        .unwrap();
    admin.close().await.unwrap();
    let guard = PgDrop {
        admin_url: admin_url.clone(),
        name: name.clone(),
    };
    let base = admin_url
        .rsplit_once('/')
        .map(|(base, _)| base)
        .unwrap_or(&admin_url);
    let url = format!("{base}/{name}");
    Some(Db {
        store: Store::open(&url).await.unwrap(),
        url,
        _dir: None,
        postgres: Some(guard),
    })
}

impl Db {
    async fn finish(self) {
        self.store.close().await;
        drop(self.postgres);
    }
}

macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod on_sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let db = super::sqlite().await;
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
        mod on_postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let Some(db) = super::postgres().await else { return };
                    super::$name(&db).await;
                    db.finish().await;
                }
            )*
        }
    };
}

conformance!(
    turns_are_persisted_with_transcript_and_outbox,
    a_duplicate_update_is_handled_once,
    a_failure_in_the_middle_leaves_nothing_half_written,
    messages_of_one_conversation_are_processed_in_order,
    many_conversations_proceed_in_parallel,
    purge_erases_after_retention_and_keeps_the_statistics,
    forget_erases_at_once_and_keeps_the_statistics,
    a_handover_opens_a_case_owed_to_the_volunteers,
    forgetting_a_case_asks_the_volunteers_side_to_redact_it,
    the_outbox_retries_and_keeps_order,
    a_database_of_a_newer_schema_is_refused,
    a_second_run_on_the_same_database_is_refused,
    delivered_rows_and_update_ids_are_pruned_on_their_own_clocks,
    the_lookups_made_on_every_message_use_an_index,
    a_conversation_has_one_open_case_asked_again_it_is_announced_again,
    the_volunteers_inbox_keeps_each_event_once_and_forgets_its_words,
);

/// Volunteers' events: stored once whatever reads them again (a sync, the room's
/// history), pending in order of arrival, emptied once handled, set aside after too
/// many failures; the purge keeps the newest of each room (where reading the history
/// stops) and erasing the citizen removes what waits in the case's room.
async fn the_volunteers_inbox_keeps_each_event_once_and_forgets_its_words(db: &Db) {
    let store = &db.store;
    let event = |id: &str, room: &str, text: &str| {
        (
            id.to_string(),
            room.to_string(),
            format!(r#"{{"kind":"text","sender":"@v:s","body":"{text}"}}"#),
        )
    };
    let added = store
        .volunteer_inbox_put_all(
            &[
                event("$1", "!a:s", "uno"),
                event("$2", "!a:s", "due"),
                event("$3", "!b:s", "tre"),
            ],
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(added, 3);
    // Read again from the room's history: nothing new.
    let again = store
        .volunteer_inbox_put_all(
            &[event("$2", "!a:s", "due"), event("$4", "!a:s", "quattro")],
            t0(),
        )
        .await
        .unwrap();
    assert_eq!(again, 1);
    assert!(store.volunteer_event_known("$1").await.unwrap());
    assert!(store.volunteer_room_known("!b:s").await.unwrap());
    assert!(!store.volunteer_room_known("!c:s").await.unwrap());
    let pending = store.volunteer_inbox_pending(10).await.unwrap();
    let order: Vec<&str> = pending
        .iter()
        .map(|(row, _)| row.event_id.as_str())
        .collect();
    assert_eq!(order, ["$1", "$2", "$3", "$4"]);
    store
        .volunteer_event_done(pending[0].0.seq, t0())
        .await
        .unwrap();
    store
        .volunteer_event_retry(pending[1].0.seq, t0() + Duration::seconds(5))
        .await
        .unwrap();
    store
        .volunteer_event_dead(&pending[2].0, "store: Sqlx", t0())
        .await
        .unwrap();
    assert_eq!(store.dead_letters().await.unwrap(), 1);
    let pending = store.volunteer_inbox_pending(10).await.unwrap();
    let order: Vec<(&str, i64)> = pending
        .iter()
        .map(|(row, _)| (row.event_id.as_str(), row.attempts))
        .collect();
    assert_eq!(order, [("$2", 1), ("$4", 0)]);
    assert_eq!(store.volunteer_inbox_depth().await.unwrap(), (2, 0));
    // Handled rows hold no words.
    store
        .volunteer_event_done(pending[0].0.seq, t0())
        .await
        .unwrap();
    store
        .volunteer_event_done(pending[1].0.seq, t0())
        .await
        .unwrap();
    assert!(store.volunteer_event_known("$2").await.unwrap());
    // After the dedupe window the purge keeps only the newest event of each room.
    store.purge(t0() + Duration::days(40), 30).await.unwrap();
    assert!(!store.volunteer_event_known("$1").await.unwrap());
    assert!(!store.volunteer_event_known("$2").await.unwrap());
    assert!(
        store.volunteer_event_known("$4").await.unwrap(),
        "newest of !a"
    );
    assert!(
        store.volunteer_event_known("$3").await.unwrap(),
        "newest of !b"
    );
    assert_eq!(store.dead_letters().await.unwrap(), 0, "past the retention");
}

/// Asking for a person again while a case is open does not open a second case: the
/// open one is announced again.
async fn a_conversation_has_one_open_case_asked_again_it_is_announced_again(db: &Db) {
    let bundle = common::mini();
    let store = &db.store;
    for text in ["/start", "1", "volontario", "/menu", "volontario"] {
        say(store, &bundle, "eva", text, t0()).await;
    }
    let cases = store.handovers().await.unwrap();
    assert_eq!(cases.len(), 1, "{cases:?}");
    let conversation = store.conversation("test", "eva").await.unwrap().unwrap();
    let owed = store
        .outbox_unsent("volunteers", &conversation.id.to_string())
        .await
        .unwrap();
    let announced: Vec<&str> = owed
        .iter()
        .filter(|row| row.payload.contains("\"handover\""))
        .map(|row| row.payload.as_str())
        .collect();
    assert_eq!(announced.len(), 2, "{owed:?}");
    assert!(announced[0].contains("\"again\":false"), "{announced:?}");
    assert!(announced[1].contains("\"again\":true"), "{announced:?}");
}

/// The lookups made on every message (a chat's owed messages, a conversation's rows and
/// case, the case of a room) read an index, not the whole table: on SQLite the plan says
/// SEARCH … USING INDEX; on PostgreSQL, with sequential scans discouraged, no Seq Scan.
async fn the_lookups_made_on_every_message_use_an_index(db: &Db) {
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let sqlite = db.url.starts_with("sqlite");
    if !sqlite {
        connection
            .execute("SET enable_seqscan = off")
            .await
            .unwrap();
    }
    for query in [
        "SELECT id FROM outbox WHERE channel = 'telegram' AND chat_id = '42' AND sent_at IS NULL ORDER BY id",
        "SELECT id FROM outbox WHERE conversation_id = 1",
        "SELECT id FROM handovers WHERE room = '!room:server'",
        "SELECT id FROM handovers WHERE conversation_id = 1",
        "SELECT seq FROM volunteer_inbox WHERE event_id = '$event'",
        "SELECT seq FROM volunteer_inbox WHERE room = '!room:server' LIMIT 1",
    ] {
        let explain = if sqlite {
            format!("EXPLAIN QUERY PLAN {query}")
        } else {
            format!("EXPLAIN {query}")
        };
        let rows = sqlx::query(AssertSqlSafe(explain))
            .fetch_all(&mut connection)
            .await
            .unwrap();
        let plan: Vec<String> = rows
            .iter()
            .map(|row| {
                use sqlx::Row;
                row.try_get::<String, _>(if sqlite { 3 } else { 0 })
                    .unwrap()
            })
            .collect();
        let plan = plan.join("\n");
        if sqlite {
            assert!(
                plan.contains("USING INDEX")
                    || plan.contains("USING COVERING INDEX")
                    || plan.contains("USING PRIMARY KEY"),
                "{query}: {plan}"
            );
        } else {
            assert!(!plan.contains("Seq Scan"), "{query}: {plan}");
        }
    }
    connection.close().await.unwrap();
}

/// Until several instances are supported, two `sportello run` on one database would
/// deliver every message twice: the second one is refused, with a message that says so,
/// and the database is free again once the first one stops.
async fn a_second_run_on_the_same_database_is_refused(db: &Db) {
    let first = db
        .store
        .lock_for_run()
        .await
        .expect("the first run takes the database");
    let other = Store::open(&db.url).await.unwrap();
    match other.lock_for_run().await {
        Err(error @ StoreError::AlreadyRunning { .. }) => {
            let told = error.to_string();
            assert!(told.contains("already using the database"), "{told}");
            assert!(told.contains("twice"), "{told}");
        }
        Err(error) => panic!("refused for another reason: {error}"),
        Ok(_) => panic!("a second run was let in"),
    }
    first.release().await;
    // PostgreSQL frees the advisory lock when the closed session's backend ends, a
    // moment after the client has closed it.
    let mut again = other.lock_for_run().await;
    for _ in 0..50 {
        if again.is_ok() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        again = other.lock_for_run().await;
    }
    again
        .expect("the database is free once the first run stops")
        .release()
        .await;
    other.close().await;
}

fn t0() -> DateTime<Utc> {
    rome(2026, 3, 17, 10, 0)
}

fn inbound(chat: &str, text: &str, update: Option<&str>, now: DateTime<Utc>) -> Inbound {
    Inbound {
        channel: "test".into(),
        chat_id: chat.into(),
        update_id: update.map(str::to_string),
        input: Input::Text(text.into()),
        interface_lang: None,
        button_tag: None,
        now,
    }
}

/// One update through the store, which must not fail.
async fn process(store: &Store, bundle: &Bundle, update: Inbound) -> Processed {
    store.process(bundle, update).await.unwrap()
}

async fn say(
    store: &Store,
    bundle: &Bundle,
    chat: &str,
    text: &str,
    now: DateTime<Utc>,
) -> Vec<Output> {
    match process(store, bundle, inbound(chat, text, None, now)).await {
        Processed::Done(turn) => turn.outputs,
        Processed::Duplicate => panic!("no update id, no duplicate"),
    }
}

async fn turns_are_persisted_with_transcript_and_outbox(db: &Db) {
    let bundle = common::mini();
    let store = &db.store;
    for text in ["/start", "1", "1"] {
        say(store, &bundle, "ada", text, t0()).await;
    }
    let conversation = store.conversation("test", "ada").await.unwrap().unwrap();
    assert_eq!(
        (
            conversation.state.flow.as_str(),
            conversation.state.step.as_str()
        ),
        ("casa", "bisogno")
    );
    assert!(conversation.state.consent);
    assert_eq!(conversation.status, "bot");
    let transcript = store.transcript("test", "ada").await.unwrap();
    let authors: Vec<&str> = transcript
        .iter()
        .map(|(author, _)| author.as_str())
        .collect();
    assert_eq!(
        authors,
        ["citizen", "bot", "citizen", "bot", "citizen", "bot"]
    );
    assert_eq!(transcript[4].1, "1");
    assert!(
        transcript[5].1.contains("Che aiuto cerchi per la casa?"),
        "{transcript:?}"
    );
    let owed = store.outbox_unsent("test", "ada").await.unwrap();
    assert_eq!(owed.len(), 3);
    // A new process (a restart) continues at the same step.
    let reopened = Store::open(&db.url).await.unwrap();
    let outputs = say(&reopened, &bundle, "ada", "affitto", t0()).await;
    assert!(sportello::engine::transcript(&outputs).contains("In che comune abiti?"));
    reopened.close().await;
}

async fn a_duplicate_update_is_handled_once(db: &Db) {
    let bundle = common::mini();
    let store = &db.store;
    let first = process(store, &bundle, inbound("bea", "/start", Some("100"), t0())).await;
    assert!(matches!(first, Processed::Done(_)));
    let again = process(store, &bundle, inbound("bea", "/start", Some("100"), t0())).await;
    assert_eq!(again, Processed::Duplicate);
    // Update ids are per channel: another channel's 100 is another update.
    let mut other = inbound("bea", "/start", Some("100"), t0());
    other.channel = "other".into();
    assert!(matches!(
        process(store, &bundle, other).await,
        Processed::Done(_)
    ));
    assert_eq!(store.transcript("test", "bea").await.unwrap().len(), 2);
}

async fn a_failure_in_the_middle_leaves_nothing_half_written(db: &Db) {
    let bundle = common::mini();
    let store = &db.store;
    say(store, &bundle, "cai", "/start", t0()).await;
    let before_state = store
        .conversation("test", "cai")
        .await
        .unwrap()
        .unwrap()
        .state;
    let before_transcript = store.transcript("test", "cai").await.unwrap();
    let before_outbox = store.outbox_unsent("test", "cai").await.unwrap();
    for point in [
        FailPoint::AfterEngine,
        FailPoint::AfterTranscript,
        FailPoint::BeforeCommit,
    ] {
        store.fail_at(Some(point));
        let result = store
            .process(&bundle, inbound("cai", "1", Some("7"), t0()))
            .await;
        assert!(
            matches!(result, Err(StoreError::Injected(p)) if p == point),
            "{result:?}"
        );
        assert_eq!(
            store
                .conversation("test", "cai")
                .await
                .unwrap()
                .unwrap()
                .state,
            before_state,
            "{point:?}"
        );
        assert_eq!(
            store.transcript("test", "cai").await.unwrap(),
            before_transcript,
            "{point:?}"
        );
        assert_eq!(
            store.outbox_unsent("test", "cai").await.unwrap(),
            before_outbox,
            "{point:?}"
        );
    }
    store.fail_at(None);
    // The update was not recorded as processed: its redelivery is handled.
    let retried = process(store, &bundle, inbound("cai", "1", Some("7"), t0())).await;
    assert!(matches!(retried, Processed::Done(_)));
    assert!(
        store
            .conversation("test", "cai")
            .await
            .unwrap()
            .unwrap()
            .state
            .consent
    );
}

async fn messages_of_one_conversation_are_processed_in_order(db: &Db) {
    let bundle = common::mini();
    let store = &db.store;
    say(store, &bundle, "dan", "/start", t0()).await;
    say(store, &bundle, "dan", "1", t0()).await;
    let texts: Vec<String> = (0..30).map(|n| format!("messaggio {n}")).collect();
    // All arrive at once; each waits for the one before.
    let turns = texts
        .iter()
        .map(|text| store.process(&bundle, inbound("dan", text, None, t0())));
    for result in futures_join_all(turns).await {
        result.unwrap();
    }
    let said: Vec<String> = store
        .transcript("test", "dan")
        .await
        .unwrap()
        .into_iter()
        .filter(|(author, text)| author == "citizen" && text.starts_with("messaggio"))
        .map(|(_, text)| text)
        .collect();
    assert_eq!(said, texts);
}

/// Polls every future in the order given (the first poll of each takes its place in line).
async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut outputs: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|context| {
        let mut pending = false;
        for (future, output) in pinned.iter_mut().zip(outputs.iter_mut()) {
            if output.is_none() {
                match future.as_mut().poll(context) {
                    std::task::Poll::Ready(value) => *output = Some(value),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    outputs.into_iter().map(|output| output.unwrap()).collect()
}

async fn many_conversations_proceed_in_parallel(db: &Db) {
    let bundle = std::sync::Arc::new(common::mini());
    let store = std::sync::Arc::new(Store::open(&db.url).await.unwrap());
    let mut tasks = Vec::new();
    for citizen in 0..40 {
        let (store, bundle) = (store.clone(), bundle.clone());
        tasks.push(tokio::spawn(async move {
            let chat = format!("citizen-{citizen}");
            for (n, text) in ["/start", "1", "1", "1", "Segrate"].iter().enumerate() {
                let update = format!("{citizen}-{n}");
                store
                    .process(&bundle, inbound(&chat, text, Some(&update), t0()))
                    .await
                    .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    for citizen in 0..40 {
        let chat = format!("citizen-{citizen}");
        let transcript = store.transcript("test", &chat).await.unwrap();
        let said: Vec<&str> = transcript
            .iter()
            .filter(|(a, _)| a == "citizen")
            .map(|(_, t)| t.as_str())
            .collect();
        assert_eq!(said, ["/start", "1", "1", "1", "Segrate"], "{chat}");
        let state = store
            .conversation("test", &chat)
            .await
            .unwrap()
            .unwrap()
            .state;
        assert_eq!(
            state.vars.get("comune").map(String::as_str),
            Some("Segrate")
        );
    }
    let stats = store.stats("2026-W01", "2026-W53").await.unwrap();
    let suggested: i64 = stats
        .iter()
        .filter(|row| row.outcome == "suggested")
        .map(|row| row.count)
        .sum();
    assert_eq!(suggested, 40);
    store.close().await;
}

async fn purge_erases_after_retention_and_keeps_the_statistics(db: &Db) {
    let bundle = common::mini();
    let store = &db.store;
    // Ends after a suggestion.
    for text in ["/start", "1", "1", "1", "Segrate", "2"] {
        say(store, &bundle, "eva", text, t0()).await;
    }
    assert_eq!(
        store
            .conversation("test", "eva")
            .await
            .unwrap()
            .unwrap()
            .status,
        "closed"
    );
    // Left at the menu, never back.
    for text in ["/start", "1"] {
        say(store, &bundle, "fede", text, t0()).await;
    }
    let report = store.purge(t0() + Duration::days(29), 30).await.unwrap();
    assert_eq!(report.erased, 0);
    assert!(store.conversation("test", "eva").await.unwrap().is_some());
    let report = store.purge(t0() + Duration::days(31), 30).await.unwrap();
    assert_eq!((report.erased, report.abandoned), (2, 1));
    for chat in ["eva", "fede"] {
        assert!(store.conversation("test", chat).await.unwrap().is_none());
        assert!(store.transcript("test", chat).await.unwrap().is_empty());
        assert!(store.outbox_unsent("test", chat).await.unwrap().is_empty());
    }
    let stats = store.stats("2026-W12", "2026-W12").await.unwrap();
    let outcome = |name: &str| {
        stats
            .iter()
            .filter(|row| row.outcome == name)
            .map(|row| row.count)
            .sum::<i64>()
    };
    assert_eq!(outcome("suggested"), 1, "{stats:?}");
    assert_eq!(outcome("abandoned"), 1, "{stats:?}");
    let suggested = stats.iter().find(|row| row.outcome == "suggested").unwrap();
    assert_eq!(
        (suggested.comune.as_str(), suggested.need.as_str()),
        ("segrate", "casa.affitto")
    );
    // The same citizen may come back: a new conversation starts with the privacy notice.
    let outputs = say(store, &bundle, "eva", "ciao", t0() + Duration::days(32)).await;
    assert!(sportello::engine::transcript(&outputs).contains("Informativa privacy"));
}

async fn forget_erases_at_once_and_keeps_the_statistics(db: &Db) {
    let bundle = common::mini();
    let store = &db.store;
    for text in ["/start", "1", "1", "1", "Segrate", "/dimentica"] {
        say(store, &bundle, "gio", text, t0()).await;
    }
    assert!(
        !store.transcript("test", "gio").await.unwrap().is_empty(),
        "nothing is erased before the confirmation"
    );
    let outputs = say(store, &bundle, "gio", "1", t0()).await;
    assert!(outputs.contains(&Output::Forget));
    assert!(store.transcript("test", "gio").await.unwrap().is_empty());
    let conversation = store.conversation("test", "gio").await.unwrap().unwrap();
    assert!(conversation.state.vars.is_empty() && !conversation.state.consent);
    assert_eq!(conversation.state.mode, Mode::New);
    // The confirmation is still owed to the chat; nothing personal is.
    let owed = store.outbox_unsent("test", "gio").await.unwrap();
    assert_eq!(owed.len(), 1, "{owed:?}");
    assert!(owed[0].payload.contains("cancellato"), "{owed:?}");
    assert!(
        !store
            .stats("2026-W12", "2026-W12")
            .await
            .unwrap()
            .is_empty()
    );
    // The operator's command erases the rest.
    assert!(store.forget("test", "gio").await.unwrap());
    assert!(store.conversation("test", "gio").await.unwrap().is_none());
    assert!(!store.forget("test", "gio").await.unwrap());
}

async fn a_handover_opens_a_case_owed_to_the_volunteers(db: &Db) {
    let bundle = common::mini();
    let store = &db.store;
    for text in ["/start", "1", "1", "1", "Segrate", "volontario"] {
        say(store, &bundle, "ivo", text, t0()).await;
    }
    let conversation = store.conversation("test", "ivo").await.unwrap().unwrap();
    assert_eq!(conversation.status, "waiting");
    let cases = store.handovers().await.unwrap();
    assert_eq!(cases.len(), 1);
    assert_eq!(
        (cases[0].need.as_str(), cases[0].status.as_str()),
        ("casa.affitto", "waiting")
    );
    assert_eq!(cases[0].comune.as_deref(), Some("segrate"));
    let chat = conversation.id.to_string();
    let owed = store.outbox_unsent("volunteers", &chat).await.unwrap();
    assert_eq!(owed.len(), 1);
    assert!(owed[0].payload.contains("\"handover\""), "{owed:?}");
    // What the citizen writes now is for the volunteer, after the card.
    say(store, &bundle, "ivo", "sono ancora qui", t0()).await;
    let owed = store.outbox_unsent("volunteers", &chat).await.unwrap();
    assert_eq!(owed.len(), 2);
    assert!(owed[1].payload.contains("sono ancora qui"));
    // The citizen blocks the bot: closed, nothing more sent, the volunteer told.
    assert!(store.close_blocked("test", "ivo", t0()).await.unwrap());
    assert_eq!(
        store
            .conversation("test", "ivo")
            .await
            .unwrap()
            .unwrap()
            .status,
        "closed"
    );
    assert!(store.outbox_unsent("test", "ivo").await.unwrap().is_empty());
    let owed = store.outbox_unsent("volunteers", &chat).await.unwrap();
    assert!(owed[2].payload.contains("\"blocked\""), "{owed:?}");
}

async fn forgetting_a_case_asks_the_volunteers_side_to_redact_it(db: &Db) {
    let bundle = common::mini();
    let store = &db.store;
    for text in ["/start", "1", "volontario", "mi chiamo Ada"] {
        say(store, &bundle, "ada", text, t0()).await;
    }
    let case = store.handovers().await.unwrap()[0].case;
    assert_eq!(
        store.claim(case, "@v:localhost", t0()).await.unwrap(),
        sportello::store::Claim::Claimed
    );
    store
        .record_case_event(case, "!coord:localhost", "$card", "card", t0())
        .await
        .unwrap();
    store
        .record_case_event(case, "!case:localhost", "$said", "citizen", t0())
        .await
        .unwrap();
    // Recording twice (a retried delivery) keeps one row.
    store
        .record_case_event(case, "!case:localhost", "$said", "citizen", t0())
        .await
        .unwrap();
    assert_eq!(store.case_of_card("$card").await.unwrap(), Some(case));
    assert_eq!(
        store.case_of_card("$said").await.unwrap(),
        None,
        "not a card"
    );
    assert_eq!(store.case_events(case).await.unwrap().len(), 2);

    say(store, &bundle, "ada", "/dimentica", t0()).await;
    say(store, &bundle, "ada", "1", t0()).await;
    let erased = store.case(case).await.unwrap().unwrap();
    assert_eq!(erased.status, "closed");
    assert!(erased.summary.is_empty() && erased.conversation_id.is_none());
    let owed = store
        .outbox_unsent("volunteers", &format!("case-{case}"))
        .await
        .unwrap();
    assert_eq!(owed.len(), 1, "{owed:?}");
    assert!(
        owed[0].payload.contains("\"forget\"") && owed[0].payload.contains("\"citizen\""),
        "{owed:?}"
    );
    // The relayed line that had not left yet is gone with the rest.
    let conversation = store.conversation("test", "ada").await.unwrap().unwrap();
    assert!(
        store
            .outbox_unsent("volunteers", &conversation.id.to_string())
            .await
            .unwrap()
            .is_empty()
    );
    for (_, event) in store.case_events(case).await.unwrap() {
        store.forget_case_event(&event).await.unwrap();
    }
    assert!(store.case_events(case).await.unwrap().is_empty());
}

async fn the_outbox_retries_and_keeps_order(db: &Db) {
    let bundle = common::mini();
    let store = &db.store;
    say(store, &bundle, "lia", "/start", t0()).await;
    say(store, &bundle, "lia", "1", t0()).await;
    say(store, &bundle, "max", "/start", t0()).await;
    // Each chat's oldest row only: a later row waits for the earlier one.
    let due = store.outbox_due("test", t0(), 10).await.unwrap();
    let chats: Vec<&str> = due.iter().map(|row| row.chat_id.as_str()).collect();
    assert_eq!(chats, ["lia", "max"]);
    let first = due[0].id;
    let unsent = store.outbox_unsent("test", "lia").await.unwrap();
    assert_eq!(unsent.len(), 2);
    store
        .outbox_failed(first, t0() + Duration::seconds(30), "timeout")
        .await
        .unwrap();
    let due_now = store.outbox_due("test", t0(), 10).await.unwrap();
    let chats: Vec<&str> = due_now.iter().map(|row| row.chat_id.as_str()).collect();
    assert_eq!(chats, ["max"], "lia waits for its retry");
    let later = store
        .outbox_due("test", t0() + Duration::seconds(31), 10)
        .await
        .unwrap();
    assert_eq!((later[0].id, later[0].attempts), (first, 1));
    store.outbox_sent(first, t0()).await.unwrap();
    let next = store
        .outbox_due("test", t0() + Duration::seconds(31), 10)
        .await
        .unwrap();
    assert_eq!(next[0].id, unsent[1].id);
    store
        .outbox_dropped(unsent[1].id, t0(), "refused")
        .await
        .unwrap();
    store.outbox_sent(due[1].id, t0()).await.unwrap();
    assert!(
        store
            .outbox_due("test", t0() + Duration::days(1), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(store.outbox_unsent("test", "lia").await.unwrap().is_empty());
}

async fn a_database_of_a_newer_schema_is_refused(db: &Db) {
    sqlx::any::install_default_drivers();
    let mut connection = sqlx::AnyConnection::connect(&db.url).await.unwrap();
    let insert = if db.url.starts_with("sqlite") {
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (99990101000000, 'from the future', 1, x'00', 0)"
    } else {
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) VALUES (99990101000000, 'from the future', true, '\\x00'::bytea, 0)"
    };
    connection.execute(insert).await.unwrap();
    connection.close().await.unwrap();
    let error = Store::open(&db.url)
        .await
        .err()
        .expect("a newer schema is refused");
    assert!(
        matches!(
            error,
            StoreError::NewerSchema {
                version: 99990101000000,
                ..
            }
        ),
        "{error}"
    );
    assert!(error.to_string().contains("newer sportello"), "{error}");
}

/// After each kind of erasure (the citizen's `/dimentica`, the operator's `sportello
/// forget`, the retention purge) the citizen's words are in none of the SQLite files:
/// `secure_delete` zeroes the freed pages and the WAL is checkpointed and truncated.
#[tokio::test]
async fn erased_words_are_gone_from_the_sqlite_files() {
    const WORD: &str = "Quarzobirillo";
    let bundle = common::mini();
    for kind in ["citizen", "operator", "retention"] {
        let db = sqlite().await;
        let store = &db.store;
        let said = format!("mi chiamo {WORD} e abito in via {WORD}");
        for text in ["/start", "1", "volontario", said.as_str()] {
            say(store, &bundle, "zoe", text, t0()).await;
        }
        let case = store.handovers().await.unwrap()[0].case;
        store
            .add_note(case, "@v:localhost", &format!("richiamare {WORD}"), t0())
            .await
            .unwrap();
        // Rows already delivered are erased too.
        let conversation = store.conversation("test", "zoe").await.unwrap().unwrap();
        for row in store
            .outbox_unsent("volunteers", &conversation.id.to_string())
            .await
            .unwrap()
            .into_iter()
            .chain(store.outbox_unsent("test", "zoe").await.unwrap())
        {
            store.outbox_sent(row.id, t0()).await.unwrap();
        }
        let file = db.url.trim_start_matches("sqlite://").to_string();
        let on_disk = || {
            ["", "-wal", "-shm"].iter().any(|suffix| {
                std::fs::read(format!("{file}{suffix}")).is_ok_and(|bytes| {
                    bytes
                        .windows(WORD.len())
                        .any(|window| window == WORD.as_bytes())
                })
            })
        };
        assert!(
            on_disk(),
            "{kind}: the words were written before the erasure"
        );
        match kind {
            "citizen" => {
                say(store, &bundle, "zoe", "/dimentica", t0()).await;
                let outputs = say(store, &bundle, "zoe", "1", t0()).await;
                assert!(outputs.contains(&Output::Forget));
            }
            "operator" => assert!(store.forget("test", "zoe").await.unwrap()),
            _ => {
                let report = store.purge(t0() + Duration::days(31), 30).await.unwrap();
                assert_eq!(report.erased, 1);
            }
        }
        assert!(!on_disk(), "{kind}: the citizen's words are still on disk");
    }
}

/// Delivered outbox rows go a day after delivery; the ids of handled updates are kept
/// for their own window (a redelivery is still dropped), however short the retention.
async fn delivered_rows_and_update_ids_are_pruned_on_their_own_clocks(db: &Db) {
    let bundle = common::mini();
    let store = &db.store;
    let first = process(store, &bundle, inbound("ugo", "/start", Some("u-1"), t0())).await;
    assert!(matches!(first, Processed::Done(_)));
    let rows = store.outbox_unsent("test", "ugo").await.unwrap();
    assert!(!rows.is_empty());
    for row in &rows {
        store.outbox_sent(row.id, t0()).await.unwrap();
    }
    let report = store.purge(t0() + Duration::hours(23), 30).await.unwrap();
    assert_eq!(report.erased_sent, 0);
    let report = store.purge(t0() + Duration::hours(25), 30).await.unwrap();
    assert_eq!(report.erased_sent, rows.len() as u64);
    // A retention of one day erases the conversation; the update id still dedupes.
    let report = store.purge(t0() + Duration::days(2), 1).await.unwrap();
    assert_eq!(report.erased, 1);
    let again = process(
        store,
        &bundle,
        inbound("ugo", "/start", Some("u-1"), t0() + Duration::days(2)),
    )
    .await;
    assert!(matches!(again, Processed::Duplicate));
    store.purge(t0() + Duration::days(9), 1).await.unwrap();
    let later = process(
        store,
        &bundle,
        inbound("ugo", "/start", Some("u-1"), t0() + Duration::days(9)),
    )
    .await;
    assert!(matches!(later, Processed::Done(_)));
}
