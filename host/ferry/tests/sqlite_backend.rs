//! The SQLite backend against real database files: what only SQLite has (table
//! rebuilds, file locks, its value mapping). What every backend does is tested once for
//! all in `backend_conformance.rs`.

use std::time::Duration;

use ferry::backend::prelude::*;
use ferry::backend::sqlite::SqliteConnection;
use ferry::backend::{
    ColumnDef, DbError, DbErrorKind, DbUrl, ForeignKeyDef, IndexDef, KeyGenerator, LockAttempt,
    LockHolder, SchemaChange, TableDef, Value,
};

fn open(dir: &tempfile::TempDir) -> SqliteConnection {
    SqliteConnection::open_path(&dir.path().join("repo.sqlite3")).expect("open")
}

fn col(name: &str, data_type: &str, nullable: bool) -> ColumnDef {
    ColumnDef {
        name: name.into(),
        data_type: data_type.into(),
        nullable,
        default: None,
        auto_increment: false,
    }
}

fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

fn fk(
    name: &str,
    columns: &[&str],
    table: &str,
    referenced: &[&str],
    on_delete: Option<&str>,
) -> ForeignKeyDef {
    ForeignKeyDef {
        name: name.into(),
        columns: strings(columns),
        referenced_table: table.into(),
        referenced_columns: strings(referenced),
        on_delete: on_delete.map(String::from),
    }
}

/// dataset(id auto-increment, run, label UNIQUE) ← tags(dataset_id FK CASCADE).
fn registry(db: &mut SqliteConnection) {
    let run = TableDef {
        name: "run".into(),
        columns: vec![col("id", "BIGINT", false)],
        primary_key: Some((String::new(), strings(&["id"]))),
        unique: vec![],
        foreign_keys: vec![],
    };
    let mut id = col("id", "BIGINT", false);
    id.auto_increment = true;
    let dataset = TableDef {
        name: "dataset".into(),
        columns: vec![
            id,
            col("run_id", "BIGINT", false),
            col("label", "VARCHAR(64)", true),
        ],
        primary_key: Some(("dataset_pkey".into(), strings(&["id"]))),
        unique: vec![("dataset_unq".into(), strings(&["run_id", "label"]))],
        foreign_keys: vec![fk(
            "dataset_fkey_run",
            &["run_id"],
            "run",
            &["id"],
            Some("CASCADE"),
        )],
    };
    let tags = TableDef {
        name: "tags".into(),
        columns: vec![
            col("dataset_id", "BIGINT", false),
            col("tag", "TEXT", false),
        ],
        primary_key: Some((String::new(), strings(&["dataset_id", "tag"]))),
        unique: vec![],
        foreign_keys: vec![fk(
            "tags_fkey_dataset",
            &["dataset_id"],
            "dataset",
            &["id"],
            Some("CASCADE"),
        )],
    };
    for t in [run, dataset, tags] {
        db.apply_schema_change(&SchemaChange::CreateTable(t))
            .unwrap();
    }
    db.apply_schema_change(&SchemaChange::AddIndex(IndexDef {
        name: "dataset_idx_run_id".into(),
        table: "dataset".into(),
        columns: strings(&["run_id"]),
        unique: false,
        concurrently: false,
        if_not_exists: false,
    }))
    .unwrap();
    db.execute("INSERT INTO run (id) VALUES (?)", &[Value::Int(1)])
        .unwrap();
    for i in 0..50 {
        db.execute(
            "INSERT INTO dataset (run_id, label) VALUES (?, ?)",
            &[Value::Int(1), Value::Text(format!("d{i}"))],
        )
        .unwrap();
        db.execute(
            "INSERT INTO tags (dataset_id, tag) VALUES (?, ?)",
            &[Value::Int(i + 1), Value::Text("t".into())],
        )
        .unwrap();
    }
}

fn count(db: &mut SqliteConnection, sql: &str) -> i64 {
    match db.query(sql, &[]).unwrap().rows[0][0] {
        Value::Int(n) => n,
        ref v => panic!("not a count: {v:?}"),
    }
}

#[test]
fn opens_through_connect_and_reports_missing_directory() {
    let dir = tempfile::tempdir().unwrap();
    let url = DbUrl::Sqlite {
        path: dir.path().join("new.sqlite3"),
    };
    let db = ferry::backend::connect(&url).unwrap();
    assert_eq!(db.dialect().name(), "sqlite");
    assert!(db.describe().contains("new.sqlite3"));
    let missing = dir.path().join("nope").join("x.sqlite3");
    match SqliteConnection::open_path(&missing) {
        Err(e) if e.is_connect() => assert!(e.url().is_some_and(|u| u.contains("nope")), "{e}"),
        other => panic!("expected a connect error, got {:?}", other.err()),
    }
}

