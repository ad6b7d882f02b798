//! The goals for `--shape` and `--rest`, with verdicts: this project's figures
//! alone, or against the Node peer's as a ratio (not run without `--peer`).
use crate::{
    compare::{Runs, rest_of},
    report::Goal,
    restload::Call,
    shape::ShapeRun,
    stats::{ms_f, pct},
};

/// `mine / theirs` against `limit` (× the peer's); not run without the peer.
fn versus(
    name: &str,
    target: &str,
    runs: &[ShapeRun],
    v: impl Fn(&ShapeRun) -> f64,
    ok: impl Fn(f64) -> bool,
) -> Goal {
    let measured = (runs.len() == 2).then(|| {
        let (mine, theirs) = (v(&runs[0]), v(&runs[1]));
        let ratio = mine / theirs.max(1e-9);
        (format!("{mine:.1} vs {theirs:.1} = {ratio:.2}×"), ok(ratio))
    });
    Goal::new(name, target, measured, "no --peer")
}

pub fn shape(long: &Runs, fresh: Option<&Runs>, one: Option<&Runs>) -> Vec<Goal> {
    let mine = &long[0];
    let kb = mine.kb_per_socket();
    let mut goals = vec![Goal::new(
        "KB / socket, long logs, everything included",
        "≤ 25 KB",
        Some((format!("{kb:.1} KB"), kb <= 25.0)),
        "",
    )];
    goals.push(Goal::new(
        "KB / socket, long logs ÷ fresh vaults",
        "≤ 1.1×",
        fresh.map(|f| {
            let k = f[0].kb_per_socket();
            (
                format!("{kb:.1} / {k:.1} = {:.2}×", kb / k.max(1e-9)),
                kb <= 1.1 * k,
            )
        }),
        "--no-fresh",
    ));
    let p99 = |r: &ShapeRun| ms_f(pct(&r.lat.per_socket, 99.0));
    goals.push(versus(
        "receipt p99 in the shape, rust ÷ node",
        "≤ 0.5×",
        long,
        p99,
        |x| x <= 0.5,
    ));
    goals.push(versus(
        "server CPU µs / commit in the shape, rust ÷ node",
        "≤ 0.5×",
        long,
        ShapeRun::cpu_per_commit,
        |x| x <= 0.5,
    ));
    goals.push(match one {
        Some(runs) => one_vault(runs),
        None => Goal::new(
            "server user CPU / frame @1000 sockets",
            "≤ 0.75×",
            None,
            "--no-one-vault",
        ),
    });
    let all = [Some(long), fresh, one].into_iter().flatten();
    let lost: Vec<String> = all
        .flat_map(|runs| runs.first())
        .map(|r| format!("{}/{}/{}", r.lat.missing, r.lat.duplicates, r.lat.reordered))
        .collect();
    let complete = [Some(long), fresh, one]
        .into_iter()
        .flatten()
        .all(|runs| runs[0].complete());
    goals.push(Goal::new(
        "rust: missing / dup / reordered, every phase",
        "0 / 0 / 0",
        Some((lost.join(", "), complete)),
        "",
    ));
    goals
}

/// Server user CPU per delivered frame with 1,000 sockets in one vault.
pub fn one_vault(runs: &Runs) -> Goal {
    versus(
        "server user CPU µs / frame, 1 vault × 1000 sockets, rust ÷ node",
        "≤ 0.75×",
        runs,
        ShapeRun::user_per_frame,
        |x| x <= 0.75,
    )
}

pub fn rest(runs: &Runs) -> Vec<Goal> {
    [Call::Post, Call::Get]
        .iter()
        .map(|&call| {
            versus(
                &format!("{} req/s on one core, rust ÷ node", call.label()),
                "≥ 1.5×",
                runs,
                |r| rest_of(r, call).per_second(),
                |x| x >= 1.5,
            )
        })
        .collect()
}
