//! Every type in the root API's signatures has a public name an application can write:
//! the errors through `ferry::error`, the ledger records at the root. Each test here
//! provokes the failure or reads the record on a real database through the root API and
//! matches it by those names, as an embedding application would. (That no type is left
//! without a name is checked by `-D unnameable_types` in .ci/run's clippy of the library
//! alone; this file checks that the names are the ones documented and carry what they
//! say.)

mod common;
use common::*;

use ferry::error::{
    DatabasesError, DbError, DbErrorKind, DiscoveryError, GraphError, LateBefore, LedgerError,
    Location, LockError, MetadataError, PlanError, RenderError, RunError, SpecError, TargetError,
    TreeOwned, UrlError,
};
use ferry::{
    Error, Migrator, PluginTestError, PluginTestOptions, RevisionRecord, RevisionState, SourceDiff,
    SourceRecord, UpgradeOptions,
};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// A migrator over `url` and `roots`, without a stdlib.
fn migrator(url: &str, roots: &[PathBuf]) -> Migrator {
    Migrator::builder()
        .url(url)
        .roots(roots.iter().cloned())
        .stdlib(None)
        .build()
        .unwrap_or_else(|e| panic!("build over {url}: {e}"))
}

fn scripts(fixture_name: &str) -> Vec<PathBuf> {
    vec![fixture(fixture_name).join("scripts")]
}

fn upgrade(m: &Migrator, targets: &[&str]) -> Result<ferry::Report, Error> {
    let targets: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
    m.upgrade(&targets, &UpgradeOptions::default())
}

/// Upgrades to `targets` (every head when empty); the number of revisions applied.
fn apply(m: &Migrator, targets: &[&str]) -> usize {
    let report = upgrade(m, targets).unwrap_or_else(|e| panic!("upgrade {targets:?}: {e}"));
    report.completed.len()
}

/// Copies the directory `from` to `to` (script trees are small and flat).
fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

#[test]
fn bad_urls_are_url_errors() {
    match Migrator::new("mysql://x/db") {
        Err(Error::Url(UrlError::Scheme(url))) => assert_eq!(url, "mysql://x/db"),
        other => panic!("expected UrlError::Scheme, got {:?}", other.err()),
    }
    let built = Migrator::builder()
        .url("postgresql://u:secret@h/db?schema=1bad")
        .build();
    match built {
        Err(Error::Url(UrlError::Malformed { url, reason })) => {
            assert!(url.contains("u:***@h") && !url.contains("secret"), "{url}");
            assert!(reason.contains("1bad"), "{reason}");
        }
        other => panic!("expected UrlError::Malformed, got {:?}", other.err()),
    }
}

#[test]
fn a_missing_database_is_a_db_error_of_kind_missing_database() {
    let db = TestDb::sqlite();
    let url = format!("sqlite:{}", db.dir().join("absent/repo.sqlite").display());
    let e: DbError = match migrator(&url, &scripts("linear")).status() {
        Err(Error::Db(e)) => e,
        other => panic!("expected Error::Db, got {:?}", other.err()),
    };
    assert_eq!(e.kind(), DbErrorKind::MissingDatabase, "{e}");
    assert!(e.url().is_some_and(|u| u.contains("absent")), "{e}");

    // PostgreSQL: a schema that is not there.
    let Some(base) = pg_base_url() else { return };
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!(
        "{base}{sep}schema=ferry_absent_{}",
        uuid::Uuid::new_v4().simple()
    );
    match migrator(&url, &scripts("linear")).status() {
        Err(Error::Db(e)) => assert_eq!(e.kind(), DbErrorKind::MissingDatabase, "{e}"),
        other => panic!("expected Error::Db, got {:?}", other.err()),
    }
}

