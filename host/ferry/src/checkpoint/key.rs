//! Step keys: which `ferry_steps` row a step's progress is kept under.

use crate::plan::Direction;

/// A step of one revision, run in one direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StepKey {
    pub revision: String,
    pub direction: Direction,
    pub step: String,
}

impl StepKey {
    /// The step `step` of `revision` run in `direction`.
    pub fn new(revision: &str, direction: Direction, step: &str) -> StepKey {
        StepKey {
            revision: revision.to_string(),
            direction,
            step: step.to_string(),
        }
    }

    /// The value of the ledger's `ferry_steps.revision` column for this step (see
    /// [`ledger_owner`]).
    pub fn ledger_revision(&self) -> String {
        ledger_owner(&self.revision, self.direction)
    }
}

/// The key under which the step records of `revision` run in `direction` are written
/// and read: the revision id for an upgrade, `"<revision> (downgrade)"` for a downgrade.
///
/// The one place this string is made: an upgrade's records were kept under the bare id
/// before downgrades had steps, so existing ledgers still read, and a downgrade's
/// committed steps are never taken for the upgrade's, or the other way round.
pub fn ledger_owner(revision: &str, direction: Direction) -> String {
    match direction {
        Direction::Upgrade => revision.to_string(),
        Direction::Downgrade => format!("{revision} (downgrade)"),
    }
}
