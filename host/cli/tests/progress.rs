//! `--progress json`: the machine-readable progress stream of a batched step has the
//! revision, the step, done and total (counted by the host when the script declares
//! none), a rate and an ETA, also when a rerun resumes part-way; `--progress plain`
//! prints the same as lines.

mod common;

use common::*;
use std::path::PathBuf;

fn trees() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/operators/progress/scripts")
        .canonicalize()
        .expect("progress fixture")
}

fn events(stream: &str) -> Vec<serde_json::Value> {
    stream
        .lines()
        .filter(|l| l.starts_with('{'))
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn of_step<'a>(events: &'a [serde_json::Value], kind: &str) -> Vec<&'a serde_json::Value> {
    events
        .iter()
        .filter(|e| e["event"] == kind && e["step"] == "copy")
        .collect()
}

#[test]
fn batched_steps_report_done_total_rate_and_eta() {
    for_each_backend("progress_json", |db| {
        let ferry = || db.ferry().scripts(trees()).progress("json");
        // Batch 2 fails: batch 1 is committed.
        let failed = ferry()
            .opt("--set")
            .opt("big.fail_at=2")
            .run(["upgrade"])
            .code(1);
        let first = events(&format!("{}{}", failed.stdout, failed.stderr));
        let started = of_step(&first, "step_started");
        assert_eq!(started.len(), 1, "{first:?}");
        assert_eq!(started[0]["revision"], "big-1");
        assert_eq!(started[0]["total"], 3, "250 keys in batches of 100");
        let progress = of_step(&first, "progress");
        assert_eq!(progress.len(), 1, "{first:?}");
        assert_eq!(progress[0]["done"], 1);
        assert_eq!(progress[0]["total"], 3);
        assert!(
            progress[0]["rate"].as_f64().unwrap() > 0.0,
            "{:?}",
            progress[0]
        );
        assert!(
            progress[0]["eta_seconds"].as_f64().unwrap() >= 0.0,
            "{:?}",
            progress[0]
        );

        // The rerun resumes at batch 2 and still knows the total.
        let rerun = ferry().run(["upgrade"]).success();
        let second = events(&format!("{}{}", rerun.stdout, rerun.stderr));
        let started = of_step(&second, "step_started");
        assert_eq!(started[0]["total"], 3, "{second:?}");
        let done: Vec<i64> = of_step(&second, "progress")
            .iter()
            .map(|e| e["done"].as_i64().unwrap())
            .collect();
        assert_eq!(done, [2, 3]);
        assert!(of_step(&second, "progress")
            .iter()
            .all(|e| e["total"] == 3 && e["revision"] == "big-1"));
        assert_eq!(db.count("big_copy"), 250);
    });
}

#[test]
fn plain_progress_prints_steps_and_batches() {
    let db = TestDb::sqlite();
    let run = db.ferry().scripts(trees()).run(["upgrade"]).success();
    let text = format!("{}{}", run.stdout, run.stderr);
    assert!(text.contains("step \"copy\""), "{text}");
    assert!(text.contains("3/3"), "{text}");
}
