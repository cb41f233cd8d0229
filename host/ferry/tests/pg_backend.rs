//! The PostgreSQL backend against a real server: what only PostgreSQL has (its types,
//! COPY, sessions and schemas). What every backend does is tested once for all in
//! `backend_conformance.rs`.
//!
//! Set `FERRY_TEST_PG_URL` (e.g. `postgresql://postgres@127.0.0.1:5432/test`); each
//! test works in a fresh schema that is dropped at the end. Without the variable the
//! tests say they were skipped and pass; with it, an unreachable server fails them.

use std::time::Duration;

#[path = "../../cli/tests/common/mod.rs"]
mod common;

use common::fresh::{pg_base, schema_url, PgSchema};

use ferry::backend::postgres::PgConnection;
use ferry::backend::prelude::*;
use ferry::backend::{
    connect, ColumnDef, ColumnRewrite, Connection, DbErrorKind, DbUrl, ForeignKeyDef, IndexDef,
    KeyGenerator, LockAttempt, LockHolder, SchemaChange, TableDef, TableRewrite, Value,
};

/// A fresh schema on the test server (`common::fresh`'s), dropped with everything in it
/// at the end, and an open connection to the server's default schema.
struct Scratch {
    base: String,
    schema: String,
    admin: PgConnection,
    /// Drops the schema when the test ends.
    _pg: PgSchema,
}

impl Scratch {
    fn new(test: &str) -> Option<Scratch> {
        let base = pg_base(test)?;
        let admin = PgConnection::open(&DbUrl::parse(&base).expect("FERRY_TEST_PG_URL"))
            .unwrap_or_else(|e| panic!("FERRY_TEST_PG_URL is set but unusable: {e}"));
        let pg = PgSchema::create(&base, "ferry_test");
        Some(Scratch {
            base,
            schema: pg.name().to_string(),
            admin,
            _pg: pg,
        })
    }

    fn url(&self) -> DbUrl {
        DbUrl::parse(&schema_url(&self.base, &self.schema)).unwrap()
    }

    fn open(&self) -> PgConnection {
        PgConnection::open(&self.url()).unwrap()
    }
}

macro_rules! scratch {
    ($name:expr) => {
        match Scratch::new($name) {
            Some(s) => s,
            None => return,
        }
    };
}

fn col(name: &str, ty: &str, nullable: bool) -> ColumnDef {
    ColumnDef {
        name: name.into(),
        data_type: ty.into(),
        nullable,
        default: None,
        auto_increment: false,
    }
}

fn holder() -> LockHolder {
    LockHolder {
        host: "h".into(),
        pid: 1,
        user: "u".into(),
        since: 0,
    }
}

#[test]
fn connection_describes_itself_and_lives_in_its_schema() {
    let s = scratch!("connection_describes_itself_and_lives_in_its_schema");
    let mut db = connect(&s.url()).unwrap();
    assert_eq!(db.dialect().name(), "postgres");
    assert_eq!(db.namespace(), Some(s.schema.as_str()));
    assert!(db.describe().contains(&s.schema));
    db.execute_batch("CREATE TABLE t (a int); CREATE TABLE u (b int)")
        .unwrap();
    let rows = db.query("SELECT current_schema()", &[]).unwrap();
    assert_eq!(rows.rows, vec![vec![Value::Text(s.schema.clone())]]);
    assert_eq!(s.admin.namespace(), Some("public"));
    let mut admin = s.open();
    assert_eq!(
        admin.tables("%").unwrap(),
        vec!["t".to_string(), "u".to_string()]
    );
    assert!(admin.table_exists("t").unwrap());
    assert!(!admin.table_exists("v").unwrap());
}

