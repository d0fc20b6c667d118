//! Prometheus metrics served on `/metrics`: updates received, messages sent, send
//! failures by kind, handovers waiting, engine latency. No label ever carries a chat id.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FailureLabels {
    pub kind: String,
}

pub struct Metrics {
    registry: Registry,
    pub updates_received: Counter,
    pub messages_sent: Counter,
    pub send_failures: Family<FailureLabels, Counter>,
    pub handovers_waiting: Gauge,
    pub engine_latency: Histogram,
    pub volunteer_inbox_depth: Gauge,
    pub dead_letters: Gauge,
    pub undecryptable_events: Gauge,
    pub inbox_depth: Gauge,
    pub oldest_owed_seconds: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("sportello");
        let updates_received = Counter::default();
        let messages_sent = Counter::default();
        let send_failures = Family::<FailureLabels, Counter>::default();
        let handovers_waiting = Gauge::default();
        let engine_latency = Histogram::new([
            0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        ]);
        registry.register(
            "updates_received",
            "Updates received from Telegram",
            updates_received.clone(),
        );
        registry.register(
            "messages_sent",
            "Messages delivered to Telegram",
            messages_sent.clone(),
        );
        registry.register(
            "send_failures",
            "Failed deliveries, by kind",
            send_failures.clone(),
        );
        registry.register(
            "handovers_waiting",
            "Cases waiting for a volunteer",
            handovers_waiting.clone(),
        );
        let volunteer_inbox_depth = Gauge::default();
        let dead_letters = Gauge::default();
        let undecryptable_events = Gauge::default();
        let inbox_depth = Gauge::default();
        let oldest_owed_seconds = Gauge::default();
        registry.register(
            "inbox_depth",
            "Citizens' updates stored and not processed yet",
            inbox_depth.clone(),
        );
        registry.register(
            "oldest_owed_seconds",
            "How long the oldest message owed to a citizen or to the volunteers has waited",
            oldest_owed_seconds.clone(),
        );
        registry.register(
            "volunteer_inbox_depth",
            "Volunteers' events stored and not handled yet",
            volunteer_inbox_depth.clone(),
        );
        registry.register(
            "dead_letters",
            "Updates and events set aside after failing again and again",
            dead_letters.clone(),
        );
        registry.register(
            "undecryptable_events",
            "Volunteers' events waiting for their room key",
            undecryptable_events.clone(),
        );
        registry.register(
            "engine_latency_seconds",
            "Time to process one inbound message (transaction included)",
            engine_latency.clone(),
        );
        Metrics {
            registry,
            updates_received,
            messages_sent,
            send_failures,
            handovers_waiting,
            engine_latency,
            volunteer_inbox_depth,
            dead_letters,
            undecryptable_events,
            inbox_depth,
            oldest_owed_seconds,
        }
    }
}

impl Metrics {
    pub fn failure(&self, kind: &str) {
        self.send_failures
            .get_or_create(&FailureLabels {
                kind: kind.to_string(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn encode(&self) -> String {
        let mut text = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut text, &self.registry);
        text
    }
}
