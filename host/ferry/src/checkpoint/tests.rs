//! The checkpoint engine without a script: against a real SQLite file and, when
//! `FERRY_TEST_PG_URL` is set, a fresh PostgreSQL schema.

use super::*;
use crate::backend::{connect, Connection, DbUrl, Value};
use crate::ledger;
use crate::plan::Direction;

/// A fresh database with a ledger: its connection, and what to drop afterwards.
struct Fresh {
    name: &'static str,
    conn: Box<dyn Connection>,
    /// The admin connection and the schema to drop (PostgreSQL).
    drop_schema: Option<(Box<dyn Connection>, String)>,
    _dir: tempfile::TempDir,
}

impl Drop for Fresh {
    fn drop(&mut self) {
        if let Some((admin, schema)) = &mut self.drop_schema {
            let _ = admin.execute_batch(&format!("DROP SCHEMA \"{schema}\" CASCADE"));
        }
    }
}

/// One fresh database per backend available, each with a ledger and a table
/// `t (id BIGINT PRIMARY KEY, n BIGINT)`.
fn databases() -> Vec<Fresh> {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite:{}", dir.path().join("repo.sqlite").display());
    let mut out = vec![Fresh {
        name: "sqlite",
        conn: connect(&DbUrl::parse(&url).unwrap()).expect("open sqlite"),
        drop_schema: None,
        _dir: dir,
    }];
    if let Ok(base) = std::env::var("FERRY_TEST_PG_URL") {
        let mut admin = connect(&DbUrl::parse(&base).expect("FERRY_TEST_PG_URL parses"))
            .unwrap_or_else(|e| panic!("FERRY_TEST_PG_URL is set but unusable: {e}"));
        let schema = format!("ferry_ck_{}", uuid::Uuid::new_v4().simple());
        admin
            .execute_batch(&format!("CREATE SCHEMA \"{schema}\""))
            .expect("create test schema");
        let sep = if base.contains('?') { '&' } else { '?' };
        let url = format!("{base}{sep}schema={schema}");
        out.push(Fresh {
            name: "postgres",
            conn: connect(&DbUrl::parse(&url).unwrap()).expect("open postgres"),
            drop_schema: Some((admin, schema)),
            _dir: tempfile::tempdir().expect("tempdir"),
        });
    } else {
        eprintln!("checkpoint tests: PostgreSQL part skipped, FERRY_TEST_PG_URL is not set");
    }
    for db in &mut out {
        ledger::ensure(db.conn.as_mut()).expect("ledger");
        db.conn
            .execute_batch("CREATE TABLE t (id BIGINT PRIMARY KEY, n BIGINT NOT NULL)")
            .expect("table t");
    }
    out
}

fn count(conn: &mut dyn Connection, sql: &str) -> i64 {
    match conn.query(sql, &[]).unwrap().rows[0][0] {
        Value::Int(n) => n,
        ref other => panic!("{sql}: {other:?}"),
    }
}

fn up(step: &str) -> StepKey {
    StepKey::new("r1", Direction::Upgrade, step)
}

/// Revision `r1` of tree `t`, as the ledger operations' tests record it.
fn r1_key() -> crate::ledger::RevisionKey<'static> {
    crate::ledger::RevisionKey {
        revision: "r1",
        tree: "t",
        version: "1",
        checksum: "c1",
    }
}

/// The migrator the ledger operations' tests record.
fn actor() -> crate::ledger::Actor {
    crate::ledger::Actor {
        host: "h".into(),
        username: "u".into(),
        pid: 42,
    }
}

fn done(rows: i64) -> Progress {
    Progress::Done {
        cursor: None,
        batches: 0,
        rows,
    }
}

#[test]
fn commit_writes_the_work_and_the_record_together() {
    for mut db in databases() {
        let conn = db.conn.as_mut();
        let mut tx = StepTx::begin(&mut *conn, up("fill"), Begin::Plain).unwrap();
        tx.run(|c| c.execute("INSERT INTO t (id, n) VALUES (1, 1), (2, 1)", &[]))
            .unwrap();
        tx.commit(done(2)).unwrap();
        assert!(!conn.in_transaction(), "{}", db.name);
        assert_eq!(count(conn, "SELECT COUNT(*) FROM t"), 2, "{}", db.name);
        let recorded = recorded_steps(conn, "r1", Direction::Upgrade).unwrap();
        assert!(recorded.done.contains("fill"), "{}: {recorded:?}", db.name);
        let rows: Vec<_> = ledger::steps(conn, "r1").unwrap();
        assert_eq!((rows.len(), rows[0].rows), (1, 2), "{}", db.name);
    }
}

