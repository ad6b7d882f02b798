//! What a reconnect storm in the real shape measured on one side, and the table and goals
//! printed from it.
use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use crate::{
    Outcome,
    client::Outage,
    report::{Goal, Table},
    seed::Shape,
    stats::{histogram, ms_f, p50_p99_max, pct},
    sys::Cpu,
};

#[derive(Default)]
pub struct StormRun {
    pub side: String,
    pub sockets: usize,
    pub rooms: usize,
    pub joined: usize,
    pub ready: Duration,
    pub commit_failures: Vec<String>,
    pub caught: Vec<Duration>,
    pub rejoined: Vec<Duration>,
    pub refused: BTreeMap<String, usize>,
    pub duplicates: usize,
    pub reordered: usize,
    pub cpu: Cpu,
    pub cpu_wall: Duration,
    /// This process's CPU time over the same span: one core serves every socket.
    pub client_cpu: Cpu,
    pub phases: Phases,
    /// Counters on `/metrics` about replays and log reads (name → value), after the storm.
    pub replay_metrics: BTreeMap<String, f64>,
}

/// Where a rejoining socket's time went, per socket (sorted once complete).
#[derive(Default)]
pub struct Phases {
    /// Restart → the connection's loss noticed (negative ones count as zero).
    pub lost: Vec<Duration>,
    /// Restart → the first reconnection attempt (the client's backoff delay over).
    pub tried: Vec<Duration>,
    /// First attempt → WebSocket upgrade answered (includes failed attempts and their delays).
    pub upgrade: Vec<Duration>,
    /// Upgrade → Socket.IO connect answered (Engine.IO open, the authenticated handshake).
    pub connect: Vec<Duration>,
    /// Connect answered → rejoin acknowledged (the join: role, replay, presence).
    pub join: Vec<Duration>,
    /// Reconnection attempts per socket → sockets.
    pub attempts: BTreeMap<u32, usize>,
}

impl Phases {
    pub fn add(&mut self, o: &Outage, restart: Instant) {
        let span = |a: Option<Instant>, b: Option<Instant>| Some(b?.saturating_duration_since(a?));
        let lost = o.down_at.map(|d| d.saturating_duration_since(restart));
        for (v, d) in [
            (&mut self.lost, lost),
            (&mut self.tried, span(Some(restart), o.tried_at)),
            (&mut self.upgrade, span(o.tried_at, o.upgraded_at)),
            (&mut self.connect, span(o.upgraded_at, o.up_at)),
            (&mut self.join, span(o.up_at, o.rejoined_at)),
        ] {
            v.extend(d);
        }
        *self.attempts.entry(o.attempts).or_insert(0) += 1;
    }

    fn sort(&mut self) {
        for v in [
            &mut self.lost,
            &mut self.tried,
            &mut self.upgrade,
            &mut self.connect,
            &mut self.join,
        ] {
            v.sort_unstable();
        }
    }
}

impl StormRun {
    fn caught_pct(&self) -> f64 {
        100.0 * self.caught.len() as f64 / self.sockets.max(1) as f64
    }

    fn refused_pct(&self) -> f64 {
        100.0 * self.refused.values().sum::<usize>() as f64 / self.sockets.max(1) as f64
    }

    /// Log reads per room, if the server counts them: `syncscript_history_log_reads_total`
    /// (every label: by joins and by rooms), divided by the rooms that had sockets.
    fn log_reads_per_room(&self) -> Option<f64> {
        let reads: Vec<f64> = self
            .replay_metrics
            .iter()
            .filter(|(k, _)| k.contains("log_reads"))
            .map(|(_, v)| *v)
            .collect();
        (!reads.is_empty()).then(|| reads.iter().sum::<f64>() / self.rooms.max(1) as f64)
    }
}

