//! `schema::rewrite_tables(rewrites, #{ steps: true })` on both backends, through the real
//! binary, with the fixture tree `tests/fixtures/trees/rewrite_steps`: a parent whose
//! integer ids become UUIDs, three tables that follow it (one of them through another),
//! and one that references the parent by another column.
//!
//! - Rows, keys, unique constraints, foreign keys, index names and sequences survive, in
//!   steps and in one transaction alike.
//! - A SIGKILL between two table steps, and one during the swap, leave a consistent
//!   database in which the old tables are untouched and each committed step's copy is
//!   complete; the rerun finishes the job.
//! - A forgotten step whose copy others reference, a table written between its step and
//!   the swap, a table left out that references a changed column, and a call inside a
//!   step are refused, naming what to do.

#[path = "../../cli/tests/common/mod.rs"]
mod common;
mod fault_support;
mod reference_support;

use common::{for_each_backend, Ferry, TestDb};
use fault_support::invariants::{self, consistency_problems, is_uuid_type, LedgerView};
use fault_support::process::{says, KillAt, Running};
use fault_support::reference;
use fault_support::tables::scalar;
use ferry::backend::rewrite_plan::staged_name;
use ferry::backend::{Connection, Dialect, ForeignKeyInfo, IndexInfo, KeyInfo, Value};
use std::path::PathBuf;
use std::time::Duration;

const N: i64 = 3000;
const REVISION: &str = "registry-2";
const NS: &str = "840b31d9-05cd-5161-b2c8-00d32b280d0f";
/// The rewritten tables in the order of their steps (parents first), with the column
/// that becomes a UUID.
const REWRITTEN: [(&str, &str); 4] = [
    ("parent", "id"),
    ("calib", "parent_id"),
    ("child", "parent_id"),
    ("note", "parent_id"),
];
const SWAP: &str = "swap rewritten tables";
const ALL_TABLES: [&str; 5] = ["parent", "calib", "child", "note", "label"];

fn root() -> PathBuf {
    common::fixture("rewrite_steps").join("scripts")
}

/// `ferry` on the fixture tree with `--progress json`.
fn ferry(db: &TestDb) -> Ferry<'_> {
    reference::watched(reference::ferry_with(db, &[root()]), "10")
}

/// What a successful run said (see [`common::Run::describe`]).
fn run_ok(db: &TestDb, args: &[&str]) -> String {
    ferry(db).run(args).success().describe()
}

/// What a failing run said, with its exit code checked.
fn run_failing(db: &TestDb, args: &[&str]) -> String {
    ferry(db).run(args).code(1).describe()
}

/// Every key and index of a table, by name.
#[derive(Debug, PartialEq)]
struct Shape {
    primary_key: Option<KeyInfo>,
    unique: Vec<KeyInfo>,
    foreign_keys: Vec<ForeignKeyInfo>,
    indexes: Vec<IndexInfo>,
}

fn shapes(conn: &mut dyn Connection) -> Vec<(String, Shape)> {
    ALL_TABLES
        .iter()
        .map(|t| {
            let shape = Shape {
                primary_key: conn.primary_key(t).unwrap(),
                unique: conn.unique_constraints(t).unwrap(),
                foreign_keys: conn.foreign_keys(t).unwrap(),
                indexes: conn.indexes(t).unwrap(),
            };
            (t.to_string(), shape)
        })
        .collect()
}

/// A fresh database at `registry-1`, and the keys and indexes it has.
fn v1(db: &TestDb) -> Vec<(String, Shape)> {
    run_ok(db, &["upgrade", "registry-1"]);
    shapes(db.connect().as_mut())
}

/// The type of `table.column` as the connection reports it; panics if there is no
/// such column.
fn column_type(conn: &mut dyn Connection, table: &str, column: &str) -> String {
    invariants::column_type(conn, table, column).unwrap_or_else(|| panic!("{table}.{column}"))
}

fn uuid_text(v: &Value) -> String {
    match v {
        Value::Uuid(u) => u.simple().to_string(),
        Value::Text(t) => t.clone(),
        other => panic!("not a UUID: {other:?}"),
    }
}

