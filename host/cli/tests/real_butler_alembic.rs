//! Repositories already managed by daf_butler_migrate (an `alembic_version` table next
//! to `butler_attributes`): `ferry adopt` maps its rows to Ferry's revisions and refuses
//! a disagreement naming both records; every upgrade, downgrade and stamp keeps the
//! table at the rows daf_butler_migrate would have. The repositories are made by the
//! real daf_butler (host/cli/tests/real_butler_support); the test writes `alembic_version`
//! as `butler migrate stamp` does: one row per manager of `butler_attributes` (and one
//! for the dimension universe), each the Alembic id daf_butler_migrate derives from the
//! manager's type, class and version.

mod common;
mod real_butler_support;

use ferry::backend::Value;
use real_butler_support::*;
use std::collections::BTreeSet;

const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// daf_butler_migrate's revision id of a manager state (documented in its
/// `revision.py`: the last 12 hex digits of a UUID5, in the namespace
/// uuid5(DNS, "lsst.org"), of the parts joined by "-").
fn rev_id(parts: &[&str]) -> String {
    let ns = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_DNS, b"lsst.org");
    let hex = uuid::Uuid::new_v5(&ns, parts.join("-").as_bytes())
        .simple()
        .to_string();
    hex[hex.len() - 12..].to_string()
}

/// The ALEMBIC ids a revision file declares, read as Ferry reads its metadata.
fn declared(file: &str) -> Vec<String> {
    let root = repo_root().join("scripts");
    ferry::metadata::read_revision(&root.join(file), &root)
        .unwrap_or_else(|e| panic!("{file}: {e:?}"))
        .alembic
}

/// Every real revision declares the id daf_butler_migrate gives the same state.
#[test]
fn real_revisions_declare_daf_butler_migrate_ids() {
    assert_eq!(
        rev_id(&["collections"]),
        "8d2e9de2f21f",
        "the documented tree root"
    );
    let managers = [
        (
            "attributes/daf_butler-attributes-1.0.1.rhai",
            "attributes",
            "DefaultButlerAttributeManager",
            "1.0.1",
        ),
        (
            "collections/daf_butler-collections-2.0.0.rhai",
            "collections",
            "SynthIntKeyCollectionManager",
            "2.0.0",
        ),
        (
            "datasets/daf_butler-datasets-uuid-1.0.0.rhai",
            "datasets",
            "ByDimensionsDatasetRecordStorageManagerUUID",
            "1.0.0",
        ),
        (
            "datasets/daf_butler-datasets-uuid-2.0.0.rhai",
            "datasets",
            "ByDimensionsDatasetRecordStorageManagerUUID",
            "2.0.0",
        ),
        (
            "datastores/daf_butler-datastores-0.2.0.rhai",
            "datastores",
            "MonolithicDatastoreRegistryBridgeManager",
            "0.2.0",
        ),
        (
            "datastores/daf_butler-datastores-0.2.1.rhai",
            "datastores",
            "MonolithicDatastoreRegistryBridgeManager",
            "0.2.1",
        ),
        (
            "dimensions/daf_butler-dimensions-6.0.0.rhai",
            "dimensions",
            "StaticDimensionRecordStorageManager",
            "6.0.0",
        ),
        (
            "dimensions/daf_butler-dimensions-6.0.1.rhai",
            "dimensions",
            "StaticDimensionRecordStorageManager",
            "6.0.1",
        ),
        (
            "dimensions/daf_butler-dimensions-6.0.2.rhai",
            "dimensions",
            "StaticDimensionRecordStorageManager",
            "6.0.2",
        ),
        (
            "opaque/daf_butler-opaque-0.2.0.rhai",
            "opaque",
            "ByNameOpaqueTableStorageManager",
            "0.2.0",
        ),
    ];
    for (file, manager, class, version) in managers {
        assert_eq!(
            declared(file),
            vec![rev_id(&[manager, class, version])],
            "{file}"
        );
    }
    for u in 0..=8 {
        let file = format!("dimensions-config/daf_butler-universe-{u}.rhai");
        let want = rev_id(&["dimensions-config", "daf_butler", &u.to_string()]);
        assert_eq!(declared(&file).first(), Some(&want), "{file}");
    }
}

fn connect(repo: &RealRepo) -> Box<dyn ferry::backend::Connection> {
    ferry::backend::connect(&ferry::backend::DbUrl::parse(&repo.url()).expect("URL parses"))
        .expect("connect")
}

fn text(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        other => format!("{other}"),
    }
}