#[test]
fn dropped_without_commit_leaves_neither_work_nor_record() {
    for mut db in databases() {
        let conn = db.conn.as_mut();
        {
            let mut tx = StepTx::begin(&mut *conn, up("fill"), Begin::Plain).unwrap();
            tx.run(|c| c.execute("INSERT INTO t (id, n) VALUES (1, 1)", &[]))
                .unwrap();
        }
        assert!(!conn.in_transaction(), "{}", db.name);
        assert_eq!(count(conn, "SELECT COUNT(*) FROM t"), 0, "{}", db.name);
        let recorded = recorded_steps(conn, "r1", Direction::Upgrade).unwrap();
        assert_eq!(recorded, RecordedSteps::default(), "{}", db.name);
    }
}

#[test]
fn a_failure_between_work_and_commit_leaves_neither() {
    for mut db in databases() {
        let conn = db.conn.as_mut();
        // The work fails half-way: the step's error drops the transaction.
        let failed = (|| -> Result<(), crate::backend::DbError> {
            let mut tx = StepTx::begin(&mut *conn, up("fill"), Begin::Plain)?;
            tx.run(|c| c.execute("INSERT INTO t (id, n) VALUES (1, 1)", &[]))?;
            tx.run(|c| c.execute("INSERT INTO t (id, n) VALUES (1, 2)", &[]))?;
            tx.commit(done(2))
        })();
        assert!(failed.is_err(), "{}: the duplicate key must fail", db.name);
        assert!(!conn.in_transaction(), "{}", db.name);
        assert_eq!(count(conn, "SELECT COUNT(*) FROM t"), 0, "{}", db.name);

        // The record cannot be written: the work does not commit alone.
        conn.execute_batch("DROP TABLE ferry_steps").unwrap();
        let mut tx = StepTx::begin(&mut *conn, up("fill"), Begin::Plain).unwrap();
        tx.run(|c| c.execute("INSERT INTO t (id, n) VALUES (1, 1)", &[]))
            .unwrap();
        assert!(tx.commit(done(1)).is_err(), "{}", db.name);
        assert!(!conn.in_transaction(), "{}", db.name);
        assert_eq!(count(conn, "SELECT COUNT(*) FROM t"), 0, "{}", db.name);
    }
}

#[test]
fn a_step_inside_an_open_transaction_leaves_its_end_to_the_owner() {
    for mut db in databases() {
        let conn = db.conn.as_mut();
        conn.begin().unwrap();
        let mut tx = StepTx::begin(&mut *conn, up("fill"), Begin::Plain).unwrap();
        tx.run(|c| c.execute("INSERT INTO t (id, n) VALUES (1, 1)", &[]))
            .unwrap();
        tx.commit(done(1)).unwrap();
        assert!(
            conn.in_transaction(),
            "{}: a dry run's one transaction stays open",
            db.name
        );
        assert!(recorded_steps(conn, "r1", Direction::Upgrade)
            .unwrap()
            .done
            .contains("fill"));
        conn.rollback().unwrap();
        assert_eq!(count(conn, "SELECT COUNT(*) FROM t"), 0, "{}", db.name);
        assert!(ledger::steps(conn, "r1").unwrap().is_empty(), "{}", db.name);
    }
}

#[test]
fn with_transaction_rolls_back_on_error_and_on_panic() {
    for mut db in databases() {
        let conn = db.conn.as_mut();
        let failed: Result<(), crate::backend::DbError> = with_transaction(conn, |c| {
            c.execute("INSERT INTO t (id, n) VALUES (1, 1)", &[])?;
            Err(crate::backend::DbError::other("refused"))
        });
        assert!(failed.is_err());
        assert!(!conn.in_transaction(), "{}", db.name);
        let panicked = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _: Result<(), crate::backend::DbError> = with_transaction(&mut *conn, |c| {
                c.execute("INSERT INTO t (id, n) VALUES (2, 1)", &[])?;
                panic!("the body panics");
            });
        }));
        assert!(panicked.is_err());
        assert!(!conn.in_transaction(), "{}", db.name);
        assert_eq!(count(conn, "SELECT COUNT(*) FROM t"), 0, "{}", db.name);
        with_transaction(conn, |c| {
            c.execute("INSERT INTO t (id, n) VALUES (3, 1)", &[])
        })
        .unwrap();
        assert_eq!(count(conn, "SELECT COUNT(*) FROM t"), 1, "{}", db.name);
    }
}