#[test]
fn ledger_records_are_read_by_their_types() {
    for_each_backend("api_names_records", |db| {
        // A copy of `linear`, so that one file can be edited after it was applied.
        let root = db.dir().join("scripts");
        copy_dir(&fixture("linear").join("scripts"), &root);
        let m = migrator(db.url(), std::slice::from_ref(&root));
        assert_eq!(apply(&m, &[]), 3, "[{}]", db.name());

        let info = m.show("alpha-2").unwrap();
        let record: RevisionRecord = info.record.expect("an applied revision has a record");
        let state: RevisionState = record.state;
        assert_eq!(state, RevisionState::Applied, "[{}]", db.name());
        assert_eq!(state.as_str(), "applied");
        assert_eq!(
            (record.tree.as_str(), record.version.as_str()),
            ("alpha", "1.1.0")
        );
        assert_eq!(record.checksum, info.checksum, "[{}]", db.name());
        let sources: &[SourceRecord] = &record.sources;
        assert!(
            sources
                .iter()
                .any(|s| s.kind == "revision" && s.path.ends_with("002_label.rhai")),
            "[{}] {sources:?}",
            db.name()
        );

        // Edit the applied script: `show` names the change and diffs it.
        let file = root.join("alpha/002_label.rhai");
        let text = std::fs::read_to_string(&file).unwrap();
        std::fs::write(&file, text.replace("VARCHAR(64)", "VARCHAR(128)")).unwrap();
        // (A migrator reads the scripts once: a new one sees the edit.)
        let info = migrator(db.url(), std::slice::from_ref(&root))
            .show("alpha-2")
            .unwrap();
        assert!(info.changed, "[{}]", db.name());
        let diffs: &[SourceDiff] = &info.diffs;
        assert_eq!(diffs.len(), 1, "[{}] {diffs:?}", db.name());
        assert!(diffs[0].path.ends_with("002_label.rhai"), "{:?}", diffs[0]);
        assert!(diffs[0].diff.contains("+") && diffs[0].diff.contains("VARCHAR(128)"));
    });
}

#[test]
fn a_failed_revision_is_unfinished_in_state_failed() {
    for_each_backend("api_names_failed", |db| {
        let m = migrator(db.url(), &scripts("failing"));
        match upgrade(&m, &[]) {
            Err(Error::Failed { report }) => {
                assert_eq!(report.completed.len(), 1, "[{}]", db.name())
            }
            other => panic!("[{}] expected Error::Failed, got {other:?}", db.name()),
        }
        let status = m.status().unwrap();
        let unfinished = &status.trees[0].unfinished;
        assert_eq!(unfinished.len(), 1, "[{}] {unfinished:?}", db.name());
        let state: RevisionState = unfinished[0].state;
        assert_eq!(state, RevisionState::Failed, "[{}]", db.name());
        let record = m.show("alpha-2").unwrap().record.unwrap();
        assert_eq!(record.state, RevisionState::Failed);
        assert!(record.error.is_some_and(|e| e.contains("alpha_tagz")));
    });
}

#[test]
fn broken_scripts_are_discovery_and_metadata_errors() {
    let db = TestDb::sqlite();
    match migrator(db.url(), &scripts("broken_syntax")).status() {
        Err(Error::Discovery(DiscoveryError::Metadata(faults))) => {
            let fault: &MetadataError = &faults[0];
            match fault {
                MetadataError::Syntax { line, column, .. } => {
                    assert!(*line > 0 && *column > 0, "{fault}")
                }
                other => panic!("expected MetadataError::Syntax, got {other:?}"),
            }
            assert!(fault.path().ends_with("002_broken.rhai"), "{fault}");
        }
        other => panic!("expected DiscoveryError::Metadata, got {:?}", other.err()),
    }
    let missing = db.dir().join("no_scripts_here");
    match migrator(db.url(), std::slice::from_ref(&missing)).status() {
        Err(Error::Discovery(DiscoveryError::MissingRoot(root))) => assert_eq!(root, missing),
        other => panic!(
            "expected DiscoveryError::MissingRoot, got {:?}",
            other.err()
        ),
    }
}

