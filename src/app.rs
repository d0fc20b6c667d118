//! `sportello run`: the store, the channels that are configured, the periodic purge and
//! the HTTP endpoints (`/healthz`, `/metrics`, the Telegram webhook), started from a
//! [`Config`] and stopped by a future, so that a test can drive it (mini-redis style).

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use chrono::Utc;
use subtle::ConstantTimeEq;
use tokio::sync::watch;

use crate::channels::matrix::{Matrix, MatrixSettings};
use crate::channels::telegram::{Telegram, TelegramSettings};
use crate::config::Config;
use crate::dialogue::{self, Bundle};
use crate::metrics::Metrics;
use crate::store::Store;

/// How often closed conversations are looked at for erasure.
const PURGE_EVERY: Duration = Duration::from_secs(3600);

pub struct App {
    config: Config,
    health: Arc<Health>,
    /// `/metrics` (and `/healthz`) on an address of their own, when configured.
    metrics_listener: Option<tokio::net::TcpListener>,
    store: Arc<Store>,
    metrics: Arc<Metrics>,
    listener: tokio::net::TcpListener,
    telegram: Option<Arc<Telegram>>,
    matrix: Option<Arc<Matrix>>,
    /// This run's hold on the database: a second `sportello run` refuses to start.
    run_lock: crate::store::RunLock,
}

#[derive(Clone)]
struct Shared {
    metrics: Arc<Metrics>,
    store: Arc<Store>,
    telegram: Option<Arc<Telegram>>,
    health: Arc<Health>,
    /// `/healthz` is unhealthy when a message has been owed longer than this.
    max_wait: Duration,
    /// The outbox channels some task delivers.
    served: Vec<&'static str>,
}

/// The long-running tasks that are down (dead, waiting to be restarted), for
/// `/healthz`.
#[derive(Default)]
pub struct Health {
    down: std::sync::Mutex<std::collections::BTreeSet<&'static str>>,
}

impl Health {
    fn set(&self, task: &'static str, down: bool) {
        if let Ok(mut tasks) = self.down.lock() {
            if down {
                tasks.insert(task);
            } else {
                tasks.remove(task);
            }
        }
    }

    /// The tasks down now.
    pub fn down(&self) -> Vec<&'static str> {
        self.down
            .lock()
            .map(|tasks| tasks.iter().copied().collect())
            .unwrap_or_default()
    }
}

/// Runs a long-running task and restarts it, with a growing wait, whenever it dies (a
/// panic, or a return before shutdown); while it is down `/healthz` says so.
pub fn supervise<F, Fut>(
    task: &'static str,
    health: &Arc<Health>,
    stopped: &watch::Receiver<bool>,
    start: F,
) -> tokio::task::JoinHandle<()>
where
    F: Fn(watch::Receiver<bool>) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let health = health.clone();
    let mut stopped = stopped.clone();
    tokio::spawn(async move {
        let mut failures = 0u32;
        loop {
            let started = std::time::Instant::now();
            let outcome = tokio::spawn(start(stopped.clone())).await;
            if *stopped.borrow() {
                return;
            }
            health.set(task, true);
            // A task that ran a good while before dying starts again at once.
            if started.elapsed() > Duration::from_secs(300) {
                failures = 0;
            }
            failures += 1;
            tracing::error!(
                task,
                panicked = outcome.is_err(),
                "a task stopped; restarting it"
            );
            let wait = Duration::from_millis(200u64 << failures.min(8));
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = stopped.changed() => return,
            }
            health.set(task, false);
        }
    })
}