/// One batch of the walk over `t`: adds 1 to `n` of the rows after the cursor up to
/// `hi`, committed with the batch's record.
fn one_batch(conn: &mut dyn Connection, walker: &mut BatchWalker, hi: Value) {
    let lo = walker.after().clone();
    let mut tx = StepTx::begin(&mut *conn, up("walk"), Begin::Plain).unwrap();
    let rows = tx
        .run(|c| {
            c.execute(
                "UPDATE t SET n = n + 1 WHERE id > ? AND id <= ?",
                &[lo, hi.clone()],
            )
        })
        .unwrap();
    tx.commit(walker.advance(hi, rows as i64)).unwrap();
}

#[test]
fn the_batch_walker_resumes_after_the_stored_cursor() {
    for mut db in databases() {
        let conn = db.conn.as_mut();
        for id in 1..=25 {
            conn.execute("INSERT INTO t (id, n) VALUES (?, 0)", &[Value::Int(id)])
                .unwrap();
        }
        // The first run commits one batch and is "killed".
        let mut walker = BatchWalker::start(conn, "t", "id", 10, None)
            .unwrap()
            .unwrap();
        assert_eq!(walker.total_batches(conn).unwrap(), Some(3), "{}", db.name);
        let hi = walker.next_bound(conn).unwrap().expect("a first batch");
        assert_eq!(hi, Value::Int(10), "{}", db.name);
        one_batch(conn, &mut walker, hi);
        drop(walker);

        // The rerun starts after the stored cursor.
        let recorded = recorded_steps(conn, "r1", Direction::Upgrade).unwrap();
        let cursor = recorded.cursors.get("walk").expect("a stored cursor");
        assert_eq!((cursor.batches, cursor.rows), (1, 10), "{}", db.name);
        let mut book = StepBook::resuming(recorded.clone());
        let Entry::Run { resume } = book.enter("walk") else {
            panic!("{}: the step is not done", db.name)
        };
        let mut walker = BatchWalker::start(conn, "t", "id", 10, resume.as_ref())
            .unwrap()
            .unwrap();
        assert_eq!(walker.after(), &Value::Int(10), "{}", db.name);
        assert_eq!(walker.total_batches(conn).unwrap(), Some(3), "{}", db.name);
        let mut bounds = vec![];
        while let Some(hi) = walker.next_bound(conn).unwrap() {
            bounds.push(hi.clone());
            one_batch(conn, &mut walker, hi);
        }
        assert_eq!(bounds, vec![Value::Int(20), Value::Int(25)], "{}", db.name);
        StepTx::begin(&mut *conn, up("walk"), Begin::Plain)
            .unwrap()
            .commit(walker.finished())
            .unwrap();
        // Every row was processed exactly once.
        assert_eq!(
            count(conn, "SELECT COUNT(*) FROM t WHERE n = 1"),
            25,
            "{}",
            db.name
        );
        let recorded = recorded_steps(conn, "r1", Direction::Upgrade).unwrap();
        assert!(recorded.done.contains("walk"), "{}", db.name);
        let row = &ledger::steps(conn, "r1").unwrap()[0];
        assert_eq!((row.batches, row.rows), (3, 25), "{}", db.name);
    }
}

