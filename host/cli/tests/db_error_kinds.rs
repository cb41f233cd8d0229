//! Every backend classifies its failures once, into a `DbErrorKind` with the database's
//! own code (SQLSTATE on PostgreSQL, the extended result code on SQLite) and the
//! driver's error as source: provoked here on real databases, a SQLite file and a fresh
//! PostgreSQL schema.

mod common;

use std::error::Error as _;
use std::time::Duration;

use common::{for_each_backend, Backend, TestDb};
use ferry::backend::postgres::PgConnection;
use ferry::backend::prelude::*;
use ferry::backend::sqlite::SqliteConnection;
use ferry::backend::{Connection, DbError, DbErrorKind, DbUrl, Value};

/// The expected code: the SQLSTATE on PostgreSQL, the extended result code on SQLite.
fn expect(db: &TestDb, e: &DbError, kind: DbErrorKind, sqlstate: &str, sqlite_code: i32) {
    assert_eq!(e.kind(), kind, "[{}] {e}", db.name());
    let code = match db.backend {
        Backend::Postgres => sqlstate.to_string(),
        Backend::Sqlite => sqlite_code.to_string(),
    };
    assert_eq!(e.code(), Some(code.as_str()), "[{}] {e}", db.name());
    assert!(
        e.source().is_some(),
        "[{}] the driver's error is kept",
        db.name()
    );
}

fn with_tables(db: &TestDb) -> Box<dyn Connection> {
    let mut conn = db.connect();
    conn.execute_batch(
        "CREATE TABLE parent (id INTEGER PRIMARY KEY, code VARCHAR(8) UNIQUE);
         CREATE TABLE child (id INTEGER PRIMARY KEY, parent_id INTEGER REFERENCES parent (id));
         INSERT INTO parent (id, code) VALUES (1, 'a');",
    )
    .unwrap();
    conn
}

#[test]
fn unique_violations_are_classified() {
    for_each_backend("unique_violations_are_classified", |db| {
        let mut conn = with_tables(db);
        let e = conn
            .execute("INSERT INTO parent (id, code) VALUES (1, 'b')", &[])
            .unwrap_err();
        expect(
            db,
            &e,
            DbErrorKind::UniqueViolation,
            "23505",
            rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY,
        );
        // The text users see is unchanged: the statement is still named.
        assert!(
            e.to_string().contains("in statement: INSERT INTO parent"),
            "{e}"
        );
        let e = conn
            .execute(
                "INSERT INTO parent (id, code) VALUES (?, ?)",
                &[Value::Int(2), Value::Text("a".into())],
            )
            .unwrap_err();
        expect(
            db,
            &e,
            DbErrorKind::UniqueViolation,
            "23505",
            rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE,
        );
    });
}

#[test]
fn foreign_key_violations_are_classified() {
    for_each_backend("foreign_key_violations_are_classified", |db| {
        let mut conn = with_tables(db);
        let e = conn
            .execute("INSERT INTO child (id, parent_id) VALUES (1, 99)", &[])
            .unwrap_err();
        expect(
            db,
            &e,
            DbErrorKind::ForeignKeyViolation,
            "23503",
            rusqlite::ffi::SQLITE_CONSTRAINT_FOREIGNKEY,
        );
        // A NOT NULL violation is a constraint too, but neither of these kinds.
        conn.execute_batch("CREATE TABLE strict (x INTEGER NOT NULL)")
            .unwrap();
        let e = conn
            .execute("INSERT INTO strict (x) VALUES (NULL)", &[])
            .unwrap_err();
        expect(
            db,
            &e,
            DbErrorKind::Other,
            "23502",
            rusqlite::ffi::SQLITE_CONSTRAINT_NOTNULL,
        );
    });
}

#[test]
fn statement_timeouts_are_classified() {
    for_each_backend("statement_timeouts_are_classified", |db| {
        let mut conn = db.connect();
        conn.set_statement_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let slow = match db.backend {
            Backend::Postgres => "SELECT CAST(pg_sleep(5) AS TEXT)",
            Backend::Sqlite => {
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT max(x) FROM c"
            }
        };
        let e = conn.query(slow, &[]).unwrap_err();
        expect(
            db,
            &e,
            DbErrorKind::Timeout,
            "57014",
            rusqlite::ffi::SQLITE_INTERRUPT,
        );
        assert_eq!(e.timeout_limit(), Some(Duration::from_millis(200)));
        assert!(e.to_string().starts_with("statement cancelled"), "{e}");
    });
}

#[test]
fn a_missing_sqlite_file_is_a_missing_database() {
    let dir = tempfile::tempdir().unwrap();
    let e = SqliteConnection::open_path_read_only(&dir.path().join("absent.sqlite"))
        .err()
        .expect("a missing file does not open read-only");
    assert_eq!(e.kind(), DbErrorKind::MissingDatabase, "{e}");
    assert!(e.is_connect(), "{e}");
    assert!(e.to_string().contains("the file does not exist"), "{e}");
    let e = SqliteConnection::open_path(&dir.path().join("no_dir").join("x.sqlite"))
        .err()
        .expect("a missing directory");
    assert_eq!(e.kind(), DbErrorKind::MissingDatabase, "{e}");
}

