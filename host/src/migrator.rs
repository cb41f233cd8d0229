//! The library API: everything the `ferry` binary does, for applications to embed.
//!
//! Build a [`Migrator`] with [`Migrator::builder`] (or [`Migrator::new`] for a URL),
//! then ask it for [`Migrator::status`], [`Migrator::plan_report`],
//! [`Migrator::upgrade`] to targets, or [`Migrator::verify`] at an application's
//! start-up. A whole run on a SQLite file:
//!
//! ```
//! use ferry::migrator::{Migrator, UpgradeOptions};
//! # let dir = tempfile::tempdir()?;
//! # let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/trees/linear/scripts");
//! let migrator = Migrator::builder()
//!     .url(&format!("sqlite:{}", dir.path().join("repo.sqlite").display()))
//!     .roots([scripts])
//!     .build()?;
//! let status = migrator.status()?;
//! assert_eq!(status.trees[0].pending.len(), 3);
//! let report = migrator.upgrade(&["alpha-2".into()], &UpgradeOptions::default())?;
//! assert_eq!(report.completed.len(), 2);
//! let report = migrator.upgrade(&[], &UpgradeOptions::default())?;
//! assert!(report.succeeded());
//! assert!(migrator.status()?.at_heads());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Trees may live in several databases ([`crate::databases`]); status, plan, upgrade,
//! downgrade, stamp and verify then span all of them, each database with its own
//! ledger and lock.

mod builder;
mod changes;
mod moving;
mod reports;
mod resetting;
mod stamping;
mod status;
mod verify;

pub use builder::Builder;
pub use changes::{
    changed_hint, changed_scripts, AcceptReport, ChangedScript, FileChange, SourceDiff,
};
pub use moving::MoveReport;
pub use reports::{HookProvider, HookUse, PlanEntry, PlanReport, RevisionInfo};
pub use resetting::ResetReport;
pub use status::{DatabaseStatus, Ledgers, Misplaced, Status, TreeStatus, Unfinished};
pub use verify::{
    DatabaseVerdict, Recognition, TreeState, TreeVerdict, Verification, VerifyOptions,
};

use crate::backend::{self, Connection, DbError, DbUrl, LockHolder, UrlError};
use crate::config::{ConfigError, ConfigMap};
use crate::databases::{self, Databases, DatabasesError};
use crate::digest::{self, SchemaDigest};
use crate::discovery::{self, DiscoveryError};
use crate::graph::{Graph, GraphError};
use crate::ledger::{self, HistoryEntry, LedgerError};
use crate::metadata::RevisionMeta;
use crate::observer::{Observer, Silent};
use crate::plan::{self, Direction, Plan, PlanError};
use crate::runner::{Report, RunError, RunOptions, Runner};
use crate::script::hooks::HookSet;
use crate::script::{Limits, Mode, ModulePaths, ScriptError};
use crate::source::Source;
use crate::target::{self, Target, TargetError};
use reports::state_text;
use status::status_over;
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Databases(#[from] DatabasesError),
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
    #[error("applied script(s) changed since they were applied:\n{}\n  {}\n  or rerun with --allow-changed to run anyway (recorded in the history)",
        .0.iter().map(|c| format!("  {c}")).collect::<Vec<_>>().join("\n"), changes::changed_hint(.0))]
    Changed(Vec<ChangedScript>),
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
    /// `stamp`, `adopt` or `new` refused for a reason given in the message.
    #[error("{0}")]
    Refused(String),
    /// The static checks found errors (`ferry lint`); nothing was run or opened.
    #[error("{}\n{} error(s) in the scripts or the configuration; nothing was run (`ferry lint` lists every problem)", lint_lines(.0), .0.len())]
    Lint(Vec<crate::lint::Problem>),
}

fn lint_lines(problems: &[crate::lint::Problem]) -> String {
    problems
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join("\n")
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
    /// Run a revision whose `BEFORE` names an already-applied revision (after it).
    pub allow_late: bool,
    /// A note for the history rows of this run (set by `upgrade` for `allow-changed`).
    pub note: Option<String>,
}

