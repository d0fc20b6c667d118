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
    telegram: Option<Arc<Telegram>>,
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
        Ok(App {
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

    pub fn store(&self) -> Arc<Store> {
        self.store.clone()
    }

    /// Runs until `shutdown` completes.
    pub async fn run(self, shutdown: impl Future<Output = ()>) -> anyhow::Result<()> {
        let (stop, stopped) = watch::channel(false);
        let mut tasks = Vec::new();
        match &self.telegram {
            Some(telegram) => {
                telegram.setup().await?;
                if telegram.webhook_secret().is_none() {
                    tasks.push(tokio::spawn(telegram.clone().poll(stopped.clone())));
                }
                tasks.push(tokio::spawn(
                    telegram.clone().process_inbox(stopped.clone()),
                ));
                tasks.push(tokio::spawn(telegram.clone().deliver(stopped.clone())));
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
            tasks.push(tokio::spawn(matrix.clone().run(stopped.clone())));
            tracing::info!("Matrix channel started");
        }
        tasks.push(tokio::spawn(purge_periodically(
            self.store.clone(),
            self.config.retention_days,
            stopped.clone(),
        )));
        let shared = Shared {
            metrics: self.metrics.clone(),
            telegram: self.telegram.clone(),
        };
        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/metrics", get(metrics))
            .route("/telegram/webhook", post(webhook))
            .with_state(shared);
        let mut http_stopped = stopped.clone();
        let server = axum::serve(self.listener, router).with_graceful_shutdown(async move {
            let _ = http_stopped.changed().await;
        });
        tasks.push(tokio::spawn(async move {
            if let Err(error) = server.await {
                tracing::error!(%error, "the HTTP server stopped");
            }
        }));
        shutdown.await;
        let _ = stop.send(true);
        for task in tasks {
            let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
        }
        self.store.close().await;
        drop(self.run_lock);
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

async fn metrics(State(shared): State<Shared>) -> impl IntoResponse {
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
