//! Server child processes and the bench's own PostgreSQL database.
//!
//! Invariant: no server outlives the bench. Every child is started by one long-lived spawner
//! thread with `PR_SET_PDEATHSIG = SIGKILL` (the signal follows the thread that forked), is
//! listed in `CHILDREN` until reaped, and [`cleanup`] (end of run, `die`, the watchdog) kills
//! what is listed and drops the temporary database.
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Mutex, OnceLock, mpsc},
    time::{Duration, Instant},
};

use sea_orm::{ConnectionTrait, Database};

static CHILDREN: Mutex<Vec<u32>> = Mutex::new(Vec::new());
/// (admin URL, database name) of the PostgreSQL database to drop at the end.
static PG_DATABASE: Mutex<Option<(String, String)>> = Mutex::new(None);

type SpawnRequest = (Command, mpsc::Sender<std::io::Result<Child>>);

/// Kills every listed child and drops the bench database; safe to call more than once.
pub fn cleanup() {
    for pid in std::mem::take(&mut *CHILDREN.lock().unwrap()) {
        let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
    }
    if let Some((admin, name)) = PG_DATABASE.lock().unwrap().take() {
        // From any context (even inside the runtime): a thread with a runtime of its own.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(drop_database(&admin, &name)).ok()
        })
        .join();
    }
}

pub fn die(msg: &str) -> ! {
    eprintln!("realtime bench: {msg}");
    cleanup();
    std::process::exit(2);
}

/// Stops everything if the run takes longer than `limit`.
pub fn start_watchdog(limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("realtime bench: over the {limit:?} limit; stopping the servers and exiting");
        cleanup();
        std::process::exit(3);
    });
}

fn spawn_child(cmd: Command) -> std::io::Result<Child> {
    static SPAWNER: OnceLock<Mutex<mpsc::Sender<SpawnRequest>>> = OnceLock::new();
    let spawner = SPAWNER.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<SpawnRequest>();
        std::thread::spawn(move || {
            for (mut cmd, reply) in rx {
                let _ = reply.send(cmd.spawn());
            }
        });
        Mutex::new(tx)
    });
    let (tx, rx) = mpsc::channel();
    spawner.lock().unwrap().send((cmd, tx)).expect("spawner");
    rx.recv().expect("spawner reply")
}