#[test]
fn values_round_trip_and_errors_name_the_statement() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(&dir);
    db.execute_batch("CREATE TABLE v (a, b, c, d, e, f, g); CREATE TABLE w (x INTEGER)")
        .unwrap();
    let u = uuid::Uuid::new_v4();
    let params = [
        Value::Null,
        Value::Bool(true),
        Value::Int(-7),
        Value::Float(1.5),
        Value::Text("it's".into()),
        Value::Bytes(vec![0, 1, 2]),
        Value::Uuid(u),
    ];
    assert_eq!(
        db.execute("INSERT INTO v VALUES (?, ?, ?, ?, ?, ?, ?)", &params)
            .unwrap(),
        1
    );
    let rows = db.query("SELECT * FROM v", &[]).unwrap();
    assert_eq!(rows.columns, strings(&["a", "b", "c", "d", "e", "f", "g"]));
    assert_eq!(
        rows.rows[0],
        vec![
            Value::Null,
            Value::Int(1),
            Value::Int(-7),
            Value::Float(1.5),
            Value::Text("it's".into()),
            Value::Bytes(vec![0, 1, 2]),
            Value::Text(u.simple().to_string()),
        ]
    );
    let empty = db.query("SELECT x FROM w", &[]).unwrap();
    assert_eq!(empty.columns, strings(&["x"]));
    assert!(empty.rows.is_empty());
    match db.execute("INSERT INTO nowhere VALUES (1)", &[]) {
        Err(e) if e.is_statement() => {
            assert!(e.message().contains("no such table"), "{e}");
            assert_eq!(e.sql(), Some("INSERT INTO nowhere VALUES (1)"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_second_writer_is_told_the_database_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = open(&dir);
    a.execute_batch("CREATE TABLE t (x INTEGER)").unwrap();
    a.begin().unwrap();
    let mut b = open(&dir);
    b.raw().busy_timeout(Duration::from_millis(50)).unwrap();
    match b.begin() {
        Err(e) if e.is_statement() => {
            assert!(e.message().contains("locked by another process"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    a.rollback().unwrap();
}

#[test]
fn introspection_reports_named_keys_and_indexes() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(&dir);
    registry(&mut db);
    assert_eq!(
        db.tables("%").unwrap(),
        strings(&["dataset", "run", "tags"])
    );
    assert_eq!(db.tables("t_g%").unwrap(), strings(&["tags"]));
    assert!(db.table_exists("dataset").unwrap());
    assert!(!db.table_exists("data").unwrap());
    let cols = db.columns("dataset").unwrap();
    assert_eq!(
        cols.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["id", "run_id", "label"]
    );
    assert_eq!(cols[1].data_type, "bigint");
    assert_eq!(cols[2].data_type, "varchar(64)");
    assert!(!cols[1].nullable && cols[2].nullable);
    let pk = db.primary_key("dataset").unwrap().unwrap();
    assert_eq!(
        (pk.name.as_str(), pk.columns),
        ("dataset_pkey", strings(&["id"]))
    );
    let pk = db.primary_key("tags").unwrap().unwrap();
    assert_eq!(
        (pk.name.as_str(), pk.columns),
        ("tags_pkey", strings(&["dataset_id", "tag"]))
    );
    let unq = db.unique_constraints("dataset").unwrap();
    assert_eq!(unq.len(), 1);
    assert_eq!(
        (unq[0].name.as_str(), &unq[0].columns),
        ("dataset_unq", &strings(&["run_id", "label"]))
    );
    let fks = db.foreign_keys("tags").unwrap();
    assert_eq!(fks.len(), 1);
    assert_eq!(fks[0].name, "tags_fkey_dataset");
    assert_eq!(fks[0].referenced_columns, strings(&["id"]));
    assert_eq!(fks[0].on_delete, "CASCADE");
    let idx = db.indexes("dataset").unwrap();
    assert_eq!(idx.len(), 1);
    assert_eq!(
        (idx[0].name.as_str(), idx[0].unique),
        ("dataset_idx_run_id", false)
    );
    // Tables created by hand: names fall back to the convention.
    db.execute_batch(
        "CREATE TABLE plain (a INTEGER PRIMARY KEY, b TEXT UNIQUE, c INTEGER REFERENCES run)",
    )
    .unwrap();
    assert_eq!(db.primary_key("plain").unwrap().unwrap().name, "plain_pkey");
    assert_eq!(db.unique_constraints("plain").unwrap()[0].name, "plain_unq");
    let fk = &db.foreign_keys("plain").unwrap()[0];
    assert_eq!(
        (fk.name.as_str(), fk.on_delete.as_str()),
        ("plain_fkey_run", "NO ACTION")
    );
    assert_eq!(fk.referenced_columns, strings(&["id"]));
}

#[test]
fn alter_column_type_rebuild_keeps_rows_keys_indexes_and_referencing_tables() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(&dir);
    registry(&mut db);
    // dataset is referenced by tags (ON DELETE CASCADE) and references run.
    let ran = db
        .apply_schema_change(&SchemaChange::AlterColumnType {
            table: "dataset".into(),
            column: "label".into(),
            data_type: "TEXT".into(),
            using: Some("upper(label)".into()),
        })
        .unwrap();
    assert!(
        ran.iter()
            .any(|s| s.starts_with("CREATE TABLE \"_ferry_tmp_dataset\"")),
        "{ran:?}"
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM dataset"), 50);
    assert_eq!(
        count(
            &mut db,
            "SELECT count(*) FROM dataset WHERE label = 'D7' AND id = 8"
        ),
        1
    );
    assert_eq!(db.columns("dataset").unwrap()[2].data_type, "text");
    assert_eq!(
        db.primary_key("dataset").unwrap().unwrap().name,
        "dataset_pkey"
    );
    assert_eq!(
        db.unique_constraints("dataset").unwrap()[0].name,
        "dataset_unq"
    );
    let fks = db.foreign_keys("dataset").unwrap();
    assert_eq!(
        (fks[0].name.as_str(), fks[0].on_delete.as_str()),
        ("dataset_fkey_run", "CASCADE")
    );
    assert_eq!(db.indexes("dataset").unwrap()[0].name, "dataset_idx_run_id");
    assert!(db.tables("\\_ferry%").unwrap().is_empty());
    // Still auto-increment after the rebuild.
    db.execute("INSERT INTO dataset (run_id, label) VALUES (1, 'new')", &[])
        .unwrap();
    assert_eq!(
        count(&mut db, "SELECT id FROM dataset WHERE label = 'new'"),
        51
    );
    // The referencing table kept its foreign key and rows, and the cascades work.
    let child = &db.foreign_keys("tags").unwrap()[0];
    assert_eq!(
        (child.name.as_str(), child.on_delete.as_str()),
        ("tags_fkey_dataset", "CASCADE")
    );
    assert_eq!(count(&mut db, "SELECT count(*) FROM tags"), 50);
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM pragma_foreign_key_check"),
        0
    );
    db.execute(
        "DELETE FROM dataset WHERE label = ?",
        &[Value::Text("D3".into())],
    )
    .unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM tags"), 49);
    db.execute("DELETE FROM run", &[]).unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM dataset"), 0);
    assert_eq!(count(&mut db, "SELECT count(*) FROM tags"), 0);
}

#[test]
fn bigint_key_becomes_uuid_keeping_rows_and_names() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(&dir);
    registry(&mut db);
    db.begin().unwrap();
    let ran = db
        .apply_schema_change(&SchemaChange::AlterColumnType {
            table: "tags".into(),
            column: "dataset_id".into(),
            data_type: "UUID".into(),
            using: Some("printf('%032x', dataset_id)".into()),
        })
        .unwrap();
    assert!(ran.iter().any(|s| s.contains("CHAR(32)")), "{ran:?}");
    // The parent is still integer-keyed: the violation is the caller's, seen at COMMIT.
    assert!(db.commit().is_err());
    db.rollback().unwrap();
    // On a table nothing references, with its own keys kept.
    db.execute_batch("DROP TABLE tags").unwrap();
    db.apply_schema_change(&SchemaChange::AlterColumnType {
        table: "dataset".into(),
        column: "id".into(),
        data_type: "UUID".into(),
        using: Some("printf('%032x', id)".into()),
    })
    .unwrap();
    let first = db
        .query("SELECT id FROM dataset WHERE label = 'd0'", &[])
        .unwrap();
    assert_eq!(first.rows[0][0], Value::Text(format!("{:032x}", 1)));
    assert_eq!(db.columns("dataset").unwrap()[0].data_type, "char(32)");
    assert_eq!(
        db.primary_key("dataset").unwrap().unwrap().name,
        "dataset_pkey"
    );
    assert_eq!(
        db.unique_constraints("dataset").unwrap()[0].name,
        "dataset_unq"
    );
    assert_eq!(db.foreign_keys("dataset").unwrap()[0].on_delete, "CASCADE");
    assert_eq!(db.indexes("dataset").unwrap()[0].name, "dataset_idx_run_id");
    assert_eq!(count(&mut db, "SELECT count(*) FROM dataset"), 50);
}

#[test]
fn rebuild_inside_a_transaction_refuses_a_referenced_table() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(&dir);
    registry(&mut db);
    db.begin().unwrap();
    let change = SchemaChange::SetNullable {
        table: "dataset".into(),
        column: "label".into(),
        nullable: false,
    };
    match db.apply_schema_change(&change) {
        Err(e) if e.kind() == DbErrorKind::Unsupported => {
            assert!(e.message().contains("tags"), "{e}")
        }
        other => panic!("{other:?}"),
    }
    db.rollback().unwrap();
    db.apply_schema_change(&change).unwrap();
    assert_eq!(count(&mut db, "SELECT count(*) FROM tags"), 50);
    assert!(!db.columns("dataset").unwrap()[2].nullable);
    assert!(db
        .execute("INSERT INTO dataset (run_id) VALUES (1)", &[])
        .is_err());
}

#[test]
fn a_violating_rebuild_fails_and_leaves_the_table_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(&dir);
    registry(&mut db);
    db.execute_batch(
        "PRAGMA foreign_keys=OFF; INSERT INTO tags VALUES (999, 'orphan'); PRAGMA foreign_keys=ON",
    )
    .unwrap();
    let err = db
        .apply_schema_change(&SchemaChange::SetNullable {
            table: "tags".into(),
            column: "tag".into(),
            nullable: true,
        })
        .unwrap_err();
    assert!(err.to_string().contains("foreign key violation"), "{err}");
    assert!(!db.in_transaction());
    assert!(!db.columns("tags").unwrap()[1].nullable);
    assert_eq!(count(&mut db, "PRAGMA foreign_keys"), 1);
}

#[test]
fn constraint_changes_by_rebuild_and_native_alter() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(&dir);
    registry(&mut db);
    db.execute_batch("CREATE TABLE extra (a BIGINT, b TEXT)")
        .unwrap();
    db.execute("INSERT INTO extra VALUES (1, 'x')", &[])
        .unwrap();
    let steps = [
        SchemaChange::AddPrimaryKey {
            table: "extra".into(),
            name: "extra_pkey".into(),
            columns: strings(&["a"]),
        },
        SchemaChange::AddUnique {
            table: "extra".into(),
            name: "extra_unq".into(),
            columns: strings(&["b"]),
        },
        SchemaChange::AddForeignKey {
            table: "extra".into(),
            key: fk("extra_fkey_run", &["a"], "run", &["id"], Some("SET NULL")),
        },
        SchemaChange::AddColumn {
            table: "extra".into(),
            column: col("c", "INTEGER", true),
        },
        SchemaChange::RenameColumn {
            table: "extra".into(),
            column: "c".into(),
            new_name: "d".into(),
        },
    ];
    for s in &steps {
        db.apply_schema_change(s).unwrap();
    }
    assert_eq!(db.primary_key("extra").unwrap().unwrap().name, "extra_pkey");
    assert_eq!(db.unique_constraints("extra").unwrap()[0].name, "extra_unq");
    assert_eq!(db.foreign_keys("extra").unwrap()[0].on_delete, "SET NULL");
    assert_eq!(db.columns("extra").unwrap()[2].name, "d");
    // Drop: plain column natively, a constrained one by rebuild.
    let ran = db
        .apply_schema_change(&SchemaChange::DropColumn {
            table: "extra".into(),
            column: "d".into(),
        })
        .unwrap();
    assert_eq!(ran, ["ALTER TABLE \"extra\" DROP COLUMN \"d\""]);
    db.apply_schema_change(&SchemaChange::DropColumn {
        table: "extra".into(),
        column: "b".into(),
    })
    .unwrap();
    assert!(db.unique_constraints("extra").unwrap().is_empty());
    for name in ["extra_fkey_run", "extra_pkey"] {
        db.apply_schema_change(&SchemaChange::DropConstraint {
            table: "extra".into(),
            name: name.into(),
        })
        .unwrap();
    }
    assert!(
        db.primary_key("extra").unwrap().is_none() && db.foreign_keys("extra").unwrap().is_empty()
    );
    assert!(db
        .apply_schema_change(&SchemaChange::DropConstraint {
            table: "extra".into(),
            name: "nope".into()
        })
        .is_err());
    assert_eq!(count(&mut db, "SELECT count(*) FROM extra"), 1);
    db.apply_schema_change(&SchemaChange::DropIndex {
        table: "dataset".into(),
        name: "dataset_idx_run_id".into(),
        if_exists: true,
        concurrently: false,
    })
    .unwrap();
    assert!(db.indexes("dataset").unwrap().is_empty());
    db.apply_schema_change(&SchemaChange::RenameTable {
        table: "extra".into(),
        new_name: "extra2".into(),
    })
    .unwrap();
    db.apply_schema_change(&SchemaChange::DropTable {
        table: "extra2".into(),
        if_exists: false,
    })
    .unwrap();
    db.apply_schema_change(&SchemaChange::DropTable {
        table: "extra2".into(),
        if_exists: true,
    })
    .unwrap();
    assert_eq!(
        db.tables("%").unwrap(),
        strings(&["dataset", "run", "tags"])
    );
}

#[test]
fn the_lock_is_seen_by_a_second_connection_with_its_holder() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = open(&dir);
    let mut b = open(&dir);
    let holder = LockHolder {
        host: "h".into(),
        pid: 42,
        user: "u".into(),
        since: 1_700_000_000,
    };
    assert_eq!(a.try_lock(&holder).unwrap(), LockAttempt::Acquired);
    assert_eq!(a.try_lock(&holder).unwrap(), LockAttempt::Acquired);
    let other = LockHolder {
        pid: 43,
        ..holder.clone()
    };
    assert_eq!(
        b.try_lock(&other).unwrap(),
        LockAttempt::HeldBy(Some(holder))
    );
    a.unlock().unwrap();
    assert_eq!(b.try_lock(&other).unwrap(), LockAttempt::Acquired);
    drop(b); // dropping the connection releases the OS lock, as a process exit does
    assert_eq!(a.try_lock(&other).unwrap(), LockAttempt::Acquired);
}

