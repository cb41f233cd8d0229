//! Losing the database in the middle of a step, on the reference repository's int →
//! UUID migration (and its online index patch): the PostgreSQL session terminated with
//! `pg_terminate_backend` from another connection, the SQLite file locked by another
//! writer, the SQLite file or its directory read-only. Each gives a clear error that
//! says the database failed (not the script), a recorded failure where the database
//! lets Ferry record one (and says so where it does not), and a clean resume to the
//! WORKLOAD.md end state once the cause is gone.

#[path = "../../cli/tests/common/mod.rs"]
mod common;
mod fault_support;
mod reference_support;

use common::{Backend, TestDb};
use fault_support::invariants::{self, LedgerView, MapProgress};
use fault_support::process::{self, says, KillAt, Outcome, Running};
use fault_support::reference::{self, V1Maker, UUID_REVISION};
use ferry::backend::{Connection, Value};
use ferry::ledger::RevisionState;
use ferry_workload::Snapshot;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

const N: u64 = 2000;
/// 100 batches: after the third has committed, enough are left for a test to lock
/// `dataset` while the step still runs, also on a loaded machine (with 20, a CI run saw
/// the map finish first and the lock catch a table step instead).
const BATCH: u64 = 20;
const MAP_STEP: &str = "map dataset ids";

fn upgrade(db: &TestDb, target: Option<&str>) -> Command {
    reference::upgrade(db, "10", BATCH, target)
}

fn to_v2(db: &TestDb) -> Command {
    upgrade(db, Some(UUID_REVISION))
}

fn batch_committed(e: &serde_json::Value, n: u64) -> bool {
    e["event"] == "progress" && e["step"] == MAP_STEP && e["done"].as_u64() >= Some(n)
}

