//! The goals for `--shape` and `--rest`, with verdicts: this project's figures
//! alone, or against the Node peer's as a ratio (not run without `--peer`). With several
//! rounds (`--rounds`), each figure is the median of the rounds', and each ratio the median of
//! the rounds' ratios.
use crate::{
    compare::{Rounds, rest_of},
    report::Goal,
    restload::Call,
    shape::ShapeRun,
    stats::{ms_f, pct},
};

/// The middle value; the mean of the two middle ones for an even count.
fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    let n = xs.len();
    match n {
        0 => f64::NAN,
        _ if n % 2 == 1 => xs[n / 2],
        _ => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

/// Side `k`'s figure (0: this project), the median over the rounds.
fn side(rounds: &Rounds, k: usize, v: impl Fn(&ShapeRun) -> f64) -> f64 {
    median(rounds.iter().map(|runs| v(&runs[k])).collect())
}

/// `mine / theirs` against `limit` (× the peer's), the median of the rounds' ratios, each
/// taken between the two sides' runs of one round; not run without the peer.
fn versus(
    name: &str,
    target: &str,
    rounds: &Rounds,
    v: impl Fn(&ShapeRun) -> f64,
    ok: impl Fn(f64) -> bool,
) -> Goal {
    let measured = rounds.iter().all(|runs| runs.len() == 2).then(|| {
        let ratios: Vec<f64> = rounds
            .iter()
            .map(|runs| v(&runs[0]) / v(&runs[1]).max(1e-9))
            .collect();
        let each: Vec<String> = ratios.iter().map(|r| format!("{r:.2}")).collect();
        let ratio = median(ratios);
        let mut shown = format!(
            "{:.1} vs {:.1} = {ratio:.2}×",
            side(rounds, 0, &v),
            side(rounds, 1, &v)
        );
        if rounds.len() > 1 {
            shown.push_str(&format!(" (medians; rounds {})", each.join(", ")));
        }
        (shown, ok(ratio))
    });
    Goal::new(name, target, measured, "no --peer")
}

pub fn shape(long: &Rounds, fresh: Option<&Rounds>, one: Option<&Rounds>) -> Vec<Goal> {
    let kb = side(long, 0, ShapeRun::kb_per_socket);
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
            let k = side(f, 0, ShapeRun::kb_per_socket);
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
    // This project's runs of every phase and round.
    let all = || {
        [Some(long), fresh, one]
            .into_iter()
            .flatten()
            .flatten()
            .map(|runs| &runs[0])
    };
    let lost: Vec<String> = all()
        .map(|r| format!("{}/{}/{}", r.lat.missing, r.lat.duplicates, r.lat.reordered))
        .collect();
    let complete = all().all(ShapeRun::complete);
    goals.push(Goal::new(
        "rust: missing / dup / reordered, every phase",
        "0 / 0 / 0",
        Some((lost.join(", "), complete)),
        "",
    ));
    goals
}

/// Server user CPU per delivered frame with 1,000 sockets in one vault.
pub fn one_vault(rounds: &Rounds) -> Goal {
    versus(
        "server user CPU µs / frame, 1 vault × 1000 sockets, rust ÷ node",
        "≤ 0.75×",
        rounds,
        ShapeRun::user_per_frame,
        |x| x <= 0.75,
    )
}

pub fn rest(rounds: &Rounds) -> Vec<Goal> {
    [Call::Post, Call::Get]
        .iter()
        .map(|&call| {
            versus(
                &format!("{} req/s on one core, rust ÷ node", call.label()),
                "≥ 1.5×",
                rounds,
                |r| rest_of(r, call).per_second(),
                |x| x >= 1.5,
            )
        })
        .collect()
}