/// In the child between fork and exec: die with the spawner thread, run on `cpus`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn confine(cmd: &mut Command, cpus: Option<Vec<usize>>) {
    use std::os::unix::process::CommandExt;
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: only async-signal-safe system calls run between fork and exec, on memory
    // allocated before the fork.
    unsafe {
        cmd.pre_exec(move || {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            if let Some(cpus) = &cpus {
                let mut set: libc::cpu_set_t = std::mem::zeroed();
                for &c in cpus {
                    libc::CPU_SET(c, &mut set);
                }
                libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
            }
            Ok(())
        });
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn confine(_cmd: &mut Command, _cpus: Option<Vec<usize>>) {}

pub fn binary() -> PathBuf {
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

pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("free port");
    l.local_addr().unwrap().port()
}

/// How to start (and restart) one node.
#[derive(Clone)]
pub struct Spec {
    pub name: String,
    pub bin: PathBuf,
    pub port: u16,
    pub db_url: String,
    pub cpus: Option<Vec<usize>>,
    pub log: PathBuf,
    pub env: Vec<(String, String)>,
}

pub struct Server {
    pub spec: Spec,
    child: Option<Child>,
    pub pid: u32,
    pub base: String,
    pub addr: String,
    /// When the current process was spawned, and how long it took to answer /readyz.
    pub spawned: Instant,
    pub ready_after: Duration,
    /// When [`Server::respawn`] had the previous process killed and reaped (its sockets
    /// closed).
    pub killed: Option<Instant>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

impl Server {
    /// Spawns the node and waits until `/readyz` answers 200.
    pub async fn start(spec: Spec, http: &reqwest::Client) -> Server {
        let mut server = Server::spawn(spec);
        server.wait_ready(http).await;
        server
    }

    pub fn spawn(spec: Spec) -> Server {
        if !spec.bin.exists() {
            die(&format!(
                "server binary {} not found; build it with `cargo build --release --bin \
                 syncscript` or set SYNCSCRIPT_BIN",
                spec.bin.display()
            ));
        }
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&spec.log)
            .expect("log file");
        let mut cmd = Command::new(&spec.bin);
        cmd.current_dir(env!("CARGO_MANIFEST_DIR"))
            // Every other `SYNCSCRIPT_*` variable is server configuration, and `bin` is no key.
            .env_remove("SYNCSCRIPT_BIN")
            .env("SYNCSCRIPT_SERVER__HOST", "127.0.0.1")
            .env("SYNCSCRIPT_SERVER__PORT", spec.port.to_string())
            .env("SYNCSCRIPT_DATABASE__URL", &spec.db_url)
            .env("SYNCSCRIPT_DEMO__SEED", "true")
            .env("SYNCSCRIPT_LOG__LEVEL", "warn")
            .env("NO_COLOR", "1")
            .envs(spec.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        confine(&mut cmd, spec.cpus.clone());
        let spawned = Instant::now();
        let child = spawn_child(cmd)
            .unwrap_or_else(|e| die(&format!("cannot start {}: {e}", spec.bin.display())));
        let pid = child.id();
        CHILDREN.lock().unwrap().push(pid);
        Server {
            base: format!("http://127.0.0.1:{}", spec.port),
            addr: format!("127.0.0.1:{}", spec.port),
            spec,
            child: Some(child),
            pid,
            spawned,
            ready_after: Duration::ZERO,
            killed: None,
        }
    }

    /// Polls `/readyz` every 10 ms; dies when the process exits or a minute passes.
    pub async fn wait_ready(&mut self, http: &reqwest::Client) {
        let url = format!("{}/readyz", self.base);
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                let log = std::fs::read_to_string(&self.spec.log).unwrap_or_default();
                die(&format!(
                    "{} exited during start-up ({status}):\n{log}",
                    self.spec.name
                ));
            }
            let probe = http.get(&url).timeout(Duration::from_secs(2)).send().await;
            if probe.is_ok_and(|r| r.status() == 200) {
                break;
            }
            if self.spawned.elapsed() > Duration::from_secs(60) {
                die(&format!("{} not ready within 60 s", self.spec.name));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.ready_after = self.spawned.elapsed();
        eprintln!(
            "{} (pid {}) ready on {} after {:.2} s",
            self.spec.name,
            self.pid,
            self.base,
            self.ready_after.as_secs_f64()
        );
    }

    /// SIGKILL, and reap.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
            CHILDREN.lock().unwrap().retain(|&p| p != self.pid);
        }
    }

    /// Starts the same node again (same port, database and settings) without waiting.
    pub fn respawn(&mut self) {
        self.kill();
        let killed = Instant::now();
        let mut fresh = Server::spawn(self.spec.clone());
        fresh.killed = Some(killed);
        let _ = std::mem::replace(self, fresh);
    }

    /// SIGTERM, and how long the process took to exit (None: killed after 20 s).
    pub async fn stop(&mut self) -> Option<Duration> {
        let began = Instant::now();
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(self.pid.to_string())
            .status();
        while began.elapsed() < Duration::from_secs(20) {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                CHILDREN.lock().unwrap().retain(|&p| p != self.pid);
                return Some(began.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.kill();
        None
    }
}

/// A fresh database `syncscript_bench_<random>` on `BENCH_POSTGRES_URL`
/// (default postgres://postgres@127.0.0.1:5432/postgres); returns its URL.
pub async fn create_pg_database() -> String {
    let admin = std::env::var("BENCH_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!(
        "syncscript_bench_{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    );
    let conn = Database::connect(&admin)
        .await
        .unwrap_or_else(|e| die(&format!("PostgreSQL at {}: {e}", redact(&admin))));
    conn.execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await
        .unwrap_or_else(|e| die(&format!("CREATE DATABASE {name}: {e}")));
    let _ = conn.close().await;
    *PG_DATABASE.lock().unwrap() = Some((admin.clone(), name.clone()));
    let mut url = url::Url::parse(&admin).unwrap_or_else(|e| die(&format!("bad URL: {e}")));
    url.set_path(&format!("/{name}"));
    url.to_string()
}

async fn drop_database(admin: &str, name: &str) -> Result<(), sea_orm::DbErr> {
    let conn = Database::connect(admin).await?;
    conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    conn.close().await
}

/// A URL without its password, for printing.
pub fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        _ => url.to_string(),
    }
}

/// Saves each log under target/ and prints its first distinct WARN and ERROR lines.
pub fn report_logs(logs: &[PathBuf]) {
    for path in logs {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let keep =
            Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("target/realtime-bench-{name}"));
        let _ = std::fs::write(&keep, &text);
        let flagged: Vec<&str> = text
            .lines()
            .filter(|l| l.contains("WARN") || l.contains("ERROR"))
            .collect();
        println!(
            "  {name}: {} WARN/ERROR lines, saved to {}",
            flagged.len(),
            keep.display()
        );
        let mut seen = std::collections::HashSet::new();
        for line in flagged
            .iter()
            .filter(|l| seen.insert(dedupe_key(l)))
            .take(12)
        {
            println!("    {line:.220}");
        }
    }
}

/// Log lines that differ only by ids and times count once.
fn dedupe_key(line: &str) -> String {
    line.chars()
        .filter(|c| !c.is_ascii_hexdigit() && !"-:.".contains(*c))
        .collect()
}