/// The end state: every row kept and mapped, every name kept, the sequences right, the
/// keys enforced, nothing of the rewrite left behind.
fn check_done(db: &TestDb, before: &[(String, Shape)]) {
    let mut conn = db.connect();
    let c = conn.as_mut();
    let what = db.name();
    assert_eq!(shapes(c), before, "[{what}] keys and indexes by name");
    for (table, column) in REWRITTEN {
        let t = column_type(c, table, column);
        assert!(
            is_uuid_type(c.dialect(), &t),
            "[{what}] {table}.{column} is {t}"
        );
    }
    for (table, rows) in [
        ("parent", N),
        ("child", 2 * N),
        ("calib", N),
        ("note", N),
        ("label", N / 10),
    ] {
        assert_eq!(
            scalar(c, &format!("SELECT COUNT(*) FROM {table}"), &[]),
            rows,
            "[{what}] {table}"
        );
    }
    // Each parent's id is the UUID5 of its old id (kept in its code), and every
    // association still holds through the new ids.
    let ns = uuid::Uuid::parse_str(NS).unwrap();
    let parents = c.query("SELECT code, id FROM parent", &[]).unwrap();
    for row in &parents.rows {
        let Value::Text(code) = &row[0] else {
            panic!("{row:?}")
        };
        let old = code.strip_prefix("c-").unwrap();
        let expected = uuid::Uuid::new_v5(&ns, format!("parent-{old}").as_bytes());
        assert_eq!(
            uuid_text(&row[1]),
            expected.simple().to_string(),
            "[{what}] {code}"
        );
    }
    for (sql, rows) in [
        ("SELECT COUNT(*) FROM child c JOIN parent p ON p.id = c.parent_id", 2 * N),
        ("SELECT COUNT(*) FROM calib c JOIN parent p ON p.id = c.parent_id", N),
        (
            "SELECT COUNT(*) FROM note n JOIN child c ON c.parent_id = n.parent_id AND c.tag = n.tag",
            N,
        ),
        ("SELECT COUNT(*) FROM label l JOIN parent p ON p.code = l.code", N / 10),
        ("SELECT COUNT(DISTINCT id) FROM calib", N),
        ("SELECT MAX(id) FROM calib", N),
    ] {
        assert_eq!(scalar(c, sql, &[]), rows, "[{what}] {sql}");
    }
    let left: Vec<String> = c
        .tables("ferry_%")
        .unwrap()
        .into_iter()
        .filter(|t| t.starts_with("ferry_new_") || t == "ferry_parent_map")
        .collect();
    assert!(left.is_empty(), "[{what}] left behind: {left:?}");
    let problems = consistency_problems(c);
    assert!(problems.is_empty(), "[{what}] {problems:?}");
    // The old integer key's sequence is gone; calib's own continues after its rows.
    let parent_id = c.columns("parent").unwrap().remove(0);
    assert_eq!(parent_id.default, None, "[{what}] parent.id default");
    c.execute(
        "INSERT INTO calib (parent_id) SELECT id FROM parent WHERE code = 'c-1'",
        &[],
    )
    .unwrap_or_else(|e| panic!("[{what}] calib's sequence: {e}"));
    assert_eq!(
        scalar(c, "SELECT MAX(id) FROM calib", &[]),
        N + 1,
        "[{what}]"
    );
    if c.dialect() == Dialect::Postgres {
        let sequences = c
            .query(
                "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                 WHERE n.nspname = current_schema() AND c.relkind = 'S' AND c.relname NOT LIKE 'ferry\\_%' ORDER BY 1",
                &[],
            )
            .unwrap();
        assert_eq!(
            sequences.rows,
            vec![vec![Value::Text("calib_id_seq".into())]],
            "[{what}] sequences"
        );
    } else {
        let sql = scalar(
            c,
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'parent' AND sql LIKE '%AUTOINCREMENT%'",
            &[],
        );
        assert_eq!(sql, 0, "[{what}] parent.id is still AUTOINCREMENT");
    }
    // The keys are enforced: a child of no parent, a label of no parent's code.
    let nobody = Value::Uuid(uuid::Uuid::new_v4());
    assert!(
        c.execute(
            "INSERT INTO child (parent_id, tag) VALUES (?, 'z')",
            &[nobody]
        )
        .is_err(),
        "[{what}] child's key into parent"
    );
    assert!(
        c.execute("INSERT INTO label (code, text) VALUES ('nope', 'x')", &[])
            .is_err(),
        "[{what}] label's key into parent"
    );
}

