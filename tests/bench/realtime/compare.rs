//! `--shape` and `--rest`: every phase on this project's server and, with `--peer`, on the
//! Node peer in the same sitting (phase by phase, alternating), printed side by side with the
//! ratio rust ÷ node, and the goals with verdicts.
//!
//! Phases of `--shape`: the long-log shape (V × S, E-event logs, commits at `--commit-rate`)
//! followed by REST on the same server; the fresh shape (1-event logs) unless `--no-fresh`;
//! one vault with 1,000 sockets at `--cpu-rate` (server CPU per delivered frame) unless
//! `--no-one-vault`. `--rest`: the REST phases alone.
//!
//! `--rounds N` runs each phase N times, the sides alternating within each round, and prints
//! every round's table: this machine's speed drifts between runs of one build by more than the
//! goals' margins, so the goals take the median of the rounds' ratios, each ratio between two
//! runs made one after the other. This project runs first in the odd rounds and the peer in
//! the even ones ([`order`]).
use std::path::{Path, PathBuf};

use crate::{
    Bench, Outcome,
    args::Mode,
    report::{Table, mib},
    restload::{Call, RestRun},
    seed::{Shape, World},
    shape::{self, ShapeRun},
    shape_goals,
    sides::Side,
    stats::{ms_f, p50_p99, p50_p99_max, pct, us_per_frame},
};

/// One phase's runs, one per side (rust first).
pub type Runs = Vec<ShapeRun>;

/// The order the sides run in, in round `round` (from 0): this project first in the odd
/// rounds (1st, 3rd…), the peer first in the even ones. The first run of a sitting was the
/// slowest of its phase for either side (the machine coming out of idle), and with this
/// project always first each of its rounds started colder than the peer's.
fn order(sides: usize, round: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..sides).collect();
    if round % 2 == 1 {
        order.reverse();
    }
    order
}

/// One phase's rounds (`--rounds`), each with its runs.
pub type Rounds = Vec<Runs>;

/// A run's log, renamed for its round when there are several (each is saved under its name).
fn per_round(log: &Path, round: usize, rounds: usize) -> PathBuf {
    if rounds == 1 {
        return log.to_path_buf();
    }
    let stem = log.file_stem().unwrap_or_default().to_string_lossy();
    let renamed = log.with_file_name(format!("{stem}-round{}.log", round + 1));
    match std::fs::rename(log, &renamed) {
        Ok(()) => renamed,
        Err(_) => log.to_path_buf(),
    }
}

/// One phase in `n` rounds: each round runs every side once, in [`order`] (`run` makes one
/// side's run and files its log in `out`), and keeps the runs in the sides' order.
async fn in_rounds(
    out: &mut Outcome,
    n: usize,
    sides: &[Side],
    mut run: impl AsyncFnMut(&mut Outcome, usize, &Side) -> ShapeRun,
) -> Rounds {
    let mut rounds = Rounds::new();
    for round in 0..n {
        let mut runs: Vec<Option<ShapeRun>> = sides.iter().map(|_| None).collect();
        for k in order(sides.len(), round) {
            runs[k] = Some(run(out, round, &sides[k]).await);
        }
        rounds.push(runs.into_iter().flatten().collect());
    }
    rounds
}

/// A table's title, with the round when there are several.
fn titled(title: String, round: usize, rounds: usize) -> String {
    if rounds > 1 {
        format!("{title} (round {} of {rounds})", round + 1)
    } else {
        title
    }
}

