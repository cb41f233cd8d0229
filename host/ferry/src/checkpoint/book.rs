//! The steps of the revision being run: what the ledger recorded before this run, what
//! runs now, what this run completed; and the rules a script's steps must keep.

use super::key::ledger_owner;
use crate::backend::Connection;
use crate::ledger::{self, LedgerError};
use crate::plan::Direction;
use std::collections::{BTreeMap, HashSet};

/// The recorded cursor of a batched step that has not finished.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cursor {
    /// The last key of the last committed batch, as JSON text (see
    /// [`super::cursor_text`]).
    pub cursor: String,
    pub batches: i64,
    pub rows: i64,
}

/// What the ledger holds of a revision's steps in one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordedSteps {
    /// Completed steps (a rerun skips them).
    pub done: HashSet<String>,
    /// Batched steps that committed some batches, by step name.
    pub cursors: BTreeMap<String, Cursor>,
}

/// Reads what the ledger holds of the steps of `revision` run in `direction`.
pub fn recorded_steps(
    conn: &mut dyn Connection,
    revision: &str,
    direction: Direction,
) -> Result<RecordedSteps, LedgerError> {
    let mut recorded = RecordedSteps::default();
    for st in ledger::steps(conn, &ledger_owner(revision, direction))? {
        if st.done {
            recorded.done.insert(st.step);
        } else if let Some(cursor) = st.cursor {
            recorded.cursors.insert(
                st.step,
                Cursor {
                    cursor,
                    batches: st.batches,
                    rows: st.rows,
                },
            );
        }
    }
    Ok(recorded)
}

/// A script broke a rule of steps: its fault, not the database's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Misuse {
    #[error("the step name {step:?} {why}")]
    BadName { step: String, why: String },
    #[error("step {step:?} starts inside step {outer:?}: steps cannot be nested")]
    Nested { step: String, outer: String },
    #[error(
        "step {step:?} follows statements that wrote outside any step: a revision that uses \
         db.step must do all its writing inside steps"
    )]
    StepAfterImplicitWrites { step: String },
    #[error(
        "schema::rewrite_tables(…, #{{ steps: true }}) follows statements that wrote outside \
         any step: a revision that uses db.step must do all its writing inside steps"
    )]
    RewriteAfterImplicitWrites,
    #[error(
        "a revision that uses db.step must do all its writing inside steps (this statement \
         runs outside any step)"
    )]
    WriteOutsideSteps,
}

/// How a step that was entered goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    /// The ledger records it done: skip it.
    Skip,
    /// Run it, after the cursor of a batched step's last committed batch if there is one.
    Run { resume: Option<Cursor> },
}

/// The steps of the revision being run.
#[derive(Debug, Default)]
pub struct StepBook {
    recorded: RecordedSteps,
    /// The step running now, if any.
    current: Option<String>,
    /// Whether the revision has used steps at all.
    uses_steps: bool,
    /// Whether statements that write ran outside any step (the implicit step).
    implicit_writes: bool,
    /// Steps this run completed.
    completed_now: Vec<String>,
    /// The step that failed, if one did.
    failed: Option<String>,
}

impl StepBook {
    /// The book of a revision about to run, whose steps the ledger records as `recorded`.
    pub fn resuming(recorded: RecordedSteps) -> StepBook {
        StepBook {
            recorded,
            ..StepBook::default()
        }
    }

    /// Whether `step` was completed by an earlier run.
    pub fn is_done(&self, step: &str) -> bool {
        self.recorded.done.contains(step)
    }

    /// The steps an earlier run completed.
    pub fn done_before(&self) -> impl Iterator<Item = &String> {
        self.recorded.done.iter()
    }

    /// Whether `step` is committed, by an earlier run or this one.
    pub fn is_committed(&self, step: &str) -> bool {
        self.is_done(step) || self.completed_now.iter().any(|s| s == step)
    }

    /// The step running now.
    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    /// The step that failed, else the one running (for the error report).
    pub fn failed_or_current(&self) -> Option<&str> {
        self.failed.as_deref().or(self.current.as_deref())
    }

    /// Checks that step `step` may start now.
    pub fn check_entry(&self, step: &str) -> Result<(), Misuse> {
        // The ledger records the name (and a failure names it on the terminal).
        if let Some(why) = crate::metadata::unprintable(step, crate::metadata::MAX_ID_CHARS) {
            return Err(Misuse::BadName {
                step: step.into(),
                why: why.to_string(),
            });
        }
        if let Some(outer) = &self.current {
            return Err(Misuse::Nested {
                step: step.into(),
                outer: outer.clone(),
            });
        }
        if self.implicit_writes {
            return Err(Misuse::StepAfterImplicitWrites { step: step.into() });
        }
        Ok(())
    }

    /// Enters step `step` (checked by [`StepBook::check_entry`]): skipped if done
    /// before, else running from now on.
    pub fn enter(&mut self, step: &str) -> Entry {
        self.uses_steps = true;
        if self.is_done(step) {
            return Entry::Skip;
        }
        self.current = Some(step.to_string());
        Entry::Run {
            resume: self.recorded.cursors.get(step).cloned(),
        }
    }

    /// Starts steps the host runs on other connections (parallel table steps).
    pub fn enter_host_steps(&mut self) -> Result<(), Misuse> {
        if self.implicit_writes {
            return Err(Misuse::RewriteAfterImplicitWrites);
        }
        self.uses_steps = true;
        Ok(())
    }

    /// The running step (or a host step) committed.
    pub fn completed(&mut self, step: &str) {
        if self.current.as_deref() == Some(step) {
            self.current = None;
        }
        self.completed_now.push(step.to_string());
    }

    /// `step` failed.
    pub fn failed(&mut self, step: &str) {
        self.failed = Some(step.to_string());
    }

    /// The steps this run completed, taken out of the book.
    pub fn take_completed(&mut self) -> Vec<String> {
        std::mem::take(&mut self.completed_now)
    }

    /// Checks a statement about to run: outside any step, a write is refused once the
    /// revision uses steps. Returns whether the statement runs outside any step (in the
    /// implicit transaction that commits with the revision's record).
    pub fn before_statement(&mut self, writes: bool) -> Result<bool, Misuse> {
        if self.current.is_some() {
            return Ok(false);
        }
        if writes {
            if self.uses_steps {
                return Err(Misuse::WriteOutsideSteps);
            }
            self.implicit_writes = true;
        }
        Ok(true)
    }
}
