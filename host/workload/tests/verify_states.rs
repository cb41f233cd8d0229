//! `verify` on one fixture per repository state (no database, empty, unversioned and
//! recognised, unversioned and unknown, behind, partly upgraded, current, ahead,
//! unfinished, misplaced), each with and without `auto_migrate`, with the `install`
//! tree in the application's database (combined) and in its own (separate), on SQLite
//! and PostgreSQL. Fixtures: tests/fixtures/embed/.

#[path = "../../cli/tests/common/mod.rs"]
mod common;

use common::embed_root as root;
use common::{pg_base_url, Backend, TestDb};
use ferry::backend::{connect, DbUrl};
use ferry::compat::Access;
use ferry::migrator::{Migrator, TreeState, UpgradeOptions, Verification, VerifyOptions};
use std::path::PathBuf;
use std::time::Duration;

/// A database for one test: a fresh one, or (PostgreSQL) a schema that does not exist
/// yet, dropped at the end if something created it.
enum Slot {
    Db(TestDb),
    Missing { url: String, schema: String },
}

impl Slot {
    fn url(&self) -> String {
        match self {
            Slot::Db(db) => db.url().to_string(),
            Slot::Missing { url, .. } => url.clone(),
        }
    }

    /// A direct connection (for setting up a state).
    fn conn(&self) -> Box<dyn ferry::backend::Connection> {
        connect(&DbUrl::parse(&self.url()).unwrap()).unwrap()
    }