/// Builds migrations for a repository: its databases and one set of script roots.
pub struct Migrator {
    main: Source,
    /// Databases placed by builder calls: name, source, trees.
    placed: Vec<(String, Source, Vec<String>)>,
    roots: Vec<PathBuf>,
    stdlib: Option<PathBuf>,
    config: ConfigMap,
    /// Where the configuration came from, for lint's messages.
    config_sources: crate::lint::ConfigSources,
    /// Whether `plan` and `upgrade` run the static checks first (on by default).
    static_checks: bool,
    limits: Limits,
    lock_timeout: Duration,
    observer: Rc<dyn Observer>,
    rehearsal: Rehearsal,
}

/// How a dry run runs for a migrator: on a scratch copy (the migrator of the copy), and
/// whether its statements are noted for `upgrade --sql`.
#[derive(Clone, Default)]
struct Rehearsal {
    scratch: bool,
    log: Option<crate::offline_sql::SharedLog>,
}

/// `upgrade --sql`: the script, and the report of the dry run it comes from.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SqlScript {
    /// The script (empty when the dry run failed).
    pub sql: String,
    pub report: Report,
}

impl Migrator {
    /// A migrator for the database at `url`; roots default to `./scripts` and `./plugins/*`.
    pub fn new(url: &str) -> Result<Migrator, Error> {
        Ok(Migrator::with_source(Source::Url(DbUrl::parse(url)?)))
    }

    /// A builder: a database (URL or lent connection), roots, configuration, observer.
    pub fn builder() -> Builder {
        Builder::default()
    }

