//! `--shape --storm`: the reconnect storm in the real shape, on each side. V × S sockets (one
//! per member online, each in its vault, reconnecting like socket.io-client: the first try
//! after a random 0.5–1.5 s) are joined; the server is SIGKILLed and started again on the same
//! port and database; as soon as `/readyz` answers, `--storm-commits` commits land in random
//! vaults. A socket is caught up once it holds every seq of its vault up to the last commit
//! (a socket whose vault got no commit: once its rejoin is acknowledged). Times are from the
//! restart. Log reads per room come from the server's `/metrics` when it exposes them.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use rand::Rng;

use crate::{
    Bench, Outcome, Side,
    client::Hub,
    contig::Contig,
    report::{Goal, Table},
    rest::{self, Writer},
    seed::{Shape, World},
    shape,
    spread::Placed,
    stats::{histogram, ms_f, p50_p99_max, pct, shorten},
    sys::Cpu,
};

#[derive(Default)]
struct StormRun {
    side: String,
    sockets: usize,
    rooms: usize,
    joined: usize,
    ready: Duration,
    commit_failures: Vec<String>,
    caught: Vec<Duration>,
    rejoined: Vec<Duration>,
    refused: BTreeMap<String, usize>,
    duplicates: usize,
    reordered: usize,
    cpu: Cpu,
    cpu_wall: Duration,
    /// Counters on `/metrics` about replays and log reads (name → value), after the storm.
    replay_metrics: BTreeMap<String, f64>,
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

pub async fn run(b: &Bench) -> Outcome {
    let a = &b.args;
    let shape = Shape {
        vaults: a.vaults,
        sockets: a.per_vault,
        events: a.log_events,
    };
    let mut runs = Vec::new();
    let mut out = Outcome::default();
    for side in b.sides() {
        runs.push(storm(b, &side, shape, &mut out).await);
    }
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
    out
}

async fn storm(b: &Bench, side: &Side, shape: Shape, out: &mut Outcome) -> StormRun {
    let a = &b.args;
    let dir = tempfile::tempdir().expect("tempdir");
    let world = World::plan(shape);
    let (mut server, _) = shape::start_seeded(b, side, dir.path(), &world).await;
    let hub = Arc::new(Hub::default());
    eprintln!(
        "{} storm: opening and joining {} sockets…",
        side.name,
        shape.total_sockets()
    );
    let addrs = [server.addr.clone()];
    let (socks, _, join) = shape::open_placed(b, &addrs, &world, true, &hub).await;
    let mut r = StormRun {
        side: side.name.into(),
        sockets: socks.len(),
        rooms: world.vaults.len(),
        joined: join.ok,
        ..Default::default()
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start: Vec<i64> = socks
        .iter()
        .map(|(_, s)| {
            s.state.drain();
            s.state.contig.load(Ordering::SeqCst)
        })
        .collect();

    eprintln!("{} storm: SIGKILL and restart…", side.name);
    server.respawn();
    let restart = server.spawned;
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .unwrap();
    server.wait_ready(&http).await;
    r.ready = server.ready_after;
    let picks: Vec<usize> = {
        let mut rng = rand::rng();
        (0..a.storm_commits)
            .map(|_| rng.random_range(0..world.vaults.len()))
            .collect()
    };
    for (i, &v) in picks.iter().enumerate() {
        let (cookie, vault) = (world.writer_cookie(v), world.vaults[v].to_string());
        let title = format!("during the storm {i}");
        if let Err(e) = rest::post_source(&http, &server.base, &cookie, &vault, &title).await {
            r.commit_failures.push(shorten(&e));
        }
    }
    // Each vault's last seq: the seeded log, or what the log says after a commit into it.
    let mut target: HashMap<usize, i64> = HashMap::new();
    for &v in picks.iter().collect::<HashSet<_>>() {
        let w = Writer {
            http: http.clone(),
            bases: vec![server.base.clone()],
            cookie: world.writer_cookie(v),
            vault: world.vaults[v].to_string(),
        };
        target.insert(v, w.latest_seq().await);
    }
    let target_of = |v: usize| *target.get(&v).unwrap_or(&(shape.events as i64));
    let deadline = restart + a.storm_deadline;
    let mut cpu_samples = vec![(Instant::now(), Cpu::of(Some(server.pid)))];
    let done = |(v, s): &Placed| {
        let o = s.state.outage.lock().unwrap();
        o.refused.is_some()
            || (o.rejoined_at.is_some() && s.state.contig.load(Ordering::Relaxed) >= target_of(*v))
    };
    while Instant::now() < deadline && !socks.iter().all(&done) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        cpu_samples.push((Instant::now(), Cpu::of(Some(server.pid))));
    }
    for ((v, s), &from) in socks.iter().zip(&start) {
        let outage = s.state.outage.lock().unwrap().clone();
        if let Some(code) = &outage.refused {
            *r.refused.entry(code.clone()).or_insert(0) += 1;
        }
        let Some(rejoined) = outage.rejoined_at.filter(|_| outage.refused.is_none()) else {
            s.state.drain();
            continue;
        };
        r.rejoined.push(rejoined.saturating_duration_since(restart));
        let goal = target_of(*v);
        let mut contig = Contig::from(from);
        let (mut seen, mut max) = (HashSet::new(), i64::MIN);
        let mut caught = (from >= goal).then_some(rejoined);
        for (seq, at) in s.state.drain() {
            if !seen.insert(seq) || seq <= from {
                r.duplicates += 1;
                continue;
            }
            r.reordered += usize::from(seq < max);
            max = max.max(seq);
            contig.add(seq);
            if caught.is_none() && contig.value.unwrap_or(-1) >= goal {
                caught = Some(at.max(rejoined));
            }
        }
        r.caught
            .extend(caught.map(|at| at.saturating_duration_since(restart)));
    }
    r.caught.sort_unstable();
    r.rejoined.sort_unstable();
    let busy_until = restart + pct(&r.caught, 100.0).max(pct(&r.rejoined, 100.0));
    let (at, cpu) = *cpu_samples
        .iter()
        .find(|(at, _)| *at >= busy_until)
        .or(cpu_samples.last())
        .unwrap();
    (r.cpu, r.cpu_wall) = (cpu, at.saturating_duration_since(restart));
    let metrics = rest::metrics(&http, &server.base).await;
    r.replay_metrics = metrics
        .into_iter()
        .filter(|(k, _)| {
            ["replay", "history", "log_read"]
                .iter()
                .any(|w| k.contains(w))
        })
        .collect();
    hub.shutting_down.store(true, Ordering::SeqCst);
    drop(socks);
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill();
    out.logs.push(server.spec.log.clone());
    out.notes.push(format!("{}:", side.name));
    out.hub_summary(&hub);
    out.keep_dir(dir);
    r
}
