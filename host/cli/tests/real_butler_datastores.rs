//! daf_butler's datastores manager step MonolithicDatastoreRegistryBridgeManager 0.2.0
//! -> 0.2.1 (the primary key of `dataset_location_trash` reverses its column order) on
//! repositories the real daf_butler made, put back to 0.2.0 by hand (`butler_tool.py
//! make --datastores-version 0.2.0`: today's daf_butler creates 0.2.1 only; the
//! hand-made state was checked once against daf_butler_migrate's downgrade, see
//! docs/REFERENCE_REPOSITORY.md), judged by the real daf_butler: the version it reads,
//! every record and dataset, the schema against a fresh 0.2.1 repository. SQLite and
//! PostgreSQL; without FERRY_TEST_PYTHON (or, for PostgreSQL, FERRY_TEST_PG_URL) a skip
//! line.

mod common;
mod real_butler_support;

use real_butler_support::*;

const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];
/// The dimension universe of the test repositories (today's).
const UNIVERSE: u32 = 8;
const AT_0_2_0: [&str; 2] = ["--datastores-version", "0.2.0"];
const VERSION_ROW: &str =
    "version:lsst.daf.butler.registry.bridge.monolithic.MonolithicDatastoreRegistryBridgeManager";

/// The rows of `dataset_location_trash`, as text, sorted.
fn trash_rows(repo: &RealRepo) -> Vec<String> {
    let mut conn =
        ferry::backend::connect(&ferry::backend::DbUrl::parse(&repo.url()).expect("URL parses"))
            .expect("connect");
    let mut rows: Vec<String> = conn
        .query(
            "SELECT CAST(dataset_id AS TEXT), datastore_name FROM dataset_location_trash",
            &[],
        )
        .expect("read dataset_location_trash")
        .rows
        .into_iter()
        .map(|r| format!("{} {}", r[0], r[1]))
        .collect();
    rows.sort();
    rows
}

/// The stored CREATE TABLE text of `table` (SQLite).
fn sqlite_definition(repo: &RealRepo, table: &str) -> Option<String> {
    let mut conn =
        ferry::backend::connect(&ferry::backend::DbUrl::parse(&repo.url()).expect("URL parses"))
            .expect("connect");
    match &conn
        .query(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
            &[ferry::backend::Value::Text(table.into())],
        )
        .expect("sqlite_master")
        .rows[0][0]
    {
        ferry::backend::Value::Text(t) => Some(t.clone()),
        _ => None,
    }
}

/// Adopt at 0.2.0, upgrade, judged by daf_butler; a version row the key contradicts is
/// refused by adopt; downgrade back to the 0.2.0 schema and up again.
#[test]
fn trash_primary_key_reverses_and_back() {
    let test = "trash_primary_key_reverses_and_back";
    for b in BACKENDS {
        let Some(repo) = RealRepo::make_with(test, b, UNIVERSE, &AT_0_2_0) else {
            continue;
        };
        let (schema_021, _) = fresh(test, b, UNIVERSE);
        let schema_020 = repo.describe();
        assert_eq!(
            schema_020["tables"]["dataset_location_trash"]["primary_key"]["columns"],
            serde_json::json!(["datastore_name", "dataset_id"]),
            "[{b:?}] the hand-made 0.2.0 key"
        );
        assert_eq!(repo.versions()["datastores"], "0.2.0", "[{b:?}]");
        let judged = repo.judge();
        let trash = trash_rows(&repo);
        assert_eq!(trash.len(), 6, "[{b:?}] {trash:?}");

        // A version row the key contradicts: adopt refuses, records nothing.
        repo.execute(
            "UPDATE butler_attributes SET value = '0.2.1' WHERE name = ?",
            &[ferry::backend::Value::Text(VERSION_ROW.into())],
        );
        let out = repo.ferry(&["adopt"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "[{b:?}] adopt refused");
        assert!(
            stderr.contains("butler_attributes says datastores manager 0.2.1 but dataset_location_trash's primary key is"),
            "[{b:?}] {stderr}"
        );
        assert!(repo.current("datastores").is_empty(), "[{b:?}]");
        repo.execute(
            "UPDATE butler_attributes SET value = '0.2.0' WHERE name = ?",
            &[ferry::backend::Value::Text(VERSION_ROW.into())],
        );

        repo.ferry_ok(&["adopt"]);
        assert_eq!(
            repo.current("datastores"),
            ["daf_butler-datastores-0.2.0"],
            "[{b:?}]"
        );
        let out = repo.ferry_ok(&["upgrade"]);
        assert!(out.contains("daf_butler-datastores-0.2.1"), "[{b:?}] {out}");
        assert_eq!(
            repo.current("datastores"),
            ["daf_butler-datastores-0.2.1"],
            "[{b:?}]"
        );
        repo.ferry_ok(&["check"]);

        // What daf_butler reads: version 0.2.1, the same registry; the same trash rows;
        // the schema of a fresh repository.
        assert_eq!(repo.versions()["datastores"], "0.2.1", "[{b:?}]");
        assert_eq!(repo.judge(), judged, "[{b:?}] the registry is unchanged");
        assert_eq!(trash_rows(&repo), trash, "[{b:?}]");
        let differences = schema_differences(&repo.describe(), &schema_021);
        assert!(
            differences.is_empty(),
            "[{b:?}] schema differs from a fresh 0.2.1 repository:\n{}",
            differences.join("\n")
        );
        if b == Backend::Sqlite {
            let text = sqlite_definition(&repo, "dataset_location_trash").expect("a table");
            assert!(
                text.starts_with("CREATE TABLE dataset_location_trash (")
                    && text.contains("PRIMARY KEY (dataset_id, datastore_name)"),
                "[{b:?}] the stored text is daf_butler's: {text}"
            );
        }

        // Back to 0.2.0: the hand-made schema, the rows; and up again.
        repo.ferry_ok(&["downgrade", "daf_butler-datastores-0.2.0"]);
        assert_eq!(repo.versions()["datastores"], "0.2.0", "[{b:?}]");
        let differences = schema_differences(&repo.describe(), &schema_020);
        assert!(
            differences.is_empty(),
            "[{b:?}] schema after the downgrade differs from the 0.2.0 one:\n{}",
            differences.join("\n")
        );
        assert_eq!(trash_rows(&repo), trash, "[{b:?}]");
        repo.ferry_ok(&["upgrade"]);
        assert_eq!(
            repo.attribute(VERSION_ROW).as_deref(),
            Some("0.2.1"),
            "[{b:?}]"
        );
        assert_eq!(trash_rows(&repo), trash, "[{b:?}]");
    }
}