    fn with_source(main: Source) -> Migrator {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let stdlib = cwd.join("stdlib");
        Migrator {
            main,
            placed: Vec::new(),
            roots: discovery::default_roots(&cwd),
            stdlib: stdlib.is_dir().then_some(stdlib),
            config: ConfigMap::new(),
            config_sources: Default::default(),
            static_checks: true,
            limits: Limits::default(),
            lock_timeout: Duration::from_secs(10),
            observer: Rc::new(Silent),
            rehearsal: Rehearsal::default(),
        }
    }

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
        }
    }

    pub fn with_roots(mut self, roots: Vec<PathBuf>) -> Self {
        self.roots = roots;
        self
    }

    pub fn with_stdlib(mut self, stdlib: Option<PathBuf>) -> Self {
        self.stdlib = stdlib;
        self
    }

    /// The layered configuration; its `[databases]` section places trees in other
    /// databases (see [`crate::databases`]).
    pub fn with_config(mut self, config: ConfigMap) -> Self {
        self.config = config;
        self
    }

    /// Where the configuration came from (the file, the `--set` arguments), so that
    /// lint names them in its messages.
    pub fn with_config_sources(mut self, sources: crate::lint::ConfigSources) -> Self {
        self.config_sources = sources;
        self
    }

    /// Whether `plan` and `upgrade` run the static checks of [`Migrator::lint`] first
    /// and refuse on an error (default: yes). Off, a mistake is found when the script
    /// runs, by the sandbox; for an application that lints its scripts when it is
    /// built, and for tests of the sandbox itself.
    pub fn with_static_checks(mut self, on: bool) -> Self {
        self.static_checks = on;
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

    /// Places `trees` in another database (see [`crate::databases`]).
    pub fn with_database(
        mut self,
        name: &str,
        source: Source,
        trees: impl IntoIterator<Item = String>,
    ) -> Self {
        self.placed
            .push((name.to_string(), source, trees.into_iter().collect()));
        self
    }

    /// The main database's URL (`None` for a lent connection).
    pub fn url(&self) -> Option<&DbUrl> {
        self.main.url()
    }

    /// Every database and the trees placed in it: the main one, those placed by
    /// [`Self::with_database`], then those the configuration declares.
    pub fn databases(&self) -> Result<Databases, Error> {
        let mut dbs = Databases::single(self.main.clone());
        for (name, source, trees) in &self.placed {
            dbs.place(name, source.clone(), trees.iter().cloned())?;
        }
        for d in databases::declared(&self.config)? {
            let url = DbUrl::parse(&d.url)?;
            dbs.place(&d.name, Source::Url(url), d.trees)?;
        }
        Ok(dbs)
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

    /// The static checks of `ferry lint` over the roots and the configuration (no
    /// database needed): every problem, errors and warnings.
    pub fn lint(&self) -> Result<Vec<crate::lint::Problem>, Error> {
        let found = discovery::discover(&self.roots)?;
        let graph = Graph::build(found.revisions.clone())?;
        Ok(self.lint_found(&found, &graph))
    }

    fn lint_found(
        &self,
        found: &discovery::Discovered,
        graph: &Graph,
    ) -> Vec<crate::lint::Problem> {
        crate::lint::check(&crate::lint::Inputs {
            found,
            graph,
            paths: &self.module_paths(),
            config: &self.config,
            sources: &self.config_sources,
        })
    }

    /// [`Migrator::load`] with the static checks (unless turned off): one discovery
    /// serves both, and an error refuses with [`Error::Lint`] before any repository is
    /// opened; `plan` and `upgrade` start here. Warnings go to the observer's log.
    fn load_checked(&self) -> Result<Project, Error> {
        let found = discovery::discover(&self.roots)?;
        let graph = Graph::build(found.revisions.clone())?;
        if self.static_checks {
            self.refuse_lint_errors(self.lint_found(&found, &graph))?;
        }
        let hooks = HookSet::new(&found.hooks);
        Ok(Project {
            graph,
            hooks,
            probes: found.probes,
        })
    }

    /// Refuses with [`Error::Lint`] when `problems` hold an error; logs the warnings.
    fn refuse_lint_errors(&self, problems: Vec<crate::lint::Problem>) -> Result<(), Error> {
        let (errors, warnings): (Vec<_>, Vec<_>) = problems
            .into_iter()
            .partition(|p| p.severity == crate::lint::Severity::Error);
        for w in &warnings {
            self.observer.event(&crate::observer::Event::Log {
                level: crate::observer::Level::Warn,
                revision: "lint".into(),
                message: w.to_string(),
            });
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Lint(errors))
        }
    }

    /// The project and the databases, with every placed tree checked against the graph.
    fn setup(&self) -> Result<(Project, Databases), Error> {
        self.setup_with(self.load()?)
    }

    /// [`Migrator::setup`] for a project already loaded.
    fn setup_with(&self, project: Project) -> Result<(Project, Databases), Error> {
        let dbs = self.databases()?;
        dbs.check_trees(&project.graph.trees())?;
        Ok((project, dbs))
    }

    /// Opens the main database.
    pub fn connect(&self) -> Result<Box<dyn Connection>, Error> {
        Ok(self.main.open()?)
    }

    /// Opens the main database for reading only: a SQLite file read-only, and one that
    /// does not exist as an empty database, creating nothing (see
    /// [`crate::source::Source::open_read_only`]).
    pub fn connect_read_only(&self) -> Result<Box<dyn Connection>, Error> {
        Ok(self.main.open_read_only()?)
    }

    /// Opens every database for reading only, in [`Databases::list`] order.
    fn read_all(&self, dbs: &Databases) -> Result<Vec<Box<dyn Connection>>, Error> {
        dbs.list()
            .iter()
            .map(|d| d.source.open_read_only().map_err(Error::from))
            .collect()
    }

    /// Every database's ledger, read through [`Self::read_all`].
    fn read_ledgers(&self, dbs: &Databases) -> Result<(Vec<Box<dyn Connection>>, Ledgers), Error> {
        let mut conns = self.read_all(dbs)?;
        let ledgers = Ledgers::read(&mut conns)?;
        Ok((conns, ledgers))
    }

    /// Opens every database, in [`Databases::list`] order.
    fn connect_all(&self, dbs: &Databases) -> Result<Vec<Box<dyn Connection>>, Error> {
        dbs.list()
            .iter()
            .map(|d| d.source.open().map_err(Error::from))
            .collect()
    }

    /// The databases whose connection is a PostgreSQL superuser's, as
    /// `role on database`: no statement guard contains a superuser (`COPY … PROGRAM`,
    /// server files), so `status` and `upgrade` warn (docs/OPERATIONS.md).
    pub fn superusers(&self) -> Result<Vec<String>, Error> {
        let dbs = self.databases()?;
        let mut found = Vec::new();
        for d in dbs.list() {
            // Only PostgreSQL has superusers; a database that is not there is not
            // created (a SQLite file would be, by opening it).
            let postgres = match &d.source {
                Source::Url(url) => matches!(url, DbUrl::Postgres { .. }),
                Source::Postgres(_) | Source::Pool(_) => true,
                Source::Sqlite(_) => false,
            };
            if !postgres {
                continue;
            }
            if let Some(mut c) = d.source.open_existing()? {
                if let Some(role) = c.superuser()? {
                    found.push(format!("{role} on {}", c.describe()));
                }
            }
        }
        Ok(found)
    }

    /// Each tree's state, unfinished revisions, the lock holder and changed scripts.
    pub fn status(&self) -> Result<Status, Error> {
        let (project, dbs) = self.setup()?;
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

    /// Every database's ledger, read now.
    fn ledgers(&self, dbs: &Databases) -> Result<(Vec<Box<dyn Connection>>, Ledgers), Error> {
        let mut conns = self.connect_all(dbs)?;
        let ledgers = Ledgers::read(&mut conns)?;
        Ok((conns, ledgers))
    }

    /// The revisions an upgrade to `targets` (default: every head) would run.
    pub fn plan_upgrade(&self, targets: &[String]) -> Result<(Project, Plan), Error> {
        let (project, dbs) = self.setup_with(self.load_checked()?)?;
        let (_conns, ledgers) = self.ledgers(&dbs)?;
        ledgers.refuse_misplaced(&dbs, &project.graph)?;
        let plan = upgrade_plan(&project, &ledgers.applied(), targets, false)?;
        Ok((project, plan))
    }

    /// Upgrades to `targets` (default: every head) under the lock (every database's).
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
        if !options.dry_run && report.succeeded() {
            self.check_digests(&project, &dbs, &report)?;
        }
        Ok(report)
    }

    /// After an upgrade: for each tree, if the last revision the run applied declares a
    /// `DIGEST`, the schema of the tree's database must have that digest now.
    fn check_digests(
        &self,
        project: &Project,
        dbs: &Databases,
        report: &Report,
    ) -> Result<(), Error> {
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
                return Err(Error::DigestAfterUpgrade {
                    revision: m.id.clone(),
                    expected: expected.to_string(),
                    found: now.sha256.clone(),
                });
            }
        }
        Ok(())
    }

    /// Downgrades to `target` (`base`, `TREE@base`, a revision, `-N`) under the lock.
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

    /// Takes every database's lock (in the fixed order of [`Databases::lock_order`]),
    /// plans with `make_plan` (under the locks, so the plan sees what a migrator that
    /// finished meanwhile did), checks hooks and preflights, and runs the plan: each
    /// revision in its tree's database, in plan order. The run stops at the first
    /// failure; what completed in any database stays applied and recorded there.
    fn run(
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
        let order = dbs.lock_order();
        let mut runners: Vec<Option<Runner>> = dbs.list().iter().map(|_| None).collect();
        let release = |runners: Vec<Option<Runner>>| {
            let mut runners = runners;
            for i in order.iter().rev() {
                if let Some(r) = runners[*i].take() {
                    r.release();
                }
            }
        };
        for &i in &order {
            let acquired = dbs.list()[i]
                .source
                .open()
                .map_err(Error::from)
                .map(|conn| match &self.rehearsal.log {
                    Some(log) => Box::new(crate::offline_sql::Recording::new(
                        conn,
                        log.clone(),
                        self.rehearsal.scratch,
                    )),
                    None => conn,
                })
                .and_then(|conn| {
                    // A lost connection is recorded through a new one, where there is a URL.
                    let options = RunOptions {
                        reconnect: dbs.list()[i].source.url().cloned(),
                        ..run_options.clone()
                    };
                    Runner::acquire(conn, options, project.hooks.clone(), self.observer.clone())
                        .map_err(|(e, _conn)| Error::Run(e))
                });
            match acquired {
                Ok(r) => runners[i] = Some(r),
                Err(e) => {
                    release(runners);
                    return Err(e);
                }
            }
        }
        let result = (|| {
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
                    break;
                }
            }
            Ok(report)
        })();
        release(runners);
        result
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

