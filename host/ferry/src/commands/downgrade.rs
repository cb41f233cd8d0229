//! `downgrade`: take applied revisions back to a target, newest first.

use super::{Error, Migrator, UpgradeOptions};
use crate::plan;
use crate::runner::Report;
use crate::target;

impl Migrator {
    /// Downgrades to `target` (`base`, `TREE@base`, a revision, `-N`) under the lock.
    /// A revision that fails stops the run: [`Error::Failed`], with what completed.
    pub fn downgrade(&self, target: &str, options: &UpgradeOptions) -> Result<Report, Error> {
        if options.dry_run && !self.rehearsal.scratch {
            if let Some(report) = self.rehearse_on_copy(|copy| copy.downgrade(target, options))? {
                return Ok(report);
            }
        }
        let (project, dbs) = self.setup()?;
        self.run(&project, &dbs, options, |project, ledgers| {
            let applied = ledgers.applied();
            let t = target::resolve_target(&project.graph, &applied, target)?;
            let plan = plan::plan_downgrade(&project.graph, &applied, &t)?;
            let blocked: Vec<String> = plan
                .revisions
                .iter()
                .filter_map(|id| project.graph.get(id))
                .filter(|r| !r.has_downgrade)
                .map(|r| format!("{} ({})", r.id, r.path.display()))
                .collect();
            if !blocked.is_empty() {
                return Err(Error::NoDowngrade(blocked));
            }
            Ok(plan)
        })
    }
}
