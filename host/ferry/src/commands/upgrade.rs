//! `upgrade` and `plan`: bring trees up to targets (default: every head), then check
//! each tree's schema against the `DIGEST` its last applied revision declares.

use super::{changed_scripts, Error, Migrator, Project, UpgradeOptions};
use crate::databases::Databases;
use crate::digest::{self, SchemaDigest};
use crate::metadata::RevisionMeta;
use crate::plan::{self, Plan, PlanError};
use crate::runner::Report;
use crate::target::{self, Target};
use std::collections::{BTreeMap, BTreeSet};

impl Migrator {
    #[cfg(any(test, feature = "internals"))]
    /// Every database's ledger, read now.
    fn ledgers(
        &self,
        dbs: &Databases,
    ) -> Result<
        (
            Vec<Box<dyn crate::backend::Connection>>,
            super::status::Ledgers,
        ),
        Error,
    > {
        let mut conns = self.connect_all(dbs)?;
        let ledgers = super::status::Ledgers::read(&mut conns)?;
        Ok((conns, ledgers))
    }

    #[cfg(any(test, feature = "internals"))]
    internal_fn! {
        /// The revisions an upgrade to `targets` (default: every head) would run.
        fn plan_upgrade(&self, targets: &[String]) -> Result<(std::rc::Rc<Project>, Plan), Error> {
            let (project, dbs) = self.setup_with(self.load_checked()?)?;
            let (_conns, ledgers) = self.ledgers(&dbs)?;
            ledgers.refuse_misplaced(&dbs, &project.graph)?;
            let plan = upgrade_plan(&project, &ledgers.applied(), targets, false)?;
            Ok((project, plan))
        }
    }

    /// Upgrades to `targets` (default: every head) under the lock (every database's).
    /// A revision that fails stops the run: [`Error::Failed`], with what completed.
    pub fn upgrade(&self, targets: &[String], options: &UpgradeOptions) -> Result<Report, Error> {
        // Before the repository is opened (or copied for a dry run): a script that
        // cannot run is refused before an earlier revision commits. (A dry run's
        // rehearsal on its copy was checked here already.)
        let project = if self.rehearsal.scratch {
            self.load()?
        } else {
            self.load_checked()?
        };
        if options.dry_run && !self.rehearsal.scratch {
            if let Some(report) = self.rehearse_on_copy(|copy| copy.upgrade(targets, options))? {
                return Ok(report);
            }
        }
        let (project, dbs) = self.setup_with(project)?;
        let mut options = options.clone();
        if options.note.is_none() {
            let notes: Vec<&str> = [
                (options.allow_changed, "allow-changed"),
                (options.allow_late, "allow-late"),
            ]
            .into_iter()
            .filter_map(|(on, note)| on.then_some(note))
            .collect();
            if !notes.is_empty() {
                options.note = Some(notes.join(", "));
            }
        }
        let options = &options;
        let report = self.run(&project, &dbs, options, |project, ledgers| {
            let changed = changed_scripts(project, &ledgers.all());
            if !changed.is_empty() && !options.allow_changed {
                return Err(Error::Changed(changed));
            }
            upgrade_plan(project, &ledgers.applied(), targets, options.allow_late)
        })?;
        if !options.dry_run {
            if let Some(m) = self.digest_mismatch(&project, &dbs, &report)? {
                return Err(Error::DigestAfterUpgrade {
                    revision: m.revision,
                    expected: m.expected,
                    found: m.found,
                    report: Box::new(report),
                });
            }
        }
        Ok(report)
    }

    /// After an upgrade: for each tree, if the last revision the run applied declares a
    /// `DIGEST`, the schema of the tree's database must have that digest now; the first
    /// tree whose schema differs, if any.
    fn digest_mismatch(
        &self,
        project: &Project,
        dbs: &Databases,
        report: &Report,
    ) -> Result<Option<DigestMismatch>, Error> {
        let mut last: BTreeMap<&str, &RevisionMeta> = BTreeMap::new();
        for c in &report.completed {
            if let Some(m) = project.graph.get(&c.revision) {
                last.insert(m.tree.as_str(), m);
            }
        }
        let mut digests: BTreeMap<usize, SchemaDigest> = BTreeMap::new();
        for m in last.values().filter(|m| m.expected_digest.is_some()) {
            let db = dbs.of_tree(&m.tree);
            if let std::collections::btree_map::Entry::Vacant(e) = digests.entry(db) {
                let mut conn = dbs.list()[db].source.open()?;
                e.insert(digest::digest(conn.as_mut())?);
            }
            let now = &digests[&db];
            let Some(expected) = m.expected_digest.as_ref().and_then(|d| now.declared(d)) else {
                continue; // a per-backend DIGEST that does not name this backend
            };
            if !now.matches(expected) {
                return Ok(Some(DigestMismatch {
                    revision: m.id.clone(),
                    expected: expected.to_string(),
                    found: now.sha256.clone(),
                }));
            }
        }
        Ok(None)
    }
}

/// A revision's declared `DIGEST` and the schema's digest found after the upgrade.
struct DigestMismatch {
    revision: String,
    expected: String,
    found: String,
}

/// Resolves target strings (default `heads`) and plans the upgrade; a planned revision
/// whose `BEFORE` names an applied revision is refused unless `allow_late`.
pub fn upgrade_plan(
    project: &Project,
    applied: &BTreeSet<String>,
    targets: &[String],
    allow_late: bool,
) -> Result<Plan, Error> {
    let resolved: Vec<Target> = if targets.is_empty() {
        vec![Target::Heads]
    } else {
        targets
            .iter()
            .map(|t| target::resolve_target(&project.graph, applied, t))
            .collect::<Result<_, _>>()?
    };
    let plan = plan::plan_upgrade(&project.graph, applied, &resolved)?;
    let late = plan::late_before(&project.graph, applied, &plan);
    if !late.is_empty() && !allow_late {
        return Err(PlanError::LateBefore(late).into());
    }
    Ok(plan)
}
