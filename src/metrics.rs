//! Prometheus metrics for `/metrics`.
use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::Family,
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
    pub history: HistoryMetrics,
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
        let history = HistoryMetrics::new(&mut registry);
        Self {
            registry,
            draining,
            draining_sockets,
            http_requests,
            connected_sockets,
            joined_rooms,
            events_published,
            fanout_seconds,
            history,
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

/// The node's event history ([`crate::realtime`]): what it holds, and where the events that
/// joins replay (or check) came from.
pub struct HistoryMetrics {
    pub bytes: Gauge,
    pub events: Gauge,
    pub from_memory: Counter,
    pub from_log: Counter,
    /// Reads of the event log by joins (a page each) and by rooms catching up on missed
    /// notices: a reconnect storm should cost about one per room.
    pub log_reads_by_joins: Counter,
    pub log_reads_by_rooms: Counter,
}

type Labelled = Family<[(&'static str, &'static str); 1], Counter>;

impl HistoryMetrics {
    fn new(registry: &mut Registry) -> Self {
        let (served, reads) = (Labelled::default(), Labelled::default());
        let counter = |family: &Labelled, label| family.get_or_create(&[label]).clone();
        let this = Self {
            bytes: Gauge::default(),
            events: Gauge::default(),
            from_memory: counter(&served, ("from", "memory")),
            from_log: counter(&served, ("from", "log")),
            log_reads_by_joins: counter(&reads, ("by", "join")),
            log_reads_by_rooms: counter(&reads, ("by", "room")),
        };
        let history = registry.sub_registry_with_prefix("history");
        history.register(
            "bytes",
            "Bytes of vault events held in memory (budget: realtime.history_budget)",
            this.bytes.clone(),
        );
        history.register("events", "Vault events held in memory", this.events.clone());
        history.register(
            "served_events",
            "Events joins took from memory or from the log",
            served,
        );
        history.register("log_reads", "Reads of the event log", reads);
        this
    }
}