impl App {
    /// Loads the dialogues (refusing any with errors), opens the database (applying
    /// migrations) and binds the HTTP address.
    pub async fn build(config: Config) -> anyhow::Result<App> {
        config.validate()?;
        let bundle = load_bundle(&config)?;
        let store = Arc::new(Store::open(&config.database_url).await?);
        // Two runs on one database would answer every message twice.
        let run_lock = store.lock_for_run().await?;
        let listener = tokio::net::TcpListener::bind(&config.http_addr)
            .await
            .with_context(|| format!("cannot listen on {}", config.http_addr))?;
        let metrics = Arc::new(Metrics::default());
        let bundle = Arc::new(bundle);
        let matrix = match (
            &config.matrix_homeserver,
            &config.matrix_user,
            &config.matrix_password,
            &config.matrix_volunteers_room,
        ) {
            (Some(homeserver), Some(user), Some(password), Some(room)) => {
                let settings = MatrixSettings {
                    homeserver: homeserver.clone(),
                    user: user.clone(),
                    password: password.clone(),
                    volunteers_room: room.clone(),
                    encrypted: config.matrix_encrypted,
                    data_dir: config.data_dir.clone(),
                    volunteers: config.matrix_volunteers.clone(),
                    volunteer_power_level: config.matrix_volunteer_power_level,
                    show_volunteer_name: config.matrix_show_volunteer_name,
                    coordinator_power_level: config.matrix_coordinator_power_level,
                    store_passphrase: config.matrix_store_passphrase.clone(),
                };
                Some(Matrix::connect(settings, store.clone(), bundle.clone()).await?)
            }
            (None, None, None, None) => None,
            _ => bail!(
                "the Matrix channel needs SPORTELLO_MATRIX_HOMESERVER, SPORTELLO_MATRIX_USER, SPORTELLO_MATRIX_PASSWORD and SPORTELLO_MATRIX_VOLUNTEERS_ROOM together"
            ),
        };
        let telegram = match &config.telegram_token {
            Some(token) => {
                let webhook = match (
                    &config.telegram_webhook_url,
                    &config.telegram_webhook_secret,
                ) {
                    (Some(url), Some(secret)) => Some((url.clone(), secret.clone())),
                    (Some(_), None) => {
                        bail!("webhook mode needs SPORTELLO_TELEGRAM_WEBHOOK_SECRET too")
                    }
                    _ => None,
                };
                let settings = TelegramSettings {
                    token: token.clone(),
                    api_url: config.telegram_api_url.clone(),
                    webhook,
                    unlimited: config.telegram_unlimited,
                    poll_timeout: 25,
                };
                Some(Arc::new(Telegram::new(
                    settings,
                    store.clone(),
                    bundle.clone(),
                    metrics.clone(),
                )?))
            }
            None => None,
        };
        let metrics_listener = match &config.metrics_addr {
            Some(addr) => Some(
                tokio::net::TcpListener::bind(addr)
                    .await
                    .with_context(|| format!("cannot listen on {addr} (SPORTELLO_METRICS_ADDR)"))?,
            ),
            None => None,
        };
        Ok(App {
            health: Arc::default(),
            metrics_listener,
            config,
            store,
            metrics,
            listener,
            telegram,
            matrix,
            run_lock,
        })
    }

    pub fn http_addr(&self) -> anyhow::Result<SocketAddr> {
        Ok(self.listener.local_addr()?)
    }