#[test]
fn upgrade_and_downgrade_step_keys_never_collide() {
    let upgrade = StepKey::new("r1", Direction::Upgrade, "fill");
    let downgrade = StepKey::new("r1", Direction::Downgrade, "fill");
    assert_ne!(upgrade.ledger_revision(), downgrade.ledger_revision());
    // The upgrade's key is the bare id, as ledgers written before keep it.
    assert_eq!(upgrade.ledger_revision(), "r1");
    for mut db in databases() {
        let conn = db.conn.as_mut();
        StepTx::begin(&mut *conn, downgrade.clone(), Begin::Plain)
            .unwrap()
            .commit(done(0))
            .unwrap();
        let up_steps = recorded_steps(conn, "r1", Direction::Upgrade).unwrap();
        assert!(up_steps.done.is_empty(), "{}: {up_steps:?}", db.name);
        let down_steps = recorded_steps(conn, "r1", Direction::Downgrade).unwrap();
        assert!(down_steps.done.contains("fill"), "{}", db.name);

        StepTx::begin(&mut *conn, upgrade.clone(), Begin::Plain)
            .unwrap()
            .commit(done(0))
            .unwrap();
        clear_steps(conn, "r1", Direction::Upgrade).unwrap();
        assert!(recorded_steps(conn, "r1", Direction::Upgrade)
            .unwrap()
            .done
            .is_empty());
        assert!(recorded_steps(conn, "r1", Direction::Downgrade)
            .unwrap()
            .done
            .contains("fill"));
        assert!(forget_step(conn, &downgrade).unwrap(), "{}", db.name);
        assert!(!forget_step(conn, &downgrade).unwrap(), "{}", db.name);
    }
}

#[test]
fn the_book_refuses_misuse_as_the_script_fault() {
    let mut book = StepBook::resuming(RecordedSteps::default());
    assert_eq!(book.before_statement(false), Ok(true));
    assert!(matches!(book.enter("a"), Entry::Run { resume: None }));
    assert_eq!(
        book.check_entry("b"),
        Err(Misuse::Nested {
            step: "b".into(),
            outer: "a".into()
        })
    );
    assert_eq!(book.before_statement(true), Ok(false));
    book.completed("a");
    assert_eq!(book.before_statement(true), Err(Misuse::WriteOutsideSteps));
    assert!(Misuse::WriteOutsideSteps
        .to_string()
        .contains("must do all its writing inside steps"));

    let mut book = StepBook::resuming(RecordedSteps::default());
    assert_eq!(book.before_statement(true), Ok(true));
    assert!(matches!(
        book.check_entry("a"),
        Err(Misuse::StepAfterImplicitWrites { .. })
    ));
}

#[test]
fn typed_revision_states_keep_the_stored_format() {
    use crate::ledger::{How, RevisionKey, RevisionState, Status};
    let key = RevisionKey {
        revision: "r1",
        tree: "t",
        version: "1",
        checksum: "c",
    };
    let cases = [
        (
            Status::Running,
            (RevisionState::Running, "upgrade", None, None),
        ),
        (
            Status::Failed {
                step: Some("fill"),
                error: "boom",
            },
            (RevisionState::Failed, "upgrade", Some("fill"), Some("boom")),
        ),
        (
            Status::Applied {
                how: How::StampForce,
            },
            (RevisionState::Applied, "stamp --force", None, None),
        ),
    ];
    for mut db in databases() {
        let conn = db.conn.as_mut();
        for (status, (state, how, step, error)) in cases {
            with_transaction(conn, |c| records::set_revision(c, &key, status)).unwrap();
            let r = &ledger::revisions(conn).unwrap()["r1"];
            assert_eq!(r.state, state, "{}", db.name);
            assert_eq!(r.how, how, "{}", db.name);
            assert_eq!(How::parse(&r.how).map(How::as_str), Some(how));
            assert_eq!(r.failed_step.as_deref(), step, "{}", db.name);
            assert_eq!(r.error.as_deref(), error, "{}", db.name);
        }
    }
}

