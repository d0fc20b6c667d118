//! Everything kept between turns: conversations (the engine's state), their transcript,
//! handovers, processed update ids, the outbox and the anonymous need statistics, on
//! SQLite (embedded default) or PostgreSQL, through sqlx's Any driver with one query text
//! for both. Migrations are embedded, one folder per backend under `migrations/`.
//!
//! One inbound message is one transaction ([`Store::process`]): the dedupe record, the
//! new state, the transcript lines, the outbox rows, the handover and the statistics
//! commit together or not at all. Messages of one conversation are processed one at a
//! time, in the order `process` is called; different conversations run in parallel (on
//! PostgreSQL also across instances, by a row lock).
//!
//! This module never logs a citizen's words or a chat id.

mod cases;
mod url;
mod volunteer_inbox;

pub use cases::{Case, Claim};
pub use volunteer_inbox::{NewVolunteerEvent, VolunteerRow};

use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::sync::Mutex as StdMutex;
use std::time::Duration;

use chrono::{DateTime, Datelike, TimeZone, Utc};
use chrono_tz::Europe::Rome;
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;
use sqlx::any::AnyPoolOptions;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::{Any, Connection, Executor, Row, Transaction};

use crate::dialogue::Bundle;
use crate::engine::{self, Button, Input, Mode, Output, State};

pub use url::redact;

static SQLITE_MIGRATIONS: Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: Migrator = sqlx::migrate!("migrations/postgres");

/// Lock stripes for "one message at a time per conversation" inside one process.
const STRIPES: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "the database URL {0} is not valid: write sqlite://PATH or postgres://USER@HOST:PORT/DATABASE"
    )]
    InvalidUrl(String),
    #[error("cannot open the database {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error(
        "the database {url} was updated by a newer sportello (schema version {version}); run a newer sportello, or restore the backup taken before the upgrade"
    )]
    NewerSchema { url: String, version: i64 },
    #[error("cannot update the database schema of {url}: {reason}")]
    Migrate { url: String, reason: String },
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    #[error("stored data cannot be read: {0}")]
    Corrupt(String),
    #[error("failure injected at {0:?}")]
    Injected(FailPoint),
    #[error(
        "another `sportello run` is already using the database {url}: two would answer every message twice. Stop the other one first (several instances on one database are not supported yet)"
    )]
    AlreadyRunning { url: String },
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Where [`Store::process`] may be made to fail, to prove that nothing is half-written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailPoint {
    AfterEngine,
    AfterTranscript,
    BeforeCommit,
}

/// How [`Store::break_chat`] makes one chat's messages fail (tests only).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Breakage {
    /// An error, as a database that refuses the transaction.
    Error,
    /// A panic, as a bug would.
    Panic,
}

/// One message from a citizen, as a channel received it.
#[derive(Debug, Clone, PartialEq)]
pub struct Inbound {
    pub channel: String,
    pub chat_id: String,
    /// The channel's id of this update: a second delivery with the same id is ignored.
    pub update_id: Option<String>,
    pub input: Input,
    /// The citizen's interface language, proposed at the first contact.
    pub interface_lang: Option<String>,
    /// For a pressed button: the tag it was shown with (see `engine::button_tag`); a tag
    /// that is not the conversation's current one makes the press stale.
    pub button_tag: Option<String>,
    pub now: DateTime<Utc>,
}

/// What a turn owes the citizen, composed into one message (text, buttons, location
/// request). It is the outbox payload of the citizen's channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub text: String,
    pub buttons: Vec<Button>,
    pub request_location: bool,
    /// The conversation's button tag after the turn, for the buttons' callback data.
    #[serde(default)]
    pub tag: String,
    /// The conversation's language, for the channel's own words (the location button).
    #[serde(default)]
    pub lang: String,
}