/// The rewrite of `dataset` and `tags` through two maps: `tags` follows its own map,
/// which agrees with the dataset map only where `agree` says so.
fn rewrite_with_maps(db: &mut SqliteConnection, agree: bool) -> Result<(), DbError> {
    use ferry::backend::{ColumnRewrite, TableRewrite};
    db.execute_batch(
        "CREATE TABLE dmap (old_id INTEGER PRIMARY KEY, new_id TEXT NOT NULL);
         INSERT INTO dmap SELECT id, printf('%032x', id) FROM dataset;
         CREATE TABLE tmap (old_id INTEGER PRIMARY KEY, new_id TEXT NOT NULL);
         INSERT INTO tmap SELECT id, printf('%032x', id) FROM dataset;",
    )?;
    if !agree {
        db.execute_batch(
            "UPDATE tmap SET new_id = printf('%032x', 1000 + old_id) WHERE old_id = 7",
        )?;
    }
    db.begin_checking_foreign_keys_at_commit()?;
    let rewrite = |table: &str, column: &str, map: &str| TableRewrite {
        table: table.into(),
        join: format!("JOIN {map} m ON m.old_id = t.{column}"),
        columns: vec![ColumnRewrite {
            column: column.into(),
            data_type: "UUID".into(),
            value: "m.new_id".into(),
        }],
    };
    db.apply_schema_change(&SchemaChange::RewriteTables(vec![
        rewrite("dataset", "id", "dmap"),
        rewrite("tags", "dataset_id", "tmap"),
    ]))?;
    db.commit()
}

