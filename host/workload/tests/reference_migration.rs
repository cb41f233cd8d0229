//! The reference repository end to end: registry v1 created by Ferry's root revisions
//! and filled per WORKLOAD.md, upgraded to the heads, then every rule of WORKLOAD.md's
//! "Registry v2" checked against a snapshot taken before. Each test runs twice: on a
//! repository from Ferry's own generator, and on one made without Ferry
//! (`tests/fixtures/foreign_v1`, hand-written SQLAlchemy-style DDL through `sqlite3` /
//! `psql`, then `ferry adopt`).

#[path = "../../cli/tests/common/mod.rs"]
mod common;
mod reference_support;

use ferry::backend::{self, DbUrl, Value};
use ferry::migrator::UpgradeOptions;
use ferry_workload::{self as workload, Snapshot};
use reference_support::foreign::{self, Source};
use reference_support::migrator;

fn migrate_and_check(source: Source, url: &str, n: u64) {
    eprintln!("v1 from {}: {url}", source.name());
    let mut conn = foreign::create_v1_from(source, url, n, 7);
    let before = Snapshot::take(conn.as_mut()).unwrap();
    let checks_before = check_constraints(conn.as_mut());
    let comments_before = comments(conn.as_mut());
    drop(conn);
    let m = migrator(url).with_config(
        // Small batches so the map is built over many checkpointed batches.
        [(
            "datasets.uuid_batch_size".to_string(),
            toml::Value::Integer(1000),
        )]
        .into(),
    );
    // v1 -> v2 exactly: the int -> UUID revision and nothing else.
    let report = m
        .upgrade(
            &["datasets-uuid-1.0.0".to_string()],
            &UpgradeOptions::default(),
        )
        .unwrap();
    assert!(report.succeeded(), "{}", report.failed.unwrap());
    let ran: Vec<&str> = report
        .completed
        .iter()
        .map(|c| c.revision.as_str())
        .collect();
    assert_eq!(ran, ["datasets-uuid-1.0.0"]);
    let mut conn = backend::connect(&DbUrl::parse(url).unwrap()).unwrap();
    if let Err(problems) = workload::check_v2(conn.as_mut(), &before) {
        panic!("v2 rules violated:\n{}", problems.join("\n"));
    }
    new_rows_get_fresh_ids(conn.as_mut());
    assert_eq!(
        check_constraints(conn.as_mut()),
        checks_before,
        "CHECK constraints lost"
    );
    assert_eq!(
        comments(conn.as_mut()),
        comments_before,
        "comments on tables or columns lost"
    );
    drop(conn);
    // Then everything else: the datasets patch, the collections patch, the amplifier.
    let report = m.upgrade(&[], &UpgradeOptions::default()).unwrap();
    assert!(report.succeeded(), "{}", report.failed.unwrap());
    let mut conn = backend::connect(&DbUrl::parse(url).unwrap()).unwrap();
    let amps = conn.query("SELECT COUNT(*) FROM amplifier", &[]).unwrap();
    assert_eq!(
        amps.rows[0][0],
        Value::Int(400),
        "HSC: 100 detectors x 4 amplifiers"
    );
    let status = migrator(url).status().unwrap();
    assert!(status.at_heads(), "{status:?}");
}

/// `(table, CHECK constraint)` of every v1 table, sorted (the repository from
/// `foreign_v1` has daf_butler's `{table}_len_{column}` ones on SQLite).
fn check_constraints(conn: &mut dyn ferry::backend::Connection) -> Vec<(String, String)> {
    let sql = match conn.dialect() {
        ferry::backend::Dialect::Sqlite => {
            // The named ones, read from the stored CREATE TABLE text.
            "SELECT name, sql FROM sqlite_master WHERE type = 'table'"
        }
        ferry::backend::Dialect::Postgres => {
            "SELECT c.relname::text, pg_get_constraintdef(k.oid) FROM pg_constraint k \
             JOIN pg_class c ON c.oid = k.conrelid \
             WHERE k.contype = 'c' AND c.relnamespace = current_schema()::regnamespace"
        }
    };
    let tables: Vec<String> = workload::v1_tables().into_iter().map(|t| t.name).collect();
    let mut out = Vec::new();
    for row in conn.query(sql, &[]).unwrap().rows {
        let (Value::Text(table), Value::Text(text)) = (&row[0], &row[1]) else {
            continue;
        };
        if !tables.contains(table) {
            continue;
        }
        if conn.dialect() == ferry::backend::Dialect::Sqlite {
            for part in text.split("CONSTRAINT").skip(1) {
                if part.contains("CHECK") {
                    let name = part.split_whitespace().next().unwrap_or_default();
                    out.push((table.clone(), name.trim_matches('"').to_string()));
                }
            }
        } else {
            out.push((table.clone(), text.clone()));
        }
    }
    out.sort();
    out
}

