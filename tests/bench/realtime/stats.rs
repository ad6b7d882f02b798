//! Percentiles, histograms and the number formats the report uses.
use std::time::Duration;

/// The `p`th percentile (nearest rank) of sorted samples; zero when there are none.
pub fn pct(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

pub fn ms_f(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// "p50 / p99 ms" of sorted durations.
pub fn p50_p99(sorted: &[Duration]) -> String {
    if sorted.is_empty() {
        return "—".into();
    }
    format!(
        "{:.1} / {:.1} ms",
        ms_f(pct(sorted, 50.0)),
        ms_f(pct(sorted, 99.0))
    )
}

/// "p50 / p99 / max ms" of sorted durations.
pub fn p50_p99_max(sorted: &[Duration]) -> String {
    if sorted.is_empty() {
        return "—".into();
    }
    format!(
        "{:.1} / {:.1} / {:.1} ms",
        ms_f(pct(sorted, 50.0)),
        ms_f(pct(sorted, 99.0)),
        ms_f(pct(sorted, 100.0))
    )
}

/// `count` per second of `wall`, rounded.
pub fn per_second(count: usize, wall: Duration) -> String {
    format!("{:.0}", count as f64 / wall.as_secs_f64().max(1e-9))
}

/// Counts per coarse bucket, e.g. `<10ms 812 · <50ms 180 · ≥3s 8`.
pub fn histogram(samples: &[Duration]) -> String {
    const EDGES: [(u64, &str); 9] = [
        (10, "<10ms"),
        (50, "<50ms"),
        (100, "<100ms"),
        (250, "<250ms"),
        (500, "<500ms"),
        (1000, "<1s"),
        (2000, "<2s"),
        (5000, "<5s"),
        (u64::MAX, "≥5s"),
    ];
    let mut counts = [0usize; EDGES.len()];
    for d in samples {
        let ms = d.as_millis() as u64;
        let i = EDGES.iter().position(|(edge, _)| ms < *edge).unwrap_or(0);
        counts[i] += 1;
    }
    let parts: Vec<String> = EDGES
        .iter()
        .zip(counts)
        .filter(|(_, n)| *n > 0)
        .map(|((_, label), n)| format!("{label} {n}"))
        .collect();
    parts.join(" · ")
}

/// Groups errors that differ only by numbers (ports, sids).
pub fn shorten(e: &str) -> String {
    e.chars()
        .map(|c| if c.is_ascii_digit() { '#' } else { c })
        .take(140)
        .collect()
}

/// Microseconds of `cpu` per frame.
pub fn us_per(cpu: Duration, frames: usize) -> f64 {
    cpu.as_secs_f64() * 1e6 / frames.max(1) as f64
}

/// `user + system` microseconds of `cpu` per frame.
pub fn us_per_frame(cpu: &crate::sys::Cpu, frames: usize) -> String {
    format!(
        "{:.2} + {:.2}",
        us_per(cpu.user, frames),
        us_per(cpu.system, frames)
    )
}