/// Between the steps: the database is consistent, the old tables are as at v1 (types,
/// rows, names), and each table's copy exists exactly when its step is committed (or
/// `forgotten` by `ferry reset`), with every row and the column already a UUID. Returns
/// the steps whose copies exist.
fn check_between_steps(db: &TestDb, before: &[(String, Shape)], forgotten: &[&str]) -> Vec<String> {
    let mut conn = db.connect();
    let c = conn.as_mut();
    let what = db.name();
    let problems = consistency_problems(c);
    assert!(problems.is_empty(), "[{what}] {problems:?}");
    assert_eq!(
        shapes(c),
        before,
        "[{what}] the old tables' keys and indexes"
    );
    let view = LedgerView::read(c).unwrap();
    let committed = |step: &str| view.committed(REVISION, step);
    assert!(
        !committed(SWAP),
        "[{what}] the swap ran: nothing between the steps to see"
    );
    let mut steps = Vec::new();
    let mut previous = true;
    for (table, column) in REWRITTEN {
        let step = format!("rewrite {table}");
        let t = column_type(c, table, column);
        assert!(
            !is_uuid_type(c.dialect(), &t),
            "[{what}] {table}.{column} is already {t}"
        );
        let copy = staged_name(table);
        let exists = c.table_exists(&copy).unwrap();
        let expected = committed(&step) || forgotten.contains(&step.as_str());
        assert_eq!(exists, expected, "[{what}] {copy} exists: {exists}");
        assert!(
            previous || !committed(&step),
            "[{what}] {step} out of order"
        );
        previous = expected;
        if exists {
            steps.push(step);
            let count = |c: &mut dyn Connection, t: &str| {
                scalar(c, &format!("SELECT COUNT(*) FROM {t}"), &[])
            };
            assert_eq!(count(c, &copy), count(c, table), "[{what}] rows of {copy}");
            let t = column_type(c, &copy, column);
            assert!(
                is_uuid_type(c.dialect(), &t),
                "[{what}] {copy}.{column} is {t}"
            );
            for key in c.foreign_keys(&copy).unwrap() {
                if ["parent", "child"].contains(&key.referenced_table.as_str()) {
                    panic!(
                        "[{what}] {copy}.{} references the old {}",
                        key.name, key.referenced_table
                    );
                }
            }
        }
    }
    // Code that knows only v1 still reads the old tables as they were.
    assert_eq!(
        scalar(
            c,
            "SELECT COUNT(*) FROM child c JOIN parent p ON p.id = c.parent_id",
            &[]
        ),
        2 * N,
        "[{what}]"
    );
    steps
}

/// Starts the upgrade and kills it right after the first event `wanted` accepts.
fn kill_after(db: &TestDb, wanted: impl Fn(&serde_json::Value) -> bool) {
    let mut cmd = ferry(db).command();
    cmd.arg("upgrade");
    let mut running = Running::start(cmd);
    running.wait_for_event(Duration::from_secs(120), wanted);
    running.kill();
    let out = running.kill_at(KillAt::Never);
    assert!(out.killed, "[{}] not killed: {}", db.name(), out.describe());
    let mut conn = db.connect();
    fault_support::process::server_session_gone(conn.as_mut(), out.pid, Duration::from_secs(10))
        .expect("the killed migrator's session ends");
}

/// Makes v1 and kills its upgrade as the swap starts: the v1 shape, and the committed
/// steps as [`check_between_steps`] found them.
fn killed_at_the_swap(db: &TestDb) -> (Vec<(String, Shape)>, Vec<String>) {
    let before = v1(db);
    kill_after(db, |e| event_is(e, "step_started", SWAP));
    let steps = check_between_steps(db, &before, &[]);
    (before, steps)
}

fn event_is(e: &serde_json::Value, event: &str, step: &str) -> bool {
    e["event"] == event && e["step"] == step
}

#[test]
fn rows_keys_and_names_survive_a_rewrite_in_steps() {
    for_each_backend("rewrite_steps_survive", |db| {
        let before = v1(db);
        let plan = run_ok(db, &["plan"]);
        assert!(
            plan.contains("(computed) → swap rewritten tables → drop the map"),
            "{plan}"
        );
        let out = run_ok(db, &["upgrade"]);
        // The host orders the tables parents first, whatever the script's order.
        let started: Vec<String> = out
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|e| e["event"] == "step_started")
            .map(|e| e["step"].as_str().unwrap_or("").to_string())
            .collect();
        assert_eq!(
            started,
            [
                "map parent ids",
                "rewrite parent",
                "rewrite calib",
                "rewrite child",
                "rewrite note",
                SWAP,
                "drop the map"
            ],
            "[{}]",
            db.name()
        );
        check_done(db, &before);
        let status = reference::ferry_with(db, &[root()]).command();
        invariants::usable(db, status).unwrap_or_else(|p| panic!("[{}] {p:?}", db.name()));
    });
}