    fn execute(&self, sql: &str) {
        self.conn()
            .execute_batch(sql)
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    fn tables(&self) -> Vec<String> {
        self.conn().tables("%").unwrap()
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Slot::Missing { schema, .. } = self {
            if let Some(base) = pg_base_url() {
                if let Ok(mut admin) = connect(&DbUrl::parse(&base).unwrap()) {
                    let _ =
                        admin.execute_batch(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"));
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    Combined,
    Separate,
}

/// The repository of one case: the main database, and the install database when separate.
struct Repo {
    backend: Backend,
    layout: Layout,
    main: Slot,
    install: Option<Slot>,
}

impl Repo {
    /// Fresh, empty, existing databases.
    fn new(backend: Backend, layout: Layout) -> Repo {
        let slot = || match backend {
            Backend::Sqlite => {
                let db = TestDb::sqlite();
                let s = Slot::Db(db);
                s.conn(); // opening creates the file: an empty database
                s
            }
            Backend::Postgres => Slot::Db(TestDb::postgres("verify_states").unwrap()),
        };
        Repo {
            backend,
            layout,
            main: slot(),
            install: (layout == Layout::Separate).then(slot),
        }
    }

    /// Databases that do not exist at all.
    fn missing(backend: Backend, layout: Layout) -> Repo {
        let slot = || match backend {
            Backend::Sqlite => Slot::Db(TestDb::sqlite()),
            Backend::Postgres => {
                let base = pg_base_url().unwrap();
                let schema = format!("embed_nodb_{}", uuid::Uuid::new_v4().simple());
                let sep = if base.contains('?') { '&' } else { '?' };
                Slot::Missing {
                    url: format!("{base}{sep}schema={schema}"),
                    schema,
                }
            }
        };
        Repo {
            backend,
            layout,
            main: slot(),
            install: (layout == Layout::Separate).then(slot),
        }
    }

    fn install_slot(&self) -> &Slot {
        self.install.as_ref().unwrap_or(&self.main)
    }

    fn migrator(&self, roots: &[&str]) -> Migrator {
        let mut b = Migrator::builder()
            .url(&self.main.url())
            .roots(roots.iter().map(|r| root(r)))
            .stdlib(None)
            .lock_timeout(Duration::from_secs(5));
        if let Some(i) = &self.install {
            b = b.database("install", &i.url(), ["install"]);
        }
        b.build().unwrap()
    }

    /// Upgrades to `targets`; panics if a revision fails (`Error::Failed`).
    fn upgrade(&self, roots: &[&str], targets: &[&str]) {
        let targets: Vec<String> = targets.iter().map(|t| t.to_string()).collect();
        let _report = self
            .migrator(roots)
            .upgrade(&targets, &UpgradeOptions::default())
            .unwrap_or_else(|e| panic!("{}: upgrade: {e}", self.name()));
    }

    fn verify(&self, roots: &[&str], options: &VerifyOptions) -> Verification {
        self.migrator(roots)
            .verify(options)
            .unwrap_or_else(|e| panic!("{}: verify: {e}", self.name()))
    }

    /// Removes every trace of Ferry, as if another tool had made the repository.
    fn drop_ledgers(&self) {
        for slot in [Some(&self.main), self.install.as_ref()]
            .into_iter()
            .flatten()
        {
            for t in slot.tables() {
                if t.starts_with("ferry_") {
                    slot.execute(&format!("DROP TABLE {t}"));
                }
            }
        }
    }

    fn name(&self) -> String {
        format!("[{:?} {:?}]", self.backend, self.layout)
    }
}

fn backends() -> Vec<Backend> {
    let mut b = vec![Backend::Sqlite];
    if pg_base_url().is_some() {
        b.push(Backend::Postgres);
    } else {
        eprintln!("verify_states: PostgreSQL part skipped, FERRY_TEST_PG_URL is not set");
    }
    b
}

/// Runs `case` for every backend and layout.
fn each(case: impl Fn(Backend, Layout)) {
    for backend in backends() {
        for layout in [Layout::Combined, Layout::Separate] {
            case(backend, layout);
        }
    }
}

fn state(v: &Verification, tree: &str) -> TreeState {
    v.tree(tree)
        .unwrap_or_else(|| panic!("no tree {tree} in {v:#?}"))
        .state
}

fn auto() -> VerifyOptions {
    VerifyOptions::default().auto_migrate(true)
}

/// After auto-migrate: both trees current, the code may write.
fn assert_migrated_to_current(repo: &Repo, v: &Verification, ran: usize) {
    let name = repo.name();
    assert_eq!(state(v, "app"), TreeState::Current, "{name} {v:#?}");
    assert_eq!(state(v, "install"), TreeState::Current, "{name} {v:#?}");
    assert!(v.writable(), "{name} {v:#?}");
    let report = v.migrated.as_ref().expect("auto-migrate ran");
    assert!(report.succeeded(), "{name} {report:?}");
    assert_eq!(report.completed.len(), ran, "{name} {report:?}");
    assert!(
        repo.main.tables().contains(&"app_item".to_string()),
        "{name}"
    );
    assert!(
        repo.install_slot()
            .tables()
            .contains(&"install_repo".to_string()),
        "{name}"
    );
    if let Some(install) = &repo.install {
        assert!(
            !repo.main.tables().contains(&"install_repo".to_string()),
            "{name}"
        );
        assert!(
            !install.tables().contains(&"app_item".to_string()),
            "{name}"
        );
    }
}

#[test]
fn no_database() {
    each(|backend, layout| {
        let repo = Repo::missing(backend, layout);
        let _ = layout;
        let v = repo.verify(&["base"], &VerifyOptions::default());
        let name = repo.name();
        assert_eq!(state(&v, "app"), TreeState::NoDatabase, "{name} {v:#?}");
        assert_eq!(state(&v, "install"), TreeState::NoDatabase, "{name}");
        assert_eq!(v.access.access, Access::Refuse, "{name}");
        assert!(v.databases.iter().all(|d| !d.exists), "{name} {v:#?}");
        assert_eq!(v.plan, ["app-1", "app-2", "install-1"], "{name}");
        // Verify without auto-migrate created nothing.
        if backend == Backend::Sqlite {
            let path = repo.main.url().trim_start_matches("sqlite:").to_string();
            assert!(
                !std::path::Path::new(&path).exists(),
                "{name}: {path} created"
            );
        }
        let v = repo.verify(&["base"], &auto());
        assert_migrated_to_current(&repo, &v, 3);
    });
}

#[test]
fn empty() {
    each(|backend, layout| {
        let repo = Repo::new(backend, layout);
        let v = repo.verify(&["base"], &VerifyOptions::default());
        let name = repo.name();
        assert_eq!(state(&v, "app"), TreeState::Empty, "{name} {v:#?}");
        assert_eq!(state(&v, "install"), TreeState::Empty, "{name}");
        assert_eq!(v.access.access, Access::Refuse, "{name}");
        assert!(
            repo.main.tables().is_empty(),
            "{name}: verify wrote something"
        );
        let v = repo.verify(&["base"], &auto());
        assert_migrated_to_current(&repo, &v, 3);
        // Created and recorded: the history has every revision, and a second verify
        // has nothing to do.
        let v = repo.verify(&["base"], &auto());
        assert!(v.migrated.is_none() && v.writable(), "{name} {v:#?}");
    });
}

#[test]
fn unversioned_and_recognised() {
    each(|backend, layout| {
        let repo = Repo::new(backend, layout);
        repo.upgrade(&["base"], &[]);
        repo.drop_ledgers();
        let name = repo.name();
        let v = repo.verify(&["base"], &VerifyOptions::default());
        for (tree, rev) in [("app", "app-2"), ("install", "install-1")] {
            let t = v.tree(tree).unwrap();
            assert_eq!(t.state, TreeState::UnversionedRecognised, "{name} {v:#?}");
            let r = t.recognised.as_ref().unwrap();
            assert_eq!(r.revision.as_deref(), Some(rev), "{name}");
            assert!(r.by.contains("probe"), "{name} {r:?}");
            assert_eq!(t.access.access, Access::Refuse, "{name}");
        }
        assert_eq!(v.tree("app").unwrap().version.as_deref(), Some("1.1.0"));
        // auto-migrate alone does not adopt.
        let v = repo.verify(&["base"], &auto());
        let why = v.not_migrated.as_deref().unwrap_or_default();
        assert!(why.contains("unversioned"), "{name} {v:#?}");
        assert!(v.migrated.is_none(), "{name}");
        // With adopt: one database is adopted and then current; two are refused.
        let v = repo.verify(&["base"], &auto().adopt(true));
        match layout {
            Layout::Combined => {
                assert_eq!(state(&v, "app"), TreeState::Current, "{name} {v:#?}");
                assert_eq!(state(&v, "install"), TreeState::Current, "{name}");
                assert!(v.writable(), "{name}");
            }
            Layout::Separate => {
                let why = v.not_migrated.as_deref().unwrap_or_default();
                assert!(why.contains("unversioned"), "{name} {v:#?}");
                assert_eq!(state(&v, "app"), TreeState::UnversionedRecognised);
            }
        }
    });
}

#[test]
fn unversioned_and_unknown() {
    each(|backend, layout| {
        let repo = Repo::new(backend, layout);
        repo.upgrade(&["base"], &[]);
        repo.drop_ledgers();
        repo.main
            .execute("UPDATE app_meta SET value = '0.9.0' WHERE name = 'version'");
        let name = repo.name();
        for options in [VerifyOptions::default(), auto(), auto().adopt(true)] {
            let v = repo.verify(&["base"], &options);
            let app = v.tree("app").unwrap();
            assert_eq!(app.state, TreeState::UnversionedUnknown, "{name} {v:#?}");
            assert!(
                app.detail.contains("unknown app version 0.9.0"),
                "{name} {app:?}"
            );
            assert_eq!(
                state(&v, "install"),
                TreeState::UnversionedRecognised,
                "{name}"
            );
            assert_eq!(v.access.access, Access::Refuse, "{name}");
            assert!(v.migrated.is_none(), "{name}");
            if options.auto_migrate {
                assert!(v.not_migrated.is_some(), "{name}");
            }
        }
        // Tables no probe claims at all: nothing is recognised, nothing is guessed.
        let other = Repo::new(backend, layout);
        other.main.execute("CREATE TABLE somebody_else (x INTEGER)");
        if let Some(i) = &other.install {
            i.execute("CREATE TABLE somebody_else (x INTEGER)");
        }
        let v = other.verify(&["base"], &auto());
        assert_eq!(
            state(&v, "app"),
            TreeState::UnversionedUnknown,
            "{name} {v:#?}"
        );
        assert_eq!(
            state(&v, "install"),
            TreeState::UnversionedUnknown,
            "{name}"
        );
        assert!(v.tree("app").unwrap().detail.contains("somebody_else"));
        assert!(v.migrated.is_none(), "{name}");
    });
}

#[test]
fn behind_and_partly_upgraded() {
    each(|backend, layout| {
        let name = format!("[{backend:?} {layout:?}]");
        // Legacy: only app-1 was ever applied.
        let repo = Repo::new(backend, layout);
        repo.upgrade(&["base"], &["app-1"]);
        let v = repo.verify(&["base"], &VerifyOptions::default());
        let app = v.tree("app").unwrap();
        assert_eq!(app.state, TreeState::Behind, "{name} {v:#?}");
        assert_eq!(app.pending, ["app-2"], "{name}");
        assert_eq!(app.version.as_deref(), Some("1.0.0"));
        // install: pending in a versioned database, or a new empty one of its own.
        let install = match layout {
            Layout::Combined => TreeState::Behind,
            Layout::Separate => TreeState::Empty,
        };
        assert_eq!(state(&v, "install"), install, "{name} {v:#?}");
        assert_eq!(v.plan, ["app-2", "install-1"], "{name}");
        assert_eq!(v.access.access, Access::Refuse, "{name}");
        // The code states the versions it supports: app 1.0.0 is written by code for
        // 1.0.x; install is not there, so still refused.
        let v = repo.verify(
            &["base"],
            &VerifyOptions::default().supports("app", "1.0.3"),
        );
        assert_eq!(
            v.tree("app").unwrap().access.access,
            Access::Write,
            "{name}"
        );
        let v = repo.verify(&["base"], &auto());
        assert_migrated_to_current(&repo, &v, 2);

        // Partly upgraded: app at its head, install never applied.
        let repo = Repo::new(backend, layout);
        repo.upgrade(&["base"], &["app@head"]);
        let v = repo.verify(&["base"], &VerifyOptions::default());
        assert_eq!(state(&v, "app"), TreeState::Current, "{name} {v:#?}");
        assert_eq!(state(&v, "install"), install, "{name} {v:#?}");
        assert_eq!(v.plan, ["install-1"], "{name}");
        let v = repo.verify(&["base"], &auto());
        assert_migrated_to_current(&repo, &v, 1);
    });
}

#[test]
fn current() {
    each(|backend, layout| {
        let repo = Repo::new(backend, layout);
        repo.upgrade(&["base"], &[]);
        let name = repo.name();
        for options in [VerifyOptions::default(), auto()] {
            let v = repo.verify(&["base"], &options);
            assert_eq!(state(&v, "app"), TreeState::Current, "{name} {v:#?}");
            assert_eq!(state(&v, "install"), TreeState::Current, "{name}");
            assert!(v.writable() && v.plan.is_empty(), "{name}");
            assert!(v.migrated.is_none() && v.not_migrated.is_none(), "{name}");
        }
        // Compatibility by the stated versions: patch, newer minor, older minor, major.
        let check = |code: &str, expected: Access| {
            let v = repo.verify(&["base"], &VerifyOptions::default().supports("app", code));
            assert_eq!(
                v.tree("app").unwrap().access.access,
                expected,
                "{name} {code}"
            );
            assert_eq!(v.access.access, expected, "{name} {code}");
        };
        check("1.1.0", Access::Write);
        check("1.1.9", Access::Write);
        check("1.0.0", Access::Read);
        check("1.2.0", Access::Refuse);
        check("2.0.0", Access::Refuse);
        // auto-migrate never leaves the repository at a version the code cannot use.
        let older = Repo::new(backend, layout);
        older.upgrade(&["base"], &["app-1", "install-1"]);
        let v = older.verify(&["base"], &auto().supports("app", "1.0.0"));
        let why = v.not_migrated.as_deref().unwrap_or_default();
        assert!(why.contains("would leave app at 1.1.0"), "{name} {v:#?}");
        assert_eq!(state(&v, "app"), TreeState::Behind, "{name}");
    });
}

#[test]
fn ahead() {
    each(|backend, layout| {
        let repo = Repo::new(backend, layout);
        repo.upgrade(&["base", "next"], &[]);
        let name = repo.name();
        let v = repo.verify(&["base"], &auto());
        let app = v.tree("app").unwrap();
        assert_eq!(app.state, TreeState::Ahead, "{name} {v:#?}");
        assert_eq!(app.unknown, ["app-3"], "{name}");
        assert_eq!(app.version.as_deref(), Some("1.2.0"), "{name}");
        assert_eq!(state(&v, "install"), TreeState::Current, "{name}");
        assert_eq!(v.access.access, Access::Refuse, "{name}");
        assert!(v.migrated.is_none() && v.not_migrated.is_some(), "{name}");
        // Older code that states its version may read a newer minor version.
        let v = repo.verify(
            &["base"],
            &VerifyOptions::default().supports("app", "1.1.0"),
        );
        assert_eq!(v.access.access, Access::Read, "{name} {v:#?}");
        assert!(v.readable() && !v.writable(), "{name}");

        let major = Repo::new(backend, layout);
        major.upgrade(&["base", "major"], &[]);
        let v = major.verify(
            &["base"],
            &VerifyOptions::default().supports("app", "1.1.0"),
        );
        assert_eq!(state(&v, "app"), TreeState::Ahead, "{name}");
        assert_eq!(v.access.access, Access::Refuse, "{name} {v:#?}");
        assert!(
            v.access.reason.contains("major"),
            "{name} {}",
            v.access.reason
        );
    });
}

#[test]
fn unfinished() {
    each(|backend, layout| {
        let repo = Repo::new(backend, layout);
        let name = repo.name();
        let failed = repo
            .migrator(&["base", "failing"])
            .upgrade(&[], &UpgradeOptions::default())
            .expect_err("app-3 fails");
        assert!(failed.script_failure().is_some(), "{name} {failed}");
        for options in [VerifyOptions::default(), auto()] {
            let v = repo.verify(&["base", "failing"], &options);
            let app = v.tree("app").unwrap();
            assert_eq!(app.state, TreeState::Unfinished, "{name} {v:#?}");
            assert!(
                app.detail.contains("app-3 is failed at step \"fill\""),
                "{name} {app:?}"
            );
            assert_eq!(app.unfinished[0].steps_done, ["create"], "{name}");
            // The run stopped at app-3: install-1, after it in plan order, never ran.
            let install = match layout {
                Layout::Combined => TreeState::Behind,
                Layout::Separate => TreeState::Empty,
            };
            assert_eq!(state(&v, "install"), install, "{name}");
            assert_eq!(v.access.access, Access::Refuse, "{name}");
            assert!(v.migrated.is_none(), "{name}");
        }
        // A killed run leaves the revision "running": interrupted, also unfinished.
        repo.main
            .execute("UPDATE ferry_revisions SET state = 'running' WHERE revision = 'app-3'");
        let v = repo.verify(&["base", "failing"], &auto());
        assert_eq!(state(&v, "app"), TreeState::Unfinished, "{name} {v:#?}");
        assert!(v.tree("app").unwrap().detail.contains("running"), "{name}");
        assert!(v.migrated.is_none(), "{name}");
    });
}

#[test]
fn misplaced_and_moved_to_a_separate_database() {
    for backend in backends() {
        // Combined first: everything in one database, one ledger.
        let combined = Repo::new(backend, Layout::Combined);
        combined.upgrade(&["base"], &[]);
        combined
            .main
            .execute("INSERT INTO install_repo (name, url) VALUES ('a', 'u1'), ('b', 'u2')");
        // The configuration now places install in a database of its own.
        let target = Repo::new(backend, Layout::Combined).main;
        let separate = Repo {
            backend,
            layout: Layout::Separate,
            main: combined.main,
            install: Some(target),
        };
        let name = separate.name();
        let v = separate.verify(&["base"], &auto());
        assert_eq!(state(&v, "install"), TreeState::Misplaced, "{name} {v:#?}");
        assert_eq!(state(&v, "app"), TreeState::Current, "{name}");
        assert!(v.migrated.is_none(), "{name}");
        let m = separate.migrator(&["base"]);
        let e = m.upgrade(&[], &UpgradeOptions::default()).unwrap_err();
        assert!(
            e.to_string().contains("recorded in database main"),
            "{name} {e}"
        );

        // Moving the ledger before the tables is refused, and changes nothing.
        let tables = vec!["install_repo".to_string(), "install_version".to_string()];
        let e = m
            .move_trees(&["install".into()], &tables)
            .unwrap_err()
            .to_string();
        assert!(e.contains("not in database install"), "{name} {e}");
        // The operator copies the tables with the database's own tools.
        let install = separate.install.as_ref().unwrap();
        copy_install_tables(backend, &separate.main, install);
        let history_before = separate
            .main
            .conn()
            .query(
                "SELECT COUNT(*) FROM ferry_history WHERE tree = 'install'",
                &[],
            )
            .unwrap()
            .rows[0][0]
            .clone();
        // A downgrade of install-1 that stopped after a committed step (its record stays
        // `applied`, its step under the downgrade's key, as the runner leaves it): the
        // move would not carry that step, so it is refused until the downgrade finishes.
        separate.main.execute(
            "INSERT INTO ferry_steps (revision, step, done, cursor, batches, row_count, \
             updated_at) VALUES ('install-1 (downgrade)', 'drop versions', 1, NULL, 0, 0, 0)",
        );
        let e = m
            .move_trees(&["install".into()], &tables)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("install-1 has a downgrade that stopped part-way (1 step(s) recorded)")
                && e.contains("nothing was moved"),
            "{name} {e}"
        );
        assert!(
            install
                .conn()
                .query("SELECT COUNT(*) FROM ferry_history", &[])
                .map_or(true, |r| r.rows[0][0] == ferry::backend::Value::Int(0)),
            "{name}: nothing recorded in the target"
        );
        separate
            .main
            .execute("DELETE FROM ferry_steps WHERE revision = 'install-1 (downgrade)'");
        let r = m.move_trees(&["install".into()], &tables).unwrap();
        assert_eq!(r.revisions, ["install-1"], "{name}");
        assert_eq!(r.from, "main");
        assert_eq!(r.to, "install");
        assert_eq!(
            r.tables,
            [
                ("install_repo".to_string(), 2),
                ("install_version".to_string(), 1)
            ]
        );
        assert_eq!(r.left_in_source, tables, "{name}");
        // Nothing lost: the history moved with its rows, plus a row for the move.
        let moved: Vec<(String, String)> = install
            .conn()
            .query(
                "SELECT revision, direction FROM ferry_history ORDER BY id",
                &[],
            )
            .unwrap()
            .rows
            .into_iter()
            .map(|r| (r[0].to_string(), r[1].to_string()))
            .collect();
        assert_eq!(
            moved,
            [
                ("'install-1'".to_string(), "'upgrade'".to_string()),
                ("'install-1'".to_string(), "'move'".to_string())
            ],
            "{name}"
        );
        assert_eq!(history_before, ferry::backend::Value::Int(1), "{name}");
        let left = separate
            .main
            .conn()
            .query(
                "SELECT COUNT(*) FROM ferry_history WHERE tree = 'install'",
                &[],
            )
            .unwrap();
        assert_eq!(left.rows[0][0], ferry::backend::Value::Int(0), "{name}");
        let v = separate.verify(&["base"], &auto());
        assert_eq!(state(&v, "install"), TreeState::Current, "{name} {v:#?}");
        assert_eq!(state(&v, "app"), TreeState::Current, "{name}");
        assert!(v.writable(), "{name}");
        // The old tables go once the application runs on the new database.
        separate
            .main
            .execute("DROP TABLE install_repo; DROP TABLE install_version");
        let v = separate.verify(&["base"], &VerifyOptions::default());
        assert!(v.writable(), "{name} {v:#?}");
        let s = m.status().unwrap();
        assert_eq!(s.databases.len(), 2, "{name}");
        assert!(s.at_heads(), "{name} {s:?}");
    }
}

/// What an operator does with the database's own tools: SQLite `ATTACH` and copy,
/// PostgreSQL `CREATE TABLE … (LIKE … INCLUDING ALL)` and copy.
fn copy_install_tables(backend: Backend, from: &Slot, to: &Slot) {
    match backend {
        Backend::Sqlite => {
            let to_path = to.url().trim_start_matches("sqlite:").to_string();
            from.execute(&format!(
                "ATTACH DATABASE '{to_path}' AS target;\n\
                 CREATE TABLE target.install_repo (name VARCHAR(64) PRIMARY KEY, url VARCHAR(200));\n\
                 CREATE TABLE target.install_version (version VARCHAR(16) NOT NULL);\n\
                 INSERT INTO target.install_repo SELECT * FROM install_repo;\n\
                 INSERT INTO target.install_version SELECT * FROM install_version;\n\
                 DETACH DATABASE target;"
            ));
        }
        Backend::Postgres => {
            let schema = |s: &Slot| s.url().rsplit("schema=").next().unwrap().to_string();
            let (a, b) = (schema(from), schema(to));
            from.execute(&format!(
                "CREATE TABLE \"{b}\".install_repo (LIKE \"{a}\".install_repo INCLUDING ALL);\n\
                 CREATE TABLE \"{b}\".install_version (LIKE \"{a}\".install_version INCLUDING ALL);\n\
                 INSERT INTO \"{b}\".install_repo SELECT * FROM \"{a}\".install_repo;\n\
                 INSERT INTO \"{b}\".install_version SELECT * FROM \"{a}\".install_version;"
            ));
        }
    }
}

#[test]
fn a_v1_repository_made_without_ferry_is_recognised_by_the_reference_probes() {
    for backend in backends() {
        let db = match backend {
            Backend::Sqlite => TestDb::sqlite(),
            Backend::Postgres => TestDb::postgres("verify_reference").unwrap(),
        };
        let mut conn = db.connect();
        ferry_workload::create_v1_without_ferry(conn.as_mut()).unwrap();
        drop(conn);
        let repo_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut roots = vec![repo_root.join("scripts")];
        for p in std::fs::read_dir(repo_root.join("plugins")).unwrap() {
            roots.push(p.unwrap().path());
        }
        let m = Migrator::builder()
            .url(db.url())
            .roots(roots)
            .stdlib(Some(repo_root.join("stdlib")))
            .build()
            .unwrap();
        let v = m.verify(&VerifyOptions::default()).unwrap();
        for (tree, rev) in [
            ("attributes", "attributes-1.0.0"),
            ("collections", "collections-2.0.0"),
            ("datasets", "datasets-int-1.0.0"),
            ("datastores", "datastores-0.2.0"),
            ("dimensions", "dimensions-6.0.2"),
            ("dimensions-config", "dimensions-config-0"),
        ] {
            let t = v.tree(tree).unwrap();
            assert_eq!(
                t.state,
                TreeState::UnversionedRecognised,
                "{backend:?} {t:#?}"
            );
            assert_eq!(
                t.recognised.as_ref().unwrap().revision.as_deref(),
                Some(rev),
                "{backend:?} {t:#?}"
            );
        }
        // The plugin's own tree has no probe and no DIGEST: as `ferry adopt` does,
        // verify takes it as not applied yet, so the repository can be adopted.
        let plugin = v.tree("obs_subaru").unwrap();
        assert_eq!(
            plugin.state,
            TreeState::UnversionedRecognised,
            "{backend:?} {plugin:#?}"
        );
        assert_eq!(plugin.recognised.as_ref().unwrap().revision, None);
        assert_eq!(v.access.access, Access::Refuse);

        let v = m
            .verify(&VerifyOptions::default().auto_migrate(true).adopt(true))
            .unwrap();
        assert!(v.migrated.is_some(), "{backend:?} {v:#?}");
        for t in &v.trees {
            assert_eq!(t.state, TreeState::Current, "{backend:?} {t:#?}");
        }
        assert_eq!(v.access.access, Access::Write);
    }
}
