//! The state a script run shares with the host: the connection, the revision being
//! run, the step bookkeeping, and the first host failure (kept apart from a script's own
//! `throw`, so the operator learns whether the script or the database failed).

use crate::backend::{Connection, DbError};
use crate::checkpoint::{roll_back_open, Connected, Misuse, StepBook, StepKey};
use crate::ledger::{Actor, RevisionKey};
use crate::metadata::RevisionMeta;
use crate::observer::{Event, Observer};
use crate::plan::Direction;
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

/// How statements are carried out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Run and commit.
    Apply,
    /// Run inside one transaction that is rolled back at the end; record each statement.
    DryRun,
    /// Run and commit on a scratch copy of the database, which is then thrown away (a
    /// SQLite dry run: its table rewrites need their own transactions); record each
    /// statement.
    Scratch,
}

/// The revision a session is running.
#[derive(Debug, Clone)]
pub struct RevisionCtx {
    pub(in crate::script) id: String,
    tree: String,
    version: String,
    checksum: String,
    pub(in crate::script) direction: Direction,
    /// The hooks the revision declares (`HOOKS`); calling another is an error.
    pub(in crate::script) hooks: Vec<String>,
}

impl RevisionCtx {
    /// Revision `rev` run in `direction`.
    pub fn new(rev: &RevisionMeta, direction: Direction) -> RevisionCtx {
        RevisionCtx {
            id: rev.id.clone(),
            tree: rev.tree.clone(),
            version: rev.version.clone(),
            checksum: rev.checksum.clone(),
            direction,
            hooks: rev.hooks.clone(),
        }
    }

    /// The revision's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// What the ledger records the revision under.
    pub fn key(&self) -> RevisionKey<'_> {
        RevisionKey {
            revision: &self.id,
            tree: &self.tree,
            version: &self.version,
            checksum: &self.checksum,
        }
    }
}

/// A statement a dry run carried out, and the rows it touched.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StatementRecord {
    /// The revision that ran it.
    pub revision: String,
    /// The step it ran in, if any.
    pub step: Option<String>,
    /// The statement.
    pub sql: String,
    /// The rows it touched.
    pub rows: u64,
}

/// Everything a script run shares with the host.
///
/// Its fields belong to the script module; the runner and the probes set a session up
/// and read what a revision did through the methods below.
pub struct Session {
    conn: Box<dyn Connection>,
    pub(in crate::script) mode: Mode,
    pub(in crate::script) revision: Option<RevisionCtx>,
    /// The revision's steps (see [`crate::checkpoint`]).
    pub(in crate::script) steps: StepBook,
    pub(in crate::script) actor: Actor,
    pub(in crate::script) observer: Rc<dyn Observer>,
    /// Configuration from the repository file and the command line (already layered).
    pub(in crate::script) config: BTreeMap<String, toml::Value>,
    /// The running revision's tree defaults (its `DEFAULTS` constant), below `config`.
    pub(in crate::script) defaults: BTreeMap<String, rhai::Dynamic>,
    /// The first host failure of the current call into the script, if any.
    pub(in crate::script) host_error: Option<DbError>,
    /// A database error happened inside the open transaction. PostgreSQL refuses
    /// everything after one; Ferry makes both backends behave alike: nothing more runs
    /// in that transaction, and the step (or revision) fails even if the script caught
    /// the error.
    pub(in crate::script) poisoned: bool,
    pub(in crate::script) statements: Vec<StatementRecord>,
    /// Rows touched by the current revision.
    pub(in crate::script) rows: u64,
    /// Rows the running step did that no statement reports (a table's copy): recorded
    /// with the step in the ledger and told with its end, but not in the revision's
    /// total, which counts what its statements report (offline SQL records the same).
    pub(in crate::script) step_rows: u64,
    /// Bytes of print/debug/log output left to this run (`limits.max_output_bytes`).
    pub(in crate::script) output_left: std::cell::Cell<u64>,
    /// The running revision's statement timeout, which a step with a `timeout_seconds`
    /// of its own puts back when it ends.
    pub(in crate::script) statement_timeout: Option<std::time::Duration>,
}

