//! The default mode: one node on SQLite; sockets are added tier by tier (and stay), each tier
//! measured for handshakes, joins, settled memory, peak memory, commit → receipt latency at
//! `--rate`, and once (at 1,000 sockets, else the first tier) server CPU per delivered frame
//! at `--cpu-rate`.
use std::sync::{Arc, atomic::Ordering};

use crate::{
    Bench, Outcome,
    client::{Hub, Sock, Target},
    fleet::{self, Batch},
    latency::{self, Latency, Plan},
    report::{self, Goal, Table, mib},
    rest::{self, Writer},
    server::Server,
    stats::{p50_p99, per_second, us_per},
    sys,
};

#[derive(Default)]
struct Tier {
    n: usize,
    users: usize,
    connect: Batch,
    join: Batch,
    overflows: u64,
    rss_base: u64,
    rss_settled: u64,
    peak_settled: u64,
    peak_end: u64,
    threads: u64,
    closed: u64,
    latency: Option<Latency>,
    cpu: Option<Latency>,
}

impl Tier {
    fn kb_per_conn(&self) -> f64 {
        self.rss_settled.saturating_sub(self.rss_base) as f64 * 1.024 / self.n.max(1) as f64
    }

    fn peak_ratio(&self) -> f64 {
        self.peak_end as f64 / self.rss_settled.max(1) as f64
    }
}

pub async fn run(b: &Bench) -> Outcome {
    let args = &b.args;
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = b.sqlite_node(dir.path());
    let db_url = spec.db_url.clone();
    let mut server = Server::start(spec, &b.http).await;
    let pid = server.pid;
    let owner = rest::login(&b.http, &server.base, "owner@demo.com").await;
    let vault = rest::demo_vault(&b.http, &server.base, &owner).await;
    let pop = b
        .population(&server.base, &db_url, &vault, args.max_sockets())
        .await;
    let writer = Writer {
        http: b.http.clone(),
        bases: vec![server.base.clone()],
        cookie: owner,
        vault: vault.clone(),
    };
    for _ in 0..5 {
        let _ = rest::demo_vault(&b.http, &server.base, &writer.cookie).await;
    }
    let rss_base = fleet::settled_rss(&[pid]).await;
    eprintln!("baseline server VmRSS {rss_base} KiB (no sockets)");

    let hub = Arc::new(Hub::default());
    let cpu_tier = args
        .tiers
        .iter()
        .copied()
        .find(|&n| n == 1000)
        .unwrap_or(args.tiers[0]);
    let mut socks: Vec<Sock> = Vec::new();
    let mut tiers = Vec::new();
    for &n in &args.tiers {
        let mut tier = Tier {
            n,
            users: pop.users_for(n),
            rss_base,
            ..Default::default()
        };
        sys::reset_peak(pid);
        let targets: Vec<Target> = (socks.len()..n)
            .map(|i| Target {
                addr: server.addr.clone(),
                cookie: pop.cookie_for(i),
            })
            .collect();
        eprintln!("tier {n}: opening {} sockets…", targets.len());
        let overflows = sys::listen_overflows();
        let (new, connect) = fleet::open(targets, args.concurrency, false, &hub).await;
        tier.overflows = sys::listen_overflows().saturating_sub(overflows);
        eprintln!("tier {n}: {} opened; joining…", new.len());
        tier.join = fleet::join(&new, &vault, args.concurrency).await;
        tier.connect = connect;
        socks.extend(new);
        tier.rss_settled = fleet::settled_rss(&[pid]).await;
        tier.peak_settled = sys::peak_kb(pid);
        tier.threads = sys::threads_of(pid);
        eprintln!(
            "tier {n}: {} joined; settled VmRSS {} KiB → {:.1} KB/conn",
            tier.join.ok,
            tier.rss_settled,
            tier.kb_per_conn()
        );
        if args.latency && args.events > 0 {
            let plan = Plan {
                label: format!("N={n} @{}/s", args.rate),
                events: args.events,
                rate: args.rate,
                via_all: false,
            };
            tier.latency = Some(latency::measure(&plan, &writer, &socks, &hub, &[pid]).await);
        }
        if args.latency && n == cpu_tier && args.cpu_events > 0 {
            let plan = Plan {
                label: format!("N={n} cpu @{}/s", args.cpu_rate),
                events: args.cpu_events,
                rate: args.cpu_rate,
                via_all: false,
            };
            tier.cpu = Some(latency::measure(&plan, &writer, &socks, &hub, &[pid]).await);
        }
        tier.peak_end = sys::peak_kb(pid);
        tier.closed = hub.closed.load(Ordering::SeqCst);
        tiers.push(tier);
    }

    let final_metrics = rest::metrics(&b.http, &server.base).await;
    hub.shutting_down.store(true, Ordering::SeqCst);
    drop(socks);
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let stopped = server.stop().await;
    let mut out = Outcome::default();
    out.tables.push(tier_table(&tiers));
    let lat: Vec<Option<&Latency>> = tiers.iter().map(|t| t.latency.as_ref()).collect();
    if lat.iter().any(Option::is_some) {
        let mut t = Table::new("commit → receipt", headers(&tiers));
        report::latency_rows(&mut t, &lat);
        out.tables.push(t);
    }
    if let Some(cpu) = tiers.iter().find_map(|t| t.cpu.as_ref()) {
        let mut t = Table::new("CPU phase", vec!["metric".into(), cpu.label.clone()]);
        report::latency_rows(&mut t, &[Some(cpu)]);
        out.tables.push(t);
    }
    out.goals = goals(&tiers, args.one_user);
    out.notes.push(match stopped {
        Some(d) => format!("server stopped on SIGTERM in {:.2} s", d.as_secs_f64()),
        None => "server did NOT stop within 20 s of SIGTERM; killed".into(),
    });
    for (k, v) in final_metrics {
        out.notes.push(format!("/metrics at the end: {k} = {v}"));
    }
    out.hub_summary(&hub);
    out.logs.push(server.spec.log.clone());
    out.ok = tiers
        .iter()
        .all(|t| t.connect.failed() == 0 && t.join.failed() == 0 && t.closed == 0)
        && tiers
            .iter()
            .flat_map(|t| [&t.latency, &t.cpu])
            .flatten()
            .all(Latency::complete);
    out.keep_dir(dir);
    out
}