    /// Where `/metrics` is served when it has an address of its own.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_listener.as_ref()?.local_addr().ok()
    }

    pub fn store(&self) -> Arc<Store> {
        self.store.clone()
    }

    /// Runs until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        let health = self.health.clone();
        match &self.telegram {
            Some(telegram) => {
                telegram.setup().await?;
                if telegram.webhook_secret().is_none() {
                    let telegram = telegram.clone();
                    tasks.push(supervise(
                        "telegram intake",
                        &health,
                        &stopped,
                        move |stopped| telegram.clone().poll(stopped),
                    ));
                }
                let processing = telegram.clone();
                tasks.push(supervise(
                    "telegram inbox",
                    &health,
                    &stopped,
                    move |stopped| processing.clone().process_inbox(stopped),
                ));
                let delivering = telegram.clone();
                tasks.push(supervise(
                    "telegram delivery",
                    &health,
                    &stopped,
                    move |stopped| delivering.clone().deliver(stopped),
                ));
                tracing::info!(
                    webhook = telegram.webhook_secret().is_some(),
                    "Telegram channel started"
                );
            }
            None => tracing::warn!(
                "no channel configured: set SPORTELLO_TELEGRAM_TOKEN to serve citizens on Telegram"
            ),
        }
        if let Some(matrix) = &self.matrix {
            // A claim the bot stopped in the middle of is finished first.
            matrix.resume_claims().await;
            let syncing = matrix.clone();
            tasks.push(supervise(
                "matrix sync",
                &health,
                &stopped,
                move |stopped| syncing.clone().sync_forever(stopped),
            ));
            let handling = matrix.clone();
            tasks.push(supervise(
                "matrix inbox",
                &health,
                &stopped,
                move |stopped| handling.clone().handle_inbox(stopped),
            ));
            let keys = matrix.clone();
            tasks.push(supervise(
                "matrix room keys",
                &health,
                &stopped,
                move |stopped| keys.clone().watch_room_keys(stopped),
            ));
            let delivering = matrix.clone();
            tasks.push(supervise(
                "matrix delivery",
                &health,
                &stopped,
                move |stopped| delivering.clone().deliver(stopped),
            ));
            tracing::info!("Matrix channel started");
        }
        let (store, retention_days) = (self.store.clone(), self.config.retention_days);
        tasks.push(supervise("purge", &health, &stopped, move |stopped| {
            purge_periodically(store.clone(), retention_days, stopped)
        }));
        let shared = Shared {
            metrics: self.metrics.clone(),
            store: self.store.clone(),
            telegram: self.telegram.clone(),
            health: health.clone(),
            max_wait: Duration::from_secs(self.config.health_max_wait_seconds),
            served: [
                self.telegram
                    .as_ref()
                    .map(|_| crate::channels::telegram::CHANNEL),
                self.matrix
                    .as_ref()
                    .map(|_| crate::channels::matrix::VOLUNTEERS),
            ]
            .into_iter()
            .flatten()
            .collect(),
        };
        let mut public = Router::new()
            .route("/healthz", get(healthz))
            .route("/telegram/webhook", post(webhook));
        let mut servers = Vec::new();
        match self.metrics_listener {
            // Metrics on an address of their own (not the public webhook's).
            Some(listener) => {
                let private = Router::new()
                    .route("/metrics", get(metrics))
                    .route("/healthz", get(healthz))
                    .with_state(shared.clone());
                servers.push((listener, private));
            }
            None => public = public.route("/metrics", get(metrics)),
        }
        servers.push((self.listener, public.with_state(shared)));
        for (listener, router) in servers {
            let mut http_stopped = stopped.clone();
            let server = axum::serve(listener, router).with_graceful_shutdown(async move {
                let _ = http_stopped.changed().await;
            });
            tasks.push(tokio::spawn(async move {
                if let Err(error) = server.await {
                    tracing::error!(%error, "the HTTP server stopped");
                }
            }));
        }
        shutdown.await;
        let _ = stop.send(true);
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        self.store.close().await;
        self.run_lock.release().await;
        Ok(())
    }
}

fn load_bundle(config: &Config) -> anyhow::Result<Bundle> {
    let (bundle, diagnostics) = dialogue::load(&config.dialogues);
    let errors = diagnostics.iter().filter(|d| d.is_error()).count();
    if errors > 0 {
        bail!(
            "the dialogue folder {} has {errors} errors: run `sportello check {}`",
            config.dialogues.display(),
            config.dialogues.display()
        );
    }
    Ok(bundle)
}

