//! Real-time benchmark against the release server binary, run as child processes.
//!
//! ```text
//! cargo bench --bench realtime                              # tiers 1000,10000, many users
//! cargo bench --bench realtime -- --clients 1000,5000,10000
//! cargo bench --bench realtime -- --clients 1000 --one-user
//! cargo bench --bench realtime -- --storm 5000
//! cargo bench --bench realtime -- --nodes 3 --clients 1000  # PostgreSQL
//! cargo bench --bench realtime -- --shape --peer /work/shared/peer/syncscript-peer
//! cargo bench --bench realtime -- --shape --storm --peer /work/shared/peer/syncscript-peer
//! cargo bench --bench realtime -- --rest --peer /work/shared/peer/syncscript-peer
//! cargo bench --bench realtime -- --shape --only-one-vault --rounds 5 --peer /work/shared/peer/syncscript-peer
//! cargo bench --bench realtime -- --shape --nodes 3            # PostgreSQL, rising rates
//! ```
//!
//! Modes: by default, socket tiers on one node (SQLite); `--storm [N]` the reconnect storm
//! only (default 5000 sockets); `--nodes K` (K ≥ 2) the multi-node phases on PostgreSQL only.
//! The real shape (`--shape`, `seed.rs`): many vaults × a few members online × long logs,
//! seeded straight into the database; with `--peer`, every phase also runs against the Node
//! peer in the same sitting and the tables show rust, node and rust ÷ node (`compare.rs`).
//! `--shape` alone: long logs, fresh vaults, one vault × 1000 sockets, then REST
//! (`shape.rs`); `--rest`: REST at saturation only (`restload.rs`); `--shape --storm`: the
//! reconnect storm in the shape (`shape_storm.rs`); `--shape --nodes K`: K nodes on
//! PostgreSQL in the shape at rising commit rates until saturation (`shape_nodes.rs`).
//!
//! Real-shape flags: `--vaults V` (1000), `--per-vault S` (5 sockets, distinct users),
//! `--log E` (300 events per vault), `--commit-rate R` (100/s, spread over the vaults) for
//! `--commit-secs` (20); `--peer PATH` (or `PEER_BIN`); `--rest-secs` (10), `--rest-conns`
//! (32), `--no-rest`, `--no-fresh`, `--no-one-vault` (its rate is `--cpu-rate`),
//! `--only-one-vault` (that phase alone: server CPU per frame, fan-out work);
//! `--rates 100,200,…` and `--step-secs` (10) for `--shape --nodes`; `--rounds N` (1) runs
//! each phase of `--shape` or `--rest` N times, the sides alternating, and judges the goals by
//! the median of the rounds' ratios (one run's CPU figures drift by ±15% on a shared host).
//!
//! Flags (cargo's own `--bench` is ignored):
//! - `--clients N[,N…]` socket tiers, ascending (default 1000,10000, capped by the open-file
//!   limit); sockets are added tier by tier and stay. With `--nodes`: the socket count
//!   (default 1000).
//! - `--one-user` every socket as `viewer@demo.com` on one session (the server's
//!   `max_sockets_per_user` raised); by default `--per-user 15` sockets per distinct user,
//!   ceil(N / 15) users, all viewers of the Demo Vault.
//! - `--events N` (100) commits per latency phase at `--rate R` per second (10);
//!   `--cpu-events N` (200) commits of the CPU phase at `--cpu-rate R` (20), run at the
//!   1000-socket tier (else the first); `--no-latency` skips both.
//! - `--storm-commits N` (20) commits right after the restart; `--storm-deadline-secs S` (30).
//! - `--throughput-secs S` (10), `--writers W` (6), `--throughput-sockets M` (150) for the
//!   multi-node sustained-throughput phase.
//! - `--concurrency N` (200) handshakes / joins in flight; `--timeout-secs S` (1800) hard
//!   limit for the whole run; `--no-pin`; `--server-cpus 0` and `--client-cpus 1` (the
//!   defaults on ≥ 2 CPUs: every server node on CPU 0, this process on CPU 1).
//!
//! Environment: `SYNCSCRIPT_BIN` (else the `syncscript` binary cargo builds for this bench,
//! `target/release/syncscript`); `BENCH_POSTGRES_URL` (default
//! postgres://postgres@127.0.0.1:5432/postgres) for `--nodes`: a database
//! `syncscript_bench_<random>` is created there and dropped at the end. The servers inherit
//! this process's environment except `SYNCSCRIPT_BIN`, so `SYNCSCRIPT_*` settings and glibc
//! knobs can be tried without code changes.
//!
//! The client (this process) is pinned to its own CPU, so latencies include its queueing on
//! one core: they are an upper bound of what the server alone would show.