#[test]
fn values_round_trip() {
    let s = scratch!("values_round_trip");
    let mut db = s.open();
    db.execute_batch(
        "CREATE TABLE v (i2 int2, i4 int4, i8 int8, t text, vc varchar(10), u uuid,
                         b bool, by bytea, ts timestamp, tz timestamptz, f float8)",
    )
    .unwrap();
    let u = uuid::Uuid::new_v4();
    let row = vec![
        Value::Int(-3),
        Value::Int(70_000),
        Value::Int(i64::MAX),
        Value::Text("it's ?".into()),
        Value::Text("short".into()),
        Value::Uuid(u),
        Value::Bool(true),
        Value::Bytes(vec![0, 1, 255]),
        Value::Text("2024-01-02 03:04:05.5".into()),
        Value::Text("2024-01-02T03:04:05Z".into()),
        Value::Float(1.25),
    ];
    let n = db
        .execute(
            "INSERT INTO v VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            &row,
        )
        .unwrap();
    assert_eq!(n, 1);
    db.execute("INSERT INTO v (i2) VALUES (?)", &[Value::Null])
        .unwrap();
    db.execute(
        "INSERT INTO v (u) VALUES (?)",
        &[Value::Text(u.simple().to_string())],
    )
    .unwrap();
    let rows = db
        .query("SELECT * FROM v ORDER BY i2 NULLS LAST, u", &[])
        .unwrap();
    assert_eq!(rows.columns[0], "i2");
    let mut expected = row.clone();
    expected[8] = Value::Text("2024-01-02T03:04:05.500000Z".into());
    expected[9] = Value::Text("2024-01-02T03:04:05.000000Z".into());
    assert_eq!(rows.rows[0], expected);
    assert_eq!(rows.rows[1][5], Value::Uuid(u));
    assert!(rows.rows[2].iter().all(|v| *v == Value::Null));

    let err = db
        .execute("INSERT INTO v (i2) VALUES (?)", &[Value::Int(1 << 20)])
        .unwrap_err();
    assert!(err.kind() == DbErrorKind::Conversion, "{err}");
    let err = db.query("SELECT 1.5::numeric AS n", &[]).unwrap_err();
    assert!(err.to_string().contains("CAST(n AS TEXT)"), "{err}");
    let err = db.query("SELECT nope FROM v", &[]).unwrap_err();
    assert!(err.is_statement(), "{err}");
}

#[test]
fn placeholders_inside_literals_are_left_alone() {
    let s = scratch!("placeholders_inside_literals_are_left_alone");
    let mut db = s.open();
    let rows = db
        .query(
            "SELECT '?' AS a, $$?$$ AS b, ? AS \"c?\" -- ?\n, /* ? */ E'\\'?' AS d",
            &[Value::Text("x".into())],
        )
        .unwrap();
    assert_eq!(rows.columns, vec!["a", "b", "c?", "d"]);
    assert_eq!(
        rows.rows[0],
        vec![
            Value::Text("?".into()),
            Value::Text("?".into()),
            Value::Text("x".into()),
            Value::Text("'?".into())
        ]
    );
    let err = db.query("SELECT ?", &[]).unwrap_err();
    assert!(
        err.to_string().contains("1 placeholders but 0 values"),
        "{err}"
    );
}

#[test]
fn bulk_insert_copies_rows() {
    let s = scratch!("bulk_insert_copies_rows");
    let mut db = s.open();
    db.execute_batch("CREATE TABLE d (id bigint PRIMARY KEY, run uuid, name text, n int4)")
        .unwrap();
    let columns: Vec<String> = ["id", "run", "name", "n"].map(String::from).to_vec();
    let mut rows = (0..50_000i64).map(|i| {
        vec![
            Value::Int(i),
            Value::Uuid(uuid::Uuid::new_v4()),
            Value::Text(format!("row {i}")),
            if i % 2 == 0 {
                Value::Null
            } else {
                Value::Int(i % 100)
            },
        ]
    });
    assert_eq!(db.bulk_insert("d", &columns, &mut rows).unwrap(), 50_000);
    let count = db.query("SELECT count(*), count(n) FROM d", &[]).unwrap();
    assert_eq!(count.rows[0], vec![Value::Int(50_000), Value::Int(25_000)]);
    let mut bad = std::iter::once(vec![Value::Int(1)]);
    assert!(db.bulk_insert("d", &columns, &mut bad).is_err());
}