#[test]
fn graph_faults_are_graph_errors_with_locations() {
    let db = TestDb::sqlite();
    match migrator(db.url(), &scripts("broken_unknown_parent")).status() {
        Err(Error::Graph(GraphError::UnknownParent { id, parent, at, .. })) => {
            assert_eq!((id.as_str(), parent.as_str()), ("alpha-2", "alpha-0"));
            let at: Location = at;
            assert!(at.path.ends_with("002_orphan.rhai") && at.line > 0, "{at}");
        }
        other => panic!("expected GraphError::UnknownParent, got {:?}", other.err()),
    }
    let before = fixture("before");
    let roots = [before.join("core"), before.join("obs_test_joins_core")];
    match migrator(db.url(), &roots).status() {
        Err(Error::Graph(GraphError::TreeOwned(owned))) => {
            let owned: TreeOwned = *owned;
            assert_eq!(owned.tree, "dimensions");
            assert_eq!(owned.owner_revision, "dimensions-1");
            assert!(owned.owner.ends_with("core"), "{owned}");
        }
        other => panic!("expected GraphError::TreeOwned, got {:?}", other.err()),
    }
}

#[test]
fn unreachable_targets_are_target_and_plan_errors() {
    for_each_backend("api_names_targets", |db| {
        let m = migrator(db.url(), &scripts("linear"));
        match upgrade(&m, &["alpha-9"]) {
            Err(Error::Target(TargetError::UnknownRevision { id, close })) => {
                assert_eq!(id, "alpha-9");
                assert!(close.iter().any(|c| c.starts_with("alpha-")), "{close:?}");
            }
            other => panic!("[{}] expected TargetError, got {other:?}", db.name()),
        }
        assert_eq!(apply(&m, &["alpha-1"]), 1);
        match m.downgrade("alpha-3", &UpgradeOptions::default()) {
            Err(Error::Plan(PlanError::NotApplied(ids))) => assert_eq!(ids, ["alpha-3"]),
            other => panic!(
                "[{}] expected PlanError::NotApplied, got {other:?}",
                db.name()
            ),
        }
        // Scripts that do not know what the database records.
        match upgrade(&migrator(db.url(), &scripts("merge")), &[]) {
            Err(Error::Plan(PlanError::UnknownApplied(ids))) => assert_eq!(ids, ["alpha-1"]),
            other => panic!(
                "[{}] expected PlanError::UnknownApplied, got {other:?}",
                db.name()
            ),
        }
    });
}

#[test]
fn a_late_before_is_a_plan_error_naming_the_revisions() {
    for_each_backend("api_names_late", |db| {
        // A plugin whose BEFORE names a core revision that is already applied.
        let before = fixture("before");
        assert_eq!(apply(&migrator(db.url(), &[before.join("core")]), &[]), 2);
        let late = migrator(db.url(), &[before.join("core"), before.join("obs_test")]);
        match upgrade(&late, &[]) {
            Err(Error::Plan(PlanError::LateBefore(list))) => {
                let first: &LateBefore = &list[0];
                assert_eq!(first.revision, "obs_test-1");
                assert_eq!(first.applied, ["dimensions-config-1"]);
            }
            other => panic!(
                "[{}] expected PlanError::LateBefore, got {other:?}",
                db.name()
            ),
        }
    });
}

#[test]
fn a_held_lock_is_a_lock_error_naming_its_holder() {
    for_each_backend("api_names_lock", |db| {
        let m = migrator(db.url(), &scripts("linear"));
        assert_eq!(apply(&m, &["alpha-1"]), 1);
        // Another migrator: a connection holding the backend's migration lock.
        let holder = ferry::LockHolder {
            host: "elsewhere".into(),
            pid: 4242,
            user: "other".into(),
            since: 1_700_000_000,
        };
        let mut other = db.connect();
        assert_eq!(
            other.try_lock(&holder).unwrap(),
            ferry::backend::LockAttempt::Acquired
        );
        let m = Migrator::builder()
            .url(db.url())
            .roots(scripts("linear"))
            .stdlib(None)
            .lock_timeout(Duration::ZERO)
            .build()
            .unwrap();
        match upgrade(&m, &[]) {
            Err(Error::Run(RunError::Lock(LockError::Held { holder, .. }))) => {
                // SQLite keeps the record the holder wrote; PostgreSQL names the
                // session's process, this one.
                let holder = holder.expect("the holder is named");
                assert!(
                    [4242, std::process::id()].contains(&holder.pid),
                    "[{}] {holder}",
                    db.name()
                );
            }
            other => panic!("[{}] expected LockError::Held, got {other:?}", db.name()),
        }
        other.unlock().unwrap();
        assert_eq!(apply(&m, &[]), 2, "[{}] free again", db.name());
    });
}

