//! What the logs may say. Secrets and citizens' words never reach a log line: the code
//! logs error kinds and counts, and this filter holds the HTTP client's crates at `info`
//! unless named explicitly, because their debug lines may print request URLs, and a Bot
//! API URL carries the token.

/// The filter for `SPORTELLO_LOG` (default `warn`).
pub fn filter(wanted: Option<&str>) -> tracing_subscriber::EnvFilter {
    let mut directives = wanted
        .filter(|value| !value.trim().is_empty())
        .unwrap_or("warn")
        .to_string();
    for noisy in ["reqwest", "hyper", "hyper_util", "teloxide_core"] {
        if !directives.contains(noisy) {
            directives.push_str(&format!(",{noisy}=info"));
        }
    }
    tracing_subscriber::EnvFilter::try_new(&directives)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"))
}
