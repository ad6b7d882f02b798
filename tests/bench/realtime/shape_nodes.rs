//! `--shape --nodes K` (PostgreSQL): K nodes of this project's server on one database seeded
//! with the real shape, the V × S sockets spread round-robin over the nodes, then commits
//! spread over the vaults (through every node in turn) at each `--rates` step for
//! `--step-secs`, until a step saturates: fewer than 90 % of the offered commits per second
//! answered, commits dropped or failed, or receipt p99 over 2 s. Per step: commits/s, p99,
//! the nodes' and PostgreSQL's CPU, and what PostgreSQL's busy backends were waiting on
//! (`pg_stat_activity`, sampled every 100 ms).
use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use crate::{
    Bench, Outcome,
    client::Hub,
    fleet,
    pg_watch::{Pool, postgres_cpu, sample_pools, sample_waits},
    report::{Goal, Table},
    seed::{Shape, World},
    seed_db::{self, Schema},
    server::{self, Server, Spec},
    shape,
    spread::{self, Spread},
    stats::{p50_p99_max, pct},
};

struct Step {
    offered: usize,
    answered_per_s: f64,
    p99: Duration,
    receipts: String,
    failed: usize,
    dropped: usize,
    complete: bool,
    nodes_cpu: f64,
    pg_cpu: f64,
    waits: Vec<(String, usize)>,
    samples: usize,
    pool: Pool,
}

impl Step {
    fn saturated(&self) -> bool {
        self.answered_per_s < 0.9 * self.offered as f64
            || self.dropped > 0
            || self.failed > 0
            || self.p99 > Duration::from_secs(2)
    }
}

pub async fn run(b: &Bench, nodes: usize) -> Outcome {
    let a = &b.args;
    let db_url = server::create_pg_database().await;
    let db_name = url::Url::parse(&db_url)
        .map(|u| u.path().trim_matches('/').to_string())
        .unwrap_or_default();
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = |i: usize| Spec {
        name: format!("node{i}"),
        bin: b.bin.clone(),
        port: server::free_port(),
        db_url: db_url.clone(),
        cpus: b.server_cpus.clone(),
        log: dir.path().join(format!("node{i}.log")),
        env: b.server_env(),
    };
    let shape = Shape {
        vaults: a.vaults,
        sockets: a.per_vault,
        events: a.log_events,
    };
    let world = World::plan(shape);
    let mut servers = vec![Server::start(spec(0), &b.http).await];
    eprintln!("seeding {} on PostgreSQL…", shape.label());
    seed_db::write(&world, &db_url, Schema::Ours).await;
    for i in 1..nodes {
        servers.push(Server::spawn(spec(i)));
    }
    for s in servers.iter_mut().skip(1) {
        s.wait_ready(&b.http).await;
    }
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let addrs: Vec<String> = servers.iter().map(|s| s.addr.clone()).collect();
    let pids: Vec<u32> = servers.iter().map(|s| s.pid).collect();
    let hub = Arc::new(Hub::default());
    let (socks, connect, join) = shape::open_placed(b, &addrs, &world, false, &hub).await;
    eprintln!("{} sockets joined over {nodes} nodes", join.ok);
    let mut steps = Vec::new();
    for &rate in &a.rates {
        let commits = (rate as f64 * a.step_secs).round() as usize;
        let plan = Spread {
            label: format!("{nodes} nodes @{rate}/s"),
            rate: rate as f64,
            commits,
            http: &b.http,
            bases: &bases,
            world: &world,
            pids: &pids,
            max_in_flight: 512,
        };
        let stop = Arc::new(AtomicBool::new(false));
        let sampler = tokio::spawn(sample_waits(db_name.clone(), stop.clone()));
        let pools = tokio::spawn(sample_pools(b.http.clone(), bases.clone(), stop.clone()));
        let pg0 = postgres_cpu();
        let (lat, made) = spread::run(&plan, &socks, &hub).await;
        let pg = postgres_cpu().since(pg0);
        stop.store(true, Ordering::SeqCst);
        let (waits, samples) = sampler.await.unwrap_or_default();
        let pool = pools.await.unwrap_or_default();
        let wall = lat.wall.as_secs_f64().max(1e-9);
        let step = Step {
            offered: rate,
            answered_per_s: made.ok as f64 / made.posts_wall.as_secs_f64().max(1e-9),
            p99: pct(&lat.per_socket, 99.0),
            receipts: p50_p99_max(&lat.per_socket),
            failed: lat.post_failures.values().sum(),
            dropped: made.dropped,
            complete: lat.complete() && lat.missing == 0,
            nodes_cpu: 100.0 * lat.server_cpu.total().as_secs_f64() / wall,
            pg_cpu: 100.0 * pg.total().as_secs_f64() / wall,
            waits,
            samples,
            pool,
        };
        let saturated = step.saturated();
        steps.push(step);
        if saturated {
            break;
        }
    }
    hub.shutting_down.store(true, Ordering::SeqCst);
    let socks: Vec<_> = socks.into_iter().map(|(_, s)| s).collect();
    fleet::close_all(socks, &b.http, &bases).await;
    let mut out = Outcome::default();
    for s in servers.iter_mut() {
        s.stop().await;
        out.logs.push(s.spec.log.clone());
    }
    server::cleanup();
    out.tables.push(table(nodes, &shape, &steps));
    let carried = steps
        .iter()
        .filter(|s| !s.saturated())
        .map(|s| s.offered)
        .max();
    out.goals.push(Goal::new(
        &format!("{nodes} nodes on one PostgreSQL: highest rate carried (p99 ≤ 2 s, none lost)"),
        "reported",
        Some((
            carried.map_or("none".into(), |r| format!("{r} commits/s")),
            carried.is_some(),
        )),
        "",
    ));
    out.notes.push(format!(
        "sockets: {} connected, {} joined ({} failed); nodes pinned to {:?}; PostgreSQL not pinned",
        connect.ok,
        join.ok,
        connect.failed() + join.failed(),
        b.server_cpus
    ));
    out.notes.push(
        "pg waits: Lock:object is NOTIFY's commit-order lock (held from a notifying \
         transaction's pre-commit to its end, so commits that notify are serialized); \
         IO:WALSync the commit's WAL flush; idle in transaction a transaction waiting on its \
         node (the node's CPU); running (CPU) PostgreSQL working"
            .into(),
    );
    out.hub_summary(&hub);
    out.ok = steps.iter().all(|s| s.complete) && join.failed() == 0;
    out.keep_dir(dir);
    out
}

