//! Commit → receipt: commits made over REST on a fixed schedule (open loop: a slow commit does
//! not delay the next), each socket's arrival time of each commit's event measured from just
//! before its POST, plus the servers' and the bench's CPU over the phase.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use tokio::task::JoinSet;

use crate::{
    client::{Hub, Sock},
    rest::Writer,
    stats::shorten,
    sys::{self, Cpu},
};

pub struct Plan {
    pub label: String,
    pub events: usize,
    /// Commits per second.
    pub rate: f64,
    /// Commit through node i % nodes (else always node 0).
    pub via_all: bool,
}

#[derive(Default, Clone)]
pub struct Latency {
    pub label: String,
    pub sockets: usize,
    pub events: usize,
    pub rate: f64,
    /// Every (socket, commit) receipt, sorted.
    pub per_socket: Vec<Duration>,
    /// Per commit: its first and its last socket's receipt; last − first.
    pub first: Vec<Duration>,
    pub last: Vec<Duration>,
    pub spread: Vec<Duration>,
    pub post_rtt: Vec<Duration>,
    pub post_failures: BTreeMap<String, usize>,
    pub missing: usize,
    pub duplicates: usize,
    pub reordered: usize,
    pub wall: Duration,
    pub server_cpu: Cpu,
    pub client_cpu: Cpu,
    /// Busy time of everything else on the machine (other processes, PostgreSQL, the kernel).
    pub other_cpu: Duration,
}

impl Latency {
    /// Frames delivered: one per socket per commit.
    pub fn frames(&self) -> usize {
        self.per_socket.len()
    }

    pub fn complete(&self) -> bool {
        self.missing == 0 && self.reordered == 0 && self.post_failures.is_empty()
    }
}

/// Waits until `hub` has counted `target` vault events, or `limit` passes.
pub async fn wait_received(hub: &Hub, target: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    while hub.received.load(Ordering::Relaxed) < target && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub async fn measure(
    plan: &Plan,
    writer: &Writer,
    socks: &[Sock],
    hub: &Hub,
    server_pids: &[u32],
) -> Latency {
    let n = socks.len();
    eprintln!(
        "{}: {} commits at {}/s to {n} sockets…",
        plan.label, plan.events, plan.rate
    );
    // Warm-up commits, their receipts discarded.
    let before = hub.received.load(Ordering::Relaxed);
    for i in 0..3 {
        let _ = writer.post(i, &format!("warm-up {i}")).await;
    }
    wait_received(hub, before + 3 * n as u64, Duration::from_secs(15)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    for s in socks {
        s.state.drain();
    }
    let base_seq = writer.latest_seq().await;

    let (server0, client0, busy0) = (Cpu::of_all(server_pids), Cpu::of(None), sys::machine_busy());
    let received0 = hub.received.load(Ordering::Relaxed);
    let began = Instant::now();
    let mut posts = JoinSet::new();
    for i in 0..plan.events {
        let at = began + Duration::from_secs_f64(i as f64 / plan.rate);
        tokio::time::sleep_until(at.into()).await;
        let (w, title) = (writer.clone(), format!("{} #{i}", plan.label));
        let node = if plan.via_all { i } else { 0 };
        posts.spawn(async move {
            let t0 = Instant::now();
            let result = w.post(node, &title).await;
            (i, t0, t0.elapsed(), result)
        });
    }
    let mut lat = Latency {
        label: plan.label.clone(),
        sockets: n,
        events: plan.events,
        rate: plan.rate,
        ..Default::default()
    };
    let mut t0s: Vec<Option<Instant>> = vec![None; plan.events];
    while let Some(Ok((i, t0, rtt, result))) = posts.join_next().await {
        match result {
            Ok(()) => {
                t0s[i] = Some(t0);
                lat.post_rtt.push(rtt);
            }
            Err(e) => *lat.post_failures.entry(shorten(&e)).or_insert(0) += 1,
        }
    }
    let ok = t0s.iter().flatten().count();
    wait_received(hub, received0 + (ok * n) as u64, Duration::from_secs(30)).await;
    lat.wall = began.elapsed();
    lat.server_cpu = Cpu::of_all(server_pids).since(server0);
    lat.client_cpu = Cpu::of(None).since(client0);
    let busy = sys::machine_busy().saturating_sub(busy0);
    lat.other_cpu = busy.saturating_sub(lat.server_cpu.total() + lat.client_cpu.total());
    tokio::time::sleep(Duration::from_millis(200)).await;

    // seq → (commit, its t0), from the log.
    let mut by_seq: HashMap<i64, (usize, Instant)> = HashMap::new();
    for (seq, title) in writer.titles_since(base_seq).await {
        let Some((label, i)) = title.rsplit_once(" #") else {
            continue;
        };
        let i: usize = i.parse().unwrap_or(usize::MAX);
        if label == plan.label
            && let Some(Some(t0)) = t0s.get(i)
        {
            by_seq.insert(seq, (i, *t0));
        }
    }
    analyse(&mut lat, socks, &by_seq, plan.events);
    // A commit that answered 201 but whose event is not in the log reached no socket.
    lat.missing += ok.saturating_sub(by_seq.len()) * n;
    lat
}

fn analyse(
    lat: &mut Latency,
    socks: &[Sock],
    by_seq: &HashMap<i64, (usize, Instant)>,
    events: usize,
) {
    let mut got = vec![0usize; events];
    let mut first: Vec<Option<Instant>> = vec![None; events];
    let mut last: Vec<Option<Instant>> = vec![None; events];
    for sock in socks {
        let mut seen = HashSet::new();
        let mut max = i64::MIN;
        for (seq, at) in sock.state.drain() {
            if !seen.insert(seq) {
                lat.duplicates += 1;
                continue;
            }
            if seq < max {
                lat.reordered += 1;
            }
            max = max.max(seq);
            let Some(&(i, t0)) = by_seq.get(&seq) else {
                continue;
            };
            got[i] += 1;
            lat.per_socket.push(at.saturating_duration_since(t0));
            first[i] = Some(first[i].map_or(at, |f| f.min(at)));
            last[i] = Some(last[i].map_or(at, |l| l.max(at)));
        }
    }
    let t0_of: HashMap<usize, Instant> = by_seq.values().copied().collect();
    for (i, t0) in &t0_of {
        lat.missing += socks.len().saturating_sub(got[*i]);
        if let (Some(f), Some(l)) = (first[*i], last[*i]) {
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