mod args;
mod client;
mod cluster;
mod compare;
mod contig;
mod fleet;
mod latency;
mod pg_watch;
mod report;
mod rest;
mod restload;
mod seed;
mod seed_db;
mod server;
mod shape;
mod shape_goals;
mod shape_nodes;
mod shape_storm;
mod sides;
mod spread;
mod stats;
mod storm;
mod storm_report;
mod sys;
mod throughput;
mod tiers;
mod users;

use std::{path::PathBuf, sync::atomic::Ordering, time::Duration};

use args::{Args, Mode};
use client::Hub;
use report::{Goal, Table};
pub use sides::Side;

pub struct Bench {
    pub args: Args,
    pub bin: PathBuf,
    pub http: reqwest::Client,
    /// CPUs every server node runs on (None: not pinned).
    pub server_cpus: Option<Vec<usize>>,
}

impl Bench {
    /// Server settings every node gets: with `--one-user`, room for all its sockets.
    pub fn server_env(&self) -> Vec<(String, String)> {
        if self.args.one_user {
            vec![(
                "SYNCSCRIPT_REALTIME__MAX_SOCKETS_PER_USER".into(),
                "100000".into(),
            )]
        } else {
            Vec::new()
        }
    }

    /// One node on a fresh SQLite file in `dir`, logging there.
    pub fn sqlite_node(&self, dir: &std::path::Path) -> server::Spec {
        server::Spec {
            name: "server".into(),
            bin: self.bin.clone(),
            port: server::free_port(),
            db_url: format!("sqlite://{}?mode=rwc", dir.join("bench.db").display()),
            cpus: self.server_cpus.clone(),
            log: dir.join("server.log"),
            env: self.server_env(),
        }
    }

    /// The users `sockets` sockets sign in as: one with `--one-user`, else `--per-user`
    /// sockets each, members of `vault`.
    pub async fn population(
        &self,
        base: &str,
        db_url: &str,
        vault: &str,
        sockets: usize,
    ) -> users::Population {
        if self.args.one_user {
            users::Population::one_user(&self.http, base).await
        } else {
            let users = sockets.div_ceil(self.args.per_user);
            eprintln!("creating {users} users…");
            users::Population::many(&self.http, base, db_url, vault, users, self.args.per_user)
                .await
        }
    }
}

/// What a mode hands back to print.
#[derive(Default)]
pub struct Outcome {
    pub tables: Vec<Table>,
    pub goals: Vec<Goal>,
    pub notes: Vec<String>,
    pub logs: Vec<PathBuf>,
    /// Every socket connected and joined, every frame delivered in order.
    pub ok: bool,
    dirs: Vec<tempfile::TempDir>,
}

impl Outcome {
    /// Keeps a temporary folder (its logs) until the outcome is printed.
    pub fn keep_dir(&mut self, dir: tempfile::TempDir) {
        self.dirs.push(dir);
    }

    pub fn hub_summary(&mut self, hub: &Hub) {
        let sorted = |m: &std::sync::Mutex<std::collections::HashMap<String, u64>>| {
            let mut v: Vec<(String, u64)> = m.lock().unwrap().clone().into_iter().collect();
            v.sort();
            v
        };
        self.notes.push(format!(
            "client: {} pings answered; other packets received: {:?}",
            hub.pings.load(Ordering::SeqCst),
            sorted(&hub.events)
        ));
        let closed = hub.closed.load(Ordering::SeqCst);
        self.notes
            .push(format!("sockets lost without reconnecting: {closed}"));
        for (reason, n) in sorted(&hub.closes) {
            self.notes.push(format!("  lost ×{n}: {reason}"));
        }
        for (reason, n) in sorted(&hub.retry_failures) {
            self.notes
                .push(format!("  failed reconnection attempt ×{n}: {reason}"));
        }
    }
}

struct Setup {
    pinning: String,
    server_cpus: Option<Vec<usize>>,
    client_threads: usize,
    open_files: u64,
}

fn main() {
    let mut args = args::parse();
    let setup = prepare(&mut args);
    server::start_watchdog(args.timeout);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(setup.client_threads)
        .enable_all()
        .build()
        .expect("runtime");
    let code = rt.block_on(run(args, setup));
    rt.shutdown_timeout(Duration::from_secs(2));
    server::cleanup();
    std::process::exit(code);
}

