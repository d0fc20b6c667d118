//! A fake Telegram Bot API on 127.0.0.1 for the tests and the load benchmark: it queues
//! citizens' updates for `getUpdates` (long polling), records what the bot sends, and can
//! be told to answer 429, 500 or 403. Method names are matched case-insensitively, as
//! teloxide writes them `SendMessage`.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::routing::post;
use serde_json::{Value, json};
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct Sent {
    pub chat_id: i64,
    pub text: String,
    pub parse_mode: Option<String>,
    pub markup: Option<Value>,
    pub at: Instant,
}

impl Sent {
    /// The callback data of the inline button whose label contains `label`.
    pub fn button(&self, label: &str) -> Option<String> {
        let rows = self.markup.as_ref()?.get("inline_keyboard")?.as_array()?;
        rows.iter()
            .flat_map(|row| row.as_array().into_iter().flatten())
            .find(|button| {
                button["text"]
                    .as_str()
                    .is_some_and(|text| text.contains(label))
            })
            .and_then(|button| button["callback_data"].as_str().map(str::to_string))
    }

    pub fn asks_location(&self) -> bool {
        self.markup
            .as_ref()
            .is_some_and(|markup| markup.to_string().contains("\"request_location\":true"))
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Scripted {
    TooManyRequests(u32),
    ServerError,
}

#[derive(Default)]
struct FakeState {
    next_update_id: i64,
    pending: Vec<Value>,
    sent: Vec<Sent>,
    /// Every sendMessage attempt, answered or failed: (chat, at).
    attempts: Vec<(i64, Instant)>,
    calls: Vec<String>,
    failures: VecDeque<Scripted>,
    blocked: HashSet<i64>,
    next_message_id: i64,
    /// Messages received per chat, and who waits for them: one wake-up per chat.
    counts: HashMap<i64, usize>,
    signals: HashMap<i64, Arc<Notify>>,
    said: Vec<String>,
}

#[derive(Clone)]
pub struct FakeTelegram {
    pub url: String,
    state: Arc<Mutex<FakeState>>,
    updated: Arc<Notify>,
}

pub const TOKEN: &str = "4242:FAKE-TOKEN-never-in-logs";

impl FakeTelegram {
    pub async fn start() -> FakeTelegram {
        let fake = FakeTelegram {
            url: String::new(),
            state: Arc::new(Mutex::new(FakeState {
                next_update_id: 1000,
                next_message_id: 1,
                ..FakeState::default()
            })),
            updated: Arc::new(Notify::new()),
        };
        let router = Router::new()
            .route("/{bot}/{method}", post(handle))
            .with_state(fake.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", listener.local_addr().unwrap());
        tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        FakeTelegram { url, ..fake }
    }

    fn push(&self, mut update: Value) -> i64 {
        let mut state = self.state.lock().unwrap();
        let id = state.next_update_id;
        state.next_update_id += 1;
        update["update_id"] = json!(id);
        state.pending.push(update);
        drop(state);
        self.updated.notify_waiters();
        id
    }

    /// Delivers an update again with the same id, as Telegram may.
    pub fn redeliver(&self, update_id: i64, update: Value) {
        let mut update = update;
        update["update_id"] = json!(update_id);
        self.state.lock().unwrap().pending.push(update);
        self.updated.notify_waiters();
    }

    fn user(chat: i64, lang: &str) -> Value {
        json!({ "id": chat, "is_bot": false, "first_name": "Cittadino", "language_code": lang })
    }

    fn message(chat: i64, lang: &str, extra: Value) -> Value {
        let mut message = json!({
            "message_id": 1,
            "date": 1_773_740_000,
            "chat": { "id": chat, "type": "private", "first_name": "Cittadino" },
            "from": Self::user(chat, lang),
        });
        for (key, value) in extra.as_object().unwrap() {
            message[key] = value.clone();
        }
        message
    }

    pub fn text_update(chat: i64, text: &str) -> Value {
        json!({ "message": Self::message(chat, "it", json!({ "text": text })) })
    }

    pub fn text(&self, chat: i64, text: &str) -> i64 {
        self.state.lock().unwrap().said.push(text.to_string());
        self.push(Self::text_update(chat, text))
    }

    /// Everything citizens wrote, for the log check.
    pub fn said(&self) -> Vec<String> {
        self.state.lock().unwrap().said.clone()
    }

    pub fn text_in(&self, chat: i64, lang: &str, text: &str) -> i64 {
        self.push(json!({ "message": Self::message(chat, lang, json!({ "text": text })) }))
    }

    pub fn location(&self, chat: i64, lat: f64, lon: f64) -> i64 {
        self.push(json!({ "message": Self::message(chat, "it", json!({ "location": { "latitude": lat, "longitude": lon } })) }))
    }

    pub fn photo(&self, chat: i64) -> i64 {
        let photo = json!([{ "file_id": "f", "file_unique_id": "u", "width": 10, "height": 10, "file_size": 100 }]);
        self.push(json!({ "message": Self::message(chat, "it", json!({ "photo": photo })) }))
    }

    pub fn edited(&self, chat: i64, text: &str) -> i64 {
        self.push(json!({ "edited_message": Self::message(chat, "it", json!({ "text": text, "edit_date": 1_773_740_100 })) }))
    }

    pub fn press(&self, chat: i64, data: &str) -> i64 {
        self.push(json!({ "callback_query": {
            "id": format!("cq-{chat}-{}", data.len()),
            "from": Self::user(chat, "it"),
            "chat_instance": "ci",
            "data": data,
            "message": Self::message(chat, "it", json!({ "text": "..." })),
        }}))
    }

    pub fn fail_next(&self, failure: Scripted) {
        self.state.lock().unwrap().failures.push_back(failure);
    }

    pub fn block(&self, chat: i64) {
        self.state.lock().unwrap().blocked.insert(chat);
    }

    pub fn sent(&self, chat: i64) -> Vec<Sent> {
        self.state
            .lock()
            .unwrap()
            .sent
            .iter()
            .filter(|sent| sent.chat_id == chat)
            .cloned()
            .collect()
    }

    pub fn all_sent(&self) -> usize {
        self.state.lock().unwrap().sent.len()
    }

    pub fn attempts(&self, chat: i64) -> Vec<Instant> {
        self.state
            .lock()
            .unwrap()
            .attempts
            .iter()
            .filter(|(c, _)| *c == chat)
            .map(|(_, at)| *at)
            .collect()
    }

    pub fn calls(&self) -> Vec<String> {
        self.state.lock().unwrap().calls.clone()
    }

    /// Waits until `chat` has received `count` messages (the deadline only stops a hang).
    pub async fn wait_sent(&self, chat: i64, count: usize) -> Vec<Sent> {
        self.wait_count(chat, count).await;
        self.sent(chat)
    }

    /// Waits until `chat` has received `count` messages, without copying them.
    pub async fn wait_count(&self, chat: i64, count: usize) {
        let deadline = Instant::now() + Duration::from_secs(120);
        let signal = self
            .state
            .lock()
            .unwrap()
            .signals
            .entry(chat)
            .or_default()
            .clone();
        loop {
            let notified = signal.notified();
            let have = self
                .state
                .lock()
                .unwrap()
                .counts
                .get(&chat)
                .copied()
                .unwrap_or(0);
            if have >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "chat {chat} received {have} of {count} messages: {:#?}",
                self.sent(chat)
            );
            let _ = tokio::time::timeout(Duration::from_millis(500), notified).await;
        }
    }

    /// /start and consent by button: the citizen is at the menu.
    pub async fn to_menu(&self, chat: i64, seen: &mut usize) {
        self.text(chat, "/start");
        let privacy = self.next(chat, seen).await;
        assert!(privacy.text.contains("Sei d'accordo?"), "{privacy:?}");
        let accept = privacy.button("accetto").expect("an accept button");
        self.press(chat, &accept);
        let menu = self.next(chat, seen).await;
        assert!(menu.text.contains("Di cosa hai bisogno?"), "{menu:?}");
    }

    /// Waits for the next message to `chat` after the `already` it had, and returns it.
    pub async fn next(&self, chat: i64, already: &mut usize) -> Sent {
        let sent = self.wait_sent(chat, *already + 1).await;
        *already = sent.len();
        sent[sent.len() - 1].clone()
    }
}

fn ok(result: Value) -> (axum::http::StatusCode, String) {
    (
        axum::http::StatusCode::OK,
        json!({ "ok": true, "result": result }).to_string(),
    )
}

fn error(
    status: u16,
    description: &str,
    parameters: Option<Value>,
) -> (axum::http::StatusCode, String) {
    let mut body = json!({ "ok": false, "error_code": status, "description": description });
    if let Some(parameters) = parameters {
        body["parameters"] = parameters;
    }
    (
        axum::http::StatusCode::from_u16(status).unwrap(),
        body.to_string(),
    )
}

async fn handle(
    State(fake): State<FakeTelegram>,
    Path((bot, method)): Path<(String, String)>,
    body: Bytes,
) -> (axum::http::StatusCode, String) {
    if bot != format!("bot{TOKEN}") {
        return error(401, "Unauthorized", None);
    }
    let method = method.to_lowercase();
    let body: Value = serde_json::from_slice(&body).unwrap_or(json!({}));
    fake.state.lock().unwrap().calls.push(method.clone());
    match method.as_str() {
        "getme" => ok(
            json!({ "id": 4242, "is_bot": true, "first_name": "Sportello", "username": "sportello_test_bot" }),
        ),
        "getupdates" => {
            let offset = body["offset"].as_i64().unwrap_or(0);
            let timeout = body["timeout"].as_u64().unwrap_or(0).min(30);
            let deadline = Instant::now() + Duration::from_secs(timeout);
            loop {
                let notified = fake.updated.notified();
                {
                    let mut state = fake.state.lock().unwrap();
                    state
                        .pending
                        .retain(|update| update["update_id"].as_i64().unwrap_or(0) >= offset);
                    if !state.pending.is_empty() {
                        let mut updates = state.pending.clone();
                        updates.sort_by_key(|update| update["update_id"].as_i64());
                        return ok(Value::Array(updates));
                    }
                }
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return ok(json!([]));
                }
                let _ = tokio::time::timeout(left, notified).await;
            }
        }
        "sendmessage" => {
            let chat = body["chat_id"].as_i64().unwrap_or(0);
            let mut state = fake.state.lock().unwrap();
            state.attempts.push((chat, Instant::now()));
            if state.blocked.contains(&chat) {
                return error(403, "Forbidden: bot was blocked by the user", None);
            }
            match state.failures.pop_front() {
                Some(Scripted::TooManyRequests(seconds)) => {
                    return error(
                        429,
                        &format!("Too Many Requests: retry after {seconds}"),
                        Some(json!({ "retry_after": seconds })),
                    );
                }
                Some(Scripted::ServerError) => return error(500, "Internal Server Error", None),
                None => {}
            }
            let text = body["text"].as_str().unwrap_or("").to_string();
            state.sent.push(Sent {
                chat_id: chat,
                text: text.clone(),
                parse_mode: body["parse_mode"].as_str().map(str::to_string),
                markup: body.get("reply_markup").cloned(),
                at: Instant::now(),
            });
            let message_id = state.next_message_id;
            state.next_message_id += 1;
            *state.counts.entry(chat).or_default() += 1;
            let signal = state.signals.get(&chat).cloned();
            drop(state);
            if let Some(signal) = signal {
                signal.notify_waiters();
            }
            ok(json!({
                "message_id": message_id,
                "date": 1_773_740_000,
                "chat": { "id": chat, "type": "private", "first_name": "Cittadino" },
                "text": text,
            }))
        }
        _ => ok(json!(true)),
    }
}