/// The shared handle: scripts hold it as `db`, the host keeps a clone.
pub type SharedSession = Rc<RefCell<Session>>;

impl Session {
    pub fn new(conn: Box<dyn Connection>, observer: Rc<dyn Observer>, actor: Actor) -> Session {
        Session {
            conn,
            mode: Mode::Apply,
            revision: None,
            steps: StepBook::default(),
            actor,
            observer,
            config: BTreeMap::new(),
            defaults: BTreeMap::new(),
            host_error: None,
            poisoned: false,
            statements: Vec::new(),
            rows: 0,
            step_rows: 0,
            output_left: std::cell::Cell::new(super::Limits::default().max_output_bytes),
            statement_timeout: None,
        }
    }

    /// The session carrying out statements as `mode` says (instead of [`Mode::Apply`]).
    pub fn in_mode(mut self, mode: Mode) -> Session {
        self.mode = mode;
        self
    }

    /// The session with the layered configuration `config` (scripts read it through
    /// `config::get`).
    pub fn with_config(mut self, config: BTreeMap<String, toml::Value>) -> Session {
        self.config = config;
        self
    }

    pub fn conn(&mut self) -> &mut dyn Connection {
        self.conn.as_mut()
    }

    /// How statements are carried out.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Who is running Ferry.
    pub fn actor(&self) -> &Actor {
        &self.actor
    }

    /// Sets the running revision's statement timeout on the connection, and keeps it to
    /// put back after a step with a timeout of its own.
    pub fn set_statement_timeout(
        &mut self,
        timeout: Option<std::time::Duration>,
    ) -> Result<(), DbError> {
        self.conn.set_statement_timeout(timeout)?;
        self.statement_timeout = timeout;
        Ok(())
    }

    /// Starts running `revision`'s `fn preflight` (no step is done before it).
    pub fn start_preflight(&mut self, revision: RevisionCtx) {
        self.steps = StepBook::default();
        self.revision = Some(revision);
    }

    /// Starts running `revision`, whose steps the ledger records as `steps` and whose
    /// tree defaults are `defaults`; its row count starts at zero.
    pub fn start_revision(
        &mut self,
        revision: RevisionCtx,
        steps: StepBook,
        defaults: BTreeMap<String, rhai::Dynamic>,
    ) {
        self.steps = steps;
        self.defaults = defaults;
        self.rows = 0;
        self.revision = Some(revision);
    }

    /// No revision runs any more.
    pub fn end_revision(&mut self) {
        self.revision = None;
    }

    /// Rows touched by the running revision's statements.
    pub fn rows(&self) -> u64 {
        self.rows
    }

    /// The steps the running revision completed in this run, taken out of its book.
    pub fn take_steps_run(&mut self) -> Vec<String> {
        self.steps.take_completed()
    }

    /// The steps of the running revision that an earlier run completed.
    pub fn steps_done_before(&self) -> Vec<String> {
        self.steps.done_before().cloned().collect()
    }

    /// The statements a dry run (or a scratch run) carried out so far, taken out.
    pub fn take_statements(&mut self) -> Vec<StatementRecord> {
        std::mem::take(&mut self.statements)
    }

    /// Gives the connection back to the host.
    pub fn into_connection(self) -> Box<dyn Connection> {
        self.conn
    }

    /// Sends an event to the observer, tagged with the current revision and step.
    pub fn emit(&self, event: Event) {
        self.observer.event(&event);
    }

    /// The current revision id, or `""` outside a revision.
    pub fn revision_id(&self) -> String {
        self.revision
            .as_ref()
            .map(|r| r.id.clone())
            .unwrap_or_default()
    }

    /// Remembers a host failure (the first one wins) and returns the message scripts see.
    pub fn record_host_error(&mut self, error: DbError) -> String {
        let message = error.to_string();
        if self.conn.in_transaction() {
            self.poisoned = true;
        }
        if self.host_error.is_none() {
            self.host_error = Some(error);
        }
        message
    }

