//! The per-database objects behind the backends (`backend::database`): whether a
//! database exists, opening without creating, creating, the read-only stand-in, the
//! superuser question and the dry run's scratch copy, on a SQLite file and a PostgreSQL
//! schema.

mod common;

use common::TestDb;
use ferry::backend::{database, DbUrl, ScratchCopy};

#[test]
fn a_sqlite_file_is_created_only_when_asked() {
    let db = TestDb::sqlite();
    let path = db.dir().join("repo.sqlite");
    let url = DbUrl::parse(db.url()).unwrap();
    let file = database(&url);
    assert_eq!(file.file(), Some(path.as_path()));
    assert!(!file.exists().unwrap());
    assert!(file.open_existing().unwrap().is_none());
    assert!(file.superuser().unwrap().is_none());
    let stand_in = file.open_read_only().unwrap();
    assert!(
        stand_in.describe().contains("repo.sqlite"),
        "{}",
        stand_in.describe()
    );
    drop(stand_in);
    assert!(!path.exists(), "reading created nothing");
    file.create().unwrap();
    assert!(path.is_file());
    assert!(file.exists().unwrap());
    assert!(file.open_existing().unwrap().is_some());
}

#[test]
fn a_postgres_schema_is_created_only_when_asked() {
    let Some(db) = TestDb::postgres("a_postgres_schema_is_created_only_when_asked") else {
        return;
    };
    let url = DbUrl::parse(db.url()).unwrap();
    let schema_db = database(&url);
    assert!(schema_db.exists().unwrap());
    assert!(schema_db.file().is_none());
    // The test server's role is a superuser (trust authentication as postgres).
    let (role, place) = schema_db.superuser().unwrap().expect("a superuser");
    assert_eq!(role, "postgres");
    assert!(place.contains("127.0.0.1"), "{place}");

    let base = common::pg_base_url().unwrap();
    let sep = if base.contains('?') { '&' } else { '?' };
    let schema = format!("ferry_obj_{}", uuid::Uuid::new_v4().simple());
    let missing = DbUrl::parse(&format!("{base}{sep}schema={schema}")).unwrap();
    let missing_db = database(&missing);
    assert!(!missing_db.exists().unwrap());
    assert!(missing_db.open_existing().unwrap().is_none());
    assert!(
        missing_db.superuser().unwrap().is_none(),
        "nothing created to ask"
    );
    missing_db.create().unwrap();
    let created = missing_db.exists().unwrap();
    db.connect()
        .execute_batch(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
        .unwrap();
    assert!(created);
}

#[test]
fn a_scratch_copy_is_named_after_its_database_and_removed_when_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let scratch = ScratchCopy::beside(Some(&dir.path().join("repo.sqlite")));
    let path = scratch.path().to_path_buf();
    assert!(path.to_string_lossy().ends_with("-repo.sqlite"), "{path:?}");
    assert_eq!(scratch.url(), DbUrl::Sqlite { path: path.clone() });
    // A copy opened by URL, with the lock file Ferry keeps beside it.
    let url = scratch.url();
    let mut conn = ferry::backend::connect(&url).unwrap();
    conn.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
    drop(conn);
    let lock = std::path::PathBuf::from(format!("{}.ferry-lock", path.display()));
    std::fs::write(&lock, b"").unwrap();
    assert!(path.is_file());
    drop(scratch);
    assert!(!path.exists() && !lock.exists());
    assert!(ScratchCopy::beside(None)
        .path()
        .to_string_lossy()
        .ends_with("-repo"));
}
