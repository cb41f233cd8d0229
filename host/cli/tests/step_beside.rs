//! `db.step_beside`: a declared step (an `insert_derived` spec) that runs on a pooled
//! connection while its body's steps run on the migration's own, through the real
//! binary, with the fixture tree `tests/fixtures/trees/step_beside` (items, references
//! to items already deleted, and a map old id → UUID built by both).
//!
//! - On PostgreSQL with `--jobs 2` the step is open while its body's steps start and
//!   commit; with `--jobs 1` and on SQLite it runs after them. The map comes out the
//!   same, and `ferry plan` lists the steps in the order they run in turn.
//! - The step waits, on a connection that is not the lock holder's, while its body's
//!   steps commit; killing that connection fails the step alone, and the rerun runs it
//!   and nothing else.
//! - A body that fails leaves the step's commit standing (when it ran beside), and the
//!   rerun skips it.

mod common;

use common::steps::{
    committed_steps, events, first_value, position, step_events, wait_until_count,
};
use common::{Backend, TestDb};

const N: i64 = 2000;
const ORPHANS: i64 = 30;
const REVISION: &str = "items-2";
const STEP: &str = "map orphans";

fn root() -> std::path::PathBuf {
    common::fixture("step_beside").join("scripts")
}

/// `ferry --progress json` on the fixture tree with extra options.
fn ferry<'a>(db: &'a TestDb, options: &[&str]) -> common::Ferry<'a> {
    options
        .iter()
        .fold(db.ferry().scripts(root()).progress("json"), |f, o| f.opt(o))
}

/// The revision's step events in order: `("started" | "finished" | "skipped", step)`.
fn revision_steps(run: &common::Run) -> Vec<(String, String)> {
    step_events(&events(run), |e, _| e["revision"] == REVISION)
}

/// The rows the revision's run reported (its `revision_finished` event).
fn revision_rows(run: &common::Run) -> u64 {
    events(run)
        .into_iter()
        .find(|e| e["event"] == "revision_finished" && e["revision"] == REVISION)
        .and_then(|e| e["rows"].as_u64())
        .unwrap_or_else(|| panic!("no revision_finished for {REVISION}: {}", run.describe()))
}

/// The map is complete: one row per item and per orphan, each old id once, the items'
/// UUIDs the same whichever way the steps ran (UUID5 of the name), the orphans' all
/// different; keyed, and the revision applied.
fn assert_mapped(db: &TestDb) {
    assert_eq!(db.count("item_uuid_map"), N + ORPHANS, "[{}]", db.name());
    assert_eq!(
        db.scalar("SELECT COUNT(DISTINCT old_id) FROM item_uuid_map"),
        N + ORPHANS
    );
    assert_eq!(
        db.scalar(&format!(
            "SELECT COUNT(DISTINCT new_id) FROM item_uuid_map WHERE old_id > {N}"
        )),
        ORPHANS,
        "[{}] every orphan has its own UUID",
        db.name()
    );
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM item_ref r JOIN item_uuid_map m ON m.old_id = r.item_id"),
        N + ORPHANS
    );
    assert_eq!(db.count("notes"), 1);
    let mut conn = db.connect();
    assert!(conn.primary_key("item_uuid_map").unwrap().is_some());
    assert_eq!(db.revision_state(REVISION).as_deref(), Some("applied"));
}

/// The items' UUIDs, in id order (the same on every backend and for every `--jobs`).
fn item_uuids(db: &TestDb) -> Vec<String> {
    let text = if db.backend == Backend::Postgres {
        "CAST(new_id AS TEXT)"
    } else {
        "new_id"
    };
    db.query(&format!(
        "SELECT {text} FROM item_uuid_map WHERE old_id <= {N} ORDER BY old_id"
    ))
    .into_iter()
    .map(|r| r[0].clone().unwrap().replace('-', "").to_lowercase())
    .collect()
}

#[test]
fn the_step_runs_beside_its_body_on_postgres_and_after_it_elsewhere() {
    let sqlite = TestDb::sqlite();
    ferry(&sqlite, &[]).run(["upgrade", "items-1"]).success();
    let plan = ferry(&sqlite, &[]).run(["plan", REVISION]).success();
    assert!(
        plan.stdout.contains(
            "items-2 steps: create the map → map items → note the map → map orphans → key the map"
        ),
        "{}",
        plan.describe()
    );
    let run = ferry(&sqlite, &["--jobs", "2"]).run(["upgrade"]).success();
    let events = revision_steps(&run);
    assert!(
        position(&events, "finished", "note the map") < position(&events, "started", STEP),
        "SQLite runs the step after its body: {events:?}"
    );
    assert_mapped(&sqlite);

    let (Some(one), Some(two)) = (
        TestDb::postgres("step_beside_jobs_1"),
        TestDb::postgres("step_beside_jobs_2"),
    ) else {
        eprintln!("PostgreSQL skipped: FERRY_TEST_PG_URL is not set");
        return;
    };
    for db in [&one, &two] {
        ferry(db, &[]).run(["upgrade", "items-1"]).success();
    }
    let run = ferry(&one, &["--jobs", "1"]).run(["upgrade"]).success();
    let rows_in_turn = revision_rows(&run);
    let events = revision_steps(&run);
    assert!(
        position(&events, "finished", "note the map") < position(&events, "started", STEP),
        "--jobs 1 runs the step after its body: {events:?}"
    );
    let run = ferry(&two, &["--jobs", "2"]).run(["upgrade"]).success();
    // The step's rows count in the revision's total either way.
    assert_eq!(revision_rows(&run), rows_in_turn);
    assert!(rows_in_turn >= (N + ORPHANS) as u64, "{rows_in_turn}");
    let events = revision_steps(&run);
    let started = position(&events, "started", STEP);
    assert!(
        started < position(&events, "started", "map items")
            && position(&events, "finished", "note the map") < position(&events, "finished", STEP)
            && position(&events, "finished", STEP) < position(&events, "started", "key the map"),
        "--jobs 2 runs the step beside its body and ends it before the next step: {events:?}"
    );
    for db in [&one, &two] {
        assert_mapped(db);
    }
    assert_eq!(item_uuids(&one), item_uuids(&two));
    assert_eq!(item_uuids(&one), item_uuids(&sqlite));
}

