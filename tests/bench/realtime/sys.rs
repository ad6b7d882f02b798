//! The machine: open-file limits, CPU pinning, and what `/proc` says about a process (RSS,
//! peak RSS, CPU time) or the whole machine (busy time, load, listen-queue overflows).
use std::{process::Command, time::Duration};

/// USER_HZ, the unit of `/proc/<pid>/stat` CPU times (100 on every mainstream Linux).
const TICK: Duration = Duration::from_millis(10);

pub fn nofile_limits() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let line = text.lines().find_map(|l| l.strip_prefix("Max open files"));
    let mut parts = line.unwrap_or_default().split_whitespace();
    let mut next = || match parts.next() {
        Some("unlimited") => u64::MAX,
        Some(v) => v.parse().unwrap_or(0),
        None => 0,
    };
    (next(), next())
}

/// Raises this process's soft limit (inherited by the servers) to fit `need` descriptors, up
/// to the hard limit; returns the soft limit in force.
pub fn ensure_fd_limit(need: u64) -> u64 {
    let (soft, hard) = nofile_limits();
    if soft < need && hard > soft {
        let target = hard.min(need.max(65_536));
        let status = Command::new("prlimit")
            .arg("--pid")
            .arg(std::process::id().to_string())
            .arg(format!("--nofile={target}:{hard}"))
            .status();
        if !status.is_ok_and(|s| s.success()) {
            eprintln!("could not raise the open-file limit with prlimit");
        }
    }
    nofile_limits().0
}

pub fn cpu_count() -> usize {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count()
        .max(1)
}

fn first_line_value(path: &str, key: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()?
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_once(':'))
        .map(|(_, v)| v.trim().to_string())
}

pub fn machine_context() -> Vec<(&'static str, String)> {
    let cpu = first_line_value("/proc/cpuinfo", "model name").unwrap_or_else(|| "?".into());
    let mem = first_line_value("/proc/meminfo", "MemTotal")
        .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
        .map_or("?".into(), |kb| format!("{:.1} GiB", kb as f64 / 1048576.0));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    vec![
        ("cpu", format!("{} × {cpu}", cpu_count())),
        ("memory", mem),
        ("kernel", kernel.trim().to_string()),
        ("load", loadavg()),
    ]
}

pub fn loadavg() -> String {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let parts: Vec<&str> = text.split_whitespace().take(3).collect();
    format!("{} (1/5/15 min)", parts.join(" "))
}

/// Pins the calling thread, and every thread it starts later, to `cpus`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn pin_self(cpus: &[usize]) -> Result<(), String> {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_setaffinity only reads it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus {
            libc::CPU_SET(c, &mut set);
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error().to_string())
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn pin_self(_cpus: &[usize]) -> Result<(), String> {
    Err("pinning needs Linux with glibc".into())
}

fn status_field(pid: u32, name: &str) -> u64 {
    first_line_value(&format!("/proc/{pid}/status"), name)
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or(0)
}

/// Resident set size in KiB.
pub fn rss_kb(pid: u32) -> u64 {
    status_field(pid, "VmRSS:")
}

/// Peak resident set size (VmHWM) in KiB, since start or the last [`reset_peak`].
pub fn peak_kb(pid: u32) -> u64 {
    status_field(pid, "VmHWM:")
}

pub fn threads_of(pid: u32) -> u64 {
    status_field(pid, "Threads:")
}

/// Resets VmHWM to the current RSS (`clear_refs` 5), so a tier's peak is its own.
pub fn reset_peak(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

/// User and system CPU time of a process (`None` for this one).
#[derive(Debug, Clone, Copy, Default)]
pub struct Cpu {
    pub user: Duration,
    pub system: Duration,
}

impl Cpu {
    pub fn of(pid: Option<u32>) -> Cpu {
        let path = pid.map_or("/proc/self/stat".into(), |p| format!("/proc/{p}/stat"));
        let text = std::fs::read_to_string(path).unwrap_or_default();
        // Fields after the command name start at field 3 (state); utime/stime are 14 and 15.
        let after = text.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i - 3).and_then(|v| v.parse::<u32>().ok());
        Cpu {
            user: TICK * ticks(14).unwrap_or(0),
            system: TICK * ticks(15).unwrap_or(0),
        }
    }

    pub fn of_all(pids: &[u32]) -> Cpu {
        pids.iter()
            .map(|&p| Cpu::of(Some(p)))
            .fold(Cpu::default(), |a, b| a.plus(b))
    }

    pub fn plus(self, o: Cpu) -> Cpu {
        Cpu {
            user: self.user + o.user,
            system: self.system + o.system,
        }
    }

    pub fn since(self, earlier: Cpu) -> Cpu {
        Cpu {
            user: self.user.saturating_sub(earlier.user),
            system: self.system.saturating_sub(earlier.system),
        }
    }

    pub fn total(self) -> Duration {
        self.user + self.system
    }
}

/// Busy CPU time of the whole machine (all CPUs), from `/proc/stat`.
pub fn machine_busy() -> Duration {
    let text = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let line = text.lines().next().unwrap_or_default();
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal: idle and iowait are not busy.
    let busy: u64 = v
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3 && *i != 4 && *i < 8)
        .map(|(_, x)| *x)
        .sum();
    Duration::from_millis(busy * TICK.as_millis() as u64)
}

/// The kernel's count of connections dropped because a listen queue was full (machine-wide).
pub fn listen_overflows() -> u64 {
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
