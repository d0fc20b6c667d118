//! Citizens on Telegram, through teloxide's core.
//!
//! Updates are stored in the inbox before Telegram is told they arrived (the next
//! `getUpdates` offset, or a webhook's 200), then processed from the inbox in update
//! order, each in one store transaction that also dedupes it. Replies leave through the
//! outbox: each chat's messages in order, Telegram's rate limits respected (teloxide's
//! Throttle), `retry_after` honoured, network errors and 5xx retried with backoff, a
//! blocked bot closing the conversation.
//!
//! Nothing here logs a citizen's words, a chat id or the token: errors are logged by kind.

pub mod format;

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use teloxide_core::Bot;
use teloxide_core::adaptors::Throttle;
use teloxide_core::adaptors::throttle::{Limits, Settings as ThrottleSettings};
use teloxide_core::errors::{ApiError, RequestError};
use teloxide_core::payloads::{
    GetUpdatesSetters, SendMessageSetters, SetMyCommandsSetters, SetWebhookSetters,
};
use teloxide_core::requests::Requester;
use teloxide_core::types::{AllowedUpdate, BotCommand, ChatId, ParseMode, Update, UpdateKind};
use tokio::sync::{Notify, watch};

use crate::config::Secret;
use crate::dialogue::Bundle;
use crate::directory::Point;
use crate::engine::Input;
use crate::metrics::Metrics;
use crate::store::{Delivery, Inbound, OutboxRow, Processed, Store};

/// The channel's name in the store.
pub const CHANNEL: &str = "telegram";

/// How many times an update is handled before it is set aside as a dead letter (with
/// waits of 250 ms doubling: about 4 seconds in all, during which later updates wait).
const UPDATE_ATTEMPTS: i64 = 5;

#[derive(Debug, Clone)]
pub struct TelegramSettings {
    pub token: Secret,
    /// Another Bot API server (the tests' fake one); None: Telegram's.
    pub api_url: Option<String>,
    /// Webhook mode: the public URL Telegram posts to, and the secret it sends back.
    pub webhook: Option<(String, Secret)>,
    /// Lift Telegram's rate limits (only for load tests against a fake server).
    pub unlimited: bool,
    /// Seconds a `getUpdates` long poll waits.
    pub poll_timeout: u32,
}

pub struct Telegram {
    bot: Throttle<Bot>,
    /// The same bot without pacing, used when the limits are lifted.
    direct: Bot,
    settings: TelegramSettings,
    store: Arc<Store>,
    bundle: Arc<Bundle>,
    metrics: Arc<Metrics>,
    /// Woken when updates are stored.
    pub inbox_ready: Notify,
    /// Woken when replies are owed.
    pub outbox_ready: Notify,
}

