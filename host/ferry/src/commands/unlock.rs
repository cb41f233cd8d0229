//! `unlock`: clear the lock record of a migrator that is gone.

use super::{Error, Migrator};
use crate::backend::{self, Connection, LockHolder};
use crate::ledger;

/// What `unlock` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UnlockReport {
    /// The stale record that was cleared (`None`: there was nothing recorded).
    pub cleared: Option<LockHolder>,
}

impl Migrator {
    /// Clears a lock record left by a migrator that is gone, after checking that the
    /// backend's lock can be taken; refuses while a live migrator holds it.
    pub fn unlock(&self) -> Result<UnlockReport, Error> {
        let dbs = self.databases()?;
        let mut cleared = None;
        for d in dbs.list() {
            let r = self.unlock_one(d.source.open()?)?;
            cleared = cleared.or(r.cleared);
        }
        Ok(UnlockReport { cleared })
    }

    fn unlock_one(&self, mut conn: Box<dyn Connection>) -> Result<UnlockReport, Error> {
        let recorded = ledger::lock_holder(conn.as_mut())?;
        let me = LockHolder {
            host: String::new(),
            pid: std::process::id(),
            user: String::new(),
            since: crate::clock::now_unix(),
        };
        match conn.try_lock(&me)? {
            backend::LockAttempt::HeldBy(holder) => Err(Error::LockHeld(
                holder
                    .or(recorded)
                    .map(|h| h.to_string())
                    .unwrap_or_else(|| "another migrator".into()),
            )),
            backend::LockAttempt::Acquired => {
                if recorded.is_some() {
                    crate::lock::release(conn.as_mut());
                } else {
                    conn.unlock()?;
                }
                Ok(UnlockReport { cleared: recorded })
            }
        }
    }
}