/// Pins this process (before any thread starts) and raises the open-file limit.
fn prepare(args: &mut Args) -> Setup {
    let cpus = sys::cpu_count();
    let (pinning, server_cpus, client_threads) = if !args.pin {
        ("off (--no-pin)".to_string(), None, cpus)
    } else if cpus < 2 {
        ("off (one CPU)".to_string(), None, cpus)
    } else {
        match sys::pin_self(&args.client_cpus) {
            Ok(()) => (
                format!(
                    "server nodes on CPU {:?}, bench client on CPU {:?}",
                    args.server_cpus, args.client_cpus
                ),
                Some(args.server_cpus.clone()),
                args.client_cpus.len(),
            ),
            Err(e) => (format!("off ({e})"), None, cpus),
        }
    };
    let need = args.max_sockets() as u64 + 500;
    let open_files = sys::ensure_fd_limit(need);
    if open_files < need {
        let cap = open_files.saturating_sub(500) as usize;
        eprintln!(
            "WARNING: open-file limit {open_files} is too low for {need} descriptors; raise it \
             with `ulimit -n {need}`"
        );
        if args.mode == Mode::Tiers && !args.tiers_given {
            args.tiers.retain(|&n| n <= cap);
            if args.tiers.is_empty() {
                args.tiers.push(cap.max(1));
            }
        }
    }
    Setup {
        pinning,
        server_cpus,
        client_threads: client_threads.max(1),
        open_files,
    }
}

async fn run(args: Args, setup: Setup) -> i32 {
    let bench = Bench {
        bin: server::binary(),
        http: reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .unwrap(),
        server_cpus: setup.server_cpus,
        args,
    };
    println!("SyncScript realtime bench");
    println!("  command    {}", Args::command_line());
    for (k, v) in sys::machine_context() {
        println!("  {k:<10} {v}");
    }
    println!("  pinning    {}", setup.pinning);
    println!("  open files {}", setup.open_files);
    println!("  server     {}", bench.bin.display());
    let a = &bench.args;
    let users = if a.one_user {
        "one user (viewer@demo.com, one session)".to_string()
    } else {
        format!("{} sockets per user", a.per_user)
    };
    let plan = match a.mode {
        Mode::Tiers => format!("tiers {:?} on one node (SQLite), {users}", a.tiers),
        Mode::Storm(n) => format!("reconnect storm, {n} sockets on one node (SQLite), {users}"),
        Mode::Nodes(k) if a.shape => format!("{k} nodes on PostgreSQL in the real shape"),
        Mode::Nodes(k) => format!("{k} nodes on PostgreSQL, {} sockets, {users}", a.tiers[0]),
        Mode::Shape => "the real shape (SQLite), then REST".to_string(),
        Mode::Rest => "REST at saturation on the real shape's database (SQLite)".to_string(),
    };
    println!("  plan       {plan}");
    if a.shape || a.mode == Mode::Rest {
        println!(
            "  shape      {} vaults × {} sockets (distinct users), {}-event logs; commits at {}/s \
             for {} s; REST {} connections for {} s",
            a.vaults,
            a.per_vault,
            a.log_events,
            a.commit_rate,
            a.commit_secs,
            a.rest_conns,
            a.rest_secs
        );
        let sides: Vec<String> = bench
            .sides()
            .iter()
            .map(|s| format!("{} = {}", s.name, s.bin.display()))
            .collect();
        println!("  sides      {}", sides.join(", "));
    } else {
        println!(
            "  latency    {} commits at {}/s per phase; CPU phase {} commits at {}/s",
            a.events, a.rate, a.cpu_events, a.cpu_rate
        );
    }

    let out = match a.mode {
        Mode::Tiers => tiers::run(&bench).await,
        Mode::Storm(_) if a.shape => shape_storm::run(&bench).await,
        Mode::Storm(n) => storm::run(&bench, n).await,
        Mode::Nodes(k) if a.shape => shape_nodes::run(&bench, k).await,
        Mode::Nodes(k) => cluster::run(&bench, k).await,
        Mode::Shape | Mode::Rest => compare::run(&bench).await,
    };
    for t in &out.tables {
        t.print();
    }
    report::print_goals(&out.goals);
    println!("\n══ notes ══");
    println!("  load at the end: {}", sys::loadavg());
    for n in &out.notes {
        println!("  {n}");
    }
    server::report_logs(&out.logs);
    if out.ok { 0 } else { 1 }
}