#[test]
fn a_revisions_records_are_written_by_the_operation_named_for_them() {
    use crate::ledger::{How, RevisionState};
    use crate::revision_sources::{RevisionSources, SourceFile, SourceKind};
    let key = r1_key();
    let actor = actor();
    let sources = RevisionSources {
        files: vec![SourceFile {
            label: "root/r1.rhai".into(),
            path: "r1.rhai".into(),
            kind: SourceKind::Revision,
            checksum: "c1".into(),
            text: Some("fn upgrade(db) {}".into()),
        }],
    };
    let run = Run {
        started_ms: 1_000,
        finished_ms: 3_500,
        rows: 7,
        note: Some("allow-changed"),
    };
    for mut db in databases() {
        let conn = db.conn.as_mut();
        with_transaction(conn, |c| mark_running(c, &key)).unwrap();
        assert_eq!(
            ledger::revisions(conn).unwrap()["r1"].state,
            RevisionState::Running
        );
        StepTx::begin(&mut *conn, up("fill"), Begin::Plain)
            .unwrap()
            .commit(done(2))
            .unwrap();

        with_transaction(conn, |c| {
            record_failed(
                c,
                &key,
                &actor,
                Direction::Upgrade,
                Some("copy"),
                "boom",
                &run,
            )
        })
        .unwrap();
        let r = &ledger::revisions(conn).unwrap()["r1"];
        assert_eq!(r.state, RevisionState::Failed, "{}", db.name);
        assert_eq!(
            (r.failed_step.as_deref(), r.error.as_deref()),
            (Some("copy"), Some("boom")),
            "{}",
            db.name
        );
        let h = &ledger::history(conn, 1).unwrap()[0];
        assert_eq!(
            (h.direction.as_str(), h.outcome.as_str(), h.error.as_deref()),
            ("upgrade", "failed", Some("boom")),
            "{}",
            db.name
        );
        assert_eq!(
            (h.started_at, h.finished_at, h.duration_ms, h.rows),
            (1, 3, 2_500, 7),
            "{}",
            db.name
        );
        assert_eq!(
            (
                h.note.as_deref(),
                h.host.as_str(),
                h.username.as_str(),
                h.pid
            ),
            (Some("allow-changed"), "h", "u", 42),
            "{}",
            db.name
        );
        // A failed run keeps its committed steps for the rerun.
        assert!(recorded_steps(conn, "r1", Direction::Upgrade)
            .unwrap()
            .done
            .contains("fill"));

        with_transaction(conn, |c| record_upgraded(c, &key, &actor, &sources, &run)).unwrap();
        let r = &ledger::revisions(conn).unwrap()["r1"];
        assert_eq!(
            (r.state, r.how.as_str()),
            (RevisionState::Applied, "upgrade")
        );
        assert_eq!(
            r.deps_checksum,
            Some(sources.deps_checksum()),
            "{}",
            db.name
        );
        let files = ledger::sources_with_text(conn, "r1").unwrap();
        assert_eq!(files.len(), 1, "{}", db.name);
        assert_eq!(files[0].text.as_deref(), Some("fn upgrade(db) {}"));
        assert!(recorded_steps(conn, "r1", Direction::Upgrade)
            .unwrap()
            .done
            .is_empty());
        let h = &ledger::history(conn, 1).unwrap()[0];
        assert_eq!(
            (h.direction.as_str(), h.outcome.as_str()),
            ("upgrade", "applied")
        );

        // A failed downgrade leaves the record applied; a completed one removes it.
        with_transaction(conn, |c| {
            record_failed(c, &key, &actor, Direction::Downgrade, None, "no", &run)
        })
        .unwrap();
        assert_eq!(
            ledger::revisions(conn).unwrap()["r1"].state,
            RevisionState::Applied
        );
        let h = &ledger::history(conn, 1).unwrap()[0];
        assert_eq!(
            (h.direction.as_str(), h.outcome.as_str()),
            ("downgrade", "failed")
        );
        with_transaction(conn, |c| record_downgraded(c, &key, &actor, &run)).unwrap();
        assert!(!ledger::revisions(conn).unwrap().contains_key("r1"));
        assert!(ledger::sources_with_text(conn, "r1").unwrap().is_empty());

        // A stamp notes how; a reset forgets the named steps only.
        with_transaction(conn, |c| {
            record_stamp(c, &key, &actor, How::StampForce, 9_000)
        })
        .unwrap();
        let r = &ledger::revisions(conn).unwrap()["r1"];
        assert_eq!(
            (r.state, r.how.as_str()),
            (RevisionState::Applied, "stamp --force")
        );
        let h = &ledger::history(conn, 1).unwrap()[0];
        assert_eq!(
            (
                h.direction.as_str(),
                h.note.as_deref(),
                h.duration_ms,
                h.started_at
            ),
            ("stamp", Some("stamp --force"), 0, 9),
            "{}",
            db.name
        );
        for step in ["a", "b"] {
            StepTx::begin(&mut *conn, up(step), Begin::Plain)
                .unwrap()
                .commit(done(0))
                .unwrap();
        }
        with_transaction(conn, |c| {
            record_reset(c, &key, &actor, &["a".to_string()], 9_000, "reset: a")
        })
        .unwrap();
        let left = recorded_steps(conn, "r1", Direction::Upgrade).unwrap().done;
        assert_eq!(left.into_iter().collect::<Vec<_>>(), ["b"], "{}", db.name);
        let h = &ledger::history(conn, 1).unwrap()[0];
        assert_eq!(
            (h.direction.as_str(), h.note.as_deref()),
            ("reset", Some("reset: a"))
        );

        with_transaction(conn, |c| record_lock_holder(c, &actor, 77)).unwrap();
        let holder = ledger::lock_holder(conn).unwrap().expect("a holder");
        assert_eq!(
            (holder.host.as_str(), holder.pid, holder.since),
            ("h", 42, 77)
        );
        with_transaction(conn, clear_lock_holder).unwrap();
        assert_eq!(ledger::lock_holder(conn).unwrap(), None, "{}", db.name);
    }
}

