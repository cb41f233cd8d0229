//! Parallel steps (`--jobs`): the table steps of `schema::rewrite_tables(…, #{ steps:
//! true })` run at the same time on PostgreSQL, each on its own pooled connection and in
//! its own transaction, through the real binary, with the fixture tree
//! `tests/fixtures/trees/parallel_steps` (a parent, two tables that reference it, and a
//! table that references one of those).
//!
//! - On PostgreSQL with `--jobs 2` the two children's steps are open at the same time,
//!   a table's step starts only after the steps of the tables it references committed,
//!   and the result is the same as with `--jobs 1`; SQLite runs the same script one
//!   step at a time.
//! - A step that fails while another runs leaves the other's commit standing; the rerun
//!   skips every committed step and runs the rest.
//! - A bad `jobs` value is refused, naming the key, before anything runs.

mod common;

use common::steps::{
    committed_steps, events, first_value, position, step_events, wait_until_count,
};
use common::{Backend, TestDb};

const N: i64 = 2000;
const REVISION: &str = "registry-2";

fn root() -> std::path::PathBuf {
    common::fixture("parallel_steps").join("scripts")
}

/// `ferry --progress json` on the fixture tree with extra options.
fn ferry<'a>(db: &'a TestDb, options: &[&str]) -> common::Ferry<'a> {
    options
        .iter()
        .fold(db.ferry().scripts(root()).progress("json"), |f, o| f.opt(o))
}

/// The table steps (`rewrite …`) as they started and finished, in order:
/// `("started" | "finished" | "skipped", step)`.
fn table_step_events(events: &[serde_json::Value]) -> Vec<(String, String)> {
    step_events(events, |_, step| step.starts_with("rewrite "))
}

/// The most table steps open (started, not yet finished) at one moment.
fn most_at_once(steps: &[(String, String)]) -> usize {
    let (mut open, mut most) = (0usize, 0usize);
    for (kind, _) in steps {
        match kind.as_str() {
            "started" => open += 1,
            "finished" => open -= 1,
            _ => {}
        }
        most = most.max(open);
    }
    most
}

/// What the migration leaves, independent of how its steps ran: every association by
/// the parent's name, and child_b's codes.
fn end_state(db: &TestDb) -> Vec<Vec<Option<String>>> {
    let mut rows = db.query(
        "SELECT p.name, a.tag, n.text, b.code FROM parent p \
         JOIN child_a a ON a.parent_id = p.id \
         LEFT JOIN a_note n ON n.parent_id = a.parent_id AND n.tag = a.tag \
         JOIN child_b b ON b.parent_id = p.id ORDER BY p.name, a.tag",
    );
    rows.push(vec![Some(format!(
        "{} {} {} {}",
        db.count("parent"),
        db.count("child_a"),
        db.count("a_note"),
        db.count("child_b")
    ))]);
    rows
}

fn assert_migrated(db: &TestDb) {
    let uuid = if db.backend == Backend::Postgres {
        "uuid"
    } else {
        "char(32)"
    };
    let mut conn = db.connect();
    for (table, column) in [
        ("parent", "id"),
        ("child_a", "parent_id"),
        ("a_note", "parent_id"),
        ("child_b", "parent_id"),
    ] {
        let columns = conn.columns(table).unwrap();
        let c = columns.iter().find(|c| c.name == column).unwrap();
        assert_eq!(c.data_type, uuid, "[{}] {table}.{column}", db.name());
    }
    assert_eq!(db.count("parent"), N);
    assert_eq!(db.count("child_a"), 2 * N);
    assert_eq!(db.count("a_note"), N);
    assert_eq!(
        db.scalar(
            "SELECT COUNT(*) FROM child_b b JOIN parent p ON p.id = b.parent_id \
                   WHERE b.code = 7 * CAST(substr(p.name, 3) AS BIGINT)"
        ),
        N,
        "[{}] child_b's codes follow their parents",
        db.name()
    );
    assert!(!db.has_table("ferry_new_child_a") && !db.has_table("ferry_parent_map"));
    assert_eq!(db.revision_state(REVISION).as_deref(), Some("applied"));
}

