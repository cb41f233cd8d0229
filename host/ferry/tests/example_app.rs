//! Runs the embedding example (host/ferry/examples/inventory_service.rs) against repository
//! states, so it cannot rot: it refuses to start on an incompatible or outdated
//! repository, starts read-only on a newer minor version, and migrates when allowed.

#[path = "../../cli/tests/common/mod.rs"]
mod common;

#[allow(dead_code)]
#[path = "../examples/inventory_service.rs"]
mod inventory_service;

use common::embed_root as root;
use common::for_each_backend;
use ferry::migrator::{Migrator, UpgradeOptions};
use inventory_service::{start, Refusal, Settings};

#[test]
fn the_example_refuses_incompatible_repositories_and_migrates_when_allowed() {
    for_each_backend("example_app", |db| {
        let settings = |auto_migrate: bool| Settings {
            db: db.url().to_string(),
            scripts: vec![root("base")],
            auto_migrate,
        };
        // A new repository: refused until migration is allowed.
        match start(&settings(false)) {
            Err(Refusal::Incompatible(why)) => {
                assert!(why.contains("--auto-migrate"), "{why}")
            }
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        }
        let service = start(&settings(true)).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(!service.read_only);
        assert_eq!(service.verification.migrated.unwrap().completed.len(), 3);
        let service = start(&settings(false)).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(service.verification.migrated.is_none() && !service.read_only);

        // Newer code migrated the repository to app 1.2.0: this code may only read it.
        let _newer = Migrator::builder()
            .url(db.url())
            .roots([root("base"), root("next")])
            .stdlib(None)
            .build()
            .unwrap()
            .upgrade(&[], &UpgradeOptions::default())
            .unwrap();
        let service = start(&settings(true)).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(service.read_only);
        assert!(service.verification.migrated.is_none());
    });
}

#[test]
fn the_example_refuses_a_new_major_version() {
    for_each_backend("example_app_major", |db| {
        let _newer = Migrator::builder()
            .url(db.url())
            .roots([root("base"), root("major")])
            .stdlib(None)
            .build()
            .unwrap()
            .upgrade(&[], &UpgradeOptions::default())
            .unwrap();
        let settings = Settings {
            db: db.url().to_string(),
            scripts: vec![root("base")],
            auto_migrate: true,
        };
        match start(&settings) {
            Err(Refusal::Incompatible(why)) => {
                assert!(why.contains("different major version"), "{why}");
                assert!(why.contains("auto-migrate did nothing"), "{why}");
            }
            other => panic!("expected a refusal, got {:?}", other.map(|_| ())),
        }
    });
}