fn table(nodes: usize, shape: &Shape, steps: &[Step]) -> Table {
    let mut head = vec!["metric".to_string()];
    head.extend(steps.iter().map(|s| format!("{}/s", s.offered)));
    let mut t = Table::new(
        &format!("{nodes} nodes on PostgreSQL, {}", shape.label()),
        head,
    );
    let col = |f: &dyn Fn(&Step) -> String| steps.iter().map(f).collect::<Vec<_>>();
    t.row(
        "commits answered / s",
        col(&|s| format!("{:.0}", s.answered_per_s)),
    );
    t.row("receipt p50 / p99 / max", col(&|s| s.receipts.clone()));
    t.row(
        "failed / dropped (client cap 512)",
        col(&|s| format!("{} / {}", s.failed, s.dropped)),
    );
    t.row(
        "every frame, in order",
        col(&|s| {
            if s.complete {
                "yes".into()
            } else {
                "NO".into()
            }
        }),
    );
    t.row(
        "nodes CPU % (all nodes)",
        col(&|s| format!("{:.0} %", s.nodes_cpu)),
    );
    t.row("PostgreSQL CPU %", col(&|s| format!("{:.0} %", s.pg_cpu)));
    for i in 0..3 {
        t.row(
            &format!("pg wait #{} (busy backends / sample)", i + 1),
            col(&|s| match s.waits.get(i) {
                Some((k, n)) => format!("{k} {:.2}", *n as f64 / s.samples.max(1) as f64),
                None => String::new(),
            }),
        );
    }
    t.row(
        "db pool in use avg / max of size (all nodes)",
        col(&|s| {
            let p = &s.pool;
            let avg = p.in_use_sum / p.samples.max(1) as f64;
            format!("{avg:.1} / {:.0} of {:.0}", p.in_use_max, p.size)
        }),
    );
    t.row(
        "db pool acquire timeouts",
        col(&|s| format!("{:.0}", s.pool.timeouts)),
    );
    t.row(
        "saturated",
        col(&|s| {
            if s.saturated() {
                "yes".into()
            } else {
                "no".into()
            }
        }),
    );
    t
}
