//! Configuration in one place: `sportello.toml` (path from `--config` or
//! `SPORTELLO_CONFIG`; `./sportello.toml` when it exists), every key overridable by its
//! environment variable (`database_url` by `SPORTELLO_DATABASE_URL`, ...). Read once,
//! validated, passed explicitly; secrets cannot be printed.

use std::fmt;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Deserialize;

/// A value that must never reach a log line or an error message.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

/// The shortest webhook secret accepted (Telegram allows 1 to 256 characters).
pub const MIN_WEBHOOK_SECRET_CHARS: usize = 12;

impl Secret {
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub database_url: String,
    pub dialogues: PathBuf,
    pub data_dir: PathBuf,
    pub retention_days: u32,
    pub telegram_token: Option<Secret>,
    pub telegram_api_url: Option<String>,
    /// Webhook mode: the public HTTPS URL Telegram posts updates to (routed to
    /// `/telegram/webhook` on `http_addr`); absent: long polling.
    pub telegram_webhook_url: Option<String>,
    /// The secret Telegram sends back in `X-Telegram-Bot-Api-Secret-Token`.
    pub telegram_webhook_secret: Option<Secret>,
    /// Lifts Telegram's rate limits: only for load tests against a fake Bot API.
    pub telegram_unlimited: bool,
    pub matrix_homeserver: Option<String>,
    pub matrix_user: Option<String>,
    pub matrix_password: Option<Secret>,
    pub matrix_volunteers_room: Option<String>,
    pub matrix_encrypted: bool,
    /// Matrix users who may claim cases whatever their power level.
    pub matrix_volunteers: Vec<String>,
    /// The power level in the coordination room that makes a member a volunteer.
    pub matrix_volunteer_power_level: i64,
    /// Tell citizens the volunteer's first name instead of "un volontario".
    pub matrix_show_volunteer_name: bool,
    /// The power level in the coordination room that makes a member a coordinator, who
    /// may act in any case room (the others only in the cases they hold).
    pub matrix_coordinator_power_level: i64,
    /// Encrypts the Matrix state and crypto store (`data/matrix-store`); without it the
    /// store's keys lie in clear on disk.
    pub matrix_store_passphrase: Option<Secret>,
    pub http_addr: String,
    /// Serves `/metrics` (and `/healthz`) here instead of on `http_addr`, which may be
    /// public for the webhook.
    pub metrics_addr: Option<String>,
    /// `/healthz` turns unhealthy when a message has been owed longer than this.
    pub health_max_wait_seconds: u64,
    /// Citizens' words in the logs, for debugging only.
    pub log_content: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: "sqlite://data/sportello.db".into(),
            dialogues: PathBuf::from("dialogues"),
            data_dir: PathBuf::from("data"),
            retention_days: 30,
            telegram_token: None,
            telegram_api_url: None,
            telegram_webhook_url: None,
            telegram_webhook_secret: None,
            telegram_unlimited: false,
            matrix_homeserver: None,
            matrix_user: None,
            matrix_password: None,
            matrix_volunteers_room: None,
            matrix_encrypted: true,
            matrix_volunteers: Vec::new(),
            matrix_volunteer_power_level: 50,
            matrix_show_volunteer_name: false,
            matrix_coordinator_power_level: 100,
            matrix_store_passphrase: None,
            http_addr: "127.0.0.1:8080".into(),
            metrics_addr: None,
            health_max_wait_seconds: 600,
            log_content: false,
        }
    }
}

fn env(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

fn boolean(name: &str, value: &str) -> anyhow::Result<bool> {
    match value.trim().to_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => bail!("{name} should be true or false, not '{value}'"),
    }
}

impl Config {
    /// Reads the file (if any), then the environment.
    pub fn load(path: Option<&Path>) -> anyhow::Result<Config> {
        let explicit = path
            .map(Path::to_path_buf)
            .or_else(|| env("SPORTELLO_CONFIG").map(PathBuf::from));
        let mut config = match explicit {
            Some(path) => Config::from_file(&path)?,
            None if Path::new("sportello.toml").exists() => {
                Config::from_file(Path::new("sportello.toml"))?
            }
            None => Config::default(),
        };
        config.apply_env()?;
        config.validate()?;
        Ok(config)
    }

    /// Values that would be read but not work: a retention of 0 days would erase each
    /// conversation while it runs; a short webhook secret can be guessed, and Telegram
    /// refuses one with other characters than letters, digits, `_` and `-`.
    pub fn validate(&self) -> anyhow::Result<()> {
        if self.retention_days == 0 {
            bail!(
                "SPORTELLO_RETENTION_DAYS (retention_days) must be at least 1 day: 0 would erase every conversation while it is going on"
            );
        }
        if let Some(secret) = &self.telegram_webhook_secret {
            let secret = secret.expose();
            if secret.chars().count() < MIN_WEBHOOK_SECRET_CHARS {
                bail!(
                    "SPORTELLO_TELEGRAM_WEBHOOK_SECRET is too short: write at least {MIN_WEBHOOK_SECRET_CHARS} characters (letters, digits, _ and -), for example the output of `openssl rand -hex 32`"
                );
            }
            if !secret
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
            {
                bail!(
                    "SPORTELLO_TELEGRAM_WEBHOOK_SECRET may hold only letters, digits, _ and - (Telegram refuses other characters)"
                );
            }
        }
        Ok(())
    }

