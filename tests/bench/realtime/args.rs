//! Command-line flags (documented atop `main.rs`). Unknown flags are reported and ignored, so
//! cargo's own `--bench` and filter strings pass through.
use std::time::Duration;

/// What the run measures: the socket tiers (default), the reconnect storm, or several nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Tiers,
    Storm(usize),
    Nodes(usize),
    /// The real shape (`--shape`): many vaults × few sockets × long logs, then REST.
    Shape,
    /// REST only (`--rest`), on the real shape's database.
    Rest,
}

#[derive(Debug, Clone)]
pub struct Args {
    pub mode: Mode,
    pub tiers: Vec<usize>,
    /// Whether `--clients` was given (else the default tiers may be capped by fd limits).
    pub tiers_given: bool,
    pub events: usize,
    pub rate: f64,
    pub cpu_events: usize,
    pub cpu_rate: f64,
    pub one_user: bool,
    pub per_user: usize,
    pub latency: bool,
    pub concurrency: usize,
    pub timeout: Duration,
    pub pin: bool,
    pub server_cpus: Vec<usize>,
    pub client_cpus: Vec<usize>,
    pub storm_commits: usize,
    pub storm_deadline: Duration,
    pub throughput_secs: u64,
    pub writers: usize,
    pub throughput_sockets: usize,
    /// `--shape` given (with `--storm` or `--nodes`: those phases in the real shape).
    pub shape: bool,
    pub vaults: usize,
    pub per_vault: usize,
    pub log_events: usize,
    pub commit_rate: f64,
    pub commit_secs: f64,
    /// The Node peer's launcher (`--peer`, else `PEER_BIN`): run everything against it too.
    pub peer: Option<std::path::PathBuf>,
    pub rest: bool,
    pub rest_secs: f64,
    pub rest_conns: usize,
    /// The long-log shape, the first phase of `--shape` (off with `--only-one-vault`).
    pub long: bool,
    pub fresh: bool,
    pub one_vault: bool,
    /// `--shape --nodes`: offered commit rates, ascending, `--step-secs` each.
    pub rates: Vec<usize>,
    pub step_secs: f64,
    /// `--shape` and `--rest`: each phase this many times, the sides alternating; the goals
    /// take the median of the rounds' ratios.
    pub rounds: usize,
}

impl Default for Args {
    fn default() -> Self {
        Self {
            mode: Mode::Tiers,
            tiers: vec![1000, 10_000],
            tiers_given: false,
            events: 100,
            rate: 10.0,
            cpu_events: 200,
            cpu_rate: 20.0,
            one_user: false,
            per_user: 15,
            latency: true,
            concurrency: 200,
            timeout: Duration::from_secs(1800),
            pin: true,
            server_cpus: vec![0],
            client_cpus: vec![1],
            storm_commits: 20,
            storm_deadline: Duration::from_secs(30),
            throughput_secs: 10,
            writers: 6,
            throughput_sockets: 150,
            shape: false,
            vaults: 1000,
            per_vault: 5,
            log_events: 300,
            commit_rate: 100.0,
            commit_secs: 20.0,
            peer: std::env::var_os("PEER_BIN")
                .filter(|p| !p.is_empty())
                .map(Into::into),
            rest: true,
            rest_secs: 10.0,
            rest_conns: 32,
            long: true,
            fresh: true,
            one_vault: true,
            rates: vec![100, 200, 400, 800, 1600, 3200],
            step_secs: 10.0,
            rounds: 1,
        }
    }
}

impl Args {
    /// Sockets of the largest tier (the storm's and the nodes' socket count otherwise).
    pub fn max_sockets(&self) -> usize {
        match self.mode {
            _ if self.shape => (self.vaults * self.per_vault).max(1000),
            Mode::Storm(n) => n,
            Mode::Rest => 0,
            _ => *self.tiers.last().unwrap_or(&0),
        }
    }

    /// The flags as typed after `--`, without cargo's `--bench`.
    pub fn command_line() -> String {
        let rest: Vec<String> = std::env::args()
            .skip(1)
            .filter(|a| a != "--bench")
            .collect();
        if rest.is_empty() {
            "cargo bench --bench realtime".into()
        } else {
            format!("cargo bench --bench realtime -- {}", rest.join(" "))
        }
    }
}

