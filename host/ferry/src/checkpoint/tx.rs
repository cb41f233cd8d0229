//! Step transactions, and the one helper for transactions that are not a step's.

use super::key::StepKey;
use crate::backend::{Connection, DbError};

/// Reaches the connection a transaction runs on.
///
/// A step's transaction stays open while the script's step body runs, and the body
/// reaches the connection through the script session; so a [`StepTx`] does not hold a
/// borrow of the connection across the body but asks for it when it writes, commits or
/// rolls back. A plain `&mut dyn Connection` is one (pooled connections, tests).
pub trait Connected {
    /// Runs `f` on the connection; `None` when the connection cannot be reached now
    /// (it is lent to a caller further up).
    fn with_connection<R>(&mut self, f: impl FnOnce(&mut dyn Connection) -> R) -> Option<R>;

    /// Called once a transaction of the step's own began (the script session forgets
    /// the database error of an earlier transaction there).
    fn transaction_began(&mut self) {}
}

impl<'a, 'b: 'a> Connected for &'a mut (dyn Connection + 'b) {
    fn with_connection<R>(&mut self, f: impl FnOnce(&mut dyn Connection) -> R) -> Option<R> {
        Some(f(&mut **self))
    }
}

/// How a step's transaction begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Begin {
    /// Foreign keys checked statement by statement.
    Plain,
    /// Foreign keys checked once at commit (see
    /// [`crate::backend::Sql::begin_checking_foreign_keys_at_commit`]).
    ForeignKeysAtCommit,
}

/// What a step's ledger record says once its transaction commits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Progress {
    /// The step is complete (a batched step keeps its last cursor and its counts).
    Done {
        cursor: Option<String>,
        batches: i64,
        rows: i64,
    },
    /// A batch of a batched step committed: a rerun resumes after `cursor`.
    Batch {
        cursor: String,
        batches: i64,
        rows: i64,
    },
}

/// A step's open transaction: the only way to commit a step's work together with its
/// ledger record.
///
/// It begins on creation; [`StepTx::commit`] writes the record and commits both; dropped
/// without a commit (the body failed, or panicked) it rolls back, so neither the work nor
/// the record stays. When a transaction is already open on the connection (the one
/// transaction of a dry run), the step joins it: it writes its record there and leaves
/// the commit or rollback to the transaction's owner.
#[must_use = "a step transaction rolls back unless it is committed"]
pub struct StepTx<C: Connected> {
    conn: C,
    key: StepKey,
    /// Whether this step began the transaction (and so commits or rolls it back).
    owned: bool,
    /// Still open: `Drop` rolls back.
    open: bool,
}

fn unreachable_connection() -> DbError {
    DbError::other("the step's connection is in use elsewhere (a Ferry bug)")
}

impl<C: Connected> StepTx<C> {
    /// Begins the transaction of step `key` on `conn` (or joins the open one).
    pub fn begin(mut conn: C, key: StepKey, how: Begin) -> Result<StepTx<C>, DbError> {
        let owned = conn
            .with_connection(|c| -> Result<bool, DbError> {
                if c.in_transaction() {
                    return Ok(false);
                }
                match how {
                    Begin::Plain => c.begin()?,
                    Begin::ForeignKeysAtCommit => c.begin_checking_foreign_keys_at_commit()?,
                }
                Ok(true)
            })
            .unwrap_or_else(|| Err(unreachable_connection()))?;
        if owned {
            conn.transaction_began();
        }
        Ok(StepTx {
            conn,
            key,
            owned,
            open: true,
        })
    }

    /// Runs `f` on the connection inside the transaction (the step's work, when the
    /// caller does not reach the connection otherwise).
    pub fn run<T>(
        &mut self,
        f: impl FnOnce(&mut dyn Connection) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        self.conn
            .with_connection(f)
            .unwrap_or_else(|| Err(unreachable_connection()))
    }

    /// Writes the step's ledger record and commits it with the step's work. On an
    /// error nothing is committed (the transaction is rolled back).
    pub fn commit(mut self, progress: Progress) -> Result<(), DbError> {
        let (key, owned) = (self.key.clone(), self.owned);
        let committed = self
            .conn
            .with_connection(|c| {
                let owner = key.ledger_revision();
                match &progress {
                    Progress::Done {
                        cursor,
                        batches,
                        rows,
                    } => super::records::set_step(
                        c,
                        &owner,
                        &key.step,
                        true,
                        cursor.as_deref(),
                        *batches,
                        *rows,
                    )?,
                    Progress::Batch {
                        cursor,
                        batches,
                        rows,
                    } => super::records::set_step(
                        c,
                        &owner,
                        &key.step,
                        false,
                        Some(cursor),
                        *batches,
                        *rows,
                    )?,
                }
                if owned {
                    c.commit()?;
                }
                Ok(())
            })
            .unwrap_or_else(|| Err(unreachable_connection()));
        if committed.is_ok() {
            self.open = false;
        }
        committed
    }
}

impl<C: Connected> Drop for StepTx<C> {
    fn drop(&mut self) {
        if self.open && self.owned {
            // Unreachable only while the session is lent out: its owner then rolls
            // back what is open when the revision fails.
            self.conn.with_connection(roll_back_open);
        }
    }
}

/// Rolls back, when dropped, the transaction [`with_transaction`] opened unless it
/// committed.
struct Open<'a, 'b> {
    conn: &'a mut (dyn Connection + 'b),
    committed: bool,
}

impl Drop for Open<'_, '_> {
    fn drop(&mut self) {
        if !self.committed {
            roll_back_open(self.conn);
        }
    }
}

/// Rolls back the transaction open on `conn`, if any, ignoring a failure (the
/// connection may be gone, and then so is the transaction): what a transaction that
/// did not commit leaves behind, and what a run abandons when it stops.
pub fn roll_back_open(conn: &mut dyn Connection) {
    if conn.in_transaction() {
        let _ = conn.rollback();
    }
}

/// Runs `f` in a transaction of its own on `conn`: committed when `f` succeeds, rolled
/// back when it fails or panics. For ledger writes that are not a step's (stamping,
/// `ferry accept`, `ferry reset`, recording a failed run, the lock record).
pub fn with_transaction<T, E: From<DbError>>(
    conn: &mut dyn Connection,
    f: impl FnOnce(&mut dyn Connection) -> Result<T, E>,
) -> Result<T, E> {
    conn.begin()?;
    let mut open = Open {
        conn,
        committed: false,
    };
    let value = f(&mut *open.conn)?;
    open.conn.commit()?;
    open.committed = true;
    Ok(value)
}