#[test]
fn ledger_operations_roll_back_with_the_callers_transaction() {
    use crate::ledger::{How, RevisionKey};
    use crate::revision_sources::RevisionSources;
    let key = r1_key();
    let other = RevisionKey {
        revision: "r2",
        ..key
    };
    let actor = actor();
    let run = Run::instant(5_000, None);
    for mut db in databases() {
        let conn = db.conn.as_mut();
        // Ferry's other transactions: the caller fails after its records were written.
        let failed: Result<(), crate::backend::DbError> = with_transaction(conn, |c| {
            c.execute("INSERT INTO t (id, n) VALUES (1, 1)", &[])?;
            mark_running(c, &key)?;
            record_stamp(c, &other, &actor, How::Adopt, 5_000)?;
            record_lock_holder(c, &actor, 5)?;
            Err(crate::backend::DbError::other(
                "the caller fails afterwards",
            ))
        });
        assert!(failed.is_err(), "{}", db.name);
        assert!(!conn.in_transaction(), "{}", db.name);
        assert_eq!(count(conn, "SELECT COUNT(*) FROM t"), 0, "{}", db.name);
        assert!(ledger::revisions(conn).unwrap().is_empty(), "{}", db.name);
        assert!(ledger::history(conn, 0).unwrap().is_empty(), "{}", db.name);
        assert_eq!(ledger::lock_holder(conn).unwrap(), None, "{}", db.name);

        // A revision's own transaction (a dry run keeps it open to the end): its step
        // and its completion record go with the rollback, as do those of a failure.
        conn.begin().unwrap();
        mark_running(conn, &key).unwrap();
        let mut tx = StepTx::begin(&mut *conn, up("fill"), Begin::Plain).unwrap();
        tx.run(|c| c.execute("INSERT INTO t (id, n) VALUES (1, 1)", &[]))
            .unwrap();
        tx.commit(done(1)).unwrap();
        record_upgraded(conn, &key, &actor, &RevisionSources { files: vec![] }, &run).unwrap();
        record_failed(conn, &other, &actor, Direction::Upgrade, None, "boom", &run).unwrap();
        assert_eq!(ledger::revisions(conn).unwrap().len(), 2, "{}", db.name);
        conn.rollback().unwrap();
        assert_eq!(count(conn, "SELECT COUNT(*) FROM t"), 0, "{}", db.name);
        assert!(ledger::revisions(conn).unwrap().is_empty(), "{}", db.name);
        assert!(ledger::steps(conn, "r1").unwrap().is_empty(), "{}", db.name);
        assert!(ledger::history(conn, 0).unwrap().is_empty(), "{}", db.name);
    }
}

