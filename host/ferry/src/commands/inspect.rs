//! The read-only commands: `status`, `history`, `show`, `plan` (its report),
//! `digest`, the superuser check, and `new` (which writes a script, not a database).

use super::reports::{state_text, PlanEntry, PlanReport, RevisionInfo};
use super::status::{status_over, Status};
use super::{changed_scripts, changes, upgrade_plan, Error, FileChange, Migrator};
use crate::digest::{self, SchemaDigest};
use crate::ledger::{self, HistoryEntry};
use crate::target;

impl Migrator {
    /// The databases whose connection is a PostgreSQL superuser's, as
    /// `role on database`: no statement guard contains a superuser (`COPY … PROGRAM`,
    /// server files), so `status` and `upgrade` warn (docs/OPERATIONS.md).
    pub fn superusers(&self) -> Result<Vec<String>, Error> {
        let dbs = self.databases()?;
        let mut found = Vec::new();
        for d in dbs.list() {
            // A database that is not there is not created to find out.
            if let Some((role, place)) = d.source.superuser()? {
                found.push(format!("{role} on {place}"));
            }
        }
        Ok(found)
    }

    /// Each tree's state, unfinished revisions, the lock holder and changed scripts.
    pub fn status(&self) -> Result<Status, Error> {
        let (project, dbs) = self.setup_metadata()?;
        let mut conns = self.read_all(&dbs)?;
        let mut status = status_over(&project, &dbs, &mut conns)?;
        status.statement_timeout_seconds = self.limits.statement_timeout.map(|t| t.as_secs());
        Ok(status)
    }

    /// The ledger's history, newest first (`limit` 0: all); with several databases,
    /// their histories merged by start time.
    pub fn history(&self, limit: usize) -> Result<Vec<HistoryEntry>, Error> {
        let dbs = self.databases()?;
        let mut conns = self.read_all(&dbs)?;
        if conns.len() == 1 {
            return Ok(ledger::history(conns[0].as_mut(), limit)?);
        }
        let mut all = Vec::new();
        for c in conns.iter_mut() {
            all.extend(ledger::history(c.as_mut(), 0)?);
        }
        all.sort_by(|a, b| b.started_at.cmp(&a.started_at).then(b.id.cmp(&a.id)));
        if limit > 0 {
            all.truncate(limit);
        }
        Ok(all)
    }

    /// Everything known about one revision (full or unique partial id).
    pub fn show(&self, rev: &str) -> Result<RevisionInfo, Error> {
        let (project, dbs) = self.setup_metadata()?;
        let id = target::resolve_id(&project.graph, rev)?.to_string();
        let (mut conns, ledgers) = self.read_ledgers(&dbs)?;
        let records = ledgers.all();
        let g = &project.graph;
        let m = g.get(&id).expect("resolved ids exist");
        let record = records.get(&id).cloned();
        let changes: Vec<FileChange> = changed_scripts(&project, &records)
            .into_iter()
            .find(|c| c.revision == id)
            .map(|c| c.files)
            .unwrap_or_default();
        let diffs = if changes.is_empty() {
            Vec::new()
        } else {
            let kept = ledger::sources_with_text(conns[dbs.of_tree(&m.tree)].as_mut(), &id)?;
            let now = crate::revision_sources::of_revision(m, &project.hooks);
            changes::diffs(&changes, &kept, &now)
        };
        Ok(RevisionInfo {
            revision: id.clone(),
            tree: m.tree.clone(),
            version: m.version.clone(),
            message: m.message.clone(),
            file: m.path.display().to_string(),
            checksum: m.checksum.clone(),
            parents: m.parents.clone(),
            children: g.children(&id).into_iter().map(String::from).collect(),
            depends_on: m.depends_on.clone(),
            before: m.before.clone(),
            after: g.asked_before(&id).into_iter().map(String::from).collect(),
            hooks: project.hook_uses(m),
            online_safe: m.online_safe,
            downgradable: m.has_downgrade,
            expected_digest: m.expected_digest.as_ref().map(|d| d.to_string()),
            head: g.heads(&m.tree).contains(&id.as_str()),
            state: state_text(record.as_ref()),
            changed: !changes.is_empty(),
            changes,
            diffs,
            record,
        })
    }

    /// The upgrade plan to `targets` with what an operator needs to know of each
    /// revision (hooks and their providers, online-safety, downgradability).
    pub fn plan_report(&self, targets: &[String]) -> Result<PlanReport, Error> {
        let (project, dbs) = self.setup_with(self.load_checked()?)?;
        let (mut conns, ledgers) = self.read_ledgers(&dbs)?;
        ledgers.refuse_misplaced(&dbs, &project.graph)?;
        let records = ledgers.all();
        let plan = upgrade_plan(&project, &ledgers.applied(), targets, false)?;
        let mut revisions = Vec::new();
        let mut metas = Vec::new();
        for id in &plan.revisions {
            let m = project.graph.get(id).expect("planned ids exist");
            metas.push(m);
            let db = dbs.of_tree(&m.tree);
            // Only a revision with a ledger record can have committed steps: the runner
            // records "running" before its first step, and removing a record removes
            // its steps (`status` reads unfinished revisions the same way). A query per
            // pending revision would cost a plan of thousands more than the rest of it.
            let steps_done = if records.contains_key(id) {
                ledger::steps(conns[db].as_mut(), id)?
                    .into_iter()
                    .filter(|s| s.done)
                    .map(|s| s.step)
                    .collect()
            } else {
                Vec::new()
            };
            revisions.push(PlanEntry {
                revision: id.clone(),
                tree: m.tree.clone(),
                database: dbs.several().then(|| dbs.list()[db].name.clone()),
                version: m.version.clone(),
                message: m.message.clone(),
                file: m.path.display().to_string(),
                hooks: project.hook_uses(m),
                online_safe: m.online_safe,
                downgradable: m.has_downgrade,
                steps: m.script.declared_steps(),
                steps_done,
                state: state_text(records.get(id)),
            });
        }
        Ok(PlanReport {
            direction: plan.direction,
            revisions,
            problems: project.hook_problems(&metas),
        })
    }

    /// The digest of the repository's schema now (of the main database).
    pub fn digest(&self) -> Result<SchemaDigest, Error> {
        let mut conn = self.connect_read_only()?;
        Ok(digest::digest(conn.as_mut())?)
    }

    /// The digest of the schema of the database named `name`.
    pub fn digest_of(&self, name: &str) -> Result<SchemaDigest, Error> {
        let dbs = self.databases()?;
        let i = dbs
            .index_of(name)
            .ok_or_else(|| Error::Refused(format!("no database named {name:?}")))?;
        let mut conn = dbs.list()[i].source.open_read_only()?;
        Ok(digest::digest(conn.as_mut())?)
    }

    /// Writes a new revision of `tree` (what `ferry new` writes).
    pub fn new_revision(
        &self,
        tree: &str,
        message: &str,
        new_tree: bool,
    ) -> Result<crate::newrev::NewRevision, Error> {
        let project = self.load()?;
        let written =
            crate::newrev::write_new(&project.graph, &self.roots, tree, message, new_tree)
                .map_err(|e| Error::Refused(e.to_string()))?;
        // The scripts changed: the next command reads them again.
        *self.project.borrow_mut() = None;
        Ok(written)
    }
}