#[test]
fn a_rewrite_checks_the_keys_over_what_it_changed() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(&dir);
    registry(&mut db);
    let err = rewrite_with_maps(&mut db, false).unwrap_err();
    assert!(
        err.to_string()
            .contains("1 rows of tags point at no dataset row"),
        "{err}"
    );
    assert!(!db.in_transaction());
    assert_eq!(db.columns("dataset").unwrap()[0].data_type, "integer");
    assert_eq!(count(&mut db, "PRAGMA foreign_keys"), 1);

    let dir = tempfile::tempdir().unwrap();
    let mut db = open(&dir);
    registry(&mut db);
    rewrite_with_maps(&mut db, true).unwrap();
    assert_eq!(db.columns("tags").unwrap()[0].data_type, "char(32)");
    assert_eq!(
        count(&mut db, "SELECT count(*) FROM pragma_foreign_key_check"),
        0
    );
}

#[test]
fn checks_at_commit_cover_rows_written_and_whole_table_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(&dir);
    registry(&mut db);
    // Rows deleted one by one (the update hook sees them) orphan their tags.
    db.begin_checking_foreign_keys_at_commit().unwrap();
    db.execute("DELETE FROM dataset WHERE id <= ?", &[Value::Int(3)])
        .unwrap();
    let err = db.commit().unwrap_err();
    assert!(err.to_string().contains("3 rows of tags"), "{err}");
    assert_eq!(count(&mut db, "SELECT count(*) FROM dataset"), 50);
    // A DELETE of the whole table (no row is shown to the hook) checks everything.
    db.begin_checking_foreign_keys_at_commit().unwrap();
    db.execute("DELETE FROM dataset", &[]).unwrap();
    let err = db.commit().unwrap_err();
    assert!(err.to_string().contains("foreign key violation"), "{err}");
    assert_eq!(count(&mut db, "SELECT count(*) FROM dataset"), 50);
    // DDL through execute also checks everything.
    db.begin_checking_foreign_keys_at_commit().unwrap();
    db.execute("DROP TABLE dataset", &[]).unwrap();
    assert!(db.commit().is_err());
    assert_eq!(count(&mut db, "SELECT count(*) FROM tags"), 50);
}