#[test]
fn writing_to_a_read_only_sqlite_file_is_permission_denied() {
    let db = TestDb::sqlite();
    db.connect()
        .execute_batch("CREATE TABLE t (x INTEGER)")
        .unwrap();
    let path = db.dir().join("repo.sqlite");
    let mut conn = SqliteConnection::open_path_read_only(&path).unwrap();
    let e = conn.execute("INSERT INTO t VALUES (1)", &[]).unwrap_err();
    assert_eq!(e.kind(), DbErrorKind::PermissionDenied, "{e}");
    assert_eq!(
        e.code(),
        Some(rusqlite::ffi::SQLITE_READONLY.to_string().as_str())
    );
}

#[test]
fn a_locked_sqlite_file_is_busy() {
    let db = TestDb::sqlite();
    let mut a = db.connect();
    a.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
    a.begin().unwrap();
    a.execute("INSERT INTO t VALUES (1)", &[]).unwrap();
    let mut b = SqliteConnection::open_path(&db.dir().join("repo.sqlite")).unwrap();
    b.raw().busy_timeout(Duration::from_millis(50)).unwrap();
    let e = b.execute("INSERT INTO t VALUES (2)", &[]).unwrap_err();
    assert_eq!(e.kind(), DbErrorKind::Busy, "{e}");
    assert!(e.to_string().contains("locked by another process"), "{e}");
    a.rollback().unwrap();
}

/// The URL of the test server with its database name replaced by `database`.
fn with_database(base: &str, database: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, format!("?{q}")),
        None => (base, String::new()),
    };
    let server = head.rsplit_once('/').map_or(head, |(s, _)| s);
    format!("{server}/{database}{query}")
}

#[test]
fn a_missing_postgres_database_or_schema_is_a_missing_database() {
    let Some(db) = TestDb::postgres("a_missing_postgres_database_or_schema") else {
        return;
    };
    let base = common::pg_base_url().unwrap();
    let name = format!("ferry_absent_{}", uuid::Uuid::new_v4().simple());
    let url = DbUrl::parse(&with_database(&base, &name)).unwrap();
    let e = PgConnection::open(&url).err().expect("no such database");
    assert_eq!(e.kind(), DbErrorKind::MissingDatabase, "{e}");
    assert_eq!(e.code(), Some("3D000"), "{e}");
    assert!(e.is_connect() && e.source().is_some(), "{e}");
    assert!(e.to_string().contains(&name), "{e}");

    let sep = if base.contains('?') { '&' } else { '?' };
    let url = DbUrl::parse(&format!("{base}{sep}schema={name}")).unwrap();
    let e = PgConnection::open(&url).err().expect("no such schema");
    assert_eq!(e.kind(), DbErrorKind::MissingDatabase, "{e}");
    assert!(e.to_string().contains("does not exist"), "{e}");
    drop(db);
}

#[test]
fn a_postgres_role_without_privilege_is_permission_denied() {
    let Some(db) = TestDb::postgres("a_postgres_role_without_privilege") else {
        return;
    };
    let schema = db.schema().unwrap().to_string();
    let role = format!("ferry_kind_{}", uuid::Uuid::new_v4().simple());
    let mut conn = with_tables(&db);
    conn.execute_batch(&format!(
        "CREATE ROLE {role} NOLOGIN; GRANT USAGE ON SCHEMA \"{schema}\" TO {role}; \
         GRANT SELECT ON parent TO {role}"
    ))
    .unwrap();
    conn.execute_batch(&format!("SET ROLE {role}")).unwrap();
    let e = conn
        .execute("INSERT INTO parent (id) VALUES (7)", &[])
        .unwrap_err();
    conn.execute_batch("RESET ROLE").unwrap();
    conn.execute_batch(&format!("DROP OWNED BY {role}; DROP ROLE {role}"))
        .unwrap();
    assert_eq!(e.kind(), DbErrorKind::PermissionDenied, "{e}");
    assert_eq!(e.code(), Some("42501"), "{e}");
}

#[test]
fn a_terminated_postgres_backend_is_a_lost_connection() {
    let Some(db) = TestDb::postgres("a_terminated_postgres_backend") else {
        return;
    };
    let mut victim = db.connect();
    let pid = victim
        .query("SELECT pg_backend_pid()::int8", &[])
        .unwrap()
        .rows[0][0]
        .clone();
    let mut killer = db.connect();
    killer
        .execute("SELECT pg_terminate_backend(?::int4)", &[pid])
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let e = victim.query("SELECT 1", &[]).unwrap_err();
    assert_eq!(e.kind(), DbErrorKind::ConnectionLost, "{e}");
    assert!(
        e.to_string().starts_with("lost the database connection"),
        "{e}"
    );
    assert!(e.source().is_some(), "{e}");
    // The server says why before it closes the socket (admin_shutdown), when the
    // driver read that far.
    assert!(matches!(e.code(), None | Some("57P01")), "{e}");
}
