//! `--nodes K` (PostgreSQL): the same latency phase at N sockets (first `--clients` value,
//! default 1,000) on one node, then with K nodes on one database and the sockets spread
//! round-robin over them (commits through node 0, then through every node in turn), then the
//! sustained-throughput phase (`throughput.rs`). Every node is pinned to the server CPUs.
use std::sync::{Arc, atomic::Ordering};

use crate::{
    Bench, Outcome,
    client::{Hub, Target},
    fleet,
    latency::{self, Latency, Plan},
    report::{self, Goal, Table},
    rest::{self, Writer},
    server::{self, Server, Spec},
    stats::{ms_f, pct},
    throughput,
};

pub async fn run(b: &Bench, nodes: usize) -> Outcome {
    let args = &b.args;
    let n = args.tiers[0];
    let db_url = server::create_pg_database().await;
    eprintln!("PostgreSQL database {}", server::redact(&db_url));
    let dir = tempfile::tempdir().expect("tempdir");
    let env = b.server_env();
    let spec = |i: usize| Spec {
        name: format!("node{i}"),
        bin: b.bin.clone(),
        port: server::free_port(),
        db_url: db_url.clone(),
        cpus: b.server_cpus.clone(),
        log: dir.path().join(format!("node{i}.log")),
        env: env.clone(),
    };
    let mut servers = vec![Server::start(spec(0), &b.http).await];
    let base0 = servers[0].base.clone();
    let owner = rest::login(&b.http, &base0, "owner@demo.com").await;
    let vault = rest::demo_vault(&b.http, &base0, &owner).await;
    let pop = b
        .population(&base0, &db_url, &vault, n.max(args.throughput_sockets))
        .await;
    let hub = Arc::new(Hub::default());
    let mut writer = Writer {
        http: b.http.clone(),
        bases: vec![base0.clone()],
        cookie: owner,
        vault: vault.clone(),
    };

    // One node.
    let targets = (0..n)
        .map(|i| Target {
            addr: servers[0].addr.clone(),
            cookie: pop.cookie_for(i),
        })
        .collect();
    let (socks, _) = fleet::open(targets, args.concurrency, false, &hub).await;
    let join1 = fleet::join(&socks, &vault, args.concurrency).await;
    let plan = |label: String, via_all| Plan {
        label,
        events: args.events,
        rate: args.rate,
        via_all,
    };
    let pids = |s: &[Server]| s.iter().map(|s| s.pid).collect::<Vec<_>>();
    let one = latency::measure(
        &plan("1 node".into(), false),
        &writer,
        &socks,
        &hub,
        &pids(&servers),
    )
    .await;
    fleet::close_all(socks, &b.http, std::slice::from_ref(&base0)).await;

    // K nodes.
    for i in 1..nodes {
        servers.push(Server::spawn(spec(i)));
    }
    for s in servers.iter_mut().skip(1) {
        s.wait_ready(&b.http).await;
    }
    writer.bases = servers.iter().map(|s| s.base.clone()).collect();
    let addrs: Vec<String> = servers.iter().map(|s| s.addr.clone()).collect();
    let targets = (0..n)
        .map(|i| Target {
            addr: addrs[i % nodes].clone(),
            cookie: pop.cookie_for(i),
        })
        .collect();
    let (socks, _) = fleet::open(targets, args.concurrency, false, &hub).await;
    let join_k = fleet::join(&socks, &vault, args.concurrency).await;
    let via0 = plan(format!("{nodes} nodes, commits via node 0"), false);
    let spread = latency::measure(&via0, &writer, &socks, &hub, &pids(&servers)).await;
    let via_all = plan(format!("{nodes} nodes, commits via every node"), true);
    let spread_all = latency::measure(&via_all, &writer, &socks, &hub, &pids(&servers)).await;
    fleet::close_all(socks, &b.http, &writer.bases).await;

    let tp = throughput::run(b, &writer, &pop, &addrs, &hub, &pids(&servers)).await;

    hub.shutting_down.store(true, Ordering::SeqCst);
    let mut stops = Vec::new();
    for s in servers.iter_mut() {
        stops.push(s.stop().await);
    }
    server::cleanup();

    let mut out = Outcome::default();
    let phases = [&one, &spread, &spread_all];
    let mut headers = vec!["metric".to_string()];
    headers.extend(phases.iter().map(|l| l.label.clone()));
    let mut t = Table::new(
        &format!("commit → receipt on PostgreSQL, {n} sockets"),
        headers,
    );
    t.row(
        "join failures",
        vec![
            join1.failed().to_string(),
            join_k.failed().to_string(),
            "".into(),
        ],
    );
    report::latency_rows(&mut t, &phases.map(Some));
    out.tables.push(t);
    out.tables.push(throughput::table(&tp));
    out.goals = goals(n, nodes, &one, &spread, &spread_all, &tp);
    for (s, stop) in servers.iter().zip(stops) {
        out.logs.push(s.spec.log.clone());
        if stop.is_none() {
            out.notes.push(format!(
                "{} did NOT stop within 20 s of SIGTERM",
                s.spec.name
            ));
        }
    }
    out.notes.push(format!(
        "all {nodes} nodes share the server CPUs; PostgreSQL itself is not pinned (its CPU shows as 'other')"
    ));
    out.hub_summary(&hub);
    out.ok = [&one, &spread, &spread_all].iter().all(|l| l.complete()) && tp.complete();
    out.keep_dir(dir);
    out
}

fn goals(
    n: usize,
    nodes: usize,
    one: &Latency,
    spread: &Latency,
    spread_all: &Latency,
    tp: &throughput::Throughput,
) -> Vec<Goal> {
    let mut goals = Vec::new();
    for l in [spread, spread_all] {
        for p in [50.0, 99.0] {
            let (k, base) = (ms_f(pct(&l.per_socket, p)), ms_f(pct(&one.per_socket, p)));
            let ratio = k / base.max(1e-9);
            goals.push(Goal::new(
                &format!("p{p} {} vs 1 node @{n}", l.label),
                "≤ 1.5×",
                Some((
                    format!("{k:.1} / {base:.1} ms = {ratio:.2}×"),
                    ratio <= 1.5 && l.complete() && one.complete(),
                )),
                "",
            ));
        }
    }
    goals.push(Goal::new(
        &format!("sustained commits into one vault through {nodes} nodes"),
        "every event, in order",
        Some((
            format!(
                "{:.0} commits/s; missing {} dup {} reordered {}",
                tp.commits_per_second(),
                tp.missing,
                tp.duplicates,
                tp.reordered
            ),
            tp.complete(),
        )),
        "",
    ));
    goals
}
