//! Ferry: migrates long-lived data repositories between schema versions with Rhai scripts.

// Errors carry what an operator needs to act (file, line, column, the source line,
// the revision and step); they travel only on the failure path, so their size costs
// nothing where it matters.
#![allow(clippy::result_large_err)]
// Every public item of the default build is documented; the `internals` feature opens
// the stage modules as they are, for ferry-workload and the test suites only.
#![cfg_attr(not(feature = "internals"), warn(missing_docs))]
// One exception, `geteuid` in backend/sqlite/lock_file.rs (libc has no safe wrapper),
// allowed there and nowhere else.
#![deny(unsafe_code)]

//! # The API
//!
//! Build a [`Migrator`] (through [`Migrator::builder`] or [`Migrator::new`]) over one
//! database and the script roots, then ask it for the [`Status`], a [`PlanReport`], a
//! [`Verification`] of what application code may do, or run [`Migrator::upgrade`] and
//! [`Migrator::downgrade`], which return a [`Report`]. Failures are an [`Error`]; a
//! script's own failure is a [`ScriptError`] naming its file, line and step. Progress is
//! reported to an [`Observer`].
//!
//! Every type these return has a public name. The ledger's records, which [`Status`]
//! and [`RevisionInfo`] hold and [`Migrator::history`] returns ([`RevisionRecord`],
//! [`RevisionState`], [`SourceRecord`], [`SourceDiff`], [`HistoryEntry`]), are here at
//! the root beside them. The errors each stage raises, which the variants of [`Error`]
//! wrap ([`DbError`](error::DbError) with its [`DbErrorKind`](error::DbErrorKind),
//! [`GraphError`](error::GraphError), [`LockError`](error::LockError), ...), are in
//! [`error`], one page to match a failure to its kind from.
//!
//! The stages behind this API (discovery, metadata, graph, target, plan, runner, script
//! API, backends, ledger, lock) are private; docs/ARCHITECTURE.md describes them. The
//! `internals` feature makes them public for Ferry's own workload crate and tests: it is
//! not a stable API.

/// Declares methods that name the stages' types (a connection, the loaded project):
/// crate-private, or public under the `internals` feature, so that the default API
/// names only types it documents.
macro_rules! internal_fn {
    ($(#[$meta:meta])* fn $name:ident $($rest:tt)*) => {
        #[cfg(feature = "internals")]
        $(#[$meta])*
        pub fn $name $($rest)*
        #[cfg(not(feature = "internals"))]
        $(#[$meta])*
        pub(crate) fn $name $($rest)*
    };
}

/// Declares the stage modules: crate-private, or public under the `internals` feature.
macro_rules! stages {
    ($($name:ident),* $(,)?) => {
        $(
            #[cfg(feature = "internals")]
            pub mod $name;
            #[cfg(not(feature = "internals"))]
            pub(crate) mod $name;
        )*
    };
}

stages!(
    analysis,
    backend,
    builder,
    checkpoint,
    clock,
    commands,
    compat,
    databases,
    digest,
    discovery,
    graph,
    graph_text,
    ledger,
    lineage,
    lint,
    lock,
    metadata,
    migrator,
    newrev,
    offline,
    offline_sql,
    plan,
    plugin_test,
    revision_sources,
    runner,
    script,
    source,
    stamp,
    target,
    workload,
);

pub(crate) mod alembic;
pub mod config;
pub mod crash;
pub mod error;
pub mod observer;
pub(crate) mod sql_guard;

pub use backend::LockHolder;
pub use clock::format_utc;
pub use compat::Access;
pub use compat::Decision;
pub use digest::SchemaDigest;
pub use discovery::default_roots;
pub use ledger::{HistoryEntry, RevisionRecord, RevisionState, SourceRecord};
pub use lint::{ConfigSources, Problem as LintProblem, Severity};
pub use migrator::{
    changed_hint, AcceptReport, AdoptReport, Builder, ChangedScript, DatabaseStatus,
    DatabaseVerdict, Error, FileChange, HookProvider, HookUse, Migrator, Misplaced, MoveReport,
    PlanEntry, PlanReport, Recognition, ResetReport, RevisionInfo, SourceDiff, SqlScript, Status,
    TreeState, TreeStatus, TreeVerdict, Unfinished, UnlockReport, UpgradeOptions, Verification,
    VerifyOptions,
};
pub use newrev::NewRevision;
pub use observer::Observer;
pub use plan::Direction;
pub use plugin_test::{
    run as run_plugin_test, PhaseOutcome, PhaseReport, PluginTestError, PluginTestOptions,
};
pub use runner::Report;
pub use runner::RevisionOutcome;
pub use script::session::StatementRecord;
pub use script::FailureKind;
pub use script::{Limits, ScriptError};
pub use stamp::{ProbeResult, StampReport};
