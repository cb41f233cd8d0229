//! Ordering and ownership for an instrument plugin (`obs_test`, instrument TST): a
//! plugin revision's `BEFORE`, its cycles, unknown names and late arrival, and a root's
//! ownership of its trees (`OPEN_TO_PLUGINS`). Fixtures: `tests/fixtures/trees/before/`
//! (its README says what each root holds). Both backends.

mod common;
use common::*;

use std::path::PathBuf;

fn root(name: &str) -> PathBuf {
    fixture("before").join(name)
}

/// `ferry` over the small core and one more root.
fn with_plugin<'a>(db: &'a TestDb, core: &str, plugin: &str) -> Ferry<'a> {
    db.ferry().scripts(root(core)).scripts(root(plugin))
}

/// What a refused command must leave as it was: the tables and the history.
fn snapshot(db: &TestDb) -> (Vec<String>, Vec<(String, String, String)>) {
    let tables = db.tables();
    let history = if tables.iter().any(|t| t == "ferry_history") {
        db.history()
    } else {
        Vec::new()
    };
    (tables, history)
}

#[test]
fn before_runs_a_plugin_revision_ahead_of_a_core_revision_whose_tree_sorts_first() {
    for_each_backend("before_order", |db| {
        // Without BEFORE the tie-break (tree name) would run dimensions-config-1
        // first: "dimensions-config" < "obs_test".
        with_plugin(db, "core", "obs_test")
            .run(["plan"])
            .success()
            .stdout_has("2  obs_test-1")
            .stdout_has("3  dimensions-config-1");
        with_plugin(db, "core", "obs_test")
            .run(["upgrade"])
            .success();
        assert_eq!(
            db.applied_in_order(),
            ["dimensions-1", "obs_test-1", "dimensions-config-1"],
            "[{}]",
            db.name()
        );
        // dimensions-config-1 saw TST, so TST has its amplifier.
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM amplifier WHERE instrument = 'TST'"),
            1,
            "[{}]",
            db.name()
        );
        with_plugin(db, "core", "obs_test")
            .run(["graph"])
            .success()
            .stdout_has("before dimensions-config-1")
            .stdout_has("after obs_test-1 (their BEFORE)");
        with_plugin(db, "core", "obs_test")
            .run(["show", "dimensions-config-1"])
            .success()
            .stdout_has("after (BEFORE)  obs_test-1");
        // Downgrade runs in reverse: the core revision that ran after TST is undone
        // before TST goes, as for a DEPENDS_ON.
        with_plugin(db, "core", "obs_test")
            .run(["downgrade", "obs_test@base"])
            .success();
        let undone: Vec<String> = db
            .history()
            .into_iter()
            .filter(|(_, d, o)| d == "downgrade" && o == "applied")
            .map(|(r, _, _)| r)
            .collect();
        assert_eq!(
            undone,
            ["dimensions-config-1", "obs_test-1"],
            "[{}]",
            db.name()
        );
        assert!(!db.has_table("amplifier"), "[{}]", db.name());
        assert_eq!(db.count("instrument"), 0, "[{}]", db.name());
    });
}

#[test]
fn a_target_brings_the_revisions_that_asked_to_run_before_it() {
    for_each_backend("before_target", |db| {
        with_plugin(db, "core", "obs_test")
            .run(["upgrade", "dimensions-config-1"])
            .success();
        assert_eq!(
            db.applied_in_order(),
            ["dimensions-1", "obs_test-1", "dimensions-config-1"],
            "[{}]",
            db.name()
        );
    });
}

#[test]
fn a_before_cycle_is_refused_naming_both_files() {
    for_each_backend("before_cycle", |db| {
        for cmd in ["plan", "upgrade"] {
            with_plugin(db, "core", "obs_test_cycle")
                .run([cmd])
                .code(2)
                .stderr_has("cycle in the revision graph")
                .stderr_has("core/dimensions/001_instrument.rhai:2")
                .stderr_has("obs_test_cycle/obs_test/001_register.rhai:2");
        }
        assert!(db.tables().is_empty(), "[{}] {:?}", db.name(), db.tables());
    });
}

#[test]
fn before_of_an_unknown_revision_is_refused_naming_file_and_line() {
    for_each_backend("before_unknown", |db| {
        with_plugin(db, "core", "obs_test_unknown")
            .run(["upgrade"])
            .code(2)
            .stderr_has(
                "obs_test_unknown/obs_test/001_register.rhai:7: revision obs_test-1 asks to \
                 run before unknown revision dimensions-konfig-1 (did you mean \
                 dimensions-config-1?)",
            );
        assert!(db.tables().is_empty(), "[{}] {:?}", db.name(), db.tables());
    });
}

#[test]
fn a_late_before_is_refused_until_allowed_and_then_recorded() {
    for_each_backend("before_late", |db| {
        // The core ran before the instrument team's plugin was installed.
        db.ferry().scripts(root("core")).run(["upgrade"]).success();
        let before = snapshot(db);
        for cmd in ["plan", "upgrade"] {
            with_plugin(db, "core", "obs_test")
                .run([cmd])
                .code(2)
                .stderr_has(
                    "obs_test/obs_test/001_register.rhai:8: revision obs_test-1 asks to run \
                     BEFORE dimensions-config-1, already applied",
                )
                .stderr_has("nothing was run")
                .stderr_has("--allow-late");
        }
        assert_eq!(snapshot(db), before, "[{}] refused, unchanged", db.name());
        assert_eq!(db.count("instrument"), 0, "[{}]", db.name());

        with_plugin(db, "core", "obs_test")
            .run(["upgrade", "--allow-late"])
            .success();
        // The revision coped with running late: TST has its amplifier all the same.
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM amplifier WHERE instrument = 'TST'"),
            1,
            "[{}]",
            db.name()
        );
        let note = db.query(
            "SELECT note FROM ferry_history WHERE revision = 'obs_test-1' AND outcome = 'applied'",
        );
        assert_eq!(note, [[Some("allow-late".to_string())]], "[{}]", db.name());
        with_plugin(db, "core", "obs_test").run(["check"]).success();
    });
}

#[test]
fn a_plugin_revision_may_not_join_a_core_tree_unless_it_is_open() {
    for_each_backend("tree_ownership", |db| {
        for cmd in ["plan", "upgrade", "status"] {
            with_plugin(db, "core", "obs_test_joins_core")
                .run([cmd])
                .code(2)
                .stderr_has(
                    "obs_test_joins_core/dimensions/002_tst.rhai:2: revision dimensions-tst",
                )
                .stderr_has("joins tree dimensions, which belongs to root")
                .stderr_has("before/core (its root revision dimensions-1 is")
                .stderr_has("core/dimensions/001_instrument.rhai:2")
                .stderr_has("`const OPEN_TO_PLUGINS = true;`");
        }
        assert!(db.tables().is_empty(), "[{}] {:?}", db.name(), db.tables());

        // The core tree opens itself to plugins: the same plugin revision joins it.
        with_plugin(db, "core_open", "obs_test_joins_core")
            .run(["upgrade"])
            .success();
        assert_eq!(
            db.applied_in_order(),
            ["dimensions-1", "dimensions-tst", "dimensions-config-1"],
            "[{}]",
            db.name()
        );
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM amplifier WHERE instrument = 'TST'"),
            1,
            "[{}]",
            db.name()
        );
    });
}
