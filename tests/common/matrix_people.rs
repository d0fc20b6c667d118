//! People on Matrix for the tests and the latency benchmark: registered on the test
//! homeserver, syncing, accepting invitations, remembering every text they see.
#![allow(dead_code)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use matrix_sdk::config::SyncSettings;
use matrix_sdk::ruma::api::client::account::register::v3::Request as RegisterRequest;
use matrix_sdk::ruma::api::client::uiaa::{AuthData, Dummy};
use matrix_sdk::ruma::events::room::member::StrippedRoomMemberEvent;
use matrix_sdk::ruma::events::room::message::{
    MessageType, OriginalSyncRoomMessageEvent, RoomMessageEventContent,
};
use matrix_sdk::ruma::{OwnedRoomId, OwnedUserId, RoomId};
use matrix_sdk::{Client, Room};

pub fn unique(name: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{name}{}x{}x{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst),
        chrono::Utc::now().timestamp_micros() % 1_000_000
    )
}

pub const PASSWORD: &str = "test-password-123";

/// A volunteer (or anyone) on Matrix: registered, syncing, accepting invitations,
/// remembering every text message it sees (decrypted).
pub struct Person {
    pub client: Client,
    pub user: OwnedUserId,
    pub seen: Arc<Mutex<Vec<(OwnedRoomId, String)>>>,
    _dir: tempfile::TempDir,
}

impl Person {
    pub async fn register(homeserver: &str, name: &str) -> Person {
        let (client, dir) = Person::client(homeserver).await;
        let mut request = RegisterRequest::new();
        request.username = Some(name.to_string());
        request.password = Some(PASSWORD.to_string());
        request.initial_device_display_name = Some(name.to_string());
        request.auth = Some(AuthData::Dummy(Dummy::new()));
        client
            .matrix_auth()
            .register(request)
            .await
            .expect("registration on the test homeserver");
        Person::watching(client, dir)
    }

    /// Another device of an existing account (the bot's, to act as an administrator
    /// would).
    pub async fn login(homeserver: &str, name: &str) -> Person {
        let (client, dir) = Person::client(homeserver).await;
        client
            .matrix_auth()
            .login_username(name, PASSWORD)
            .await
            .expect("login on the test homeserver");
        Person::watching(client, dir)
    }

    /// A client with a store of its own, not logged in yet.
    async fn client(homeserver: &str) -> (Client, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let client = Client::builder()
            .homeserver_url(homeserver)
            .sqlite_store(dir.path(), None)
            .build()
            .await
            .unwrap();
        (client, dir)
    }

    /// Records what the client sees and accepts its invitations.
    fn watching(client: Client, dir: tempfile::TempDir) -> Person {
        let user = client.user_id().unwrap().to_owned();
        let seen: Arc<Mutex<Vec<(OwnedRoomId, String)>>> = Arc::default();
        let log = seen.clone();
        client.add_event_handler(move |event: OriginalSyncRoomMessageEvent, room: Room| {
            let log = log.clone();
            async move {
                let body = match &event.content.msgtype {
                    MessageType::Text(text) => text.body.clone(),
                    MessageType::Notice(notice) => notice.body.clone(),
                    _ => return,
                };
                log.lock().unwrap().push((room.room_id().to_owned(), body));
            }
        });
        let me = user.clone();
        client.add_event_handler(move |event: StrippedRoomMemberEvent, room: Room| {
            let me = me.clone();
            async move {
                if event.state_key == me {
                    let _ = room.join().await;
                }
            }
        });
        // One long poll after another, as the bot does (matrix-sdk's `sync` loop added
        // about a second before this client saw each new event).
        let syncing = client.clone();
        tokio::spawn(async move {
            loop {
                if syncing
                    .sync_once(SyncSettings::default().timeout(Duration::from_secs(5)))
                    .await
                    .is_err()
                {
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            }
        });
        Person {
            client,
            user,
            seen,
            _dir: dir,
        }
    }

    /// Waits until a message containing `wanted` appears (in `room`, if given).
    pub async fn wait_for(&self, room: Option<&RoomId>, wanted: &str) -> OwnedRoomId {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some((room_id, _)) = self.seen.lock().unwrap().iter().find(|(room_id, body)| {
                body.contains(wanted) && room.is_none_or(|room| room == room_id)
            }) {
                return room_id.clone();
            }
            assert!(
                Instant::now() < deadline,
                "{} never saw {wanted:?}; saw {:#?}",
                self.user,
                self.seen.lock().unwrap()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn count(&self, wanted: &str) -> usize {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, body)| body.contains(wanted))
            .count()
    }

    pub async fn room(&self, id: &RoomId) -> Room {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(room) = self.client.get_room(id)
                && room.state() == matrix_sdk::RoomState::Joined
            {
                return room;
            }
            assert!(Instant::now() < deadline, "{} never joined {id}", self.user);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn say(&self, room: &RoomId, text: &str) {
        let room = self.room(room).await;
        room.send(RoomMessageEventContent::text_plain(text))
            .await
            .unwrap();
    }
}
