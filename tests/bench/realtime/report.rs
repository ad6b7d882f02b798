//! Output: the run's header, tables of measurements, and the goals with their verdicts.
use std::time::Duration;

use crate::{
    latency::Latency,
    stats::{ms_f, p50_p99, p50_p99_max, pct, per_second, us_per_frame},
};

pub struct Table {
    pub title: String,
    pub headers: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(title: &str, headers: Vec<String>) -> Self {
        Self {
            title: title.into(),
            headers,
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, name: &str, cells: Vec<String>) {
        let mut row = vec![name.to_string()];
        row.extend(cells);
        self.rows.push(row);
    }

    pub fn print(&self) {
        let cols = self.headers.len();
        let width = |i: usize| {
            let cells = self.rows.iter().filter_map(|r| r.get(i));
            let w = cells.map(|c| c.chars().count()).max().unwrap_or(0);
            w.max(self.headers[i].chars().count())
        };
        let widths: Vec<usize> = (0..cols).map(width).collect();
        println!("\n══ {} ══", self.title);
        let line = |cells: &[String]| {
            let parts: Vec<String> = (0..cols)
                .map(|i| {
                    let c = cells.get(i).map_or("", String::as_str);
                    let pad = widths[i].saturating_sub(c.chars().count());
                    if i == 0 {
                        format!("{c}{}", " ".repeat(pad))
                    } else {
                        format!("{}{c}", " ".repeat(pad))
                    }
                })
                .collect();
            println!("{}", parts.join(" | "));
        };
        line(&self.headers);
        println!(
            "{}",
            "─".repeat(widths.iter().sum::<usize>() + 3 * (cols - 1))
        );
        for r in &self.rows {
            line(r);
        }
    }
}

pub enum Verdict {
    Pass,
    Fail,
    NotRun(String),
}

pub struct Goal {
    pub name: String,
    pub target: String,
    pub measured: String,
    pub verdict: Verdict,
}

impl Goal {
    /// A goal measured (`Some((shown value, met))`) or not run (`None`, with why).
    pub fn new(name: &str, target: &str, measured: Option<(String, bool)>, why_not: &str) -> Goal {
        let (measured, verdict) = match measured {
            Some((v, true)) => (v, Verdict::Pass),
            Some((v, false)) => (v, Verdict::Fail),
            None => ("—".into(), Verdict::NotRun(why_not.into())),
        };
        Goal {
            name: name.into(),
            target: target.into(),
            measured,
            verdict,
        }
    }
}

pub fn print_goals(goals: &[Goal]) {
    let mut t = Table::new(
        "goals",
        ["goal", "target", "measured", "verdict"]
            .map(String::from)
            .to_vec(),
    );
    for g in goals {
        let verdict = match &g.verdict {
            Verdict::Pass => "PASS".to_string(),
            Verdict::Fail => "FAIL".to_string(),
            Verdict::NotRun(why) => format!("not run ({why})"),
        };
        t.rows.push(vec![
            g.name.clone(),
            g.target.clone(),
            g.measured.clone(),
            verdict,
        ]);
    }
    t.print();
}

/// Rows describing latency phases, one column each.
pub fn latency_rows(t: &mut Table, phases: &[Option<&Latency>]) {
    let col = |f: &dyn Fn(&Latency) -> String| -> Vec<String> {
        phases.iter().map(|p| p.map_or("—".into(), f)).collect()
    };
    t.row(
        "commits × sockets",
        col(&|l| format!("{} × {}", l.events, l.sockets)),
    );
    t.row(
        "commit rate (planned)",
        col(&|l| format!("{}/s over {:.1} s", l.rate, l.wall.as_secs_f64())),
    );
    t.row(
        "receipt p50 / p99 / max",
        col(&|l| p50_p99_max(&l.per_socket)),
    );
    t.row("first socket p50 / p99", col(&|l| p50_p99(&l.first)));
    t.row("last socket p50 / p99", col(&|l| p50_p99(&l.last)));
    t.row("fan-out spread p50 / p99", col(&|l| p50_p99(&l.spread)));
    t.row("POST round trip p50 / p99", col(&|l| p50_p99(&l.post_rtt)));
    t.row(
        "delivered / expected",
        col(&|l| format!("{} / {}", l.frames(), l.frames() + l.missing)),
    );
    t.row(
        "missing / dup / reordered",
        col(&|l| format!("{} / {} / {}", l.missing, l.duplicates, l.reordered)),
    );
    t.row(
        "POST failures",
        col(&|l| l.post_failures.values().sum::<usize>().to_string()),
    );
    t.row(
        "server CPU µs/frame user+sys",
        col(&|l| us_per_frame(&l.server_cpu, l.frames())),
    );
    t.row(
        "bench CPU µs/frame user+sys",
        col(&|l| us_per_frame(&l.client_cpu, l.frames())),
    );
    t.row(
        "server / bench / other CPU %",
        col(&|l| {
            let w = l.wall.as_secs_f64().max(1e-9);
            let pc = |d: Duration| format!("{:.0}", 100.0 * d.as_secs_f64() / w);
            format!(
                "{} / {} / {}",
                pc(l.server_cpu.total()),
                pc(l.client_cpu.total()),
                pc(l.other_cpu)
            )
        }),
    );
    t.row("frames / s", col(&|l| per_second(l.frames(), l.wall)));
}

/// p99 of a phase in ms, and whether it meets `goal_ms` with every frame delivered in order.
pub fn p99_verdict(l: &Latency, goal_ms: f64) -> (String, bool) {
    let p99 = ms_f(pct(&l.per_socket, 99.0));
    let shown = format!(
        "{p99:.1} ms (missing {}, reordered {})",
        l.missing, l.reordered
    );
    (shown, p99 <= goal_ms && l.complete())
}

pub fn mib(kb: u64) -> String {
    format!("{:.1} MiB", kb as f64 / 1024.0)
}
