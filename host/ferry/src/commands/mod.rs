//! The commands of the [`crate::migrator::Migrator`] facade, one module each. Each
//! adds its methods to `Migrator` and its report types; the facade re-exports them.

pub(crate) mod changes;
pub(crate) mod classify;
pub(crate) mod downgrade;
pub(crate) mod inspect;
pub(crate) mod lockset;
pub(crate) mod move_trees;
pub(crate) mod project;
pub(crate) mod reports;
pub(crate) mod reset;
pub(crate) mod run;
pub(crate) mod sql;
pub(crate) mod stamp;
pub(crate) mod status;
pub(crate) mod unlock;
pub(crate) mod upgrade;
pub(crate) mod verify;

// What the command modules share, so that each names it as `super::…`.
pub(crate) use crate::migrator::{Error, Migrator, UpgradeOptions};
pub(crate) use changes::{changed_scripts, ChangedScript, FileChange, SourceDiff};
pub(crate) use project::Project;
pub(crate) use upgrade::upgrade_plan;
