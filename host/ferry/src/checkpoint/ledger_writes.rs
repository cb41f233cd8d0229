//! The ledger records that are not a step's, each written by one operation named for
//! what it records: a revision starts, is applied, is downgraded or fails; revisions
//! are stamped, accepted, reset or moved to another database; a migrator holds the
//! lock or has let it go.
//!
//! Each runs inside a transaction its caller holds open (the revision's own, or one of
//! [`super::with_transaction`]), so that what the caller does beside it (the
//! revision's implicit statements, daf_butler_migrate's `alembic_version`, other
//! revisions of the same stamp) commits or rolls back with it. The rows themselves are
//! written by the private writers of `records.rs`.

use super::records;
use super::{clear_steps, forget_step, StepKey};
use crate::backend::{Connection, DbError};
use crate::ledger::{Actor, HistoryEntry, How, RevisionKey, RevisionRecord, SourceRecord, Status};
use crate::plan::Direction;
use crate::revision_sources::RevisionSources;

/// A run as its history row records it: when it started and ended (milliseconds since
/// the Unix epoch), the rows it touched, and the operator's note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run<'a> {
    pub started_ms: i64,
    pub finished_ms: i64,
    pub rows: i64,
    /// A note kept with the row (e.g. `allow-changed`, a stamp's kind, a reason).
    pub note: Option<&'a str>,
}

