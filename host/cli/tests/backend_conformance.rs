//! The backend trait's behaviours, written once and run on every database: each case
//! below becomes `CASE::sqlite` and `CASE::postgres` (the latter skipped, saying so, when
//! `FERRY_TEST_PG_URL` is not set). Only the trait is used (`ferry::backend::connect`),
//! so a case that passes here holds for whatever sits above the trait.
//!
//! What only one database has (PostgreSQL's types, COPY and sessions; SQLite's table
//! rebuilds and file locks) stays in `pg_backend.rs` and `sqlite_backend.rs`.

mod common;

use std::time::Duration;

use common::fresh::FreshDb;
use ferry::backend::prelude::*;
use ferry::backend::{DbErrorKind, LockAttempt, LockHolder, LockState, Value};

/// Runs each case on a fresh SQLite file and on a fresh PostgreSQL schema.
macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                use super::*;

                #[test]
                fn sqlite() {
                    super::$case(&FreshDb::sqlite());
                }

                #[test]
                fn postgres() {
                    if let Some(db) = FreshDb::postgres(concat!(stringify!($case), "::postgres")) {
                        super::$case(&db);
                    }
                }
            }
        )*
    };
}

conformance!(
    transactions_commit_and_roll_back,
    bulk_insert_and_streaming_over_100k_rows,
    statement_timeout_interrupts_a_slow_query,
    the_lock_is_exclusive_and_reentrant,
    the_lock_state_is_read_without_taking_the_lock,
    a_failing_statement_names_its_sql,
);

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// The single integer `sql` returns.
fn count(db: &mut dyn Connection, sql: &str) -> i64 {
    match db.query(sql, &[]).unwrap().rows[0][0] {
        Value::Int(n) => n,
        ref v => panic!("not a count: {v:?}"),
    }
}

/// Was `sqlite_backend::transactions_commit_and_roll_back` and
/// `pg_backend::transactions_commit_and_roll_back`.
fn transactions_commit_and_roll_back(fresh: &FreshDb) {
    let mut db = fresh.connect();
    db.execute_batch("CREATE TABLE t (a INTEGER)").unwrap();
    assert!(!db.in_transaction());
    db.begin().unwrap();
    assert!(db.in_transaction());
    db.execute("INSERT INTO t VALUES (?)", &[Value::Int(1)])
        .unwrap();
    db.rollback().unwrap();
    assert!(!db.in_transaction());
    db.begin().unwrap();
    db.execute("INSERT INTO t VALUES (?)", &[Value::Int(2)])
        .unwrap();
    db.commit().unwrap();
    assert_eq!(count(db.as_mut(), "SELECT count(*) FROM t"), 1);
    let rows = db.query("SELECT a FROM t", &[]).unwrap();
    assert_eq!(rows.rows, vec![vec![Value::Int(2)]]);
}

/// Was `sqlite_backend::bulk_insert_and_streaming_over_100k_rows` and
/// `pg_backend::query_each_streams_and_stops_early` (and the malformed row of
/// `pg_backend::bulk_insert_copies_rows`).
fn bulk_insert_and_streaming_over_100k_rows(fresh: &FreshDb) {
    let mut db = fresh.connect();
    db.execute_batch("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT, u CHAR(32))")
        .unwrap();
    let columns = strings(&["id", "name", "u"]);
    let mut rows =
        (0..100_000i64).map(|i| vec![Value::Int(i), Value::Text(format!("n{i}")), Value::Null]);
    let n = db.bulk_insert("t", &columns, &mut rows).unwrap();
    assert_eq!(n, 100_000);
    assert!(!db.in_transaction());
    let mut sum = 0i64;
    let mut seen = 0u64;
    let handed = db
        .query_each(
            "SELECT id, name FROM t ORDER BY id",
            &[],
            &mut |cols, row| {
                assert_eq!(cols, ["id", "name"]);
                if let Value::Int(i) = row[0] {
                    sum += i;
                }
                seen += 1;
                Ok(true)
            },
        )
        .unwrap();
    assert_eq!((handed, seen), (100_000, 100_000));
    assert_eq!(sum, (0..100_000i64).sum::<i64>());
    // Parameters bind in a streamed query too.
    let below = db
        .query_each(
            "SELECT id FROM t WHERE id < ?",
            &[Value::Int(1000)],
            &mut |_, _| Ok(true),
        )
        .unwrap();
    assert_eq!(below, 1000);
    let stopped = db
        .query_each("SELECT id FROM t", &[], &mut |_, _| Ok(false))
        .unwrap();
    assert_eq!(stopped, 1);
    // The connection is still usable after stopping early.
    assert_eq!(count(db.as_mut(), "SELECT count(*) FROM t"), 100_000);
    // A row of the wrong width is an error.
    let mut bad = std::iter::once(vec![Value::Int(1)]);
    assert!(db.bulk_insert("t", &columns, &mut bad).is_err());
    assert!(!db.in_transaction());
    // A failing row inside the caller's transaction leaves the transaction to the caller.
    db.begin().unwrap();
    let mut dup = vec![
        vec![Value::Int(100_000), Value::Null, Value::Null],
        vec![Value::Int(1), Value::Null, Value::Null],
    ]
    .into_iter();
    assert!(db.bulk_insert("t", &columns, &mut dup).is_err());
    assert!(db.in_transaction());
    db.rollback().unwrap();
    assert_eq!(count(db.as_mut(), "SELECT count(*) FROM t"), 100_000);
}

