//! Many sockets at once: opening them (`concurrency` handshakes in flight), joining the vault,
//! and waiting for the servers' memory to settle afterwards.
use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use tokio::{
    sync::{Semaphore, oneshot},
    task::JoinSet,
};

use crate::{
    client::{self, Cmd, Hub, Sock, Target},
    stats::shorten,
    sys,
};

/// How a batch of handshakes or joins went.
#[derive(Default, Clone)]
pub struct Batch {
    pub ok: usize,
    pub failures: BTreeMap<String, usize>,
    pub wall: Duration,
    /// Per-operation time, sorted.
    pub lat: Vec<Duration>,
}

impl Batch {
    pub fn failed(&self) -> usize {
        self.failures.values().sum()
    }

    fn record(&mut self, result: Result<Duration, String>) {
        match result {
            Ok(took) => {
                self.ok += 1;
                self.lat.push(took);
            }
            Err(e) => *self.failures.entry(shorten(&e)).or_insert(0) += 1,
        }
    }
}

/// Opens one socket per target.
pub async fn open(
    targets: Vec<Target>,
    concurrency: usize,
    reconnect: bool,
    hub: &Arc<Hub>,
) -> (Vec<Sock>, Batch) {
    let (socks, batch) = open_indexed(targets, concurrency, reconnect, hub).await;
    (socks.into_iter().map(|(_, s)| s).collect(), batch)
}

/// Opens one socket per target; each socket opened comes back with its target's index, in
/// the targets' order.
pub async fn open_indexed(
    targets: Vec<Target>,
    concurrency: usize,
    reconnect: bool,
    hub: &Arc<Hub>,
) -> (Vec<(usize, Sock)>, Batch) {
    let sem = Arc::new(Semaphore::new(concurrency));
    let mut set = JoinSet::new();
    let began = Instant::now();
    for (i, target) in targets.into_iter().enumerate() {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let hub = hub.clone();
        set.spawn(async move {
            let t0 = Instant::now();
            let result = tokio::time::timeout(Duration::from_secs(30), client::handshake(&target))
                .await
                .unwrap_or_else(|_| Err("handshake took over 30 s".into()));
            let took = t0.elapsed();
            drop(permit);
            result.map(|ws| (i, client::spawn(ws, target, reconnect, hub), took))
        });
    }
    let mut socks = Vec::new();
    let mut batch = Batch::default();
    while let Some(res) = set.join_next().await {
        match res {
            Ok(Ok((i, sock, took))) => {
                socks.push((i, sock));
                batch.record(Ok(took));
            }
            Ok(Err(e)) => batch.record(Err(e)),
            Err(e) => batch.record(Err(format!("task: {e}"))),
        }
    }
    batch.wall = began.elapsed();
    batch.lat.sort_unstable();
    socks.sort_unstable_by_key(|(i, _)| *i);
    (socks, batch)
}

/// `vault:join` on every socket (without `since`), waiting for each ack.
pub async fn join(socks: &[Sock], vault: &str, concurrency: usize) -> Batch {
    join_each(socks, |_| vault.to_string(), concurrency).await
}

/// `vault:join` of `vault_of(i)` on socket i (without `since`), waiting for each ack.
pub async fn join_each<S: std::borrow::Borrow<Sock>>(
    socks: &[S],
    vault_of: impl Fn(usize) -> String,
    concurrency: usize,
) -> Batch {
    let sem = Arc::new(Semaphore::new(concurrency));
    let mut set = JoinSet::new();
    let began = Instant::now();
    for (i, sock) in socks.iter().enumerate() {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (reply, rx) = oneshot::channel();
        let cmd = Cmd::Join {
            vault: vault_of(i),
            since: None,
            reply,
        };
        let sent = sock.borrow().cmd.send(cmd).is_ok();
        set.spawn(async move {
            let t0 = Instant::now();
            let result = if !sent {
                Err("socket already closed".to_string())
            } else {
                match tokio::time::timeout(Duration::from_secs(30), rx).await {
                    Ok(Ok(ack)) if ack["ok"] == true => Ok(t0.elapsed()),
                    Ok(Ok(ack)) => Err(format!("ack {ack}")),
                    Ok(Err(_)) => Err("socket closed before the ack".into()),
                    Err(_) => Err("no ack within 30 s".into()),
                }
            };
            drop(permit);
            result
        });
    }
    let mut batch = Batch::default();
    while let Some(res) = set.join_next().await {
        batch.record(res.unwrap_or_else(|e| Err(format!("task: {e}"))));
    }
    batch.wall = began.elapsed();
    batch.lat.sort_unstable();
    batch
}

/// Total VmRSS (KiB) of `pids` once it changes by less than 1 % over 2 s (at most ~11 s).
pub async fn settled_rss(pids: &[u32]) -> u64 {
    let total = || pids.iter().map(|&p| sys::rss_kb(p)).sum::<u64>();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut last = total();
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let now = total();
        if (now.abs_diff(last) as f64) < 0.01 * last as f64 {
            return now;
        }
        last = now;
    }
    last
}

/// Closes `socks` and waits (≤ 10 s) until the servers count no connected socket.
pub async fn close_all(socks: Vec<Sock>, http: &reqwest::Client, bases: &[String]) {
    drop(socks);
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let mut open = 0.0;
        for base in bases {
            open += crate::rest::connected_sockets(http, base).await;
        }
        if open == 0.0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("note: the servers still count connected sockets 10 s after closing them");
}