impl<'a> Run<'a> {
    /// Something done at one instant that touched no rows (a stamp, an acceptance, a
    /// reset, a move).
    pub fn instant(at_ms: i64, note: Option<&'a str>) -> Run<'a> {
        Run {
            started_ms: at_ms,
            finished_ms: at_ms,
            rows: 0,
            note,
        }
    }
}

/// An upgrade of the revision of `key` starts: its record says `running` from the first
/// moment, so that a kill leaves an honest state behind.
pub fn mark_running(conn: &mut dyn Connection, key: &RevisionKey<'_>) -> Result<(), DbError> {
    records::set_revision(conn, key, Status::Running)
}

/// An upgrade of the revision of `key` completed: its record says `applied` with the
/// files it ran (`sources`), its step records are forgotten, and the history gains the
/// run.
pub fn record_upgraded(
    conn: &mut dyn Connection,
    key: &RevisionKey<'_>,
    actor: &Actor,
    sources: &RevisionSources,
    run: &Run<'_>,
) -> Result<(), DbError> {
    records::set_revision(conn, key, Status::Applied { how: How::Upgrade })?;
    records::set_sources(conn, key.revision, sources)?;
    clear_steps(conn, key.revision, Direction::Upgrade)?;
    records::add_history(
        conn,
        key,
        actor,
        Direction::Upgrade.as_str(),
        run,
        "applied",
        None,
    )
}

/// A downgrade of the revision of `key` completed: its record (with its sources and its
/// steps in both directions) is removed, and the history gains the run.
pub fn record_downgraded(
    conn: &mut dyn Connection,
    key: &RevisionKey<'_>,
    actor: &Actor,
    run: &Run<'_>,
) -> Result<(), DbError> {
    records::remove_revision(conn, key.revision)?;
    clear_steps(conn, key.revision, Direction::Downgrade)?;
    records::add_history(
        conn,
        key,
        actor,
        Direction::Downgrade.as_str(),
        run,
        "applied",
        None,
    )
}

/// A run of the revision of `key` in `direction` failed with `error`, in `step` if it
/// failed inside one: an upgrade's record says `failed` there (a downgrade's stays
/// `applied`), and the history gains the failed run.
pub fn record_failed(
    conn: &mut dyn Connection,
    key: &RevisionKey<'_>,
    actor: &Actor,
    direction: Direction,
    step: Option<&str>,
    error: &str,
    run: &Run<'_>,
) -> Result<(), DbError> {
    if direction == Direction::Upgrade {
        records::set_revision(conn, key, Status::Failed { step, error })?;
    }
    records::add_history(
        conn,
        key,
        actor,
        direction.as_str(),
        run,
        "failed",
        Some(error),
    )
}

/// The revision of `key` is recorded as applied without running (`how`: a stamp, a
/// forced stamp, an adoption) at `at_ms`: its step records are forgotten, and the
/// history gains a `stamp` row whose note says `how`.
pub fn record_stamp(
    conn: &mut dyn Connection,
    key: &RevisionKey<'_>,
    actor: &Actor,
    how: How,
    at_ms: i64,
) -> Result<(), DbError> {
    records::set_revision(conn, key, Status::Applied { how })?;
    clear_steps(conn, key.revision, Direction::Upgrade)?;
    records::add_history(
        conn,
        key,
        actor,
        "stamp",
        &Run::instant(at_ms, Some(how.as_str())),
        "applied",
        None,
    )
}

/// `ferry accept`: the applied revision of `key` is recorded as having run its file as
/// it is now (`key.checksum`) with the dependencies `sources`, and the history gains an
/// `accept` row with the operator's `note`.
pub fn record_acceptance(
    conn: &mut dyn Connection,
    key: &RevisionKey<'_>,
    actor: &Actor,
    sources: &RevisionSources,
    at_ms: i64,
    note: &str,
) -> Result<(), DbError> {
    records::set_checksum(conn, key.revision, key.checksum)?;
    records::set_sources(conn, key.revision, sources)?;
    records::add_history(
        conn,
        key,
        actor,
        "accept",
        &Run::instant(at_ms, Some(note)),
        "applied",
        None,
    )
}

/// `ferry reset`: the upgrade steps `forgotten` of the revision of `key` lose their
/// records (the next run runs them again), and the history gains a `reset` row with
/// `note`.
pub fn record_reset(
    conn: &mut dyn Connection,
    key: &RevisionKey<'_>,
    actor: &Actor,
    forgotten: &[String],
    at_ms: i64,
    note: &str,
) -> Result<(), DbError> {
    for step in forgotten {
        forget_step(conn, &StepKey::new(key.revision, Direction::Upgrade, step))?;
    }
    records::add_history(
        conn,
        key,
        actor,
        "reset",
        &Run::instant(at_ms, Some(note)),
        "applied",
        None,
    )
}

/// `ferry move-trees`, in the ledger of the database the trees move to: their revision
/// records (`revisions`, each with its source rows in `sources`, in the same order) and
/// their history rows, exactly as the other ledger holds them (history in the order
/// given, with this ledger's ids).
pub fn copy_tree_records(
    conn: &mut dyn Connection,
    revisions: &[RevisionRecord],
    sources: &[Vec<SourceRecord>],
    history: &[HistoryEntry],
) -> Result<(), DbError> {
    for (r, files) in revisions.iter().zip(sources) {
        records::copy_revision(conn, r)?;
        records::copy_sources(conn, &r.revision, files)?;
    }
    for h in history {
        records::copy_history(conn, h)?;
    }
    Ok(())
}

/// `ferry move-trees`: the history gains a `move` row for the current revision of
/// `key`, with `note` saying where it came from.
pub fn record_move(
    conn: &mut dyn Connection,
    key: &RevisionKey<'_>,
    actor: &Actor,
    at_ms: i64,
    note: &str,
) -> Result<(), DbError> {
    records::add_history(
        conn,
        key,
        actor,
        "move",
        &Run::instant(at_ms, Some(note)),
        "applied",
        None,
    )
}

/// `ferry move-trees`, in the ledger the trees left: every record, step and history row
/// of `tree` is removed (after they were copied to the other ledger).
pub fn forget_tree(conn: &mut dyn Connection, tree: &str) -> Result<(), DbError> {
    records::forget_tree(conn, tree)
}

// The lock holder. The lock itself is the backend's, and `crate::lock` decides when its
// holder is recorded and forgotten; the `ferry_lock` row is written here all the same,
// with the ledger's other rows: the table is the ledger's (created and qualified with
// them), and a failed run's record and the forgetting of its holder commit in one
// transaction (`runner.rs`, `Failure::write_beside`), so one module owns both writes.

/// `actor` holds the migration lock since `since` (Unix seconds): the record a second
/// migrator reads to name who it waits for.
pub fn record_lock_holder(
    conn: &mut dyn Connection,
    actor: &Actor,
    since: i64,
) -> Result<(), DbError> {
    records::set_lock_holder(conn, actor, since)
}

/// Nobody holds the migration lock any more (as far as the ledger records).
pub fn clear_lock_holder(conn: &mut dyn Connection) -> Result<(), DbError> {
    records::clear_lock_holder(conn)
}