#[test]
fn table_steps_run_at_the_same_time_on_postgres_and_in_turn_on_sqlite() {
    let sqlite = TestDb::sqlite();
    ferry(&sqlite, &[]).run(["upgrade", "registry-1"]).success();
    let run = ferry(&sqlite, &["--jobs", "2"]).run(["upgrade"]).success();
    let steps = table_step_events(&events(&run));
    assert_eq!(
        most_at_once(&steps),
        1,
        "SQLite runs steps in turn: {steps:?}"
    );
    assert_migrated(&sqlite);

    let (Some(one), Some(two)) = (
        TestDb::postgres("parallel_steps_jobs_1"),
        TestDb::postgres("parallel_steps_jobs_2"),
    ) else {
        eprintln!("PostgreSQL skipped: FERRY_TEST_PG_URL is not set");
        return;
    };
    for db in [&one, &two] {
        ferry(db, &[]).run(["upgrade", "registry-1"]).success();
    }
    let run = ferry(&one, &["--jobs", "1"]).run(["upgrade"]).success();
    let steps = table_step_events(&events(&run));
    assert_eq!(most_at_once(&steps), 1, "--jobs 1: {steps:?}");
    // The configuration key says the same as the option.
    let run = ferry(&two, &["--set", "jobs=2"]).run(["upgrade"]).success();
    let steps = table_step_events(&events(&run));
    assert_eq!(most_at_once(&steps), 2, "--jobs 2: {steps:?}");
    // Parents first: the children start after the parent's step, a_note after
    // child_a's; child_a and child_b are open together.
    let parent_done = position(&steps, "finished", "rewrite parent");
    for child in ["rewrite child_a", "rewrite child_b"] {
        assert!(
            position(&steps, "started", child) > parent_done,
            "{steps:?}"
        );
    }
    assert!(
        position(&steps, "started", "rewrite a_note")
            > position(&steps, "finished", "rewrite child_a"),
        "{steps:?}"
    );
    assert!(
        position(&steps, "started", "rewrite child_b")
            < position(&steps, "finished", "rewrite child_a")
            || position(&steps, "started", "rewrite child_a")
                < position(&steps, "finished", "rewrite child_b"),
        "{steps:?}"
    );
    for db in [&one, &two] {
        assert_migrated(db);
    }
    assert_eq!(
        end_state(&one),
        end_state(&two),
        "--jobs 1 and --jobs 2 differ"
    );
    // The schema comes out the same too.
    let digest = |db: &TestDb| {
        let mut conn = db.connect();
        ferry::digest::digest(conn.as_mut()).unwrap().sha256
    };
    assert_eq!(digest(&one), digest(&two));
}

#[test]
fn a_failing_parallel_step_leaves_the_others_committed_and_resume_skips_them() {
    let Some(db) = TestDb::postgres("parallel_steps_failure") else {
        eprintln!("PostgreSQL skipped: FERRY_TEST_PG_URL is not set");
        return;
    };
    ferry(&db, &[]).run(["upgrade", "registry-1"]).success();
    // child_b's step fails on this value (CAST('bad' AS BIGINT)); child_a's, which runs
    // at the same time, does not.
    db.execute("UPDATE child_b SET code = 'bad' WHERE parent_id = 5");
    let failed = ferry(&db, &["--jobs", "2"]).run(["upgrade"]).code(1);
    assert!(
        failed.stderr.contains("rewrite child_b") && failed.stderr.contains("bad"),
        "the failure names the step and the value: {}",
        failed.describe()
    );
    let steps = table_step_events(&events(&failed));
    assert_eq!(most_at_once(&steps), 2, "{steps:?}");
    let committed = committed_steps(&db, REVISION);
    for step in ["map parent ids", "rewrite child_a", "rewrite parent"] {
        assert!(
            committed.contains(&step.to_string()),
            "{step:?} committed: {committed:?}"
        );
    }
    assert!(!committed.contains(&"rewrite child_b".to_string()));
    // child_b's copy went with its transaction; child_a's copy stands, complete; the
    // old tables are untouched.
    assert!(!db.has_table("ferry_new_child_b"));
    assert_eq!(db.count("ferry_new_child_a"), 2 * N);
    assert_eq!(db.count("child_b"), N);
    assert_eq!(db.revision_state(REVISION).as_deref(), Some("failed"));

    db.execute("UPDATE child_b SET code = '35' WHERE parent_id = 5");
    let rerun = ferry(&db, &["--jobs", "2"]).run(["upgrade"]).success();
    let steps = table_step_events(&events(&rerun));
    for step in ["rewrite parent", "rewrite child_a"] {
        position(&steps, "skipped", step);
        assert!(
            !steps.contains(&("started".into(), step.into())),
            "{step} ran again: {steps:?}"
        );
    }
    position(&steps, "started", "rewrite child_b");
    assert_migrated(&db);
}

