//! The volunteers' side, on Matrix (matrix-sdk 0.18).
//!
//! The bot logs in once, then restores its session (same device) from
//! `SPORTELLO_DATA_DIR`, next to the SQLite state and crypto store that encrypted rooms
//! need: losing that store would lock the bot out of them, so a session without its
//! store is refused. Event handlers are registered before the first sync from the stored
//! token, so what volunteers wrote while the bot was down is handled after a restart;
//! history is skipped only at the very first login.
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

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use matrix_sdk::authentication::matrix::MatrixSession;
use matrix_sdk::config::{RequestConfig, SyncSettings};
use matrix_sdk::ruma::api::client::room::create_room::v3::{
    Request as CreateRoomRequest, RoomPreset,
};
use matrix_sdk::ruma::events::reaction::OriginalSyncReactionEvent;
use matrix_sdk::ruma::events::room::encryption::RoomEncryptionEventContent;
use matrix_sdk::ruma::events::room::member::StrippedRoomMemberEvent;
use matrix_sdk::ruma::events::room::message::{
    MessageType, OriginalSyncRoomMessageEvent, RoomMessageEventContent,
};
use matrix_sdk::ruma::events::{InitialStateEvent, room::power_levels::UserPowerLevel};
use matrix_sdk::ruma::{
    EventId, OwnedEventId, OwnedRoomId, OwnedTransactionId, OwnedUserId, RoomAliasId, RoomId,
    UserId,
};
use matrix_sdk::{Client, Room, RoomState};
use tokio::sync::watch;

use crate::config::Secret;
use crate::dialogue::Bundle;
use crate::engine::Input;
use crate::store::{Case, Claim, Inbound, Store};

/// The store's channel name for what is owed to the volunteers.
pub const VOLUNTEERS: &str = "volunteers";

/// How long matrix-sdk retries one request (a homeserver down, slow, or answering 429
/// with its retry_after) before the send fails and the outbox takes over: then the
/// citizen is told that the answer is delayed, and the row is retried with the same
/// transaction id. matrix-sdk's default is to retry forever.
const REQUEST_RETRY_TIME: Duration = Duration::from_secs(10);

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
}

