//! The library API: everything the `ferry` binary does, for applications to embed.
//!
//! Build a [`Migrator`] with [`Migrator::builder`] (or [`Migrator::new`] for a URL),
//! then ask it for [`Migrator::status`], [`Migrator::plan_report`],
//! [`Migrator::upgrade`] to targets, or [`Migrator::verify`] at an application's
//! start-up. A whole run on a SQLite file:
//!
//! ```
//! use ferry::{Migrator, UpgradeOptions};
//! # let dir = tempfile::tempdir()?;
//! # let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/trees/linear/scripts");
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
//!
//! This module is the facade: the [`Migrator`] (what it was built with and the
//! project it loaded), the options and the error type. Each command lives in a module
//! of its own under `commands/`; the migration locks are taken through one
//! `LockSet`, which releases them when dropped.
mod drawing;

pub use crate::builder::Builder;
#[cfg(any(test, feature = "internals"))]
pub use crate::commands::changes::changed_scripts;
pub use crate::commands::changes::{
    changed_hint, AcceptReport, ChangedScript, FileChange, SourceDiff,
};
pub use crate::commands::move_trees::MoveReport;
pub use crate::commands::project::Project;
pub use crate::commands::reports::{HookProvider, HookUse, PlanEntry, PlanReport, RevisionInfo};
pub use crate::commands::reset::ResetReport;
pub use crate::commands::sql::SqlScript;
pub use crate::commands::stamp::AdoptReport;
pub use crate::commands::status::{
    DatabaseStatus, Ledgers, Misplaced, Status, TreeStatus, Unfinished,
};
pub use crate::commands::unlock::UnlockReport;
#[cfg(any(test, feature = "internals"))]
pub use crate::commands::upgrade::upgrade_plan;
pub use crate::commands::verify::{
    DatabaseVerdict, Recognition, TreeState, TreeVerdict, Verification, VerifyOptions,
};

