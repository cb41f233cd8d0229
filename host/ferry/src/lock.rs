//! The migration lock: one migrator at a time.
//!
//! The lock itself belongs to the backend and dies with its holder: a PostgreSQL
//! session-level advisory lock (taken with `pg_try_advisory_lock` in a polling loop,
//! never a blocking wait that could deadlock with `CREATE INDEX CONCURRENTLY`), and on
//! SQLite an OS file lock on `<file>.ferry-lock`. A killed migrator therefore never
//! leaves a repository locked. The `ferry_lock` table only records who holds it, so
//! that a second migrator can name the holder; this module decides when that record is
//! written and forgotten, and writes it through [`crate::checkpoint`] like every other
//! ledger row.

use crate::backend::{Connection, DbError, LockAttempt, LockHolder};
use crate::checkpoint::{self, roll_back_open, with_transaction};
use crate::ledger::{self, Actor};
use crate::observer::{Event, Observer};
use std::time::{Duration, Instant};

/// Why the migration lock cannot be taken.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LockError {
    /// Another migrator held the lock for the whole lock timeout.
    #[error("the repository is locked by another migrator{}; waited {waited:?}", holder.as_ref().map(|h| format!(" ({h})")).unwrap_or_default())]
    Held {
        /// Who holds it, when the database or the ledger names the holder.
        holder: Option<LockHolder>,
        /// How long this migrator waited.
        waited: Duration,
    },
    /// The database failed while taking the lock.
    #[error("cannot take the migration lock: {0}")]
    Db(#[from] DbError),
    /// The lock holder's record in Ferry's tables cannot be read or written.
    #[error("cannot take the migration lock: {0}")]
    Ledger(#[from] ledger::LedgerError),
}

/// Records `actor` as the holder of the backend's lock (already taken), creating the
/// ledger's tables if they are missing.
pub fn record_holder(conn: &mut dyn Connection, actor: &Actor) -> Result<(), LockError> {
    let since = crate::clock::now_unix();
    ledger::ensure(conn)?;
    with_transaction(conn, |c| -> Result<(), LockError> {
        Ok(checkpoint::record_lock_holder(c, actor, since)?)
    })
}

/// Polls for the backend's lock until `timeout` without recording the holder, so that
/// a dry run or a refused run commits nothing; [`record_holder`] records it once work
/// starts.
pub fn acquire_backend_lock(
    conn: &mut dyn Connection,
    actor: &Actor,
    timeout: Duration,
    observer: &dyn Observer,
) -> Result<(), LockError> {
    let start = Instant::now();
    let me = actor.holder(crate::clock::now_unix());
    let mut told = false;
    let mut looked_again = false;
    loop {
        match conn.try_lock(&me)? {
            LockAttempt::Acquired => break,
            LockAttempt::HeldBy(holder) => {
                // The backend may not know the holder; the ledger's record names it.
                let holder = match holder {
                    Some(h) => Some(h),
                    None => ledger::lock_holder(conn).ok().flatten(),
                };
                if holder.is_none() && !looked_again {
                    // Nobody to name: the holder has most likely just released the lock
                    // (between our attempt and the look-up), so try once more at once.
                    looked_again = true;
                    continue;
                }
                if start.elapsed() >= timeout {
                    return Err(LockError::Held {
                        holder,
                        waited: start.elapsed(),
                    });
                }
                if !told {
                    observer.event(&Event::LockWaiting {
                        holder: holder
                            .map(|h| h.to_string())
                            .unwrap_or_else(|| "another migrator".into()),
                    });
                    told = true;
                }
                std::thread::sleep(
                    Duration::from_millis(100).min(timeout.saturating_sub(start.elapsed())),
                );
            }
        }
    }
    Ok(())
}

/// Forgets the recorded holder and releases the backend's lock. A transaction the run
/// left open (a dry run's, a failed preflight's) is rolled back first: none of it may
/// commit with the forgetting of the holder.
pub fn release(conn: &mut dyn Connection) {
    roll_back_open(conn);
    let _ = with_transaction(conn, checkpoint::clear_lock_holder);
    let _ = conn.unlock();
}

/// Releases a backend lock whose holder was never recorded, writing nothing (and
/// rolling back what the run left open).
pub fn release_unrecorded(conn: &mut dyn Connection) {
    roll_back_open(conn);
    let _ = conn.unlock();
}