#[test]
fn a_ledger_from_a_newer_ferry_is_a_ledger_error() {
    for_each_backend("api_names_ledger", |db| {
        let m = migrator(db.url(), &scripts("linear"));
        assert_eq!(apply(&m, &["alpha-1"]), 1);
        db.execute("UPDATE ferry_meta SET value = '99' WHERE key = 'ledger_version'");
        // Refused as the lock is taken: recording the holder would write to the ledger.
        match upgrade(&m, &[]) {
            Err(Error::Run(RunError::Lock(LockError::Ledger(LedgerError::TooNew { found })))) => {
                assert_eq!(found, 99, "[{}]", db.name())
            }
            other => panic!(
                "[{}] expected LedgerError::TooNew, got {other:?}",
                db.name()
            ),
        }
        assert_eq!(
            db.revision_state("alpha-2"),
            None,
            "[{}] nothing ran",
            db.name()
        );
    });
}

#[test]
fn a_bad_placement_is_a_databases_error() {
    let db = TestDb::sqlite();
    let other = format!("sqlite:{}", db.dir().join("other.sqlite").display());
    let built = Migrator::builder()
        .url(db.url())
        .database("main", &other, ["alpha"])
        .build();
    match built {
        Err(Error::Databases(DatabasesError::MainName(name))) => assert_eq!(name, "main"),
        other => panic!("expected DatabasesError::MainName, got {:?}", other.err()),
    }
    let m = Migrator::builder()
        .url(db.url())
        .database("install", &other, ["no_such_tree"])
        .roots(scripts("linear"))
        .stdlib(None)
        .build()
        .unwrap();
    match m.status() {
        Err(Error::Databases(DatabasesError::UnknownTrees { name, trees, known })) => {
            assert_eq!(
                (name.as_str(), trees.as_slice()),
                ("install", &["no_such_tree".to_string()][..])
            );
            assert_eq!(known, ["alpha"]);
        }
        other => panic!(
            "expected DatabasesError::UnknownTrees, got {:?}",
            other.err()
        ),
    }
}

#[test]
fn a_bad_plugin_test_spec_is_a_spec_error() {
    let work = tempfile::tempdir().unwrap();
    let plugin = work.path().join("obs_test");
    copy_dir(&fixture("plugin").join("plugins/obs_test"), &plugin);
    std::fs::write(plugin.join("ferry-test.toml"), "[start]\nsample = 10\n").unwrap();
    let options = PluginTestOptions {
        plugin: plugin.clone(),
        roots: vec![fixture("plugin").join("scripts")],
        stdlib: None,
        config: Default::default(),
        limits: Default::default(),
        postgres: None,
    };
    match ferry::run_plugin_test(&options, &mut |_| {}) {
        Err(PluginTestError::Spec(spec)) => {
            let spec: SpecError = spec;
            assert!(spec.path.ends_with("ferry-test.toml"), "{spec}");
            assert_eq!(spec.line, 1, "{spec}");
            assert!(spec.message.contains("[[expect]]"), "{spec}");
        }
        other => panic!("expected PluginTestError::Spec, got {:?}", other.err()),
    }
}

#[test]
fn a_value_an_sql_script_cannot_hold_is_a_conversion() {
    // `upgrade --sql` renders bound values as literals; one PostgreSQL text cannot hold
    // reaches the application as the database error it converts into.
    let e = DbError::from(RenderError::NulInPostgresText("a\0b".into()));
    assert_eq!(e.kind(), DbErrorKind::Conversion, "{e}");
    assert!(e.to_string().contains("NUL"), "{e}");
}
