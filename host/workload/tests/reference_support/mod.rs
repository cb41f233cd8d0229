//! Shared by the reference repository tests: a Migrator over the project's own
//! `scripts/`, `plugins/*` and `stdlib/`, and a way to run a scenario on SQLite and (when
//! FERRY_TEST_PG_URL is set) PostgreSQL in a fresh schema (`common::fresh`'s: a test file
//! declares `mod common;` too).

#![allow(dead_code)]

pub mod foreign;

use ferry::backend::{self, Connection, DbUrl};
use ferry::migrator::{Migrator, UpgradeOptions};
use ferry_workload as workload;
use std::path::PathBuf;

use crate::common::fresh::{on_each_fresh_db, FreshDb};

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// A migrator over the reference trees and every plugin.
pub fn migrator(url: &str) -> Migrator {
    let root = repo_root();
    Migrator::new(url)
        .unwrap()
        .with_roots(vec![
            root.join("scripts"),
            root.join("plugins/obs_base"),
            root.join("plugins/obs_lsst"),
            root.join("plugins/obs_subaru"),
        ])
        .with_stdlib(Some(root.join("stdlib")))
}

/// Creates registry v1 through Ferry's root revisions and fills it at scale `n` from
/// `seed`; returns a connection to it.
pub fn create_v1(url: &str, n: u64, seed: u64) -> Box<dyn Connection> {
    let targets: Vec<String> = workload::schema::V1_REVISIONS
        .iter()
        .map(|s| s.to_string())
        .collect();
    let report = migrator(url)
        .upgrade(&targets, &UpgradeOptions::default())
        .unwrap();
    assert!(report.succeeded(), "{:?}", report.failed);
    let mut conn = connect(url);
    workload::schema::create_missing_tables(conn.as_mut()).unwrap();
    workload::fill_v1(conn.as_mut(), n, seed).unwrap();
    conn
}

pub fn connect(url: &str) -> Box<dyn Connection> {
    backend::connect(&DbUrl::parse(url).unwrap()).unwrap()
}

/// Runs `f` with a SQLite URL and, when FERRY_TEST_PG_URL is set, a PostgreSQL URL in a
/// fresh schema that is dropped afterwards (also when `f` panics).
pub fn on_each_backend(f: impl Fn(&str)) {
    on_each_fresh_db("reference scenario", |db| f(db.url()));
}

/// Runs `f` on PostgreSQL only (skipped, saying so, when FERRY_TEST_PG_URL is unset).
pub fn postgres_only(f: impl Fn(&str)) {
    if let Some(db) = FreshDb::postgres("reference scenario") {
        f(db.url());
    }
}
