//! Snapshots of the text users read, where its exact shape matters: the status table,
//! the plan, the history, and the reports of a failing script, a cycle and an unknown
//! target, all on SQLite. The snapshots live in `snapshots/` beside this file; a change
//! to the text fails the test until the new snapshot is reviewed and committed
//! (`cargo insta review`, or `INSTA_UPDATE=always` and `git diff`). `.ci/run` sets
//! `INSTA_UPDATE=no`, so CI never writes a snapshot and fails on any difference.
//!
//! What changes from run to run (times, durations, the temporary folders, the host,
//! user and process id of a lock or a run) is replaced by a `[NAME]` placeholder before
//! the comparison.

mod common;

use common::{fixture, Ferry, Run, TestDb};

/// `text` with every character that is special in a regular expression escaped.
fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if "\\.+*?()|[]{}^$#&-~".contains(c) {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// The filters that take out what changes from run to run, for runs against `db`.
fn settings(db: &TestDb) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    s.set_omit_expression(true);
    let trees = fixture("linear")
        .parent()
        .expect("the fixture trees' folder")
        .to_path_buf();
    // Longest first: the database file lies inside the working directory.
    s.add_filter(&literal(db.url()), "[DB]");
    s.add_filter(&literal(&db.dir().display().to_string()), "[DIR]");
    s.add_filter(&literal(&trees.display().to_string()), "[FIXTURES]");
    // Times and run times keep their width where it is fixed, so tables stay aligned.
    s.add_filter(
        r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z",
        "YYYY-MM-DDTHH:MM:SSZ",
    );
    s.add_filter(r"\b\d\.\d\ds\b", "S.SSs");
    // Other times: 2026-12-04 17:50:12, 2026-12-04T17:50:12.123456Z, +00:00 offsets.
    s.add_filter(
        r"\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:?\d{2}| UTC)?",
        "[TIME]",
    );
    // Run times: 0.03s, 12.50 s, 12ms, 850µs (not a configured "600 s").
    s.add_filter(
        r"\b\d+\.\d+\s?s\b|\b\d+(\.\d+)?\s?(ns|µs|us|ms)\b",
        "[DURATION]",
    );
    // Who ran it (`user@host`), and the width of the history's BY column, which follows it.
    s.add_filter(r"\b[\w.-]+@[\w.-]+\b", "[USER]@[HOST]");
    s.add_filter(r"\bBY +ERROR\b", "BY  ERROR");
    s.add_filter(r"\bpid \d+\b", "pid [PID]");
    s
}

/// `ferry` over the fixture `tree`, whatever the developer's environment asks for:
/// no colours (common already sets NO_COLOR, which FORCE_COLOR would override) and
/// FERRY_LOG at its default level, so the text is the one a plain terminal shows.
fn ferry<'a>(db: &'a TestDb, tree: &str) -> Ferry<'a> {
    db.ferry()
        .tree(tree)
        .env("FORCE_COLOR", "0")
        .env("CLICOLOR_FORCE", "0")
        .env("FERRY_LOG", "error")
}

/// A run as a user sees it: the exit code, then stdout and stderr.
fn shown(run: &Run) -> String {
    format!(
        "exit: {}\n--- stdout ---\n{}--- stderr ---\n{}",
        run.code, run.stdout, run.stderr
    )
}

#[test]
fn status_table_part_way() {
    let db = TestDb::sqlite();
    let ferry = ferry(&db, "linear");
    ferry.run(["upgrade", "alpha-1"]).success();
    let run = ferry.run(["status"]).success();
    settings(&db).bind(|| insta::assert_snapshot!("status_table_part_way", shown(&run)));
}

#[test]
fn status_table_after_a_failure() {
    let db = TestDb::sqlite();
    let ferry = ferry(&db, "failing");
    ferry.run(["upgrade"]).code(1);
    let run = ferry.run(["status"]);
    settings(&db).bind(|| insta::assert_snapshot!("status_table_after_a_failure", shown(&run)));
}

#[test]
fn plan_from_empty() {
    let db = TestDb::sqlite();
    let run = ferry(&db, "linear").run(["plan"]).success();
    settings(&db).bind(|| insta::assert_snapshot!("plan_from_empty", shown(&run)));
}

#[test]
fn history_after_two_upgrades() {
    let db = TestDb::sqlite();
    let ferry = ferry(&db, "linear");
    ferry.run(["upgrade", "alpha-1"]).success();
    ferry.run(["upgrade"]).success();
    let run = ferry.run(["history"]).success();
    settings(&db).bind(|| insta::assert_snapshot!("history_after_two_upgrades", shown(&run)));
}

#[test]
fn report_of_a_failing_script() {
    let db = TestDb::sqlite();
    let run = ferry(&db, "failing").run(["upgrade"]).code(1);
    settings(&db).bind(|| insta::assert_snapshot!("report_of_a_failing_script", shown(&run)));
}

#[test]
fn report_of_a_syntax_error() {
    let db = TestDb::sqlite();
    let run = ferry(&db, "broken_syntax").run(["plan"]);
    assert_ne!(run.code, 0, "{}", run.describe());
    settings(&db).bind(|| insta::assert_snapshot!("report_of_a_syntax_error", shown(&run)));
}

#[test]
fn report_of_a_cycle() {
    let db = TestDb::sqlite();
    let run = ferry(&db, "broken_cycle").run(["plan"]);
    assert_ne!(run.code, 0, "{}", run.describe());
    settings(&db).bind(|| insta::assert_snapshot!("report_of_a_cycle", shown(&run)));
}

#[test]
fn report_of_an_unknown_target() {
    let db = TestDb::sqlite();
    let run = ferry(&db, "linear").run(["upgrade", "alpha-9"]);
    assert_ne!(run.code, 0, "{}", run.describe());
    settings(&db).bind(|| insta::assert_snapshot!("report_of_an_unknown_target", shown(&run)));
}
