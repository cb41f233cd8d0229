//! The reference repository end to end: registry v1 created by Ferry's root revisions
//! and filled per WORKLOAD.md, upgraded to the heads, then every rule of WORKLOAD.md's
//! "Registry v2" checked against a snapshot taken before.

mod reference_support;

use ferry::backend::{self, DbUrl, Value};
use ferry::migrator::UpgradeOptions;
use ferry::workload::{self, Snapshot};
use reference_support::migrator;

fn migrate_and_check(url: &str, n: u64) {
    let mut conn = reference_support::create_v1(url, n, 7);
    let before = Snapshot::take(conn.as_mut()).unwrap();
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

#[test]
fn sqlite_v1_to_heads_meets_every_v2_rule() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("repo.sqlite").display());
    migrate_and_check(&url, 12_000);
}

#[test]
fn postgres_v1_to_heads_meets_every_v2_rule() {
    reference_support::postgres_only(|url| migrate_and_check(url, 12_000));
}
