//! Rehearsals: a dry run on a scratch copy of a SQLite file, and `upgrade --sql`
//! (the statements of a dry run as a script for `sqlite3` or `psql`).

use super::lockset::LockSet;
use super::{Error, Migrator, UpgradeOptions};
use crate::metadata::RevisionMeta;
use crate::observer::{Observer, Silent};
use crate::runner::Report;
use crate::source::Source;
use std::rc::Rc;

/// How a dry run runs for a migrator: on a scratch copy (the migrator of the copy), and
/// whether its statements are noted for `upgrade --sql`.
#[derive(Clone, Default)]
pub(crate) struct Rehearsal {
    pub(crate) scratch: bool,
    pub(crate) log: Option<crate::offline_sql::SharedLog>,
}

/// `upgrade --sql`: the script, and the report of the dry run it comes from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SqlScript {
    /// The script (empty when the dry run failed).
    pub sql: String,
    /// The report of the dry run.
    pub report: Report,
}
impl Migrator {
    /// A migrator like this one for `main` (one database), rehearsing as `rehearsal` says.
    fn rehearsing(&self, main: Source, rehearsal: Rehearsal, observer: Rc<dyn Observer>) -> Self {
        Migrator {
            main,
            placed: Vec::new(),
            roots: self.roots.clone(),
            stdlib: self.stdlib.clone(),
            config: self.config.clone(),
            config_sources: self.config_sources.clone(),
            static_checks: self.static_checks,
            limits: self.limits.clone(),
            lock_timeout: self.lock_timeout,
            observer,
            rehearsal,
            // The copy runs the scripts this migrator loaded (and checked).
            project: std::cell::RefCell::new(self.project.borrow().clone()),
            checked: std::cell::Cell::new(self.checked.get()),
        }
    }

    /// The dry run of a SQLite database: under the database's lock, a consistent copy
    /// of the file is upgraded (or downgraded) for real by `run` (table rewrites need
    /// transactions of their own) and thrown away. `None` where the backend has no such
    /// copy (PostgreSQL: the dry run is one rolled-back transaction) or trees live in
    /// several databases.
    pub(crate) fn rehearse_on_copy(
        &self,
        run: impl FnOnce(&Migrator) -> Result<Report, Error>,
    ) -> Result<Option<Report>, Error> {
        if self.databases()?.several() {
            return Ok(None);
        }
        // A SQLite file that does not exist yet (in a directory that does) is not
        // created by its rehearsal: the plan runs on a new file in the temporary
        // directory, with no lock to take since there is nothing to protect.
        let file = self.main.file_path();
        let missing = file.as_deref().is_some_and(|p| {
            !p.exists()
                && p.parent()
                    .is_none_or(|d| d.as_os_str().is_empty() || d.is_dir())
        });
        // The original stays locked while it is copied and its copy rehearsed on.
        let mut held = if missing {
            None
        } else {
            let conn = self.main.open()?;
            Some(LockSet::acquire(vec![conn], [0], |_, c| {
                self.take_lock(c.as_mut())
            })?)
        };
        // Declared after the lock, so dropped (the files removed) before it is released.
        let scratch = crate::backend::ScratchCopy::beside(file.as_deref());
        let copied = match held.as_mut() {
            Some(held) => held[0].scratch_copy(scratch.path()),
            None => Ok(true),
        };
        match copied {
            Ok(false) => Ok(None),
            Err(e) => Err(Error::from(e)),
            Ok(true) => {
                let rehearsal = Rehearsal {
                    scratch: true,
                    log: self.rehearsal.log.clone(),
                };
                let copy = Source::Url(scratch.url());
                run(&self.rehearsing(copy, rehearsal, self.observer.clone())).map(Some)
            }
        }
    }

    /// The SQL an upgrade to `targets` would run, as a script for `sqlite3` or `psql`
    /// (`ferry upgrade --sql`): the statements of a dry run with their values as
    /// literals, and the ledger writes of each revision. The values are those the
    /// revisions read from the database now: the script is for this database as it is.
    pub fn upgrade_sql(&self, targets: &[String]) -> Result<SqlScript, Error> {
        if self.databases()?.several() {
            return Err(Error::Refused(
                "upgrade --sql works on one database; trees live in several here: use \
                 `ferry upgrade --dry-run` instead"
                    .into(),
            ));
        }
        let log = crate::offline_sql::SharedLog::default();
        let rehearsal = Rehearsal {
            scratch: false,
            log: Some(log.clone()),
        };
        let options = UpgradeOptions {
            dry_run: true,
            ..UpgradeOptions::default()
        };
        let report = self
            .rehearsing(self.main.clone(), rehearsal, Rc::new(Silent))
            .upgrade(targets, &options)?;
        if report.completed.is_empty() {
            return Ok(SqlScript {
                sql: "-- nothing to do\n".into(),
                report,
            });
        }
        // Read-only: a SQLite file that does not exist is described, not created.
        let (dialect, place) = {
            let conn = self.connect_read_only()?;
            (conn.dialect(), conn.describe())
        };
        let revisions: Vec<&str> = report
            .completed
            .iter()
            .map(|c| c.revision.as_str())
            .collect();
        let project = self.load()?;
        let reading: Vec<&str> = revisions
            .iter()
            .copied()
            .filter(|id| project.graph.get(id).is_some_and(reads_the_database))
            .collect();
        let mut header = vec![
            format!("ferry upgrade --sql for {place}"),
            format!("revisions, in order: {}", revisions.join(", ")),
        ];
        if !reading.is_empty() {
            header.push(format!(
                "revisions that read the database (their values are in the script): {}",
                reading.join(", ")
            ));
        }
        header.extend([
            "The values in it are those the revisions read from the database when it was".into(),
            "made: apply it to that database, unchanged since, and to no other:".into(),
            format!("  {}", dialect.script_apply_hint()),
        ]);
        let statements = std::mem::take(&mut log.borrow_mut().statements);
        Ok(SqlScript {
            sql: crate::offline_sql::script(dialect, &header, &statements),
            report,
        })
    }
}

/// Whether a revision's statements depend on what the database holds (see
/// [`crate::offline::data_dependent_calls`]), in the tree discovery compiled.
fn reads_the_database(m: &RevisionMeta) -> bool {
    !crate::offline::data_dependent_calls(m.script.ast()).is_empty()
}
