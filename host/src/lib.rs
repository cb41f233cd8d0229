//! Ferry: migrates long-lived data repositories between schema versions with Rhai scripts.

// Errors carry what an operator needs to act (file, line, column, the source line,
// the revision and step); they travel only on the failure path, so their size costs
// nothing where it matters.
#![allow(clippy::result_large_err)]

pub(crate) mod alembic;
pub mod analysis;
pub mod backend;
pub mod clock;
pub mod compat;
pub mod config;
pub mod crash;
pub mod databases;
pub mod digest;
pub mod discovery;
pub mod graph;
pub mod graph_text;
pub mod ledger;
pub mod lineage;
pub mod lint;
pub mod lock;
pub mod metadata;
pub mod migrator;
pub mod newrev;
pub mod observer;
pub mod offline;
pub mod offline_sql;
pub mod plan;
pub mod plugin_test;
pub mod revision_sources;
pub mod runner;
pub mod script;
pub mod source;
pub(crate) mod sql_guard;
pub mod stamp;
pub mod target;
pub mod workload;
