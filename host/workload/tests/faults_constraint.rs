//! A constraint failure inside a step, caused by bad data a migration meets (a second
//! item with an existing code, where the revisions expect codes to be unique), on
//! SQLite and PostgreSQL, for each way a statement can meet it: a set-based `INSERT …
//! SELECT`, `db.bulk_insert` row by row, and a unique constraint added over existing
//! rows (a table rebuild on SQLite). Each time the step rolls back with nothing partial
//! left (same schema digest, same rows), the error names the database as the cause,
//! the table and the duplicated key, and the failure is recorded; once the data is
//! fixed the same revisions apply.

#[path = "../../cli/tests/common/mod.rs"]
mod common;
mod fault_support;
mod reference_support;

use common::{for_each_backend, TestDb};
use fault_support::invariants::{self, LedgerView};
use fault_support::process::{self, says, KillAt};
use fault_support::reference::{self, V1Maker, UUID_REVISION};
use fault_support::tables;
use ferry::ledger::RevisionState;
use std::process::Command;

fn upgrade(db: &TestDb, target: Option<&str>) -> Command {
    let ferry = reference::ferry_with(db, &[reference::fault_fixture("constraint")]);
    let mut cmd = reference::watched(ferry, "10").command();
    cmd.arg("upgrade").args(target);
    cmd
}

/// What a failed run must leave exactly as it found it.
#[derive(Debug, PartialEq)]
struct Unchanged {
    digest: String,
    contents: std::collections::BTreeMap<String, tables::Contents>,
}

fn unchanged(db: &TestDb) -> Unchanged {
    let mut conn = db.connect();
    Unchanged {
        digest: ferry::digest::digest(conn.as_mut()).unwrap().sha256,
        contents: tables::all_contents(conn.as_mut()),
    }
}

#[test]
fn a_unique_violation_rolls_the_step_back_and_names_table_and_key() {
    for_each_backend("faults_constraint", |db| {
        let out = process::run(upgrade(db, Some("items-1")), KillAt::Never);
        assert_eq!(out.code, Some(0), "{}", out.describe());
        // Bad data: a second item with code A-2.
        db.execute("INSERT INTO item (id, code) VALUES (42, 'A-2')");

        let cases = [
            ("copy-1", "copy the codes", "item_code"),
            ("bulk-1", "load the codes", "item_code_row"),
            ("unique-1", "make codes unique", "item"),
        ];
        for (revision, step, table) in cases {
            let before = unchanged(db);
            let out = process::run(upgrade(db, Some(revision)), KillAt::Never);
            let what = format!("[{}] {revision}: {}", db.name(), out.describe());
            assert_eq!(out.code, Some(1), "{what}");
            let named = match db.backend {
                common::Backend::Sqlite => format!("table {table}, key (code) = ('A-2')"),
                common::Backend::Postgres => format!("table: {table}"),
            };
            for needle in ["database failure", step, &named, "code", "A-2"] {
                assert!(
                    says(&out.stderr, needle),
                    "the error says {needle:?}: {what}"
                );
            }
            eprintln!("[{}] {revision}:\n{}", db.name(), out.stderr);
            assert_eq!(unchanged(db), before, "nothing partial remains: {what}");
            let mut conn = db.connect();
            let view = LedgerView::read(conn.as_mut()).unwrap();
            let record = &view.revisions[revision];
            assert_eq!(record.state, RevisionState::Failed, "{record:?}");
            assert_eq!(record.failed_step.as_deref(), Some(step));
            assert!(
                record.error.as_deref().unwrap_or("").contains("A-2"),
                "{record:?}"
            );
            assert!(view.consistency(true).is_empty());
        }

        // The data fixed, the same revisions apply.
        db.execute("DELETE FROM item WHERE id = 42");
        let out = process::run(upgrade(db, None), KillAt::Never);
        assert_eq!(out.code, Some(0), "{}", out.describe());
        assert_eq!(db.count("item_code"), 3);
        assert_eq!(db.count("item_code_row"), 3);
        let status = invariants::usable(
            db,
            reference::ferry_with(db, &[reference::fault_fixture("constraint")]).command(),
        )
        .unwrap();
        let mut conn = db.connect();
        let problems = invariants::at_heads(&status, conn.as_mut(), true);
        assert!(problems.is_empty(), "{problems:#?}");
    });
}

/// The reference migration meets a dataset UUID rule that gives two datasets the same
/// id (an instrument plugin that leaves the detector out): the rewrite step stops on
/// `dataset`'s primary key, naming the table and the duplicated UUID, and leaves every
/// table as it was.
#[test]
fn a_colliding_uuid_rule_stops_the_rewrite_naming_the_key() {
    for backend in [common::Backend::Sqlite, common::Backend::Postgres] {
        let maker = V1Maker::new(backend, "faults_colliding_uuid", 300, 7);
        let Some((db, snapshot)) = maker.make() else {
            continue;
        };
        let root = reference_support::repo_root();
        let roots = [
            root.join("scripts"),
            root.join("tests/fixtures/faults/colliding_uuid"),
            root.join("plugins/obs_lsst"),
            root.join("plugins/obs_subaru"),
        ];
        let before = unchanged(&db);
        let mut cmd = reference::watched(reference::ferry_with(&db, &roots), "10").command();
        // One table step at a time: with parallel steps (PostgreSQL's default) the
        // rewrite of another table that holds the same ids (file_datastore_records) may
        // meet the duplicate first, and this test is about which step names it. A failing
        // parallel step is tested in host/cli/tests/parallel_steps.rs.
        cmd.args(["--jobs", "1", "upgrade", UUID_REVISION]);
        let out = process::run(cmd, KillAt::Never);
        let what = format!("[{}] {}", db.name(), out.describe());
        assert_eq!(out.code, Some(1), "{what}");
        let named = match backend {
            common::Backend::Sqlite => "table dataset, key (id) = ('",
            common::Backend::Postgres => "table: dataset",
        };
        for needle in ["database failure", "rewrite dataset", named, "Key (id)=("] {
            if backend == common::Backend::Sqlite && needle.starts_with("Key") {
                continue;
            }
            assert!(
                says(&out.stderr, needle),
                "the error says {needle:?}: {what}"
            );
        }
        eprintln!("[{}]\n{}", db.name(), out.stderr);
        // Only the id map (Ferry's own table, committed by the steps before) moved.
        assert_eq!(unchanged(&db), before, "{what}");
        let mut conn = db.connect();
        assert!(conn.table_exists(reference::UUID_MAP).unwrap());
        let view = LedgerView::read(conn.as_mut()).unwrap();
        let record = &view.revisions[UUID_REVISION];
        assert_eq!(
            record.failed_step.as_deref(),
            Some("rewrite dataset"),
            "{record:?}"
        );
        drop(conn);

        // The way out: install the right rule (obs_base), forget the steps committed
        // with the faulty one, and rerun: the map is built again, the rewrite succeeds.
        let run = |args: &[&str]| reference::ferry(&db).run(args).success().describe();
        let reset = run(&["reset", UUID_REVISION]);
        assert!(reset.contains("create the id map"), "{reset}");
        run(&["upgrade", UUID_REVISION, "--progress", "none"]);
        let mut conn = db.connect();
        if let Err(problems) = ferry_workload::check_v2(conn.as_mut(), &snapshot) {
            panic!(
                "[{}] v2 rules violated after reset and rerun:\n{}",
                db.name(),
                problems.join("\n")
            );
        }
    }
}