/// The PostgreSQL session of `ferry` process `pid` once it waits for a lock.
fn waiting_session(conn: &mut dyn Connection, pid: u32) -> i64 {
    let since = Instant::now();
    loop {
        let rows = conn
            .query(
                "SELECT pid::int8 FROM pg_stat_activity WHERE application_name LIKE ? \
                 AND wait_event_type = 'Lock'",
                &[Value::Text(format!("ferry % {pid}"))],
            )
            .unwrap();
        if let Some(Value::Int(p)) = rows.rows.first().map(|r| r[0].clone()) {
            return p;
        }
        assert!(
            since.elapsed() < Duration::from_secs(60),
            "ferry's session never waited for the lock"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Ends a PostgreSQL session from another connection, as an administrator would.
fn terminate(admin: &mut dyn Connection, session: i64) {
    admin
        .execute(
            "SELECT pg_terminate_backend(?::int4)",
            &[Value::Int(session)],
        )
        .unwrap();
}

/// The run failed because of the database, said so, and left a usable repository whose
/// ledger agrees with its schema. Returns the ledger.
fn failed_for_the_database(
    db: &TestDb,
    before: &Snapshot,
    out: &Outcome,
    step: &str,
    cause: &str,
) -> LedgerView {
    assert_eq!(out.code, Some(1), "a failed migration: {}", out.describe());
    for needle in ["database failure", cause, step] {
        assert!(
            says(&out.stderr, needle),
            "the error says {needle:?}: {}",
            out.describe()
        );
    }
    if let Err(p) = invariants::usable(db, reference::ferry(db).command()) {
        panic!("not usable after the failure: {p:?}");
    }
    let mut conn = db.connect();
    let view = LedgerView::read(conn.as_mut()).unwrap();
    let mut problems = view.consistency(true);
    problems.extend(invariants::uuid_revision(
        conn.as_mut(),
        &view,
        before,
        BATCH as i64,
        &mut MapProgress::default(),
    ));
    assert!(problems.is_empty(), "{problems:#?}");
    view
}

/// The failure is in the ledger: the revision is failed at `step` with the cause, and
/// the history has the failed run.
fn recorded(view: &LedgerView, revision: &str, step: &str, cause: &str) {
    let record = &view.revisions[revision];
    assert_eq!(record.state, RevisionState::Failed, "{record:?}");
    assert_eq!(record.failed_step.as_deref(), Some(step), "{record:?}");
    assert!(
        record.error.as_deref().unwrap_or("").contains(cause),
        "{record:?}"
    );
    assert!(
        view.history.iter().any(|h| h.revision == revision
            && h.outcome == "failed"
            && h.error.as_deref().unwrap_or("").contains(cause)),
        "{:?}",
        view.history
    );
}

/// Batches committed before the failure.
fn batches_kept(view: &LedgerView) -> i64 {
    view.step(UUID_REVISION, MAP_STEP)
        .map(|s| s.batches)
        .unwrap_or(0)
}

/// A rerun finishes the int → UUID migration from where it stopped, and the v2 rules hold.
fn resumes_to_v2(db: &TestDb, before: &Snapshot, cmd: Command, kept: i64) {
    let out = process::run(cmd, KillAt::Never);
    assert_eq!(out.code, Some(0), "the rerun: {}", out.describe());
    let started = out
        .events
        .iter()
        .find(|e| e["event"] == "step_started" && e["step"] == MAP_STEP);
    if kept > 0 {
        assert!(started.is_some(), "{}", out.describe());
        let first = out
            .events
            .iter()
            .find(|e| e["event"] == "progress" && e["step"] == MAP_STEP);
        if let Some(first) = first {
            assert_eq!(
                first["done"].as_i64(),
                Some(kept + 1),
                "the rerun starts after the committed batches"
            );
        }
    }
    let mut conn = db.connect();
    if let Err(problems) = ferry_workload::check_v2(conn.as_mut(), before) {
        panic!(
            "v2 rules violated after the resume:\n{}",
            problems.join("\n")
        );
    }
    let view = LedgerView::read(conn.as_mut()).unwrap();
    assert!(view.applied(UUID_REVISION));
    assert_eq!(view.applied_runs(UUID_REVISION), 1, "{:?}", view.history);
    assert!(view.consistency(true).is_empty());
}

#[test]
fn postgres_session_terminated_mid_step_is_recorded_and_resumed() {
    let maker = V1Maker::new(Backend::Postgres, "faults_terminated", N, 7);
    let Some((db, before)) = maker.make() else {
        return;
    };
    // Connected before the run starts, so that no connection's set-up falls between
    // the third batch and the lock.
    let (mut blocker, mut admin) = (db.connect(), db.connect());
    let mut ferry = Running::start(to_v2(&db));
    ferry.wait_for_event(Duration::from_secs(60), |e| batch_committed(e, 3));
    // An exclusive lock on `dataset`, granted between two batches: the next batch
    // waits for it, so the session is terminated in the middle of the step.
    blocker.begin().unwrap();
    blocker
        .execute_batch("LOCK TABLE dataset IN ACCESS EXCLUSIVE MODE")
        .unwrap();
    let session = waiting_session(admin.as_mut(), ferry.pid());
    terminate(admin.as_mut(), session);
    blocker.rollback().unwrap();
    let out = ferry.finish();

    let cause = "lost the database connection";
    let view = failed_for_the_database(&db, &before, &out, MAP_STEP, cause);
    assert!(
        says(
            &out.stderr,
            "the failure is recorded through a new connection"
        ),
        "{}",
        out.describe()
    );
    recorded(&view, UUID_REVISION, MAP_STEP, cause);
    let kept = batches_kept(&view);
    assert!(kept >= 3, "committed batches are kept: {kept}");
    resumes_to_v2(&db, &before, to_v2(&db), kept);
}

#[test]
fn postgres_index_build_terminated_leaves_no_invalid_index() {
    let maker = V1Maker::new(Backend::Postgres, "faults_terminated_index", 300, 7);
    let Some((db, _before)) = maker.make() else {
        return;
    };
    let out = process::run(to_v2(&db), KillAt::Never);
    assert_eq!(out.code, Some(0), "{}", out.describe());

    let table = "dataset_tags_00000001";
    let index = format!("{table}_idx_collection_id");
    let step = format!("index {index}");
    // A writer's open transaction on the table: CREATE INDEX CONCURRENTLY enters the
    // index (not yet valid) in the catalogue, then waits for it.
    let mut blocker = db.connect();
    blocker.begin().unwrap();
    blocker
        .execute_batch(&format!("LOCK TABLE {table} IN ROW EXCLUSIVE MODE"))
        .unwrap();
    let mut ferry = Running::start(upgrade(&db, None));
    ferry.wait_for_event(Duration::from_secs(60), |e| {
        e["event"] == "step_started" && e["step"] == step.as_str()
    });
    let mut admin = db.connect();
    let session = waiting_session(admin.as_mut(), ferry.pid());
    assert!(
        invariants::invalid_indexes(admin.as_mut()).contains(&index),
        "the interrupted build leaves an invalid index"
    );
    terminate(admin.as_mut(), session);
    blocker.rollback().unwrap();
    let out = ferry.finish();
    assert_eq!(out.code, Some(1), "{}", out.describe());
    assert!(
        says(&out.stderr, "lost the database connection"),
        "{}",
        out.describe()
    );
    let view = LedgerView::read(admin.as_mut()).unwrap();
    recorded(
        &view,
        "datasets-uuid-1.0.1",
        &step,
        "lost the database connection",
    );
    assert!(invariants::invalid_indexes(admin.as_mut()).contains(&index));

    let out = process::run(upgrade(&db, None), KillAt::Never);
    assert_eq!(out.code, Some(0), "the rerun: {}", out.describe());
    let status = invariants::usable(&db, reference::ferry(&db).command()).unwrap();
    let problems = invariants::at_heads(&status, admin.as_mut(), true);
    assert!(problems.is_empty(), "{problems:#?}");
    let built = admin.indexes(table).unwrap();
    let built = built.iter().find(|i| i.name == index).expect("the index");
    assert!(
        !built.unique && built.columns == ["collection_id"],
        "{built:?}"
    );
}

#[test]
fn sqlite_locked_by_another_process_mid_step() {
    let maker = V1Maker::new(Backend::Sqlite, "faults_locked", N, 7);
    let (db, before) = maker.make().unwrap();
    let path = reference::sqlite_path(&db);
    let cause = "database is locked by another process";
    // A reader's open transaction: Ferry can still begin its batches, but not commit
    // them (committing writes the file, which waits for readers to finish).
    let reader = Reader::open(&path);
    // The reader lets go while Ferry still waits to record the failure: recorded.
    let mut cmd = to_v2(&db);
    cmd.env("FERRY_SQLITE_BUSY_TIMEOUT_MS", "2000");
    let mut ferry = Running::start(cmd);
    ferry.wait_for_event(Duration::from_secs(60), |e| batch_committed(e, 3));
    reader.hold();
    // Ferry's batch gives up committing after 2 s; recording the failure waits up to 2 s more.
    std::thread::sleep(Duration::from_secs(3));
    reader.release();
    let out = ferry.finish();
    let view = failed_for_the_database(&db, &before, &out, MAP_STEP, cause);
    recorded(&view, UUID_REVISION, MAP_STEP, cause);
    let kept = batches_kept(&view);
    assert!(kept >= 3, "{kept}");

    // The reader holds on until Ferry gives up: the failure cannot be recorded,
    // Ferry says so, and the ledger still tells what was committed.
    let mut cmd = to_v2(&db);
    cmd.env("FERRY_SQLITE_BUSY_TIMEOUT_MS", "300");
    let mut ferry = Running::start(cmd);
    ferry.wait_for_event(Duration::from_secs(60), |e| {
        batch_committed(e, kept as u64 + 1)
    });
    reader.hold();
    let out = ferry.finish();
    reader.release();
    let view = failed_for_the_database(&db, &before, &out, MAP_STEP, cause);
    assert!(
        says(&out.stderr, "could not be recorded in the ledger"),
        "{}",
        out.describe()
    );
    assert_eq!(view.state(UUID_REVISION), Some(RevisionState::Running));
    let kept = batches_kept(&view);
    resumes_to_v2(&db, &before, to_v2(&db), kept);
}

/// Another process's connection to a SQLite file, whose open read transaction keeps
/// Ferry from committing (committing writes the file, which waits for readers).
struct Reader(rusqlite::Connection);

impl Reader {
    fn open(path: &Path) -> Reader {
        let conn = rusqlite::Connection::open(path).unwrap();
        // The read lock is refused only while Ferry commits: retry at once rather than
        // through SQLite's busy wait, which backs off to 100 ms and would miss batches.
        conn.busy_timeout(Duration::ZERO).unwrap();
        Reader(conn)
    }

    fn hold(&self) {
        let since = Instant::now();
        loop {
            self.0.execute_batch("BEGIN").unwrap();
            let read = self
                .0
                .query_row("SELECT COUNT(*) FROM dataset_type", [], |r| {
                    r.get::<_, i64>(0)
                });
            if read.is_ok() {
                return;
            }
            self.0.execute_batch("ROLLBACK").unwrap();
            assert!(
                since.elapsed() < Duration::from_secs(30),
                "no read lock: {read:?}"
            );
        }
    }

    fn release(&self) {
        self.0.execute_batch("ROLLBACK").unwrap();
    }
}

/// Runs `cmd` as an unprivileged user when the tests run as root (root writes to
/// read-only files), after handing it `dir` and what is in it; otherwise as is.
fn unprivileged(cmd: &mut Command, dir: &Path) {
    use std::os::unix::process::CommandExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return;
    }
    const NOBODY: u32 = 65534;
    for entry in std::iter::once(dir.to_path_buf())
        .chain(std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()))
    {
        std::os::unix::fs::chown(&entry, Some(NOBODY), Some(NOBODY)).unwrap();
    }
    cmd.uid(NOBODY).gid(NOBODY);
}

fn chmod(path: &Path, mode: u32) {
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn sha256(path: &Path) -> String {
    use sha2::{Digest, Sha256};
    format!("{:x}", Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn sqlite_read_only_file_and_directory() {
    let maker = V1Maker::new(Backend::Sqlite, "faults_read_only", N, 7);
    let (db, before) = maker.make().unwrap();
    let path = reference::sqlite_path(&db);
    let dir = path.parent().unwrap().to_path_buf();

    // A read-only file: refused before anything runs, and the file is untouched.
    chmod(&path, 0o444);
    let bytes = sha256(&path);
    let mut cmd = to_v2(&db);
    unprivileged(&mut cmd, &dir);
    let out = process::run(cmd, KillAt::Never);
    assert_eq!(out.code, Some(2), "{}", out.describe());
    eprintln!("{}", out.stderr);
    assert!(says(&out.stderr, "read-only"), "{}", out.describe());
    assert_eq!(sha256(&path), bytes, "a read-only file is left as it was");
    chmod(&path, 0o644);

    // The directory turns read-only in the middle of the step: SQLite cannot create
    // its rollback journal, so the next batch fails and so does recording that.
    let mut cmd = to_v2(&db);
    unprivileged(&mut cmd, &dir);
    let mut ferry = Running::start(cmd);
    ferry.wait_for_event(Duration::from_secs(60), |e| batch_committed(e, 3));
    chmod(&dir, 0o555);
    let out = ferry.finish();
    chmod(&dir, 0o755);
    eprintln!("{}", out.stderr);
    let view = failed_for_the_database(&db, &before, &out, MAP_STEP, "directory writable");
    assert!(
        says(&out.stderr, "could not be recorded in the ledger"),
        "{}",
        out.describe()
    );
    let kept = batches_kept(&view);
    assert!(kept >= 3, "{kept}");
    let mut cmd = to_v2(&db);
    unprivileged(&mut cmd, &dir);
    resumes_to_v2(&db, &before, cmd, kept);
}
