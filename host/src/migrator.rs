//! The library API: everything the `ferry` binary does, for applications to embed.
//!
//! ```no_run
//! use ferry::migrator::Migrator;
//! let migrator = Migrator::new("sqlite:repo.sqlite")?
//!     .with_roots(vec!["scripts".into(), "plugins/obs_base".into()]);
//! let status = migrator.status()?;
//! for tree in &status.trees {
//!     println!("{}: {:?} (pending {})", tree.tree, tree.current, tree.pending.len());
//! }
//! let report = migrator.upgrade(&[], &ferry::migrator::UpgradeOptions::default())?;
//! assert!(report.succeeded());
//! # Ok::<(), ferry::migrator::Error>(())
//! ```

use crate::backend::{self, Connection, DbError, DbUrl, LockHolder, UrlError};
use crate::config::{ConfigError, ConfigMap};
use crate::digest::{self, SchemaDigest};
use crate::discovery::{self, DiscoveryError};
use crate::graph::{Graph, GraphError};
use crate::ledger::{self, HistoryEntry, LedgerError, RevisionRecord, RevisionState};
use crate::metadata::RevisionMeta;
use crate::observer::{Observer, Silent};
use crate::plan::{self, Direction, Plan, PlanError};
use crate::runner::{Report, RunError, RunOptions, Runner};
use crate::script::hooks::HookSet;
use crate::script::{Limits, Mode, ModulePaths, ScriptError};
use crate::target::{self, Target, TargetError};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

/// Everything that can go wrong, by stage; [`Error::exit_code`] maps it to the CLI's codes.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Discovery(#[from] DiscoveryError),
    #[error(transparent)]
    Graph(#[from] GraphError),
    #[error(transparent)]
    Target(#[from] TargetError),
    #[error(transparent)]
    Plan(#[from] PlanError),
    #[error("{}", .0.join("\n"))]
    Hooks(Vec<String>),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    Run(#[from] RunError),
    /// A preflight check of a planned revision refused; nothing ran.
    #[error("{0}")]
    Preflight(Box<ScriptError>),
    #[error("applied script(s) changed since they were applied: {}\n  rerun with --allow-changed to run anyway (recorded in the history)", .0.join(", "))]
    Changed(Vec<String>),
    #[error("revision(s) cannot be downgraded (no fn downgrade(db)): {}; nothing was run", .0.join(", "))]
    NoDowngrade(Vec<String>),
    /// The upgrade ran, but the schema is not the one the revision declares.
    #[error("the upgrade ran, but the schema digest after {revision} differs from its DIGEST\n  expected: {expected}\n  found:    {found}\n  (run `ferry digest --verbose` to see the schema as Ferry reads it)")]
    DigestAfterUpgrade {
        revision: String,
        expected: String,
        found: String,
    },
    /// The schema is not the one the revisions to stamp or adopt declare.
    #[error("the schema digest does not match what {revision} declares\n  expected: {expected}\n  found:    {found}\n  nothing was recorded; check the repository, or pass --force to record anyway")]
    DigestMismatch {
        revision: String,
        expected: String,
        found: String,
    },
    /// `unlock` refused: the lock is really held.
    #[error("the lock is held by a live migrator: {0}\n  nothing was changed; wait for it, or stop that process")]
    LockHeld(String),
    /// `upgrade --sql` refused revisions whose statements depend on the data.
    #[error("cannot print SQL for revision(s) that read the database: {}\n  their statements depend on the data; use `ferry upgrade --dry-run` to see what they would do", .0.join("; "))]
    SqlNeedsData(Vec<String>),
    /// `stamp`, `adopt` or `new` refused for a reason given in the message.
    #[error("{0}")]
    Refused(String),
}

impl Error {
    /// 3 when another migrator holds the lock; 1 when a run failed; 2 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Run(RunError::Lock(crate::lock::LockError::Held { .. })) => 3,
            Error::LockHeld(_) => 3,
            Error::DigestAfterUpgrade { .. } => 1,
            _ => 2,
        }
    }
}

/// The scripts found under the roots, validated into one graph.
pub struct Project {
    pub graph: Graph,
    pub hooks: HookSet,
    /// Probe scripts found under the roots (`probes/`), for `adopt`.
    pub probes: Vec<crate::metadata::ModuleFile>,
}

impl Project {
    /// Hook problems that would stop `revisions` at run time: a declared hook that no
    /// plugin provides, and a hook provided twice for the same key.
    pub fn hook_problems(&self, revisions: &[&RevisionMeta]) -> Vec<String> {
        let mut problems = Vec::new();
        for ((name, key), providers) in self.hooks.duplicates() {
            let files: Vec<String> = providers
                .iter()
                .map(|h| h.path.display().to_string())
                .collect();
            problems.push(format!(
                "hook {name:?}{} is provided {} times: {}",
                key.as_ref()
                    .map(|k| format!(" for {k:?}"))
                    .unwrap_or_default(),
                providers.len(),
                files.join(", ")
            ));
        }
        for rev in revisions {
            for hook in &rev.hooks {
                if !self.hooks.provided(hook) {
                    problems.push(format!(
                        "revision {} ({}) calls hook {hook:?}, which no plugin provides",
                        rev.id,
                        rev.path.display()
                    ));
                }
            }
        }
        problems
    }
}

/// Options of an upgrade or downgrade.
#[derive(Debug, Clone, Default)]
pub struct UpgradeOptions {
    pub dry_run: bool,
    /// Run even if applied scripts changed since they were applied.
    pub allow_changed: bool,
    /// A note for the history rows of this run (set by `upgrade` for `allow-changed`).
    pub note: Option<String>,
}

/// One tree's state.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TreeStatus {
    pub tree: String,
    /// Applied revisions of the tree without applied children in it (usually one).
    pub current: Vec<String>,
    /// The tree's human version after its current revision.
    pub version: Option<String>,
    pub heads: Vec<String>,
    /// Revisions of the tree not yet applied, in order.
    pub pending: Vec<String>,
    /// Revisions of the tree that started but did not finish.
    pub unfinished: Vec<Unfinished>,
}

