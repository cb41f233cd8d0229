//! `ferry reset REV [--step NAME]`: a step that committed a wrong result is run again
//! after a reset, on both backends; resets that make no sense are refused and change
//! nothing.

mod common;

use common::*;
use std::path::PathBuf;

fn trees() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/operators/reset/scripts")
        .canonicalize()
        .expect("reset fixture")
}

fn steps(db: &TestDb) -> Vec<String> {
    db.query("SELECT step FROM ferry_steps WHERE revision = 'fill-1' ORDER BY step")
        .into_iter()
        .map(|r| r[0].clone().unwrap_or_default())
        .collect()
}

#[test]
fn a_reset_step_runs_again_with_the_fixed_configuration() {
    for_each_backend("reset_runs_again", |db| {
        let ferry = || db.ferry().scripts(trees());
        // Not started yet: nothing to reset.
        ferry()
            .run(["reset", "fill-1"])
            .code(2)
            .stderr_has("has not started")
            .stderr_has("nothing was reset");

        // The wrong value commits with "fill"; "check" fails.
        ferry()
            .opt("--set")
            .opt("fill.value=1")
            .run(["upgrade"])
            .code(1)
            .stderr_has("fill_value holds 1, expected 2");
        assert_eq!(steps(db), ["fill"]);
        // Fixing the configuration alone does not help: "fill" is skipped.
        ferry()
            .opt("--set")
            .opt("fill.value=2")
            .run(["upgrade"])
            .code(1)
            .stderr_has("fill_value holds 1, expected 2");

        // An unknown step is refused, naming the committed ones; nothing changes.
        let history = db.history();
        ferry()
            .run(["reset", "fill-1", "--step", "fil"])
            .code(2)
            .stderr_has("no committed step \"fil\"")
            .stderr_has("\"fill\"");
        assert_eq!(db.history(), history);
        assert_eq!(steps(db), ["fill"]);

        let reset = ferry()
            .run(["reset", "fill", "--step", "fill", "--json"])
            .success()
            .json();
        assert_eq!(reset["revision"], "fill-1");
        assert_eq!(reset["forgotten"], serde_json::json!(["fill"]));
        assert!(steps(db).is_empty());
        let last = db.history().last().unwrap().clone();
        assert_eq!(last, ("fill-1".into(), "reset".into(), "applied".into()));
        let status = ferry().run(["status", "--json"]).success().json();
        assert_eq!(
            status["trees"][0]["unfinished"][0]["state"], "failed",
            "a reset does not pretend the revision finished: {status}"
        );

        ferry()
            .opt("--set")
            .opt("fill.value=2")
            .run(["upgrade"])
            .success();
        assert_eq!(db.scalar("SELECT v FROM fill_value"), 2);
        assert!(db.has_table("fill_checked"));
        assert_eq!(db.revision_state("fill-1").as_deref(), Some("applied"));

        // Applied: reset refuses and points at downgrade.
        ferry()
            .run(["reset", "fill-1"])
            .code(2)
            .stderr_has("is applied")
            .stderr_has("ferry downgrade");
    });
}