pub async fn run(b: &Bench) -> Outcome {
    let a = &b.args;
    let sides = b.sides();
    let long = Shape {
        vaults: a.vaults,
        sockets: a.per_vault,
        events: a.log_events,
    };
    let mut out = Outcome::default();
    let names: Vec<&str> = sides.iter().map(|s| s.name).collect();
    if a.mode == Mode::Rest {
        let rounds = in_rounds(&mut out, a.rounds, &sides, async |out, round, side| {
            let dir = tempfile::tempdir().expect("tempdir");
            let world = World::plan(long);
            let (mut server, _) = shape::start_seeded(b, side, dir.path(), &world).await;
            let r = ShapeRun {
                post: Some(shape::rest_phase(b, &server, &world, Call::Post).await),
                get: Some(shape::rest_phase(b, &server, &world, Call::Get).await),
                ..Default::default()
            };
            server.stop().await;
            out.logs.push(per_round(&server.spec.log, round, a.rounds));
            out.keep_dir(dir);
            r
        })
        .await;
        out.tables.extend(rest_tables(&names, &rounds));
        out.goals = shape_goals::rest(&rounds);
        out.ok = rounds.iter().flatten().all(rest_ok);
        return out;
    }
    let mut phases: Vec<(Shape, f64, bool)> = Vec::new();
    if a.long {
        phases.push((long, a.commit_rate, true));
    }
    if a.fresh {
        phases.push((Shape { events: 1, ..long }, a.commit_rate, false));
    }
    if a.one_vault {
        let one = Shape {
            vaults: 1,
            sockets: 1000,
            events: a.log_events,
        };
        phases.push((one, a.cpu_rate, false));
    }
    let mut results: Vec<(Shape, Rounds)> = Vec::new();
    for (shape, rate, with_rest) in phases {
        let rounds = in_rounds(&mut out, a.rounds, &sides, async |out, round, side| {
            let mut r = shape::run(b, side, shape, rate, with_rest).await;
            for (why, n) in r.connect.failures.iter().chain(&r.join.failures) {
                let at = shape.label();
                out.notes.push(format!("{} {at}: ×{n} {why}", side.name));
            }
            out.logs.push(per_round(&r.log, round, a.rounds));
            if let Some(dir) = r.dir.take() {
                out.keep_dir(dir);
            }
            r
        })
        .await;
        for (round, runs) in rounds.iter().enumerate() {
            let table = shape_table(&shape, rate, &names, runs, round, a.rounds);
            out.tables.push(table);
        }
        results.push((shape, rounds));
    }
    let one = results.iter().find(|(s, _)| s.vaults == 1).map(|(_, r)| r);
    if a.long {
        if a.rest {
            out.tables.extend(rest_tables(&names, &results[0].1));
        }
        let fresh = a.fresh.then(|| &results[1].1);
        out.goals = shape_goals::shape(&results[0].1, fresh, one);
        if a.rest {
            out.goals.extend(shape_goals::rest(&results[0].1));
        }
    } else {
        out.goals = one.map(shape_goals::one_vault).into_iter().collect();
    }
    out.notes.push(
        "the bench's client speaks WebSocket only (no long-polling, no upgrade): socket.io-client \
         would open each socket over polling and upgrade, which the settled figures do not see"
            .into(),
    );
    out.ok = results
        .iter()
        .flat_map(|(_, rounds)| rounds.iter().flatten())
        .all(ShapeRun::complete);
    out
}

/// Columns: metric, one per side, and rust ÷ node when both ran.
fn headers(names: &[&str]) -> Vec<String> {
    let mut h = vec!["metric".to_string()];
    h.extend(names.iter().map(|n| n.to_string()));
    if names.len() == 2 {
        h.push(format!("{} ÷ {}", names[0], names[1]));
    }
    h
}

/// A row of figures (shown with `f`) and, with two sides, their ratio.
fn figure(t: &mut Table, name: &str, runs: &[ShapeRun], v: impl Fn(&ShapeRun) -> f64, unit: &str) {
    let vals: Vec<f64> = runs.iter().map(&v).collect();
    let mut cells: Vec<String> = vals.iter().map(|x| format!("{x:.1}{unit}")).collect();
    if vals.len() == 2 {
        cells.push(format!("{:.2}×", vals[0] / vals[1].max(1e-9)));
    }
    t.row(name, cells);
}

fn text(t: &mut Table, name: &str, runs: &[ShapeRun], v: impl Fn(&ShapeRun) -> String) {
    let mut cells: Vec<String> = runs.iter().map(v).collect();
    if cells.len() == 2 {
        cells.push(String::new());
    }
    t.row(name, cells);
}