/// A revision left mid-way: failed at a step, or interrupted (killed) while running.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Unfinished {
    pub revision: String,
    pub state: RevisionState,
    pub failed_step: Option<String>,
    pub error: Option<String>,
    /// Steps already committed (a rerun skips them).
    pub steps_done: Vec<String>,
    /// A batched step part-way through: its name and committed batches.
    pub batches_done: Vec<(String, i64)>,
}

/// What `status` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    pub database: String,
    pub ledger: bool,
    pub trees: Vec<TreeStatus>,
    /// The recorded lock holder, if a migrator holds the lock now.
    pub locked_by: Option<LockHolder>,
    /// Applied revisions whose script file changed since (revision ids).
    pub changed: Vec<String>,
    /// Revisions the database records that no script defines.
    pub unknown: Vec<String>,
}

impl Status {
    /// Whether every tree is at its heads, nothing is unfinished and nothing changed.
    pub fn at_heads(&self) -> bool {
        self.unknown.is_empty()
            && self.changed.is_empty()
            && self
                .trees
                .iter()
                .all(|t| t.pending.is_empty() && t.unfinished.is_empty())
    }
}

/// Builds migrations for one database and one set of script roots.
pub struct Migrator {
    url: DbUrl,
    roots: Vec<PathBuf>,
    stdlib: Option<PathBuf>,
    config: ConfigMap,
    limits: Limits,
    lock_timeout: Duration,
    observer: Rc<dyn Observer>,
}