/// Why a delivery failed, and what to do about it.
enum Failure {
    RetryAfter(Duration),
    Transient(&'static str),
    Blocked,
    Refused(&'static str),
}

fn classify(error: &RequestError) -> Failure {
    match error {
        RequestError::RetryAfter(seconds) => Failure::RetryAfter(seconds.duration()),
        RequestError::Network(_) | RequestError::Io(_) => Failure::Transient("network"),
        RequestError::InvalidJson { .. } => Failure::Transient("bad_response"),
        RequestError::Api(
            ApiError::BotBlocked
            | ApiError::UserDeactivated
            | ApiError::BotKicked
            | ApiError::BotKickedFromSupergroup
            | ApiError::ChatNotFound,
        ) => Failure::Blocked,
        RequestError::Api(ApiError::Unknown(description))
            if [
                "Internal Server Error",
                "Bad Gateway",
                "Service Unavailable",
                "Gateway Timeout",
                "Too Many Requests",
            ]
            .iter()
            .any(|server| description.contains(server)) =>
        {
            Failure::Transient("server")
        }
        RequestError::Api(_) | RequestError::MigrateToChatId(_) => Failure::Refused("refused"),
    }
}

/// A few words about an error, never its text (a URL in it would carry the token).
/// A store error's kind, never its text.
fn store_error_kind(error: &crate::store::StoreError) -> String {
    let text = format!("{error:?}");
    let kind = text.split(['(', ' ', '{']).next().unwrap_or("error");
    format!("store: {kind}")
}

/// The chat of a stored update, read from its JSON (a dead letter is erased with it).
fn update_chat(payload: &str) -> Option<String> {
    let update: serde_json::Value = serde_json::from_str(payload).ok()?;
    let chat = ["message", "edited_message"]
        .iter()
        .find_map(|kind| update[kind]["chat"]["id"].as_i64())
        .or_else(|| update["callback_query"]["message"]["chat"]["id"].as_i64())
        .or_else(|| update["callback_query"]["from"]["id"].as_i64())?;
    Some(chat.to_string())
}

fn error_kind(error: &RequestError) -> &'static str {
    match classify(error) {
        Failure::RetryAfter(_) => "rate_limited",
        Failure::Transient(kind) | Failure::Refused(kind) => kind,
        Failure::Blocked => "blocked",
    }
}

/// Waiting before a retry: 1, 2, 4 ... seconds, at most five minutes.
fn backoff(attempts: i64) -> Duration {
    Duration::from_secs(1u64 << attempts.clamp(0, 8) as u64).min(Duration::from_secs(300))
}

impl Telegram {
    pub fn new(
        settings: TelegramSettings,
        store: Arc<Store>,
        bundle: Arc<Bundle>,
        metrics: Arc<Metrics>,
    ) -> anyhow::Result<Telegram> {
        let client = http_client(settings.poll_timeout)?;
        let mut bot = Bot::with_client(settings.token.expose(), client);
        if let Some(url) = &settings.api_url {
            let url = url
                .parse()
                .map_err(|_| anyhow::anyhow!("SPORTELLO_TELEGRAM_API_URL is not a URL"))?;
            bot = bot.set_api_url(url);
        }
        // Retries are the outbox's job, persisted: Throttle only paces. Lifted limits
        // (load tests against a fake server) skip it, and its 250 ms ticks, entirely.
        let direct = bot.clone();
        let bot = Throttle::spawn_with_settings(
            bot,
            ThrottleSettings::default()
                .limits(Limits::default())
                .no_retry(),
        );
        Ok(Telegram {
            bot,
            direct,
            settings,
            store,
            bundle,
            metrics,
            inbox_ready: Notify::new(),
            outbox_ready: Notify::new(),
        })
    }

    /// Commands in the menu (Italian, English, and the default), and the webhook set or
    /// removed to match the mode.
    pub async fn setup(&self) -> anyhow::Result<()> {
        let commands = |lang: &str| -> Vec<BotCommand> {
            let english = lang == "en";
            [
                ("start", "Inizia", "Start"),
                ("lingua", "Cambia lingua", "Change language"),
                ("volontario", "Parla con una persona", "Talk to a person"),
                ("ricomincia", "Torna al menu", "Back to the menu"),
                ("privacy", "Come usiamo i tuoi dati", "How we use your data"),
                ("dimentica", "Cancella i tuoi dati", "Erase your data"),
            ]
            .into_iter()
            .map(|(command, italian, english_text)| {
                BotCommand::new(command, if english { english_text } else { italian })
            })
            .collect()
        };
        self.bot
            .set_my_commands(commands("it"))
            .await
            .map_err(|error| anyhow::anyhow!("setMyCommands failed ({})", error_kind(&error)))?;
        for lang in ["it", "en"] {
            self.bot
                .set_my_commands(commands(lang))
                .language_code(lang)
                .await
                .map_err(|error| {
                    anyhow::anyhow!("setMyCommands failed ({})", error_kind(&error))
                })?;
        }
        match &self.settings.webhook {
            Some((url, secret)) => {
                let url = url
                    .parse()
                    .map_err(|_| anyhow::anyhow!("the webhook URL is not a URL"))?;
                self.bot
                    .set_webhook(url)
                    .secret_token(secret.expose().to_string())
                    .await
                    .map_err(|error| {
                        anyhow::anyhow!("setWebhook failed ({})", error_kind(&error))
                    })?;
            }
            None => {
                self.bot.delete_webhook().await.map_err(|error| {
                    anyhow::anyhow!("deleteWebhook failed ({})", error_kind(&error))
                })?;
            }
        }
        Ok(())
    }

