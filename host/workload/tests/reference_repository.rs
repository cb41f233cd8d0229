//! The reference repository's other revisions: the amplifier dimension populated by
//! two instrument plugins, the idempotent datasets patch, the compatible collections
//! patch, a repository that is already partly upgraded, and an instrument without a
//! plugin stopping the plan before anything runs. Each runs on SQLite and PostgreSQL.

#[path = "../../cli/tests/common/mod.rs"]
mod common;
mod reference_support;

use ferry::backend::{Connection, Value};
use ferry::migrator::{Error, UpgradeOptions};
use ferry_workload as workload;
use reference_support::{connect, migrator, on_each_backend};

/// Upgrades to `targets`; panics if a revision fails (`Error::Failed`).
fn upgrade(url: &str, targets: &[&str]) {
    let _report = upgraded(url, targets);
}

/// Upgrades to `targets` and returns what ran; panics if a revision fails.
fn upgraded(url: &str, targets: &[&str]) -> ferry::runner::Report {
    let targets: Vec<String> = targets.iter().map(|s| s.to_string()).collect();
    migrator(url)
        .upgrade(&targets, &UpgradeOptions::default())
        .unwrap_or_else(|e| panic!("upgrade failed:\n{e}"))
}

fn int(conn: &mut dyn Connection, sql: &str) -> i64 {
    match conn.query(sql, &[]).unwrap().rows[0][0] {
        Value::Int(i) => i,
        ref other => panic!("{sql}: {other:?}"),
    }
}

/// v1 through Ferry's roots, filled at a small N.
fn v1(url: &str) {
    upgrade(url, &workload::schema::V1_REVISIONS);
    let mut conn = connect(url);
    workload::schema::create_missing_tables(conn.as_mut()).unwrap();
    workload::fill_v1(conn.as_mut(), 1_000, 3).unwrap();
}

#[test]
fn amplifiers_come_from_each_instruments_plugin() {
    on_each_backend(|url| {
        v1(url);
        let mut conn = connect(url);
        conn.execute(
            "INSERT INTO instrument (name, visit_max, exposure_max, detector_max, class_name) VALUES (?, 1, 1, 1, ?)",
            &[Value::Text("LATISS".into()), Value::Text("lsst.obs.lsst.Latiss".into())],
        )
        .unwrap();
        conn.execute(
            "INSERT INTO detector (instrument, id, full_name) VALUES ('LATISS', 0, 'RXX_S00')",
            &[],
        )
        .unwrap();
        drop(conn);
        upgrade(url, &["dimensions-config@head", "obs_subaru@head"]);
        let mut conn = connect(url);
        // The plugin's own tree renamed HSC's detectors, and only HSC's.
        let names = conn
            .query("SELECT full_name FROM detector WHERE instrument = 'HSC' AND id IN (0, 53) ORDER BY id", &[])
            .unwrap();
        assert_eq!(
            names.rows,
            vec![
                vec![Value::Text("0_1".into())],
                vec![Value::Text("1_2".into())]
            ]
        );
        let latiss = conn
            .query(
                "SELECT full_name FROM detector WHERE instrument = 'LATISS'",
                &[],
            )
            .unwrap();
        assert_eq!(latiss.rows[0][0], Value::Text("RXX_S00".into()));
        assert_eq!(
            int(
                conn.as_mut(),
                "SELECT COUNT(*) FROM amplifier WHERE instrument = 'HSC'"
            ),
            400
        );
        assert_eq!(
            int(
                conn.as_mut(),
                "SELECT COUNT(*) FROM amplifier WHERE instrument = 'LATISS'"
            ),
            16
        );
        let universe = conn
            .query(
                "SELECT value FROM butler_attributes WHERE name = 'config:dimensions.json'",
                &[],
            )
            .unwrap();
        let Value::Text(json) = &universe.rows[0][0] else {
            panic!()
        };
        let parsed: serde_json::Value = serde_json::from_str(json).unwrap();
        assert_eq!(parsed["version"], 1);
        assert!(parsed["elements"]
            .as_array()
            .unwrap()
            .contains(&"amplifier".into()));
        let fk = conn.foreign_keys("amplifier").unwrap();
        assert_eq!(fk[0].name, "amplifier_fkey_detector");
    });
}

