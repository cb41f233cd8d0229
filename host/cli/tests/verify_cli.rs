//! `ferry verify` and trees in several databases through the binary: text, JSON and
//! exit codes (0 writable; 3 read-only or refused; 1 an auto-migration failed), the
//! `[databases]` section of ferry.toml, and the locks of several databases.

mod common;

use common::embed_root as root;
use common::{for_each_backend, Backend, TestDb};
use ferry::backend::{LockAttempt, LockHolder};

/// A second database of the same backend as `db`.
fn second(db: &TestDb) -> TestDb {
    match db.backend {
        Backend::Sqlite => TestDb::sqlite(),
        Backend::Postgres => TestDb::postgres("verify_cli").expect("PostgreSQL is configured"),
    }
}

fn place_install(db: &TestDb, install: &TestDb) {
    std::fs::write(
        db.dir().join("ferry.toml"),
        format!(
            "[databases.install]\nurl = \"{}\"\ntrees = [\"install\"]\n",
            install.url()
        ),
    )
    .unwrap();
}

#[test]
fn verify_reports_states_and_exit_codes() {
    for_each_backend("verify_reports_states_and_exit_codes", |db| {
        let ferry = || db.ferry().scripts(root("base"));
        // A SQLite file not there yet has no database; a fresh schema is empty.
        let state = match db.backend {
            Backend::Sqlite => "no database",
            Backend::Postgres => "empty",
        };
        ferry()
            .run(["verify"])
            .code(3)
            .stdout_has(state)
            .stdout_has("verdict: the code must not use this repository");
        let run = ferry().run(["verify", "--auto-migrate"]).success();
        let run = run.stdout_has("auto-migrate ran 3 revision(s): app-1, app-2, install-1");
        assert!(run.stdout.contains("current"), "{}", run.stdout);
        let v = ferry().run(["verify", "--json"]).success().json();
        assert_eq!(v["access"]["access"], "write");
        for t in v["trees"].as_array().unwrap() {
            assert_eq!(t["state"], "current", "{t}");
        }
        ferry()
            .run(["verify", "--supports", "app=1.0.0"])
            .code(3)
            .stdout_has("the code may only read this repository")
            .stdout_has("newer minor version");
        ferry()
            .run(["verify", "--supports", "app=2.0.0"])
            .code(3)
            .stdout_has("different major version");
        ferry()
            .run(["verify", "--supports", "app"])
            .code(2)
            .stderr_has("TREE=VERSION");
        ferry()
            .run(["verify", "--supports", "app=1.1.4"])
            .success()
            .stdout_has("the code may read and write this repository");
    });
}

#[test]
fn an_auto_migration_that_fails_exits_1() {
    for_each_backend("an_auto_migration_that_fails_exits_1", |db| {
        let run = db
            .ferry()
            .scripts(root("base"))
            .scripts(root("failing"))
            .run(["verify", "--auto-migrate"])
            .code(1);
        let run = run.stderr_has("app_notez");
        assert!(run.stdout.contains("unfinished"), "{}", run.stdout);
    });
}

#[test]
fn trees_in_two_databases_from_ferry_toml() {
    for_each_backend("trees_in_two_databases_from_ferry_toml", |db| {
        let install = second(db);
        place_install(db, &install);
        let ferry = || db.ferry().scripts(root("base"));
        ferry()
            .run(["plan"])
            .success()
            .stdout_has("install (install)");
        ferry().run(["upgrade"]).success();
        assert!(db.has_table("app_item") && !db.has_table("install_repo"));
        assert!(install.has_table("install_repo") && !install.has_table("app_item"));
        // Each database has its own ledger, recording its own trees.
        assert_eq!(db.applied_in_order(), ["app-1", "app-2"]);
        assert_eq!(install.applied_in_order(), ["install-1"]);
        let run = ferry().run(["status"]).success();
        let run = run.stdout_has("database install: ");
        assert!(run.stdout.contains("DATABASE"), "{}", run.stdout);
        let s = ferry().run(["status", "--json"]).success().json();
        assert_eq!(s["databases"].as_array().unwrap().len(), 2);
        let v = ferry().run(["verify", "--json"]).success().json();
        assert_eq!(v["databases"].as_array().unwrap().len(), 2);
        ferry().run(["check"]).success();
        ferry().run(["digest", "--database", "install"]).success();
        ferry()
            .run(["digest", "--database", "nowhere"])
            .code(2)
            .stderr_has("no database named");
        // History spans both ledgers; a downgrade runs in reverse plan order, each
        // revision in its own database; stamp records each revision in its own.
        let h = ferry().run(["history", "--json"]).success().json();
        assert_eq!(h.as_array().unwrap().len(), 3);
        ferry().run(["downgrade", "base"]).success();
        assert!(!db.has_table("app_item") && !install.has_table("install_repo"));
        assert_eq!(
            install.history().last().unwrap(),
            &("install-1".into(), "downgrade".into(), "applied".into())
        );
        ferry().run(["stamp", "install-1"]).success();
        assert_eq!(db.revision_state("app-1").as_deref(), Some("applied"));
        assert_eq!(db.revision_state("install-1"), None);
        assert_eq!(
            install.revision_state("install-1").as_deref(),
            Some("applied")
        );
        // A bad [databases] section is a usage error naming the key.
        std::fs::write(
            db.dir().join("ferry.toml"),
            "[databases.install]\nurl = \"sqlite:x.db\"\ntrees = \"install\"\n",
        )
        .unwrap();
        ferry()
            .run(["status"])
            .code(2)
            .stderr_has("databases.install.trees");
        std::fs::write(
            db.dir().join("ferry.toml"),
            "[databases.install]\nurl = \"sqlite:x.db\"\ntrees = [\"nosuchtree\"]\n",
        )
        .unwrap();
        ferry().run(["status"]).code(2).stderr_has("nosuchtree");
    });
}

#[test]
fn an_upgrade_waits_for_every_database_lock() {
    for_each_backend("an_upgrade_waits_for_every_database_lock", |db| {
        let install = second(db);
        place_install(db, &install);
        // Another migrator holds the install database's lock.
        let mut holder = install.connect();
        let me = LockHolder {
            host: "elsewhere".into(),
            pid: 1,
            user: "other".into(),
            since: 0,
        };
        assert_eq!(holder.try_lock(&me).unwrap(), LockAttempt::Acquired);
        db.ferry()
            .scripts(root("base"))
            .opt("--lock-timeout")
            .opt("0.2")
            .run(["upgrade"])
            .code(3)
            .stderr_has("locked by another migrator");
        // Nothing ran anywhere, and the main database's lock was given back.
        assert!(!db.has_table("app_item"));
        holder.unlock().unwrap();
        db.ferry().scripts(root("base")).run(["upgrade"]).success();
        assert!(install.has_table("install_repo"));
    });
}