    pub fn webhook_secret(&self) -> Option<&Secret> {
        self.settings.webhook.as_ref().map(|(_, secret)| secret)
    }

    /// Long polling: each batch is stored before the next `getUpdates` confirms it.
    pub async fn poll(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut offset: i32 = 0;
        let mut failures: i64 = 0;
        loop {
            let request = self
                .bot
                .get_updates()
                .offset(offset)
                .timeout(self.settings.poll_timeout)
                .allowed_updates(vec![
                    AllowedUpdate::Message,
                    AllowedUpdate::EditedMessage,
                    AllowedUpdate::CallbackQuery,
                ]);
            let result = tokio::select! {
                result = request => result,
                _ = shutdown.changed() => return,
            };
            let updates = match result {
                Ok(updates) => updates,
                Err(error) => {
                    failures += 1;
                    tracing::warn!(kind = error_kind(&error), "getUpdates failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff(failures.min(5))) => continue,
                        _ = shutdown.changed() => return,
                    }
                }
            };
            failures = 0;
            if updates.is_empty() {
                continue;
            }
            let batch: Vec<(i64, String)> = updates
                .iter()
                .filter_map(|update| {
                    serde_json::to_string(update)
                        .ok()
                        .map(|json| (i64::from(update.id.0), json))
                })
                .collect();
            loop {
                match self.store.inbox_put_all(CHANNEL, &batch, Utc::now()).await {
                    Ok(()) => break,
                    Err(error) => {
                        // Not confirmed to Telegram: it will send them again; we try again first.
                        tracing::error!(%error, "cannot store updates; retrying");
                        tokio::select! {
                            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                            _ = shutdown.changed() => return,
                        }
                    }
                }
            }
            self.metrics.updates_received.inc_by(batch.len() as u64);
            self.inbox_ready.notify_one();
            let highest = updates.iter().map(|update| update.id.0).max().unwrap_or(0);
            offset = i32::try_from(highest).unwrap_or(i32::MAX).saturating_add(1);
        }
    }

    /// A webhook delivery: stored before the 200 is answered.
    pub async fn accept(&self, body: &[u8]) -> Result<(), crate::store::StoreError> {
        let Ok(update) = serde_json::from_slice::<Update>(body) else {
            // Not an update we can read: answering 200 stops Telegram from insisting.
            tracing::warn!("webhook body is not a Telegram update; ignored");
            return Ok(());
        };
        let json = serde_json::to_string(&update).unwrap_or_default();
        self.store
            .inbox_put(CHANNEL, i64::from(update.id.0), &json, Utc::now())
            .await?;
        self.metrics.updates_received.inc();
        self.inbox_ready.notify_one();
        Ok(())
    }

