//! Real-time benchmark against the release server binary, run as a child process.
//!
//! ```text
//! cargo bench --bench realtime                              # tiers 1000 and 10000
//! cargo bench --bench realtime -- --clients 1000            # one tier
//! cargo bench --bench realtime -- --clients 1000,5000 --events 100 --interval-ms 20
//! ```
//!
//! Options (all optional; cargo's own `--bench` flag is ignored):
//! `--clients N[,N…]` socket tiers, ascending (default `1000,10000`); sockets are added up to
//! each tier in turn and stay connected; `--events N` measured commits per tier (default 50);
//! `--interval-ms N` spacing of the commits at up to 1000 sockets (default 50; stretched in
//! proportion above 1000, e.g. 500 ms at 10000, so one fan-out does not queue behind the
//! last); `--concurrency N` handshakes / joins in flight (default 200); `--no-latency` skips
//! the commit-to-receipt phase; `--timeout-secs N` hard limit for the whole run (default 600).
//!
//! Memory: VmRSS deltas depend on the allocator. The server inherits this process's
//! environment (except `SYNCSCRIPT_BIN`), so glibc knobs (`MALLOC_ARENA_MAX=1 cargo bench …`)
//! and server settings (`SYNCSCRIPT_REALTIME__WS_READ_BUFFER_SIZE=512`) can be tried without
//! code changes. "marginal KB / conn" (between two tiers) leaves out the server's one-time
//! costs and is the steadier figure.
//!
//! Server binary: `SYNCSCRIPT_BIN`, else the `syncscript` binary cargo builds for this bench
//! (`target/release/syncscript`, same profile as `cargo build --release`).
//!
//! Per tier it measures: (1) WebSocket handshakes per second (TCP + upgrade + Engine.IO open +
//! Socket.IO `40` connect, which authenticates the session cookie), (2) `vault:join` acks per
//! second, (3) server VmRSS before any socket and with N idle joined sockets → KB per
//! connection, (4) REST commit → `source:created` receipt latency on every socket (from just
//! before the owner's POST is written until each socket's reader sees the frame).
//!
//! Client and server share the machine: on a 2-core box the client's readers compete with the
//! server for CPU, so latencies are an upper bound of what the server alone would show.
//! Every socket signs in as `viewer@demo.com` with one session (one user in presence).
//! Sockets are opened to 127.0.0.1 only. The process needs about N + 100 file descriptors;
//! when `ulimit -n` is lower it tries `prlimit` up to the hard limit, else caps the tiers.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::{
    net::TcpStream,
    sync::{Semaphore, mpsc, oneshot},
    task::JoinSet,
};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream,
    tungstenite::{Message, Utf8Bytes, client::IntoClientRequest, protocol::WebSocketConfig},
};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const PASSWORD: &str = "demo-password";
const COOKIE_NAME: &str = "syncscript.session-token";
const GOAL_KB_PER_CONN: f64 = 20.0;
const GOAL_P99_MS: f64 = 20.0;

/// The server's pid, for the watchdog thread.
static SERVER_PID: AtomicU32 = AtomicU32::new(0);

// ---------------------------------------------------------------------------------------------
// Arguments
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Args {
    tiers: Vec<usize>,
    events: usize,
    interval: Duration,
    concurrency: usize,
    latency: bool,
    timeout: Duration,
}

fn parse_args() -> Args {
    let mut args = Args {
        tiers: vec![1000, 10_000],
        events: 50,
        interval: Duration::from_millis(50),
        concurrency: 200,
        latency: true,
        timeout: Duration::from_secs(600),
    };
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < raw.len() {
        let (key, inline) = match raw[i].split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (raw[i].clone(), None),
        };
        let mut value = || -> String {
            if let Some(v) = inline.clone() {
                return v;
            }
            i += 1;
            raw.get(i)
                .cloned()
                .unwrap_or_else(|| die(&format!("{key} needs a value")))
        };
        let num = |s: String| -> usize {
            s.trim()
                .parse()
                .unwrap_or_else(|_| die(&format!("bad number {s:?}")))
        };
        match key.as_str() {
            "--clients" => {
                args.tiers = value().split(',').map(|s| num(s.to_string())).collect();
            }
            "--events" => args.events = num(value()),
            "--interval-ms" => args.interval = Duration::from_millis(num(value()) as u64),
            "--concurrency" => args.concurrency = num(value()).max(1),
            "--timeout-secs" => args.timeout = Duration::from_secs(num(value()) as u64),
            "--no-latency" => args.latency = false,
            "--bench" => {}
            other if other.starts_with("--") => eprintln!("note: ignoring unknown flag {other}"),
            _ => {} // cargo may pass a filter string
        }
        i += 1;
    }
    args.tiers.retain(|&n| n > 0);
    args.tiers.sort_unstable();
    args.tiers.dedup();
    if args.tiers.is_empty() {
        die("--clients needs at least one positive number");
    }
    args
}

fn die(msg: &str) -> ! {
    eprintln!("realtime bench: {msg}");
    kill_server_hard();
    std::process::exit(2);
}

// ---------------------------------------------------------------------------------------------
// Machine context and limits
// ---------------------------------------------------------------------------------------------

fn nofile_limits() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("Max open files") {
            let mut parts = rest.split_whitespace();
            let parse = |s: Option<&str>| match s {
                Some("unlimited") => u64::MAX,
                Some(v) => v.parse().unwrap_or(0),
                None => 0,
            };
            return (parse(parts.next()), parse(parts.next()));
        }
    }
    (0, 0)
}