fn headers(tiers: &[Tier]) -> Vec<String> {
    let mut h = vec!["metric".to_string()];
    h.extend(tiers.iter().map(|t| format!("N = {}", t.n)));
    h
}

fn tier_table(tiers: &[Tier]) -> Table {
    let mut t = Table::new("sockets, joins, memory", headers(tiers));
    let col = |f: &dyn Fn(&Tier) -> String| tiers.iter().map(f).collect::<Vec<_>>();
    t.row("distinct users", col(&|t| t.users.to_string()));
    t.row(
        "sockets opened (this tier)",
        col(&|t| t.connect.ok.to_string()),
    );
    t.row(
        "connects / s",
        col(&|t| per_second(t.connect.ok, t.connect.wall)),
    );
    t.row("handshake p50 / p99", col(&|t| p50_p99(&t.connect.lat)));
    t.row("listen-queue overflows", col(&|t| t.overflows.to_string()));
    t.row("joins / s", col(&|t| per_second(t.join.ok, t.join.wall)));
    t.row("join ack p50 / p99", col(&|t| p50_p99(&t.join.lat)));
    t.row(
        "connect / join failures",
        col(&|t| format!("{} / {}", t.connect.failed(), t.join.failed())),
    );
    t.row("VmRSS no sockets", col(&|t| mib(t.rss_base)));
    t.row("VmRSS settled", col(&|t| mib(t.rss_settled)));
    t.row(
        "KB / connection",
        col(&|t| format!("{:.1}", t.kb_per_conn())),
    );
    t.row("peak VmHWM connect+join", col(&|t| mib(t.peak_settled)));
    t.row("peak VmHWM incl. commits", col(&|t| mib(t.peak_end)));
    t.row(
        "peak / settled",
        col(&|t| format!("{:.2}×", t.peak_ratio())),
    );
    t.row("server threads", col(&|t| t.threads.to_string()));
    t.row("sockets lost (cumulative)", col(&|t| t.closed.to_string()));
    t
}

fn goals(tiers: &[Tier], one_user: bool) -> Vec<Goal> {
    let at = |n: usize| tiers.iter().find(|t| t.n == n);
    let mut goals = Vec::new();
    let kb = at(10_000).filter(|_| !one_user).map(|t| {
        let v = t.kb_per_conn();
        (format!("{v:.1} KB ({} users)", t.users), v <= 24.0)
    });
    let why = if one_user {
        "one-user mode"
    } else {
        "tier 10000 not run"
    };
    goals.push(Goal::new(
        "KB / connection settled @10000 sockets / 667 users",
        "≤ 24 KB",
        kb,
        why,
    ));
    for t in tiers {
        let r = t.peak_ratio();
        let shown = format!("{} / {} = {r:.2}×", mib(t.peak_end), mib(t.rss_settled));
        goals.push(Goal::new(
            &format!("peak RSS / settled @{}", t.n),
            "≤ 1.5×",
            Some((shown, r <= 1.5)),
            "",
        ));
    }
    let cpu = tiers.iter().find_map(|t| t.cpu.as_ref().map(|c| (t.n, c)));
    let cpu_goal = cpu.filter(|(n, _)| *n == 1000).map(|(_, c)| {
        let (u, s) = (
            us_per(c.server_cpu.user, c.frames()),
            us_per(c.server_cpu.system, c.frames()),
        );
        (
            format!("{u:.2} µs user (+ {s:.2} sys)"),
            u <= 3.0 && c.complete(),
        )
    });
    goals.push(Goal::new(
        "server user CPU / delivered frame @1000, 20 commits/s",
        "≤ 3 µs",
        cpu_goal,
        "no CPU phase at 1000 sockets",
    ));
    for (n, goal_ms) in [(1000, 12.0), (5000, 60.0), (10_000, 200.0)] {
        let l = at(n).and_then(|t| t.latency.as_ref());
        goals.push(Goal::new(
            &format!("receipt p99 @{n}, all delivered in order"),
            &format!("≤ {goal_ms} ms"),
            l.map(|l| report::p99_verdict(l, goal_ms)),
            &format!("tier {n} not run"),
        ));
    }
    goals
}