    fn from_file(path: &Path) -> anyhow::Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration {}", path.display()))?;
        toml::from_str(&text)
            .with_context(|| format!("the configuration {} is not valid", path.display()))
    }

    fn apply_env(&mut self) -> anyhow::Result<()> {
        if let Some(value) = env("SPORTELLO_DATABASE_URL") {
            self.database_url = value;
        }
        if let Some(value) = env("SPORTELLO_DIALOGUES") {
            self.dialogues = value.into();
        }
        if let Some(value) = env("SPORTELLO_DATA_DIR") {
            self.data_dir = value.into();
        }
        if let Some(value) = env("SPORTELLO_RETENTION_DAYS") {
            self.retention_days = value.trim().parse().with_context(|| {
                format!("SPORTELLO_RETENTION_DAYS should be a number of days, not '{value}'")
            })?;
        }
        if let Some(value) = env("SPORTELLO_TELEGRAM_TOKEN") {
            self.telegram_token = Some(Secret(value));
        }
        if let Some(value) = env("SPORTELLO_TELEGRAM_API_URL") {
            self.telegram_api_url = Some(value);
        }
        if let Some(value) = env("SPORTELLO_TELEGRAM_WEBHOOK_URL") {
            self.telegram_webhook_url = Some(value);
        }
        if let Some(value) = env("SPORTELLO_TELEGRAM_WEBHOOK_SECRET") {
            self.telegram_webhook_secret = Some(Secret(value));
        }
        if let Some(value) = env("SPORTELLO_TELEGRAM_UNLIMITED") {
            self.telegram_unlimited = boolean("SPORTELLO_TELEGRAM_UNLIMITED", &value)?;
        }
        if let Some(value) = env("SPORTELLO_MATRIX_HOMESERVER") {
            self.matrix_homeserver = Some(value);
        }
        if let Some(value) = env("SPORTELLO_MATRIX_USER") {
            self.matrix_user = Some(value);
        }
        if let Some(value) = env("SPORTELLO_MATRIX_PASSWORD") {
            self.matrix_password = Some(Secret(value));
        }
        if let Some(value) = env("SPORTELLO_MATRIX_VOLUNTEERS_ROOM") {
            self.matrix_volunteers_room = Some(value);
        }
        if let Some(value) = env("SPORTELLO_MATRIX_ENCRYPTED") {
            self.matrix_encrypted = boolean("SPORTELLO_MATRIX_ENCRYPTED", &value)?;
        }
        if let Some(value) = env("SPORTELLO_MATRIX_VOLUNTEERS") {
            self.matrix_volunteers = value
                .split(',')
                .map(|user| user.trim().to_string())
                .filter(|user| !user.is_empty())
                .collect();
        }
        if let Some(value) = env("SPORTELLO_MATRIX_POWER_LEVEL") {
            self.matrix_volunteer_power_level = value.trim().parse().with_context(|| {
                format!("SPORTELLO_MATRIX_POWER_LEVEL should be a number, not '{value}'")
            })?;
        }
        if let Some(value) = env("SPORTELLO_MATRIX_SHOW_NAME") {
            self.matrix_show_volunteer_name = boolean("SPORTELLO_MATRIX_SHOW_NAME", &value)?;
        }
        if let Some(value) = env("SPORTELLO_MATRIX_COORDINATOR_LEVEL") {
            self.matrix_coordinator_power_level = value.trim().parse().with_context(|| {
                format!("SPORTELLO_MATRIX_COORDINATOR_LEVEL should be a number, not '{value}'")
            })?;
        }
        if let Some(value) = env("SPORTELLO_MATRIX_STORE_PASSPHRASE") {
            self.matrix_store_passphrase = Some(Secret(value));
        }
        if let Some(value) = env("SPORTELLO_HTTP_ADDR") {
            self.http_addr = value;
        }
        if let Some(value) = env("SPORTELLO_METRICS_ADDR") {
            self.metrics_addr = Some(value);
        }
        if let Some(value) = env("SPORTELLO_HEALTH_MAX_WAIT") {
            self.health_max_wait_seconds = value.trim().parse().with_context(|| {
                format!("SPORTELLO_HEALTH_MAX_WAIT should be a number of seconds, not '{value}'")
            })?;
        }
        if let Some(value) = env("SPORTELLO_LOG_CONTENT") {
            self.log_content = boolean("SPORTELLO_LOG_CONTENT", &value)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_values_are_refused_with_a_reason() {
        let mut config = Config::default();
        assert!(config.validate().is_ok());
        config.retention_days = 0;
        let error = config.validate().unwrap_err().to_string();
        assert!(error.contains("at least 1 day"), "{error}");
        config.retention_days = 1;
        for (secret, reason) in [
            ("", "too short"),
            ("abc", "too short"),
            ("a secret with spaces", "only letters"),
        ] {
            config.telegram_webhook_secret = Some(Secret::new(secret));
            let error = config.validate().unwrap_err().to_string();
            assert!(error.contains(reason), "{secret}: {error}");
            // The secret itself is never echoed.
            if !secret.is_empty() {
                assert!(!error.contains(secret), "{error}");
            }
        }
        config.telegram_webhook_secret = Some(Secret::new("s3cret-webhook_OK"));
        assert!(config.validate().is_ok());
    }

    #[test]
    fn secrets_do_not_print() {
        let config = Config {
            telegram_token: Some(Secret::new("123:ABC")),
            ..Config::default()
        };
        assert!(!format!("{config:?}").contains("123:ABC"));
    }

    #[test]
    fn file_keys_and_unknown_keys() {
        let config: Config =
            toml::from_str("database_url = \"postgres://x@y/z\"\nretention_days = 7\n").unwrap();
        assert_eq!(config.retention_days, 7);
        assert_eq!(config.dialogues, PathBuf::from("dialogues"));
        assert!(toml::from_str::<Config>("retention = 7\n").is_err());
    }
}
