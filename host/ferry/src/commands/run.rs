//! The run shared by `upgrade` and `downgrade`: a runner per database, each holding
//! its database's lock through one [`LockSet`], then plan, hook checks, preflights and
//! the revisions in plan order.

use super::lockset::LockSet;
use super::status::Ledgers;
use super::{Error, Migrator, Project, UpgradeOptions};
use crate::databases::Databases;
use crate::ledger;
use crate::metadata::RevisionMeta;
use crate::plan::{Direction, Plan};
use crate::runner::{Report, RunOptions, Runner};
use crate::script::Mode;

impl Migrator {
    /// Takes every database's lock (in the fixed order of [`Databases::lock_order`]),
    /// plans with `make_plan` (under the locks, so the plan sees what a migrator that
    /// finished meanwhile did), checks hooks and preflights, and runs the plan: each
    /// revision in its tree's database, in plan order. The run stops at the first
    /// failure, an [`Error::Failed`] with the partial report; what completed in any
    /// database stays applied and recorded there.
    pub(super) fn run(
        &self,
        project: &Project,
        dbs: &Databases,
        options: &UpgradeOptions,
        make_plan: impl FnOnce(&Project, &Ledgers) -> Result<Plan, Error>,
    ) -> Result<Report, Error> {
        let run_options = RunOptions {
            mode: match (options.dry_run, self.rehearsal.scratch) {
                (false, _) => Mode::Apply,
                (true, false) => Mode::DryRun,
                (true, true) => Mode::Scratch,
            },
            limits: self.limits.clone(),
            lock_timeout: self.lock_timeout,
            paths: self.module_paths(),
            config: self.config.clone(),
            note: options.note.clone(),
            reconnect: None,
            alembic: crate::alembic::Follow::of_graph(&project.graph),
        };
        let slots: Vec<Option<Runner>> = dbs.list().iter().map(|_| None).collect();
        let mut runners = LockSet::acquire(slots, dbs.lock_order(), |i, slot| {
            let d = &dbs.list()[i];
            let conn = d.source.open()?;
            let conn = match &self.rehearsal.log {
                Some(log) => Box::new(crate::offline_sql::Recording::new(
                    conn,
                    log.clone(),
                    self.rehearsal.scratch,
                )),
                None => conn,
            };
            // A lost connection is recorded through a new one, where there is a URL.
            let options = RunOptions {
                reconnect: d.source.url().cloned(),
                ..run_options.clone()
            };
            let runner =
                Runner::acquire(conn, options, project.hooks.clone(), self.observer.clone())
                    .map_err(|(e, _conn)| Error::Run(e))?;
            *slot = Some(runner);
            Ok::<(), Error>(())
        })?;
        let mut records = Vec::new();
        for r in runners.iter_mut().flatten() {
            records.push(r.with_connection(|c| ledger::revisions(c))?);
        }
        let ledgers = Ledgers { records };
        ledgers.refuse_misplaced(dbs, &project.graph)?;
        let plan = make_plan(project, &ledgers)?;
        let revisions: Vec<&RevisionMeta> = plan
            .revisions
            .iter()
            .filter_map(|id| project.graph.get(id))
            .collect();
        let problems = project.hook_problems(&revisions);
        if !problems.is_empty() {
            return Err(Error::Hooks(problems));
        }
        let segments = segments(&revisions, |m| dbs.of_tree(&m.tree));
        if plan.direction == Direction::Upgrade {
            for (db, part) in &segments {
                let runner = runners[*db].as_mut().expect("every database is locked");
                runner
                    .preflight(part)
                    .map_err(|e| Error::Preflight(Box::new(e)))?;
            }
        }
        let mut report = Report::default();
        for (k, (db, part)) in segments.iter().enumerate() {
            let runner = runners[*db].as_mut().expect("every database is locked");
            let done = runner.run(part, plan.direction)?;
            report.completed.extend(done.completed);
            report.statements.extend(done.statements);
            if done.failed.is_some() {
                report.failed = done.failed;
                report.not_run = done.not_run;
                for (_, later) in &segments[k + 1..] {
                    report.not_run.extend(later.iter().map(|m| m.id.clone()));
                }
                return Err(Error::Failed {
                    report: Box::new(report),
                });
            }
        }
        Ok(report)
    }
}

/// Splits revisions in plan order into runs of consecutive revisions of one database.
fn segments<'a>(
    revisions: &[&'a RevisionMeta],
    db_of: impl Fn(&RevisionMeta) -> usize,
) -> Vec<(usize, Vec<&'a RevisionMeta>)> {
    let mut out: Vec<(usize, Vec<&'a RevisionMeta>)> = Vec::new();
    for m in revisions {
        let db = db_of(m);
        match out.last_mut() {
            Some((d, part)) if *d == db => part.push(m),
            _ => out.push((db, vec![m])),
        }
    }
    out
}
