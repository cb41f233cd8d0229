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
use ferry::backend::{
    ColumnDef, DbErrorKind, ForeignKeyDef, KeyGenerator, LockAttempt, LockHolder, LockState,
    SchemaChange, TableDef, Value,
};

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
    key_generators_are_reported_and_advanced_past_a_load,
    a_reported_key_generator_predicts_the_next_key,
    uuid_columns_have_the_backend_type_and_stored_form,
    foreign_keys_refuse_an_orphan_whenever_a_bulk_load_checks_them,
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

fn column(name: &str, data_type: &str, nullable: bool) -> ColumnDef {
    ColumnDef {
        name: name.into(),
        data_type: data_type.into(),
        nullable,
        default: None,
        auto_increment: false,
    }
}

fn table(name: &str, columns: Vec<ColumnDef>, foreign_keys: Vec<ForeignKeyDef>) -> TableDef {
    TableDef {
        name: name.into(),
        primary_key: Some((format!("{name}_pkey"), vec![columns[0].name.clone()])),
        columns,
        unique: Vec::new(),
        foreign_keys,
    }
}

/// The largest `id` of `table`.
fn max_id(db: &mut dyn Connection, table: &str) -> i64 {
    count(db, &format!("SELECT MAX(id) FROM {table}"))
}

/// A portable auto-increment key is reported as a generator that never reuses an id (an
/// identity with its sequence, owned by the column; an AUTOINCREMENT counter), a plain
/// key as none. After rows are loaded with explicit ids, advancing the generator makes
/// the next insert get one past the largest id, and a second advance after the last
/// rows are deleted does not move it back. This is what the workload generator relies on
/// after its bulk load.
fn key_generators_are_reported_and_advanced_past_a_load(fresh: &FreshDb) {
    let mut db = fresh.connect();
    let mut id = column("id", "BIGINT", false);
    id.auto_increment = true;
    db.apply_schema_change(&SchemaChange::CreateTable(table(
        "parent",
        vec![id, column("v", "TEXT", true)],
        Vec::new(),
    )))
    .unwrap();
    db.apply_schema_change(&SchemaChange::CreateTable(table(
        "plain",
        vec![column("id", "BIGINT", false), column("v", "TEXT", true)],
        Vec::new(),
    )))
    .unwrap();

    assert_eq!(db.key_generators("plain").unwrap(), vec![]);
    let generators = db.key_generators("parent").unwrap();
    assert_eq!(generators.len(), 1, "{generators:?}");
    let (name, generator) = &generators[0];
    assert_eq!(name, "id");
    let sequences = db.sequences().unwrap();
    match generator {
        KeyGenerator::Identity { sequence } => {
            let owned = sequences.iter().find(|s| &s.name == sequence);
            assert_eq!(
                owned.and_then(|s| s.owner.clone()),
                Some(("parent".to_string(), "id".to_string())),
                "{sequences:?}"
            );
        }
        KeyGenerator::Autoincrement { last } => assert_eq!(*last, None),
        other => panic!("an auto-increment key reported as {other:?}"),
    }
    assert!(sequences.iter().all(|s| s.owner.is_some()), "{sequences:?}");

    db.begin().unwrap();
    let mut rows = (1..=100i64).map(|i| vec![Value::Int(i), Value::Text(format!("v{i}"))]);
    db.bulk_insert("parent", &strings(&["id", "v"]), &mut rows)
        .unwrap();
    db.advance_key_generator("parent", "id").unwrap();
    db.advance_key_generator("plain", "id").unwrap();
    db.commit().unwrap();
    db.refresh_statistics("parent").unwrap();
    db.execute("INSERT INTO parent (v) VALUES ('next')", &[])
        .unwrap();
    assert_eq!(max_id(db.as_mut(), "parent"), 101);
    if let [(_, KeyGenerator::Autoincrement { last })] =
        db.key_generators("parent").unwrap().as_slice()
    {
        assert_eq!(*last, Some(101));
    }

    // Never back: the ids of deleted rows are not handed out again.
    db.execute("DELETE FROM parent WHERE id > 50", &[]).unwrap();
    db.advance_key_generator("parent", "id").unwrap();
    db.execute("INSERT INTO parent (v) VALUES ('after')", &[])
        .unwrap();
    assert_eq!(max_id(db.as_mut(), "parent"), 102);
    assert_eq!(count(db.as_mut(), "SELECT COUNT(*) FROM parent"), 51);
}