/// The storm's table (a column per side), its goals and notes.
pub fn report(shape: &Shape, runs: &mut [StormRun], out: &mut Outcome) {
    for r in runs.iter_mut() {
        r.phases.sort();
    }
    let runs = &*runs;
    let names: Vec<&str> = runs.iter().map(|r| r.side.as_str()).collect();
    let mut head = vec!["metric".to_string()];
    head.extend(names.iter().map(|n| n.to_string()));
    let mut t = Table::new(&format!("reconnect storm, {}", shape.label()), head);
    let col = |f: &dyn Fn(&StormRun) -> String| runs.iter().map(f).collect::<Vec<_>>();
    t.row(
        "sockets joined before",
        col(&|r| format!("{} of {}", r.joined, r.sockets)),
    );
    t.row(
        "restart → /readyz",
        col(&|r| format!("{:.0} ms", ms_f(r.ready))),
    );
    t.row(
        "commits failed",
        col(&|r| r.commit_failures.len().to_string()),
    );
    t.row(
        "restart → rejoin ack p50/p99/max",
        col(&|r| p50_p99_max(&r.rejoined)),
    );
    t.row(
        "restart → caught up p50/p99/max",
        col(&|r| p50_p99_max(&r.caught)),
    );
    t.row("caught-up histogram", col(&|r| histogram(&r.caught)));
    t.row(
        "  restart → loss noticed p50/p99/max",
        col(&|r| p50_p99_max(&r.phases.lost)),
    );
    t.row(
        "  restart → first attempt p50/p99/max",
        col(&|r| p50_p99_max(&r.phases.tried)),
    );
    t.row(
        "  attempt → WebSocket upgraded p50/p99/max",
        col(&|r| p50_p99_max(&r.phases.upgrade)),
    );
    t.row(
        "  upgraded → Socket.IO connected p50/p99/max",
        col(&|r| p50_p99_max(&r.phases.connect)),
    );
    t.row(
        "  connected → rejoin ack p50/p99/max",
        col(&|r| p50_p99_max(&r.phases.join)),
    );
    t.row(
        "  attempts per socket (attempts: sockets)",
        col(&|r| format!("{:?}", r.phases.attempts)),
    );
    t.row("caught up", col(&|r| format!("{:.2} %", r.caught_pct())));
    t.row(
        "rejoins refused",
        col(&|r| format!("{:.2} % {:?}", r.refused_pct(), r.refused)),
    );
    t.row(
        "duplicates / reordered",
        col(&|r| format!("{} / {}", r.duplicates, r.reordered)),
    );
    t.row(
        "server CPU restart → last catch-up",
        col(&|r| {
            format!(
                "{:.2} s user + {:.2} s sys in {:.1} s",
                r.cpu.user.as_secs_f64(),
                r.cpu.system.as_secs_f64(),
                r.cpu_wall.as_secs_f64()
            )
        }),
    );
    t.row(
        "bench client CPU (one core) same span",
        col(&|r| {
            format!(
                "{:.2} s user + {:.2} s sys",
                r.client_cpu.user.as_secs_f64(),
                r.client_cpu.system.as_secs_f64()
            )
        }),
    );
    t.row(
        "log reads per room (/metrics)",
        col(&|r| match r.log_reads_per_room() {
            Some(x) => {
                let parts: Vec<String> = r
                    .replay_metrics
                    .iter()
                    .filter(|(k, _)| k.contains("log_reads"))
                    .map(|(k, v)| {
                        format!(
                            "{v:.0} {}",
                            k.split('{').nth(1).unwrap_or(k).trim_end_matches('}')
                        )
                    })
                    .collect();
                format!("{x:.2} ({} over {} rooms)", parts.join(" + "), r.rooms)
            }
            None => "unavailable (no log-read counter on /metrics)".into(),
        }),
    );
    t.row(
        "role reads (/metrics: join_access_reads_total)",
        col(&|r| {
            r.replay_metrics
                .iter()
                .find(|(k, _)| k.contains("join_access_reads"))
                .map_or("unavailable".into(), |(_, v)| {
                    format!("{v:.0} for {} joins", r.joined)
                })
        }),
    );
    out.tables.push(t);
    let mine = &runs[0];
    let p99 = pct(&mine.caught, 99.0);
    let all = mine.caught.len() == mine.sockets && mine.reordered == 0;
    out.goals.push(Goal::new(
        "storm: caught up",
        "100 %",
        Some((format!("{:.2} %", mine.caught_pct()), all)),
        "",
    ));
    out.goals.push(Goal::new(
        "storm: restart → caught up p99",
        "≤ 2 s",
        Some((
            format!("{:.0} ms", ms_f(p99)),
            all && p99 <= Duration::from_secs(2),
        )),
        "",
    ));
    out.goals.push(Goal::new(
        "storm: joins refused",
        "≤ 1 %",
        Some((
            format!("{:.2} %", mine.refused_pct()),
            mine.refused_pct() <= 1.0,
        )),
        "",
    ));
    out.goals.push(Goal::new(
        "storm: log reads per room",
        "≤ 1.2",
        mine.log_reads_per_room()
            .map(|x| (format!("{x:.2}"), x <= 1.2)),
        "the server exposes no replay / log-read counter on /metrics",
    ));
    if let Some(peer) = runs.get(1) {
        let theirs = pct(&peer.caught, 99.0);
        out.notes.push(format!(
            "storm p99 rust ÷ node = {:.0} / {:.0} ms = {:.2}×; server CPU {:.2} / {:.2} s",
            ms_f(p99),
            ms_f(theirs),
            ms_f(p99) / ms_f(theirs).max(1e-9),
            mine.cpu.total().as_secs_f64(),
            peer.cpu.total().as_secs_f64()
        ));
    }
    out.ok = runs.iter().all(|r| r.commit_failures.is_empty()) && all;
}
