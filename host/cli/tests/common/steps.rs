//! What tests of steps that run at the same time read: the step events of a run
//! (`--progress json`), the steps the ledger records as committed, and a barrier on what
//! the server says.

#![allow(dead_code)] // each test file uses a different part

use super::{Run, TestDb};
use ferry::backend::Connection;

/// The JSON lines of a run's output.
pub fn events(run: &Run) -> Vec<serde_json::Value> {
    format!("{}{}", run.stdout, run.stderr)
        .lines()
        .filter(|l| l.starts_with('{'))
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The step events among `events` whose step `keep` accepts, in order:
/// `("started" | "finished" | "skipped", step)`.
pub fn step_events(
    events: &[serde_json::Value],
    keep: impl Fn(&serde_json::Value, &str) -> bool,
) -> Vec<(String, String)> {
    events
        .iter()
        .filter_map(|e| {
            let kind = e["event"].as_str()?.strip_prefix("step_")?;
            let step = e["step"].as_str()?;
            keep(e, step).then(|| (kind.to_string(), step.to_string()))
        })
        .collect()
}

/// Where `kind` of `step` comes among `steps` (panics, naming them all, when it does not).
pub fn position(steps: &[(String, String)], kind: &str, step: &str) -> usize {
    steps
        .iter()
        .position(|(k, s)| k == kind && s == step)
        .unwrap_or_else(|| panic!("no {kind} {step:?} in {steps:?}"))
}

/// Steps of `revision` the ledger records as committed, sorted.
pub fn committed_steps(db: &TestDb, revision: &str) -> Vec<String> {
    let mut steps: Vec<String> = db
        .query(&format!(
            "SELECT step FROM ferry_steps WHERE revision = '{revision}' AND done = 1"
        ))
        .into_iter()
        .filter_map(|r| r.into_iter().next().flatten())
        .collect();
    steps.sort();
    steps
}

/// The first value of the first row of `sql` on `conn`, as text.
pub fn first_value(conn: &mut dyn Connection, sql: &str) -> String {
    let rows = conn
        .query(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.rows
        .first()
        .and_then(|r| r.first())
        .map(|v| v.to_string())
        .unwrap_or_else(|| panic!("{sql}: no row"))
}

/// Polls `sql` (a count) on `conn` until it reaches `want`; a barrier on what the
/// server says, with a deadline so that a wrong guess fails instead of hanging.
pub fn wait_until_count(conn: &mut dyn Connection, sql: &str, want: i64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    loop {
        let n: i64 = first_value(conn, sql).parse().unwrap();
        if n == want {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{sql}: still {n}, not {want}"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}
