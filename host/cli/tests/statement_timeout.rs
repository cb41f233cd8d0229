//! The statement timeout: on by default, set per run (`limits.statement_timeout_seconds`),
//! per revision (`STATEMENT_TIMEOUT_SECONDS`) and per step (`timeout_seconds`). An
//! endless statement (a recursive CTE without an end) stops with an error naming the
//! revision's file and line and the limit, the revision is recorded failed, nothing of
//! it stays, and a rerun after the fix proceeds; a killed run shows as interrupted.
//! Fixtures: `tests/fixtures/trees/endless/`. Both backends.

mod common;
use common::*;

use std::path::PathBuf;
use std::time::{Duration, Instant};

fn failing() -> PathBuf {
    fixture("endless").join("scripts")
}

fn fixed() -> PathBuf {
    fixture("endless").join("fixed")
}

/// The outcomes the history records for `revision`, oldest first.
fn outcomes(db: &TestDb, revision: &str) -> Vec<String> {
    db.history()
        .into_iter()
        .filter(|(r, d, _)| r == revision && d == "upgrade")
        .map(|(_, _, o)| o)
        .collect()
}

#[test]
fn status_shows_the_default_statement_timeout() {
    for_each_backend("timeout_default", |db| {
        db.ferry()
            .scripts(failing())
            .run(["status"])
            .success()
            .stdout_has("statement timeout: 600 s (limits.statement_timeout_seconds");
        db.ferry()
            .scripts(failing())
            .run(["--set", "limits.statement_timeout_seconds=30", "status"])
            .success()
            .stdout_has("statement timeout: 30 s");
        let json = db
            .ferry()
            .scripts(failing())
            .run(["status", "--json"])
            .json();
        assert_eq!(json["statement_timeout_seconds"], 600, "[{}]", db.name());
    });
}

#[test]
fn an_endless_statement_stops_at_the_configured_timeout_and_fails_its_revision() {
    for_each_backend("timeout_run", |db| {
        let started = Instant::now();
        db.ferry()
            .scripts(failing())
            .run(["--set", "limits.statement_timeout_seconds=2", "upgrade"])
            .code(1)
            .stderr_has("statement cancelled: it ran past the statement timeout of 2 s")
            .stderr_has("`limits.statement_timeout_seconds`")
            .stderr_has("obs_test/002_count.rhai:11")
            .stderr_has("not run: obs_test-3, obs_test-4");
        let took = started.elapsed();
        eprintln!("[{}] stopped after {took:?}", db.name());
        assert_eq!(db.revision_state("obs_test-2").as_deref(), Some("failed"));
        assert_eq!(outcomes(db, "obs_test-2"), ["failed"], "[{}]", db.name());
        // The revision's insert before the endless statement rolled back with it.
        assert_eq!(db.count("tst_detector"), 0, "[{}]", db.name());
        db.ferry()
            .scripts(failing())
            .run(["status"])
            .success()
            .stdout_has("unfinished: obs_test-2 is failed")
            .stdout_has("002_count.rhai:11");

        // Fixed (the CTE ends): the rerun proceeds to the heads.
        db.ferry().scripts(fixed()).run(["upgrade"]).success();
        assert_eq!(db.revision_state("obs_test-2").as_deref(), Some("applied"));
        assert_eq!(outcomes(db, "obs_test-2"), ["failed", "applied"]);
        assert_eq!(db.count("tst_detector"), 4, "[{}]", db.name());
    });
}

