//! Prometheus metrics for `/metrics` (each one is described for operators in the README).
//! Counters and histograms move where things happen; gauges that merely mirror state (rooms,
//! the database pool) are read when the metrics are rendered.
use std::{
    sync::{Arc, LazyLock},
    time::Instant,
};

use poem::{Endpoint, IntoResponse, PathPattern, Request, Response};

use prometheus_client::{
    encoding::text::encode,
    metrics::{
        counter::Counter,
        family::Family,
        gauge::Gauge,
        histogram::{Histogram, exponential_buckets},
    },
    registry::{Metric, Registry},
};

use crate::state::AppState;

/// HTTP request durations by `route` (the matched template, such as
/// `/api/vaults/:id/sources`) and `status` class (`2xx` … `5xx`).
pub type HttpDurations = Family<Vec<(&'static str, String)>, Histogram, fn() -> Histogram>;

/// Connections the pool could not hand out within `database.connect_timeout`, counted where
/// the error is mapped ([`crate::error`]), which knows no app: one count per process.
pub static DB_POOL_TIMEOUTS: LazyLock<Counter> = LazyLock::new(Counter::default);

pub struct Metrics {
    registry: Registry,
    pub http_requests: Counter,
    pub http_duration_seconds: HttpDurations,
    pub connected_sockets: Gauge,
    pub joined_rooms: Gauge,
    pub events_published: Counter,
    /// Seconds from a transaction's commit to the last enqueue of its broadcast.
    pub fanout_seconds: Histogram,
    /// Seconds from an event's timestamp (taken in its transaction) until this node hears it.
    pub bus_lag_seconds: Histogram,
    /// Times the PostgreSQL listener lost its connection (and every room caught up).
    pub bus_listener_reconnects: Counter,
    pub slow_consumers_closed: Counter,
    pub resyncs: Counter,
    /// Queries reading joins' roles and latest `seq`s, each answering every join waiting.
    pub join_access_reads: Counter,
    pub open_rooms: Gauge,
    pub db_pool_in_use: Gauge,
    pub db_pool_idle: Gauge,
    pub db_pool_max: Gauge,
    /// 1 from the moment the node starts draining.
    pub draining: Gauge,
    /// Sockets the drain has still to close.
    pub draining_sockets: Gauge,
    pub history: HistoryMetrics,
}

fn http_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

fn with<M: Metric + Clone>(registry: &mut Registry, name: &str, help: &str, metric: M) -> M {
    registry.register(name, help, metric.clone());
    metric
}

impl Metrics {
    pub fn new() -> Self {
        let mut r = Registry::with_prefix("syncscript");
        let r = &mut r;
        let durations: HttpDurations = Family::new_with_constructor(http_histogram);
        let lag = Histogram::new(exponential_buckets(0.000_5, 2.0, 16));
        let metrics = Self {
            http_requests: with(
                r,
                "http_requests",
                "HTTP requests served",
                Counter::default(),
            ),
            http_duration_seconds: with(
                r,
                "http_request_duration_seconds",
                "HTTP request duration by route template and status class",
                durations,
            ),
            connected_sockets: with(
                r,
                "connected_sockets",
                "Socket.IO sockets connected",
                Gauge::default(),
            ),
            joined_rooms: with(
                r,
                "joined_rooms",
                "Vault rooms joined by sockets",
                Gauge::default(),
            ),
            events_published: with(
                r,
                "events_published",
                "Vault events broadcast after commit",
                Counter::default(),
            ),
            fanout_seconds: with(
                r,
                "event_fanout_seconds",
                "Commit to last enqueue of a broadcast",
                Histogram::new(exponential_buckets(0.000_05, 2.0, 16)),
            ),
            bus_lag_seconds: with(
                r,
                "bus_lag_seconds",
                "Event timestamp (in its transaction) to this node hearing it",
                lag,
            ),
            bus_listener_reconnects: with(
                r,
                "bus_listener_reconnects",
                "Times the PostgreSQL listener lost its connection and rooms caught up",
                Counter::default(),
            ),
            slow_consumers_closed: with(
                r,
                "slow_consumers_closed",
                "Sockets closed because their send buffer stayed full",
                Counter::default(),
            ),
            resyncs: with(
                r,
                "resyncs",
                "Joins answered resync: true (too many missed events)",
                Counter::default(),
            ),
            join_access_reads: with(
                r,
                "join_access_reads",
                "Queries reading joining sockets' roles (one answers every join waiting)",
                Counter::default(),
            ),
            open_rooms: with(
                r,
                "open_rooms",
                "Vault rooms kept on this node",
                Gauge::default(),
            ),
            db_pool_in_use: with(
                r,
                "db_pool_connections_in_use",
                "Database connections checked out of the pool",
                Gauge::default(),
            ),
            db_pool_idle: with(
                r,
                "db_pool_connections_idle",
                "Database connections idle in the pool",
                Gauge::default(),
            ),
            db_pool_max: with(
                r,
                "db_pool_connections_max",
                "database.max_connections",
                Gauge::default(),
            ),
            draining: with(
                r,
                "draining",
                "1 while the node drains before it stops",
                Gauge::default(),
            ),
            draining_sockets: with(
                r,
                "draining_sockets",
                "Sockets the drain has still to close",
                Gauge::default(),
            ),
            history: HistoryMetrics::new(r),
            registry: Registry::default(),
        };
        with(
            r,
            "db_pool_timeouts",
            "Waits for a pooled database connection that timed out (process-wide)",
            DB_POOL_TIMEOUTS.clone(),
        );
        let registry = std::mem::take(r);
        Self {
            registry,
            ..metrics
        }
    }

    /// Observes one HTTP request.
    pub fn http_request(&self, route: &str, status: u16, seconds: f64) {
        let class = format!("{}xx", status / 100);
        self.http_duration_seconds
            .get_or_create(&vec![("route", route.to_string()), ("status", class)])
            .observe(seconds);
    }

    pub fn render(&self) -> String {
        let mut out = String::new();
        let _ = encode(&mut out, &self.registry);
        out
    }
}

/// Times every request, by the route template poem matched (`unmatched` for none).
pub async fn observe_http<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    let started = Instant::now();
    let state = req.data::<AppState>().cloned();
    let result = ep.call(req).await.map(IntoResponse::into_response);
    if let Some(state) = state {
        let (status, pattern) = match &result {
            Ok(resp) => (resp.status(), resp.data::<PathPattern>()),
            Err(err) => (err.status(), err.data::<PathPattern>()),
        };
        // An unknown path matches only the pages' catch-all nest, whose pattern is empty.
        let route = pattern.map_or("", |p| &p.0);
        let route = if route.is_empty() { "unmatched" } else { route };
        let seconds = started.elapsed().as_secs_f64();
        state.metrics.http_request(route, status.as_u16(), seconds);
    }
    result
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