#[test]
fn accepting_and_moving_trees_write_what_they_say() {
    use crate::ledger::RevisionKey;
    use crate::revision_sources::{RevisionSources, SourceFile, SourceKind};
    let actor = actor();
    let file = |label: &str, kind, checksum: &str| SourceFile {
        label: label.into(),
        path: label.into(),
        kind,
        checksum: checksum.into(),
        text: Some(format!("// {checksum}")),
    };
    let moving = r1_key();
    let staying = RevisionKey {
        revision: "s1",
        tree: "s",
        version: "1",
        checksum: "d1",
    };
    let ran = RevisionSources {
        files: vec![
            file("root/r1.rhai", SourceKind::Revision, "c1"),
            file("root/lib/m.rhai", SourceKind::Module, "m1"),
        ],
    };
    let run = Run::instant(1_000, None);
    // Two fresh databases per backend: the trees' ledger and the one they move to.
    for (mut from, mut to) in databases().into_iter().zip(databases()) {
        let name = from.name;
        let conn = from.conn.as_mut();
        with_transaction(conn, |c| {
            record_upgraded(c, &moving, &actor, &ran, &run)?;
            record_upgraded(
                c,
                &staying,
                &actor,
                &RevisionSources { files: vec![] },
                &run,
            )
        })
        .unwrap();

        // `ferry accept`: the file and the module were edited since they ran.
        let edited = RevisionKey {
            checksum: "c2",
            ..moving
        };
        let now = RevisionSources {
            files: vec![
                file("root/r1.rhai", SourceKind::Revision, "c2"),
                file("root/lib/m.rhai", SourceKind::Module, "m2"),
            ],
        };
        with_transaction(conn, |c| {
            record_acceptance(c, &edited, &actor, &now, 2_000, "accepted: typo")
        })
        .unwrap();
        let r = &ledger::revisions(conn).unwrap()["r1"];
        assert_eq!(r.checksum, "c2", "{name}");
        assert_eq!(r.deps_checksum, Some(now.deps_checksum()), "{name}");
        assert_ne!(now.deps_checksum(), ran.deps_checksum());
        let files = ledger::sources_with_text(conn, "r1").unwrap();
        let checksums: Vec<_> = files.iter().map(|f| f.checksum.as_str()).collect();
        assert_eq!(checksums.len(), 2, "{name}: {files:?}");
        assert!(
            checksums.contains(&"m2") && !checksums.contains(&"m1"),
            "{name}"
        );
        let h = &ledger::history(conn, 1).unwrap()[0];
        assert_eq!(
            (h.direction.as_str(), h.note.as_deref(), h.checksum.as_str()),
            ("accept", Some("accepted: typo"), "c2"),
            "{name}"
        );

        // `ferry move-trees` tree t: copied as it is, noted, then forgotten here.
        let records: Vec<_> = ledger::revisions(conn)
            .unwrap()
            .into_values()
            .filter(|r| r.tree == "t")
            .collect();
        let sources: Vec<_> = records
            .iter()
            .map(|r| ledger::sources_with_text(conn, &r.revision).unwrap())
            .collect();
        let mut history: Vec<_> = ledger::history(conn, 0)
            .unwrap()
            .into_iter()
            .filter(|h| h.tree == "t")
            .collect();
        history.reverse();
        StepTx::begin(&mut *conn, up("left-over"), Begin::Plain)
            .unwrap()
            .commit(done(0))
            .unwrap();
        let target = to.conn.as_mut();
        with_transaction(target, |c| {
            copy_tree_records(c, &records, &sources, &history)?;
            record_move(c, &edited, &actor, 3_000, "moved from database a")
        })
        .unwrap();
        with_transaction(conn, |c| forget_tree(c, "t")).unwrap();

        assert_eq!(
            ledger::revisions(target).unwrap()["r1"],
            records[0],
            "{name}"
        );
        assert_eq!(ledger::sources_with_text(target, "r1").unwrap(), sources[0]);
        let copied = ledger::history(target, 0).unwrap();
        let (moved, before) = copied.split_first().expect("a move row");
        assert_eq!(
            (moved.direction.as_str(), moved.note.as_deref()),
            ("move", Some("moved from database a")),
            "{name}"
        );
        let strip =
            |h: &crate::ledger::HistoryEntry| crate::ledger::HistoryEntry { id: 0, ..h.clone() };
        let before: Vec<_> = before.iter().rev().map(strip).collect();
        assert_eq!(
            before,
            history.iter().map(strip).collect::<Vec<_>>(),
            "{name}"
        );

        let left = ledger::revisions(conn).unwrap();
        assert_eq!(left.keys().collect::<Vec<_>>(), ["s1"], "{name}");
        assert!(ledger::sources_with_text(conn, "r1").unwrap().is_empty());
        assert!(ledger::steps(conn, "r1").unwrap().is_empty(), "{name}");
        let kept = ledger::history(conn, 0).unwrap();
        assert!(kept.iter().all(|h| h.tree == "s"), "{name}: {kept:?}");
        assert_eq!(kept.len(), 1, "{name}");
        drop(to);
    }
}