pub struct Matrix {
    client: Client,
    settings: MatrixSettings,
    store: Arc<Store>,
    bundle: Arc<Bundle>,
    coordination: OwnedRoomId,
    me: OwnedUserId,
}

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
            .sqlite_store(&store_dir, None)
            .request_config(RequestConfig::new().max_retry_time(REQUEST_RETRY_TIME))
            .build()
            .await
            .context("cannot reach the Matrix homeserver or open the Matrix store")?;
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
        let this = self.clone();
        self.client
            .add_event_handler(move |event: OriginalSyncRoomMessageEvent, room: Room| {
                let this = this.clone();
                async move { this.on_message(event, room).await }
            });
        let this = self.clone();
        self.client
            .add_event_handler(move |event: OriginalSyncReactionEvent, room: Room| {
                let this = this.clone();
                async move { this.on_reaction(event, room).await }
            });
    }

    /// Syncs, delivers what is owed to volunteers, until shutdown; restarts after errors.
    pub async fn run(self: Arc<Self>, stopped: watch::Receiver<bool>) {
        let sync = tokio::spawn(self.clone().sync_forever(stopped.clone()));
        let deliver = tokio::spawn(self.clone().deliver(stopped));
        let _ = sync.await;
        let _ = deliver.await;
    }

    async fn sync_forever(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let mut failures = 0u32;
        loop {
            let settings = SyncSettings::default().timeout(Duration::from_secs(10));
            let result = tokio::select! {
                result = self.client.sync_once(settings) => result,
                _ = stopped.changed() => return,
            };
            match result {
                Ok(_) => failures = 0,
                Err(error) => {
                    failures += 1;
                    tracing::warn!(error = %error_kind(&error), "Matrix sync failed; retrying");
                    let wait = Duration::from_millis(250 * 2u64.pow(failures.min(6)));
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = stopped.changed() => return,
                    }
                }
            }
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

    async fn is_volunteer(&self, user: &UserId) -> bool {
        if self
            .settings
            .volunteers
            .iter()
            .any(|listed| listed == user.as_str())
        {
            return true;
        }
        let Some(room) = self.client.get_room(&self.coordination) else {
            return false;
        };
        match room.get_member(user).await {
            Ok(Some(member))
                if member.membership()
                    == &matrix_sdk::ruma::events::room::member::MembershipState::Join =>
            {
                match member.power_level() {
                    UserPowerLevel::Infinite => true,
                    UserPowerLevel::Int(level) => {
                        i64::from(level) >= self.settings.volunteer_power_level
                    }
                    _ => false,
                }
            }
            _ => false,
        }
    }

    /// Posts a notice, retrying with the same transaction id; its event id once posted.
    async fn notice(&self, room: &Room, text: &str, txn_id: String) -> Option<OwnedEventId> {
        let content = RoomMessageEventContent::notice_plain(text);
        for attempt in 0..6u32 {
            match room
                .send(content.clone())
                .with_transaction_id(txn(txn_id.clone()))
                .await
            {
                Ok(sent) => return Some(sent.response.event_id),
                Err(error) => {
                    tracing::warn!(error = %error_kind(&error), attempt, "a Matrix message failed; retrying with the same transaction id");
                    tokio::time::sleep(Duration::from_millis(250 * 2u64.pow(attempt))).await;
                }
            }
        }
        None
    }

    /// Posts a notice that carries a case's data and remembers it (`card` in the
    /// coordination room can be claimed by a reaction; all are redacted by `/dimentica`).
    async fn case_notice(&self, case: i64, kind: &str, room: &Room, text: &str, txn_id: String) {
        if let Some(event) = self.notice(room, text, txn_id).await {
            self.remember(case, kind, room.room_id(), &event).await;
        }
    }

    async fn remember(&self, case: i64, kind: &str, room: &RoomId, event: &EventId) {
        if let Err(error) = self
            .store
            .record_case_event(case, room.as_str(), event.as_str(), kind, Utc::now())
            .await
        {
            tracing::error!(%error, "cannot record a case event");
        }
    }

    /// A reaction (any emoji) on a card in the coordination room claims its case.
    async fn on_reaction(&self, event: OriginalSyncReactionEvent, room: Room) {
        if event.sender == self.me
            || room.room_id() != self.coordination
            || room.state() != RoomState::Joined
        {
            return;
        }
        let card = event.content.relates_to.event_id.as_str();
        if let Ok(Some(case)) = self.store.case_of_card(card).await {
            self.claim(case, &event.sender, &room, event.event_id.as_str())
                .await;
        }
    }

    async fn on_message(&self, event: OriginalSyncRoomMessageEvent, room: Room) {
        if event.sender == self.me || room.state() != RoomState::Joined {
            return;
        }
        let MessageType::Text(text) = &event.content.msgtype else {
            return;
        };
        let body = text.body.trim().to_string();
        let event_id = event.event_id.to_string();
        if room.room_id() == self.coordination {
            if let Some(rest) = body.strip_prefix("!prendi") {
                match rest.trim().trim_start_matches('#').parse::<i64>() {
                    Ok(case) => self.claim(case, &event.sender, &room, &event_id).await,
                    Err(_) => {
                        self.notice(
                            &room,
                            "Scrivi il numero del caso: !prendi 12",
                            format!("sp-{event_id}-usage"),
                        )
                        .await;
                    }
                }
            }
            return;
        }
        let Ok(Some(case)) = self.store.case_by_room(room.room_id().as_str()).await else {
            // The bot is only in the coordination room and the rooms of its cases: this
            // one's case was closed, released or erased.
            self.notice(
                &room,
                "Questo caso è chiuso o è tornato in coda: il cittadino non riceve più i messaggi di questa stanza.",
                format!("sp-{event_id}-stale"),
            )
            .await;
            return;
        };
        if !self.is_volunteer(&event.sender).await {
            self.notice(
                &room,
                "Solo i volontari dello sportello possono scrivere al cittadino da qui.",
                format!("sp-{event_id}-refused"),
            )
            .await;
            return;
        }
        if let Some(command) = body.strip_prefix('!') {
            let (name, argument) = command.split_once(' ').unwrap_or((command, ""));
            match name {
                "chiudi" => self.close(&case, &event.sender, &room, &event_id).await,
                "rilascia" => self.release(&case, &event.sender, &room, &event_id).await,
                "nota" if !argument.trim().is_empty() => {
                    if self
                        .store
                        .add_note(
                            case.case,
                            event.sender.as_str(),
                            argument.trim(),
                            Utc::now(),
                        )
                        .await
                        .is_ok()
                    {
                        self.notice(
                            &room,
                            "Nota salvata per i volontari (il cittadino non la vede).",
                            format!("sp-{event_id}-note"),
                        )
                        .await;
                    }
                }
                "info" => {
                    let text = self.case_info(&case).await;
                    self.notice(&room, &text, format!("sp-{event_id}-info"))
                        .await;
                }
                _ => {
                    self.notice(&room, "Comandi: !chiudi, !rilascia, !nota TESTO, !info. Il resto arriva al cittadino.", format!("sp-{event_id}-help"))
                        .await;
                }
            }
            return;
        }
        // A volunteer's words for the citizen, once per event.
        self.to_citizen(&case, Input::FromVolunteer(body), &event_id)
            .await;
    }

    async fn to_citizen(&self, case: &Case, input: Input, event_id: &str) {
        let (Some(channel), Some(chat_id)) = (case.channel.clone(), case.chat_id.clone()) else {
            return;
        };
        let inbound = Inbound {
            channel,
            chat_id,
            update_id: Some(format!("matrix:{event_id}")),
            input,
            interface_lang: None,
            button_tag: None,
            now: Utc::now(),
        };
        if let Err(error) = self.store.process(&self.bundle, inbound).await {
            tracing::error!(%error, "cannot carry a volunteer's message to the citizen");
        }
    }

    async fn claim(&self, case_id: i64, volunteer: &UserId, coordination: &Room, event_id: &str) {
        if !self.is_volunteer(volunteer).await {
            self.notice(
                coordination,
                "Solo i volontari dello sportello possono prendere un caso.",
                format!("sp-{event_id}-refused"),
            )
            .await;
            return;
        }
        let claim = match self
            .store
            .claim(case_id, volunteer.as_str(), Utc::now())
            .await
        {
            Ok(claim) => claim,
            Err(error) => {
                tracing::error!(%error, "cannot claim a case");
                return;
            }
        };
        match claim {
            Claim::Claimed => {}
            Claim::Taken(by) => {
                let text = format!("Il caso {case_id} è già stato preso da {by}.");
                self.notice(coordination, &text, format!("sp-{event_id}-taken"))
                    .await;
                return;
            }
            Claim::Closed => {
                self.notice(
                    coordination,
                    &format!("Il caso {case_id} è chiuso."),
                    format!("sp-{event_id}-closed"),
                )
                .await;
                return;
            }
            Claim::Unknown => {
                self.notice(
                    coordination,
                    &format!("Non c'è un caso {case_id}."),
                    format!("sp-{event_id}-unknown"),
                )
                .await;
                return;
            }
        }
        let Ok(Some(case)) = self.store.case(case_id).await else {
            return;
        };
        let mut request = CreateRoomRequest::new();
        request.name = Some(format!("Caso {case_id}"));
        request.invite = vec![volunteer.to_owned()];
        request.preset = Some(RoomPreset::PrivateChat);
        if self.settings.encrypted {
            request.initial_state = vec![
                InitialStateEvent::with_empty_state_key(
                    RoomEncryptionEventContent::with_recommended_defaults(),
                )
                .to_raw_any(),
            ];
        }
        let room = match self.client.create_room(request).await {
            Ok(room) => room,
            Err(error) => {
                tracing::error!(error = %error_kind(&error), "cannot create the case room; the case goes back to the queue");
                let _ = self.store.release_case(case_id).await;
                self.notice(
                    coordination,
                    &format!("Non riesco a creare la stanza del caso {case_id}: riprova."),
                    format!("sp-{event_id}-failed"),
                )
                .await;
                return;
            }
        };
        let _ = self
            .store
            .set_case_room(case_id, room.room_id().as_str())
            .await;
        let card = self.card(&case).await;
        self.case_notice(
            case_id,
            "citizen",
            &room,
            &card,
            format!("sp-{event_id}-card"),
        )
        .await;
        if let Some(conversation) = case.conversation_id
            && let Ok(lines) = self.store.recent_transcript(conversation, 20).await
        {
            let transcript: Vec<String> = lines
                .iter()
                .map(|(author, text)| {
                    let who = match author.as_str() {
                        "citizen" => "Cittadino",
                        "bot" => "Bot",
                        _ => "Volontario",
                    };
                    format!("{who}: {}", text.chars().take(600).collect::<String>())
                })
                .collect();
            let text = format!("Ultimi messaggi:\n{}", transcript.join("\n"));
            self.case_notice(
                case_id,
                "citizen",
                &room,
                &text,
                format!("sp-{event_id}-transcript"),
            )
            .await;
        }
        self.notice(
            &room,
            "Quello che scrivi qui arriva al cittadino. Comandi: !chiudi, !rilascia, !nota TESTO, !info.",
            format!("sp-{event_id}-help"),
        )
        .await;
        self.notice(
            coordination,
            &format!("Il caso {case_id} è stato preso da {volunteer}."),
            format!("sp-{event_id}-claimed"),
        )
        .await;
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
            &case,
            Input::VolunteerJoined(name),
            &format!("{event_id}-joined"),
        )
        .await;
    }

    async fn close(&self, case: &Case, volunteer: &UserId, room: &Room, event_id: &str) {
        if self
            .store
            .close_case(case.case, Utc::now())
            .await
            .unwrap_or(false)
        {
            self.to_citizen(case, Input::VolunteerClosed, event_id)
                .await;
            self.notice(
                room,
                "Caso chiuso: il bot riprende la conversazione. Grazie!",
                format!("sp-{event_id}-closed"),
            )
            .await;
            if let Some(coordination) = self.client.get_room(&self.coordination) {
                self.notice(
                    &coordination,
                    &format!("Il caso {} è stato chiuso da {volunteer}.", case.case),
                    format!("sp-{event_id}-closed-note"),
                )
                .await;
            }
        }
    }

    async fn release(&self, case: &Case, volunteer: &UserId, room: &Room, event_id: &str) {
        if self.store.release_case(case.case).await.unwrap_or(false) {
            self.to_citizen(case, Input::VolunteerReleased, event_id)
                .await;
            self.notice(
                room,
                "Caso rilasciato: torna in coda per un altro volontario.",
                format!("sp-{event_id}-released"),
            )
            .await;
            if let Some(coordination) = self.client.get_room(&self.coordination) {
                let card = self.card(case).await;
                let text = format!("{volunteer} ha rilasciato il caso {}.\n{card}", case.case);
                self.case_notice(
                    case.case,
                    "card",
                    &coordination,
                    &text,
                    format!("sp-{event_id}-released-card"),
                )
                .await;
            }
            // The bot stays in the old room: `/dimentica` may have to redact there.
        }
    }

    /// The handover card: case number, need, comune, language, waiting time, a short
    /// summary of the answers. Never the transcript, never the Telegram id.
    async fn card(&self, case: &Case) -> String {
        let need = self
            .bundle
            .directory
            .need(&case.need)
            .map(|need| need.label.get("it").to_string())
            // A need known only by its area ("ascolto"): the area's title.
            .or_else(|| {
                let title = self.bundle.flow(&case.need)?.title.as_ref()?;
                Some(format!("{} (da precisare)", title.get("it")))
            })
            .unwrap_or_else(|| {
                if case.need.is_empty() {
                    "non indicato".into()
                } else {
                    case.need.clone()
                }
            });
        let comune = case
            .comune
            .as_deref()
            .and_then(|id| self.bundle.gazetteer.get(id))
            .map(|place| place.name.clone())
            .unwrap_or_else(|| "non indicato".into());
        let minutes = (Utc::now() - case.created_at).num_minutes().max(0);
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
        let answers: Vec<String> = case
            .summary
            .iter()
            .filter(|(name, _)| !matches!(name.as_str(), "need" | "comune" | "place"))
            .map(|(name, value)| format!("{name}: {}", value.chars().take(200).collect::<String>()))
            .collect();
        if !answers.is_empty() {
            text.push_str(&format!("\nRisposte: {}", answers.join("; ")));
        }
        if !case.note.is_empty() {
            text.push_str(&format!("\nNota: {}", case.note));
        }
        if case.status == "waiting" {
            text.push_str(&format!("\nPer prenderlo: !prendi {}", case.case));
        }
        text
    }

    async fn case_info(&self, case: &Case) -> String {
        let mut text = self.card(case).await;
        if let Ok(notes) = self.store.notes(case.case).await {
            for (author, note) in notes {
                text.push_str(&format!("\nNota di {author}: {note}"));
            }
        }
        text
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
            let card = self.card(&case).await;
            self.case_notice(
                case.case,
                "card",
                &coordination,
                &format!("⏰ Questo caso aspetta ancora un volontario.\n{card}"),
                format!("sp-remind-{}-{stamp}", case.case),
            )
            .await;
            if self.store.case_reminded(case.case, now).await.is_ok() {
                self.to_citizen(
                    &case,
                    Input::VolunteerReminder,
                    &format!("remind-{}-{stamp}", case.case),
                )
                .await;
            }
        }
    }

    /// Delivers the volunteers' outbox: cards, citizens' messages, blocked notices.
    async fn deliver(self: Arc<Self>, mut stopped: watch::Receiver<bool>) {
        let mut last_reminder = std::time::Instant::now() - Duration::from_secs(3600);
        loop {
            if last_reminder.elapsed() >= Duration::from_secs(5) {
                last_reminder = std::time::Instant::now();
                self.remind().await;
            }
            match self.store.outbox_due(VOLUNTEERS, Utc::now(), 100).await {
                Ok(rows) if !rows.is_empty() => {
                    for row in rows {
                        let delivered = self.deliver_row(row.id, &row.payload).await;
                        let now = Utc::now();
                        let recorded = match delivered {
                            Delivered::Done => self.store.outbox_sent(row.id, now).await,
                            Delivered::Retry(waiting) => {
                                if row.attempts == 0
                                    && let Some(case) = waiting
                                {
                                    self.tell_delayed(row.id, &case).await;
                                }
                                let wait =
                                    chrono::Duration::seconds(1i64 << row.attempts.clamp(0, 6));
                                self.store.outbox_failed(row.id, now + wait, "matrix").await
                            }
                        };
                        if let Err(error) = recorded {
                            tracing::error!(%error, "cannot record a delivery to the volunteers");
                        }
                    }
                    continue;
                }
                Ok(_) => {}
                Err(error) => tracing::error!(%error, "cannot read the volunteers' outbox"),
            }
            tokio::select! {
                _ = self.store.outbox_changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = stopped.changed() => return,
            }
        }
    }

    async fn deliver_row(&self, row: i64, payload: &str) -> Delivered {
        let Ok(payload) = serde_json::from_str::<serde_json::Value>(payload) else {
            return Delivered::Done;
        };
        let txn_id = format!("sp-outbox-{row}");
        match payload["kind"].as_str() {
            Some("handover") => {
                let Some(case_id) = payload["case"].as_i64() else {
                    return Delivered::Done;
                };
                let Ok(Some(case)) = self.store.case(case_id).await else {
                    return Delivered::Done;
                };
                let Some(room) = self.client.get_room(&self.coordination) else {
                    return Delivered::Retry(Some(Box::new(case)));
                };
                let card = self.card(&case).await;
                match room
                    .send(RoomMessageEventContent::notice_plain(card))
                    .with_transaction_id(txn(txn_id))
                    .await
                {
                    Ok(response) => {
                        let event = response.response.event_id;
                        self.remember(case_id, "card", room.room_id(), &event).await;
                        Delivered::Done
                    }
                    Err(error) => {
                        tracing::warn!(error = %error_kind(&error), "cannot post a case card; retrying");
                        Delivered::Retry(Some(Box::new(case)))
                    }
                }
            }
            Some("relay") => {
                let Some(conversation) = payload["conversation"].as_i64() else {
                    return Delivered::Done;
                };
                let text = payload["text"].as_str().unwrap_or_default();
                let alert = payload["alert"].as_str();
                let Ok(Some(case)) = self.store.open_case_for_conversation(conversation).await
                else {
                    return Delivered::Done;
                };
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
                        self.case_notice(
                            case.case,
                            "card",
                            &coordination,
                            &text,
                            format!("{txn_id}-alert"),
                        )
                        .await;
                    }
                    return Delivered::Done;
                };
                let body = match alert {
                    Some(kind) => format!(
                        "⚠️ POSSIBILE EMERGENZA ({kind}): il bot ha dato al cittadino i numeri di emergenza.\nCittadino: {text}"
                    ),
                    None => format!("Cittadino: {text}"),
                };
                let content = RoomMessageEventContent::text_plain(body);
                match room.send(content).with_transaction_id(txn(txn_id)).await {
                    Ok(sent) => {
                        self.remember(
                            case.case,
                            "citizen",
                            room.room_id(),
                            &sent.response.event_id,
                        )
                        .await;
                        Delivered::Done
                    }
                    Err(error) => {
                        tracing::warn!(error = %error_kind(&error), "cannot relay a citizen's message; retrying");
                        Delivered::Retry(Some(Box::new(case)))
                    }
                }
            }
            Some("blocked") => {
                let Some(conversation) = payload["conversation"].as_i64() else {
                    return Delivered::Done;
                };
                let Ok(Some(case)) = self.store.open_case_for_conversation(conversation).await
                else {
                    return Delivered::Done;
                };
                let _ = self.store.close_case(case.case, Utc::now()).await;
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
        if reason == "retention" {
            return true;
        }
        let text = format!("Caso {case_id} chiuso: {why}. I suoi messaggi sono stati rimossi.");
        let case = self.store.case(case_id).await.ok().flatten();
        if let Some(room) = case.as_ref().and_then(|case| self.case_room(case)) {
            self.notice(&room, &text, format!("{txn_id}-room")).await;
        }
        if let Some(coordination) = self.client.get_room(&self.coordination) {
            self.notice(&coordination, &text, format!("{txn_id}-coordination"))
                .await;
        }
        true
    }

    /// The first time a citizen's card or message cannot reach the volunteers, the
    /// citizen is told the answer is delayed (once per row, deduped by the store; later
    /// rows of the chat wait behind this one, so once per outage).
    async fn tell_delayed(&self, row: i64, case: &Case) {
        if case.status != "closed" {
            self.to_citizen(case, Input::VolunteerDelayed, &format!("delayed-{row}"))
                .await;
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
