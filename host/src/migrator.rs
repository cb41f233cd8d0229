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
    Preflight(ScriptError),
    #[error("applied script(s) changed since they were applied: {}\n  rerun with --allow-changed to run anyway (recorded in the history)", .0.join(", "))]
    Changed(Vec<String>),
    #[error("revision(s) cannot be downgraded (no fn downgrade(db)): {}; nothing was run", .0.join(", "))]
    NoDowngrade(Vec<String>),
}

impl Error {
    /// 3 when another migrator holds the lock; 1 when a run failed; 2 otherwise.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Run(RunError::Lock(crate::lock::LockError::Held { .. })) => 3,
            _ => 2,
        }
    }
}

/// The scripts found under the roots, validated into one graph.
pub struct Project {
    pub graph: Graph,
    pub hooks: HookSet,
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
        Ok(Project { graph, hooks })
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
        self.run(&project, options, |project, conn| {
            let records = ledger::revisions(conn)?;
            let changed = changed_scripts(&project.graph, &records);
            if !changed.is_empty() && !options.allow_changed {
                return Err(Error::Changed(changed));
            }
            let plan = upgrade_plan(project, &ledger::applied(&records), targets)?;
            Ok(plan)
        })
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
                runner.preflight(&revisions).map_err(Error::Preflight)?;
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
