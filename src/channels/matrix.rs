//! The volunteers' side, on Matrix (matrix-sdk 0.18).
//!
//! The bot logs in once, then restores its session (same device) from
//! `SPORTELLO_DATA_DIR`, next to the SQLite state and crypto store that encrypted rooms
//! need: losing that store would lock the bot out of them, so a session without its
//! store is refused. History is skipped only at the very first login.
//!
//! What volunteers do goes through an inbox, as the citizens' updates do: each sync's
//! timeline events (messages, reactions, events not decrypted yet) are stored, keyed by
//! event id, before anything acts on them, then handled from the store in order of
//! arrival; an error is a retry, a crash loses nothing. matrix-sdk saves the sync token
//! before the bot stores the events, and a sync gives a room only its last events
//! (`limited`): so at start, after a failed store, and for every limited room, the bot
//! reads the rooms' history (`/messages`) back to the last event it knows.
//!
//! A case is a handover: its card goes to the coordination room; `!prendi N` or a
//! reaction on the card claims it (the first claim wins, in the database); the bot
//! creates a room for the case, invites the claimer and relays both ways; `!chiudi`,
//! `!rilascia`, `!nota`, `!info`. What the bot posts with a case's data is recorded, so
//! that erasing the conversation (`/dimentica`) redacts it on Matrix too. Every
//! message the bot sends carries a transaction id derived from what caused it (an outbox
//! row, an event), so a retry is never a second message; a volunteer's message reaches
//! the citizen once, deduped by its event id.
//!
//! Nothing here logs a citizen's words, a volunteer's words or a password.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::config::{RequestConfig, SyncSettings};
use matrix_sdk::deserialized_responses::{TimelineEvent, TimelineEventKind};
use matrix_sdk::room::MessagesOptions;
use matrix_sdk::ruma::api::client::filter::{FilterDefinition, RoomEventFilter, RoomFilter};
use matrix_sdk::ruma::api::client::room::create_room::v3::{
    Request as CreateRoomRequest, RoomPreset,
};
use matrix_sdk::ruma::api::client::sync::sync_events::v3::Filter;
use matrix_sdk::ruma::events::room::encrypted::OriginalSyncRoomEncryptedEvent;
use matrix_sdk::ruma::events::room::encryption::RoomEncryptionEventContent;
use matrix_sdk::ruma::events::room::member::StrippedRoomMemberEvent;
use matrix_sdk::ruma::events::room::message::{MessageType, RoomMessageEventContent};
use matrix_sdk::ruma::events::{AnySyncMessageLikeEvent, AnySyncTimelineEvent};
use matrix_sdk::ruma::events::{InitialStateEvent, room::power_levels::UserPowerLevel};
use matrix_sdk::ruma::serde::Raw;
use matrix_sdk::ruma::{
    EventId, OwnedEventId, OwnedRoomId, OwnedTransactionId, OwnedUserId, RoomAliasId, RoomId,
    UserId,
};
use matrix_sdk::{Client, Room, RoomState};
use tokio::sync::watch;

use crate::config::Secret;
use crate::dialogue::Bundle;
use crate::engine::Input;
use crate::store::{
    Case, Claim, Inbound, NewVolunteerEvent, OutboxRow, Store, StoreError, VolunteerRow,
};

/// The store's channel name for what is owed to the volunteers.
pub const VOLUNTEERS: &str = "volunteers";

/// How long matrix-sdk retries one request (a homeserver down, slow, or answering 429
/// with its retry_after) before the send fails and the outbox takes over: then the
/// citizen is told that the answer is delayed, and the row is retried with the same
/// transaction id. matrix-sdk's default is to retry forever.
const REQUEST_RETRY_TIME: Duration = Duration::from_secs(10);

/// How many times a volunteer's event is handled before it is set aside as a dead
/// letter. With the waits below (1 s doubling to at most 10 minutes) that is about
/// 40 minutes: a homeserver or database back within that time loses nothing, and a
/// room key that comes within it still decrypts the event.
const EVENT_ATTEMPTS: i64 = 12;
const EVENT_RETRY_MAX: Duration = Duration::from_secs(600);

/// How far back a room's history is read when the bot knows none of its events:
/// a case room is read from its start (it is made at the claim), up to this many.
const HISTORY_MAX_EVENTS: usize = 1000;

/// How many cases are delivered to at once.
const DELIVERY_TASKS: usize = 16;
/// At most this many of a citizen's queued messages, and characters, in one Matrix
/// message.
const COALESCED_MESSAGES: usize = 10;
const COALESCED_LENGTH: usize = 3000;

#[derive(Debug, Clone)]
pub struct MatrixSettings {
    pub homeserver: String,
    pub user: String,
    pub password: Secret,
    /// The coordination room: an id (`!abc:server`) or an alias (`#volontari:server`).
    pub volunteers_room: String,
    pub encrypted: bool,
    pub data_dir: PathBuf,
    /// Users who may claim whatever their power level.
    pub volunteers: Vec<String>,
    /// The power level in the coordination room that makes a member a volunteer.
    pub volunteer_power_level: i64,
    /// Tell the citizen the volunteer's display name instead of "un volontario".
    pub show_volunteer_name: bool,
    /// The power level in the coordination room that makes a member a coordinator, who
    /// may act in every case room; a volunteer acts only in the cases they hold.
    pub coordinator_power_level: i64,
    /// Encrypts the Matrix store (session state and crypto keys) on disk.
    pub store_passphrase: Option<Secret>,
}

/// What a Matrix user may do for the bot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Role {
    Nobody,
    /// Claims cases, and speaks for the bot in the cases they hold.
    Volunteer,
    /// Also speaks and runs commands in any case room.
    Coordinator,
}

pub struct Matrix {
    client: Client,
    settings: MatrixSettings,
    store: Arc<Store>,
    bundle: Arc<Bundle>,
    coordination: OwnedRoomId,
    me: OwnedUserId,
    /// The rooms' history must be read before the next sync's events are stored: at
    /// start, and after the events of a sync could not be stored.
    history_due: AtomicBool,
}

/// A volunteer's event as the inbox keeps it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum VolunteerEvent {
    Text {
        sender: String,
        body: String,
    },
    Reaction {
        sender: String,
        card: String,
    },
    /// Not decrypted yet: the encrypted event, decrypted when its key is there.
    Encrypted {
        raw: String,
    },
}

/// Why an event must be handled again: the kind of the error, never its text.
#[derive(Debug)]
struct Retry(String);

impl From<StoreError> for Retry {
    fn from(error: StoreError) -> Retry {
        Retry(format!("store: {}", error_kind(&error)))
    }
}

type Handled = Result<(), Retry>;

fn txn(id: String) -> OwnedTransactionId {
    id.into()
}

