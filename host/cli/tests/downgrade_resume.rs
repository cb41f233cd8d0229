//! A failed downgrade resumes after its last committed step (issue 13, item 5): the
//! step records of `fn downgrade` are written and read under one key
//! (`ferry::checkpoint::ledger_owner`, `"<rev> (downgrade)"`), so a rerun skips the
//! steps that committed. Fixture: `tests/fixtures/trees/downgrade_steps`, whose downgrade
//! has three steps, the first two not idempotent, and fails where `down.fail_at` says.

mod common;

use common::*;

fn log(db: &TestDb) -> Vec<String> {
    db.query("SELECT step FROM down_log ORDER BY step")
        .into_iter()
        .map(|r| r[0].clone().unwrap_or_default())
        .collect()
}

/// `(revision key, step)` of every step record, sorted.
fn steps(db: &TestDb) -> Vec<(String, String)> {
    db.query("SELECT revision, step FROM ferry_steps ORDER BY revision, step")
        .into_iter()
        .map(|r| {
            let mut it = r.into_iter().map(Option::unwrap_or_default);
            (it.next().unwrap(), it.next().unwrap())
        })
        .collect()
}

#[test]
fn a_failed_downgrade_skips_its_committed_steps_when_rerun() {
    for_each_backend("downgrade_resume", |db| {
        let ferry = || db.ferry().tree("downgrade_steps");
        ferry().run(["upgrade"]).success();
        assert_eq!(steps(db), [], "an applied upgrade keeps no step records");

        // Fails in its second step: the first committed, the second rolled back.
        ferry()
            .run(["--set", "down.fail_at=empty items", "downgrade", "base"])
            .code(1)
            .stderr_has("failing in step empty items");
        assert_eq!(log(db), ["log"]);
        assert_eq!(db.count("down_item"), 2);
        assert_eq!(
            steps(db),
            [("down-1 (downgrade)".to_string(), "log".to_string())]
        );

        // Rerun, failing in the third: "log" is skipped, "empty items" runs once.
        ferry()
            .run(["--set", "down.fail_at=drop tables", "downgrade", "base"])
            .code(1)
            .stderr_has("failing in step drop tables");
        assert_eq!(log(db), ["empty items", "log"], "step log ran again");
        assert_eq!(db.count("down_item"), 0);
        let recorded: Vec<String> = steps(db).into_iter().map(|(_, s)| s).collect();
        assert_eq!(recorded, ["empty items", "log"]);

        // Rerun to the end: only "drop tables" is left to run.
        ferry().run(["downgrade", "base"]).success();
        assert!(
            !db.tables().contains(&"down_item".to_string()),
            "{:?}",
            db.tables()
        );
        assert_eq!(
            steps(db),
            [],
            "a finished downgrade clears its step records"
        );
        let history = db.history();
        let downgrades: Vec<&str> = history
            .iter()
            .filter(|(_, d, _)| d == "downgrade")
            .map(|(_, _, o)| o.as_str())
            .collect();
        assert_eq!(downgrades, ["failed", "failed", "applied"]);
    });
}

/// Killed (SIGKILL) in its last step, then rerun: the two committed steps are skipped.
#[test]
fn a_killed_downgrade_resumes_after_its_committed_steps() {
    for_each_backend("downgrade_resume_kill", |db| {
        let ferry = || db.ferry().tree("downgrade_steps");
        ferry().run(["upgrade"]).success();
        let mut running = ferry().spawn(["--set", "down.slow=true", "downgrade", "base"]);
        running.wait_for_stderr("step \"drop tables\"");
        unsafe {
            libc::kill(running.pid() as i32, libc::SIGKILL);
        }
        let killed = running.finish();
        assert_ne!(killed.code, 0, "{}", killed.stderr);
        assert_eq!(log(db), ["empty items", "log"]);
        let recorded: Vec<String> = steps(db).into_iter().map(|(_, s)| s).collect();
        assert_eq!(recorded, ["empty items", "log"]);

        // Rerun, stopped in the last step again: nothing committed ran twice.
        ferry()
            .run(["--set", "down.fail_at=drop tables", "downgrade", "base"])
            .code(1);
        assert_eq!(log(db), ["empty items", "log"], "committed steps ran again");

        ferry().run(["downgrade", "base"]).success();
        assert!(!db.tables().contains(&"down_item".to_string()));
        assert_eq!(steps(db), []);
    });
}