#[test]
fn an_instrument_without_a_plugin_stops_the_plan_before_anything_runs() {
    on_each_backend(|url| {
        v1(url);
        let mut conn = connect(url);
        conn.execute(
            "INSERT INTO instrument (name, visit_max, exposure_max, detector_max, class_name) VALUES ('DECam', 1, 1, 1, 'x')",
            &[],
        )
        .unwrap();
        drop(conn);
        let before = migrator(url).status().unwrap();
        let err = migrator(url)
            .upgrade(&[], &UpgradeOptions::default())
            .unwrap_err();
        let Error::Preflight(e) = &err else {
            panic!("expected a preflight refusal, got {err}")
        };
        assert!(e.message.contains("DECam"), "{}", e.message);
        assert!(e.message.contains("populate_amplifier"), "{}", e.message);
        assert_eq!(e.revision, "dimensions-config-1");
        let mut conn = connect(url);
        assert!(!conn.table_exists("amplifier").unwrap());
        // Nothing ran: not even the revisions planned before the amplifier.
        let after = migrator(url).status().unwrap();
        let pending =
            |s: &ferry::migrator::Status| s.trees.iter().map(|t| t.pending.len()).sum::<usize>();
        assert_eq!(pending(&before), pending(&after));
        assert!(conn
            .columns("dataset")
            .unwrap()
            .iter()
            .any(|c| c.data_type.contains("int")));
    });
}

#[test]
fn the_datasets_patch_is_idempotent_and_online_safe() {
    on_each_backend(|url| {
        v1(url);
        upgrade(url, &["datasets-uuid-1.0.0"]);
        // One of the indexes and one of the keys the patch adds already exist.
        let mut conn = connect(url);
        conn.apply_schema_change(&ferry::backend::SchemaChange::AddIndex(
            ferry::backend::IndexDef {
                name: "dataset_tags_00000001_idx_collection_id".into(),
                table: "dataset_tags_00000001".into(),
                columns: vec!["collection_id".into()],
                unique: false,
                concurrently: false,
                if_not_exists: false,
            },
        ))
        .unwrap();
        drop(conn);
        upgrade(url, &["datasets@head"]);
        let mut conn = connect(url);
        for t in [
            "dataset_tags_00000001",
            "dataset_tags_00000002",
            "dataset_tags_00000003",
            "dataset_calibs_00000003",
        ] {
            let idx: Vec<String> = conn
                .indexes(t)
                .unwrap()
                .into_iter()
                .map(|i| i.name)
                .collect();
            assert!(
                idx.contains(&format!("{t}_idx_collection_id")),
                "{t}: {idx:?}"
            );
            assert!(
                idx.contains(&format!("{t}_idx_dataset_type_id")),
                "{t}: {idx:?}"
            );
            let fks: Vec<String> = conn
                .foreign_keys(t)
                .unwrap()
                .into_iter()
                .map(|k| k.name)
                .collect();
            assert_eq!(
                fks.iter()
                    .filter(|n| **n == format!("{t}_fkey_dataset_type"))
                    .count(),
                1,
                "{t}: {fks:?}"
            );
        }
        let version = conn
            .query(
                "SELECT value FROM butler_attributes WHERE name = ?",
                &[Value::Text(
                    "version:lsst.daf.butler.registry.datasets.byDimensions.ByDimensionsDatasetRecordStorageManagerUUID".into(),
                )],
            )
            .unwrap();
        assert_eq!(version.rows[0][0], Value::Text("1.0.1".into()));
        drop(conn);
        // Down to 1.0.0 and up again: the second run finds everything in place.
        let down = migrator(url)
            .downgrade("datasets-uuid-1.0.0", &UpgradeOptions::default())
            .unwrap();
        assert!(down.succeeded(), "{}", down.failed.unwrap());
        upgrade(url, &["datasets@head"]);
        let project = migrator(url).load().unwrap();
        assert!(
            project
                .graph
                .get("datasets-uuid-1.0.1")
                .unwrap()
                .online_safe
        );
    });
}

#[test]
fn the_collections_patch_keeps_inserts_that_omit_the_new_column_working() {
    on_each_backend(|url| {
        v1(url);
        upgrade(url, &["collections@head"]);
        let mut conn = connect(url);
        // What code written for 2.0.0 does: insert without naming `doc`.
        conn.execute(
            "INSERT INTO collection (name, type) VALUES ('u/someone/old-code', 1)",
            &[],
        )
        .unwrap();
        let doc = conn
            .query(
                "SELECT doc FROM collection WHERE name = 'u/someone/old-code'",
                &[],
            )
            .unwrap();
        assert_eq!(doc.rows[0][0], Value::Text(String::new()));
        let cols = conn.columns("collection").unwrap();
        let col = cols.iter().find(|c| c.name == "doc").unwrap();
        assert!(!col.nullable);
    });
}

#[test]
fn a_partly_upgraded_repository_runs_only_what_is_left() {
    on_each_backend(|url| {
        v1(url);
        upgrade(url, &["collections@head", "datasets-uuid-1.0.0"]);
        let report = upgraded(url, &[]);
        let ran: Vec<&str> = report
            .completed
            .iter()
            .map(|c| c.revision.as_str())
            .collect();
        let mut ran = ran;
        ran.sort();
        assert_eq!(
            ran,
            ["datasets-uuid-1.0.1", "dimensions-config-1", "obs_subaru-1"]
        );
        assert!(migrator(url).status().unwrap().at_heads());
        // And a second run has nothing to do.
        assert!(upgraded(url, &[]).completed.is_empty());
    });
}