/// A freshly loaded table has no planner statistics until autovacuum comes by;
/// `refresh_statistics` gives it the row count a restore's `ANALYZE` would.
#[test]
fn refresh_statistics_counts_a_loaded_table() {
    let s = scratch!("refresh_statistics_counts_a_loaded_table");
    let mut db = s.open();
    db.execute_batch("CREATE TABLE d (id bigint PRIMARY KEY)")
        .unwrap();
    let mut rows = (0..5_000i64).map(|i| vec![Value::Int(i)]);
    db.bulk_insert("d", &["id".to_string()], &mut rows).unwrap();
    let estimate = |db: &mut PgConnection| {
        db.query(
            "SELECT reltuples::float8 FROM pg_class \
             WHERE oid = (quote_ident(current_schema()) || '.d')::regclass",
            &[],
        )
        .unwrap()
        .rows[0][0]
            .clone()
    };
    // Before: -1 (never analysed) or 0 (an empty table's index build), unless
    // autovacuum happened to come by first.
    db.refresh_statistics("d").unwrap();
    assert_eq!(estimate(&mut db), Value::Float(5_000.0));
}

/// Key generators as other tools declare them: a `serial` column owns its sequence, a
/// default drawing from another column's sequence does not, an identity has its own,
/// and a sequence created by hand is owned by no column.
#[test]
fn key_generators_tell_owned_sequences_from_borrowed_ones() {
    let s = scratch!("key_generators_tell_owned_sequences_from_borrowed_ones");
    let mut db = s.open();
    db.execute_batch(
        "CREATE TABLE a (id BIGSERIAL PRIMARY KEY, n int);
         CREATE TABLE b (id BIGINT PRIMARY KEY DEFAULT nextval('a_id_seq'),
                         k BIGINT GENERATED ALWAYS AS IDENTITY);
         CREATE SEQUENCE left_over;",
    )
    .unwrap();
    assert_eq!(
        db.key_generators("a").unwrap(),
        vec![(
            "id".to_string(),
            KeyGenerator::Sequence {
                name: "a_id_seq".into(),
                owned: true
            }
        )]
    );
    assert_eq!(
        db.key_generators("b").unwrap(),
        vec![
            (
                "id".to_string(),
                KeyGenerator::Sequence {
                    name: "a_id_seq".into(),
                    owned: false
                }
            ),
            (
                "k".to_string(),
                KeyGenerator::Identity {
                    sequence: "b_k_seq".into()
                }
            ),
        ]
    );
    let sequences: Vec<(String, Option<(String, String)>)> = db
        .sequences()
        .unwrap()
        .into_iter()
        .map(|s| (s.name, s.owner))
        .collect();
    let owner = |t: &str, c: &str| Some((t.to_string(), c.to_string()));
    assert_eq!(
        sequences,
        vec![
            ("a_id_seq".to_string(), owner("a", "id")),
            ("b_k_seq".to_string(), owner("b", "k")),
            ("left_over".to_string(), None),
        ]
    );
    // The borrowed sequence is advanced where it is: past b's keys as well as a's.
    db.execute("INSERT INTO b (id) VALUES (40)", &[]).unwrap();
    db.advance_key_generator("b", "id").unwrap();
    db.execute("INSERT INTO a (n) VALUES (1)", &[]).unwrap();
    let id = db.query("SELECT MAX(id) FROM a", &[]).unwrap();
    assert_eq!(id.rows[0][0], Value::Int(41));
}