use crate::backend::{Connection, DbError, DbUrl, UrlError};
use crate::commands::lockset::LockSet;
use crate::commands::sql::Rehearsal;
use crate::config::{ConfigError, ConfigMap};
use crate::databases::{self, Databases, DatabasesError};
use crate::discovery::{self, DiscoveryError};
use crate::graph::GraphError;
use crate::ledger::{self, LedgerError};
use crate::observer::{Observer, Silent};
use crate::plan::PlanError;
use crate::runner::{Report, RunError};
use crate::script::{Limits, ModulePaths, ScriptError};
use crate::source::Source;
use crate::target::TargetError;
use std::cell::{Cell, RefCell};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;
/// What went wrong. The messages say what happened and what must be done, never
/// which command does it: the command line adds its own hints.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error(transparent)]
    /// The database URL is not valid.
    Url(#[from] UrlError),
    #[error(transparent)]
    /// The configuration is not valid.
    Config(#[from] ConfigError),
    #[error(transparent)]
    /// The database placement (which tree lives in which database) is not valid.
    Databases(#[from] DatabasesError),
    #[error(transparent)]
    /// The script roots cannot be read, or a script is not valid.
    Discovery(#[from] DiscoveryError),
    #[error(transparent)]
    /// The revisions do not form a valid graph.
    Graph(#[from] GraphError),
    #[error(transparent)]
    /// A target (e.g. `datasets@+1`) cannot be resolved.
    Target(#[from] TargetError),
    #[error(transparent)]
    /// No plan reaches the targets.
    Plan(#[from] PlanError),
    #[error("{}", .0.join("\n"))]
    /// Revisions call hooks that no script provides.
    Hooks(Vec<String>),
    #[error(transparent)]
    /// The database failed.
    Db(#[from] DbError),
    #[error(transparent)]
    /// Ferry's own tables cannot be read or written.
    Ledger(#[from] LedgerError),
    #[error(transparent)]
    /// The run failed outside a script (lock, ledger, connection).
    Run(#[from] RunError),
    /// A revision failed and the run stopped there: what completed before it stays
    /// applied and recorded (a dry run's rehearsal changed nothing). The message is the
    /// failure's (the script's file, line and step); the report says what completed,
    /// the failure (its `failed`) and what was not run.
    #[error("{}", failure_text(report))]
    Failed {
        /// What the run did before it stopped; its `failed` is the failure.
        report: Box<Report>,
    },
    /// A preflight check of a planned revision refused; nothing ran.
    #[error("{0}")]
    Preflight(Box<ScriptError>),
    #[error("applied script(s) changed since they were applied:\n{}",
        .0.iter().map(|c| format!("  {c}")).collect::<Vec<_>>().join("\n"))]
    /// Applied scripts changed since they were applied.
    Changed(Vec<ChangedScript>),
    #[error("revision(s) cannot be downgraded (no fn downgrade(db)): {}; nothing was run", .0.join(", "))]
    /// Revisions in the plan cannot be downgraded.
    NoDowngrade(Vec<String>),
    /// The upgrade ran, but the schema is not the one the revision declares.
    #[error("the upgrade ran, but the schema digest after {revision} differs from its DIGEST\n  expected: {expected}\n  found:    {found}")]
    DigestAfterUpgrade {
        /// The revision after which the digest was taken.
        revision: String,
        /// The digest it declares.
        expected: String,
        /// The digest found.
        found: String,
        /// What the upgrade ran (every revision completed).
        report: Box<Report>,
    },
    /// The schema is not the one the revisions to stamp or adopt declare.
    #[error("the schema digest does not match what {revision} declares\n  expected: {expected}\n  found:    {found}\n  nothing was recorded")]
    DigestMismatch {
        /// The revision after which the digest was taken.
        revision: String,
        /// The digest it declares.
        expected: String,
        /// The digest found.
        found: String,
    },
    /// `unlock` refused: the lock is really held.
    #[error("the lock is held by a live migrator: {0}\n  nothing was changed; wait for it, or stop that process")]
    LockHeld(String),
    /// `stamp`, `adopt` or `new` refused for a reason given in the message.
    #[error("{0}")]
    Refused(String),
    /// The static checks found errors (`ferry lint`); nothing was run or opened.
    #[error("{}\n{} error(s) in the scripts or the configuration; nothing was run", lint_lines(.0), .0.len())]
    Lint(Vec<crate::lint::Problem>),
}

fn failure_text(report: &Report) -> String {
    match &report.failed {
        Some(e) => e.to_string(),
        None => "a revision failed".into(),
    }
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
            Error::DigestAfterUpgrade { .. } | Error::Failed { .. } => 1,
            _ => 2,
        }
    }

    /// What a run did before this error, when it ran at all: the partial report of a
    /// [`Error::Failed`] run, or the full one of an [`Error::DigestAfterUpgrade`].
    pub fn report(&self) -> Option<&Report> {
        match self {
            Error::Failed { report } | Error::DigestAfterUpgrade { report, .. } => Some(report),
            _ => None,
        }
    }

    /// The script failure that stopped a run ([`Error::Failed`]).
    pub fn script_failure(&self) -> Option<&ScriptError> {
        match self {
            Error::Failed { report } => report.failed.as_ref(),
            _ => None,
        }
    }
}

/// Options of an upgrade or downgrade.
#[derive(Debug, Clone, Default)]
pub struct UpgradeOptions {
    /// Show what would run (a rolled-back run) instead of committing it.
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
    pub(crate) main: Source,
    /// Databases placed by builder calls: name, source, trees.
    pub(crate) placed: Vec<(String, Source, Vec<String>)>,
    pub(crate) roots: Vec<PathBuf>,
    pub(crate) stdlib: Option<PathBuf>,
    pub(crate) config: ConfigMap,
    /// Where the configuration came from, for lint's messages.
    pub(crate) config_sources: crate::lint::ConfigSources,
    /// Whether `plan` and `upgrade` run the static checks first (on by default).
    pub(crate) static_checks: bool,
    pub(crate) limits: Limits,
    pub(crate) lock_timeout: Duration,
    pub(crate) observer: Rc<dyn Observer>,
    pub(crate) rehearsal: Rehearsal,
    /// The project, once loaded (see [`Migrator::load`]).
    pub(crate) project: RefCell<Option<Rc<Project>>>,
    /// Whether the static checks passed for the loaded project.
    pub(crate) checked: Cell<bool>,
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

    pub(crate) fn with_source(main: Source) -> Migrator {
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
            project: RefCell::new(None),
            checked: Cell::new(false),
        }
    }

    /// Sets the script roots.
    pub fn with_roots(mut self, roots: Vec<PathBuf>) -> Self {
        self.roots = roots;
        self.forget_project();
        self
    }

    /// Sets the stdlib directory (`None`: none).
    pub fn with_stdlib(mut self, stdlib: Option<PathBuf>) -> Self {
        self.stdlib = stdlib;
        self.forget_project();
        self
    }

    /// The layered configuration; its `[databases]` section places trees in other
    /// databases (docs/OPERATIONS.md).
    pub fn with_config(mut self, config: ConfigMap) -> Self {
        self.config = config;
        self.forget_project();
        self
    }

    /// Where the configuration came from (the file, the `--set` arguments), so that
    /// lint names them in its messages.
    pub fn with_config_sources(mut self, sources: crate::lint::ConfigSources) -> Self {
        self.config_sources = sources;
        self.forget_project();
        self
    }

    /// Whether `plan` and `upgrade` run the static checks of [`Migrator::lint`] first
    /// and refuse on an error (default: yes). Off, a mistake is found when the script
    /// runs, by the sandbox; for an application that lints its scripts when it is
    /// built, and for tests of the sandbox itself.
    pub fn with_static_checks(mut self, on: bool) -> Self {
        self.static_checks = on;
        self.forget_project();
        self
    }

    /// Sets the script engine's limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }

    /// Sets how long to wait for the migration lock.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = timeout;
        self
    }

    /// Sets who hears of progress.
    pub fn with_observer(mut self, observer: Rc<dyn Observer>) -> Self {
        self.observer = observer;
        self
    }

    internal_fn! {
        /// Places `trees` in another database (see [`crate::databases`]).
        fn with_database(
            mut self,
            name: &str,
            source: Source,
            trees: impl IntoIterator<Item = String>,
        ) -> Self {
            self.placed
                .push((name.to_string(), source, trees.into_iter().collect()));
            self
        }
    }

    /// Drops the loaded project: what it was loaded (and checked) with has changed.
    fn forget_project(&mut self) {
        *self.project.get_mut() = None;
        self.checked.set(false);
    }

    /// The main database's URL (`None` for a lent connection).
    #[cfg(any(test, feature = "internals"))]
    pub fn url(&self) -> Option<&DbUrl> {
        self.main.url()
    }

    internal_fn! {
        /// Every database and the trees placed in it: the main one, those placed by
        /// [`Self::with_database`], then those the configuration declares.
        fn databases(&self) -> Result<Databases, Error> {
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
    }

    internal_fn! {
        /// Opens the main database.
        fn connect(&self) -> Result<Box<dyn Connection>, Error> {
            Ok(self.main.open()?)
        }
    }

    internal_fn! {
        /// Opens the main database for reading only: a SQLite file read-only, and one that
        /// does not exist as an empty database, creating nothing (see
        /// [`crate::source::Source::open_read_only`]).
        fn connect_read_only(&self) -> Result<Box<dyn Connection>, Error> {
            Ok(self.main.open_read_only()?)
        }
    }

    /// The SQLite files of the repository's databases, in database order (none for a
    /// PostgreSQL database or a lent connection), whether or not they exist yet.
    pub fn database_files(&self) -> Result<Vec<PathBuf>, Error> {
        Ok(self
            .databases()?
            .list()
            .iter()
            .filter_map(|d| d.source.file_path())
            .collect())
    }

    /// Opens every database for reading only, in [`Databases::list`] order.
    pub(crate) fn read_all(&self, dbs: &Databases) -> Result<Vec<Box<dyn Connection>>, Error> {
        dbs.list()
            .iter()
            .map(|d| d.source.open_read_only().map_err(Error::from))
            .collect()
    }

    /// Every database's ledger, read through [`Self::read_all`].
    pub(crate) fn read_ledgers(
        &self,
        dbs: &Databases,
    ) -> Result<(Vec<Box<dyn Connection>>, Ledgers), Error> {
        let mut conns = self.read_all(dbs)?;
        let ledgers = Ledgers::read(&mut conns)?;
        Ok((conns, ledgers))
    }

    /// Opens every database, in [`Databases::list`] order.
    pub(crate) fn connect_all(&self, dbs: &Databases) -> Result<Vec<Box<dyn Connection>>, Error> {
        dbs.list()
            .iter()
            .map(|d| d.source.open().map_err(Error::from))
            .collect()
    }

    pub(crate) fn module_paths(&self) -> ModulePaths {
        ModulePaths {
            stdlib: self.stdlib.clone(),
            roots: self.roots.clone(),
        }
    }

    /// Takes the backend's migration lock on `conn`, its holder not recorded: the
    /// commands that lock this way take milliseconds, and one that refuses (a digest
    /// mismatch) must leave the repository byte-identical.
    pub(crate) fn take_lock(&self, conn: &mut dyn Connection) -> Result<(), Error> {
        let actor = ledger::Actor::current();
        crate::lock::acquire_backend_lock(conn, &actor, self.lock_timeout, self.observer.as_ref())
            .map_err(|e| Error::Run(RunError::Lock(e)))
    }

    /// Runs `f` under the backend's migration lock on `conn` (see [`Self::take_lock`]);
    /// the lock is released when `f` returns.
    pub(crate) fn locked<T>(
        &self,
        conn: &mut dyn Connection,
        f: impl FnOnce(&mut dyn Connection) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut held = LockSet::acquire(vec![conn], [0], |_, c| self.take_lock(&mut **c))?;
        f(&mut *held[0])
    }

    /// One connection per database, each holding its database's lock, taken in the
    /// fixed order of [`Databases::lock_order`] and released in reverse on drop.
    pub(crate) fn lock_all(&self, dbs: &Databases) -> Result<LockSet<Box<dyn Connection>>, Error> {
        LockSet::acquire(self.connect_all(dbs)?, dbs.lock_order(), |_, c| {
            self.take_lock(c.as_mut())
        })
    }

    /// Runs `f` with the connections of [`Self::lock_all`]; the locks are released
    /// when `f` returns.
    pub(crate) fn locked_all<T>(
        &self,
        dbs: &Databases,
        f: impl FnOnce(&mut [Box<dyn Connection>]) -> Result<T, Error>,
    ) -> Result<T, Error> {
        let mut held = self.lock_all(dbs)?;
        f(&mut held)
    }
}