#[test]
fn a_bad_jobs_value_is_refused_before_anything_runs() {
    let db = TestDb::sqlite();
    ferry(&db, &["--set", "jobs=0"])
        .run(["upgrade"])
        .code(2)
        .stderr_has("--set jobs=0: configuration key jobs must be a whole number from 1 to 64");
    ferry(&db, &["--jobs", "0"])
        .run(["upgrade"])
        .code(2)
        .stderr_has("--jobs");
    assert!(db.ferry_tables().is_empty(), "nothing ran");
}

#[test]
fn pooled_steps_do_not_commit_once_the_coordinating_connection_lost_the_lock() {
    let Some(db) = TestDb::postgres("parallel_steps_lock_lost") else {
        eprintln!("PostgreSQL skipped: FERRY_TEST_PG_URL is not set");
        return;
    };
    let schema = db.schema().unwrap().to_string();
    ferry(&db, &[]).run(["upgrade", "registry-1"]).success();
    // The migration lock's key (`postgres::lock_key`), computed by the server.
    let key = format!(
        "('x' || substr(encode(sha256(convert_to('ferry:{schema}', 'UTF8')), 'hex'), 1, 16))\
         ::bit(64)::bigint"
    );
    // Holding both children's tables makes their steps wait, each on its pooled
    // connection, inside its transaction: the barrier the test lifts when it likes.
    let mut tables = db.connect();
    tables
        .execute_batch("BEGIN; LOCK TABLE child_a, child_b IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let running = ferry(&db, &["--jobs", "2"]).spawn(["upgrade"]);
    let ours = format!("application_name LIKE 'ferry % {}'", running.pid());
    let mut watch = db.connect();
    // The coordinating connection: the one of this ferry holding the migration lock.
    let holder = format!(
        "SELECT count(*) FROM pg_stat_activity a JOIN pg_locks l ON l.pid = a.pid \
         WHERE a.{ours} AND l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 \
         AND ((l.classid::bigint << 32) | l.objid::bigint) = {key}"
    );
    let waiting = format!(
        "SELECT count(*) FROM pg_stat_activity WHERE {ours} AND wait_event_type = 'Lock' \
         AND pid NOT IN (SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted)"
    );
    wait_until_count(watch.as_mut(), &waiting, 2);
    wait_until_count(watch.as_mut(), &holder, 1);
    assert_eq!(
        committed_steps(&db, REVISION),
        ["map parent ids", "rewrite parent"],
        "both children's steps are waiting"
    );
    // The coordinating connection dies; the server releases its lock, and another
    // migrator (this test) takes it.
    let coordinator = first_value(watch.as_mut(), &holder.replace("count(*)", "min(a.pid)"));
    first_value(
        watch.as_mut(),
        &format!("SELECT pg_terminate_backend({coordinator})"),
    );
    wait_until_count(
        watch.as_mut(),
        &format!("SELECT count(*) FROM pg_stat_activity WHERE pid = {coordinator}"),
        0,
    );
    let mut other = db.connect();
    assert_eq!(
        first_value(
            other.as_mut(),
            &format!("SELECT pg_try_advisory_lock({key})::int")
        ),
        "1",
        "the lock is free once the coordinating connection is gone"
    );
    tables.execute_batch("COMMIT").unwrap();
    let failed = running.finish();
    assert_ne!(failed.code, 0, "{}", failed.describe());
    assert!(
        failed.stderr.contains("the migration lock is lost")
            && failed.stderr.contains("rolled back instead of committed"),
        "the failure names the lost lock: {}",
        failed.describe()
    );
    // Neither step committed: no step record, no copy; the old tables are untouched.
    let committed = committed_steps(&db, REVISION);
    for step in ["rewrite child_a", "rewrite child_b"] {
        assert!(!committed.contains(&step.to_string()), "{committed:?}");
    }
    assert!(!db.has_table("ferry_new_child_a") && !db.has_table("ferry_new_child_b"));
    assert_eq!(db.count("child_a"), 2 * N);
    assert_eq!(db.count("child_b"), N);

    // The other migrator goes away; a rerun resumes and completes.
    drop(other);
    let rerun = ferry(&db, &["--jobs", "2"]).run(["upgrade"]).success();
    let steps = table_step_events(&events(&rerun));
    position(&steps, "skipped", "rewrite parent");
    position(&steps, "finished", "rewrite child_a");
    position(&steps, "finished", "rewrite child_b");
    assert_migrated(&db);
}

/// A login role made for one test, dropped with what it owns at the end.
struct TestRole {
    base: String,
    name: String,
}

impl Drop for TestRole {
    fn drop(&mut self) {
        let mut admin = common::fresh::pg_admin(&self.base);
        let _ = admin.execute_batch(&format!(
            "DROP OWNED BY {0}; DROP ROLE IF EXISTS {0}",
            self.name
        ));
    }
}

#[test]
fn steps_run_on_the_migration_connection_when_the_pool_gets_none() {
    let (Some(one), Some(limited)) = (
        TestDb::postgres("parallel_steps_limit_jobs_1"),
        TestDb::postgres("parallel_steps_limit"),
    ) else {
        eprintln!("PostgreSQL skipped: FERRY_TEST_PG_URL is not set");
        return;
    };
    let base = common::pg_base_url().unwrap();
    let schema = limited.schema().unwrap().to_string();
    // A role that may hold one connection: the migration's own; the pool gets none.
    let role = TestRole {
        base: base.clone(),
        name: format!("{schema}_one"),
    };
    limited.execute(&format!(
        "CREATE ROLE {} LOGIN CONNECTION LIMIT 1",
        role.name
    ));
    limited.execute(&format!(
        "GRANT USAGE, CREATE ON SCHEMA {schema} TO {}",
        role.name
    ));
    let url = common::fresh::schema_url(
        &base.replacen("postgres@", &format!("{}@", role.name), 1),
        &schema,
    );
    assert_ne!(url, limited.url(), "the role's URL: {base}");
    let as_role = |options: &[&str]| ferry(&limited, options).db_url(&url);
    as_role(&[]).run(["upgrade", "registry-1"]).success();
    let run = as_role(&["--jobs", "2"]).run(["upgrade"]).success();
    let events = events(&run);
    let warnings: Vec<&serde_json::Value> = events
        .iter()
        .filter(|e| e["event"] == "log" && e["level"] == "warn")
        .collect();
    assert!(
        warnings.len() == 1
            && warnings[0]["message"]
                .as_str()
                .is_some_and(|m| m.contains("no pooled connection")),
        "one warning says the steps run on the migration's connection: {}",
        run.describe()
    );
    let steps = table_step_events(&events);
    assert_eq!(most_at_once(&steps), 1, "one after another: {steps:?}");
    assert_migrated(&limited);

    ferry(&one, &[]).run(["upgrade", "registry-1"]).success();
    ferry(&one, &["--jobs", "1"]).run(["upgrade"]).success();
    assert_eq!(
        end_state(&one),
        end_state(&limited),
        "--jobs 1 and the fallback differ"
    );
    let digest = |db: &TestDb| {
        let mut conn = db.connect();
        ferry::digest::digest(conn.as_mut()).unwrap().sha256
    };
    assert_eq!(digest(&one), digest(&limited));
    drop(role);
}
