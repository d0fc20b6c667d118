//! Database URLs: which backend, a SQLite file's folder created, and passwords kept out
//! of every message.

use super::Backend;

/// The URL with its password replaced by `***`, for messages and logs.
pub fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, _password)) => format!("{scheme}://{user}:***@{host}{path}"),
            None => url.to_string(),
        },
        None => url.to_string(),
    }
}

/// The backend and the URL to give sqlx; for a SQLite file, its folder is created and
/// the file is created on first use.
pub fn prepare(url: &str) -> Result<(Backend, String), ()> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let rest = url.split_once("://").map(|(_, rest)| rest).unwrap_or("");
        if rest.is_empty() || rest.starts_with('/') && rest.len() == 1 {
            return Err(());
        }
        return Ok((Backend::Postgres, url.to_string()));
    }
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Err(());
    };
    if rest == ":memory:" || rest.starts_with(":memory:?") {
        return Ok((Backend::Sqlite, url.to_string()));
    }
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (path, query) = match rest.split_once('?') {
        Some((path, query)) => (path, Some(query)),
        None => (rest, None),
    };
    if path.is_empty() {
        return Err(());
    }
    if let Some(parent) = std::path::Path::new(path).parent()
        && !parent.as_os_str().is_empty()
    {
        // A folder that cannot be made is reported by the connection itself.
        let _ = std::fs::create_dir_all(parent);
    }
    let query = match query {
        Some(query) if query.contains("mode=") => query.to_string(),
        Some(query) => format!("{query}&mode=rwc"),
        None => "mode=rwc".to_string(),
    };
    Ok((Backend::Sqlite, format!("sqlite://{path}?{query}")))
}

/// A connection error in a few plain words, without the URL's password.
/// The file of a URL made by [`prepare`] (`sqlite://PATH?QUERY`); None for PostgreSQL
/// and for an in-memory database.
pub fn sqlite_file(prepared: &str) -> Option<&str> {
    let rest = prepared.strip_prefix("sqlite://")?;
    let path = rest.split_once('?').map_or(rest, |(path, _)| path);
    (!path.is_empty() && !path.starts_with(":memory:")).then_some(path)
}

pub fn plain_reason(error: &sqlx::Error) -> String {
    let reason = match error {
        sqlx::Error::Io(io) => io.to_string(),
        sqlx::Error::PoolTimedOut => "no answer within 10 seconds".to_string(),
        sqlx::Error::Configuration(detail) => format!("the URL is not valid ({detail})"),
        sqlx::Error::Database(database) => database.message().to_string(),
        other => other.to_string(),
    };
    redact(&reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_show() {
        assert_eq!(
            redact("postgres://bot:s3cret@db:5432/sportello"),
            "postgres://bot:***@db:5432/sportello"
        );
        assert_eq!(
            redact("postgres://bot@db/sportello"),
            "postgres://bot@db/sportello"
        );
        assert_eq!(
            redact("sqlite://data/sportello.db"),
            "sqlite://data/sportello.db"
        );
    }

    #[test]
    fn sqlite_urls_get_create_mode() {
        let dir = std::env::temp_dir().join(format!("sportello-url-{}", std::process::id()));
        let url = format!("sqlite://{}/x.db", dir.display());
        let (backend, prepared) = prepare(&url).unwrap();
        assert_eq!(backend, Backend::Sqlite);
        assert!(prepared.ends_with("x.db?mode=rwc"), "{prepared}");
        let file = format!("{}/x.db", dir.display());
        assert_eq!(sqlite_file(&prepared), Some(file.as_str()));
        assert_eq!(sqlite_file("sqlite::memory:"), None);
        assert_eq!(sqlite_file("postgres://bot@db/sportello"), None);
        assert!(dir.is_dir());
        let _ = std::fs::remove_dir_all(dir);
        assert!(prepare("mysql://x").is_err());
        assert!(prepare("data/sportello.db").is_err());
        assert!(prepare("sqlite:").is_err());
    }
}