pub fn parse() -> Args {
    let mut args = Args::default();
    let raw: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < raw.len() {
        let (key, inline) = match raw[i].split_once('=') {
            Some((k, v)) => (k.to_string(), Some(v.to_string())),
            None => (raw[i].clone(), None),
        };
        // A flag's value: `--flag=v`, else the next argument.
        let mut value = || -> String {
            if let Some(v) = inline.clone() {
                return v;
            }
            i += 1;
            raw.get(i)
                .cloned()
                .unwrap_or_else(|| fail(&format!("{key} needs a value")))
        };
        match key.as_str() {
            "--clients" => {
                args.tiers = list(&value());
                args.tiers_given = true;
            }
            "--events" => args.events = num(&value()),
            "--rate" => args.rate = float(&value()),
            "--cpu-events" => args.cpu_events = num(&value()),
            "--cpu-rate" => args.cpu_rate = float(&value()),
            "--one-user" => args.one_user = true,
            "--per-user" => args.per_user = num(&value()).max(1),
            "--storm" => {
                // The tier is optional: `--storm`, `--storm 5000`, `--storm=5000`.
                let n = match &inline {
                    Some(v) => num(v),
                    None => match raw.get(i + 1).and_then(|v| v.parse().ok()) {
                        Some(n) => {
                            i += 1;
                            n
                        }
                        None => 5000,
                    },
                };
                args.mode = Mode::Storm(n.max(1));
            }
            "--storm-commits" => args.storm_commits = num(&value()).max(1),
            "--storm-deadline-secs" => {
                args.storm_deadline = Duration::from_secs(num(&value()) as u64)
            }
            "--nodes" => {
                let n = num(&value()).max(1);
                args.mode = if n > 1 { Mode::Nodes(n) } else { Mode::Tiers };
            }
            "--throughput-secs" => args.throughput_secs = num(&value()) as u64,
            "--writers" => args.writers = num(&value()).max(1),
            "--throughput-sockets" => args.throughput_sockets = num(&value()),
            "--no-latency" => args.latency = false,
            "--concurrency" => args.concurrency = num(&value()).max(1),
            "--timeout-secs" => args.timeout = Duration::from_secs(num(&value()) as u64),
            "--no-pin" => args.pin = false,
            "--server-cpus" => args.server_cpus = list(&value()),
            "--client-cpus" => args.client_cpus = list(&value()),
            "--shape" => args.shape = true,
            "--rest" => args.mode = Mode::Rest,
            "--vaults" => args.vaults = num(&value()).max(1),
            "--per-vault" => args.per_vault = num(&value()).max(1),
            "--log" => args.log_events = num(&value()).max(1),
            "--commit-rate" => args.commit_rate = float(&value()),
            "--commit-secs" => args.commit_secs = float(&value()),
            "--peer" => args.peer = Some(value().into()),
            "--no-rest" => args.rest = false,
            "--rest-secs" => args.rest_secs = float(&value()),
            "--rest-conns" => args.rest_conns = num(&value()).max(1),
            "--no-fresh" => args.fresh = false,
            "--no-one-vault" => args.one_vault = false,
            "--only-one-vault" => {
                (args.long, args.fresh, args.rest) = (false, false, false);
                args.one_vault = true;
            }
            "--rates" => args.rates = list(&value()),
            "--step-secs" => args.step_secs = float(&value()),
            "--rounds" => args.rounds = num(&value()).max(1),
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
        fail("--clients needs at least one positive number");
    }
    if let Mode::Nodes(_) = args.mode
        && !args.tiers_given
    {
        args.tiers = vec![1000];
    }
    if args.shape && args.mode == Mode::Tiers {
        args.mode = Mode::Shape;
    }
    args.rates.retain(|&r| r > 0);
    args.rates.sort_unstable();
    if args.rate <= 0.0 || args.cpu_rate <= 0.0 || args.commit_rate <= 0.0 {
        fail("--rate and --cpu-rate must be positive");
    }
    args
}

fn num(s: &str) -> usize {
    s.trim()
        .parse()
        .unwrap_or_else(|_| fail(&format!("bad number {s:?}")))
}

fn float(s: &str) -> f64 {
    s.trim()
        .parse()
        .unwrap_or_else(|_| fail(&format!("bad number {s:?}")))
}

fn list(s: &str) -> Vec<usize> {
    s.split(',').map(num).collect()
}

fn fail(msg: &str) -> ! {
    eprintln!("realtime bench: {msg}");
    std::process::exit(2);
}