impl Matrix {
    /// Logs in (first time) or restores the session, and finds the coordination room.
    pub async fn connect(
        settings: MatrixSettings,
        store: Arc<Store>,
        bundle: Arc<Bundle>,
    ) -> anyhow::Result<Arc<Matrix>> {
        let store_dir = settings.data_dir.join("matrix-store");
        let session_file = settings.data_dir.join("matrix-session.json");
        if session_file.exists() && !store_dir.exists() {
            bail!(
                "{} exists but the Matrix crypto store {} is missing: restore it from the backup (logging in again as a new device would lose the encrypted rooms)",
                session_file.display(),
                store_dir.display()
            );
        }
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("cannot create {}", settings.data_dir.display()))?;
        let client = Client::builder()
            .homeserver_url(&settings.homeserver)
            .sqlite_store(
                &store_dir,
                settings.store_passphrase.as_ref().map(|secret| secret.expose()),
            )
            .request_config(RequestConfig::new().max_retry_time(REQUEST_RETRY_TIME))
            .build()
            .await
            .context("cannot reach the Matrix homeserver or open the Matrix store (is SPORTELLO_MATRIX_STORE_PASSPHRASE the one the store was made with?)")?;
        let first_login = !session_file.exists();
        if first_login {
            client
                .matrix_auth()
                .login_username(&settings.user, settings.password.expose())
                .initial_device_display_name("sportello")
                .await
                .context("the Matrix login failed (check SPORTELLO_MATRIX_USER and SPORTELLO_MATRIX_PASSWORD)")?;
            let session = client
                .matrix_auth()
                .session()
                .context("no Matrix session after login")?;
            write_private(&session_file, &serde_json::to_vec(&session)?)?;
        } else {
            let session: MatrixSession = serde_json::from_slice(&std::fs::read(&session_file)?)
                .with_context(|| format!("{} is not a Matrix session", session_file.display()))?;
            client
                .restore_session(session)
                .await
                .context("cannot restore the Matrix session")?;
        }
        let me = client
            .user_id()
            .context("no Matrix user after login")?
            .to_owned();
        let coordination = if settings.volunteers_room.starts_with('#') {
            let alias = <&RoomAliasId>::try_from(settings.volunteers_room.as_str())
                .context("SPORTELLO_MATRIX_VOLUNTEERS_ROOM is not a room alias")?;
            client
                .resolve_room_alias(alias)
                .await
                .context("cannot resolve the coordination room alias")?
                .room_id
        } else {
            <&RoomId>::try_from(settings.volunteers_room.as_str())
                .context("SPORTELLO_MATRIX_VOLUNTEERS_ROOM is not a room id or alias")?
                .to_owned()
        };
        if first_login {
            // The very first login only: old history is not ours to answer.
            client
                .sync_once(SyncSettings::default())
                .await
                .context("the first Matrix sync failed")?;
        }
        let matrix = Arc::new(Matrix {
            client,
            settings,
            store,
            bundle,
            coordination,
            me,
            history_due: AtomicBool::new(true),
        });
        matrix.register_handlers();
        // An invitation that arrived before the handlers (during the first sync, or while
        // the bot was down) is answered now.
        for room in matrix.client.invited_rooms() {
            if room.room_id() == matrix.coordination {
                let _ = room.join().await;
            }
        }
        Ok(matrix)
    }

    fn register_handlers(self: &Arc<Self>) {
        let this = self.clone();
        self.client
            .add_event_handler(move |event: StrippedRoomMemberEvent, room: Room| {
                let this = this.clone();
                async move { this.on_invite(event, room).await }
            });
    }

    /// A sync filter whose timeline limit suits the number of open cases: a few dozen
    /// events per room, fewer when there are many rooms (the history fills any gap).
    async fn sync_filter(&self) -> Filter {
        let rooms = self
            .store
            .open_case_rooms()
            .await
            .map(|rooms| rooms.len())
            .unwrap_or(0)
            + 1;
        let limit = (2000 / rooms).clamp(10, 50) as u32;
        let mut timeline = RoomEventFilter::default();
        timeline.limit = Some(limit.into());
        let mut room = RoomFilter::default();
        room.timeline = timeline;
        let mut definition = FilterDefinition::default();
        definition.room = room;
        Filter::FilterDefinition(definition)
    }

    pub async fn sync_forever(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let mut failures = 0u32;
        let mut encryption_checked = false;
        loop {
            if !encryption_checked {
                encryption_checked = self.warn_if_coordination_in_clear().await;
            }
            if self.history_due.swap(false, Ordering::SeqCst) {
                self.read_histories().await;
            }
            let settings = SyncSettings::default()
                .timeout(Duration::from_secs(10))
                .filter(self.sync_filter().await);
            let result = tokio::select! {
                result = self.client.sync_once(settings) => result,
                _ = stopped.changed() => return,
            };
            let failed = match result {
                Ok(response) => {
                    failures = 0;
                    for (room_id, update) in response.rooms.joined {
                        let timeline = update.timeline;
                        if let Err(error) = self
                            .take_in(
                                &room_id,
                                timeline.limited,
                                timeline.prev_batch,
                                timeline.events,
                            )
                            .await
                        {
                            // The sync token moved on: the history read before the
                            // next sync finds what was not stored.
                            tracing::warn!(error = %error.0, "cannot store the volunteers' events; the room's history will be read again");
                            self.history_due.store(true, Ordering::SeqCst);
                        }
                    }
                    false
                }
                Err(error) => {
                    tracing::warn!(error = %error_kind(&error), "Matrix sync failed; retrying");
                    true
                }
            };
            if failed {
                failures += 1;
                let wait = Duration::from_millis(250 * 2u64.pow(failures.min(6)));
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = stopped.changed() => return,
                }
            }
        }
    }

    /// The coordination room should be encrypted: cards name needs and comuni. When it
    /// is not, the log and the room say so, once per start. False while the bot has not
    /// joined the room yet.
    async fn warn_if_coordination_in_clear(&self) -> bool {
        let Some(room) = self.client.get_room(&self.coordination) else {
            return false;
        };
        if room.state() != RoomState::Joined {
            return false;
        }
        let Ok(state) = room.latest_encryption_state().await else {
            return false;
        };
        if !state.is_encrypted() {
            tracing::warn!(
                "the coordination room is not encrypted: enable encryption in its settings"
            );
            self.notice(
                &room,
                "⚠️ Questa stanza di coordinamento non è cifrata: i casi (bisogno, comune, lingua) passano in chiaro sul server. Chi amministra la stanza attivi la cifratura nelle impostazioni (Sicurezza e privacy).",
                format!("sp-in-clear-{}", Utc::now().timestamp_millis()),
            )
            .await;
        }
        true
    }

    /// Stores a room's new events, in order; when the sync left some out (`limited`),
    /// the room's history is read first, back to the last event the bot knows.
    async fn take_in(
        &self,
        room_id: &RoomId,
        limited: bool,
        prev_batch: Option<String>,
        events: Vec<TimelineEvent>,
    ) -> Handled {
        let mut stored = Vec::new();
        if limited && let Some(room) = self.client.get_room(room_id) {
            stored = self.history(&room, prev_batch).await?;
        }
        stored.extend(
            events
                .iter()
                .filter_map(|event| self.inbox_entry(room_id, event)),
        );
        self.store
            .volunteer_inbox_put_all(&stored, Utc::now())
            .await?;
        Ok(())
    }

    /// Reads the history of the coordination room and of every open case room back to
    /// the last event the bot knows, and stores what it finds (at start, and after the
    /// events of a sync could not be stored).
    async fn read_histories(&self) {
        let mut rooms = vec![self.coordination.to_string()];
        match self.store.open_case_rooms().await {
            Ok(open) => rooms.extend(open),
            Err(error) => {
                tracing::warn!(error = %error_kind(&error), "cannot list the case rooms; their history will be read again");
                self.history_due.store(true, Ordering::SeqCst);
            }
        }
        for room in rooms {
            let Some(room) = <&RoomId>::try_from(room.as_str())
                .ok()
                .and_then(|id| self.client.get_room(id))
            else {
                continue;
            };
            let read = match self.history(&room, None).await {
                Ok(events) => self
                    .store
                    .volunteer_inbox_put_all(&events, Utc::now())
                    .await
                    .map_err(Retry::from),
                Err(retry) => Err(retry),
            };
            if let Err(error) = read {
                tracing::warn!(error = %error.0, "cannot read a room's history; it will be read again");
                self.history_due.store(true, Ordering::SeqCst);
            }
        }
    }

    /// A room's events from `from` (the live end when None) back to the last event the
    /// bot stored, oldest first. The coordination room, when the bot knows none of its
    /// events, is not read back (old history is not ours to answer); a case room is
    /// read back to its start (it was made at the claim).
    async fn history(
        &self,
        room: &Room,
        from: Option<String>,
    ) -> Result<Vec<NewVolunteerEvent>, Retry> {
        let room_id = room.room_id();
        let known_room = self.store.volunteer_room_known(room_id.as_str()).await?;
        if !known_room && room_id == self.coordination {
            return Ok(Vec::new());
        }
        let mut found = Vec::new();
        let mut from = from;
        let mut read = 0;
        'pages: loop {
            let mut options = MessagesOptions::backward().from(from.as_deref());
            options.limit = 100u32.into();
            let page = room
                .messages(options)
                .await
                .map_err(|error| Retry(format!("history: {}", error_kind(&error))))?;
            for event in &page.chunk {
                read += 1;
                if let Some(id) = event.event_id()
                    && self.store.volunteer_event_known(id.as_str()).await?
                {
                    break 'pages;
                }
                if let Some(entry) = self.inbox_entry(room_id, event) {
                    found.push(entry);
                }
            }
            match page.end {
                Some(end) if !page.chunk.is_empty() && read < HISTORY_MAX_EVENTS => {
                    from = Some(end)
                }
                _ => break,
            }
        }
        found.reverse();
        Ok(found)
    }

    /// What the inbox keeps of a timeline event: volunteers' text messages, reactions
    /// and events not decrypted yet; not the bot's own, not state or other kinds.
    fn inbox_entry(&self, room: &RoomId, event: &TimelineEvent) -> Option<NewVolunteerEvent> {
        let stored = match &event.kind {
            TimelineEventKind::UnableToDecrypt { event: raw, .. } => {
                if raw.get_field::<OwnedUserId>("sender").ok().flatten()? == self.me {
                    return None;
                }
                VolunteerEvent::Encrypted {
                    raw: raw.json().get().to_string(),
                }
            }
            _ => volunteer_event(event.raw(), &self.me)?,
        };
        Some((
            event.event_id()?.to_string(),
            room.to_string(),
            serde_json::to_string(&stored).ok()?,
        ))
    }

    /// Handles the stored events in order of arrival. An event that must be retried
    /// holds back the later events of its room (their order matters), not the others';
    /// after [`EVENT_ATTEMPTS`] it is set aside as a dead letter. A panic while handling
    /// one event is an error like another.
    pub async fn handle_inbox(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let mut last_claims = std::time::Instant::now();
        loop {
            if last_claims.elapsed() >= Duration::from_secs(60) {
                last_claims = std::time::Instant::now();
                self.resume_claims().await;
            }
            let mut next_wake = Duration::from_millis(500);
            match self.store.volunteer_inbox_pending(200).await {
                Ok(rows) => {
                    let now = Utc::now().timestamp_millis();
                    let mut held: HashSet<String> = HashSet::new();
                    for (row, next_at) in rows {
                        if held.contains(&row.room) {
                            continue;
                        }
                        if next_at > now {
                            if !waits_for_key(&row) {
                                held.insert(row.room.clone());
                            }
                            let wait = Duration::from_millis((next_at - now) as u64);
                            next_wake = next_wake.min(wait);
                            continue;
                        }
                        let this = self.clone();
                        let handling = row.clone();
                        let outcome =
                            match tokio::spawn(async move { this.handle(&handling).await }).await {
                                Ok(outcome) => outcome,
                                Err(_) => Err(Retry("panic".into())),
                            };
                        let recorded = match outcome {
                            Ok(()) => self.store.volunteer_event_done(row.seq, Utc::now()).await,
                            Err(Retry(kind)) => {
                                if !waits_for_key(&row) {
                                    held.insert(row.room.clone());
                                }
                                if row.attempts + 1 >= EVENT_ATTEMPTS {
                                    tracing::error!(error = %kind, "a volunteer's event failed too many times; set aside as a dead letter");
                                    self.store
                                        .volunteer_event_dead(&row, &kind, Utc::now())
                                        .await
                                } else {
                                    tracing::warn!(error = %kind, attempt = row.attempts + 1, "cannot handle a volunteer's event yet; retrying");
                                    let wait =
                                        Duration::from_secs(1u64 << row.attempts.clamp(0, 20))
                                            .min(EVENT_RETRY_MAX);
                                    self.store
                                        .volunteer_event_retry(row.seq, Utc::now() + wait)
                                        .await
                                }
                            }
                        };
                        if let Err(error) = recorded {
                            tracing::error!(error = %error_kind(&error), "cannot record a volunteer's event as handled; it will be handled again");
                            break;
                        }
                    }
                }
                Err(error) => {
                    tracing::error!(error = %error_kind(&error), "cannot read the volunteers' inbox")
                }
            }
            tokio::select! {
                _ = self.store.volunteer_inbox_changed() => {}
                _ = tokio::time::sleep(next_wake) => {}
                _ = stopped.changed() => return,
            }
        }
    }

    /// When room keys arrive late, the events waiting for them are tried again now.
    pub async fn watch_room_keys(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        use futures_util::StreamExt;
        let Some(keys) = self.client.encryption().room_keys_received_stream().await else {
            return;
        };
        let mut keys = std::pin::pin!(keys);
        loop {
            tokio::select! {
                key = keys.next() => match key {
                    Some(_) => {
                        if let Err(error) = self.store.volunteer_encrypted_due_now().await {
                            tracing::warn!(error = %error_kind(&error), "cannot wake the events waiting for a room key");
                        }
                    }
                    None => return,
                },
                _ = stopped.changed() => return,
            }
        }
    }

    /// One stored event.
    async fn handle(&self, row: &VolunteerRow) -> Handled {
        let Ok(event) = serde_json::from_str::<VolunteerEvent>(&row.payload) else {
            return Ok(());
        };
        let Some(room) = <&RoomId>::try_from(row.room.as_str())
            .ok()
            .and_then(|id| self.client.get_room(id))
        else {
            return Ok(());
        };
        if room.state() != RoomState::Joined {
            return Ok(());
        }
        let event = match event {
            VolunteerEvent::Encrypted { raw } => {
                let Ok(raw) = serde_json::value::RawValue::from_string(raw) else {
                    return Ok(());
                };
                let raw = Raw::<OriginalSyncRoomEncryptedEvent>::from_json(raw);
                let decrypted = room
                    .decrypt_event(&raw, None)
                    .await
                    .map_err(|error| Retry(format!("undecryptable: {}", error_kind(&error))))?;
                if matches!(decrypted.kind, TimelineEventKind::UnableToDecrypt { .. }) {
                    return Err(Retry("undecryptable".into()));
                }
                match volunteer_event(decrypted.raw(), &self.me) {
                    Some(event) => event,
                    None => return Ok(()),
                }
            }
            event => event,
        };
        match event {
            VolunteerEvent::Text { sender, body } => {
                let Ok(sender) = <&UserId>::try_from(sender.as_str()) else {
                    return Ok(());
                };
                self.on_message(&row.event_id, &room, sender, body.trim())
                    .await
            }
            VolunteerEvent::Reaction { sender, card } => {
                let Ok(sender) = <&UserId>::try_from(sender.as_str()) else {
                    return Ok(());
                };
                self.on_reaction(&row.event_id, &room, sender, &card).await
            }
            VolunteerEvent::Encrypted { .. } => Ok(()),
        }
    }

    async fn on_invite(&self, event: StrippedRoomMemberEvent, room: Room) {
        if event.state_key != self.me {
            return;
        }
        if room.room_id() == self.coordination {
            for attempt in 0..5u64 {
                if room.join().await.is_ok() {
                    tracing::info!("joined the coordination room");
                    return;
                }
                tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
            }
            tracing::error!("cannot join the coordination room");
        } else {
            // Invitations from anywhere else are declined.
            let _ = room.leave().await;
        }
    }

    /// What a user may do for the bot: a volunteer when listed in the configuration or
    /// a member of the coordination room at the volunteers' power level, a coordinator
    /// at the coordinators' level. An error is a retry, never a refusal.
    async fn role(&self, user: &UserId) -> Result<Role, Retry> {
        let listed = self
            .settings
            .volunteers
            .iter()
            .any(|listed| listed == user.as_str());
        let Some(room) = self.client.get_room(&self.coordination) else {
            return Err(Retry("not in the coordination room".into()));
        };
        let member = room
            .get_member(user)
            .await
            .map_err(|error| Retry(format!("member: {}", error_kind(&error))))?;
        let level = match member {
            Some(member)
                if member.membership()
                    == &matrix_sdk::ruma::events::room::member::MembershipState::Join =>
            {
                match member.power_level() {
                    UserPowerLevel::Infinite => i64::MAX,
                    UserPowerLevel::Int(level) => i64::from(level),
                    _ => i64::MIN,
                }
            }
            _ => i64::MIN,
        };
        Ok(if level >= self.settings.coordinator_power_level {
            Role::Coordinator
        } else if listed || level >= self.settings.volunteer_power_level {
            Role::Volunteer
        } else {
            Role::Nobody
        })
    }

    /// Posts a notice with a transaction id (a retry is never a second message);
    /// matrix-sdk retries it for [`REQUEST_RETRY_TIME`], then it is the caller's retry.
    async fn post(&self, room: &Room, text: &str, txn_id: String) -> Result<OwnedEventId, Retry> {
        match room
            .send(RoomMessageEventContent::notice_plain(text))
            .with_transaction_id(txn(txn_id))
            .await
        {
            Ok(sent) => Ok(sent.response.event_id),
            Err(error) => Err(Retry(format!("send: {}", error_kind(&error)))),
        }
    }

    /// Posts a notice that nothing depends on (a failure is logged).
    async fn notice(&self, room: &Room, text: &str, txn_id: String) -> Option<OwnedEventId> {
        match self.post(room, text, txn_id).await {
            Ok(event) => Some(event),
            Err(error) => {
                tracing::warn!(error = %error.0, "a Matrix notice could not be posted");
                None
            }
        }
    }

    /// Posts a notice that carries a case's data and remembers it (`card` in the
    /// coordination room can be claimed by a reaction; all are redacted by `/dimentica`).
    async fn case_notice(
        &self,
        case: i64,
        kind: &str,
        room: &Room,
        text: &str,
        txn_id: String,
    ) -> Handled {
        let event = self.post(room, text, txn_id).await?;
        self.remember(case, kind, room.room_id(), &event).await
    }

    async fn remember(&self, case: i64, kind: &str, room: &RoomId, event: &EventId) -> Handled {
        self.store
            .record_case_event(case, room.as_str(), event.as_str(), kind, Utc::now())
            .await?;
        Ok(())
    }

    /// A reaction (any emoji) on a card in the coordination room claims its case.
    async fn on_reaction(
        &self,
        event_id: &str,
        room: &Room,
        sender: &UserId,
        card: &str,
    ) -> Handled {
        if room.room_id() != self.coordination {
            return Ok(());
        }
        match self.store.case_of_card(card).await? {
            Some(case) => self.claim(case, sender, room, event_id).await,
            None => Ok(()),
        }
    }

    async fn on_message(
        &self,
        event_id: &str,
        room: &Room,
        sender: &UserId,
        body: &str,
    ) -> Handled {
        if room.room_id() == self.coordination {
            if let Some(rest) = body.strip_prefix("!prendi") {
                match rest.trim().trim_start_matches('#').parse::<i64>() {
                    Ok(case) => return self.claim(case, sender, room, event_id).await,
                    Err(_) => {
                        self.post(
                            room,
                            "Scrivi il numero del caso: !prendi 12",
                            format!("sp-{event_id}-usage"),
                        )
                        .await?;
                    }
                }
            }
            return Ok(());
        }
        let Some(case) = self.store.case_by_room(room.room_id().as_str()).await? else {
            // The bot is only in the coordination room and the rooms of its cases: this
            // one's case was closed, released or erased.
            self.post(
                room,
                "Questo caso è chiuso o è tornato in coda: il cittadino non riceve più i messaggi di questa stanza.",
                format!("sp-{event_id}-stale"),
            )
            .await?;
            return Ok(());
        };
        // Whatever a person writes in a case room may speak of the citizen: it is
        // redacted with the rest when the citizen's data are erased.
        self.store
            .record_case_event(
                case.case,
                room.room_id().as_str(),
                event_id,
                "volunteer",
                Utc::now(),
            )
            .await?;
        let role = self.role(sender).await?;
        if role == Role::Nobody {
            self.post(
                room,
                "Solo i volontari dello sportello possono scrivere al cittadino da qui.",
                format!("sp-{event_id}-refused"),
            )
            .await?;
            return Ok(());
        }
        if role == Role::Volunteer && case.claimed_by.as_deref() != Some(sender.as_str()) {
            let holder = case.claimed_by.as_deref().unwrap_or("un altro volontario");
            self.post(
                room,
                &format!("Questo caso lo segue {holder}: solo chi lo segue o un coordinatore può scrivere al cittadino e usare i comandi."),
                format!("sp-{event_id}-holder"),
            )
            .await?;
            return Ok(());
        }
        if let Some(command) = body.strip_prefix('!') {
            let (name, argument) = command.split_once(' ').unwrap_or((command, ""));
            match name {
                "chiudi" => self.close(&case, sender, room, event_id).await?,
                "rilascia" => self.release(&case, sender, room, event_id).await?,
                "nota" if !argument.trim().is_empty() => {
                    self.store
                        .add_note(case.case, sender.as_str(), argument.trim(), Utc::now())
                        .await?;
                    // The note is kept: a notice that fails is not a reason to add it twice.
                    self.notice(
                        room,
                        "Nota salvata per i volontari (il cittadino non la vede).",
                        format!("sp-{event_id}-note"),
                    )
                    .await;
                }
                "info" => {
                    let text = self.case_info(&case).await?;
                    self.case_notice(
                        case.case,
                        "citizen",
                        room,
                        &text,
                        format!("sp-{event_id}-info"),
                    )
                    .await?;
                }
                _ => {
                    self.post(room, "Comandi: !chiudi, !rilascia, !nota TESTO, !info. Il resto arriva al cittadino.", format!("sp-{event_id}-help"))
                        .await?;
                }
            }
            return Ok(());
        }
        // A volunteer's words for the citizen, once per event.
        self.to_citizen(&case, Input::FromVolunteer(body.to_string()), event_id)
            .await
    }

    /// Carries a volunteer's message or a case's news to the citizen, once per `key`
    /// (the store drops a second update with the same id).
    async fn to_citizen(&self, case: &Case, input: Input, key: &str) -> Handled {
        let (Some(channel), Some(chat_id)) = (case.channel.clone(), case.chat_id.clone()) else {
            return Ok(());
        };
        let inbound = Inbound {
            channel,
            chat_id,
            update_id: Some(format!("matrix:{key}")),
            input,
            interface_lang: None,
            button_tag: None,
            now: Utc::now(),
        };
        self.store.process(&self.bundle, inbound).await?;
        Ok(())
    }

    async fn claim(
        &self,
        case_id: i64,
        volunteer: &UserId,
        coordination: &Room,
        event_id: &str,
    ) -> Handled {
        if self.role(volunteer).await? == Role::Nobody {
            self.post(
                coordination,
                "Solo i volontari dello sportello possono prendere un caso.",
                format!("sp-{event_id}-refused"),
            )
            .await?;
            return Ok(());
        }
        let text = match self
            .store
            .claim(case_id, volunteer.as_str(), Utc::now())
            .await?
        {
            Claim::Claimed => None,
            // The same claim handled again (the bot stopped or failed in the middle):
            // it goes on where it was.
            Claim::Taken(by) if by == volunteer.as_str() => None,
            Claim::Taken(by) => Some(format!("Il caso {case_id} è già stato preso da {by}.")),
            Claim::Closed => Some(format!("Il caso {case_id} è chiuso.")),
            Claim::Unknown => Some(format!("Non c'è un caso {case_id}.")),
        };
        if let Some(text) = text {
            self.post(coordination, &text, format!("sp-{event_id}-claim"))
                .await?;
            return Ok(());
        }
        let Some(case) = self.store.case(case_id).await? else {
            return Ok(());
        };
        if case.room_ready {
            return Ok(());
        }
        if let Err(retry) = self.open_case_room(&case, volunteer).await {
            self.notice(
                coordination,
                &format!("La stanza del caso {case_id} non è ancora pronta: riprovo da solo."),
                format!("sp-{event_id}-later"),
            )
            .await;
            return Err(retry);
        }
        Ok(())
    }

    /// Claims that were not finished (the bot stopped, or their event was set aside)
    /// are finished now: at start (before the tasks) and every minute.
    pub async fn resume_claims(&self) {
        let Ok(cases) = self.store.cases_claiming().await else {
            return;
        };
        for case in cases {
            let Some(volunteer) = case
                .claimed_by
                .as_deref()
                .and_then(|user| <&UserId>::try_from(user).ok())
            else {
                continue;
            };
            if let Err(error) = self.open_case_room(&case, volunteer).await {
                tracing::warn!(error = %error.0, "a claim is not finished yet; retrying");
            }
        }
    }

    /// The steps of a claim, each done once whatever stops in between: the room is made
    /// without anyone invited and recorded at once, then the volunteer is invited, the
    /// card, the last messages and the help posted (transaction ids from the case and
    /// the claim's time), the coordination room and the citizen told, and the case
    /// marked ready; until then the citizen's messages for it wait in the outbox.
    async fn open_case_room(&self, case: &Case, volunteer: &UserId) -> Handled {
        let case_id = case.case;
        let claim = format!(
            "sp-case-{case_id}-{}",
            case.claimed_at
                .map(|at| at.timestamp_millis())
                .unwrap_or_default()
        );
        let room = match case
            .room
            .as_deref()
            .and_then(|id| <&RoomId>::try_from(id).ok())
        {
            Some(id) => self
                .client
                .get_room(id)
                .ok_or_else(|| Retry("case room unknown yet".into()))?,
            None => {
                let mut request = CreateRoomRequest::new();
                request.name = Some(format!("Caso {case_id}"));
                request.preset = Some(RoomPreset::PrivateChat);
                // Only the bot (the creator) invites, removes, or changes the room.
                let power = serde_json::json!({
                    "invite": 100, "kick": 100, "ban": 100, "redact": 100,
                    "state_default": 100, "events_default": 0, "users_default": 0,
                });
                request.power_level_content_override = serde_json::value::to_raw_value(&power)
                    .ok()
                    .map(Raw::from_json);
                if self.settings.encrypted {
                    request.initial_state = vec![
                        InitialStateEvent::with_empty_state_key(
                            RoomEncryptionEventContent::with_recommended_defaults(),
                        )
                        .to_raw_any(),
                    ];
                }
                let room = self
                    .client
                    .create_room(request)
                    .await
                    .map_err(|error| Retry(format!("create room: {}", error_kind(&error))))?;
                self.store
                    .set_case_room(case_id, room.room_id().as_str())
                    .await?;
                room
            }
        };
        let invited = room
            .get_member_no_sync(volunteer)
            .await
            .ok()
            .flatten()
            .is_some_and(|member| {
                use matrix_sdk::ruma::events::room::member::MembershipState;
                matches!(
                    member.membership(),
                    MembershipState::Invite | MembershipState::Join
                )
            });
        if !invited {
            room.invite_user_by_id(volunteer)
                .await
                .map_err(|error| Retry(format!("invite: {}", error_kind(&error))))?;
        }
        let card = self.case_card(case);
        self.case_notice(case_id, "citizen", &room, &card, format!("{claim}-card"))
            .await?;
        let mut carried = Vec::new();
        if let Some(conversation) = case.conversation_id {
            let (lines, owed) = self.store.recent_transcript(conversation, 20).await?;
            carried = owed;
            let transcript: Vec<String> = lines
                .iter()
                .map(|(author, text)| {
                    let who = match author.as_str() {
                        "citizen" => "Cittadino",
                        "bot" => "Bot",
                        _ => "Volontario",
                    };
                    format!("{who}: {}", one_line(text, 600))
                })
                .collect();
            let text = format!("Ultimi messaggi:\n{}", transcript.join("\n"));
            self.case_notice(
                case_id,
                "citizen",
                &room,
                &text,
                format!("{claim}-transcript"),
            )
            .await?;
        }
        self.post(
            &room,
            "Quello che scrivi qui arriva al cittadino. Comandi: !chiudi, !rilascia, !nota TESTO, !info.",
            format!("{claim}-help"),
        )
        .await?;
        if let Some(coordination) = self.client.get_room(&self.coordination) {
            self.post(
                &coordination,
                &format!("Il caso {case_id} è stato preso da {volunteer}."),
                format!("{claim}-claimed"),
            )
            .await?;
        }
        let name = if self.settings.show_volunteer_name {
            room.get_member(volunteer)
                .await
                .ok()
                .flatten()
                .and_then(|member| {
                    member
                        .display_name()
                        .map(|name| name.split_whitespace().next().unwrap_or(name).to_string())
                })
        } else {
            None
        };
        self.to_citizen(
            case,
            Input::VolunteerJoined(name),
            &format!("{claim}-joined"),
        )
        .await?;
        self.store
            .case_room_ready(case_id, &carried, Utc::now())
            .await?;
        self.store.wake_deliverers();
        Ok(())
    }

    async fn close(&self, case: &Case, volunteer: &UserId, room: &Room, event_id: &str) -> Handled {
        // The citizen first (once per event, whatever is retried), then the case: a
        // retry after the case is closed would find no case in this room.
        self.to_citizen(case, Input::VolunteerClosed, event_id)
            .await?;
        self.store.close_case(case.case, Utc::now()).await?;
        self.post(
            room,
            "Caso chiuso: il bot riprende la conversazione. Grazie!",
            format!("sp-{event_id}-closed"),
        )
        .await?;
        if let Some(coordination) = self.client.get_room(&self.coordination) {
            self.post(
                &coordination,
                &format!("Il caso {} è stato chiuso da {volunteer}.", case.case),
                format!("sp-{event_id}-closed-note"),
            )
            .await?;
        }
        Ok(())
    }

    async fn release(
        &self,
        case: &Case,
        volunteer: &UserId,
        room: &Room,
        event_id: &str,
    ) -> Handled {
        self.to_citizen(case, Input::VolunteerReleased, event_id)
            .await?;
        self.store.release_case(case.case).await?;
        self.post(
            room,
            "Caso rilasciato: torna in coda per un altro volontario.",
            format!("sp-{event_id}-released"),
        )
        .await?;
        if let Some(coordination) = self.client.get_room(&self.coordination) {
            let card = self.card(case);
            let text = format!("{volunteer} ha rilasciato il caso {}.\n{card}", case.case);
            self.case_notice(
                case.case,
                "card",
                &coordination,
                &text,
                format!("sp-{event_id}-released-card"),
            )
            .await?;
        }
        // The bot stays in the old room: `/dimentica` may have to redact there.
        Ok(())
    }

    /// The coordination room's card (see [`coordination_card`]).
    fn card(&self, case: &Case) -> String {
        coordination_card(&self.bundle, case, Utc::now())
    }

    /// The case room's card (see [`case_card`]).
    fn case_card(&self, case: &Case) -> String {
        case_card(&self.bundle, case, Utc::now())
    }

    async fn case_info(&self, case: &Case) -> Result<String, Retry> {
        let mut text = self.case_card(case);
        for (author, note) in self.store.notes(case.case).await? {
            text.push_str(&format!("\nNota di {author}: {note}"));
        }
        Ok(text)
    }

    /// Cases unclaimed for longer than `wait_before_reminder` (bot.yaml) are announced
    /// again, in volunteer hours, and the citizen is told they are not forgotten.
    async fn remind(&self) {
        let hours = &self.bundle.bot.volunteer_hours;
        let now = Utc::now();
        if !hours.is_empty() && !hours.is_open(now) {
            return;
        }
        let wait =
            chrono::Duration::minutes(i64::from(self.bundle.bot.wait_before_reminder_minutes));
        let Ok(cases) = self.store.cases_to_remind(now - wait).await else {
            return;
        };
        let Some(coordination) = self.client.get_room(&self.coordination) else {
            return;
        };
        for case in cases {
            let stamp = now.timestamp();
            let card = self.card(&case);
            let announced = self
                .case_notice(
                    case.case,
                    "card",
                    &coordination,
                    &format!("⏰ Questo caso aspetta ancora un volontario.\n{card}"),
                    format!("sp-remind-{}-{stamp}", case.case),
                )
                .await;
            // Not announced: tried again at the next round, the citizen told then.
            if announced.is_ok() && self.store.case_reminded(case.case, now).await.is_ok() {
                let told = self
                    .to_citizen(
                        &case,
                        Input::VolunteerReminder,
                        &format!("remind-{}-{stamp}", case.case),
                    )
                    .await;
                if let Err(error) = told {
                    tracing::warn!(error = %error.0, "cannot tell a waiting citizen they are not forgotten");
                }
            }
        }
    }

    /// Delivers the volunteers' outbox: cards, citizens' messages, blocked notices. Each
    /// case (a conversation's rows, in order) is delivered by a task of its own, so one
    /// slow or rate-limited case does not hold up the others.
    pub async fn deliver(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let mut last_reminder = std::time::Instant::now() - Duration::from_secs(3600);
        let mut deliveries: tokio::task::JoinSet<()> = tokio::task::JoinSet::new();
        let mut in_flight: std::collections::HashMap<tokio::task::Id, String> =
            std::collections::HashMap::new();
        loop {
            if last_reminder.elapsed() >= Duration::from_secs(5) {
                last_reminder = std::time::Instant::now();
                self.remind().await;
            }
            while let Some(done) = deliveries.try_join_next_with_id() {
                let id = match done {
                    Ok((id, ())) => id,
                    Err(error) => error.id(),
                };
                in_flight.remove(&id);
            }
            match self.store.outbox_due(VOLUNTEERS, Utc::now(), 100).await {
                Ok(rows) => {
                    for row in rows {
                        if in_flight.len() >= DELIVERY_TASKS
                            || in_flight.values().any(|chat| *chat == row.chat_id)
                        {
                            continue;
                        }
                        let chat = row.chat_id.clone();
                        let this = self.clone();
                        let task = deliveries.spawn(async move { this.deliver_one(row).await });
                        in_flight.insert(task.id(), chat);
                    }
                }
                Err(error) => tracing::error!(%error, "cannot read the volunteers' outbox"),
            }
            tokio::select! {
                _ = self.store.outbox_changed() => {}
                Some(done) = deliveries.join_next_with_id(), if !deliveries.is_empty() => {
                    let id = match done {
                        Ok((id, ())) => id,
                        Err(error) => error.id(),
                    };
                    in_flight.remove(&id);
                }
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stopped.changed() => return,
            }
        }
    }

    /// Delivers one row (with the citizen's messages queued right behind it, when it is
    /// one of them) and records the outcome.
    async fn deliver_one(&self, row: OutboxRow) {
        let (delivered, carried) = self.deliver_row(&row).await;
        let now = Utc::now();
        let recorded = match delivered {
            Delivered::Done => {
                let mut recorded = self.store.outbox_sent(row.id, now).await;
                for id in carried {
                    if recorded.is_ok() {
                        recorded = self.store.outbox_sent(id, now).await;
                    }
                }
                recorded
            }
            Delivered::Retry(waiting) => {
                if row.attempts == 0
                    && let Some(case) = waiting
                {
                    self.tell_delayed(row.id, &case).await;
                }
                let wait = chrono::Duration::seconds(1i64 << row.attempts.clamp(0, 6));
                self.store.outbox_failed(row.id, now + wait, "matrix").await
            }
        };
        if let Err(error) = recorded {
            tracing::error!(%error, "cannot record a delivery to the volunteers");
        }
    }

    /// A citizen who writes many messages in a row: those queued behind the first
    /// (plain ones, no danger) go in the same Matrix message, up to a few, so that the
    /// case room is not flooded. Their texts and outbox ids.
    async fn queued_behind(&self, row: &OutboxRow) -> (Vec<String>, Vec<i64>) {
        let Ok(owed) = self.store.outbox_unsent(VOLUNTEERS, &row.chat_id).await else {
            return (Vec::new(), Vec::new());
        };
        let mut texts = Vec::new();
        let mut ids = Vec::new();
        let mut length = 0;
        for next in owed.iter().filter(|next| next.id > row.id) {
            let Ok(payload) = serde_json::from_str::<serde_json::Value>(&next.payload) else {
                break;
            };
            let Some(text) = payload["text"].as_str() else {
                break;
            };
            if payload["kind"] != "relay"
                || !payload["alert"].is_null()
                || texts.len() + 1 >= COALESCED_MESSAGES
                || length + text.len() > COALESCED_LENGTH
            {
                break;
            }
            length += text.len();
            texts.push(text.to_string());
            ids.push(next.id);
        }
        (texts, ids)
    }

    /// Delivers one row; with it, the outbox ids of the rows its message carried too.
    async fn deliver_row(&self, row: &OutboxRow) -> (Delivered, Vec<i64>) {
        let Ok(payload) = serde_json::from_str::<serde_json::Value>(&row.payload) else {
            return (Delivered::Done, Vec::new());
        };
        let txn_id = format!("sp-outbox-{}", row.id);
        if payload["kind"] == "relay" {
            return self.relay(&payload, row, txn_id).await;
        }
        (self.deliver_other(&payload, txn_id).await, Vec::new())
    }

    /// Delivers a card, a blocked notice or an erasure.
    async fn deliver_other(&self, payload: &serde_json::Value, txn_id: String) -> Delivered {
        match payload["kind"].as_str() {
            Some("handover") => {
                let Some(case_id) = payload["case"].as_i64() else {
                    return Delivered::Done;
                };
                let case = match self.store.case(case_id).await {
                    Ok(Some(case)) => case,
                    Ok(None) => return Delivered::Done,
                    Err(_) => return Delivered::Retry(None),
                };
                // Asked again while the case is open: announced again, where it stands.
                let again = payload["again"].as_bool().unwrap_or(false);
                if again && case.status == "claimed" {
                    if !case.room_ready {
                        return Delivered::Retry(None);
                    }
                    let Some(room) = self.case_room(&case) else {
                        return Delivered::Done;
                    };
                    return match self
                        .post(
                            &room,
                            "🔁 Il cittadino chiede di nuovo di parlare con una persona.",
                            txn_id,
                        )
                        .await
                    {
                        Ok(_) => Delivered::Done,
                        Err(_) => Delivered::Retry(Some(Box::new(case))),
                    };
                }
                let Some(room) = self.client.get_room(&self.coordination) else {
                    return Delivered::Retry(Some(Box::new(case)));
                };
                let mut card = self.card(&case);
                if again {
                    card = format!("🔁 Il cittadino chiede di nuovo una persona.\n{card}");
                }
                match room
                    .send(RoomMessageEventContent::notice_plain(card))
                    .with_transaction_id(txn(txn_id))
                    .await
                {
                    Ok(response) => {
                        let event = response.response.event_id;
                        // Not recorded: sent again with the same transaction id (the
                        // homeserver gives the same event), then recorded.
                        match self.remember(case_id, "card", room.room_id(), &event).await {
                            Ok(()) => Delivered::Done,
                            Err(_) => Delivered::Retry(None),
                        }
                    }
                    Err(error) => {
                        tracing::warn!(error = %error_kind(&error), "cannot post a case card; retrying");
                        Delivered::Retry(Some(Box::new(case)))
                    }
                }
            }
            Some("blocked") => {
                let Some(conversation) = payload["conversation"].as_i64() else {
                    return Delivered::Done;
                };
                let case = match self.store.open_case_for_conversation(conversation).await {
                    Ok(Some(case)) => case,
                    Ok(None) => return Delivered::Done,
                    Err(_) => return Delivered::Retry(None),
                };
                if self.store.close_case(case.case, Utc::now()).await.is_err() {
                    return Delivered::Retry(None);
                }
                if let Some(room) = self.case_room(&case) {
                    self.notice(
                        &room,
                        "Il cittadino ha chiuso la chat con il bot: il caso è chiuso.",
                        txn_id,
                    )
                    .await;
                }
                Delivered::Done
            }
            Some("forget") => {
                let Some(case_id) = payload["case"].as_i64() else {
                    return Delivered::Done;
                };
                let reason = payload["reason"].as_str().unwrap_or("citizen");
                if self.forget(case_id, reason, &txn_id).await {
                    Delivered::Done
                } else {
                    Delivered::Retry(None)
                }
            }
            _ => Delivered::Done,
        }
    }

    /// Relays a citizen's message (with those queued behind it) to the case room.
    async fn relay(
        &self,
        payload: &serde_json::Value,
        row: &OutboxRow,
        txn_id: String,
    ) -> (Delivered, Vec<i64>) {
        let Some(conversation) = payload["conversation"].as_i64() else {
            return (Delivered::Done, Vec::new());
        };
        let text = payload["text"].as_str().unwrap_or_default();
        let alert = payload["alert"].as_str();
        let case = match self.store.open_case_for_conversation(conversation).await {
            Ok(Some(case)) => case,
            Ok(None) => return (Delivered::Done, Vec::new()),
            Err(_) => return (Delivered::Retry(None), Vec::new()),
        };
        // Claimed, the room not ready yet: held until the claim is finished (the
        // case room's transcript carries what was owed when it was read).
        if case.status == "claimed" && !case.room_ready {
            return (Delivered::Retry(None), Vec::new());
        }
        // Not claimed yet: the case room's transcript will carry it; danger is
        // told to the coordination room at once (the number of the case only).
        let Some(room) = self.case_room(&case) else {
            if let Some(kind) = alert
                && let Some(coordination) = self.client.get_room(&self.coordination)
            {
                let text = format!(
                    "⚠️ Caso {}: il cittadino ha scritto parole di pericolo ({kind}). Il bot gli ha dato i numeri di emergenza. Il caso aspetta ancora un volontario.",
                    case.case
                );
                if self
                    .case_notice(
                        case.case,
                        "card",
                        &coordination,
                        &text,
                        format!("{txn_id}-alert"),
                    )
                    .await
                    .is_err()
                {
                    return (Delivered::Retry(Some(Box::new(case))), Vec::new());
                }
            }
            return (Delivered::Done, Vec::new());
        };
        let (behind, carried) = match alert {
            Some(_) => (Vec::new(), Vec::new()),
            None => self.queued_behind(row).await,
        };
        let body = match alert {
            Some(kind) => format!(
                "⚠️ POSSIBILE EMERGENZA ({kind}): il bot ha dato al cittadino i numeri di emergenza.\n{}",
                citizen_says(text)
            ),
            None => std::iter::once(text)
                .chain(behind.iter().map(String::as_str))
                .map(citizen_says)
                .collect::<Vec<_>>()
                .join("\n"),
        };
        // The transaction id names every row the message carries: a retry that
        // carries more is a new message (a line may come twice, never be lost).
        let txn_id = match carried.last() {
            Some(last) => format!("{txn_id}-{last}"),
            None => txn_id,
        };
        let content = RoomMessageEventContent::text_plain(body);
        match room.send(content).with_transaction_id(txn(txn_id)).await {
            Ok(sent) => {
                let event = sent.response.event_id;
                match self
                    .remember(case.case, "citizen", room.room_id(), &event)
                    .await
                {
                    Ok(()) => (Delivered::Done, carried),
                    Err(_) => (Delivered::Retry(None), Vec::new()),
                }
            }
            Err(error) => {
                tracing::warn!(error = %error_kind(&error), "cannot relay a citizen's message; retrying");
                (Delivered::Retry(Some(Box::new(case))), Vec::new())
            }
        }
    }

    /// A conversation was erased (`/dimentica`, an operator, the retention period):
    /// everything the bot posted of its case is redacted, and the volunteers are told
    /// the case is closed. False to retry later (what was redacted is not redacted twice).
    async fn forget(&self, case_id: i64, reason: &str, txn_id: &str) -> bool {
        let why = match reason {
            "operator" => "un operatore ha cancellato i dati della conversazione",
            "retention" => "i dati sono stati cancellati alla fine del periodo di conservazione",
            _ => "il cittadino ha chiesto di cancellare i suoi dati (/dimentica)",
        };
        let Ok(events) = self.store.case_events(case_id).await else {
            return false;
        };
        let case = self.store.case(case_id).await.ok().flatten();
        let mut rooms: Vec<String> = events.iter().map(|(room, _)| room.clone()).collect();
        rooms.extend(case.as_ref().and_then(|case| case.room.clone()));
        rooms.retain(|room| room != self.coordination.as_str());
        rooms.sort();
        rooms.dedup();
        for (room, event) in events {
            let (Ok(room_id), Ok(event_id)) = (
                <&RoomId>::try_from(room.as_str()),
                <&EventId>::try_from(event.as_str()),
            ) else {
                let _ = self.store.forget_case_event(&event).await;
                continue;
            };
            if let Some(room) = self.client.get_room(room_id)
                && room.state() == RoomState::Joined
                && let Err(error) = room
                    .redact(event_id, Some(why), Some(txn(format!("sp-redact-{event}"))))
                    .await
            {
                tracing::warn!(error = %error_kind(&error), "cannot redact a case message; retrying");
                return false;
            }
            let _ = self.store.forget_case_event(&event).await;
        }
        let text = format!("Caso {case_id} chiuso: {why}. I suoi messaggi sono stati rimossi.");
        if reason != "retention" {
            if let Some(room) = case.as_ref().and_then(|case| self.case_room(case)) {
                self.notice(&room, &text, format!("{txn_id}-room")).await;
            }
            if let Some(coordination) = self.client.get_room(&self.coordination) {
                self.notice(&coordination, &text, format!("{txn_id}-coordination"))
                    .await;
            }
        }
        // Nothing is left to do in the case's rooms: the bot leaves them, so nothing
        // written there afterwards can reach anyone.
        for room in rooms {
            if let Some(room) = <&RoomId>::try_from(room.as_str())
                .ok()
                .and_then(|id| self.client.get_room(id))
                && room.state() == RoomState::Joined
                && let Err(error) = room.leave().await
            {
                tracing::warn!(error = %error_kind(&error), "cannot leave an erased case's room; retrying");
                return false;
            }
        }
        true
    }

    /// The first time a citizen's card or message cannot reach the volunteers, the
    /// citizen is told the answer is delayed (once per row, deduped by the store; later
    /// rows of the chat wait behind this one, so once per outage).
    async fn tell_delayed(&self, row: i64, case: &Case) {
        if case.status != "closed"
            && let Err(error) = self
                .to_citizen(case, Input::VolunteerDelayed, &format!("delayed-{row}"))
                .await
        {
            tracing::warn!(error = %error.0, "cannot tell a citizen their answer is delayed");
        }
    }

    /// The room of a claimed case, if the bot knows it.
    fn case_room(&self, case: &Case) -> Option<Room> {
        let id = <&RoomId>::try_from(case.room.as_deref()?).ok()?;
        self.client.get_room(id)
    }
}