fn create_pair(db: &mut PgConnection) {
    db.apply_schema_change(&SchemaChange::CreateTable(TableDef {
        name: "run".into(),
        columns: vec![
            col("id", "BIGINT", false),
            col("name", "VARCHAR(64)", false),
        ],
        primary_key: Some(("run_pk".into(), vec!["id".into()])),
        unique: vec![("run_name_un".into(), vec!["name".into()])],
        foreign_keys: vec![],
    }))
    .unwrap();
    let mut id = col("id", "BIGINT", false);
    id.auto_increment = true;
    let mut flag = col("flag", "BOOLEAN", false);
    flag.default = Some("false".into());
    db.apply_schema_change(&SchemaChange::CreateTable(TableDef {
        name: "dataset".into(),
        columns: vec![
            id,
            col("run_id", "BIGINT", true),
            col("kind", "TEXT", true),
            flag,
        ],
        primary_key: Some((String::new(), vec!["id".into()])),
        unique: vec![(
            "dataset_kind_run".into(),
            vec!["kind".into(), "run_id".into()],
        )],
        foreign_keys: vec![ForeignKeyDef {
            name: "dataset_run_fk".into(),
            columns: vec!["run_id".into()],
            referenced_table: "run".into(),
            referenced_columns: vec!["id".into()],
            on_delete: Some("CASCADE".into()),
        }],
    }))
    .unwrap();
    db.apply_schema_change(&SchemaChange::AddIndex(IndexDef {
        name: "dataset_run_kind_idx".into(),
        table: "dataset".into(),
        columns: vec!["run_id".into(), "kind".into()],
        unique: false,
        concurrently: false,
        if_not_exists: true,
    }))
    .unwrap();
}

#[test]
fn introspection_reports_names_and_rules() {
    let s = scratch!("introspection_reports_names_and_rules");
    let mut db = s.open();
    create_pair(&mut db);
    let columns = db.columns("dataset").unwrap();
    let summary: Vec<_> = columns
        .iter()
        .map(|c| (c.name.as_str(), c.data_type.as_str(), c.nullable))
        .collect();
    assert_eq!(
        summary,
        vec![
            ("id", "bigint", false),
            ("run_id", "bigint", true),
            ("kind", "text", true),
            ("flag", "boolean", false)
        ]
    );
    assert_eq!(columns[3].default.as_deref(), Some("false"));
    assert_eq!(
        db.columns("run").unwrap()[1].data_type,
        "character varying(64)"
    );
    assert!(db.columns("missing").is_err());
    let pk = db.primary_key("dataset").unwrap().unwrap();
    assert_eq!(
        (pk.name.as_str(), pk.columns.clone()),
        ("dataset_pkey", vec!["id".to_string()])
    );
    assert_eq!(db.primary_key("run").unwrap().unwrap().name, "run_pk");
    let unique = db.unique_constraints("dataset").unwrap();
    assert_eq!(unique.len(), 1);
    assert_eq!(unique[0].name, "dataset_kind_run");
    assert_eq!(unique[0].columns, vec!["kind", "run_id"]);
    let fks = db.foreign_keys("dataset").unwrap();
    assert_eq!(fks.len(), 1);
    assert_eq!(fks[0].name, "dataset_run_fk");
    assert_eq!(fks[0].columns, vec!["run_id"]);
    assert_eq!(fks[0].referenced_table, "run");
    assert_eq!(fks[0].referenced_columns, vec!["id"]);
    assert_eq!(fks[0].on_delete, "CASCADE");
    let indexes = db.indexes("dataset").unwrap();
    assert_eq!(indexes.len(), 1, "{indexes:?}");
    assert_eq!(indexes[0].name, "dataset_run_kind_idx");
    assert_eq!(indexes[0].columns, vec!["run_id", "kind"]);
    assert!(!indexes[0].unique);
    assert_eq!(db.tables("data%").unwrap(), vec!["dataset"]);
    assert_eq!(db.tables("%").unwrap(), vec!["dataset", "run"]);
}