/// `id INTEGER PRIMARY KEY` means a row id on one database and a plain key on another;
/// whatever generator the backend reports must predict what an insert leaving the key
/// out (or setting it to NULL) does.
fn a_reported_key_generator_predicts_the_next_key(fresh: &FreshDb) {
    let mut db = fresh.connect();
    db.execute_batch("CREATE TABLE r (id INTEGER PRIMARY KEY, v TEXT)")
        .unwrap();
    for i in 1..=3 {
        db.execute("INSERT INTO r (id, v) VALUES (?, 'x')", &[Value::Int(i)])
            .unwrap();
    }
    db.execute("DELETE FROM r WHERE id = 3", &[]).unwrap();
    let generators = db.key_generators("r").unwrap();
    let generator = generators
        .iter()
        .find(|(c, _)| c == "id")
        .map(|(_, g)| g.clone());
    let left_out = db.execute("INSERT INTO r (v) VALUES ('left out')", &[]);
    let null = db.execute("INSERT INTO r (id, v) VALUES (NULL, 'null')", &[]);
    match generator {
        None => {
            assert!(left_out.is_err() && null.is_err(), "{left_out:?} {null:?}");
            assert_eq!(max_id(db.as_mut(), "r"), 2);
        }
        Some(KeyGenerator::RowId) => {
            left_out.unwrap();
            null.unwrap();
            // The id of the deleted last row is handed out again, then the next one.
            let ids = db.query("SELECT id FROM r ORDER BY id", &[]).unwrap();
            assert_eq!(
                ids.rows,
                (1..=4).map(|i| vec![Value::Int(i)]).collect::<Vec<_>>()
            );
            assert!(KeyGenerator::RowId.replaces_null());
        }
        Some(other) => panic!("INTEGER PRIMARY KEY reported as {other:?}"),
    }
}

/// A portable `UUID` column is declared with the type the backend names for it, and
/// every value bound as a UUID is stored in the backend's form; NULL, and whatever
/// else the column accepts, is counted as not a UUID.
fn uuid_columns_have_the_backend_type_and_stored_form(fresh: &FreshDb) {
    let mut db = fresh.connect();
    db.apply_schema_change(&SchemaChange::CreateTable(table(
        "u",
        vec![column("id", "BIGINT", false), column("u", "UUID", true)],
        Vec::new(),
    )))
    .unwrap();
    let squeezed = |t: &str| t.replace(' ', "").to_lowercase();
    let declared = db.columns("u").unwrap()[1].data_type.clone();
    assert_eq!(squeezed(&declared), squeezed(&db.column_type("UUID")));
    assert_ne!(squeezed(&db.column_type("UUID")), "bigint");
    assert_eq!(squeezed(&db.column_type("BIGINT")), "bigint");

    for i in 1..=3u128 {
        db.execute(
            "INSERT INTO u (id, u) VALUES (?, ?)",
            &[
                Value::Int(i as i64),
                Value::Uuid(uuid::Uuid::from_u128(i << 100 | 0xabc)),
            ],
        )
        .unwrap();
    }
    assert_eq!(db.non_uuid_values("u", "u").unwrap(), 0);
    db.execute("INSERT INTO u (id, u) VALUES (4, NULL)", &[])
        .unwrap();
    assert_eq!(db.non_uuid_values("u", "u").unwrap(), 1);
    // Text the column may accept (or refuse, or take as a UUID): lowercase 32-hex is
    // the stored form on a database without a UUID type; uppercase and prose are not.
    for (id, text) in [
        (5, "not a uuid"),
        (6, "0000000000000000000000000000ABCD"),
        (7, "0000000000000000000000000000abcd"),
    ] {
        let _ = db.execute(
            "INSERT INTO u (id, u) VALUES (?, ?)",
            &[Value::Int(id), Value::Text(text.into())],
        );
    }
    let stored = db.query("SELECT u FROM u", &[]).unwrap();
    let not_uuids = stored
        .rows
        .iter()
        .filter(|r| match &r[0] {
            Value::Uuid(_) => false,
            Value::Text(t) => {
                uuid::Uuid::try_parse(t)
                    .ok()
                    .map(|u| u.simple().to_string())
                    != Some(t.clone())
            }
            _ => true,
        })
        .count() as u64;
    assert!(not_uuids >= 1, "{stored:?}");
    assert_eq!(
        db.non_uuid_values("u", "u").unwrap(),
        not_uuids,
        "{stored:?}"
    );
    // No integer is a UUID.
    let rows = count(db.as_mut(), "SELECT COUNT(*) FROM u") as u64;
    assert_eq!(db.non_uuid_values("u", "id").unwrap(), rows);
    let read = db.query("SELECT u FROM u WHERE id = 1", &[]).unwrap();
    let expected = uuid::Uuid::from_u128(1 << 100 | 0xabc);
    assert!(
        matches!(&read.rows[0][0], Value::Uuid(u) if *u == expected)
            || read.rows[0][0] == Value::Text(expected.simple().to_string()),
        "{:?}",
        read.rows[0][0]
    );
}