/// The rows `butler migrate stamp` derives from `butler_attributes` (with
/// `--namespace daf_butler` where universe 0 stores none).
fn stamp_rows(repo: &RealRepo) -> BTreeSet<String> {
    let mut conn = connect(repo);
    let rows = conn
        .query("SELECT name, value FROM butler_attributes", &[])
        .expect("read butler_attributes");
    let attrs: std::collections::BTreeMap<String, String> = rows
        .rows
        .iter()
        .map(|r| (text(&r[0]), text(&r[1])))
        .collect();
    let mut out = BTreeSet::new();
    for (name, class) in &attrs {
        let Some(manager) = name.strip_prefix("config:registry.managers.") else {
            continue;
        };
        if let Some(version) = attrs.get(&format!("version:{class}")) {
            let short = class.rsplit('.').next().unwrap();
            out.insert(rev_id(&[manager, short, version]));
        }
    }
    let dims: serde_json::Value =
        serde_json::from_str(&attrs["config:dimensions.json"]).expect("dimensions json");
    let namespace = dims["namespace"].as_str().unwrap_or("daf_butler");
    let version = dims["version"].to_string();
    out.insert(rev_id(&["dimensions-config", namespace, &version]));
    out
}

/// Creates `alembic_version` as Alembic does and writes `rows` into it.
fn write_alembic_version(repo: &RealRepo, rows: &BTreeSet<String>) {
    repo.execute(
        "CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL, \
         CONSTRAINT alembic_version_pkc PRIMARY KEY (version_num))",
        &[],
    );
    for r in rows {
        repo.execute(
            "INSERT INTO alembic_version (version_num) VALUES (?)",
            &[Value::Text(r.clone())],
        );
    }
}

/// What `alembic_version` holds now.
fn alembic_rows(repo: &RealRepo) -> BTreeSet<String> {
    let mut conn = connect(repo);
    conn.query("SELECT version_num FROM alembic_version", &[])
        .expect("read alembic_version")
        .rows
        .iter()
        .map(|r| text(&r[0]))
        .collect()
}

/// A repository stamped by daf_butler_migrate is adopted at the revisions its rows
/// name, at every universe (PostgreSQL: two of them), and the rows stay as they were
/// (at universe 8 the row follows the repair revision a fresh repository is at).
#[test]
fn adopt_maps_alembic_version() {
    let test = "adopt_maps_alembic_version";
    for b in BACKENDS {
        let universes: &[u32] = match b {
            Backend::Sqlite => &[0, 1, 2, 3, 4, 5, 6, 7, 8],
            Backend::Postgres => &[3, 7],
        };
        for &u in universes {
            let Some(repo) = RealRepo::make(test, b, u) else {
                break;
            };
            let stamped = stamp_rows(&repo);
            assert_eq!(
                stamped.len(),
                7,
                "[{}] universe {u}: one row per tree",
                b.name()
            );
            write_alembic_version(&repo, &stamped);
            repo.ferry_ok(&["adopt"]);
            // A fresh universe-8 repository has no visit.day_obs gap: it is in the
            // state of the repair revision, which `stamp`'s universe-8 id also stands
            // for (its second ALEMBIC id), so the row agrees.
            let revision = if u == 8 {
                "daf_butler-universe-8-bugfix-1".to_string()
            } else {
                format!("daf_butler-universe-{u}")
            };
            assert_eq!(
                repo.current("dimensions-config"),
                vec![revision],
                "[{}] universe {u}",
                b.name()
            );
            // The row then names that revision's own id.
            let expected: BTreeSet<String> = stamped
                .iter()
                .map(|r| {
                    if u == 8 && r == "aa7a2f893cba" {
                        "bd584de3863a".to_string()
                    } else {
                        r.clone()
                    }
                })
                .collect();
            assert_eq!(alembic_rows(&repo), expected, "[{}] universe {u}", b.name());
        }
    }
}