/// Was `sqlite_backend::statement_timeout_interrupts_a_slow_query` (PostgreSQL's own
/// `pg_backend::statement_timeout_cancels` stays: it sleeps with `pg_sleep`).
fn statement_timeout_interrupts_a_slow_query(fresh: &FreshDb) {
    let mut db = fresh.connect();
    db.set_statement_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let slow =
        "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c";
    let started = std::time::Instant::now();
    match db.query(slow, &[]) {
        Err(e) if e.kind() == DbErrorKind::Timeout => {
            assert_eq!(e.timeout_limit(), Some(Duration::from_millis(200)));
            assert_eq!(e.sql(), Some(slow));
        }
        other => panic!("{other:?}"),
    }
    assert!(started.elapsed() < Duration::from_secs(5));
    // The deadline restarts for every statement.
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        count(
            db.as_mut(),
            "SELECT count(*) FROM (WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL \
             SELECT x + 1 FROM c WHERE x < 1000) SELECT x FROM c) AS thousand"
        ),
        1000
    );
    db.set_statement_timeout(None).unwrap();
    assert_eq!(count(db.as_mut(), "SELECT 5"), 5);
}

/// The part both lock tests share: `sqlite_backend::the_lock_is_seen_by_a_second_
/// connection_with_its_holder` and `pg_backend::lock_is_exclusive_per_schema_and_names_
/// its_holder` keep what the holder record looks like on each database.
fn the_lock_is_exclusive_and_reentrant(fresh: &FreshDb) {
    let holder = LockHolder {
        host: "h".into(),
        pid: 42,
        user: "u".into(),
        since: 1_700_000_000,
    };
    let mut first = fresh.connect();
    let mut second = fresh.connect();
    assert_eq!(first.try_lock(&holder).unwrap(), LockAttempt::Acquired);
    assert_eq!(first.try_lock(&holder).unwrap(), LockAttempt::Acquired);
    match second.try_lock(&holder).unwrap() {
        LockAttempt::HeldBy(Some(_)) => {}
        other => panic!(
            "[{}] expected the lock held by the first connection, got {other:?}",
            fresh.backend.name()
        ),
    }
    first.unlock().unwrap();
    assert_eq!(second.try_lock(&holder).unwrap(), LockAttempt::Acquired);
    second.unlock().unwrap();
    assert_eq!(first.try_lock(&holder).unwrap(), LockAttempt::Acquired);
    first.unlock().unwrap();
}

/// `lock_state` names the holder without taking the lock: the holder keeps it, and a
/// free lock stays free for a migrator starting after the look.
fn the_lock_state_is_read_without_taking_the_lock(fresh: &FreshDb) {
    let holder = LockHolder {
        host: "h".into(),
        pid: 42,
        user: "u".into(),
        since: 1_700_000_000,
    };
    let mut first = fresh.connect();
    let mut looker = fresh.connect();
    let mut third = fresh.connect();
    let name = fresh.backend.name();
    assert_eq!(looker.lock_state().unwrap(), LockState::Free, "[{name}]");
    // The look took nothing: another connection takes the lock at once.
    assert_eq!(first.try_lock(&holder).unwrap(), LockAttempt::Acquired);
    for _ in 0..2 {
        match looker.lock_state().unwrap() {
            LockState::Held(Some(_)) => {}
            other => panic!("[{name}] expected the lock seen held, got {other:?}"),
        }
    }
    // The holder still holds it: a third connection cannot take it...
    match third.try_lock(&holder).unwrap() {
        LockAttempt::HeldBy(_) => {}
        other => panic!("[{name}] the look disturbed the holder: {other:?}"),
    }
    // ...and the holder sees it held too.
    assert!(
        matches!(first.lock_state().unwrap(), LockState::Held(_)),
        "[{name}]"
    );
    first.unlock().unwrap();
    assert_eq!(looker.lock_state().unwrap(), LockState::Free, "[{name}]");
    assert_eq!(third.try_lock(&holder).unwrap(), LockAttempt::Acquired);
    third.unlock().unwrap();
}

/// The part both value tests share (`sqlite_backend::values_round_trip_and_errors_name_
/// the_statement` and `pg_backend::values_round_trip` keep their database's wording): a
/// statement the database refuses is a statement error that carries the statement.
fn a_failing_statement_names_its_sql(fresh: &FreshDb) {
    let mut db = fresh.connect();
    let sql = "INSERT INTO nowhere VALUES (1)";
    match db.execute(sql, &[]) {
        Err(e) if e.is_statement() => {
            assert!(!e.message().is_empty());
            assert_eq!(e.sql(), Some(sql));
        }
        other => panic!("[{}] {other:?}", fresh.backend.name()),
    }
    // The connection is still usable, and no transaction was left open.
    assert!(!db.in_transaction());
    assert_eq!(count(db.as_mut(), "SELECT 5"), 5);
}