impl Migrator {
    /// A migrator for the database at `url`; roots default to `./scripts` and `./plugins/*`.
    pub fn new(url: &str) -> Result<Migrator, Error> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let stdlib = cwd.join("stdlib");
        Ok(Migrator {
            url: DbUrl::parse(url)?,
            roots: discovery::default_roots(&cwd),
            stdlib: stdlib.is_dir().then_some(stdlib),
            config: ConfigMap::new(),
            limits: Limits::default(),
            lock_timeout: Duration::from_secs(10),
            observer: Rc::new(Silent),
        })
    }

    pub fn with_roots(mut self, roots: Vec<PathBuf>) -> Self {
        self.roots = roots;
        self
    }

    pub fn with_stdlib(mut self, stdlib: Option<PathBuf>) -> Self {
        self.stdlib = stdlib;
        self
    }

    pub fn with_config(mut self, config: ConfigMap) -> Self {
        self.config = config;
        self
    }

    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    pub fn with_observer(mut self, observer: Rc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    pub fn url(&self) -> &DbUrl {
        &self.url
    }

    /// Discovers the scripts and builds the graph (no database needed).
    pub fn load(&self) -> Result<Project, Error> {
        let found = discovery::discover(&self.roots)?;
        let hooks = HookSet::new(&found.hooks);
        let graph = Graph::build(found.revisions)?;
        Ok(Project {
            graph,
            hooks,
            probes: found.probes,
        })
    }

    /// Opens the database.
    pub fn connect(&self) -> Result<Box<dyn Connection>, Error> {
        Ok(backend::connect(&self.url)?)
    }

    /// Each tree's state, unfinished revisions, the lock holder and changed scripts.
    pub fn status(&self) -> Result<Status, Error> {
        let project = self.load()?;
        let mut conn = self.connect()?;
        status_of(&project, conn.as_mut())
    }

    /// The ledger's history, newest first (`limit` 0: all).
    pub fn history(&self, limit: usize) -> Result<Vec<HistoryEntry>, Error> {
        let mut conn = self.connect()?;
        Ok(ledger::history(conn.as_mut(), limit)?)
    }

    /// The revisions an upgrade to `targets` (default: every head) would run.
    pub fn plan_upgrade(&self, targets: &[String]) -> Result<(Project, Plan), Error> {
        let project = self.load()?;
        let mut conn = self.connect()?;
        let records = ledger::revisions(conn.as_mut())?;
        let plan = upgrade_plan(&project, &ledger::applied(&records), targets)?;
        Ok((project, plan))
    }

    /// Upgrades to `targets` (default: every head) under the lock.
    pub fn upgrade(&self, targets: &[String], options: &UpgradeOptions) -> Result<Report, Error> {
        let project = self.load()?;
        let mut options = options.clone();
        if options.allow_changed && options.note.is_none() {
            options.note = Some("allow-changed".into());
        }
        let options = &options;
        let report = self.run(&project, options, |project, conn| {
            let records = ledger::revisions(conn)?;
            let changed = changed_scripts(&project.graph, &records);
            if !changed.is_empty() && !options.allow_changed {
                return Err(Error::Changed(changed));
            }
            let plan = upgrade_plan(project, &ledger::applied(&records), targets)?;
            Ok(plan)
        })?;
        if !options.dry_run && report.succeeded() {
            self.check_digests(&project, &report)?;
        }
        Ok(report)
    }

    /// After an upgrade: for each tree, if the last revision the run applied declares a
    /// `DIGEST`, the schema must have that digest now.
    fn check_digests(&self, project: &Project, report: &Report) -> Result<(), Error> {
        let mut last: BTreeMap<&str, &RevisionMeta> = BTreeMap::new();
        for c in &report.completed {
            if let Some(m) = project.graph.get(&c.revision) {
                last.insert(m.tree.as_str(), m);
            }
        }
        let declared: Vec<&RevisionMeta> = last
            .values()
            .copied()
            .filter(|m| m.expected_digest.is_some())
            .collect();
        if declared.is_empty() {
            return Ok(());
        }
        let mut conn = self.connect()?;
        let now = digest::digest(conn.as_mut())?;
        for m in declared {
            let expected = m.expected_digest.clone().unwrap_or_default();
            if !now.matches(&expected) {
                return Err(Error::DigestAfterUpgrade {
                    revision: m.id.clone(),
                    expected,
                    found: now.sha256.clone(),
                });
            }
        }
        Ok(())
    }

    /// Downgrades to `target` (`base`, `TREE@base`, a revision, `-N`) under the lock.
    pub fn downgrade(&self, target: &str, options: &UpgradeOptions) -> Result<Report, Error> {
        let project = self.load()?;
        self.run(&project, options, |project, conn| {
            let records = ledger::revisions(conn)?;
            let applied = ledger::applied(&records);
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

    /// Takes the lock, plans with `make_plan` (under the lock, so the plan sees what
    /// a migrator that finished meanwhile did), checks hooks and preflights, and runs.
    fn run(
        &self,
        project: &Project,
        options: &UpgradeOptions,
        make_plan: impl FnOnce(&Project, &mut dyn Connection) -> Result<Plan, Error>,
    ) -> Result<Report, Error> {
        let conn = self.connect()?;
        let run_options = RunOptions {
            mode: if options.dry_run {
                Mode::DryRun
            } else {
                Mode::Apply
            },
            limits: self.limits.clone(),
            lock_timeout: self.lock_timeout,
            paths: ModulePaths {
                stdlib: self.stdlib.clone(),
                roots: self.roots.clone(),
            },
            config: self.config.clone(),
            note: options.note.clone(),
        };
        let mut runner = Runner::acquire(
            conn,
            run_options,
            project.hooks.clone(),
            self.observer.clone(),
        )
        .map_err(|(e, _conn)| Error::Run(e))?;
        let result = (|| {
            let plan = runner.with_connection(|c| make_plan(project, c))?;
            let revisions: Vec<&RevisionMeta> = plan
                .revisions
                .iter()
                .filter_map(|id| project.graph.get(id))
                .collect();
            let problems = project.hook_problems(&revisions);
            if !problems.is_empty() {
                return Err(Error::Hooks(problems));
            }
            if plan.direction == Direction::Upgrade {
                runner
                    .preflight(&revisions)
                    .map_err(|e| Error::Preflight(Box::new(e)))?;
            }
            Ok(runner.run(&revisions, plan.direction)?)
        })();
        runner.release();
        result
    }
}

/// Resolves target strings (default `heads`) and plans the upgrade.
pub fn upgrade_plan(
    project: &Project,
    applied: &BTreeSet<String>,
    targets: &[String],
) -> Result<Plan, Error> {
    let resolved: Vec<Target> = if targets.is_empty() {
        vec![Target::Heads]
    } else {
        targets
            .iter()
            .map(|t| target::resolve_target(&project.graph, applied, t))
            .collect::<Result<_, _>>()?
    };
    Ok(plan::plan_upgrade(&project.graph, applied, &resolved)?)
}

/// Applied revisions whose script file no longer has the checksum recorded.
pub fn changed_scripts(graph: &Graph, records: &BTreeMap<String, RevisionRecord>) -> Vec<String> {
    records
        .values()
        .filter(|r| r.state == RevisionState::Applied)
        .filter_map(|r| {
            graph
                .get(&r.revision)
                .filter(|m| m.checksum != r.checksum)
                .map(|m| m.id.clone())
        })
        .collect()
}

/// Computes [`Status`] over an open connection.
pub fn status_of(project: &Project, conn: &mut dyn Connection) -> Result<Status, Error> {
    let has_ledger = ledger::exists(conn)?;
    let records = ledger::revisions(conn)?;
    let applied = ledger::applied(&records);
    let graph = &project.graph;
    let mut trees = Vec::new();
    let mut tree_names: BTreeSet<String> = graph.trees().iter().map(|s| s.to_string()).collect();
    tree_names.extend(records.values().map(|r| r.tree.clone()));
    for tree in tree_names {
        let current: Vec<String> = if graph.has_tree(&tree) {
            target::current_heads(graph, &applied, &tree)
                .into_iter()
                .map(String::from)
                .collect()
        } else {
            records
                .values()
                .filter(|r| r.tree == tree && r.state == RevisionState::Applied)
                .map(|r| r.revision.clone())
                .collect()
        };
        let version = current
            .first()
            .and_then(|id| records.get(id).map(|r| r.version.clone()));
        let pending: Vec<String> = graph
            .tree_revisions(&tree)
            .into_iter()
            .filter(|r| !applied.contains(&r.id))
            .map(|r| r.id.clone())
            .collect();
        let mut unfinished = Vec::new();
        for r in records
            .values()
            .filter(|r| r.tree == tree && r.state != RevisionState::Applied)
        {
            let steps = ledger::steps(conn, &r.revision)?;
            unfinished.push(Unfinished {
                revision: r.revision.clone(),
                state: r.state,
                failed_step: r.failed_step.clone(),
                error: r.error.clone(),
                steps_done: steps
                    .iter()
                    .filter(|s| s.done)
                    .map(|s| s.step.clone())
                    .collect(),
                batches_done: steps
                    .iter()
                    .filter(|s| !s.done)
                    .map(|s| (s.step.clone(), s.batches))
                    .collect(),
            });
        }
        trees.push(TreeStatus {
            heads: graph.heads(&tree).into_iter().map(String::from).collect(),
            tree,
            current,
            version,
            pending,
            unfinished,
        });
    }
    let locked_by = if has_ledger {
        ledger::lock_holder(conn)?
    } else {
        None
    };
    // The record may be stale (a killed holder): the backend's lock is the truth.
    let locked_by = match locked_by {
        Some(h) => {
            let probe = LockHolder {
                host: String::new(),
                pid: 0,
                user: String::new(),
                since: 0,
            };
            match conn.try_lock(&probe)? {
                backend::LockAttempt::Acquired => {
                    conn.unlock()?;
                    None
                }
                backend::LockAttempt::HeldBy(_) => Some(h),
            }
        }
        None => None,
    };
    let unknown = records
        .keys()
        .filter(|id| !graph.contains(id))
        .cloned()
        .collect();
    Ok(Status {
        database: conn.describe(),
        ledger: has_ledger,
        trees,
        locked_by,
        changed: changed_scripts(graph, &records),
        unknown,
    })
}

/// A hook a revision calls, and the plugin files that provide it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HookUse {
    pub hook: String,
    /// `KEY` (or `null` for an unkeyed hook) and the file providing it.
    pub providers: Vec<HookProvider>,
}

/// One file that provides a hook.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HookProvider {
    pub key: Option<String>,
    pub file: String,
}

impl Project {
    /// Which files provide each hook `rev` declares.
    pub fn hook_uses(&self, rev: &RevisionMeta) -> Vec<HookUse> {
        rev.hooks
            .iter()
            .map(|hook| HookUse {
                hook: hook.clone(),
                providers: self
                    .hooks
                    .providers
                    .iter()
                    .filter(|((name, _), _)| name == hook)
                    .flat_map(|((_, key), metas)| {
                        metas.iter().map(move |m| HookProvider {
                            key: key.clone(),
                            file: m.path.display().to_string(),
                        })
                    })
                    .collect(),
            })
            .collect()
    }
}

/// What `show REV` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RevisionInfo {
    pub revision: String,
    pub tree: String,
    pub version: String,
    pub message: String,
    pub file: String,
    pub checksum: String,
    pub parents: Vec<String>,
    pub children: Vec<String>,
    pub depends_on: Vec<String>,
    pub hooks: Vec<HookUse>,
    pub online_safe: bool,
    pub downgradable: bool,
    pub expected_digest: Option<String>,
    pub head: bool,
    /// `pending` when the ledger has no record, else the record's state.
    pub state: String,
    /// The ledger record, when there is one.
    pub record: Option<RevisionRecord>,
    /// Whether the applied script's checksum differs from the file's now.
    pub changed: bool,
}

