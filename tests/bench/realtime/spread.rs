//! Commits spread over many vaults, open loop: commit i goes at i / rate seconds into a vault
//! picked at random, made by that vault's committing member through node i % nodes. Each
//! socket sits in one vault; afterwards every socket must hold every commit of its vault once,
//! in order. Receipt times are measured from just before each POST.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use rand::Rng;
use tokio::{sync::Semaphore, task::JoinSet};

use crate::{
    client::{Hub, Sock},
    latency::{Latency, wait_received},
    rest::{self, Writer},
    seed::World,
    stats::shorten,
    sys::{self, Cpu},
};

/// A socket and the index of the vault it joined.
pub type Placed = (usize, Sock);

pub struct Spread<'a> {
    pub label: String,
    pub rate: f64,
    pub commits: usize,
    pub http: &'a reqwest::Client,
    pub bases: &'a [String],
    pub world: &'a World,
    pub pids: &'a [u32],
    /// Most POSTs in flight; a commit due while that many wait is dropped and counted.
    pub max_in_flight: usize,
}

/// What a phase adds to [`Latency`]: commits made and those the client could not send.
#[derive(Default)]
pub struct Commits {
    pub ok: usize,
    pub dropped: usize,
    /// From the first POST to the last answer.
    pub posts_wall: Duration,
}

