//! The state a script run shares with the host: the connection, the revision being
//! run, the step bookkeeping, and the first host failure (kept apart from a script's own
//! `throw`, so the operator learns whether the script or the database failed).

use crate::backend::{Connection, DbError, Value};
use crate::ledger::{self, Actor, RevisionKey};
use crate::observer::{Event, Observer};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashSet};
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
    pub id: String,
    pub tree: String,
    pub version: String,
    pub checksum: String,
    // Read by the tests (through the `internals` feature), not by the library.
    #[cfg_attr(not(feature = "internals"), allow(dead_code))]
    pub file: String,
    /// `upgrade` or `downgrade`.
    pub direction: &'static str,
    /// The hooks the revision declares (`HOOKS`); calling another is an error.
    pub hooks: Vec<String>,
}

impl RevisionCtx {
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
    pub revision: String,
    pub step: Option<String>,
    pub sql: String,
    pub rows: u64,
}

/// Step bookkeeping for the revision being run.
#[derive(Debug, Default)]
pub struct StepState {
    /// Steps the ledger records as completed (skipped on this run).
    pub done: HashSet<String>,
    /// Recorded cursors of batched steps, as JSON text.
    pub cursors: BTreeMap<String, (String, i64, i64)>,
    /// The step running now, if any.
    pub current: Option<String>,
    /// Whether the revision has called `db.step` at all.
    pub uses_steps: bool,
    /// Whether statements that write ran outside any step (the implicit step).
    pub implicit_writes: bool,
    /// Steps this run completed.
    pub completed_now: Vec<String>,
    /// The step that failed, if one did.
    pub failed: Option<String>,
}

/// Everything a script run shares with the host.
pub struct Session {
    conn: Box<dyn Connection>,
    pub mode: Mode,
    pub revision: Option<RevisionCtx>,
    pub steps: StepState,
    pub actor: Actor,
    pub observer: Rc<dyn Observer>,
    /// Configuration from the repository file and the command line (already layered).
    pub config: BTreeMap<String, toml::Value>,
    /// The running revision's tree defaults (its `DEFAULTS` constant), below `config`.
    pub defaults: BTreeMap<String, rhai::Dynamic>,
    /// The first host failure of the current call into the script, if any.
    pub host_error: Option<DbError>,
    /// A database error happened inside the open transaction. PostgreSQL refuses
    /// everything after one; Ferry makes both backends behave alike: nothing more runs
    /// in that transaction, and the step (or revision) fails even if the script caught
    /// the error.
    pub poisoned: bool,
    pub statements: Vec<StatementRecord>,
    /// Rows touched by the current revision.
    pub rows: u64,
    /// Bytes of print/debug/log output left to this run (`limits.max_output_bytes`).
    pub output_left: std::cell::Cell<u64>,
    /// The running revision's statement timeout, which a step with a `timeout_seconds`
    /// of its own puts back when it ends.
    pub statement_timeout: Option<std::time::Duration>,
}

/// The shared handle: scripts hold it as `db`, the host keeps a clone.
pub type SharedSession = Rc<RefCell<Session>>;

impl Session {
    pub fn new(conn: Box<dyn Connection>, observer: Rc<dyn Observer>, actor: Actor) -> Session {
        Session {
            conn,
            mode: Mode::Apply,
            revision: None,
            steps: StepState::default(),
            actor,
            observer,
            config: BTreeMap::new(),
            defaults: BTreeMap::new(),
            host_error: None,
            poisoned: false,
            statements: Vec::new(),
            rows: 0,
            output_left: std::cell::Cell::new(super::Limits::default().max_output_bytes),
            statement_timeout: None,
        }
    }

