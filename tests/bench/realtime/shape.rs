//! One server (this project's or the Node peer's) in the real shape: a fresh SQLite file
//! seeded with the [`World`], its idle memory measured, then V × S sockets opened and each
//! joined to its vault, the settled and peak memory measured, and commits spread over the
//! vaults at `--commit-rate` (open loop). With `rest`, the REST phases follow on the same
//! server once the sockets are closed.
use std::{
    path::Path,
    sync::{Arc, atomic::Ordering},
    time::{Duration, Instant},
};

use crate::{
    Bench, Side,
    client::{Hub, Target},
    fleet::{self, Batch},
    latency::Latency,
    restload::{self, Call, RestRun},
    seed::{Shape, World},
    seed_db,
    server::Server,
    spread::{self, Placed, Spread},
    stats::us_per,
    sys,
};

#[derive(Default)]
pub struct ShapeRun {
    pub sockets: usize,
    pub vaults: usize,
    pub seed_wall: Duration,
    pub connect: Batch,
    pub join: Batch,
    pub rss_base: u64,
    pub rss_settled: u64,
    pub peak_join: u64,
    pub peak_end: u64,
    pub lat: Latency,
    pub commits: usize,
    pub dropped: usize,
    pub closed: u64,
    pub post: Option<RestRun>,
    pub get: Option<RestRun>,
    /// The server's log, and the folder holding it (kept until the report is printed).
    pub log: std::path::PathBuf,
    pub dir: Option<tempfile::TempDir>,
}

impl ShapeRun {
    pub fn kb_per_socket(&self) -> f64 {
        self.rss_settled.saturating_sub(self.rss_base) as f64 * 1.024 / self.sockets.max(1) as f64
    }

    pub fn peak_kb_per_socket(&self) -> f64 {
        self.peak_end.saturating_sub(self.rss_base) as f64 * 1.024 / self.sockets.max(1) as f64
    }

    pub fn kb_per_vault(&self) -> f64 {
        self.kb_per_socket() * self.sockets as f64 / self.vaults.max(1) as f64
    }

    /// Server CPU (user + system) per commit, in µs: the POST and its deliveries.
    pub fn cpu_per_commit(&self) -> f64 {
        us_per(self.lat.server_cpu.total(), self.commits)
    }

    pub fn user_per_frame(&self) -> f64 {
        us_per(self.lat.server_cpu.user, self.lat.frames())
    }

    /// Every socket opened and joined, none lost, every commit delivered once and in order.
    pub fn complete(&self) -> bool {
        self.connect.failed() == 0
            && self.join.failed() == 0
            && self.closed == 0
            && self.lat.complete()
            && self.dropped == 0
    }
}

/// Starts `side` on a fresh database in `dir` and seeds `world` into it.
pub async fn start_seeded(b: &Bench, side: &Side, dir: &Path, world: &World) -> (Server, Duration) {
    let mut spec = b.side_node(side, dir);
    // One log per side and shape: the report saves each under its file name.
    let s = world.shape;
    spec.log = dir.join(format!(
        "{}-{}x{}x{}.log",
        side.name, s.vaults, s.sockets, s.events
    ));
    let db_url = spec.db_url.clone();
    let server = Server::start(spec, &b.http).await;
    eprintln!("{}: seeding {}…", side.name, world.shape.label());
    let t0 = Instant::now();
    seed_db::write(world, &db_url, side.schema).await;
    let took = t0.elapsed();
    eprintln!("{}: seeded in {:.1} s", side.name, took.as_secs_f64());
    (server, took)
}

/// Opens one socket per (vault, cookie) and joins each to its vault.
pub async fn open_placed(
    b: &Bench,
    addrs: &[String],
    world: &World,
    reconnect: bool,
    hub: &Arc<Hub>,
) -> (Vec<Placed>, Batch, Batch) {
    let placed = world.sockets();
    let targets = placed
        .iter()
        .enumerate()
        .map(|(k, (_, cookie))| Target {
            addr: addrs[k % addrs.len()].clone(),
            cookie: cookie.clone(),
        })
        .collect();
    let (socks, connect) = fleet::open_indexed(targets, b.args.concurrency, reconnect, hub).await;
    let socks: Vec<Placed> = socks.into_iter().map(|(k, s)| (placed[k].0, s)).collect();
    let vault_of = |i: usize| world.vaults[socks[i].0].to_string();
    let only: Vec<_> = socks.iter().map(|(_, s)| s).collect();
    let join = fleet::join_each(&only, vault_of, b.args.concurrency).await;
    (socks, connect, join)
}

pub async fn run(b: &Bench, side: &Side, shape: Shape, rate: f64, with_rest: bool) -> ShapeRun {
    let args = &b.args;
    let dir = tempfile::tempdir().expect("tempdir");
    let world = World::plan(shape);
    let (mut server, seed_wall) = start_seeded(b, side, dir.path(), &world).await;
    let pid = server.pid;
    let mut r = ShapeRun {
        sockets: shape.total_sockets(),
        vaults: shape.vaults,
        seed_wall,
        ..Default::default()
    };
    r.rss_base = fleet::settled_rss(&[pid]).await;
    sys::reset_peak(pid);
    let hub = Arc::new(Hub::default());
    eprintln!("{}: opening and joining {} sockets…", side.name, r.sockets);
    let (socks, connect, join) =
        open_placed(b, std::slice::from_ref(&server.addr), &world, false, &hub).await;
    (r.connect, r.join) = (connect, join);
    r.rss_settled = fleet::settled_rss(&[pid]).await;
    r.peak_join = sys::peak_kb(pid);
    eprintln!(
        "{}: {} joined; {:.1} KB per socket",
        side.name,
        r.join.ok,
        r.kb_per_socket()
    );
    let commits = (rate * args.commit_secs).round().max(1.0) as usize;
    let plan = Spread {
        label: format!("{} {}", side.name, shape.label()),
        rate,
        commits,
        http: &b.http,
        bases: std::slice::from_ref(&server.base),
        world: &world,
        pids: &[pid],
        max_in_flight: 1024,
    };
    let (lat, made) = spread::run(&plan, &socks, &hub).await;
    (r.lat, r.commits, r.dropped) = (lat, made.ok, made.dropped);
    r.peak_end = sys::peak_kb(pid);
    r.closed = hub.closed.load(Ordering::SeqCst);
    hub.shutting_down.store(true, Ordering::SeqCst);
    let socks: Vec<_> = socks.into_iter().map(|(_, s)| s).collect();
    fleet::close_all(socks, &b.http, std::slice::from_ref(&server.base)).await;
    if with_rest && args.rest {
        r.post = Some(rest_phase(b, &server, &world, Call::Post).await);
        r.get = Some(rest_phase(b, &server, &world, Call::Get).await);
    }
    server.stop().await;
    r.log = server.spec.log.clone();
    r.dir = Some(dir);
    r
}

pub async fn rest_phase(b: &Bench, server: &Server, world: &World, call: Call) -> RestRun {
    let a = &b.args;
    restload::saturate(
        &server.base,
        world,
        server.pid,
        call,
        a.rest_conns,
        a.rest_secs,
    )
    .await
}