/// `(table, column or "", comment)` of every comment on a v1 table or its columns,
/// sorted: `foreign_v1` has daf_butler's on PostgreSQL (SQLite keeps none).
fn comments(conn: &mut dyn ferry::backend::Connection) -> Vec<(String, String, String)> {
    if conn.dialect() == ferry::backend::Dialect::Sqlite {
        return Vec::new();
    }
    let sql = "SELECT c.relname::text, COALESCE(a.attname::text, ''), d.description \
               FROM pg_description d JOIN pg_class c ON c.oid = d.objoid \
               LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid \
               WHERE d.classoid = 'pg_class'::regclass \
               AND c.relnamespace = current_schema()::regnamespace";
    let tables: Vec<String> = workload::v1_tables().into_iter().map(|t| t.name).collect();
    let mut out: Vec<(String, String, String)> = conn
        .query(sql, &[])
        .unwrap()
        .rows
        .into_iter()
        .filter_map(|row| match &row[..] {
            [Value::Text(t), Value::Text(c), Value::Text(d)] if tables.contains(t) => {
                Some((t.clone(), c.clone(), d.clone()))
            }
            _ => None,
        })
        .collect();
    out.sort();
    out
}

/// The auto-increment keys the migration keeps still hand out fresh ids after it:
/// a calibration row and a collection inserted without an id get one above every
/// existing id.
fn new_rows_get_fresh_ids(conn: &mut dyn ferry::backend::Connection) {
    let max = |conn: &mut dyn ferry::backend::Connection, sql: &str| match conn
        .query(sql, &[])
        .unwrap()
        .rows[0][0]
    {
        Value::Int(i) => i,
        ref other => panic!("{sql}: {other:?}"),
    };
    let calibs_before = max(conn, "SELECT MAX(id) FROM dataset_calibs_00000003");
    let collections_before = max(conn, "SELECT MAX(collection_id) FROM collection");
    conn.begin().unwrap();
    conn.execute(
        "INSERT INTO collection (name, type) VALUES ('HSC/after/v2', 1)",
        &[],
    )
    .unwrap();
    conn.execute(
        "INSERT INTO dataset_calibs_00000003 (dataset_type_id, dataset_id, collection_id, \
         instrument, detector) SELECT dataset_type_id, dataset_id, collection_id, instrument, \
         detector FROM dataset_calibs_00000003 WHERE id = ?",
        &[Value::Int(calibs_before)],
    )
    .unwrap();
    let calibs_after = max(conn, "SELECT MAX(id) FROM dataset_calibs_00000003");
    let collections_after = max(conn, "SELECT MAX(collection_id) FROM collection");
    conn.rollback().unwrap();
    assert!(
        calibs_after > calibs_before,
        "{calibs_after} <= {calibs_before}"
    );
    assert!(
        collections_after > collections_before,
        "{collections_after} <= {collections_before}"
    );
}

#[test]
fn sqlite_v1_to_heads_meets_every_v2_rule() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("repo.sqlite").display());
    migrate_and_check(Source::Ferry, &url, 12_000);
}

#[test]
fn postgres_v1_to_heads_meets_every_v2_rule() {
    reference_support::postgres_only(|url| migrate_and_check(Source::Ferry, url, 12_000));
}

#[test]
fn sqlite_foreign_v1_to_heads_meets_every_v2_rule() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("repo.sqlite").display());
    migrate_and_check(Source::Foreign, &url, 12_000);
}

#[test]
fn postgres_foreign_v1_to_heads_meets_every_v2_rule() {
    reference_support::postgres_only(|url| migrate_and_check(Source::Foreign, url, 12_000));
}