    /// Called before any statement: statements outside a step run in one implicit
    /// transaction that commits with the revision's ledger record.
    pub fn before_statement(&mut self, writes: bool) -> Result<(), Refused> {
        if self.poisoned {
            return Err(Refused::Db(DbError::other(POISONED)));
        }
        if self.steps.before_statement(writes)? && !self.conn.in_transaction() {
            self.conn.begin()?;
        }
        Ok(())
    }

    /// Notes a statement for the dry-run report and the row count.
    pub fn after_statement(&mut self, sql: &str, rows: u64) {
        self.rows += rows;
        if self.mode != Mode::Apply {
            self.statements.push(StatementRecord {
                revision: self.revision_id(),
                step: self.steps.current().map(str::to_string),
                sql: sql.to_string(),
                rows,
            });
        }
    }

    /// Writes the running revision's ledger record with `f`, in the open transaction
    /// (the implicit one, whose statements commit with the record) or else one of its
    /// own; commits it (a dry run keeps its one transaction open), and rolls back
    /// whatever is open when anything fails.
    pub fn record_revision<T>(
        &mut self,
        f: impl FnOnce(&mut dyn Connection, &RevisionCtx, &Actor) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let written = self.begin_transaction().and_then(|()| {
            let rev = self
                .revision
                .clone()
                .ok_or_else(|| DbError::other("no revision is running"))?;
            let value = f(self.conn.as_mut(), &rev, &self.actor)?;
            self.finish_transaction()?;
            Ok(value)
        });
        if written.is_err() {
            self.abort_transaction();
        }
        written
    }

    /// The key of step `step` of the running revision, in the direction it runs.
    pub fn step_key(&self, step: &str) -> StepKey {
        match &self.revision {
            Some(r) => StepKey::new(&r.id, r.direction, step),
            None => StepKey::new("", Direction::Upgrade, step),
        }
    }

    /// Commits the current transaction, or rolls it back in a dry run.
    pub fn finish_transaction(&mut self) -> Result<(), DbError> {
        if !self.conn.in_transaction() {
            return Ok(());
        }
        match self.mode {
            Mode::Apply | Mode::Scratch => self.conn.commit(),
            // A dry run keeps one transaction open for the whole plan.
            Mode::DryRun => Ok(()),
        }
    }

    /// Begins a transaction unless one is open (a dry run keeps one open throughout).
    pub fn begin_transaction(&mut self) -> Result<(), DbError> {
        if self.conn.in_transaction() {
            return Ok(());
        }
        self.poisoned = false;
        self.conn.begin()
    }

    /// Begins the one transaction of a dry run (see [`crate::backend::Sql::begin_rehearsal`]).
    pub fn begin_rehearsal(&mut self) -> Result<(), DbError> {
        self.poisoned = false;
        self.conn.begin_rehearsal()
    }

    /// Rolls back whatever is open.
    pub fn abort_transaction(&mut self) {
        roll_back_open(self.conn.as_mut());
        self.poisoned = false;
    }
}

/// What a statement after a caught database error is told.
pub const POISONED: &str =
    "a database error earlier in this transaction was caught by the script; \
    nothing more can run in it (let the error end the step, and fix its cause)";

/// Why a statement may not run: the script broke a rule of steps, or the database
/// (or an earlier caught database error) refuses.
#[derive(Debug)]
pub enum Refused {
    Misuse(Misuse),
    Db(DbError),
}

impl From<Misuse> for Refused {
    fn from(m: Misuse) -> Refused {
        Refused::Misuse(m)
    }
}

impl From<DbError> for Refused {
    fn from(e: DbError) -> Refused {
        Refused::Db(e)
    }
}

/// A step's transaction reaches the session's connection when it begins, commits or
/// rolls back, not across the script's step body (which uses the session meanwhile).
impl Connected for SharedSession {
    fn with_connection<R>(&mut self, f: impl FnOnce(&mut dyn Connection) -> R) -> Option<R> {
        let mut s = self.try_borrow_mut().ok()?;
        Some(f(s.conn.as_mut()))
    }

    fn transaction_began(&mut self) {
        if let Ok(mut s) = self.try_borrow_mut() {
            s.poisoned = false;
        }
    }
}
