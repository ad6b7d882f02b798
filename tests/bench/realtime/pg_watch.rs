//! What to watch while nodes run on PostgreSQL: the nodes' database pools (their `/metrics`),
//! what the database's busy backends wait on (`pg_stat_activity`), and PostgreSQL's CPU.
use std::{
    collections::BTreeMap,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use sea_orm::{ConnectionTrait, Database, DbBackend, Statement};

use crate::sys::Cpu;

/// The nodes' database pools over a step, from their `/metrics`.
#[derive(Default)]
pub struct Pool {
    pub in_use_sum: f64,
    pub in_use_max: f64,
    pub size: f64,
    pub samples: usize,
    pub timeouts: f64,
}

/// The nodes' pools (summed over nodes) every 200 ms until `stop`.
pub async fn sample_pools(
    http: reqwest::Client,
    bases: Vec<String>,
    stop: Arc<AtomicBool>,
) -> Pool {
    let read = |m: &BTreeMap<String, f64>, key: &str| -> f64 {
        m.iter()
            .filter(|(k, _)| k.contains(key))
            .map(|(_, v)| *v)
            .sum()
    };
    let mut pool = Pool::default();
    let mut timeouts0 = None;
    loop {
        let (mut in_use, mut size, mut timeouts) = (0.0, 0.0, 0.0);
        for base in &bases {
            let m = crate::rest::metrics(&http, base).await;
            in_use += read(&m, "db_pool_connections_in_use");
            size += read(&m, "db_pool_connections_max");
            timeouts += read(&m, "db_pool_timeouts");
        }
        let t0 = *timeouts0.get_or_insert(timeouts);
        pool.timeouts = timeouts - t0;
        pool.size = size;
        pool.in_use_sum += in_use;
        pool.in_use_max = pool.in_use_max.max(in_use);
        pool.samples += 1;
        if stop.load(Ordering::SeqCst) {
            return pool;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// CPU time of every process named `postgres` (the server and its backends).
pub fn postgres_cpu() -> Cpu {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Cpu::default();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| c.trim() == "postgres")
        })
        .fold(Cpu::default(), |acc, pid| acc.plus(Cpu::of(Some(pid))))
}

/// What the database's busy backends wait on, sampled until `stop`: (wait, count) most
/// frequent first, and the number of samples.
pub async fn sample_waits(db: String, stop: Arc<AtomicBool>) -> (Vec<(String, usize)>, usize) {
    let admin = std::env::var("BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let Ok(conn) = Database::connect(&admin).await else {
        return (Vec::new(), 0);
    };
    let sql = "SELECT CASE WHEN state = 'idle in transaction' THEN 'idle in transaction' \
               ELSE coalesce(wait_event_type || ':' || wait_event, 'running (CPU)') END AS w \
               FROM pg_stat_activity WHERE datname = $1 \
               AND state IN ('active', 'idle in transaction') AND pid <> pg_backend_pid()";
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut samples = 0;
    while !stop.load(Ordering::SeqCst) {
        let stmt = Statement::from_sql_and_values(DbBackend::Postgres, sql, [db.clone().into()]);
        if let Ok(rows) = conn.query_all_raw(stmt).await {
            samples += 1;
            for row in rows {
                let w: String = row.try_get("", "w").unwrap_or_default();
                *counts.entry(w).or_insert(0) += 1;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let _ = conn.close().await;
    let mut v: Vec<_> = counts.into_iter().collect();
    v.sort_by_key(|(_, n)| std::cmp::Reverse(*n));
    (v, samples)
}
