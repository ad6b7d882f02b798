//! Sustained throughput through several nodes: `--writers` writers (writer w commits through
//! node w % K), each POSTing back to back for `--throughput-secs`, into one vault, with
//! `--throughput-sockets` sockets spread round-robin over the nodes. Then every socket must
//! hold every seq of the phase exactly in order: none missing, none reordered (duplicates
//! are allowed by the contract and counted).
use std::{
    collections::HashMap,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use tokio::task::JoinSet;

use crate::{
    Bench,
    client::{Hub, Target},
    fleet,
    report::Table,
    rest::Writer,
    stats::{p50_p99_max, per_second, shorten, us_per_frame},
    sys::Cpu,
    users::Population,
};

#[derive(Default)]
pub struct Throughput {
    pub sockets: usize,
    pub writers: usize,
    pub commits: usize,
    pub failures: HashMap<String, usize>,
    pub wall: Duration,
    pub drain_wall: Duration,
    pub delivered: usize,
    pub missing: usize,
    pub duplicates: usize,
    pub reordered: usize,
    pub join_failures: usize,
    pub receipt: Vec<Duration>,
    pub server_cpu: Cpu,
}

impl Throughput {
    pub fn commits_per_second(&self) -> f64 {
        self.commits as f64 / self.wall.as_secs_f64().max(1e-9)
    }

    pub fn complete(&self) -> bool {
        self.missing == 0 && self.reordered == 0 && self.join_failures == 0 && self.commits > 0
    }
}

pub async fn run(
    b: &Bench,
    writer: &Writer,
    pop: &Population,
    addrs: &[String],
    hub: &Arc<Hub>,
    pids: &[u32],
) -> Throughput {
    let args = &b.args;
    let m = args.throughput_sockets.max(addrs.len());
    let targets = (0..m)
        .map(|i| Target {
            addr: addrs[i % addrs.len()].clone(),
            cookie: pop.cookie_for(i),
        })
        .collect();
    let (socks, _) = fleet::open(targets, args.concurrency, false, hub).await;
    let join = fleet::join(&socks, &writer.vault, args.concurrency).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    for s in &socks {
        s.state.drain();
    }
    let base = writer.latest_seq().await;
    eprintln!(
        "throughput: {} writers for {} s, {m} sockets over {} nodes…",
        args.writers,
        args.throughput_secs,
        addrs.len()
    );
    let cpu0 = Cpu::of_all(pids);
    let began = Instant::now();
    let until = began + Duration::from_secs(args.throughput_secs);
    let mut set = JoinSet::new();
    for w in 0..args.writers {
        let writer = writer.clone();
        set.spawn(async move {
            let mut sent = Vec::new();
            let mut failures = Vec::new();
            let mut k = 0usize;
            while Instant::now() < until {
                let t0 = Instant::now();
                match writer.post(w, &format!("tp w{w} #{k}")).await {
                    Ok(()) => sent.push((format!("tp w{w} #{k}"), t0)),
                    Err(e) => failures.push(shorten(&e)),
                }
                k += 1;
            }
            (sent, failures)
        });
    }
    let mut tp = Throughput {
        sockets: socks.len(),
        writers: args.writers,
        join_failures: join.failed(),
        ..Default::default()
    };
    let mut t0_of: HashMap<String, Instant> = HashMap::new();
    while let Some(Ok((sent, failures))) = set.join_next().await {
        tp.commits += sent.len();
        t0_of.extend(sent);
        for f in failures {
            *tp.failures.entry(f).or_insert(0) += 1;
        }
    }
    tp.wall = began.elapsed();
    let last = writer.latest_seq().await;
    let drain_deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < drain_deadline
        && socks
            .iter()
            .any(|s| s.state.contig.load(Ordering::Relaxed) < last)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tp.drain_wall = began.elapsed();
    tp.server_cpu = Cpu::of_all(pids).since(cpu0);
    let by_seq: HashMap<i64, Instant> = writer
        .titles_since(base)
        .await
        .into_iter()
        .filter_map(|(seq, title)| Some((seq, *t0_of.get(&title)?)))
        .collect();
    let expected = (last - base).max(0) as usize;
    for s in &socks {
        let mut next = base + 1;
        let mut held = std::collections::HashSet::new();
        for (seq, at) in s.state.drain() {
            if seq <= base || seq > last {
                continue;
            }
            if !held.insert(seq) {
                tp.duplicates += 1;
                continue;
            }
            // Later than expected is a gap (counted as missing); earlier, a reorder.
            tp.reordered += usize::from(seq < next);
            next = next.max(seq + 1);
            tp.delivered += 1;
            if let Some(t0) = by_seq.get(&seq) {
                tp.receipt.push(at.saturating_duration_since(*t0));
            }
        }
        tp.missing += expected.saturating_sub(held.len());
    }
    tp.receipt.sort_unstable();
    fleet::close_all(socks, &b.http, &writer.bases).await;
    tp
}

pub fn table(tp: &Throughput) -> Table {
    let mut t = Table::new(
        "sustained throughput into one vault",
        vec!["metric".into(), "value".into()],
    );
    t.row(
        "writers / sockets",
        vec![format!("{} / {}", tp.writers, tp.sockets)],
    );
    t.row(
        "commits",
        vec![format!(
            "{} in {:.1} s = {:.0} commits/s ({} failed)",
            tp.commits,
            tp.wall.as_secs_f64(),
            tp.commits_per_second(),
            tp.failures.values().sum::<usize>()
        )],
    );
    t.row(
        "frames delivered",
        vec![format!(
            "{} ({} /s until the last socket caught up, {:.1} s)",
            tp.delivered,
            per_second(tp.delivered, tp.drain_wall),
            tp.drain_wall.as_secs_f64()
        )],
    );
    t.row(
        "missing / dup / reordered",
        vec![format!(
            "{} / {} / {}",
            tp.missing, tp.duplicates, tp.reordered
        )],
    );
    t.row(
        "commit → receipt p50/p99/max",
        vec![p50_p99_max(&tp.receipt)],
    );
    t.row(
        "server CPU µs/frame user+sys",
        vec![us_per_frame(&tp.server_cpu, tp.delivered)],
    );
    for (f, n) in &tp.failures {
        t.row("commit failure", vec![format!("×{n}: {f}")]);
    }
    t
}