    /// Processes stored updates in update order.
    pub async fn process_inbox(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            match self.store.inbox_batch(CHANNEL, 200).await {
                Ok(batch) if !batch.is_empty() => {
                    for (update_id, payload, attempts) in batch {
                        // A panic while handling one update is an error like another.
                        let this = self.clone();
                        let handling = payload.clone();
                        let outcome =
                            tokio::spawn(async move { this.handle(update_id, &handling).await })
                                .await;
                        let error = match outcome {
                            Ok(Ok(())) => None,
                            Ok(Err(error)) => Some(store_error_kind(&error)),
                            Err(_) => Some("panic".to_string()),
                        };
                        let Some(error) = error else {
                            if let Err(error) = self.store.inbox_done(CHANNEL, update_id).await {
                                tracing::error!(%error, "cannot clear a processed update");
                            }
                            continue;
                        };
                        // Tried a few times, then set aside: the queue goes on.
                        let recorded = if attempts + 1 >= UPDATE_ATTEMPTS {
                            tracing::error!(%error, "an update failed too many times; set aside as a dead letter");
                            self.metrics.failure("dead_letter");
                            let chat = update_chat(&payload);
                            self.store
                                .inbox_dead(CHANNEL, update_id, chat.as_deref(), &error, Utc::now())
                                .await
                        } else {
                            tracing::error!(%error, attempt = attempts + 1, "an update could not be processed; retrying");
                            tokio::time::sleep(Duration::from_millis(250 << attempts.clamp(0, 4)))
                                .await;
                            self.store.inbox_failed(CHANNEL, update_id).await
                        };
                        if let Err(error) = recorded {
                            tracing::error!(%error, "cannot record a failed update");
                            tokio::time::sleep(Duration::from_millis(500)).await;
                        }
                        break;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(error) => tracing::error!(%error, "cannot read the inbox"),
            }
            tokio::select! {
                _ = self.inbox_ready.notified() => {}
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn handle(&self, update_id: i64, payload: &str) -> Result<(), crate::store::StoreError> {
        let Ok(update) = serde_json::from_str::<Update>(payload) else {
            return Ok(());
        };
        let mut button_tag = None;
        let (chat, lang, input) = match &update.kind {
            UpdateKind::Message(message) if message.chat.is_private() => {
                let input = if let Some(text) = message.text() {
                    Input::Text(text.to_string())
                } else if let Some(location) = message.location() {
                    Input::Location(Point {
                        lat: location.latitude,
                        lon: location.longitude,
                    })
                } else if let Some(venue) = message.venue() {
                    Input::Location(Point {
                        lat: venue.location.latitude,
                        lon: venue.location.longitude,
                    })
                } else {
                    Input::Unsupported
                };
                let lang = message
                    .from
                    .as_ref()
                    .and_then(|user| user.language_code.clone());
                (message.chat.id, lang, input)
            }
            UpdateKind::EditedMessage(message) if message.chat.is_private() => {
                let lang = message
                    .from
                    .as_ref()
                    .and_then(|user| user.language_code.clone());
                (message.chat.id, lang, Input::Unsupported)
            }
            UpdateKind::CallbackQuery(query) => {
                // Stop the button's spinner; a failure here costs nothing.
                let _ = self.bot.answer_callback_query(query.id.clone()).await;
                let chat = query
                    .message
                    .as_ref()
                    .map(|message| message.chat().id)
                    .unwrap_or(ChatId(query.from.id.0 as i64));
                let input = match query.data.as_deref().and_then(format::parse_callback_data) {
                    Some((tag, payload)) => {
                        button_tag = Some(tag.to_string());
                        Input::Button(payload.to_string())
                    }
                    None => Input::StaleButton,
                };
                (chat, query.from.language_code.clone(), input)
            }
            _ => return Ok(()),
        };
        let inbound = Inbound {
            channel: CHANNEL.into(),
            chat_id: chat.0.to_string(),
            update_id: Some(update_id.to_string()),
            input,
            interface_lang: lang,
            button_tag,
            now: Utc::now(),
        };
        let started = std::time::Instant::now();
        let processed = self.store.process(&self.bundle, inbound).await?;
        self.metrics
            .engine_latency
            .observe(started.elapsed().as_secs_f64());
        if let Processed::Done(turn) = processed {
            if turn
                .outputs
                .iter()
                .any(|output| matches!(output, crate::engine::Output::Handover(_)))
            {
                self.refresh_waiting().await;
            }
            self.outbox_ready.notify_one();
        }
        Ok(())
    }

    async fn refresh_waiting(&self) {
        if let Ok(waiting) = self.store.handovers_waiting().await {
            self.metrics.handovers_waiting.set(waiting);
        }
    }

    /// Delivers the outbox: each chat's oldest message, chats in parallel.
    pub async fn deliver(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        loop {
            match self.store.outbox_due(CHANNEL, Utc::now(), 256).await {
                Ok(rows) if !rows.is_empty() => {
                    let sends = rows.into_iter().map(|row| {
                        let this = self.clone();
                        async move { this.deliver_one(row).await }
                    });
                    let tasks: Vec<_> = sends.map(tokio::spawn).collect();
                    for task in tasks {
                        let _ = task.await;
                    }
                    continue;
                }
                Ok(_) => {}
                Err(error) => tracing::error!(%error, "cannot read the outbox"),
            }
            tokio::select! {
                _ = self.outbox_ready.notified() => {}
                _ = self.store.outbox_changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                _ = shutdown.changed() => return,
            }
        }
    }

    async fn deliver_one(&self, row: OutboxRow) {
        let Ok(delivery) = serde_json::from_str::<Delivery>(&row.payload) else {
            let _ = self
                .store
                .outbox_dropped(row.id, Utc::now(), "unreadable")
                .await;
            return;
        };
        let Ok(chat) = row.chat_id.parse::<i64>() else {
            let _ = self
                .store
                .outbox_dropped(row.id, Utc::now(), "bad_chat")
                .await;
            return;
        };
        let outcome = self.send(ChatId(chat), row.id, delivery).await;
        let now = Utc::now();
        let recorded = match outcome {
            Ok(()) => {
                self.metrics.messages_sent.inc();
                self.store.outbox_sent(row.id, now).await
            }
            Err(error) => {
                let kind = error_kind(&error);
                self.metrics.failure(kind);
                match classify(&error) {
                    Failure::RetryAfter(wait) => {
                        tracing::warn!(
                            kind,
                            wait_seconds = wait.as_secs(),
                            "Telegram asks to wait"
                        );
                        self.store.outbox_failed(row.id, now + wait, kind).await
                    }
                    Failure::Transient(_) => {
                        tracing::warn!(
                            kind,
                            attempts = row.attempts + 1,
                            "delivery failed; will retry"
                        );
                        self.store
                            .outbox_failed(row.id, now + backoff(row.attempts), kind)
                            .await
                    }
                    Failure::Blocked => {
                        tracing::info!("a citizen blocked the bot; conversation closed");
                        self.store
                            .close_blocked(CHANNEL, &row.chat_id, now)
                            .await
                            .map(|_| ())
                    }
                    Failure::Refused(_) => {
                        tracing::error!(kind, "Telegram refused a message; given up");
                        self.store.outbox_dropped(row.id, now, kind).await
                    }
                }
            }
        };
        if let Err(error) = recorded {
            tracing::error!(%error, "cannot record a delivery");
        }
    }

    /// Sends a delivery, split when long. After each piece but the last, the row keeps
    /// only what remains, so a retry never sends a piece twice.
    async fn send(
        &self,
        chat: ChatId,
        row: i64,
        mut delivery: Delivery,
    ) -> Result<(), RequestError> {
        let location_label = self
            .bundle
            .bot
            .messages
            .get("location_button")
            .get(&delivery.lang)
            .to_string();
        let mut pieces = format::split(&delivery.text, format::MAX_CHUNK);
        while !pieces.is_empty() {
            let piece = pieces.remove(0);
            let markup = if pieces.is_empty() {
                format::keyboard(
                    &delivery.buttons,
                    &delivery.tag,
                    delivery.request_location,
                    &location_label,
                )
            } else {
                None
            };
            let text = format::escape_html(&piece);
            if self.settings.unlimited {
                send_piece(&self.direct, chat, text, markup).await?;
            } else {
                send_piece(&self.bot, chat, text, markup).await?;
            }
            if !pieces.is_empty() {
                delivery.text = pieces.join("\n\n");
                if let Ok(payload) = serde_json::to_string(&delivery)
                    && let Err(error) = self.store.outbox_progress(row, &payload).await
                {
                    tracing::error!(%error, "cannot record a long message's progress");
                }
            }
        }
        Ok(())
    }
}

async fn send_piece<R>(
    bot: &R,
    chat: ChatId,
    text: String,
    markup: Option<teloxide_core::types::ReplyMarkup>,
) -> Result<(), RequestError>
where
    R: Requester<Err = RequestError>,
{
    let mut request = bot.send_message(chat, text).parse_mode(ParseMode::Html);
    if let Some(markup) = markup {
        request = request.reply_markup(markup);
    }
    request.await?;
    Ok(())
}

/// teloxide's HTTP client settings, with a timeout longer than the long poll.
fn http_client(poll_timeout: u32) -> anyhow::Result<reqwest::Client> {
    teloxide_core::net::default_reqwest_settings()
        .timeout(Duration::from_secs(u64::from(poll_timeout) + 15))
        .build()
        .map_err(|_| anyhow::anyhow!("cannot build the HTTP client"))
}