#[test]
fn the_rewrite_in_one_transaction_keeps_the_same() {
    for_each_backend("rewrite_steps_one_transaction", |db| {
        let before = v1(db);
        run_ok(db, &["--set", "rewrite.mode=one_transaction", "upgrade"]);
        check_done(db, &before);
    });
}

#[test]
fn a_kill_between_table_steps_resumes() {
    for_each_backend("rewrite_steps_kill_between", |db| {
        let before = v1(db);
        kill_after(db, |e| event_is(e, "step_finished", "rewrite calib"));
        let steps = check_between_steps(db, &before, &[]);
        assert!(
            steps.starts_with(&["rewrite parent".into(), "rewrite calib".into()]),
            "[{}] {steps:?}",
            db.name()
        );
        let out = run_ok(db, &["upgrade"]);
        assert!(out.contains("\"step_skipped\""), "{out}");
        check_done(db, &before);
    });
}

#[test]
fn a_kill_during_the_swap_resumes_and_a_partial_reset_is_refused() {
    for_each_backend("rewrite_steps_kill_swap", |db| {
        let (before, steps) = killed_at_the_swap(db);
        assert_eq!(steps.len(), REWRITTEN.len(), "[{}] {steps:?}", db.name());

        // Forgetting the parent's step alone would rebuild a copy the others reference.
        run_ok(db, &["reset", REVISION, "--step", "rewrite parent"]);
        let refused = run_failing(db, &["upgrade"]);
        for needle in [
            "rewrite parent",
            "committed by step \"rewrite calib\"",
            "make the ledger forget that step too",
        ] {
            assert!(says(&refused, needle), "{needle:?} in {refused}");
        }
        check_between_steps(db, &before, &["rewrite parent"]);
        // Forgetting every step redoes them all, dropping the stale copies first.
        run_ok(db, &["reset", REVISION]);
        run_ok(db, &["upgrade"]);
        check_done(db, &before);
    });
}

#[test]
fn a_table_written_after_its_step_stops_the_swap() {
    for_each_backend("rewrite_steps_written", |db| {
        let (before, _) = killed_at_the_swap(db);
        db.execute("INSERT INTO label (code, text) VALUES ('c-1', 'not rewritten, harmless')");
        db.execute("INSERT INTO parent (id, code, run) VALUES (999999, 'late', 1)");
        let refused = run_failing(db, &["upgrade"]);
        for needle in [
            "swap rewritten tables",
            &format!(
                "table parent holds {} rows but its rewritten copy {N}",
                N + 1
            ),
        ] {
            assert!(says(&refused, needle), "{needle:?} in {refused}");
        }
        db.execute("DELETE FROM parent WHERE id = 999999");
        check_between_steps(db, &before, &[]);
        run_ok(db, &["upgrade"]);
        db.execute("DELETE FROM label WHERE text = 'not rewritten, harmless'");
        check_done(db, &before);
    });
}

#[test]
fn the_swap_compares_each_table_with_the_rows_its_step_recorded() {
    for_each_backend("rewrite_steps_recorded_rows", |db| {
        let (before, _) = killed_at_the_swap(db);
        let recorded = |table: &str| {
            db.scalar(&format!(
                "SELECT row_count FROM ferry_steps WHERE revision = '{REVISION}' \
                 AND step = 'rewrite {table}' AND done = 1"
            ))
        };
        for (table, _) in REWRITTEN {
            assert_eq!(
                recorded(table),
                db.count(table),
                "[{}] the step of {table} records the rows it copied",
                db.name()
            );
        }
        // The swap compares each table with that record instead of counting the copy
        // again: a record that disagrees stops it.
        let child = db.count("child");
        db.execute(&format!(
            "UPDATE ferry_steps SET row_count = row_count + 1 \
             WHERE revision = '{REVISION}' AND step = 'rewrite child'"
        ));
        let refused = run_failing(db, &["upgrade"]);
        let says_it = format!(
            "table child holds {child} rows but its rewritten copy {}",
            child + 1
        );
        assert!(says(&refused, &says_it), "{says_it:?} in {refused}");
        check_between_steps(db, &before, &[]);
        // A step that recorded no rows (an earlier Ferry's) has its copy counted.
        db.execute(&format!(
            "UPDATE ferry_steps SET row_count = 0 \
             WHERE revision = '{REVISION}' AND step LIKE 'rewrite %'"
        ));
        run_ok(db, &["upgrade"]);
        check_done(db, &before);
    });
}

