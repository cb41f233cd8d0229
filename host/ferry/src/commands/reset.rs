//! `reset`: forgetting committed steps of an unfinished revision, so that the next
//! upgrade runs them again (for a step whose committed result turned out wrong).

use super::status::Ledgers;
use super::{Error, Migrator};
use crate::checkpoint::{self, with_transaction};
use crate::ledger::{self, Actor, RevisionKey, RevisionState};
use crate::target;

/// What `reset` forgot.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ResetReport {
    /// The revision reset.
    pub revision: String,
    /// The steps whose records were removed, in the order they were committed.
    pub forgotten: Vec<String>,
    /// Committed steps that stay committed.
    pub kept: Vec<String>,
}

impl Migrator {
    /// Forgets the committed `steps` (all, when empty) of `revision`, which must be
    /// unfinished (failed or interrupted), and records a `reset` history row. The
    /// steps' effects stay in the database: they run again over them, so they must be
    /// able to (drop-if-exists, upserts), which is the script author's promise.
    pub fn reset(&self, revision: &str, steps: &[String]) -> Result<ResetReport, Error> {
        let (project, dbs) = self.setup()?;
        let id = target::resolve_id(&project.graph, revision)?.to_string();
        let meta = project.graph.get(&id).expect("resolved ids exist");
        let refuse = |why: String| Err(Error::Refused(format!("{why}; nothing was reset")));
        self.locked_all(&dbs, |conns| {
            let ledgers = Ledgers::read(conns)?;
            ledgers.refuse_misplaced(&dbs, &project.graph)?;
            let db = dbs.of_tree(&meta.tree);
            let record = match ledgers.records[db].get(&id) {
                None => return refuse(format!("revision {id} has not started")),
                Some(r) if r.state == RevisionState::Applied => {
                    return refuse(format!(
                        "revision {id} is applied: `ferry downgrade` undoes an applied revision"
                    ))
                }
                Some(r) => r.clone(),
            };
            let conn = conns[db].as_mut();
            let committed: Vec<String> = ledger::steps(conn, &id)?
                .into_iter()
                .map(|s| s.step)
                .collect();
            if committed.is_empty() {
                return refuse(format!(
                    "revision {id} has no committed steps: the next `ferry upgrade` runs it from \
                     the start"
                ));
            }
            let unknown: Vec<&String> = steps.iter().filter(|s| !committed.contains(s)).collect();
            if !unknown.is_empty() {
                return refuse(format!(
                    "revision {id} has no committed step {}; its committed steps are: {}",
                    unknown
                        .iter()
                        .map(|s| format!("{s:?}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                    committed
                        .iter()
                        .map(|s| format!("{s:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            let (forgotten, kept): (Vec<String>, Vec<String>) = committed
                .into_iter()
                .partition(|s| steps.is_empty() || steps.contains(s));
            let now = ledger::now_ms();
            let key = RevisionKey {
                revision: &id,
                tree: &record.tree,
                version: &record.version,
                checksum: &meta.checksum,
            };
            let note = format!("reset: forgot step(s) {}", forgotten.join(", "));
            let written = with_transaction(conn, |conn| {
                checkpoint::record_reset(conn, &key, &Actor::current(), &forgotten, now, &note)
            });
            written?;
            Ok(ResetReport {
                revision: id.clone(),
                forgotten,
                kept,
            })
        })
    }
}
