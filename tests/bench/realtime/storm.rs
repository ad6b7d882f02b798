//! `--storm N`: N sockets joined to one node (SQLite); the server is SIGKILLed and started
//! again at once on the same port and database; as soon as `/readyz` answers, `--storm-commits`
//! commits are made (sequentially) while the clients are still reconnecting. Every client
//! reconnects with socket.io-client's default backoff and rejoins with `since`; it is caught
//! up once it holds every seq up to the last commit's. Times are from the restart (the new
//! process's spawn).
use std::{
    collections::HashSet,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use crate::{
    Bench, Outcome,
    client::{Hub, Target},
    contig::Contig,
    fleet,
    latency::wait_received,
    report::{Goal, Table},
    rest::{self, Writer},
    server::Server,
    stats::{histogram, ms_f, p50_p99_max, pct, shorten},
    sys::Cpu,
};

pub async fn run(b: &Bench, n: usize) -> Outcome {
    let args = &b.args;
    let dir = tempfile::tempdir().expect("tempdir");
    let spec = b.sqlite_node(dir.path());
    let db_url = spec.db_url.clone();
    let mut server = Server::start(spec, &b.http).await;
    let owner = rest::login(&b.http, &server.base, "owner@demo.com").await;
    let vault = rest::demo_vault(&b.http, &server.base, &owner).await;
    let pop = b.population(&server.base, &db_url, &vault, n).await;
    let hub = Arc::new(Hub::default());
    let targets = (0..n)
        .map(|i| Target {
            addr: server.addr.clone(),
            cookie: pop.cookie_for(i),
        })
        .collect();
    eprintln!("storm: opening and joining {n} sockets…");
    let (socks, connect) = fleet::open(targets, args.concurrency, true, &hub).await;
    let join = fleet::join(&socks, &vault, args.concurrency).await;
    let writer = Writer {
        http: b.http.clone(),
        bases: vec![server.base.clone()],
        cookie: owner,
        vault,
    };
    let before = hub.received.load(Ordering::Relaxed);
    for i in 0..3 {
        let _ = writer.post(0, &format!("before the storm {i}")).await;
    }
    wait_received(
        &hub,
        before + 3 * socks.len() as u64,
        Duration::from_secs(30),
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let start_seqs: Vec<i64> = socks
        .iter()
        .map(|s| {
            s.state.drain();
            s.state.contig.load(Ordering::SeqCst)
        })
        .collect();
    let seq_before = writer.latest_seq().await;

    eprintln!("storm: SIGKILL and restart…");
    server.respawn();
    let restart = server.spawned;
    *hub.killed_at.lock().unwrap() = server.killed;
    // Pooled keep-alive connections died with the old process.
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .unwrap();
    server.wait_ready(&http).await;
    let ready = server.ready_after;
    let writer = Writer { http, ..writer };
    let commits_began = Instant::now();
    let mut failures = Vec::new();
    for i in 0..args.storm_commits {
        if let Err(e) = writer.post(0, &format!("during the storm {i}")).await {
            failures.push(shorten(&e));
        }
    }
    let commits_ended = Instant::now();
    let target = writer.latest_seq().await;
    // Wait for every socket to catch up (a refused rejoin never will), sampling the new
    // process's CPU time.
    let deadline = restart + args.storm_deadline;
    let mut cpu_samples = vec![(Instant::now(), Cpu::of(Some(server.pid)))];
    while Instant::now() < deadline
        && socks.iter().any(|s| {
            s.state.contig.load(Ordering::Relaxed) < target
                && s.state.outage.lock().unwrap().refused.is_none()
        })
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        cpu_samples.push((Instant::now(), Cpu::of(Some(server.pid))));
    }

    // Per socket: when it was back, rejoined, caught up.
    let (mut up, mut rejoined, mut caught) = (Vec::new(), Vec::new(), Vec::new());
    let (mut duplicates, mut reordered, mut resyncs) = (0usize, 0usize, 0usize);
    let mut refused: std::collections::BTreeMap<String, usize> = Default::default();
    let mut attempts = Vec::new();
    let (mut up_at_commits, mut up_after_commits) = (0usize, 0usize);
    for (s, &from) in socks.iter().zip(&start_seqs) {
        let outage = s.state.outage.lock().unwrap().clone();
        attempts.push(outage.attempts);
        resyncs += usize::from(outage.resync);
        if let Some(code) = &outage.refused {
            *refused.entry(code.clone()).or_insert(0) += 1;
        }
        if let Some(at) = outage.up_at {
            up.push(at.saturating_duration_since(restart));
            up_at_commits += usize::from(at <= commits_began);
            up_after_commits += usize::from(at > commits_ended);
        }
        if let Some(at) = outage.rejoined_at {
            rejoined.push(at.saturating_duration_since(restart));
        }
        let mut contig = Contig::from(from);
        let (mut seen, mut max) = (HashSet::new(), i64::MIN);
        let mut done = None;
        for (seq, at) in s.state.drain() {
            if !seen.insert(seq) || seq <= from {
                duplicates += 1;
                continue;
            }
            reordered += usize::from(seq < max);
            max = max.max(seq);
            contig.add(seq);
            if done.is_none() && contig.value.unwrap_or(-1) >= target {
                done = Some(at.saturating_duration_since(restart));
            }
        }
        caught.extend(done);
    }
    for v in [&mut up, &mut rejoined, &mut caught] {
        v.sort_unstable();
    }
    // CPU from the restart to the last rejoin or catch-up.
    let busy_until = restart + pct(&rejoined, 100.0).max(pct(&caught, 100.0));
    let (cpu_at, cpu) = cpu_samples
        .iter()
        .find(|(at, _)| *at >= busy_until)
        .or(cpu_samples.last())
        .copied()
        .unwrap();
    let cpu_wall = cpu_at.saturating_duration_since(restart);
    hub.shutting_down.store(true, Ordering::SeqCst);
    drop(socks);
    tokio::time::sleep(Duration::from_millis(300)).await;
    server.kill();

    let mut t = Table::new("reconnect storm", vec!["metric".into(), format!("N = {n}")]);
    let users = pop.users_for(n);
    t.row("distinct users", vec![users.to_string()]);
    t.row(
        "sockets connected / joined before",
        vec![format!("{} / {}", connect.ok, join.ok)],
    );
    t.row(
        "seq before the kill → after the commits",
        vec![format!("{seq_before} → {target}")],
    );
    t.row("restart → /readyz", vec![format!("{:.0} ms", ms_f(ready))]);
    t.row(
        "commits during the storm",
        vec![format!(
            "{} in {:.0} ms, {} failed",
            args.storm_commits,
            ms_f(commits_ended - commits_began),
            failures.len()
        )],
    );
    t.row(
        "sockets back when commits began / after they ended",
        vec![format!(
            "{up_at_commits} / {up_after_commits} came back later"
        )],
    );
    t.row("restart → reconnected p50/p99/max", vec![p50_p99_max(&up)]);
    t.row(
        "restart → rejoin ack p50/p99/max",
        vec![p50_p99_max(&rejoined)],
    );
    t.row(
        "restart → caught up p50/p99/max",
        vec![p50_p99_max(&caught)],
    );
    t.row("caught-up histogram", vec![histogram(&caught)]);
    let pct_caught = 100.0 * caught.len() as f64 / n.max(1) as f64;
    t.row(
        "caught up within the deadline",
        vec![format!(
            "{} of {n} = {pct_caught:.2} % ({} s)",
            caught.len(),
            args.storm_deadline.as_secs()
        )],
    );
    t.row("attempts per socket", vec![attempt_counts(&attempts)]);
    t.row("rejoins refused", vec![format!("{refused:?}")]);
    t.row(
        "server CPU restart → last rejoin/catch-up",
        vec![format!(
            "{:.2} s user + {:.2} s sys in {:.1} s ({:.0} % of a core)",
            cpu.user.as_secs_f64(),
            cpu.system.as_secs_f64(),
            cpu_wall.as_secs_f64(),
            100.0 * cpu.total().as_secs_f64() / cpu_wall.as_secs_f64()
        )],
    );
    t.row(
        "duplicates / reordered / resync",
        vec![format!("{duplicates} / {reordered} / {resyncs}")],
    );
    let mut out = Outcome::default();
    out.tables.push(t);
    for f in &failures {
        out.notes
            .push(format!("commit failed during the storm: {f}"));
    }
    let p99 = pct(&caught, 99.0);
    let all = caught.len() == n && reordered == 0;
    out.goals.push(Goal::new(
        &format!("restart → caught up p99 @{n} sockets"),
        "≤ 2 s",
        Some((
            format!("{:.0} ms", ms_f(p99)),
            all && p99 <= Duration::from_secs(2),
        )),
        "",
    ));
    out.goals.push(Goal::new(
        "caught up (every seq to the last commit)",
        "100 %",
        Some((format!("{pct_caught:.2} %"), all)),
        "",
    ));
    out.ok = all && failures.is_empty() && connect.failed() == 0 && join.failed() == 0;
    out.hub_summary(&hub);
    out.logs.push(server.spec.log.clone());
    out.keep_dir(dir);
    out
}

fn attempt_counts(attempts: &[u32]) -> String {
    let mut counts = std::collections::BTreeMap::new();
    for &a in attempts {
        *counts.entry(a.min(5)).or_insert(0usize) += 1;
    }
    let parts: Vec<String> = counts
        .iter()
        .map(|(a, n)| match a {
            5 => format!("≥5: {n}"),
            a => format!("{a}: {n}"),
        })
        .collect();
    parts.join(" · ")
}
