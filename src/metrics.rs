//! Prometheus metrics for `/metrics`.
use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::Registry,
};

pub struct Metrics {
    registry: Registry,
    pub http_requests: Counter,
    pub connected_sockets: Gauge,
    pub joined_rooms: Gauge,
    pub events_published: Counter,
    /// Seconds from a transaction's commit to the last enqueue of its broadcast.
    pub fanout_seconds: Histogram,
    /// 1 from the moment the node starts draining.
    pub draining: Gauge,
    /// Sockets the drain has still to close.
    pub draining_sockets: Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("syncscript");
        let http_requests = Counter::default();
        let connected_sockets = Gauge::default();
        let joined_rooms = Gauge::default();
        let events_published = Counter::default();
        let fanout_seconds = Histogram::new(exponential_buckets(0.000_05, 2.0, 16));
        registry.register(
            "http_requests",
            "HTTP requests served",
            http_requests.clone(),
        );
        registry.register(
            "connected_sockets",
            "Socket.IO sockets connected",
            connected_sockets.clone(),
        );
        registry.register(
            "joined_rooms",
            "Vault rooms joined by sockets",
            joined_rooms.clone(),
        );
        registry.register(
            "events_published",
            "Vault events broadcast after commit",
            events_published.clone(),
        );
        registry.register(
            "event_fanout_seconds",
            "Commit to last enqueue of a broadcast",
            fanout_seconds.clone(),
        );
        let draining = Gauge::default();
        let draining_sockets = Gauge::default();
        registry.register(
            "draining",
            "1 while the node drains before it stops",
            draining.clone(),
        );
        registry.register(
            "draining_sockets",
            "Sockets the drain has still to close",
            draining_sockets.clone(),
        );
        Self {
            registry,
            draining,
            draining_sockets,
            http_requests,
            connected_sockets,
            joined_rooms,
            events_published,
            fanout_seconds,
        }
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
