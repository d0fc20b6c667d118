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
