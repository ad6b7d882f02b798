//! `--shape --storm`: the reconnect storm in the real shape, on each side. V × S sockets (one
//! per member online, each in its vault, reconnecting like socket.io-client: the first try a
//! random 0.5–1.5 s after the kill) are joined; the server is SIGKILLed and started again on
//! the same port and database; as soon as `/readyz` answers, `--storm-commits` commits land in
//! random vaults. A socket is caught up once it holds every seq of its vault up to the last commit
//! (a socket whose vault got no commit: once its rejoin is acknowledged). Times are from the
//! restart. Log reads per room come from the server's `/metrics` when it exposes them.
use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use rand::Rng;

use crate::{
    Bench, Outcome, Side,
    client::Hub,
    contig::Contig,
    rest::{self, Writer},
    seed::{Shape, World},
    shape,
    spread::Placed,
    stats::{pct, shorten},
    storm_report::{self, StormRun},
    sys::Cpu,
};

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
    storm_report::report(&shape, &mut runs, &mut out);
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
    *hub.killed_at.lock().unwrap() = server.killed;
    let client_at_restart = Cpu::of(None);
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
    let sample = |pid| (Instant::now(), Cpu::of(Some(pid)), Cpu::of(None));
    let mut cpu_samples = vec![
        (restart, Cpu::default(), client_at_restart),
        sample(server.pid),
    ];
    let done = |(v, s): &Placed| {
        let o = s.state.outage.lock().unwrap();
        o.refused.is_some()
            || (o.rejoined_at.is_some() && s.state.contig.load(Ordering::Relaxed) >= target_of(*v))
    };
    while Instant::now() < deadline && !socks.iter().all(&done) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        cpu_samples.push(sample(server.pid));
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
        r.phases.add(&outage, restart);
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
    let (at, cpu, client) = *cpu_samples
        .iter()
        .find(|(at, _, _)| *at >= busy_until)
        .or(cpu_samples.last())
        .unwrap();
    (r.cpu, r.cpu_wall) = (cpu, at.saturating_duration_since(restart));
    r.client_cpu = client.since(client_at_restart);
    let metrics = rest::metrics(&http, &server.base).await;
    r.replay_metrics = metrics
        .into_iter()
        .filter(|(k, _)| {
            ["replay", "history", "log_read", "join_access_reads"]
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