/// Makes sure this process (and so the server it starts) may open enough descriptors.
fn ensure_fd_limit(args: &mut Args) -> (u64, u64) {
    let need = *args.tiers.last().unwrap() as u64 + 200;
    let (soft, hard) = nofile_limits();
    if soft < need && hard > soft {
        let target = hard.min(need.max(65_536));
        let status = Command::new("prlimit")
            .arg("--pid")
            .arg(std::process::id().to_string())
            .arg(format!("--nofile={target}:{hard}"))
            .status();
        match status {
            Ok(s) if s.success() => eprintln!("raised the open-file limit to {target} (prlimit)"),
            _ => eprintln!("could not raise the open-file limit with prlimit"),
        }
    }
    let (soft, hard) = nofile_limits();
    if soft < need {
        let cap = soft.saturating_sub(200) as usize;
        eprintln!(
            "WARNING: open-file limit {soft} is too low for {need} descriptors; capping tiers at \
             {cap}. Raise it with `ulimit -n {need}` (hard limit {hard}) before `cargo bench`."
        );
        args.tiers.retain(|&n| n <= cap);
        if args.tiers.is_empty() {
            args.tiers.push(cap.max(1));
        }
    }
    (soft, hard)
}

fn machine_context() -> Vec<(String, String)> {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
        .unwrap_or_else(|| "?".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("MemTotal"))
        .map(|l| {
            l.split_whitespace()
                .nth(1)
                .unwrap_or("0")
                .parse::<u64>()
                .unwrap_or(0)
        })
        .map_or("?".into(), |kb| format!("{:.1} GiB", kb as f64 / 1048576.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    vec![
        ("cpu".into(), format!("{cores} × {cpu}")),
        ("memory".into(), mem),
        ("kernel".into(), kernel),
    ]
}

// ---------------------------------------------------------------------------------------------
// The server child process
// ---------------------------------------------------------------------------------------------

struct Server {
    child: Child,
    pid: u32,
    base: String,
    addr: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn kill_server_hard() {
    let pid = SERVER_PID.load(Ordering::SeqCst);
    if pid != 0 {
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
    }
}

fn server_binary() -> PathBuf {
    if let Ok(p) = std::env::var("SYNCSCRIPT_BIN")
        && !p.is_empty()
    {
        return PathBuf::from(p);
    }
    if let Some(p) = option_env!("CARGO_BIN_EXE_syncscript") {
        return PathBuf::from(p);
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/syncscript")
}

async fn start_server(bin: &Path) -> Server {
    if !bin.exists() {
        die(&format!(
            "server binary {} not found; build it with `cargo build --release --bin syncscript` \
             or set SYNCSCRIPT_BIN",
            bin.display()
        ));
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
        l.local_addr().unwrap().port()
    };
    let log = dir.path().join("server.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    let db_url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("bench.db").display()
    );
    let child = Command::new(bin)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        // Every other `SYNCSCRIPT_*` variable is server configuration, and `bin` is no key.
        .env_remove("SYNCSCRIPT_BIN")
        .env("SYNCSCRIPT_SERVER__HOST", "127.0.0.1")
        .env("SYNCSCRIPT_SERVER__PORT", port.to_string())
        .env("SYNCSCRIPT_DATABASE__URL", &db_url)
        .env("SYNCSCRIPT_DEMO__SEED", "true")
        .env("SYNCSCRIPT_LOG__LEVEL", "warn")
        .env("SYNCSCRIPT_REALTIME__MAX_SOCKETS_PER_USER", "100000")
        .env("SYNCSCRIPT_REALTIME__EVENTS_PER_SECOND", "1000")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(log_file.try_clone().unwrap())
        .stderr(log_file)
        .spawn()
        .unwrap_or_else(|e| die(&format!("cannot start {}: {e}", bin.display())));
    let pid = child.id();
    SERVER_PID.store(pid, Ordering::SeqCst);
    let mut server = Server {
        child,
        pid,
        base: format!("http://127.0.0.1:{port}"),
        addr: format!("127.0.0.1:{port}"),
        log,
        _dir: dir,
    };
    let http = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Ok(Some(status)) = server.child.try_wait() {
            let text = std::fs::read_to_string(&server.log).unwrap_or_default();
            die(&format!(
                "server exited during start-up ({status}):\n{text}"
            ));
        }
        if let Ok(r) = http.get(format!("{}/readyz", server.base)).send().await
            && r.status() == 200
        {
            break;
        }
        if started.elapsed() > Duration::from_secs(60) {
            let text = std::fs::read_to_string(&server.log).unwrap_or_default();
            die(&format!("server not ready within 60 s:\n{text}"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "server pid {pid} ready on {} after {:.1} s",
        server.base,
        started.elapsed().as_secs_f64()
    );
    server
}

/// (VmRSS, VmHWM) in KiB.
fn rss_kb(pid: u32) -> (u64, u64) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        text.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// (user, system) CPU time of a process (`self` for this one).
fn cpu_time(pid: &str) -> (Duration, Duration) {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = text.rsplit_once(')').map_or("", |(_, rest)| rest);
    // Fields after the command name start at field 3 (state); utime/stime are fields 14/15.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    // USER_HZ is 100 on every mainstream Linux.
    (
        Duration::from_millis(ticks(14) * 10),
        Duration::from_millis(ticks(15) * 10),
    )
}

fn cpu_since(pid: &str, since: (Duration, Duration)) -> (Duration, Duration) {
    let now = cpu_time(pid);
    (now.0.saturating_sub(since.0), now.1.saturating_sub(since.1))
}

/// The kernel's count of connections dropped because a listen queue was full (all sockets
/// of the machine; the client retries the SYN after 1 s).
fn listen_overflows() -> u64 {
    let text = std::fs::read_to_string("/proc/net/netstat").unwrap_or_default();
    let mut lines = text.lines();
    while let (Some(names), Some(values)) = (lines.next(), lines.next()) {
        if !names.starts_with("TcpExt:") {
            continue;
        }
        let pos = names
            .split_whitespace()
            .position(|n| n == "ListenOverflows");
        if let Some(v) = pos.and_then(|i| values.split_whitespace().nth(i)) {
            return v.parse().unwrap_or(0);
        }
    }
    0
}

fn threads_of(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("Threads:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// Waits for RSS to settle (two equal-ish samples), then returns it.
async fn settled_rss(pid: u32) -> u64 {
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let mut last = rss_kb(pid).0;
    for _ in 0..5 {
        tokio::time::sleep(Duration::from_millis(700)).await;
        let now = rss_kb(pid).0;
        if now.abs_diff(last) < 256 {
            return now;
        }
        last = now;
    }
    last
}

// ---------------------------------------------------------------------------------------------
// REST
// ---------------------------------------------------------------------------------------------

async fn login(http: &reqwest::Client, base: &str, email: &str) -> String {
    let resp = http
        .post(format!("{base}/api/auth/login"))
        .json(&json!({ "email": email, "password": PASSWORD }))
        .send()
        .await
        .unwrap_or_else(|e| die(&format!("login request: {e}")));
    if resp.status() != 200 {
        die(&format!("login as {email}: {}", resp.status()));
    }
    resp.headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .filter_map(|v| v.split(';').next())
        .find(|pair| pair.starts_with(&format!("{COOKIE_NAME}=")))
        .map(str::to_string)
        .unwrap_or_else(|| die("login set no session cookie"))
}

async fn demo_vault(http: &reqwest::Client, base: &str, cookie: &str) -> String {
    let body: Value = http
        .get(format!("{base}/api/vaults"))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap_or_else(|e| die(&format!("GET /api/vaults: {e}")))
        .json()
        .await
        .unwrap_or_else(|e| die(&format!("GET /api/vaults body: {e}")));
    body["vaults"]
        .as_array()
        .and_then(|vs| vs.iter().find(|v| v["name"] == "Demo Vault"))
        .and_then(|v| v["id"].as_str())
        .map(str::to_string)
        .unwrap_or_else(|| die(&format!("no Demo Vault in {body}")))
}

/// Selected lines of `/metrics` (name → value), for cross-checking.
async fn metrics(http: &reqwest::Client, base: &str) -> BTreeMap<String, f64> {
    let text = match http.get(format!("{base}/metrics")).send().await {
        Ok(r) => r.text().await.unwrap_or_default(),
        Err(_) => String::new(),
    };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (name, value) = l.rsplit_once(' ')?;
            let keep = name.contains("fanout_seconds_sum")
                || name.contains("fanout_seconds_count")
                || (name.contains("socket") && !name.contains("bucket"))
                || (name.contains("room") && !name.contains("bucket"))
                || name.contains("events");
            keep.then(|| Some((name.to_string(), value.parse().ok()?)))?
        })
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Socket.IO client: one task per socket owns the WebSocket and answers pings.
// ---------------------------------------------------------------------------------------------

#[derive(Default)]
struct Shared {
    /// `source:created` frames as they arrive: (socket index, receive instant, frame).
    receipts: Mutex<Vec<(usize, Instant, Utf8Bytes)>>,
    /// Other events received, by name.
    events: Mutex<HashMap<String, u64>>,
    /// Unexpected closes, by reason.
    closes: Mutex<HashMap<String, u64>>,
    closed: AtomicU64,
    pings: AtomicU64,
    shutting_down: AtomicBool,
}

enum Cmd {
    Join(String, oneshot::Sender<Value>),
}

struct Sock {
    cmd: mpsc::UnboundedSender<Cmd>,
}

fn bump(map: &Mutex<HashMap<String, u64>>, key: String) {
    *map.lock().unwrap().entry(key).or_insert(0) += 1;
}

/// TCP connect, WebSocket upgrade, Engine.IO open, Socket.IO `40` → `40{…}`.
async fn handshake(addr: &str, cookie: &str) -> Result<Ws, String> {
    let mut req = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("cookie", cookie.parse().unwrap());
    let config = WebSocketConfig::default()
        .read_buffer_size(8192)
        .write_buffer_size(0);
    let (mut ws, _) = tokio_tungstenite::connect_async_with_config(req, Some(config), true)
        .await
        .map_err(|e| format!("upgrade: {e}"))?;
    let open = next_text(&mut ws).await?;
    if !open.starts_with('0') {
        return Err(format!("expected open packet, got {open:.60}"));
    }
    ws.send(Message::text("40"))
        .await
        .map_err(|e| format!("send 40: {e}"))?;
    loop {
        let packet = next_text(&mut ws).await?;
        if packet == "2" {
            ws.send(Message::text("3"))
                .await
                .map_err(|e| format!("pong: {e}"))?;
        } else if packet.starts_with("40") {
            return Ok(ws);
        } else if let Some(err) = packet.strip_prefix("44") {
            return Err(format!("connect_error {err:.80}"));
        } else {
            return Err(format!("expected connect reply, got {packet:.60}"));
        }
    }
}

async fn next_text(ws: &mut Ws) -> Result<String, String> {
    loop {
        match tokio::time::timeout(Duration::from_secs(20), ws.next()).await {
            Ok(Some(Ok(Message::Text(t)))) => return Ok(t.to_string()),
            Ok(Some(Ok(Message::Close(f)))) => return Err(format!("closed: {f:?}")),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(format!("read: {e}")),
            Ok(None) => return Err("eof".into()),
            Err(_) => return Err("no packet within 20 s".into()),
        }
    }
}

async fn socket_task(
    idx: usize,
    ws: Ws,
    mut cmds: mpsc::UnboundedReceiver<Cmd>,
    shared: Arc<Shared>,
) {
    let (mut sink, mut stream) = ws.split();
    let mut next_ack = 1u64;
    let mut pending: HashMap<u64, oneshot::Sender<Value>> = HashMap::new();
    let reason: String = loop {
        tokio::select! {
            msg = stream.next() => {
                let now = Instant::now();
                match msg {
                    Some(Ok(Message::Text(t))) => {
                        let s = t.as_str();
                        if s == "2" {
                            shared.pings.fetch_add(1, Ordering::Relaxed);
                            if let Err(e) = sink.send(Message::text("3")).await {
                                break format!("pong failed: {e}");
                            }
                        } else if s.starts_with("42[\"source:created\"") {
                            shared.receipts.lock().unwrap().push((idx, now, t));
                        } else if let Some(rest) = s.strip_prefix("43") {
                            let split = rest.find('[').unwrap_or(rest.len());
                            let id: u64 = rest[..split].parse().unwrap_or(0);
                            if let Some(tx) = pending.remove(&id) {
                                let args: Value = serde_json::from_str(&rest[split..]).unwrap_or_default();
                                let _ = tx.send(args[0].clone());
                            }
                        } else if let Some(rest) = s.strip_prefix("42") {
                            let name = rest
                                .trim_start_matches(|c: char| c.is_ascii_digit())
                                .trim_start_matches("[\"")
                                .split('"')
                                .next()
                                .unwrap_or("?")
                                .to_string();
                            if name == "error" {
                                bump(&shared.events, format!("error {s:.120}"));
                            } else {
                                bump(&shared.events, name);
                            }
                        } else if s.starts_with("41") {
                            break "server sent Socket.IO disconnect (41)".into();
                        } else if s.starts_with('1') {
                            break "server sent Engine.IO close (1)".into();
                        } else {
                            bump(&shared.events, format!("other packet {s:.20}"));
                        }
                    }
                    Some(Ok(Message::Close(f))) => break format!("close frame {f:?}"),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break format!("read error: {e}"),
                    None => break "eof".into(),
                }
            }
            cmd = cmds.recv() => match cmd {
                Some(Cmd::Join(vault, tx)) => {
                    let id = next_ack;
                    next_ack += 1;
                    pending.insert(id, tx);
                    let text = format!("42{id}{}", json!(["vault:join", vault]));
                    if let Err(e) = sink.send(Message::text(text)).await {
                        break format!("send join failed: {e}");
                    }
                }
                None => {
                    let _ = sink.send(Message::Close(None)).await;
                    return;
                }
            }
        }
    };
    if !shared.shutting_down.load(Ordering::SeqCst) {
        shared.closed.fetch_add(1, Ordering::SeqCst);
        bump(&shared.closes, reason);
    }
}

// ---------------------------------------------------------------------------------------------
// Statistics
// ---------------------------------------------------------------------------------------------

fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

/// Counts per coarse bucket, e.g. `<10ms 812 · <50ms 180 · ≥1s 8`.
fn histogram(samples: &[Duration]) -> String {
    const EDGES: [(u64, &str); 8] = [
        (10, "<10ms"),
        (50, "<50ms"),
        (100, "<100ms"),
        (250, "<250ms"),
        (500, "<500ms"),
        (1000, "<1s"),
        (3000, "<3s"),
        (u64::MAX, "≥3s"),
    ];
    let mut counts = [0usize; EDGES.len()];
    for d in samples {
        let ms = d.as_millis() as u64;
        let i = EDGES
            .iter()
            .position(|(edge, _)| ms < *edge)
            .unwrap_or(EDGES.len() - 1);
        counts[i] += 1;
    }
    EDGES
        .iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .map(|((_, label), n)| format!("{label} {n}"))
        .collect::<Vec<_>>()
        .join(" · ")
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[derive(Default, Clone)]
struct Tier {
    n: usize,
    opened: usize,
    connect_failures: BTreeMap<String, usize>,
    connect_wall: Duration,
    connect_lat: Vec<Duration>,
    listen_overflows: u64,
    join_ok: usize,
    join_failures: BTreeMap<String, usize>,
    join_wall: Duration,
    join_lat: Vec<Duration>,
    connected_after: usize,
    rss_base: u64,
    rss_prev: u64,
    rss_prev_n: usize,
    rss_after: u64,
    rss_connected: u64,
    threads: u64,
    latency: Option<Latency>,
}

#[derive(Default, Clone)]
struct Latency {
    events: usize,
    sockets: usize,
    per_socket: Vec<Duration>,
    last_socket: Vec<Duration>,
    first_socket: Vec<Duration>,
    /// Per commit: last socket's receipt − first socket's (the fan-out alone).
    spread: Vec<Duration>,
    post_rtt: Vec<Duration>,
    missing: usize,
    duplicates: usize,
    out_of_order: usize,
    post_failures: BTreeMap<String, usize>,
    server_fanout_mean: Option<Duration>,
    wall: Duration,
    interval: Duration,
    server_cpu: (Duration, Duration),
    client_cpu: (Duration, Duration),
}

// ---------------------------------------------------------------------------------------------
// Phases
// ---------------------------------------------------------------------------------------------

struct Ctx {
    addr: String,
    base: String,
    viewer_cookie: String,
    owner_cookie: String,
    vault: String,
    http: reqwest::Client,
    shared: Arc<Shared>,
    concurrency: usize,
    server_pid: u32,
}

/// Opens `count` more sockets (indices from `start`), `concurrency` handshakes in flight.
async fn open_sockets(ctx: &Ctx, start: usize, count: usize, tier: &mut Tier) -> Vec<Sock> {
    let sem = Arc::new(Semaphore::new(ctx.concurrency));
    let mut set = JoinSet::new();
    let began = Instant::now();
    for idx in start..start + count {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (addr, cookie, shared) = (
            ctx.addr.clone(),
            ctx.viewer_cookie.clone(),
            ctx.shared.clone(),
        );
        set.spawn(async move {
            let t0 = Instant::now();
            let result = tokio::time::timeout(Duration::from_secs(30), handshake(&addr, &cookie))
                .await
                .unwrap_or_else(|_| Err("handshake took over 30 s".into()));
            let took = t0.elapsed();
            drop(permit);
            result.map(|ws| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(socket_task(idx, ws, rx, shared));
                (Sock { cmd: tx }, took)
            })
        });
    }
    let mut socks = Vec::with_capacity(count);
    while let Some(res) = set.join_next().await {
        match res {
            Ok(Ok((sock, took))) => {
                tier.connect_lat.push(took);
                socks.push(sock);
            }
            Ok(Err(e)) => *tier.connect_failures.entry(shorten(&e)).or_insert(0) += 1,
            Err(e) => {
                *tier
                    .connect_failures
                    .entry(format!("task: {e}"))
                    .or_insert(0) += 1
            }
        }
    }
    tier.connect_wall = began.elapsed();
    tier.opened = socks.len();
    tier.connect_lat.sort_unstable();
    socks
}

fn shorten(e: &str) -> String {
    // Group errors that differ only by numbers (ports, sids).
    e.chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .take(140)
        .collect()
}

async fn join_all(ctx: &Ctx, socks: &[Sock], tier: &mut Tier) {
    let sem = Arc::new(Semaphore::new(ctx.concurrency));
    let mut set = JoinSet::new();
    let began = Instant::now();
    for sock in socks {
        let permit = sem.clone().acquire_owned().await.unwrap();
        let (tx, rx) = oneshot::channel();
        let sent = sock.cmd.send(Cmd::Join(ctx.vault.clone(), tx)).is_ok();
        set.spawn(async move {
            let t0 = Instant::now();
            let result = if !sent {
                Err("socket already closed".to_string())
            } else {
                match tokio::time::timeout(Duration::from_secs(30), rx).await {
                    Ok(Ok(ack)) if ack["ok"] == true => Ok(()),
                    Ok(Ok(ack)) => Err(format!("ack {ack}")),
                    Ok(Err(_)) => Err("socket closed before the ack".into()),
                    Err(_) => Err("no ack within 30 s".into()),
                }
            };
            drop(permit);
            result.map(|()| t0.elapsed())
        });
    }
    while let Some(res) = set.join_next().await {
        match res {
            Ok(Ok(took)) => {
                tier.join_ok += 1;
                tier.join_lat.push(took);
            }
            Ok(Err(e)) => *tier.join_failures.entry(shorten(&e)).or_insert(0) += 1,
            Err(e) => *tier.join_failures.entry(format!("task: {e}")).or_insert(0) += 1,
        }
    }
    tier.join_wall = began.elapsed();
    tier.join_lat.sort_unstable();
}

async fn post_source(ctx: &Ctx, title: &str) -> Result<String, String> {
    let resp = ctx
        .http
        .post(format!("{}/api/vaults/{}/sources", ctx.base, ctx.vault))
        .header("cookie", &ctx.owner_cookie)
        .json(&json!({ "title": title, "fileUrl": "https://example.com/a.pdf" }))
        .send()
        .await
        .map_err(|e| format!("request: {e}"))?;
    let status = resp.status();
    let body: Value = resp.json().await.unwrap_or_default();
    if status != 201 {
        return Err(format!("{status} {body}"));
    }
    body["source"]["id"]
        .as_str()
        .map(str::to_string)
        .ok_or_else(|| format!("no source id in {body}"))
}

/// Commits `events` sources over REST, `interval` apart, and times their arrival everywhere.
async fn measure_latency(ctx: &Ctx, sockets: usize, events: usize, interval: Duration) -> Latency {
    let mut lat = Latency {
        events,
        sockets,
        interval,
        ..Default::default()
    };
    // Warm-up: a few commits whose receipts are discarded.
    for i in 0..3 {
        let _ = post_source(ctx, &format!("warm-up {i}")).await;
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while ctx.shared.receipts.lock().unwrap().len() < 3 * sockets && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    ctx.shared.receipts.lock().unwrap().clear();
    let before = metrics(&ctx.http, &ctx.base).await;

    let (server_cpu0, client_cpu0) = (cpu_time(&ctx.server_pid.to_string()), cpu_time("self"));
    let began = Instant::now();
    let mut sent: HashMap<String, (usize, Instant)> = HashMap::new();
    for i in 0..events {
        let t0 = Instant::now();
        match post_source(ctx, &format!("bench {i}")).await {
            Ok(id) => {
                lat.post_rtt.push(t0.elapsed());
                sent.insert(id, (i, t0));
            }
            Err(e) => *lat.post_failures.entry(shorten(&e)).or_insert(0) += 1,
        }
        tokio::time::sleep_until((t0 + interval).into()).await;
    }
    let expected = sent.len() * sockets;
    let deadline = Instant::now() + Duration::from_secs(30);
    while ctx.shared.receipts.lock().unwrap().len() < expected && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    lat.wall = began.elapsed();
    lat.server_cpu = cpu_since(&ctx.server_pid.to_string(), server_cpu0);
    lat.client_cpu = cpu_since("self", client_cpu0);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let receipts = std::mem::take(&mut *ctx.shared.receipts.lock().unwrap());
    let after = metrics(&ctx.http, &ctx.base).await;
    let delta = |suffix: &str| {
        let find = |m: &BTreeMap<String, f64>| {
            m.iter()
                .find(|(k, _)| k.ends_with(suffix))
                .map_or(0.0, |(_, v)| *v)
        };
        find(&after) - find(&before)
    };
    let (sum, count) = (delta("fanout_seconds_sum"), delta("fanout_seconds_count"));
    if count > 0.0 {
        lat.server_fanout_mean = Some(Duration::from_secs_f64(sum / count));
    }

    // Per event: socket → receive instant.
    let mut per_event: Vec<HashMap<usize, Instant>> = vec![HashMap::new(); events];
    let mut last_seq: HashMap<usize, i64> = HashMap::new();
    for (idx, at, text) in &receipts {
        let Ok(v) = serde_json::from_str::<Value>(&text.as_str()[2..]) else {
            continue;
        };
        let payload = &v[1];
        let Some(id) = payload["source"]["id"].as_str() else {
            continue;
        };
        let seq = payload["seq"].as_i64().unwrap_or(0);
        let prev = last_seq.insert(*idx, seq);
        if prev.is_some_and(|p| p >= seq) {
            lat.out_of_order += 1;
        }
        let Some(&(event, t0)) = sent.get(id) else {
            continue;
        };
        if per_event[event].insert(*idx, *at).is_some() {
            lat.duplicates += 1;
        } else {
            lat.per_socket.push(at.saturating_duration_since(t0));
        }
    }
    for (id, (event, t0)) in &sent {
        let _ = id;
        let got = &per_event[*event];
        lat.missing += sockets.saturating_sub(got.len());
        if let (Some(first), Some(last)) = (got.values().min(), got.values().max()) {
            lat.first_socket.push(first.saturating_duration_since(*t0));
            // "Every socket received it" only when none is missing.
            if got.len() >= sockets {
                lat.last_socket.push(last.saturating_duration_since(*t0));
                lat.spread.push(last.saturating_duration_since(*first));
            }
        }
    }
    lat.per_socket.sort_unstable();
    lat.last_socket.sort_unstable();
    lat.first_socket.sort_unstable();
    lat.spread.sort_unstable();
    lat.post_rtt.sort_unstable();
    lat
}

// ---------------------------------------------------------------------------------------------
// Report
// ---------------------------------------------------------------------------------------------

fn print_tier_detail(t: &Tier) {
    println!("\n── tier {} sockets ──", t.n);
    let new = t.connect_lat.len() + t.connect_failures.values().sum::<usize>();
    println!(
        "  connect: {} of {} new sockets in {:.2} s → {} sockets/s; handshake {}",
        t.opened,
        new,
        t.connect_wall.as_secs_f64(),
        per_second(t.opened, t.connect_wall),
        p50_p99_max(&t.connect_lat),
    );
    println!(
        "           handshake time histogram: {}",
        histogram(&t.connect_lat)
    );
    println!(
        "           kernel listen-queue overflows meanwhile (TcpExtListenOverflows, machine-wide): {}",
        t.listen_overflows
    );
    for (e, n) in &t.connect_failures {
        println!("    connect failure ×{n}: {e}");
    }
    println!(
        "  join:    {} acks ok in {:.2} s → {} joins/s; ack {}",
        t.join_ok,
        t.join_wall.as_secs_f64(),
        per_second(t.join_ok, t.join_wall),
        p50_p99_max(&t.join_lat),
    );
    println!(
        "           join ack time histogram: {}",
        histogram(&t.join_lat)
    );
    for (e, n) in &t.join_failures {
        println!("    join failure ×{n}: {e}");
    }
    println!(
        "  memory:  VmRSS {} KiB with no socket → {} KiB once connected (before joining) → {} KiB \
         with {} joined sockets ({} server threads)",
        t.rss_base, t.rss_connected, t.rss_after, t.connected_after, t.threads
    );
    if let Some(l) = &t.latency {
        println!(
            "  latency: {} commits × {} sockets in {:.1} s; POST round trip p50 {} p99 {}",
            l.events,
            l.sockets,
            l.wall.as_secs_f64(),
            ms(pct(&l.post_rtt, 50.0)),
            ms(pct(&l.post_rtt, 99.0))
        );
        println!(
            "           per-socket p50 {} p90 {} p99 {} max {} ({} receipts)",
            ms(pct(&l.per_socket, 50.0)),
            ms(pct(&l.per_socket, 90.0)),
            ms(pct(&l.per_socket, 99.0)),
            ms(pct(&l.per_socket, 100.0)),
            l.per_socket.len()
        );
        println!(
            "           first socket p50 {} p99 {}; last socket p50 {} p99 {} max {}",
            ms(pct(&l.first_socket, 50.0)),
            ms(pct(&l.first_socket, 99.0)),
            ms(pct(&l.last_socket, 50.0)),
            ms(pct(&l.last_socket, 99.0)),
            ms(pct(&l.last_socket, 100.0)),
        );
        println!(
            "           fan-out spread (last − first socket) p50 {} p99 {}",
            ms(pct(&l.spread, 50.0)),
            ms(pct(&l.spread, 99.0)),
        );
        if let Some(f) = l.server_fanout_mean {
            println!("           server event_fanout_seconds mean {}", ms(f));
        }
        let frames = l.per_socket.len().max(1) as f64;
        let per = |(u, s): (Duration, Duration)| {
            format!(
                "{:.2} s = {:.1} µs per delivered frame (user {:.1} + sys {:.1})",
                (u + s).as_secs_f64(),
                (u + s).as_secs_f64() * 1e6 / frames,
                u.as_secs_f64() * 1e6 / frames,
                s.as_secs_f64() * 1e6 / frames,
            )
        };
        println!(
            "           CPU during the phase ({:.1} s wall, commits {} ms apart):",
            l.wall.as_secs_f64(),
            l.interval.as_millis(),
        );
        println!("             server       {}", per(l.server_cpu));
        println!("             bench client {}", per(l.client_cpu));
        println!(
            "           missing {} · duplicates {} · out of order {}",
            l.missing, l.duplicates, l.out_of_order
        );
        for (e, n) in &l.post_failures {
            println!("    POST failure ×{n}: {e}");
        }
    }
}

fn print_table(tiers: &[Tier]) {
    let mut rows: Vec<(String, Vec<String>, String)> = Vec::new();
    let col = |f: &dyn Fn(&Tier) -> String| tiers.iter().map(f).collect::<Vec<_>>();
    rows.push((
        "sockets connected".into(),
        col(&|t| t.connected_after.to_string()),
        String::new(),
    ));
    rows.push((
        "connects / s".into(),
        col(&|t| per_second(t.opened, t.connect_wall)),
        String::new(),
    ));
    rows.push((
        "handshake p50 / p99".into(),
        col(&|t| p50_p99(&t.connect_lat)),
        String::new(),
    ));
    rows.push((
        "listen-queue overflows".into(),
        col(&|t| t.listen_overflows.to_string()),
        "0".into(),
    ));
    rows.push((
        "joins / s".into(),
        col(&|t| per_second(t.join_ok, t.join_wall)),
        String::new(),
    ));
    rows.push((
        "join ack p50 / p99".into(),
        col(&|t| p50_p99(&t.join_lat)),
        String::new(),
    ));
    rows.push((
        "server VmRSS".into(),
        col(&|t| format!("{:.1} MiB", t.rss_after as f64 / 1024.0)),
        String::new(),
    ));
    rows.push((
        "KB / connection".into(),
        col(&|t| {
            let kb = t.rss_after.saturating_sub(t.rss_base) as f64 * 1.024
                / t.connected_after.max(1) as f64;
            format!("{kb:.1}{}", verdict(kb <= GOAL_KB_PER_CONN))
        }),
        format!("≤ {GOAL_KB_PER_CONN} KB"),
    ));
    rows.push((
        "  marginal KB / conn".into(),
        col(&|t| {
            if t.rss_prev_n == 0 {
                "—".into()
            } else {
                let n = t.connected_after.saturating_sub(t.rss_prev_n).max(1);
                format!(
                    "{:.1}",
                    t.rss_after.saturating_sub(t.rss_prev) as f64 * 1.024 / n as f64
                )
            }
        }),
        String::new(),
    ));
    let l = |f: &dyn Fn(&Latency) -> String| col(&|t| t.latency.as_ref().map_or("—".into(), f));
    rows.push((
        "receipt p50 (per socket)".into(),
        l(&|l| format!("{:.1} ms", ms_f(pct(&l.per_socket, 50.0)))),
        String::new(),
    ));
    rows.push((
        "receipt p99 (per socket)".into(),
        l(&|l| {
            let p = ms_f(pct(&l.per_socket, 99.0));
            format!("{p:.1} ms{}", verdict(p <= GOAL_P99_MS && l.missing == 0))
        }),
        format!("≤ {GOAL_P99_MS} ms @1000"),
    ));
    rows.push((
        "last socket p50 / p99".into(),
        l(&|l| p50_p99(&l.last_socket)),
        String::new(),
    ));
    rows.push((
        "fan-out spread p50 / p99".into(),
        l(&|l| p50_p99(&l.spread)),
        String::new(),
    ));
    rows.push((
        "POST round trip p50".into(),
        l(&|l| format!("{:.1} ms", ms_f(pct(&l.post_rtt, 50.0)))),
        String::new(),
    ));
    rows.push((
        "missing / dup / reordered".into(),
        l(&|l| format!("{} / {} / {}", l.missing, l.duplicates, l.out_of_order)),
        "0 / 0 / 0".into(),
    ));
    rows.push((
        "connect / join failures".into(),
        col(&|t| {
            format!(
                "{} / {}",
                t.connect_failures.values().sum::<usize>(),
                t.join_failures.values().sum::<usize>()
            )
        }),
        "0 / 0".into(),
    ));

    let w0 = rows
        .iter()
        .map(|r| r.0.chars().count())
        .max()
        .unwrap_or(0)
        .max(6);
    let wc = rows
        .iter()
        .flat_map(|r| r.1.iter().map(|c| c.chars().count()))
        .max()
        .unwrap_or(0)
        .max(12);
    println!("\n══ results ══");
    print!("{:<w0$} ", "metric");
    for t in tiers {
        print!("| {:>wc$} ", format!("N = {}", t.n));
    }
    println!("| goal");
    println!("{}", "─".repeat(w0 + 1 + tiers.len() * (wc + 3) + 8));
    for (name, cells, goal) in rows {
        print!("{name:<w0$} ");
        for c in cells {
            print!("| {c:>wc$} ");
        }
        println!("| {goal}");
    }
}

/// "p50 / p99 ms" of sorted durations.
fn p50_p99(sorted: &[Duration]) -> String {
    format!(
        "{:.1} / {:.1} ms",
        ms_f(pct(sorted, 50.0)),
        ms_f(pct(sorted, 99.0))
    )
}

/// "p50 … p99 … max …" of sorted durations, for the per-tier detail.
fn p50_p99_max(sorted: &[Duration]) -> String {
    format!(
        "p50 {} p99 {} max {}",
        ms(pct(sorted, 50.0)),
        ms(pct(sorted, 99.0)),
        ms(pct(sorted, 100.0))
    )
}

/// `count` per second of `wall`, rounded.
fn per_second(count: usize, wall: Duration) -> String {
    format!("{:.0}", count as f64 / wall.as_secs_f64().max(1e-9))
}

fn ms_f(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn verdict(ok: bool) -> &'static str {
    if ok { " ✓" } else { " ✗" }
}

// ---------------------------------------------------------------------------------------------
// Main
// ---------------------------------------------------------------------------------------------

fn main() {
    let mut args = parse_args();
    let (soft, hard) = ensure_fd_limit(&mut args);
    let timeout = args.timeout;
    std::thread::spawn(move || {
        std::thread::sleep(timeout);
        eprintln!("realtime bench: over the {timeout:?} limit; stopping the server and exiting");
        kill_server_hard();
        std::process::exit(3);
    });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let code = rt.block_on(run(args, soft, hard));
    rt.shutdown_timeout(Duration::from_secs(2));
    std::process::exit(code);
}

async fn run(args: Args, soft: u64, hard: u64) -> i32 {
    let bin = server_binary();
    println!("SyncScript realtime bench");
    for (k, v) in machine_context() {
        println!("  {k:<10} {v}");
    }
    println!("  open files {soft} (hard {hard})");
    println!("  server     {}", bin.display());
    println!(
        "  plan       tiers {:?}, {} commits {} ms apart per tier, {} handshakes/joins in flight",
        args.tiers,
        args.events,
        args.interval.as_millis(),
        args.concurrency
    );
    println!(
        "  note       client and server share the machine's cores; all sockets are viewer@demo.com (one session)"
    );

    let mut server = start_server(&bin).await;
    let http = reqwest::Client::builder()
        .tcp_nodelay(true)
        .build()
        .unwrap();
    let viewer_cookie = login(&http, &server.base, "viewer@demo.com").await;
    let owner_cookie = login(&http, &server.base, "owner@demo.com").await;
    let vault = demo_vault(&http, &server.base, &viewer_cookie).await;
    let ctx = Ctx {
        addr: server.addr.clone(),
        base: server.base.clone(),
        viewer_cookie,
        owner_cookie,
        vault,
        http,
        shared: Arc::new(Shared::default()),
        concurrency: args.concurrency,
        server_pid: server.pid,
    };

    // Warm the REST path a little, then take the socket-free baseline.
    for _ in 0..5 {
        let _ = demo_vault(&ctx.http, &ctx.base, &ctx.viewer_cookie).await;
    }
    let rss_base = settled_rss(server.pid).await;
    println!("\nbaseline server VmRSS {rss_base} KiB (no sockets)");

    let mut socks: Vec<Sock> = Vec::new();
    let mut tiers: Vec<Tier> = Vec::new();
    let (mut prev_rss, mut prev_n) = (rss_base, 0usize);
    for &n in &args.tiers {
        let mut tier = Tier {
            n,
            rss_base,
            rss_prev: prev_rss,
            rss_prev_n: prev_n,
            ..Default::default()
        };
        let start = socks.len();
        let need = n.saturating_sub(start);
        eprintln!("tier {n}: opening {need} sockets…");
        let overflows = listen_overflows();
        let new = open_sockets(&ctx, start, need, &mut tier).await;
        tier.listen_overflows = listen_overflows().saturating_sub(overflows);
        eprintln!(
            "tier {n}: {} opened in {:.1} s; joining…",
            new.len(),
            tier.connect_wall.as_secs_f64()
        );
        tier.rss_connected = settled_rss(server.pid).await;
        join_all(&ctx, &new, &mut tier).await;
        socks.extend(new);
        let rss = settled_rss(server.pid).await;
        let unexpected = ctx.shared.closed.load(Ordering::SeqCst) as usize;
        tier.connected_after = socks.len().saturating_sub(unexpected);
        tier.rss_after = rss;
        tier.threads = threads_of(server.pid);
        eprintln!(
            "tier {n}: joined {} ({} failures); VmRSS {rss} KiB",
            tier.join_ok,
            tier.join_failures.values().sum::<usize>()
        );
        (prev_rss, prev_n) = (rss, tier.connected_after);

        if args.latency && args.events > 0 {
            // Above 1000 sockets one fan-out outlasts 50 ms on small machines; space the
            // commits in proportion so each is measured on its own, not behind the last.
            let interval = args.interval.max(args.interval * (n as u32) / 1000);
            eprintln!(
                "tier {n}: {} commits {} ms apart…",
                args.events,
                interval.as_millis()
            );
            let joined = tier.connected_after.min(start + tier.join_ok);
            tier.latency = Some(measure_latency(&ctx, joined, args.events, interval).await);
            // Let the RSS of the next tier start from where this one left off.
            prev_rss = rss_kb(server.pid).0;
        }
        print_tier_detail(&tier);
        tiers.push(tier);
    }

    // Idle for a moment longer than nothing: check the sockets are all still here.
    let (rss_final, hwm) = rss_kb(server.pid);
    let final_metrics = metrics(&ctx.http, &ctx.base).await;

    // Stop: close our sockets, then SIGTERM the server and time its exit.
    ctx.shared.shutting_down.store(true, Ordering::SeqCst);
    let open_at_end = socks.len();
    drop(socks);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stop_began = Instant::now();
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(server.pid.to_string())
        .status();
    let mut exit = None;
    while stop_began.elapsed() < Duration::from_secs(20) {
        if let Ok(Some(status)) = server.child.try_wait() {
            exit = Some(status);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stop_took = stop_began.elapsed();
    if exit.is_none() {
        let _ = server.child.kill();
    }
    SERVER_PID.store(0, Ordering::SeqCst);

    print_table(&tiers);
    println!("\n══ server and client health ══");
    println!("  server VmRSS at end {rss_final} KiB, peak (VmHWM) {hwm} KiB");
    for (k, v) in &final_metrics {
        println!("  /metrics {k} = {v}");
    }
    println!(
        "  pings answered by the client: {}",
        ctx.shared.pings.load(Ordering::SeqCst)
    );
    let closed = ctx.shared.closed.load(Ordering::SeqCst);
    println!("  unexpected socket closes: {closed} of {open_at_end}");
    for (reason, n) in ctx.shared.closes.lock().unwrap().iter() {
        println!("    ×{n}: {reason}");
    }
    let mut others: Vec<_> = ctx
        .shared
        .events
        .lock()
        .unwrap()
        .clone()
        .into_iter()
        .collect();
    others.sort();
    println!("  other events received: {others:?}");
    match exit {
        Some(status) => println!(
            "  server stopped on SIGTERM in {:.2} s ({status})",
            stop_took.as_secs_f64()
        ),
        None => println!("  server did NOT stop within 20 s of SIGTERM; killed"),
    }
    let log = std::fs::read_to_string(&server.log).unwrap_or_default();
    let keep = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/realtime-bench-server.log");
    let _ = std::fs::write(&keep, &log);
    let lines: Vec<&str> = log.lines().filter(|l| !l.trim().is_empty()).collect();
    let mut seen = HashSet::new();
    println!(
        "  server log: {} lines (warn level) saved to {}",
        lines.len(),
        keep.display()
    );
    for line in lines.iter().filter(|l| seen.insert(dedupe_key(l))).take(20) {
        println!("    {line:.200}");
    }
    let ok = tiers.iter().all(|t| {
        t.connect_failures.is_empty()
            && t.join_failures.is_empty()
            && t.latency.as_ref().is_none_or(|l| l.missing == 0)
    }) && closed == 0;
    if ok { 0 } else { 1 }
}

/// Log lines that differ only by ids and times count once.
fn dedupe_key(line: &str) -> String {
    line.chars()
        .filter(|c| !c.is_ascii_hexdigit() && *c != '-' && *c != ':' && *c != '.')
        .collect()
}