#[test]
fn a_step_and_a_revision_set_their_own_timeouts_over_the_default() {
    for_each_backend("timeout_step_revision", |db| {
        db.ferry()
            .scripts(fixed())
            .run(["upgrade", "obs_test-2"])
            .success();
        // Default limit (600 s): the step's own 2 s stop it. Its first step stays.
        db.ferry()
            .scripts(failing())
            .run(["upgrade", "--allow-changed", "obs_test-3"])
            .code(1)
            .stderr_has("statement timeout of 2 s")
            .stderr_has("obs_test/003_step.rhai:15");
        assert_eq!(db.revision_state("obs_test-3").as_deref(), Some("failed"));
        let ids = db.query("SELECT id FROM tst_detector WHERE id > 0 ORDER BY id");
        assert_eq!(ids, [[Some("1".to_string())]], "[{}]", db.name());
        let failed_step =
            db.query("SELECT failed_step FROM ferry_revisions WHERE revision = 'obs_test-3'");
        assert_eq!(
            failed_step,
            [[Some("count".to_string())]],
            "[{}]",
            db.name()
        );

        db.ferry()
            .scripts(fixed())
            .run(["upgrade", "obs_test-3"])
            .success();
        // The revision's STATEMENT_TIMEOUT_SECONDS = 2, the configured limit 600 s.
        db.ferry()
            .scripts(failing())
            .run(["upgrade", "--allow-changed"])
            .code(1)
            .stderr_has("statement timeout of 2 s")
            .stderr_has("obs_test/004_revision.rhai:12");
        assert_eq!(db.revision_state("obs_test-4").as_deref(), Some("failed"));
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM tst_detector WHERE id = 3"),
            0
        );
        db.ferry().scripts(fixed()).run(["upgrade"]).success();
        assert_eq!(db.revision_state("obs_test-4").as_deref(), Some("applied"));
    });
}

#[test]
fn a_killed_run_shows_as_interrupted_not_running() {
    for_each_backend("timeout_killed", |db| {
        db.ferry()
            .scripts(failing())
            .run(["upgrade", "obs_test-1"])
            .success();
        let mut running = db
            .ferry()
            .scripts(failing())
            .progress("plain")
            .spawn(["upgrade"]);
        running.wait_for_stderr("upgrade obs_test-2");
        std::thread::sleep(Duration::from_millis(500));
        unsafe {
            libc::kill(running.pid() as i32, libc::SIGKILL);
        }
        assert_ne!(running.finish().code, 0);
        assert_eq!(db.revision_state("obs_test-2").as_deref(), Some("running"));
        // PostgreSQL ends the killed client's session (and its advisory lock) within
        // about a second (client_connection_check_interval); until then the run is
        // still running, and status says so.
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            let out = db
                .ferry()
                .scripts(failing())
                .run(["status"])
                .success()
                .stdout;
            if out.contains("obs_test-2 was interrupted") || Instant::now() > deadline {
                break out;
            }
            std::thread::sleep(Duration::from_millis(500));
        };
        assert!(
            status.contains(
                "unfinished: obs_test-2 was interrupted: recorded running, but no migrator \
                 holds the lock"
            ),
            "[{}] {status}",
            db.name()
        );
        assert!(!status.contains("is running"), "[{}] {status}", db.name());
        let json = db
            .ferry()
            .scripts(failing())
            .run(["status", "--json"])
            .json();
        let unfinished = &json["trees"][0]["unfinished"][0];
        assert_eq!(unfinished["interrupted"], true, "[{}] {json}", db.name());
        assert_eq!(db.count("tst_detector"), 0, "[{}]", db.name());

        db.ferry().scripts(fixed()).run(["upgrade"]).success();
        assert_eq!(db.revision_state("obs_test-2").as_deref(), Some("applied"));
    });
}

#[test]
fn a_runaway_loop_is_stopped_at_its_line() {
    for_each_backend("runaway_loop", |db| {
        let runaway = fixture("endless").join("runaway");
        for limit in ["limits.max_operations=200000", "limits.max_seconds=1"] {
            db.ferry()
                .scripts(&runaway)
                .run(["--set", limit, "upgrade"])
                .code(1)
                .stderr_has("the script hit a sandbox limit")
                .stderr_has(limit.split('=').next().unwrap())
                .stderr_has("in the loop here, the only loop of this file")
                .stderr_has("runaway/obs_test/001_spin.rhai:11:5");
            assert_eq!(db.revision_state("obs_test-1").as_deref(), Some("failed"));
            assert!(!db.has_table("tst_detector"), "[{}]", db.name());
        }
    });
}
