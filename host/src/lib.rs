//! Ferry: migrates long-lived data repositories between schema versions with Rhai scripts.

pub mod backend;
pub mod clock;
pub mod config;
pub mod discovery;
pub mod graph;
pub mod ledger;
pub mod lock;
pub mod metadata;
pub mod migrator;
pub mod observer;
pub mod plan;
pub mod runner;
pub mod script;
pub mod target;
pub mod workload;