impl Migrator {
    /// Everything known about one revision (full or unique partial id).
    pub fn show(&self, rev: &str) -> Result<RevisionInfo, Error> {
        let (project, dbs) = self.setup()?;
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
            let steps_done = ledger::steps(conns[db].as_mut(), id)?
                .into_iter()
                .filter(|s| s.done)
                .map(|s| s.step)
                .collect();
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
        crate::lock::release_unrecorded(conn);
        result
    }

    /// Runs `f` with one connection per database while holding every database's lock,
    /// taken in the fixed order of [`Databases::lock_order`] and released in reverse.
    fn locked_all<T>(
        &self,
        dbs: &Databases,
        f: impl FnOnce(&mut [Box<dyn Connection>]) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut conns = self.connect_all(dbs)?;
        let actor = ledger::Actor::current();
        let mut taken: Vec<usize> = Vec::new();
        let mut result = Ok(());
        for i in dbs.lock_order() {
            match crate::lock::acquire_backend_lock(
                conns[i].as_mut(),
                &actor,
                self.lock_timeout,
                self.observer.as_ref(),
            ) {
                Ok(()) => taken.push(i),
                Err(e) => {
                    result = Err(Error::Run(RunError::Lock(e)));
                    break;
                }
            }
        }
        let result = result.and_then(|()| f(&mut conns));
        for i in taken.iter().rev() {
            crate::lock::release_unrecorded(conns[*i].as_mut());
        }
        result
    }

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