pub async fn run(p: &Spread<'_>, all: &[Placed], hub: &Hub) -> (Latency, Commits) {
    let w = p.world;
    // Only sockets whose join was acknowledged are expected to receive anything (a failed
    // join is reported with the joins).
    let socks: Vec<&Placed> = all
        .iter()
        .filter(|(_, s)| s.state.contig.load(Ordering::Relaxed) >= 0)
        .collect();
    let socks = &socks[..];
    let per_vault = socket_counts(socks, w.vaults.len());
    eprintln!(
        "{}: {} commits at {}/s over {} vaults…",
        p.label,
        p.commits,
        p.rate,
        w.vaults.len()
    );
    let picks: Vec<usize> = {
        let mut rng = rand::rng();
        (0..p.commits)
            .map(|_| rng.random_range(0..w.vaults.len()))
            .collect()
    };
    // The log position each touched vault starts from (warm-ups and earlier phases included).
    let touched: HashSet<usize> = picks.iter().copied().collect();
    let mut from = HashMap::new();
    for &v in &touched {
        from.insert(v, writer(p, v).latest_seq().await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    for (_, s) in socks {
        s.state.drain();
    }
    let (server0, client0, busy0) = (Cpu::of_all(p.pids), Cpu::of(None), sys::machine_busy());
    let received0 = hub.received.load(Ordering::Relaxed);
    let in_flight = Arc::new(Semaphore::new(p.max_in_flight));
    let began = Instant::now();
    let mut posts = JoinSet::new();
    let mut out = Commits::default();
    for (i, &v) in picks.iter().enumerate() {
        let at = began + Duration::from_secs_f64(i as f64 / p.rate);
        tokio::time::sleep_until(at.into()).await;
        let Ok(permit) = in_flight.clone().try_acquire_owned() else {
            out.dropped += 1;
            continue;
        };
        let (http, base) = (p.http.clone(), p.bases[i % p.bases.len()].clone());
        let (cookie, vault) = (w.writer_cookie(v), w.vaults[v].to_string());
        let title = format!("{} #{i}", p.label);
        posts.spawn(async move {
            let t0 = Instant::now();
            let result = rest::post_source(&http, &base, &cookie, &vault, &title).await;
            drop(permit);
            (i, t0, t0.elapsed(), result)
        });
    }
    let mut lat = Latency {
        label: p.label.clone(),
        sockets: socks.len(),
        events: p.commits,
        rate: p.rate,
        ..Default::default()
    };
    let mut t0s: Vec<Option<Instant>> = vec![None; p.commits];
    while let Some(Ok((i, t0, rtt, result))) = posts.join_next().await {
        match result {
            Ok(()) => {
                t0s[i] = Some(t0);
                lat.post_rtt.push(rtt);
            }
            Err(e) => *lat.post_failures.entry(shorten(&e)).or_insert(0) += 1,
        }
    }
    out.posts_wall = began.elapsed();
    let expected: usize = (0..p.commits)
        .filter(|&i| t0s[i].is_some())
        .map(|i| per_vault[picks[i]])
        .sum();
    out.ok = t0s.iter().flatten().count();
    wait_received(hub, received0 + expected as u64, Duration::from_secs(30)).await;
    lat.wall = began.elapsed();
    lat.server_cpu = Cpu::of_all(p.pids).since(server0);
    lat.client_cpu = Cpu::of(None).since(client0);
    let busy = sys::machine_busy().saturating_sub(busy0);
    lat.other_cpu = busy.saturating_sub(lat.server_cpu.total() + lat.client_cpu.total());
    tokio::time::sleep(Duration::from_millis(200)).await;

    // (vault, seq) → (commit, t0), from each touched vault's log.
    let mut by_seq: HashMap<(usize, i64), (usize, Instant)> = HashMap::new();
    for (&v, &since) in &from {
        for (seq, title) in writer(p, v).titles_since(since).await {
            let Some((label, i)) = title.rsplit_once(" #") else {
                continue;
            };
            let i: usize = i.parse().unwrap_or(usize::MAX);
            if label == p.label
                && let Some(Some(t0)) = t0s.get(i)
            {
                by_seq.insert((v, seq), (i, *t0));
            }
        }
    }
    analyse(&mut lat, socks, &by_seq, &picks, &per_vault);
    // A commit that answered 201 but whose event is not in the log reached no socket.
    let logged: HashSet<usize> = by_seq.values().map(|(i, _)| *i).collect();
    for i in (0..p.commits).filter(|i| t0s[*i].is_some() && !logged.contains(i)) {
        lat.missing += per_vault[picks[i]];
    }
    (lat, out)
}

fn writer(p: &Spread<'_>, v: usize) -> Writer {
    Writer {
        http: p.http.clone(),
        bases: vec![p.bases[0].clone()],
        cookie: p.world.writer_cookie(v),
        vault: p.world.vaults[v].to_string(),
    }
}

pub fn socket_counts(socks: &[&Placed], vaults: usize) -> Vec<usize> {
    let mut n = vec![0usize; vaults];
    for (v, _) in socks {
        n[*v] += 1;
    }
    n
}

fn analyse(
    lat: &mut Latency,
    socks: &[&Placed],
    by_seq: &HashMap<(usize, i64), (usize, Instant)>,
    picks: &[usize],
    per_vault: &[usize],
) {
    let commits = picks.len();
    let mut got = vec![0usize; commits];
    let mut first: Vec<Option<Instant>> = vec![None; commits];
    let mut last: Vec<Option<Instant>> = vec![None; commits];
    for (v, sock) in socks {
        let (mut seen, mut max) = (HashSet::new(), i64::MIN);
        for (seq, at) in sock.state.drain() {
            if !seen.insert(seq) {
                lat.duplicates += 1;
                continue;
            }
            lat.reordered += usize::from(seq < max);
            max = max.max(seq);
            let Some(&(i, t0)) = by_seq.get(&(*v, seq)) else {
                continue;
            };
            got[i] += 1;
            lat.per_socket.push(at.saturating_duration_since(t0));
            first[i] = Some(first[i].map_or(at, |f| f.min(at)));
            last[i] = Some(last[i].map_or(at, |l| l.max(at)));
        }
    }
    let logged: BTreeMap<usize, Instant> = by_seq.values().copied().collect();
    for (&i, t0) in &logged {
        lat.missing += per_vault[picks[i]].saturating_sub(got[i]);
        if let (Some(f), Some(l)) = (first[i], last[i]) {
            lat.first.push(f.saturating_duration_since(*t0));
            lat.last.push(l.saturating_duration_since(*t0));
            lat.spread.push(l.saturating_duration_since(f));
        }
    }
    for v in [
        &mut lat.per_socket,
        &mut lat.first,
        &mut lat.last,
        &mut lat.spread,
        &mut lat.post_rtt,
    ] {
        v.sort_unstable();
    }
}