async fn purge_periodically(
    store: Arc<Store>,
    retention_days: u32,
    mut stopped: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(PURGE_EVERY);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stopped.changed() => return,
        }
        match store.purge(Utc::now(), retention_days).await {
            Ok(report) if report.erased > 0 => {
                tracing::info!(
                    erased = report.erased,
                    abandoned = report.abandoned,
                    "personal data of old conversations erased"
                )
            }
            Ok(_) => {}
            Err(error) => {
                tracing::error!(%error, "the purge failed; it runs again within the hour")
            }
        }
    }
}

/// Healthy while every long-running task runs and nothing owed to a citizen or to the
/// volunteers has waited longer than the configured time.
async fn healthz(State(shared): State<Shared>) -> (StatusCode, String) {
    let down = shared.health.down();
    if !down.is_empty() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("down: {}", down.join(", ")),
        );
    }
    match shared.store.oldest_owed(Utc::now(), &shared.served).await {
        Ok(Some(waited)) if waited > shared.max_wait => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("a message has waited {} s", waited.as_secs()),
        ),
        Ok(_) => (StatusCode::OK, "ok".into()),
        Err(_) => (
            StatusCode::SERVICE_UNAVAILABLE,
            "the database does not answer".into(),
        ),
    }
}

async fn metrics(State(shared): State<Shared>) -> impl IntoResponse {
    // The queues' gauges are read from the database when asked for.
    if let Ok((depth, undecryptable)) = shared.store.volunteer_inbox_depth().await {
        shared.metrics.volunteer_inbox_depth.set(depth);
        shared.metrics.undecryptable_events.set(undecryptable);
    }
    if let Ok(dead) = shared.store.dead_letters().await {
        shared.metrics.dead_letters.set(dead);
    }
    if let Ok(depth) = shared.store.inbox_depth().await {
        shared.metrics.inbox_depth.set(depth);
    }
    if let Ok(waited) = shared.store.oldest_owed(Utc::now(), &shared.served).await {
        let seconds = waited.map(|waited| waited.as_secs()).unwrap_or(0);
        shared.metrics.oldest_owed_seconds.set(seconds as i64);
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.encode(),
    )
}

/// Telegram's webhook: the secret token checked in constant time, the update stored
/// before answering 200.
async fn webhook(State(shared): State<Shared>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let Some(telegram) = shared.telegram.as_ref() else {
        return StatusCode::NOT_FOUND;
    };
    let Some(secret) = telegram.webhook_secret() else {
        return StatusCode::NOT_FOUND;
    };
    let given = headers
        .get("x-telegram-bot-api-secret-token")
        .map(|value| value.as_bytes())
        .unwrap_or_default();
    if !bool::from(given.ct_eq(secret.expose().as_bytes())) {
        return StatusCode::UNAUTHORIZED;
    }
    match telegram.accept(&body).await {
        Ok(()) => StatusCode::OK,
        Err(error) => {
            tracing::error!(%error, "cannot store a webhook update; Telegram will send it again");
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn a_task_that_dies_is_reported_down_then_restarted() {
        let health = Arc::new(Health::default());
        let (stop, stopped) = watch::channel(false);
        let starts = Arc::new(AtomicUsize::new(0));
        let counting = starts.clone();
        let task = supervise("test task", &health, &stopped, move |mut stopped| {
            let start = counting.fetch_add(1, Ordering::SeqCst);
            async move {
                if start == 0 {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    panic!("the first run dies");
                }
                let _ = stopped.changed().await;
            }
        });
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while health.down().is_empty() {
            assert!(std::time::Instant::now() < deadline, "never reported down");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert_eq!(health.down(), vec!["test task"]);
        while starts.load(Ordering::SeqCst) < 2 || !health.down().is_empty() {
            assert!(std::time::Instant::now() < deadline, "never restarted");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        stop.send(true).unwrap();
        task.await.unwrap();
        assert_eq!(
            starts.load(Ordering::SeqCst),
            2,
            "not restarted after a shutdown"
        );
    }
}