impl Delivery {
    /// Joins a turn's messages: the texts in order, the buttons of the last question.
    pub fn compose(outputs: &[Output]) -> Option<Delivery> {
        let mut delivery = Delivery {
            text: String::new(),
            buttons: Vec::new(),
            request_location: false,
            tag: String::new(),
            lang: String::new(),
        };
        for output in outputs {
            if let Output::Message {
                text,
                buttons,
                request_location,
            } = output
            {
                if !delivery.text.is_empty() {
                    delivery.text.push_str("\n\n");
                }
                delivery.text.push_str(text);
                if !buttons.is_empty() {
                    delivery.buttons = buttons.clone();
                }
                delivery.request_location |= request_location;
            }
        }
        (!delivery.text.is_empty()).then_some(delivery)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Processed {
    /// The update was processed before: nothing done.
    Duplicate,
    Done(Turn),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Turn {
    pub conversation_id: i64,
    pub outputs: Vec<Output>,
    /// The outbox row owed to the citizen, if the turn says anything.
    pub outbox_id: Option<i64>,
    pub delivery: Option<Delivery>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct OutboxRow {
    pub id: i64,
    pub conversation_id: Option<i64>,
    pub channel: String,
    pub chat_id: String,
    pub payload: String,
    pub attempts: i64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ConversationRow {
    pub id: i64,
    pub status: String,
    pub state: State,
    pub updated_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct HandoverRow {
    pub case: i64,
    pub conversation_id: Option<i64>,
    pub need: String,
    pub comune: Option<String>,
    pub lang: String,
    pub status: String,
    pub summary: String,
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct StatRow {
    pub week: String,
    pub comune: String,
    pub need: String,
    pub lang: String,
    pub outcome: String,
    pub count: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PurgeReport {
    /// Conversations whose personal data was erased.
    pub erased: u64,
    /// Of those, conversations left without any outcome, counted as abandoned.
    pub abandoned: u64,
    /// Delivered outbox rows older than [`SENT_KEPT_HOURS`], of any conversation.
    pub erased_sent: u64,
}

/// How long the ids of handled updates are kept to drop a redelivered one.
pub const DEDUPE_DAYS: i64 = 7;
/// How long a delivered outbox row is kept.
pub const SENT_KEPT_HOURS: i64 = 24;

pub struct Store {
    pool: AnyPool,
    backend: Backend,
    url: String,
    /// The URL connections are opened with (it may hold a password: never shown).
    connect_url: String,
    stripes: Vec<tokio::sync::Mutex<()>>,
    fail_at: StdMutex<Option<FailPoint>>,
    broken_chat: StdMutex<Option<(String, Breakage)>>,
    /// Woken when a transaction added outbox rows, so that deliverers need not poll.
    outbox_changed: tokio::sync::Notify,
    /// Woken when volunteers' events were stored, so that their handler need not poll.
    volunteer_inbox_changed: tokio::sync::Notify,
}

fn outbox_row(row: &sqlx::any::AnyRow) -> Result<OutboxRow> {
    Ok(OutboxRow {
        id: row.try_get(0)?,
        conversation_id: row.try_get(1)?,
        channel: row.try_get(2)?,
        chat_id: row.try_get(3)?,
        payload: row.try_get(4)?,
        attempts: row.try_get(5)?,
    })
}

fn millis(time: DateTime<Utc>) -> i64 {
    time.timestamp_millis()
}

fn from_millis(value: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(value).single().unwrap_or_default()
}

/// "2026-W12": the ISO week in Rome, the finest time the statistics keep.
pub fn iso_week(time: DateTime<Utc>) -> String {
    let week = time.with_timezone(&Rome).iso_week();
    format!("{}-W{:02}", week.year(), week.week())
}

/// What the citizen did, as a transcript line.
fn describe(input: &Input, state: &State) -> String {
    match input {
        // Whole: a long message loses nothing (the engine matches its beginning only).
        Input::Text(text) => text.clone(),
        Input::Button(payload) => {
            let label = state
                .buttons
                .iter()
                .find(|button| button.action.payload() == *payload)
                .map(|button| button.label.as_str())
                .unwrap_or("?");
            format!("[{label}]")
        }
        Input::Location(point) => format!("[posizione {:.5}, {:.5}]", point.lat, point.lon),
        Input::Unsupported => "[messaggio non leggibile]".to_string(),
        Input::Repeat => "[ripeti]".to_string(),
        Input::StaleButton => "[pulsante vecchio]".to_string(),
        Input::VolunteerJoined(_) => "[un volontario prende il caso]".to_string(),
        Input::FromVolunteer(text) => text.clone(),
        Input::VolunteerReleased => "[il volontario rilascia il caso]".to_string(),
        Input::VolunteerClosed => "[il volontario chiude il caso]".to_string(),
        Input::VolunteerReminder => "[promemoria: ancora in attesa]".to_string(),
        Input::VolunteerDelayed => {
            "[avviso: volontari irraggiungibili, messaggi in attesa]".to_string()
        }
    }
}

/// Held for as long as one `sportello run` uses the database ([`Store::lock_for_run`]).
pub struct RunLock {
    _held: Held,
}

impl RunLock {
    /// Lets the database go at once. A dropped lock lets it go too, but later: sqlx
    /// closes a dropped connection in the background, and PostgreSQL frees the advisory
    /// lock when it sees the connection closed.
    pub async fn release(self) {
        if let Held::Postgres { _session: session } = self._held {
            let _ = session.close().await;
        }
    }
}

enum Held {
    None,
    /// Dropping the file releases its lock; closing the connection, the advisory lock.
    File {
        _locked: std::fs::File,
    },
    Postgres {
        _session: sqlx::AnyConnection,
    },
}

fn status_of(state: &State, previous: Option<&str>) -> &'static str {
    match state.mode {
        Mode::Ended => "closed",
        Mode::WithVolunteer if previous == Some("volunteer") => "volunteer",
        Mode::WithVolunteer => "waiting",
        _ => "bot",
    }
}

impl Store {
    /// Opens the database and applies the pending migrations.
    pub async fn open(url: &str) -> Result<Store> {
        let store = Store::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens the database without touching its schema.
    pub async fn connect(url: &str) -> Result<Store> {
        sqlx::any::install_default_drivers();
        let shown = redact(url);
        let (backend, url) =
            url::prepare(url).map_err(|_| StoreError::InvalidUrl(shown.clone()))?;
        let sqlite = backend == Backend::Sqlite;
        // One plain connection first: a refused connection or a wrong password is told
        // at once, instead of after the pool's patient retries.
        let probe =
            sqlx::AnyConnection::connect(&url)
                .await
                .map_err(|error| StoreError::Connect {
                    url: shown.clone(),
                    reason: url::plain_reason(&error),
                })?;
        let _ = probe.close().await;
        let pool = AnyPoolOptions::new()
            .max_connections(if sqlite { 4 } else { 16 })
            .acquire_timeout(Duration::from_secs(10))
            .after_connect(move |connection, _| {
                Box::pin(async move {
                    if sqlite {
                        connection
                            .execute(
                                "PRAGMA foreign_keys = ON; PRAGMA busy_timeout = 10000; \
                                 PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; \
                                 PRAGMA secure_delete = ON;",
                            )
                            .await?;
                    }
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .map_err(|error| StoreError::Connect {
                url: shown.clone(),
                reason: url::plain_reason(&error),
            })?;
        Ok(Store {
            pool,
            backend,
            url: shown,
            connect_url: url,
            stripes: (0..STRIPES).map(|_| tokio::sync::Mutex::new(())).collect(),
            fail_at: StdMutex::new(None),
            broken_chat: StdMutex::new(None),
            outbox_changed: tokio::sync::Notify::new(),
            volunteer_inbox_changed: tokio::sync::Notify::new(),
        })
    }

    /// Takes the database for one `sportello run`: a second run on the same database
    /// gets [`StoreError::AlreadyRunning`] until the first one stops (or dies: the lock
    /// goes with its process). On PostgreSQL a session advisory lock, on SQLite a lock
    /// on a `.lock` file beside the database.
    pub async fn lock_for_run(&self) -> Result<RunLock> {
        let already = || StoreError::AlreadyRunning {
            url: self.url.clone(),
        };
        match self.backend {
            Backend::Postgres => {
                let mut connection = sqlx::AnyConnection::connect(&self.connect_url).await?;
                // The key is "sportell" in ASCII (0x73706f7274656c6c); sqlx takes static SQL only.
                let taken: bool =
                    sqlx::query_scalar("SELECT pg_try_advisory_lock(8318271049123064940)")
                        .fetch_one(&mut connection)
                        .await?;
                if !taken {
                    let _ = connection.close().await;
                    return Err(already());
                }
                Ok(RunLock {
                    _held: Held::Postgres {
                        _session: connection,
                    },
                })
            }
            Backend::Sqlite => {
                let Some(path) = url::sqlite_file(&self.connect_url) else {
                    // An in-memory database cannot be shared.
                    return Ok(RunLock { _held: Held::None });
                };
                let lock_path = format!("{path}.lock");
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(&lock_path)
                    .map_err(|error| StoreError::Connect {
                        url: self.url.clone(),
                        reason: format!("cannot open {lock_path}: {}", error.kind()),
                    })?;
                match file.try_lock() {
                    Ok(()) => Ok(RunLock {
                        _held: Held::File { _locked: file },
                    }),
                    Err(std::fs::TryLockError::WouldBlock) => Err(already()),
                    Err(std::fs::TryLockError::Error(error)) => Err(StoreError::Connect {
                        url: self.url.clone(),
                        reason: format!("cannot lock {lock_path}: {}", error.kind()),
                    }),
                }
            }
        }
    }

    /// Completes when a transaction adds outbox rows (a deliverer's wake-up call).
    /// Wakes the deliverers: rows held back became due.
    pub fn wake_deliverers(&self) {
        self.outbox_changed.notify_waiters();
    }

    pub fn outbox_changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.outbox_changed.notified()
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies the migrations this binary carries; refuses a database of a newer schema.
    pub async fn migrate(&self) -> Result<usize> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&self.pool)
            .await
            .map_err(|error| match error {
                MigrateError::VersionMissing(version) => StoreError::NewerSchema {
                    url: self.url.clone(),
                    version,
                },
                other => StoreError::Migrate {
                    url: self.url.clone(),
                    reason: other.to_string(),
                },
            })?;
        Ok(migrator.iter().count())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }

    /// Makes the next [`Store::process`] calls fail at `point` (tests only).
    pub fn fail_at(&self, point: Option<FailPoint>) {
        if let Ok(mut fail_at) = self.fail_at.lock() {
            *fail_at = point;
        }
    }

    /// Makes every [`Store::process`] call for one chat fail or panic (tests only: a bad
    /// update must not stop the others).
    pub fn break_chat(&self, chat: Option<(&str, Breakage)>) {
        if let Ok(mut broken) = self.broken_chat.lock() {
            *broken = chat.map(|(chat, how)| (chat.to_string(), how));
        }
    }

    fn check_fail(&self, point: FailPoint) -> Result<()> {
        match self.fail_at.lock().map(|fail_at| *fail_at) {
            Ok(Some(wanted)) if wanted == point => Err(StoreError::Injected(point)),
            _ => Ok(()),
        }
    }

    fn stripe(&self, channel: &str, chat_id: &str) -> &tokio::sync::Mutex<()> {
        let mut hasher = DefaultHasher::new();
        (channel, chat_id).hash(&mut hasher);
        &self.stripes[(hasher.finish() as usize) % STRIPES]
    }

    async fn begin(&self) -> Result<Transaction<'static, Any>> {
        Ok(match self.backend {
            // Take the write lock at once: a deferred transaction that reads and then
            // writes can fail with SQLITE_BUSY instead of waiting.
            Backend::Sqlite => self.pool.begin_with("BEGIN IMMEDIATE").await?,
            Backend::Postgres => self.pool.begin().await?,
        })
    }

    /// Runs one inbound message through the engine in one transaction.
    pub async fn process(&self, bundle: &Bundle, inbound: Inbound) -> Result<Processed> {
        let broken = self
            .broken_chat
            .lock()
            .ok()
            .and_then(|broken| broken.clone())
            .filter(|(chat, _)| *chat == inbound.chat_id);
        match broken {
            Some((_, Breakage::Error)) => {
                return Err(StoreError::Injected(FailPoint::BeforeCommit));
            }
            Some((_, Breakage::Panic)) => panic!("a panic injected for one chat (tests only)"),
            None => {}
        }
        // The lock is the first await: calls for one conversation queue in call order.
        let _turn = self.stripe(&inbound.channel, &inbound.chat_id).lock().await;
        let mut tx = self.begin().await?;
        let now = millis(inbound.now);
        if let Some(update_id) = &inbound.update_id {
            let inserted = sqlx::query(
                "INSERT INTO processed_updates (channel, update_id, at) VALUES ($1, $2, $3) \
                 ON CONFLICT (channel, update_id) DO NOTHING",
            )
            .bind(&inbound.channel)
            .bind(update_id)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if inserted == 0 {
                tx.rollback().await?;
                return Ok(Processed::Duplicate);
            }
        }
        let fresh = State::new(bundle, inbound.interface_lang.as_deref());
        let fresh_json = serde_json::to_string(&fresh)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        sqlx::query(
            "INSERT INTO conversations (channel, chat_id, lang, status, state, created_at, updated_at) \
             VALUES ($1, $2, $3, 'bot', $4, $5, $5) ON CONFLICT (channel, chat_id) DO NOTHING",
        )
        .bind(&inbound.channel)
        .bind(&inbound.chat_id)
        .bind(&fresh.lang)
        .bind(&fresh_json)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        let select = match self.backend {
            Backend::Sqlite => {
                "SELECT id, state, status, outcome_counted FROM conversations WHERE channel = $1 AND chat_id = $2"
            }
            Backend::Postgres => {
                "SELECT id, state, status, outcome_counted FROM conversations WHERE channel = $1 AND chat_id = $2 FOR UPDATE"
            }
        };
        let row = sqlx::query(select)
            .bind(&inbound.channel)
            .bind(&inbound.chat_id)
            .fetch_one(&mut *tx)
            .await?;
        let conversation_id: i64 = row.try_get(0)?;
        let stored: String = row.try_get(1)?;
        let previous_status: String = row.try_get(2)?;
        let mut outcome_counted = row.try_get::<i64, _>(3)? != 0;
        let state: State = serde_json::from_str(&stored).unwrap_or_else(|_| {
            // A state this binary cannot read (say, written by a newer version) starts over
            // rather than locking the citizen out.
            tracing::warn!(
                conversation_id,
                "stored conversation state unreadable; starting over"
            );
            fresh.clone()
        });
        let was_emergency = state.emergency;
        let citizen_line = describe(&inbound.input, &state);
        let author = match &inbound.input {
            Input::VolunteerJoined(_)
            | Input::FromVolunteer(_)
            | Input::VolunteerReleased
            | Input::VolunteerClosed => "volunteer",
            _ => "citizen",
        };
        let status_after = match &inbound.input {
            Input::VolunteerJoined(_) | Input::FromVolunteer(_) => Some("volunteer"),
            Input::VolunteerReleased => Some("waiting"),
            _ => None,
        };
        let mut input = inbound.input;
        if matches!(input, Input::Button(_))
            && let Some(tag) = &inbound.button_tag
            && *tag != engine::button_tag(&inbound.chat_id, &state)
        {
            input = Input::StaleButton;
        }
        let (state, outputs) = engine::step(bundle, state, input, inbound.now);
        self.check_fail(FailPoint::AfterEngine)?;

        let forget = outputs.contains(&Output::Forget);
        if forget {
            self.erase_in(&mut tx, conversation_id, now, "citizen")
                .await?;
        } else {
            self.transcript_line(&mut tx, conversation_id, now, author, &citizen_line)
                .await?;
        }
        let delivery = Delivery::compose(&outputs).map(|mut delivery| {
            delivery.tag = engine::button_tag(&inbound.chat_id, &state);
            delivery.lang = state.lang.clone();
            delivery
        });
        let mut outbox_id = None;
        if let Some(delivery) = &delivery {
            let payload = serde_json::to_string(delivery)
                .map_err(|error| StoreError::Corrupt(error.to_string()))?;
            outbox_id = Some(
                self.enqueue(
                    &mut tx,
                    Some(conversation_id),
                    &inbound.channel,
                    &inbound.chat_id,
                    &payload,
                    now,
                )
                .await?,
            );
            if !forget {
                self.transcript_line(&mut tx, conversation_id, now, "bot", &delivery.text)
                    .await?;
            }
        }
        self.check_fail(FailPoint::AfterTranscript)?;

        let week = iso_week(inbound.now);
        let comune = state.comune_id.clone().unwrap_or_else(|| "-".into());
        let current_need = state.vars.get("need").cloned().unwrap_or_default();
        let mut outcomes: Vec<(&str, String)> = Vec::new();
        if state.emergency && !was_emergency {
            outcomes.push(("emergency", current_need.clone()));
        }
        for output in &outputs {
            match output {
                Output::Suggestions { need, .. } => outcomes.push(("suggested", need.clone())),
                Output::Handover(handover) => {
                    let summary = serde_json::to_string(&handover.summary)
                        .map_err(|error| StoreError::Corrupt(error.to_string()))?;
                    // A conversation has at most one open case: asked again, it is
                    // announced again (marked an emergency if this request is one).
                    let open: Option<i64> = sqlx::query(
                        "SELECT id FROM handovers WHERE conversation_id = $1 AND status <> 'closed' \
                         ORDER BY id DESC LIMIT 1",
                    )
                    .bind(conversation_id)
                    .fetch_optional(&mut *tx)
                    .await?
                    .map(|row| row.try_get(0))
                    .transpose()?;
                    let (case, again) = match open {
                        Some(case) => {
                            if handover.emergency {
                                sqlx::query("UPDATE handovers SET emergency = 1 WHERE id = $1")
                                    .bind(case)
                                    .execute(&mut *tx)
                                    .await?;
                            }
                            (case, true)
                        }
                        None => {
                            let case: i64 = sqlx::query(
                                "INSERT INTO handovers (conversation_id, need, note, comune, lang, summary, in_hours, emergency, status, created_at) \
                                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'waiting', $9) RETURNING id",
                            )
                            .bind(conversation_id)
                            .bind(&handover.need)
                            .bind(&handover.note)
                            .bind(state.comune_id.clone())
                            .bind(&handover.lang)
                            .bind(&summary)
                            .bind(i64::from(handover.in_hours))
                            .bind(i64::from(handover.emergency))
                            .bind(now)
                            .fetch_one(&mut *tx)
                            .await?
                            .try_get(0)?;
                            (case, false)
                        }
                    };
                    let payload =
                        serde_json::json!({ "kind": "handover", "case": case, "again": again })
                            .to_string();
                    self.enqueue(
                        &mut tx,
                        Some(conversation_id),
                        "volunteers",
                        &conversation_id.to_string(),
                        &payload,
                        now,
                    )
                    .await?;
                    if again {
                        continue;
                    }
                    outcomes.push(("handed_over", handover.need.clone()));
                }
                Output::ToVolunteer { text, alert } => {
                    let payload = serde_json::json!({ "kind": "relay", "conversation": conversation_id, "text": text, "alert": alert }).to_string();
                    self.enqueue(
                        &mut tx,
                        Some(conversation_id),
                        "volunteers",
                        &conversation_id.to_string(),
                        &payload,
                        now,
                    )
                    .await?;
                }
                _ => {}
            }
        }
        if outputs.contains(&Output::Ended) && !outcome_counted && outcomes.is_empty() {
            outcomes.push(("abandoned", current_need));
        }
        for (outcome, need) in &outcomes {
            self.count(&mut tx, &week, &comune, need, &state.lang, outcome)
                .await?;
            outcome_counted = true;
        }
        if state.mode != Mode::Ended && outputs.contains(&Output::Forget) {
            outcome_counted = false;
        }

        let status = match status_after {
            Some(status) if state.mode == Mode::WithVolunteer => status,
            _ => status_of(&state, Some(&previous_status)),
        };
        let state_json = serde_json::to_string(&state)
            .map_err(|error| StoreError::Corrupt(error.to_string()))?;
        sqlx::query(
            "UPDATE conversations SET state = $1, lang = $2, status = $3, consent = $4, flow = $5, step = $6, \
             outcome_counted = $7, updated_at = $8, closed_at = $9 WHERE id = $10",
        )
        .bind(&state_json)
        .bind(&state.lang)
        .bind(status)
        .bind(i64::from(state.consent))
        .bind(&state.flow)
        .bind(&state.step)
        .bind(i64::from(outcome_counted))
        .bind(now)
        .bind((status == "closed").then_some(now))
        .bind(conversation_id)
        .execute(&mut *tx)
        .await?;
        self.check_fail(FailPoint::BeforeCommit)?;
        tx.commit().await?;
        self.outbox_changed.notify_waiters();
        if forget {
            self.scrub().await;
        }
        Ok(Processed::Done(Turn {
            conversation_id,
            outputs,
            outbox_id,
            delivery,
        }))
    }

    async fn transcript_line(
        &self,
        tx: &mut Transaction<'static, Any>,
        conversation_id: i64,
        at: i64,
        author: &str,
        text: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO transcript (conversation_id, at, author, text) VALUES ($1, $2, $3, $4)",
        )
        .bind(conversation_id)
        .bind(at)
        .bind(author)
        .bind(text)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    async fn enqueue(
        &self,
        tx: &mut Transaction<'static, Any>,
        conversation_id: Option<i64>,
        channel: &str,
        chat_id: &str,
        payload: &str,
        now: i64,
    ) -> Result<i64> {
        Ok(sqlx::query(
            "INSERT INTO outbox (conversation_id, channel, chat_id, payload, next_attempt_at, created_at) \
             VALUES ($1, $2, $3, $4, $5, $5) RETURNING id",
        )
        .bind(conversation_id)
        .bind(channel)
        .bind(chat_id)
        .bind(payload)
        .bind(now)
        .fetch_one(&mut **tx)
        .await?
        .try_get(0)?)
    }

    async fn count(
        &self,
        tx: &mut Transaction<'static, Any>,
        week: &str,
        comune: &str,
        need: &str,
        lang: &str,
        outcome: &str,
    ) -> Result<()> {
        sqlx::query(
            "INSERT INTO need_stats (week, comune, need, lang, outcome, count) VALUES ($1, $2, $3, $4, $5, 1) \
             ON CONFLICT (week, comune, need, lang, outcome) DO UPDATE SET count = need_stats.count + 1",
        )
        .bind(week)
        .bind(comune)
        .bind(if need.is_empty() { "-" } else { need })
        .bind(lang)
        .bind(outcome)
        .execute(&mut **tx)
        .await?;
        Ok(())
    }

    /// Counts a conversation left without an outcome, from its stored state (need,
    /// comune and language; an unreadable state counts with none of them).
    async fn count_abandoned(
        &self,
        tx: &mut Transaction<'static, Any>,
        state_json: &str,
        at: DateTime<Utc>,
    ) -> Result<()> {
        let state: Option<State> = serde_json::from_str(state_json).ok();
        let need = state
            .as_ref()
            .and_then(|s| s.vars.get("need").cloned())
            .unwrap_or_default();
        let comune = state
            .as_ref()
            .and_then(|s| s.comune_id.clone())
            .unwrap_or_else(|| "-".into());
        let lang = state
            .as_ref()
            .map(|s| s.lang.clone())
            .unwrap_or_else(|| "it".into());
        self.count(tx, &iso_week(at), &comune, &need, &lang, "abandoned")
            .await
    }

    /// Erases a conversation's personal data inside a transaction, keeping the row (the
    /// chat must still receive the confirmation): transcript, pending messages, case
    /// summaries; and asks the volunteers' side to redact what it posted of the cases.
    /// `reason` (citizen, operator, retention) tells the volunteers why.
    async fn erase_in(
        &self,
        tx: &mut Transaction<'static, Any>,
        conversation_id: i64,
        at: i64,
        reason: &str,
    ) -> Result<()> {
        sqlx::query("DELETE FROM transcript WHERE conversation_id = $1")
            .bind(conversation_id)
            .execute(&mut **tx)
            .await?;
        // Sent rows too: they hold the bot's answers and the citizen's relayed words.
        sqlx::query("DELETE FROM outbox WHERE conversation_id = $1")
            .bind(conversation_id)
            .execute(&mut **tx)
            .await?;
        sqlx::query(
            "DELETE FROM case_notes WHERE case_id IN \
             (SELECT id FROM handovers WHERE conversation_id = $1)",
        )
        .bind(conversation_id)
        .execute(&mut **tx)
        .await?;
        // The chat's updates set aside as dead letters.
        sqlx::query(
            "DELETE FROM dead_letters WHERE EXISTS (SELECT 1 FROM conversations c \
             WHERE c.id = $1 AND c.channel = dead_letters.channel AND c.chat_id = dead_letters.chat)",
        )
        .bind(conversation_id)
        .execute(&mut **tx)
        .await?;
        // What volunteers wrote in these cases' rooms and the bot has not handled yet,
        // and what was set aside, go too (a handled row holds no text).
        for table in ["volunteer_inbox", "dead_letters"] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE room IN \
                 (SELECT room FROM handovers WHERE conversation_id = $1 AND room IS NOT NULL)"
            )))
            .bind(conversation_id)
            .execute(&mut **tx)
            .await?;
        }
        // The volunteers' side redacts what it posted of these cases and closes them
        // there too (the rows stand alone: nothing links them to the chat any more).
        let cases = sqlx::query("SELECT id FROM handovers WHERE conversation_id = $1 ORDER BY id")
            .bind(conversation_id)
            .fetch_all(&mut **tx)
            .await?;
        for row in cases {
            let case: i64 = row.try_get(0)?;
            let payload =
                serde_json::json!({ "kind": "forget", "case": case, "reason": reason }).to_string();
            self.enqueue(
                tx,
                None,
                "volunteers",
                &format!("case-{case}"),
                &payload,
                at,
            )
            .await?;
        }
        sqlx::query("UPDATE handovers SET summary = '[]', note = '', conversation_id = NULL, status = 'closed' WHERE conversation_id = $1")
            .bind(conversation_id)
            .execute(&mut **tx)
            .await?;
        Ok(())
    }

    /// `sportello forget --chat`: erases everything of one chat at once.
    pub async fn forget(&self, channel: &str, chat_id: &str) -> Result<bool> {
        let _turn = self.stripe(channel, chat_id).lock().await;
        let mut tx = self.begin().await?;
        let row = sqlx::query("SELECT id FROM conversations WHERE channel = $1 AND chat_id = $2")
            .bind(channel)
            .bind(chat_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(false);
        };
        let id: i64 = row.try_get(0)?;
        self.erase_in(&mut tx, id, millis(Utc::now()), "operator")
            .await?;
        sqlx::query("DELETE FROM conversations WHERE id = $1")
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        self.scrub().await;
        Ok(true)
    }

    /// Erases the personal data of conversations closed, or silent, for more than
    /// `retention_days`; what they never reached is counted as abandoned first.
    pub async fn purge(&self, now: DateTime<Utc>, retention_days: u32) -> Result<PurgeReport> {
        let cutoff = millis(now) - i64::from(retention_days) * 24 * 3600 * 1000;
        let mut report = PurgeReport::default();
        let expired = sqlx::query(
            "SELECT id, channel, chat_id, state, outcome_counted, updated_at FROM conversations \
             WHERE (status = 'closed' AND closed_at < $1) OR (status <> 'closed' AND updated_at < $1)",
        )
        .bind(cutoff)
        .fetch_all(&self.pool)
        .await?;
        for row in expired {
            let id: i64 = row.try_get(0)?;
            let channel: String = row.try_get(1)?;
            let chat_id: String = row.try_get(2)?;
            let _turn = self.stripe(&channel, &chat_id).lock().await;
            let mut tx = self.begin().await?;
            // Re-read under the lock: the citizen may have written in the meantime.
            let still = sqlx::query(
                "SELECT state, outcome_counted, updated_at FROM conversations WHERE id = $1 \
                 AND ((status = 'closed' AND closed_at < $2) OR (status <> 'closed' AND updated_at < $2))",
            )
            .bind(id)
            .bind(cutoff)
            .fetch_optional(&mut *tx)
            .await?;
            let Some(still) = still else {
                tx.rollback().await?;
                continue;
            };
            let counted = still.try_get::<i64, _>(1)? != 0;
            if !counted {
                let updated_at: i64 = still.try_get(2)?;
                self.count_abandoned(
                    &mut tx,
                    &still.try_get::<String, _>(0)?,
                    from_millis(updated_at),
                )
                .await?;
                report.abandoned += 1;
            }
            self.erase_in(&mut tx, id, millis(now), "retention").await?;
            sqlx::query("DELETE FROM conversations WHERE id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            report.erased += 1;
        }
        // The ids of handled updates guard against a redelivery, which Telegram makes
        // within a day: they are kept for their own window, whatever the retention.
        let dedupe_cutoff = millis(now) - DEDUPE_DAYS * 24 * 3600 * 1000;
        sqlx::query("DELETE FROM processed_updates WHERE at < $1")
            .bind(dedupe_cutoff)
            .execute(&self.pool)
            .await?;
        // The newest event of each room stays: reading a room's history after a
        // restart stops there (without it, old events would be handled again).
        sqlx::query(
            "DELETE FROM volunteer_inbox WHERE done_at < $1 \
             AND seq NOT IN (SELECT MAX(seq) FROM volunteer_inbox GROUP BY room)",
        )
        .bind(dedupe_cutoff)
        .execute(&self.pool)
        .await?;
        sqlx::query("DELETE FROM dead_letters WHERE at < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await?;
        // Delivered rows are needed no more: a day after, they go (they hold the bot's
        // answers and the citizen's relayed words).
        let sent_cutoff = millis(now) - SENT_KEPT_HOURS * 3600 * 1000;
        let pruned = sqlx::query("DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < $1")
            .bind(sent_cutoff)
            .execute(&self.pool)
            .await?;
        report.erased_sent = pruned.rows_affected();
        if report.erased > 0 || report.erased_sent > 0 {
            self.scrub().await;
        }
        Ok(report)
    }

    /// After an erasure, on SQLite: the write-ahead log still holds the erased pages
    /// until a checkpoint copies it into the database (where `secure_delete` has zeroed
    /// them) and truncates it. Best effort: a busy reader only delays it to the next one.
    async fn scrub(&self) {
        if self.backend() != Backend::Sqlite {
            return;
        }
        if let Err(error) = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(&self.pool)
            .await
        {
            tracing::warn!(reason = %url::plain_reason(&error), "the WAL checkpoint after an erasure failed");
        }
    }

    pub async fn conversation(
        &self,
        channel: &str,
        chat_id: &str,
    ) -> Result<Option<ConversationRow>> {
        let row = sqlx::query("SELECT id, status, state, updated_at, closed_at FROM conversations WHERE channel = $1 AND chat_id = $2")
            .bind(channel)
            .bind(chat_id)
            .fetch_optional(&self.pool)
            .await?;
        let Some(row) = row else { return Ok(None) };
        let state: String = row.try_get(2)?;
        Ok(Some(ConversationRow {
            id: row.try_get(0)?,
            status: row.try_get(1)?,
            state: serde_json::from_str(&state)
                .map_err(|error| StoreError::Corrupt(error.to_string()))?,
            updated_at: from_millis(row.try_get(3)?),
            closed_at: row.try_get::<Option<i64>, _>(4)?.map(from_millis),
        }))
    }

    /// The transcript of a chat, oldest first: (author, text).
    pub async fn transcript(&self, channel: &str, chat_id: &str) -> Result<Vec<(String, String)>> {
        let rows = sqlx::query(
            "SELECT t.author, t.text FROM transcript t JOIN conversations c ON c.id = t.conversation_id \
             WHERE c.channel = $1 AND c.chat_id = $2 ORDER BY t.id",
        )
        .bind(channel)
        .bind(chat_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?)))
            .collect()
    }

    /// The rows of `channel` to deliver now: for each chat, its oldest row not yet
    /// delivered nor given up, when it is due. A later row of a chat waits for the
    /// earlier ones, so each chat receives its messages in order.
    pub async fn outbox_due(
        &self,
        channel: &str,
        now: DateTime<Utc>,
        limit: i64,
    ) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query(
            "SELECT o.id, o.conversation_id, o.channel, o.chat_id, o.payload, o.attempts FROM outbox o \
             WHERE o.channel = $1 AND o.sent_at IS NULL AND o.dropped_at IS NULL AND o.next_attempt_at <= $2 \
             AND NOT EXISTS (SELECT 1 FROM outbox p WHERE p.channel = o.channel AND p.chat_id = o.chat_id \
                             AND p.sent_at IS NULL AND p.dropped_at IS NULL AND p.id < o.id) \
             ORDER BY o.id LIMIT $3",
        )
        .bind(channel)
        .bind(millis(now))
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(outbox_row).collect()
    }

    /// Outbox rows of one chat not yet delivered nor given up, oldest first.
    pub async fn outbox_unsent(&self, channel: &str, chat_id: &str) -> Result<Vec<OutboxRow>> {
        let rows = sqlx::query(
            "SELECT id, conversation_id, channel, chat_id, payload, attempts FROM outbox \
             WHERE channel = $1 AND chat_id = $2 AND sent_at IS NULL AND dropped_at IS NULL ORDER BY id",
        )
        .bind(channel)
        .bind(chat_id)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(outbox_row).collect()
    }

    /// Replaces a row's payload with what is still to deliver (a long message whose
    /// first pieces went out), so that a retry does not send them twice.
    pub async fn outbox_progress(&self, id: i64, payload: &str) -> Result<()> {
        sqlx::query("UPDATE outbox SET payload = $1 WHERE id = $2")
            .bind(payload)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Gives a row up for good (a message Telegram refuses whatever we do).
    pub async fn outbox_dropped(
        &self,
        id: i64,
        now: DateTime<Utc>,
        error_kind: &str,
    ) -> Result<()> {
        sqlx::query("UPDATE outbox SET dropped_at = $1, attempts = attempts + 1, last_error = $2 WHERE id = $3")
            .bind(millis(now))
            .bind(error_kind)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The citizen blocked the bot: the conversation closes, nothing more is sent to
    /// them, and a volunteer who has the case is told. True when one had it.
    pub async fn close_blocked(
        &self,
        channel: &str,
        chat_id: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let _turn = self.stripe(channel, chat_id).lock().await;
        let mut tx = self.begin().await?;
        let at = millis(now);
        sqlx::query("UPDATE outbox SET dropped_at = $1, last_error = 'blocked' WHERE channel = $2 AND chat_id = $3 AND sent_at IS NULL AND dropped_at IS NULL")
            .bind(at)
            .bind(channel)
            .bind(chat_id)
            .execute(&mut *tx)
            .await?;
        let row = sqlx::query("SELECT id, status, outcome_counted, state FROM conversations WHERE channel = $1 AND chat_id = $2")
            .bind(channel)
            .bind(chat_id)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.commit().await?;
            return Ok(false);
        };
        let id: i64 = row.try_get(0)?;
        let status: String = row.try_get(1)?;
        if row.try_get::<i64, _>(2)? == 0 {
            self.count_abandoned(&mut tx, &row.try_get::<String, _>(3)?, now)
                .await?;
        }
        let volunteer = status == "waiting" || status == "volunteer";
        if volunteer {
            let payload = serde_json::json!({ "kind": "blocked", "conversation": id }).to_string();
            self.enqueue(
                &mut tx,
                Some(id),
                "volunteers",
                &id.to_string(),
                &payload,
                at,
            )
            .await?;
        }
        sqlx::query("UPDATE conversations SET status = 'closed', closed_at = $1, updated_at = $1, outcome_counted = 1 WHERE id = $2")
            .bind(at)
            .bind(id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(volunteer)
    }

    /// Stores an update before the channel is told it arrived; false if it was there.
    pub async fn inbox_put(
        &self,
        channel: &str,
        update_id: i64,
        payload: &str,
        now: DateTime<Utc>,
    ) -> Result<bool> {
        let inserted = sqlx::query(
            "INSERT INTO inbox (channel, update_id, payload, received_at) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (channel, update_id) DO NOTHING",
        )
        .bind(channel)
        .bind(update_id)
        .bind(payload)
        .bind(millis(now))
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(inserted > 0)
    }

    /// Stores a batch of updates in one transaction.
    pub async fn inbox_put_all(
        &self,
        channel: &str,
        updates: &[(i64, String)],
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        for (update_id, payload) in updates {
            sqlx::query(
                "INSERT INTO inbox (channel, update_id, payload, received_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (channel, update_id) DO NOTHING",
            )
            .bind(channel)
            .bind(update_id)
            .bind(payload)
            .bind(millis(now))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// The oldest stored updates of a channel, in update order: (update id, payload,
    /// attempts so far).
    pub async fn inbox_batch(&self, channel: &str, limit: i64) -> Result<Vec<(i64, String, i64)>> {
        let rows = sqlx::query(
            "SELECT update_id, payload, attempts FROM inbox WHERE channel = $1 ORDER BY update_id LIMIT $2",
        )
        .bind(channel)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
            .collect()
    }

    /// An update failed once more.
    pub async fn inbox_failed(&self, channel: &str, update_id: i64) -> Result<()> {
        sqlx::query(
            "UPDATE inbox SET attempts = attempts + 1 WHERE channel = $1 AND update_id = $2",
        )
        .bind(channel)
        .bind(update_id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// An update that failed too many times leaves the queue for `dead_letters`, with
    /// the kind of its error and its chat (erased with the chat's data).
    pub async fn inbox_dead(
        &self,
        channel: &str,
        update_id: i64,
        chat: Option<&str>,
        error: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query(
            "INSERT INTO dead_letters (channel, key, chat, payload, error, attempts, at) \
             SELECT channel, CAST(update_id AS TEXT), $3, payload, $4, attempts + 1, $5 \
             FROM inbox WHERE channel = $1 AND update_id = $2",
        )
        .bind(channel)
        .bind(update_id)
        .bind(chat)
        .bind(error)
        .bind(millis(now))
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM inbox WHERE channel = $1 AND update_id = $2")
            .bind(channel)
            .bind(update_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn inbox_done(&self, channel: &str, update_id: i64) -> Result<()> {
        sqlx::query("DELETE FROM inbox WHERE channel = $1 AND update_id = $2")
            .bind(channel)
            .bind(update_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The highest update id stored or processed for a channel, to resume polling after it.
    pub async fn last_update_id(&self, channel: &str) -> Result<Option<i64>> {
        let row = sqlx::query("SELECT MAX(update_id) FROM inbox WHERE channel = $1")
            .bind(channel)
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<Option<i64>, _>(0)?)
    }

    /// Cases waiting for a volunteer.
    pub async fn handovers_waiting(&self) -> Result<i64> {
        let row = sqlx::query("SELECT COUNT(*) FROM handovers WHERE status = 'waiting'")
            .fetch_one(&self.pool)
            .await?;
        Ok(row.try_get::<i64, _>(0)?)
    }

    pub async fn outbox_sent(&self, id: i64, now: DateTime<Utc>) -> Result<()> {
        sqlx::query("UPDATE outbox SET sent_at = $1, attempts = attempts + 1 WHERE id = $2")
            .bind(millis(now))
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Records a failed attempt; the row is tried again at `next_attempt`.
    pub async fn outbox_failed(
        &self,
        id: i64,
        next_attempt: DateTime<Utc>,
        error_kind: &str,
    ) -> Result<()> {
        sqlx::query("UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2 WHERE id = $3")
            .bind(millis(next_attempt))
            .bind(error_kind)
            .bind(id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn handovers(&self) -> Result<Vec<HandoverRow>> {
        let rows = sqlx::query("SELECT id, conversation_id, need, comune, lang, status, summary FROM handovers ORDER BY id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|row| {
                Ok(HandoverRow {
                    case: row.try_get(0)?,
                    conversation_id: row.try_get(1)?,
                    need: row.try_get(2)?,
                    comune: row.try_get(3)?,
                    lang: row.try_get(4)?,
                    status: row.try_get(5)?,
                    summary: row.try_get(6)?,
                })
            })
            .collect()
    }

    /// The anonymous statistics of the weeks from `from` to `to` ("2026-W01"), inclusive.
    pub async fn stats(&self, from: &str, to: &str) -> Result<Vec<StatRow>> {
        let rows = sqlx::query(
            "SELECT week, comune, need, lang, outcome, count FROM need_stats WHERE week >= $1 AND week <= $2 \
             ORDER BY week, comune, need, lang, outcome",
        )
        .bind(from)
        .bind(to)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(StatRow {
                    week: row.try_get(0)?,
                    comune: row.try_get(1)?,
                    need: row.try_get(2)?,
                    lang: row.try_get(3)?,
                    outcome: row.try_get(4)?,
                    count: row.try_get(5)?,
                })
            })
            .collect()
    }
}