#[test]
fn schema_changes_apply_and_keep_names() {
    let s = scratch!("schema_changes_apply_and_keep_names");
    let mut db = s.open();
    create_pair(&mut db);
    db.execute(
        "INSERT INTO run VALUES (?, ?)",
        &[Value::Int(7), Value::Text("r".into())],
    )
    .unwrap();
    db.execute(
        "INSERT INTO dataset (run_id, kind) VALUES (?, ?)",
        &[Value::Int(7), Value::Text("raw".into())],
    )
    .unwrap();
    // Drop the FK first: its column type changes on one side only.
    db.apply_schema_change(&SchemaChange::DropConstraint {
        table: "dataset".into(),
        name: "dataset_run_fk".into(),
    })
    .unwrap();
    let sql = db
        .apply_schema_change(&SchemaChange::AlterColumnType {
            table: "dataset".into(),
            column: "id".into(),
            data_type: "UUID".into(),
            using: Some("md5(id::text)::uuid".into()),
        })
        .unwrap();
    assert!(
        sql.last()
            .unwrap()
            .contains("TYPE uuid USING (md5(id::text)::uuid)"),
        "{sql:?}"
    );
    assert_eq!(db.columns("dataset").unwrap()[0].data_type, "uuid");
    assert_eq!(
        db.primary_key("dataset").unwrap().unwrap().name,
        "dataset_pkey"
    );
    let id = db.query("SELECT id FROM dataset", &[]).unwrap();
    assert!(matches!(id.rows[0][0], Value::Uuid(_)));

    let changes = vec![
        SchemaChange::AddColumn {
            table: "dataset".into(),
            column: col("extra", "DOUBLE", true),
        },
        SchemaChange::RenameColumn {
            table: "dataset".into(),
            column: "extra".into(),
            new_name: "score".into(),
        },
        SchemaChange::SetNullable {
            table: "dataset".into(),
            column: "score".into(),
            nullable: true,
        },
        SchemaChange::AddUnique {
            table: "dataset".into(),
            name: "dataset_score_un".into(),
            columns: vec!["score".into()],
        },
        SchemaChange::AddForeignKey {
            table: "dataset".into(),
            key: ForeignKeyDef {
                name: "dataset_run_fk2".into(),
                columns: vec!["run_id".into()],
                referenced_table: "run".into(),
                referenced_columns: vec!["id".into()],
                on_delete: Some("SET NULL".into()),
            },
        },
        SchemaChange::DropIndex {
            table: "dataset".into(),
            name: "dataset_run_kind_idx".into(),
            if_exists: true,
            concurrently: true,
        },
        SchemaChange::AddIndex(IndexDef {
            name: "dataset_kind_idx".into(),
            table: "dataset".into(),
            columns: vec!["kind".into()],
            unique: false,
            concurrently: true,
            if_not_exists: false,
        }),
        SchemaChange::DropColumn {
            table: "dataset".into(),
            column: "flag".into(),
        },
        SchemaChange::RenameTable {
            table: "dataset".into(),
            new_name: "ds".into(),
        },
        SchemaChange::DropConstraint {
            table: "run".into(),
            name: "run_name_un".into(),
        },
        SchemaChange::DropConstraint {
            table: "ds".into(),
            name: "dataset_pkey".into(),
        },
        SchemaChange::AddPrimaryKey {
            table: "ds".into(),
            name: "ds_pk".into(),
            columns: vec!["id".into()],
        },
    ];
    for change in &changes {
        db.apply_schema_change(change)
            .unwrap_or_else(|e| panic!("{change:?}: {e}"));
    }
    assert_eq!(db.tables("%").unwrap(), vec!["ds", "run"]);
    assert_eq!(db.foreign_keys("ds").unwrap()[0].on_delete, "SET NULL");
    assert_eq!(db.indexes("ds").unwrap()[0].name, "dataset_kind_idx");
    assert_eq!(db.primary_key("ds").unwrap().unwrap().name, "ds_pk");
    assert!(db.unique_constraints("run").unwrap().is_empty());
    let columns: Vec<_> = db
        .columns("ds")
        .unwrap()
        .into_iter()
        .map(|c| c.name)
        .collect();
    assert_eq!(columns, vec!["id", "run_id", "kind", "score"]);
    db.apply_schema_change(&SchemaChange::DropTable {
        table: "ds".into(),
        if_exists: false,
    })
    .unwrap();
    db.apply_schema_change(&SchemaChange::DropTable {
        table: "ds".into(),
        if_exists: true,
    })
    .unwrap();
    assert_eq!(db.tables("%").unwrap(), vec!["run"]);
}