    /// The dry run of a SQLite database: under the database's lock, a consistent copy
    /// of the file is upgraded (or downgraded) for real by `run` (table rewrites need
    /// transactions of their own) and thrown away. `None` where the backend has no such copy (PostgreSQL: the dry
    /// run is one rolled-back transaction) or trees live in several databases.
    fn rehearse_on_copy(
        &self,
        run: impl FnOnce(&Migrator) -> Result<Report, Error>,
    ) -> Result<Option<Report>, Error> {
        if self.databases()?.several() {
            return Ok(None);
        }
        // A SQLite file that does not exist yet (in a directory that does) is not
        // created by its rehearsal: the plan runs on a new file in the temporary
        // directory, with no lock to take since there is nothing to protect.
        let missing = self.main.sqlite_path().is_some_and(|p| {
            !p.exists()
                && p.parent()
                    .is_none_or(|d| d.as_os_str().is_empty() || d.is_dir())
        });
        let mut conn = if missing {
            None
        } else {
            let mut conn = self.main.open()?;
            let actor = crate::ledger::Actor::current();
            crate::lock::acquire_backend_lock(
                conn.as_mut(),
                &actor,
                self.lock_timeout,
                self.observer.as_ref(),
            )
            .map_err(|e| Error::Run(e.into()))?;
            Some(conn)
        };
        let scratch = tempfile_path(
            self.main
                .sqlite_path()
                .unwrap_or(std::path::Path::new("repo")),
        );
        let copied = match conn.as_mut() {
            Some(conn) => conn.scratch_copy(&scratch),
            None => Ok(true),
        };
        let result = match copied {
            Ok(false) => Ok(None),
            Err(e) => Err(Error::from(e)),
            Ok(true) => {
                let rehearsal = Rehearsal {
                    scratch: true,
                    log: self.rehearsal.log.clone(),
                };
                DbUrl::parse(&format!("sqlite:{}", scratch.display()))
                    .map_err(Error::from)
                    .and_then(|url| {
                        run(&self.rehearsing(Source::Url(url), rehearsal, self.observer.clone()))
                    })
                    .map(Some)
            }
        };
        for f in [
            scratch.clone(),
            PathBuf::from(format!("{}.ferry-lock", scratch.display())),
            PathBuf::from(format!("{}-journal", scratch.display())),
            PathBuf::from(format!("{}-wal", scratch.display())),
            PathBuf::from(format!("{}-shm", scratch.display())),
        ] {
            let _ = std::fs::remove_file(f);
        }
        if let Some(conn) = conn.as_mut() {
            crate::lock::release_unrecorded(conn.as_mut());
        }
        result
    }

    /// The SQL an upgrade to `targets` would run, as a script for `sqlite3` or `psql`
    /// (see [`crate::offline_sql`]): the statements of a dry run with their values as
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
        if report.failed.is_some() {
            return Ok(SqlScript {
                sql: String::new(),
                report,
            });
        }
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
            match dialect {
                crate::backend::Dialect::Sqlite => "  sqlite3 -bail FILE < script.sql".into(),
                crate::backend::Dialect::Postgres => {
                    "  psql -v ON_ERROR_STOP=1 -f script.sql (with search_path set to the schema)"
                        .into()
                }
            },
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