#[test]
fn the_step_waits_on_its_own_connection_while_its_body_commits_and_fails_alone() {
    let Some(db) = TestDb::postgres("step_beside_waits") else {
        eprintln!("PostgreSQL skipped: FERRY_TEST_PG_URL is not set");
        return;
    };
    ferry(&db, &[]).run(["upgrade", "items-1"]).success();
    // Holding item_ref makes the step's query wait, inside its transaction on its
    // pooled connection; the body reads only item and writes the map and notes.
    let mut gate = db.connect();
    gate.execute_batch("BEGIN; LOCK TABLE item_ref IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let running = ferry(&db, &["--jobs", "2"]).spawn(["upgrade"]);
    let ours = format!("application_name LIKE 'ferry % {}'", running.pid());
    let mut watch = db.connect();
    // A backend of this ferry waiting on a lock, other than the one holding the
    // migration lock (an advisory lock).
    let waiting = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE {ours} AND wait_event_type = 'Lock' \
         AND pid NOT IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)"
    );
    wait_until_count(watch.as_mut(), &waiting, 1);
    let body_done = format!(
        "SELECT count(*) FROM ferry_steps WHERE revision = '{REVISION}' AND done = 1 \
         AND step IN ('map items', 'note the map')"
    );
    wait_until_count(watch.as_mut(), &body_done, 2);
    assert!(
        !committed_steps(&db, REVISION).contains(&STEP.to_string()),
        "the step is still waiting while its body's steps committed"
    );
    // The step's connection dies: it alone fails.
    let pid = first_value(watch.as_mut(), &waiting.replace("count(*)", "min(pid)"));
    first_value(
        watch.as_mut(),
        &format!("SELECT pg_terminate_backend({pid})"),
    );
    gate.execute_batch("COMMIT").unwrap();
    let failed = running.finish();
    assert_ne!(failed.code, 0, "{}", failed.describe());
    assert!(
        failed.stderr.contains(STEP),
        "the failure names the step: {}",
        failed.describe()
    );
    assert_eq!(
        committed_steps(&db, REVISION),
        ["create the map", "map items", "note the map"]
    );
    assert_eq!(
        db.count("item_uuid_map"),
        N,
        "the body's rows stand, no orphan's"
    );
    assert_eq!(db.revision_state(REVISION).as_deref(), Some("failed"));

    let rerun = ferry(&db, &["--jobs", "2"]).run(["upgrade"]).success();
    let events = revision_steps(&rerun);
    for step in ["create the map", "map items", "note the map"] {
        position(&events, "skipped", step);
        assert!(
            !events.contains(&("started".into(), step.into())),
            "{step} ran again: {events:?}"
        );
    }
    position(&events, "finished", STEP);
    assert_mapped(&db);
}

#[test]
fn a_failing_body_leaves_the_step_beside_committed_and_the_rerun_skips_it() {
    common::for_each_backend("step_beside_body_fails", |db| {
        ferry(db, &[]).run(["upgrade", "items-1"]).success();
        // "note the map" inserts note 1: there already.
        db.execute("INSERT INTO notes (id) VALUES (1)");
        let failed = ferry(db, &["--jobs", "2"]).run(["upgrade"]).code(1);
        assert!(
            failed.stderr.contains("note the map"),
            "[{}] the failure names the body's step: {}",
            db.name(),
            failed.describe()
        );
        // Beside (PostgreSQL) the step ran and its commit stands; in turn (SQLite) it
        // comes after the body and did not run.
        let beside = db.backend == Backend::Postgres;
        let mut expected = vec!["create the map", "map items"];
        if beside {
            expected.push(STEP);
        }
        expected.sort();
        assert_eq!(committed_steps(db, REVISION), expected, "[{}]", db.name());
        let orphans = if beside { ORPHANS } else { 0 };
        assert_eq!(db.count("item_uuid_map"), N + orphans, "[{}]", db.name());

        db.execute("DELETE FROM notes");
        let rerun = ferry(db, &["--jobs", "2"]).run(["upgrade"]).success();
        let events = revision_steps(&rerun);
        if beside {
            position(&events, "skipped", STEP);
        } else {
            position(&events, "finished", STEP);
        }
        position(&events, "finished", "note the map");
        assert_mapped(db);
    });
}