#[test]
fn lock_is_exclusive_per_schema_and_names_its_holder() {
    let s = scratch!("lock_is_exclusive_per_schema_and_names_its_holder");
    let mut first = s.open();
    let mut second = s.open();
    assert_eq!(first.try_lock(&holder()).unwrap(), LockAttempt::Acquired);
    assert_eq!(first.try_lock(&holder()).unwrap(), LockAttempt::Acquired);
    match second.try_lock(&holder()).unwrap() {
        LockAttempt::HeldBy(Some(h)) => {
            assert_eq!(h.pid, std::process::id());
            assert!(h.since > 0);
        }
        other => panic!("expected the lock held by the first connection, got {other:?}"),
    }
    // Another schema's lock is independent.
    let other = Scratch::new("other").unwrap();
    assert_eq!(
        other.open().try_lock(&holder()).unwrap(),
        LockAttempt::Acquired
    );
    first.unlock().unwrap();
    assert_eq!(second.try_lock(&holder()).unwrap(), LockAttempt::Acquired);
    second.unlock().unwrap();
}

#[test]
fn statement_timeout_cancels() {
    let s = scratch!("statement_timeout_cancels");
    let mut db = s.open();
    db.set_statement_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let started = std::time::Instant::now();
    let err = db.execute("SELECT pg_sleep(5)", &[]).unwrap_err();
    assert!(err.kind() == DbErrorKind::Timeout, "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
    db.set_statement_timeout(None).unwrap();
    db.execute("SELECT pg_sleep(0.3)", &[]).unwrap();
}

/// The parallel-worker limits of the transaction on `conn`, as the server reports them:
/// (`max_parallel_workers_per_gather`, `max_parallel_maintenance_workers`).
fn parallel_limits(conn: &mut dyn Connection) -> (String, String) {
    let rows = conn
        .query(
            "SELECT current_setting('max_parallel_workers_per_gather'), \
             current_setting('max_parallel_maintenance_workers')",
            &[],
        )
        .unwrap();
    match &rows.rows[0][..] {
        [Value::Text(gather), Value::Text(maintenance)] => (gather.clone(), maintenance.clone()),
        other => panic!("unexpected settings {other:?}"),
    }
}

/// A table step on a pooled connection builds its keys with its share of the server's
/// cores: fewer parallel workers while another pooled connection is lent out, the
/// session's own limits when it runs alone, and nothing of it outlives the transaction
/// (the pooled session goes back to the pool as it came).
#[test]
fn pooled_table_steps_share_the_cores_only_while_others_run() {
    let s = scratch!("pooled_table_steps_share_the_cores");
    let mut db = s.open();
    db.execute_batch(
        "CREATE TABLE item (id BIGINT PRIMARY KEY, v TEXT NOT NULL); \
         CREATE INDEX item_v ON item (v); \
         INSERT INTO item SELECT g, g::text FROM generate_series(1, 20000) g;",
    )
    .unwrap();
    let cores = db.server_cores().unwrap();
    let pool = db.step_workers(2).unwrap().expect("a step pool");
    let prepare = SchemaChange::PrepareRewrite {
        rewrite: TableRewrite {
            table: "item".into(),
            join: String::new(),
            columns: vec![ColumnRewrite {
                column: "v".into(),
                data_type: "TEXT".into(),
                value: "t.v || '!'".into(),
            }],
        },
        set: vec!["item".into()],
        discard: vec![],
    };

    let mut step = pool.connection().unwrap().expect("a pooled connection");
    let session = parallel_limits(step.as_mut());
    let other = pool
        .connection()
        .unwrap()
        .expect("a second pooled connection");
    step.begin().unwrap();
    step.apply_schema_change(&prepare).unwrap();
    assert_eq!(step.rows_copied(), Some(20_000));
    let paired = parallel_limits(step.as_mut());
    step.commit().unwrap();
    let share = ferry::backend::postgres::workers_per_step(cores, 2).expect("two steps share");
    let limited = |session: &str| share.min(session.parse().unwrap()).to_string();
    assert_eq!(
        paired,
        (limited(&session.0), limited(&session.1)),
        "{cores} cores, session limits {session:?}"
    );
    assert_eq!(parallel_limits(step.as_mut()), session, "after the commit");

    // Alone (the copy committed above is dropped and made again).
    drop(other);
    step.begin().unwrap();
    step.apply_schema_change(&prepare).unwrap();
    assert_eq!(parallel_limits(step.as_mut()), session, "alone");
    step.rollback().unwrap();
}

#[test]
fn terminated_backend_is_a_lost_connection() {
    let s = scratch!("terminated_backend_is_a_lost_connection");
    let mut db = s.open();
    let pid = db.query("SELECT pg_backend_pid()::int8", &[]).unwrap().rows[0][0].clone();
    let mut killer = s.open();
    killer
        .execute("SELECT pg_terminate_backend(?::int4)", &[pid])
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let err = db.query("SELECT 1", &[]).unwrap_err();
    assert!(err.kind() == DbErrorKind::ConnectionLost, "{err}");
}

#[test]
fn missing_schema_and_unreachable_server_are_connect_errors() {
    let s = scratch!("missing_schema_and_unreachable_server_are_connect_errors");
    let url = DbUrl::parse(&format!("{}?schema=no_such_schema_here", s.base)).unwrap();
    let err = PgConnection::open(&url).err().expect("missing schema");
    assert!(err.is_connect(), "{err}");
    assert!(
        err.to_string()
            .contains("schema no_such_schema_here does not exist"),
        "{err}"
    );
    let url =
        DbUrl::parse("postgresql://postgres:secret@127.0.0.1:1/test?connect_timeout=2").unwrap();
    let err = PgConnection::open(&url).err().expect("unreachable");
    assert!(err.is_connect(), "{err}");
    assert!(!err.to_string().contains("secret"), "{err}");
}

/// `cargo test --release --test pg_backend -- --ignored --nocapture bulk_insert_speed`
#[test]
#[ignore = "benchmark"]
fn bulk_insert_speed_against_native_copy() {
    let s = scratch!("bulk_insert_speed_against_native_copy");
    const ROWS: i64 = 300_000;
    let mut db = s.open();
    db.execute_batch("CREATE TABLE a (id bigint, run uuid, name text); CREATE TABLE b (LIKE a)")
        .unwrap();
    let ids: Vec<uuid::Uuid> = (0..ROWS).map(|_| uuid::Uuid::new_v4()).collect();

    let columns: Vec<String> = ["id", "run", "name"].map(String::from).to_vec();
    let started = std::time::Instant::now();
    let mut rows = ids.iter().enumerate().map(|(i, u)| {
        vec![
            Value::Int(i as i64),
            Value::Uuid(*u),
            Value::Text(format!("row {i}")),
        ]
    });
    db.bulk_insert("a", &columns, &mut rows).unwrap();
    let ferry = started.elapsed();

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let native = runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(&s.base, tokio_postgres::NoTls)
            .await
            .unwrap();
        tokio::spawn(connection);
        client
            .batch_execute(&format!("SET search_path TO \"{}\"", s.schema))
            .await
            .unwrap();
        let started = std::time::Instant::now();
        let sink = client
            .copy_in("COPY b (id, run, name) FROM STDIN BINARY")
            .await
            .unwrap();
        let types = [
            tokio_postgres::types::Type::INT8,
            tokio_postgres::types::Type::UUID,
            tokio_postgres::types::Type::TEXT,
        ];
        let writer = tokio_postgres::binary_copy::BinaryCopyInWriter::new(sink, &types);
        let mut writer = std::pin::pin!(writer);
        for (i, u) in ids.iter().enumerate() {
            let name = format!("row {i}");
            writer
                .as_mut()
                .write(&[&(i as i64), u, &name])
                .await
                .unwrap();
        }
        writer.as_mut().finish().await.unwrap();
        started.elapsed()
    });
    println!(
        "bulk_insert {ferry:?}, native COPY {native:?}, ratio {:.2}",
        ferry.as_secs_f64() / native.as_secs_f64()
    );
}
