//! Ferry: migrates long-lived data repositories between schema versions with Rhai scripts.

pub mod backend;
pub mod clock;
pub mod discovery;
pub mod graph;
pub mod metadata;
pub mod plan;
pub mod target;
pub mod workload;