/// One revision of a plan, as `plan` reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanEntry {
    pub revision: String,
    pub tree: String,
    pub version: String,
    pub message: String,
    pub file: String,
    pub hooks: Vec<HookUse>,
    /// Whether it may run while the repository is in use (`ONLINE_SAFE`).
    pub online_safe: bool,
    pub downgradable: bool,
    /// The steps it declares (`(computed)` for names built at run time); empty for a
    /// revision that runs as one transaction.
    pub steps: Vec<String>,
    /// Steps an earlier run of it already committed (a rerun skips them).
    pub steps_done: Vec<String>,
    /// `pending`, or the state of an unfinished earlier run (`failed`, `running`).
    pub state: String,
}

/// What `plan` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanReport {
    pub direction: Direction,
    pub revisions: Vec<PlanEntry>,
    /// Hook problems that would stop the run (missing or doubly provided hooks).
    pub problems: Vec<String>,
}

fn state_text(record: Option<&RevisionRecord>) -> String {
    record
        .map(|r| r.state.as_str().to_string())
        .unwrap_or_else(|| "pending".into())
}

impl Migrator {
    /// Everything known about one revision (full or unique partial id).
    pub fn show(&self, rev: &str) -> Result<RevisionInfo, Error> {
        let project = self.load()?;
        let id = target::resolve_id(&project.graph, rev)?.to_string();
        let mut conn = self.connect()?;
        let records = ledger::revisions(conn.as_mut())?;
        let g = &project.graph;
        let m = g.get(&id).expect("resolved ids exist");
        let record = records.get(&id).cloned();
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
            hooks: project.hook_uses(m),
            online_safe: m.online_safe,
            downgradable: m.has_downgrade,
            expected_digest: m.expected_digest.clone(),
            head: g.heads(&m.tree).contains(&id.as_str()),
            state: state_text(record.as_ref()),
            changed: record
                .as_ref()
                .is_some_and(|r| r.state == RevisionState::Applied && r.checksum != m.checksum),
            record,
        })
    }

    /// The upgrade plan to `targets` with what an operator needs to know of each
    /// revision (hooks and their providers, online-safety, downgradability).
    pub fn plan_report(&self, targets: &[String]) -> Result<PlanReport, Error> {
        let project = self.load()?;
        let mut conn = self.connect()?;
        let records = ledger::revisions(conn.as_mut())?;
        let plan = upgrade_plan(&project, &ledger::applied(&records), targets)?;
        let mut revisions = Vec::new();
        let mut metas = Vec::new();
        for id in &plan.revisions {
            let m = project.graph.get(id).expect("planned ids exist");
            metas.push(m);
            let steps_done = ledger::steps(conn.as_mut(), id)?
                .into_iter()
                .filter(|s| s.done)
                .map(|s| s.step)
                .collect();
            revisions.push(PlanEntry {
                revision: id.clone(),
                tree: m.tree.clone(),
                version: m.version.clone(),
                message: m.message.clone(),
                file: m.path.display().to_string(),
                hooks: project.hook_uses(m),
                online_safe: m.online_safe,
                downgradable: m.has_downgrade,
                steps: crate::offline::steps_of_file(&m.path),
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

    /// The digest of the repository's schema now.
    pub fn digest(&self) -> Result<SchemaDigest, Error> {
        let mut conn = self.connect()?;
        Ok(digest::digest(conn.as_mut())?)
    }
}

/// What `unlock` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct UnlockReport {
    /// The stale record that was cleared (`None`: there was nothing recorded).
    pub cleared: Option<LockHolder>,
}

/// What `adopt` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdoptReport {
    pub probes: Vec<crate::stamp::ProbeResult>,
    pub stamp: crate::stamp::StampReport,
}

impl Migrator {
    fn module_paths(&self) -> ModulePaths {
        ModulePaths {
            stdlib: self.stdlib.clone(),
            roots: self.roots.clone(),
        }
    }

    /// Runs `f` under the backend's migration lock, then releases it. The holder is
    /// not recorded: these commands take milliseconds, and one that refuses (a digest
    /// mismatch) must leave the repository byte-identical.
    fn locked<T>(
        &self,
        conn: &mut dyn Connection,
        f: impl FnOnce(&mut dyn Connection) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let actor = ledger::Actor::current();
        crate::lock::acquire_backend_lock(conn, &actor, self.lock_timeout, self.observer.as_ref())
            .map_err(|e| Error::Run(RunError::Lock(e)))?;
        let result = f(conn);
        if conn.in_transaction() {
            let _ = conn.rollback();
        }
        let _ = conn.unlock();
        result
    }

    /// Records `revisions` (and their unapplied ancestors) as applied without running
    /// them, after checking the schema digest against the `DIGEST` of the last revision
    /// of each tree, when declared; `force` records anyway ("stamp --force").
    pub fn stamp(
        &self,
        revisions: &[String],
        force: bool,
    ) -> Result<crate::stamp::StampReport, Error> {
        use crate::stamp;
        let project = self.load()?;
        let ids: Vec<String> = revisions
            .iter()
            .map(|r| target::resolve_id(&project.graph, r).map(String::from))
            .collect::<Result<_, _>>()?;
        let mut conn = self.connect()?;
        self.locked(conn.as_mut(), |conn| {
            let records = ledger::revisions(conn)?;
            let applied = ledger::applied(&records);
            let set = stamp::stamp_set(&project.graph, &applied, &ids);
            let last = stamp::last_per_tree(&set);
            let digest = if force {
                digest::digest(conn)?
            } else {
                stamp::check_digest(conn, &last)?
            };
            let kind = if force {
                stamp::StampKind::StampForce
            } else {
                stamp::StampKind::Stamp
            };
            ledger::ensure(conn)?;
            stamp::record(conn, &set, kind)?;
            Ok(stamp::StampReport {
                stamped: set.iter().map(|m| m.id.clone()).collect(),
                already: ids
                    .iter()
                    .filter(|id| applied.contains(*id))
                    .cloned()
                    .collect(),
                digest: digest.sha256,
            })
        })
    }

    /// Adopts a repository another tool created: runs every tree's probe read-only and
    /// stamps each tree at the revision it names, refusing on any inconsistency.
    pub fn adopt(&self) -> Result<AdoptReport, Error> {
        use crate::stamp;
        let project = self.load()?;
        let mut conn = self.connect()?;
        if ledger::exists(conn.as_mut())? {
            let records = ledger::revisions(conn.as_mut())?;
            return Err(Error::Refused(format!(
                "this repository already has a Ferry ledger ({} revision record(s)); adopt is \
                 only for repositories that Ferry never touched (see `ferry status`)",
                records.len()
            )));
        }
        if project.probes.is_empty() {
            return Err(Error::Refused(
                "no probe scripts (probes/*.rhai) under the script roots: nothing can \
                 recognise this repository"
                    .into(),
            ));
        }
        let (probes, mut conn) = stamp::run_probes(
            conn,
            &project,
            &project.probes,
            self.limits.clone(),
            self.module_paths(),
        )?;
        let mut by_tree: BTreeMap<&str, &stamp::ProbeResult> = BTreeMap::new();
        for p in &probes {
            if let Some(other) = by_tree.insert(p.tree.as_str(), p) {
                return Err(Error::Refused(format!(
                    "two probes for tree {:?}: {} and {}",
                    p.tree, other.file, p.file
                )));
            }
        }
        let named: Vec<String> = probes.iter().filter_map(|p| p.revision.clone()).collect();
        if named.is_empty() {
            let tables: Vec<String> = conn
                .tables("%")?
                .into_iter()
                .filter(|t| !t.starts_with("ferry_"))
                .collect();
            return Err(Error::Refused(if tables.is_empty() {
                "the repository is empty: there is nothing to adopt; run `ferry upgrade` to \
                 create it"
                    .into()
            } else {
                format!(
                    "no probe recognised this repository, yet it has {} table(s) ({}…); it \
                     was not created by a version these scripts know",
                    tables.len(),
                    tables
                        .iter()
                        .take(5)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }));
        }
        let stamped = self.locked(conn.as_mut(), |conn| {
            if ledger::revisions(conn)?.values().any(|_| true) {
                return Err(Error::Refused(
                    "another migrator wrote a ledger meanwhile; nothing was recorded".into(),
                ));
            }
            let set = stamp::stamp_set(&project.graph, &BTreeSet::new(), &named);
            // A dependency may pull in a revision of a tree beyond what its probe said.
            for m in &set {
                if let Some(p) = by_tree.get(m.tree.as_str()) {
                    let ok = match &p.revision {
                        Some(r) => r == &m.id || project.graph.ancestors(r).contains(m.id.as_str()),
                        None => false,
                    };
                    if !ok {
                        return Err(Error::Refused(format!(
                            "inconsistent probes: {} needs {} of tree {:?}, but that tree's \
                             probe ({}) says {}",
                            named.join(", "),
                            m.id,
                            m.tree,
                            p.file,
                            p.revision.as_deref().unwrap_or("not present")
                        )));
                    }
                }
            }
            let named_metas: Vec<&RevisionMeta> = named
                .iter()
                .filter_map(|id| project.graph.get(id))
                .collect();
            let digest = stamp::check_digest(conn, &named_metas)?;
            ledger::ensure(conn)?;
            stamp::record(conn, &set, stamp::StampKind::Adopt)?;
            Ok(stamp::StampReport {
                stamped: set.iter().map(|m| m.id.clone()).collect(),
                already: vec![],
                digest: digest.sha256,
            })
        })?;
        Ok(AdoptReport {
            probes,
            stamp: stamped,
        })
    }

    /// Frees a recorded lock whose holder is gone. The backend's lock dies with its
    /// holder, so if it can be taken now, the holder is gone and its record is stale.
    pub fn unlock(&self) -> Result<UnlockReport, Error> {
        let mut conn = self.connect()?;
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

    /// The SQL an upgrade to `targets` would run, for plans whose revisions only write;
    /// revisions whose statements depend on the data are refused by name. The
    /// statements come from a dry run: on SQLite against a scratch copy of the file, on
    /// PostgreSQL inside a transaction that is rolled back.
    pub fn upgrade_sql(&self, targets: &[String]) -> Result<Report, Error> {
        let (project, plan) = self.plan_upgrade(targets)?;
        let mut engine = rhai::Engine::new();
        engine.set_max_expr_depths(256, 256);
        let mut refused = Vec::new();
        for id in &plan.revisions {
            let m = project.graph.get(id).expect("planned ids exist");
            let text = std::fs::read_to_string(&m.path)
                .map_err(|e| Error::Refused(format!("cannot read {}: {e}", m.path.display())))?;
            let calls = match engine.compile(&text) {
                Ok(ast) => crate::offline::data_dependent_calls(&ast),
                Err(e) => vec![format!("(does not compile: {e})")],
            };
            if !calls.is_empty() {
                refused.push(format!("{id} (calls {})", calls.join(", ")));
            }
        }
        if !refused.is_empty() {
            return Err(Error::SqlNeedsData(refused));
        }
        let options = UpgradeOptions {
            dry_run: true,
            ..UpgradeOptions::default()
        };
        match &self.url {
            DbUrl::Sqlite { path, .. } => {
                let scratch = tempfile_path(path);
                if path.exists() {
                    std::fs::copy(path, &scratch).map_err(|e| {
                        Error::Refused(format!(
                            "cannot copy {} to a scratch file: {e}",
                            path.display()
                        ))
                    })?;
                }
                let url = format!("sqlite:{}", scratch.display());
                let copy = Migrator {
                    url: DbUrl::parse(&url)?,
                    roots: self.roots.clone(),
                    stdlib: self.stdlib.clone(),
                    config: self.config.clone(),
                    limits: self.limits.clone(),
                    lock_timeout: self.lock_timeout,
                    observer: Rc::new(Silent),
                };
                let result = copy.upgrade(targets, &options);
                let _ = std::fs::remove_file(&scratch);
                let _ = std::fs::remove_file(format!("{}.ferry-lock", scratch.display()));
                result
            }
            _ => self.upgrade(targets, &options),
        }
    }
}

fn tempfile_path(path: &std::path::Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "repo".into());
    std::env::temp_dir().join(format!(
        "ferry-sql-{}-{}-{name}",
        std::process::id(),
        crate::ledger::now_ms()
    ))
}

impl Migrator {
    /// Writes a new revision of `tree` (see [`crate::newrev`]).
    pub fn new_revision(
        &self,
        tree: &str,
        message: &str,
        new_tree: bool,
    ) -> Result<crate::newrev::NewRevision, Error> {
        let project = self.load()?;
        crate::newrev::write_new(&project.graph, &self.roots, tree, message, new_tree)
            .map_err(|e| Error::Refused(e.to_string()))
    }
}