/// Rows that say another universe than `butler_attributes`, or a revision Ferry does
/// not know, are refused naming both records; nothing is recorded.
#[test]
fn adopt_refuses_a_disagreement_naming_both_records() {
    let test = "adopt_refuses_a_disagreement_naming_both_records";
    for b in BACKENDS {
        let Some(repo) = RealRepo::make(test, b, 6) else {
            continue;
        };
        let mut rows = stamp_rows(&repo);
        let six = rev_id(&["dimensions-config", "daf_butler", "6"]);
        let seven = rev_id(&["dimensions-config", "daf_butler", "7"]);
        assert!(rows.remove(&six));
        rows.insert(seven.clone());
        write_alembic_version(&repo, &rows);
        let out = repo.ferry(&["adopt"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "[{}] {err}", b.name());
        for part in [
            format!("alembic_version holds {seven} (Ferry revision daf_butler-universe-7)"),
            format!("butler_attributes says daf_butler-universe-6 (daf_butler_migrate {six})"),
            "dimensions-config".to_string(),
        ] {
            assert!(err.contains(&part), "[{}] {part:?} in:\n{err}", b.name());
        }
        assert!(
            !connect(&repo).table_exists("ferry_revisions").unwrap(),
            "[{}] nothing recorded",
            b.name()
        );

        // An id no Ferry revision declares (a manager version Ferry does not know).
        repo.execute(
            "DELETE FROM alembic_version WHERE version_num = ?",
            &[Value::Text(seven.clone())],
        );
        let stranger = rev_id(&["dimensions-config", "daf_butler", "99"]);
        repo.execute(
            "INSERT INTO alembic_version (version_num) VALUES (?)",
            &[Value::Text(stranger.clone())],
        );
        let out = repo.ferry(&["adopt"]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "[{}] {err}", b.name());
        assert!(
            err.contains(&format!(
                "holds revision {stranger}, which no Ferry revision"
            )),
            "[{}] {err}",
            b.name()
        );
    }
}

/// After each upgrade, downgrade and stamp, `alembic_version` holds exactly the rows
/// `butler migrate stamp` would write from `butler_attributes` (what daf_butler_migrate
/// checks before it runs anything), with the new universe's head.
#[test]
fn upgrade_downgrade_and_stamp_keep_alembic_version() {
    let test = "upgrade_downgrade_and_stamp_keep_alembic_version";
    for b in BACKENDS {
        let Some(repo) = RealRepo::make(test, b, 6) else {
            continue;
        };
        write_alembic_version(&repo, &stamp_rows(&repo));
        repo.ferry_ok(&["adopt"]);
        let universe = |u: u32| rev_id(&["dimensions-config", "daf_butler", &u.to_string()]);

        repo.ferry_ok(&["upgrade", "daf_butler-universe-7"]);
        let rows = alembic_rows(&repo);
        assert!(rows.contains(&universe(7)), "[{}] {rows:?}", b.name());
        assert_eq!(rows, stamp_rows(&repo), "[{}] after 6 -> 7", b.name());

        // Past universe 8 the repair of daf_butler_migrate's visit.day_obs gap runs
        // too, and the universe row is its id, as after `butler migrate upgrade`.
        repo.ferry_ok(&["upgrade"]);
        assert_eq!(repo.judge()["universe"], 8, "[{}]", b.name());
        let rows = alembic_rows(&repo);
        let repaired = "bd584de3863a".to_string();
        assert!(rows.contains(&repaired) && !rows.contains(&universe(7)));
        let expected: BTreeSet<String> = stamp_rows(&repo)
            .into_iter()
            .map(|r| {
                if r == universe(8) {
                    repaired.clone()
                } else {
                    r
                }
            })
            .collect();
        assert_eq!(rows, expected, "[{}] after 7 -> 8", b.name());

        repo.ferry_ok(&["downgrade", "daf_butler-universe-7"]);
        assert_eq!(repo.judge()["universe"], 7, "[{}]", b.name());
        let rows = alembic_rows(&repo);
        assert!(rows.contains(&universe(7)) && !rows.contains(&universe(8)));
        assert_eq!(rows, stamp_rows(&repo), "[{}] after 8 -> 7", b.name());

        // A stamp records without running: the table follows the ledger (here past
        // what butler_attributes says, as the operator asked).
        repo.ferry_ok(&["stamp", "daf_butler-universe-8"]);
        let rows = alembic_rows(&repo);
        assert!(
            rows.contains(&universe(8)) && !rows.contains(&universe(7)),
            "[{}] {rows:?}",
            b.name()
        );
        assert_eq!(rows.len(), 7, "[{}] {rows:?}", b.name());
    }
}

/// A repository without `alembic_version` stays without it.
#[test]
fn no_alembic_version_is_created() {
    let test = "no_alembic_version_is_created";
    let Some(repo) = RealRepo::make(test, Backend::Sqlite, 7) else {
        return;
    };
    repo.ferry_ok(&["adopt"]);
    repo.ferry_ok(&["upgrade"]);
    assert!(!connect(&repo).table_exists("alembic_version").unwrap());
}

/// A repository at datasets manager 1.0.0 stamped by daf_butler_migrate
/// (`2101fbf51ad3`): adopted at `daf_butler-datasets-uuid-1.0.0` with the rows kept;
/// after the upgrade to 2.0.0 the rows are what `stamp` derives from the new
/// `butler_attributes` (`4e2d7a28475b`), and after the downgrade again the first ones.
#[test]
fn datasets_1_0_0_stamped_by_daf_butler_migrate() {
    let test = "datasets_1_0_0_stamped_by_daf_butler_migrate";
    for b in BACKENDS {
        let Some(repo) = RealRepo::make_with(test, b, 7, &["--datasets-version", "1.0.0"]) else {
            continue;
        };
        let stamped = stamp_rows(&repo);
        assert!(stamped.contains("2101fbf51ad3"), "[{b:?}] {stamped:?}");
        write_alembic_version(&repo, &stamped);
        repo.ferry_ok(&["adopt"]);
        assert_eq!(repo.current("datasets"), ["daf_butler-datasets-uuid-1.0.0"]);
        assert_eq!(alembic_rows(&repo), stamped, "[{b:?}] adopt keeps the rows");
        repo.ferry_ok(&["upgrade", "datasets@head"]);
        let after = alembic_rows(&repo);
        assert_eq!(after, stamp_rows(&repo), "[{b:?}]");
        assert!(
            after.contains("4e2d7a28475b") && !after.contains("2101fbf51ad3"),
            "[{b:?}] {after:?}"
        );
        repo.ferry_ok(&["downgrade", "daf_butler-datasets-uuid-1.0.0"]);
        assert_eq!(
            alembic_rows(&repo),
            stamped,
            "[{b:?}] back to the stamped rows"
        );
    }
}