/// What became of a volunteers' outbox row.
enum Delivered {
    /// Sent, or nothing is left to send.
    Done,
    /// To try again later; the case whose citizen waits for it, if one does.
    Retry(Option<Box<Case>>),
}

/// A volunteer's text message or reaction, from a (decrypted) timeline event; None for
/// the bot's own events and for anything else.
fn volunteer_event(raw: &Raw<AnySyncTimelineEvent>, me: &UserId) -> Option<VolunteerEvent> {
    let AnySyncTimelineEvent::MessageLike(event) = raw.deserialize().ok()? else {
        return None;
    };
    if event.sender() == me {
        return None;
    }
    match event {
        AnySyncMessageLikeEvent::RoomMessage(message) => {
            let message = message.as_original()?;
            let MessageType::Text(text) = &message.content.msgtype else {
                return None;
            };
            Some(VolunteerEvent::Text {
                sender: message.sender.to_string(),
                body: text.body.clone(),
            })
        }
        AnySyncMessageLikeEvent::Reaction(reaction) => {
            let reaction = reaction.as_original()?;
            Some(VolunteerEvent::Reaction {
                sender: reaction.sender.to_string(),
                card: reaction.content.relates_to.event_id.to_string(),
            })
        }
        _ => None,
    }
}

/// Whether a stored event is one not decrypted yet: it does not hold back its room's
/// later events (the conversation goes on without it until its key comes).
fn waits_for_key(row: &VolunteerRow) -> bool {
    row.payload.starts_with(r#"{"kind":"encrypted""#)
}

/// Text someone else wrote, made one line of at most `max` characters: newlines and
/// other control or separator characters become spaces, so it can never start a line
/// of its own (a forged card line, a command).
fn one_line(text: &str, max: usize) -> String {
    let mut line = String::with_capacity(text.len().min(max * 4));
    for c in text.chars().take(max) {
        let space = c.is_control() || matches!(c, '\u{2028}' | '\u{2029}' | '\u{85}');
        line.push(if space { ' ' } else { c });
    }
    line
}

/// A citizen's message relayed to the case room: "Cittadino: " and its first line, each
/// further line marked "│ ", so that nothing the citizen writes can start a line of the
/// bot's own (a forged "⚠️ POSSIBILE EMERGENZA" or "Nota di ...") and the volunteer
/// still reads an address or a list on its lines.
fn citizen_says(text: &str) -> String {
    let lines: Vec<String> = text
        .split([
            '\n', '\r', '\u{2028}', '\u{2029}', '\u{85}', '\u{b}', '\u{c}',
        ])
        .filter(|line| !line.trim().is_empty())
        .map(|line| one_line(line, line.len()))
        .collect();
    format!("Cittadino: {}", lines.join("\n│ "))
}

/// An error's kind, never its text (which may carry a URL or a message).
fn error_kind(error: &impl std::fmt::Debug) -> String {
    let text = format!("{error:?}");
    text.split(['(', ' ', '{'])
        .next()
        .unwrap_or("error")
        .to_string()
}

/// Writes a file only its owner can read (the session holds an access token).
fn write_private(path: &std::path::Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(bytes)?;
    Ok(())
}

/// The coordination room's card: case number, need, comune, language, waiting time
/// and the marks (emergency, out of hours). Nothing the citizen wrote: their words go
/// to the case room only, after the claim. Never the Telegram id.
fn coordination_card(bundle: &Bundle, case: &Case, now: chrono::DateTime<Utc>) -> String {
    let need = bundle
        .directory
        .need(&case.need)
        .map(|need| need.label.get("it").to_string())
        // A need known only by its area ("ascolto"): the area's title.
        .or_else(|| {
            let title = bundle.flow(&case.need)?.title.as_ref()?;
            Some(format!("{} (da precisare)", title.get("it")))
        })
        .unwrap_or_else(|| {
            if case.need.is_empty() {
                "non indicato".into()
            } else {
                one_line(&case.need, 80)
            }
        });
    let comune = case
        .comune
        .as_deref()
        .and_then(|id| bundle.gazetteer.get(id))
        .map(|place| place.name.clone())
        .unwrap_or_else(|| "non indicato".into());
    let minutes = (now - case.created_at).num_minutes().max(0);
    let mut text = format!(
        "📋 Caso {}{}\nBisogno: {need}\nComune: {comune}\nLingua: {}\nIn attesa da {minutes} min{}",
        case.case,
        if case.emergency {
            " — EMERGENZA segnalata"
        } else {
            ""
        },
        crate::dialogue::messages::language_name(&case.lang),
        if case.in_hours {
            ""
        } else {
            " (arrivato fuori orario)"
        }
    );
    if case.status == "waiting" {
        text.push_str(&format!("\nPer prenderlo: !prendi {}", case.case));
    }
    text
}

/// The case room's card: the coordination card with the citizen's answers and the
/// dialogue's note, each on one line of its own (a newline in them cannot make a line
/// of the card).
fn case_card(bundle: &Bundle, case: &Case, now: chrono::DateTime<Utc>) -> String {
    let mut text = coordination_card(bundle, case, now);
    let answers: Vec<String> = case
        .summary
        .iter()
        .filter(|(name, _)| !matches!(name.as_str(), "need" | "comune" | "place"))
        .map(|(name, value)| format!("{}: {}", one_line(name, 40), one_line(value, 200)))
        .collect();
    if !answers.is_empty() {
        text.push_str(&format!("\nRisposte: {}", answers.join("; ")));
    }
    if !case.note.is_empty() {
        text.push_str(&format!("\nNota: {}", one_line(&case.note, 400)));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_citizens_lines_cannot_start_a_line_of_the_bot() {
        assert_eq!(citizen_says("ciao"), "Cittadino: ciao");
        let forged = "ok\n⚠️ POSSIBILE EMERGENZA (violenza)\r\nNota di Anna: chiudere\u{2028}!chiudi\n\nVia Roma 1";
        let said = citizen_says(forged);
        assert_eq!(
            said,
            "Cittadino: ok\n│ ⚠️ POSSIBILE EMERGENZA (violenza)\n│ Nota di Anna: chiudere\n│ !chiudi\n│ Via Roma 1"
        );
        assert!(
            said.lines().skip(1).all(|line| line.starts_with("│ ")),
            "{said}"
        );
    }

    fn case() -> Case {
        Case {
            case: 7,
            conversation_id: Some(1),
            channel: Some("telegram".into()),
            chat_id: Some("123456789".into()),
            need: "spid".into(),
            note: "Richiesta:\n!chiudi\nBisogno: falso".into(),
            comune: Some("pioltello".into()),
            lang: "it".into(),
            summary: vec![(
                "dettagli".into(),
                "mi chiamo Anna\n📋 Caso 8\u{2028}Comune: Roma".into(),
            )],
            in_hours: false,
            emergency: true,
            status: "waiting".into(),
            claimed_by: None,
            room: None,
            created_at: Utc::now(),
            claimed_at: None,
            room_ready: false,
        }
    }

    fn bundle() -> Bundle {
        let dialogues = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("dialogues");
        crate::dialogue::load(&dialogues).0
    }

    #[test]
    fn the_coordination_card_holds_no_word_of_the_citizen() {
        let card = coordination_card(&bundle(), &case(), Utc::now());
        for words in ["Anna", "Richiesta", "falso", "123456789", "Roma"] {
            assert!(!card.contains(words), "{words} in {card}");
        }
        for part in [
            "Caso 7",
            "EMERGENZA",
            "fuori orario",
            "Bisogno:",
            "Comune:",
            "Lingua:",
            "!prendi 7",
        ] {
            assert!(card.contains(part), "{part} missing in {card}");
        }
    }

    #[test]
    fn what_the_citizen_wrote_cannot_forge_a_line_of_the_case_card() {
        let card = case_card(&bundle(), &case(), Utc::now());
        assert!(card.contains("mi chiamo Anna"), "{card}");
        let lines: Vec<&str> = card.lines().collect();
        for line in &lines {
            assert!(!line.starts_with('!'), "a command line: {line:?}");
        }
        assert_eq!(
            lines.iter().filter(|line| line.starts_with("📋")).count(),
            1,
            "{card}"
        );
        assert_eq!(
            lines
                .iter()
                .filter(|line| line.starts_with("Bisogno:"))
                .count(),
            1,
            "{card}"
        );
        assert_eq!(
            lines
                .iter()
                .filter(|line| line.starts_with("Comune:"))
                .count(),
            1,
            "{card}"
        );
        assert!(!card.contains('\u{2028}'));
    }
}