fn shape_table(
    shape: &Shape,
    rate: f64,
    names: &[&str],
    runs: &[ShapeRun],
    round: usize,
    rounds: usize,
) -> Table {
    let title = format!("{}, commits at {rate}/s", shape.label());
    let mut t = Table::new(&titled(title, round, rounds), headers(names));
    text(&mut t, "sockets opened / joined / failed", runs, |r| {
        let failed = r.connect.failed() + r.join.failed();
        format!("{} / {} / {failed}", r.connect.ok, r.join.ok)
    });
    text(&mut t, "seeded (straight into the db) in", runs, |r| {
        format!("{:.1} s", r.seed_wall.as_secs_f64())
    });
    text(
        &mut t,
        "VmRSS seeded, no sockets",
        runs,
        |r| mib(r.rss_base),
    );
    text(&mut t, "VmRSS settled, all joined", runs, |r| {
        mib(r.rss_settled)
    });
    figure(
        &mut t,
        "KB / socket settled",
        runs,
        ShapeRun::kb_per_socket,
        "",
    );
    figure(
        &mut t,
        "KB / vault settled",
        runs,
        ShapeRun::kb_per_vault,
        "",
    );
    text(
        &mut t,
        "peak VmHWM incl. commits",
        runs,
        |r| mib(r.peak_end),
    );
    figure(
        &mut t,
        "KB / socket at peak",
        runs,
        ShapeRun::peak_kb_per_socket,
        "",
    );
    text(&mut t, "commits made / dropped by client", runs, |r| {
        format!("{} / {}", r.commits, r.dropped)
    });
    text(&mut t, "receipt p50 / p99 / max", runs, |r| {
        p50_p99_max(&r.lat.per_socket)
    });
    figure(
        &mut t,
        "receipt p99 ms",
        runs,
        |r| ms_f(pct(&r.lat.per_socket, 99.0)),
        "",
    );
    text(&mut t, "POST round trip p50 / p99", runs, |r| {
        p50_p99(&r.lat.post_rtt)
    });
    text(&mut t, "missing / dup / reordered", runs, |r| {
        format!(
            "{} / {} / {}",
            r.lat.missing, r.lat.duplicates, r.lat.reordered
        )
    });
    text(&mut t, "frames delivered", runs, |r| {
        r.lat.frames().to_string()
    });
    figure(
        &mut t,
        "server CPU µs / commit",
        runs,
        ShapeRun::cpu_per_commit,
        "",
    );
    figure(
        &mut t,
        "server user CPU µs / frame",
        runs,
        ShapeRun::user_per_frame,
        "",
    );
    text(&mut t, "server CPU µs / frame user+sys", runs, |r| {
        us_per_frame(&r.lat.server_cpu, r.lat.frames())
    });
    text(&mut t, "sockets lost", runs, |r| r.closed.to_string());
    t
}

pub fn rest_of(r: &ShapeRun, call: Call) -> RestRun {
    match call {
        Call::Post => r.post.clone(),
        Call::Get => r.get.clone(),
    }
    .unwrap_or_default()
}

/// The REST table of every round.
fn rest_tables(names: &[&str], rounds: &Rounds) -> Vec<Table> {
    (rounds.iter().enumerate())
        .map(|(round, runs)| rest_table(names, runs, round, rounds.len()))
        .collect()
}

fn rest_table(names: &[&str], runs: &[ShapeRun], round: usize, rounds: usize) -> Table {
    let title = titled(
        "REST at saturation, server on one core".into(),
        round,
        rounds,
    );
    let mut t = Table::new(&title, headers(names));
    for call in [Call::Post, Call::Get] {
        let label = call.label();
        figure(
            &mut t,
            &format!("{label} req/s"),
            runs,
            |r| rest_of(r, call).per_second(),
            "",
        );
        let cpu = |r: &ShapeRun| rest_of(r, call).cpu_us();
        figure(&mut t, "  server CPU µs / request", runs, cpu, "");
        figure(
            &mut t,
            "  round trip p99 ms",
            runs,
            |r| rest_of(r, call).p99_ms(),
            "",
        );
        text(&mut t, "  failures / bench CPU %", runs, |r| {
            let x = rest_of(r, call);
            let busy = x.client_cpu.total().as_secs_f64() / x.wall.as_secs_f64().max(1e-9);
            format!(
                "{} / {:.0} %",
                x.failures.values().sum::<usize>(),
                100.0 * busy
            )
        });
    }
    t
}

fn rest_ok(r: &ShapeRun) -> bool {
    [Call::Post, Call::Get]
        .iter()
        .all(|&c| rest_of(r, c).failures.is_empty() && rest_of(r, c).ok > 0)
}