/// However a backend prefers to load rows under foreign keys (checked row by row, or
/// the keys dropped and added back after the load), an orphan row is refused, and the
/// keys afterwards are the keys before.
fn foreign_keys_refuse_an_orphan_whenever_a_bulk_load_checks_them(fresh: &FreshDb) {
    let mut db = fresh.connect();
    let key = ForeignKeyDef {
        name: "child_fkey_parent".into(),
        columns: strings(&["parent_id"]),
        referenced_table: "parent".into(),
        referenced_columns: strings(&["id"]),
        on_delete: Some("CASCADE".into()),
    };
    db.apply_schema_change(&SchemaChange::CreateTable(table(
        "parent",
        vec![column("id", "BIGINT", false)],
        Vec::new(),
    )))
    .unwrap();
    db.apply_schema_change(&SchemaChange::CreateTable(table(
        "child",
        vec![
            column("id", "BIGINT", false),
            column("parent_id", "BIGINT", false),
        ],
        vec![key.clone()],
    )))
    .unwrap();
    let before = db.foreign_keys("child").unwrap();
    let columns = strings(&["id", "parent_id"]);

    let load = |db: &mut dyn Connection, orphan: bool| -> Result<(), ferry::backend::DbError> {
        db.begin()?;
        let result = (|| {
            let suspend = db.add_foreign_keys_after_bulk_load();
            if suspend {
                db.apply_schema_change(&SchemaChange::DropConstraint {
                    table: "child".into(),
                    name: key.name.clone(),
                })?;
            }
            let mut parents = (1..=10i64).map(|i| vec![Value::Int(i)]);
            db.bulk_insert("parent", &strings(&["id"]), &mut parents)?;
            let last = if orphan { 99 } else { 10 };
            let mut children = (1..=10i64)
                .map(|i| vec![Value::Int(i), Value::Int(if i == 10 { last } else { i })]);
            db.bulk_insert("child", &columns, &mut children)?;
            if suspend {
                db.apply_schema_change(&SchemaChange::AddForeignKey {
                    table: "child".into(),
                    key: key.clone(),
                })?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => db.commit(),
            Err(e) => {
                db.rollback()?;
                Err(e)
            }
        }
    };

    let err = load(db.as_mut(), true).unwrap_err();
    assert_eq!(err.kind(), DbErrorKind::ForeignKeyViolation, "{err}");
    assert_eq!(count(db.as_mut(), "SELECT COUNT(*) FROM child"), 0);
    assert_eq!(db.foreign_keys("child").unwrap(), before);
    load(db.as_mut(), false).unwrap();
    assert_eq!(count(db.as_mut(), "SELECT COUNT(*) FROM child"), 10);
    assert_eq!(db.foreign_keys("child").unwrap(), before);
}
