//! Checkpoints: how a revision's steps commit their work together with their ledger
//! record, and how a rerun resumes from what was committed.
//!
//! Nothing here knows Rhai: the `db.step` and `db.batches` bindings (`script/db.rs`) and
//! the steps `schema::rewrite_tables(…, #{ steps: true })` makes itself
//! (`script/rewrite_steps.rs`, `script/parallel_steps.rs`) are thin calls into it.
//!
//! * [`StepKey`]: a step of a revision run in one direction, rendered into the
//!   ledger's `ferry_steps` key in one place, which writes and reads both go through (an
//!   upgrade's and a downgrade's steps of the same name never meet).
//! * [`StepTx`]: the only way to commit a step's work and its ledger record: it begins
//!   on creation, [`StepTx::commit`] writes the record and commits, and dropping it
//!   uncommitted rolls back, so neither the work nor the record can commit alone.
//! * [`BatchWalker`]: a batched step's walk over a table in key order, resuming after
//!   the cursor of the last committed batch.
//! * [`StepBook`]: the steps of the revision being run (done before, running now,
//!   completed by this run) and the rules a script must keep ([`Misuse`]).
//! * [`with_transaction`]: a transaction for ledger writes that are not a step's.
//! * The ledger's other records, each written by one operation named for what it
//!   records ([`mark_running`], [`record_upgraded`], [`record_downgraded`],
//!   [`record_failed`], [`record_stamp`], [`record_acceptance`], [`record_reset`],
//!   [`copy_tree_records`], [`record_move`] and [`forget_tree`] for `move-trees`,
//!   [`record_lock_holder`] and [`clear_lock_holder`]), each inside a transaction its
//!   caller holds.
//!
//! This is the only module that writes the ledger's rows ([`crate::ledger`] holds the
//! schema and the reads): the row writers (`records.rs`) are private to it.

mod batches;
mod book;
mod key;
mod ledger_writes;
mod records;
mod tx;

#[cfg(test)]
mod tests;

pub use batches::BatchWalker;
#[cfg(any(test, feature = "internals"))]
pub use batches::{cursor_text, cursor_value, KeyFault};
pub use book::{recorded_steps, Entry, Misuse, StepBook};
#[cfg(any(test, feature = "internals"))]
pub use book::{Cursor, RecordedSteps};
pub use key::{ledger_owner, StepKey};
pub use ledger_writes::{
    clear_lock_holder, copy_tree_records, forget_tree, mark_running, record_acceptance,
    record_downgraded, record_failed, record_lock_holder, record_move, record_reset, record_stamp,
    record_upgraded, Run,
};
pub use tx::{roll_back_open, with_transaction, Begin, Connected, Progress, StepTx};

use crate::backend::{Connection, DbError};
use crate::plan::Direction;

/// Forgets every step record of `revision` run in `direction` (when the revision
/// completes, is stamped, or is downgraded).
fn clear_steps(
    conn: &mut dyn Connection,
    revision: &str,
    direction: Direction,
) -> Result<(), DbError> {
    records::clear_steps(conn, &ledger_owner(revision, direction))
}

/// Forgets one step (its completion or its batch cursor), so that the next run of the
/// revision runs it again; returns whether there was a record.
pub fn forget_step(conn: &mut dyn Connection, key: &StepKey) -> Result<bool, DbError> {
    records::forget_step(conn, &key.ledger_revision(), &key.step)
}