    pub fn conn(&mut self) -> &mut dyn Connection {
        self.conn.as_mut()
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
    pub fn before_statement(&mut self, writes: bool) -> Result<(), DbError> {
        if self.poisoned {
            return Err(DbError::Other(POISONED.into()));
        }
        if self.steps.current.is_none() {
            if self.steps.uses_steps && writes {
                return Err(DbError::Other(
                    "a revision that uses db.step must do all its writing inside steps \
                     (this statement runs outside any step)"
                        .into(),
                ));
            }
            if writes {
                self.steps.implicit_writes = true;
            }
            if !self.conn.in_transaction() {
                self.conn.begin()?;
            }
        }
        Ok(())
    }

    /// Notes a statement for the dry-run report and the row count.
    pub fn after_statement(&mut self, sql: &str, rows: u64) {
        self.rows += rows;
        if self.mode != Mode::Apply {
            self.statements.push(StatementRecord {
                revision: self.revision_id(),
                step: self.steps.current.clone(),
                sql: sql.to_string(),
                rows,
            });
        }
    }

    /// Runs `f` as the ledger write that must commit with the current transaction.
    pub fn ledger_write<T>(
        &mut self,
        f: impl FnOnce(&mut dyn Connection, &RevisionCtx, &Actor) -> Result<T, DbError>,
    ) -> Result<T, DbError> {
        let rev = self
            .revision
            .clone()
            .ok_or_else(|| DbError::Other("no revision is running".into()))?;
        f(self.conn.as_mut(), &rev, &self.actor)
    }

    /// The key the running revision's step records are kept under, for this direction
    /// (see the free function [`step_owner`], which the runner reads them back with).
    pub fn step_owner(&self) -> String {
        self.revision
            .as_ref()
            .map(|r| step_owner(&r.id, r.direction))
            .unwrap_or_default()
    }

    /// Marks a step done inside the transaction that holds its work.
    pub fn record_step_done(
        &mut self,
        step: &str,
        cursor: Option<&str>,
        batches: i64,
        rows: i64,
    ) -> Result<(), DbError> {
        let owner = self.step_owner();
        ledger::write::set_step(
            self.conn.as_mut(),
            &owner,
            step,
            true,
            cursor,
            batches,
            rows,
        )
    }

    /// Records a batch's cursor inside the transaction that holds the batch's work.
    pub fn record_batch(
        &mut self,
        step: &str,
        cursor: &str,
        batches: i64,
        rows: i64,
    ) -> Result<(), DbError> {
        let owner = self.step_owner();
        ledger::write::set_step(
            self.conn.as_mut(),
            &owner,
            step,
            false,
            Some(cursor),
            batches,
            rows,
        )
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

    /// Begins the one transaction of a dry run (see [`Connection::begin_rehearsal`]).
    pub fn begin_rehearsal(&mut self) -> Result<(), DbError> {
        self.poisoned = false;
        self.conn.begin_rehearsal()
    }

    /// Begins a transaction whose foreign keys are checked at commit (see
    /// [`Connection::begin_checking_foreign_keys_at_commit`]).
    pub fn begin_transaction_checking_foreign_keys_at_commit(&mut self) -> Result<(), DbError> {
        if self.conn.in_transaction() {
            return Ok(());
        }
        self.poisoned = false;
        self.conn.begin_checking_foreign_keys_at_commit()
    }

    /// Rolls back whatever is open.
    pub fn abort_transaction(&mut self) {
        if self.conn.in_transaction() {
            let _ = self.conn.rollback();
        }
        self.poisoned = false;
    }
}

/// What a statement after a caught database error is told.
pub const POISONED: &str =
    "a database error earlier in this transaction was caught by the script; \
    nothing more can run in it (let the error end the step, and fix its cause)";

/// The key under which the step records of `revision` run in `direction` are written
/// and read: the revision id for `upgrade`, `"<revision> (downgrade)"` for `downgrade`
/// (so a downgrade's committed steps are never taken for the upgrade's, or the other
/// way round). [`Session::step_owner`] writes with it, the runner reads with it.
pub fn step_owner(revision: &str, direction: &str) -> String {
    if direction == "downgrade" {
        format!("{revision} (downgrade)")
    } else {
        revision.to_string()
    }
}

/// Converts a value read from the database into a JSON cursor text.
pub fn cursor_text(v: &Value) -> String {
    match v {
        Value::Int(i) => serde_json::json!(i).to_string(),
        Value::Text(s) => serde_json::json!(s).to_string(),
        Value::Uuid(u) => serde_json::json!(u.as_simple().to_string()).to_string(),
        Value::Float(f) => serde_json::json!(f).to_string(),
        other => serde_json::json!(other.to_string()).to_string(),
    }
}

/// Reads a cursor back from its JSON text.
pub fn cursor_value(text: &str) -> Value {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Number(n)) if n.is_i64() => Value::Int(n.as_i64().unwrap_or(0)),
        Ok(serde_json::Value::Number(n)) => Value::Float(n.as_f64().unwrap_or(0.0)),
        Ok(serde_json::Value::String(s)) => Value::Text(s),
        _ => Value::Null,
    }
}