#[test]
fn checks_at_commit_leave_untouched_tables_alone() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(&dir);
    registry(&mut db);
    // A violation older than the transaction, in a table the transaction does not touch.
    db.execute_batch(
        "PRAGMA foreign_keys=OFF; INSERT INTO tags VALUES (999, 'orphan'); PRAGMA foreign_keys=ON;
         CREATE TABLE note (id INTEGER PRIMARY KEY, text TEXT)",
    )
    .unwrap();
    db.begin_checking_foreign_keys_at_commit().unwrap();
    db.execute(
        "INSERT INTO note (text) VALUES (?)",
        &[Value::Text("x".into())],
    )
    .unwrap();
    db.commit().unwrap();
    // Touching the table that holds it finds it.
    db.begin_checking_foreign_keys_at_commit().unwrap();
    db.execute("UPDATE tags SET tag = 'u' WHERE dataset_id = 1", &[])
        .unwrap();
    let err = db.commit().unwrap_err();
    assert!(err.to_string().contains("1 rows of tags"), "{err}");
}

/// SQLite's row ids as key generators: `INTEGER PRIMARY KEY` is the row id,
/// `AUTOINCREMENT` adds the counter of the largest id handed out; a `BIGINT` key, a
/// two-column key or a table without row ids has none. Refreshing statistics leaves the
/// file without a `sqlite_stat1` table.
#[test]
fn row_ids_are_the_key_generators() {
    let dir = tempfile::tempdir().unwrap();
    let mut db = open(&dir);
    db.execute_batch(
        "CREATE TABLE counted (id INTEGER PRIMARY KEY AUTOINCREMENT, v TEXT);
         CREATE TABLE rowid (Id integer PRIMARY KEY, v TEXT);
         CREATE TABLE wide (id BIGINT PRIMARY KEY, v TEXT);
         CREATE TABLE pair (a INTEGER, b INTEGER, PRIMARY KEY (a, b));
         CREATE TABLE no_rowid (id INTEGER PRIMARY KEY, v TEXT) WITHOUT ROWID;",
    )
    .unwrap();
    assert_eq!(
        db.key_generators("counted").unwrap(),
        vec![("id".to_string(), KeyGenerator::Autoincrement { last: None })]
    );
    db.execute("INSERT INTO counted (id, v) VALUES (7, 'x')", &[])
        .unwrap();
    db.execute("DELETE FROM counted", &[]).unwrap();
    assert_eq!(
        db.key_generators("counted").unwrap(),
        vec![(
            "id".to_string(),
            KeyGenerator::Autoincrement { last: Some(7) }
        )]
    );
    assert_eq!(
        db.key_generators("rowid").unwrap(),
        vec![("Id".to_string(), KeyGenerator::RowId)]
    );
    for table in ["wide", "pair", "no_rowid"] {
        assert_eq!(db.key_generators(table).unwrap(), vec![], "{table}");
    }
    assert_eq!(db.sequences().unwrap(), vec![]);
    db.refresh_statistics("counted").unwrap();
    assert_eq!(
        count(
            &mut db,
            "SELECT COUNT(*) FROM sqlite_master WHERE name LIKE 'sqlite_stat%'"
        ),
        0
    );
}