/// A transaction writing to a rewritten table while the swap starts: the swap waits for
/// it to end, then counts its row and stops, instead of counting before the row commits
/// and dropping the table with it. PostgreSQL only: SQLite lets one writer at a time in,
/// and a swap whose read is overtaken by a commit fails to write.
#[test]
fn a_write_in_flight_when_the_swap_starts_stops_it_and_is_kept() {
    let Some(db) = TestDb::postgres("rewrite_steps_in_flight") else {
        return;
    };
    let before = v1(&db);
    kill_after(&db, |e| event_is(e, "step_started", SWAP));
    check_between_steps(&db, &before, &[]);
    let mut writer = db.connect();
    writer.begin().unwrap();
    writer
        .execute(
            "INSERT INTO parent (id, code, run) VALUES (999999, 'in flight', 1)",
            &[],
        )
        .unwrap();
    let mut cmd = ferry(&db).command();
    cmd.arg("upgrade");
    let running = Running::start(cmd);
    // The migrator's session (application name `ferry HOST PID`) waits for a lock the
    // writer holds.
    let mut watch = db.connect();
    let waiting = "SELECT COUNT(*) FROM pg_stat_activity \
                   WHERE application_name LIKE ? AND wait_event_type = 'Lock'";
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while scalar(
        watch.as_mut(),
        waiting,
        &[Value::Text(format!("ferry % {}", running.pid()))],
    ) == 0
    {
        if std::time::Instant::now() > deadline {
            // Let it go on (or end) before reading what it said.
            writer.rollback().unwrap();
            panic!(
                "the migrator never waited for the writer: {}",
                running.finish().describe()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    writer.commit().unwrap();
    let out = running.finish();
    assert_eq!(out.code, Some(1), "{}", out.describe());
    let said = format!("{}{}", out.stdout, out.stderr);
    let needle = format!(
        "table parent holds {} rows but its rewritten copy {N}",
        N + 1
    );
    assert!(says(&said, &needle), "{needle:?} in {}", out.describe());
    assert_eq!(
        db.scalar("SELECT COUNT(*) FROM parent WHERE code = 'in flight'"),
        1,
        "the row written during the swap is kept"
    );
    db.execute("DELETE FROM parent WHERE id = 999999");
    check_between_steps(&db, &before, &[]);
    run_ok(&db, &["upgrade"]);
    check_done(&db, &before);
}

#[test]
fn refusals_name_the_cause_and_change_nothing() {
    for_each_backend("rewrite_steps_refusals", |db| {
        let before = v1(db);
        let refused = run_failing(db, &["--set", "rewrite.mode=without_note", "upgrade"]);
        assert!(
            says(
                &refused,
                "note.note_fkey_child references child.parent_id, which the rewrite changes; add note to the rewrite"
            ),
            "{refused}"
        );
        assert!(says(&refused, "002_uuid_ids.rhai"), "{refused}");
        let refused = run_failing(db, &["--set", "rewrite.mode=inside_step", "upgrade"]);
        assert!(
            says(
                &refused,
                "makes its own steps, so it cannot run inside step \"rewrite inside a step\""
            ),
            "{refused}"
        );
        let mut conn = db.connect();
        assert_eq!(shapes(conn.as_mut()), before, "[{}]", db.name());
        let copies: Vec<String> = conn.tables("ferry_new_%").unwrap();
        assert!(copies.is_empty(), "[{}] {copies:?}", db.name());
        drop(conn);
        run_ok(db, &["reset", REVISION]);
        run_ok(db, &["upgrade"]);
        check_done(db, &before);
    });
}

/// The reference migration as operators see it before it runs: `ferry plan` lists the
/// rewrite's table steps as `(computed)` followed by the swap, and `upgrade --sql` prints
/// the statements with the id map's values and the step records.
#[test]
fn plan_and_sql_show_the_reference_rewrite() {
    for_each_backend("rewrite_steps_plan", |db| {
        let plan = reference::ferry(db)
            .run(["plan", "datasets-uuid-1.0.0"])
            .success();
        assert!(
            plan.stdout.contains(
                "datasets-uuid-1.0.0 steps: create the id map → map dataset ids → map removed datasets \
                 → key the id map → (computed) → swap rewritten tables → record the UUID manager"
            ),
            "{}",
            plan.describe()
        );
        let sql = reference::ferry(db)
            .run(["upgrade", "--sql", "datasets-uuid-1.0.0"])
            .success();
        assert!(
            says(&sql.stdout, "CREATE TABLE \"ferry_dataset_uuid_map\""),
            "{}",
            sql.describe()
        );
        assert!(
            says(&sql.stdout, "'swap rewritten tables'"),
            "{}",
            sql.describe()
        );
    });
}
