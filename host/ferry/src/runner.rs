//! The runner: applies planned revisions step by step, each step committed together
//! with its ledger record, under the migration lock.

use crate::backend::{self, Connection, DbError, DbErrorKind, DbUrl, LockAttempt};
use crate::checkpoint::{self, with_transaction, Run, StepBook};
use crate::ledger::{self, Actor, RevisionState};
use crate::lock::{self, LockError};
use crate::metadata::RevisionMeta;
use crate::observer::{Event, Observer};
use crate::script::hooks::HookSet;
use crate::script::session::StatementRecord;
use crate::script::{
    FailureKind, Limits, Mode, ModulePaths, RevisionCtx, ScriptError, ScriptHost, Session,
};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::Duration;

pub use crate::plan::Direction;

/// How the runner behaves.
#[derive(Debug, Clone)]
pub struct RunOptions {
    pub mode: Mode,
    pub limits: Limits,
    pub lock_timeout: Duration,
    pub paths: ModulePaths,
    /// Layered configuration (repository file < command line), flattened to dotted keys.
    pub config: BTreeMap<String, toml::Value>,
    /// A note written into every history row of this run (e.g. `allow-changed`).
    pub note: Option<String>,
    /// The database to reconnect to when the run's own connection is lost, to record
    /// the failure there (`None`: the failure is only reported).
    pub reconnect: Option<DbUrl>,
    /// Per revision id, what its run does to daf_butler_migrate's `alembic_version`
    /// (applied with the ledger record, when the repository has that table).
    pub alembic: BTreeMap<String, crate::alembic::Follow>,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            mode: Mode::Apply,
            limits: Limits::default(),
            lock_timeout: Duration::from_secs(0),
            paths: ModulePaths::default(),
            config: BTreeMap::new(),
            note: None,
            reconnect: None,
            alembic: BTreeMap::new(),
        }
    }
}

/// What happened to one revision in a run.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RevisionOutcome {
    /// The revision's id.
    pub revision: String,
    /// Which way it ran.
    pub direction: Direction,
    /// How long it ran, in milliseconds.
    pub duration_ms: i64,
    /// The rows its statements touched.
    pub rows: u64,
    /// Steps completed by this run.
    pub steps_run: Vec<String>,
    /// Steps skipped because an earlier run completed them.
    pub steps_skipped: Vec<String>,
}

/// The result of a run: what completed, and what failed (if anything).
#[derive(Debug, Clone, Default, serde::Serialize)]
#[must_use = "a report says what ran; a dry run's statements are only in it"]
pub struct Report {
    /// The revisions completed, in order.
    pub completed: Vec<RevisionOutcome>,
    /// The script failure that stopped the run: always `None` in the report of a run
    /// that returned `Ok`; a failed run is an `Error::Failed` whose report has it.
    pub failed: Option<ScriptError>,
    /// The revisions that were planned but not reached.
    pub not_run: Vec<String>,
    /// Statements carried out by a dry run (empty otherwise).
    pub statements: Vec<StatementRecord>,
}

impl Report {
    /// Whether nothing failed.
    pub fn succeeded(&self) -> bool {
        self.failed.is_none()
    }
}

/// A run's failure outside a script: the lock, the ledger, the connection, a revision
/// without the function to run. A script's own failure is a
/// [`ScriptError`] in the run's [`Report`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The migration lock cannot be taken.
    #[error(transparent)]
    Lock(#[from] LockError),
    /// Ferry's own tables cannot be read or written.
    #[error("ledger: {0}")]
    Ledger(#[from] ledger::LedgerError),
    /// The database failed outside a script's statements.
    #[error("{0}")]
    Db(#[from] DbError),
    /// A planned revision has no function for the direction of the run.
    #[error("revision {revision} has no fn {direction}(db) in {file}")]
    MissingFunction {
        /// The revision.
        revision: String,
        /// `upgrade` or `downgrade`.
        direction: &'static str,
        /// Its script file.
        file: String,
    },
}

/// Holds the migration lock for as long as it lives; the only way to run revisions.
pub struct Runner {
    host: ScriptHost,
    options: RunOptions,
    actor: Actor,
    /// Whether this run wrote its holder record into `ferry_lock` (so `release` clears it).
    recorded: bool,
    /// The hook providers, to record which files each applied revision ran.
    hooks: HookSet,
}

impl Runner {
    /// Takes the migration lock (waiting up to `options.lock_timeout`) and prepares
    /// the script engine.
    ///
    /// Only the backend's lock is taken here; the holder is recorded in the ledger when
    /// [`Runner::run`] starts. Planning, hook checks and preflights happen in between, so
    /// a run they refuse (a bad target, a missing hook, a script that does not compile)
    /// writes nothing at all: a SQLite file stays byte-identical.
    pub fn acquire(
        mut conn: Box<dyn Connection>,
        options: RunOptions,
        hooks: HookSet,
        observer: Rc<dyn Observer>,
    ) -> Result<Runner, (RunError, Box<dyn Connection>)> {
        let actor = Actor::current();
        let taken = lock::acquire_backend_lock(
            conn.as_mut(),
            &actor,
            options.lock_timeout,
            observer.as_ref(),
        );
        if let Err(e) = taken {
            return Err((e.into(), conn));
        }
        if let Some(t) = options.limits.statement_timeout {
            if let Err(e) = conn.set_statement_timeout(Some(t)) {
                lock::release(conn.as_mut());
                return Err((e.into(), conn));
            }
        }
        let session = Session::new(conn, observer, actor.clone())
            .in_mode(options.mode)
            .with_config(options.config.clone());
        let session = Rc::new(RefCell::new(session));
        let host = ScriptHost::new(
            session,
            options.limits.clone(),
            options.paths.clone(),
            hooks.clone(),
        );
        Ok(Runner {
            host,
            options,
            actor,
            recorded: false,
            hooks,
        })
    }

    /// Lends the connection (held under the lock) to `f`, e.g. to read the ledger.
    pub fn with_connection<R>(&mut self, f: impl FnOnce(&mut dyn Connection) -> R) -> R {
        let mut s = self.host.session().borrow_mut();
        f(s.conn())
    }

    /// Releases the lock and gives the connection back.
    pub fn release(self) -> Box<dyn Connection> {
        let Runner { host, recorded, .. } = self;
        let session = host.session().clone();
        drop(host);
        let session = Rc::try_unwrap(session)
            .ok()
            .expect("the script engine is gone, so nothing else holds the session");
        let session = session.into_inner();
        let mut conn = session.into_connection();
        if recorded {
            lock::release(conn.as_mut());
        } else {
            // Nothing was recorded (a dry run, or a run refused before it started).
            lock::release_unrecorded(conn.as_mut());
        }
        conn
    }

    /// Runs every planned revision's `fn preflight(db)` (if it has one) before anything
    /// runs, inside a transaction that is rolled back: a revision that would fail for a
    /// reason known now (an instrument without a plugin) stops the plan here.
    pub fn preflight(&mut self, revisions: &[&RevisionMeta]) -> Result<(), ScriptError> {
        if let (Mode::DryRun, Some(first)) = (self.options.mode, revisions.first()) {
            // The dry run's one transaction starts before the preflights, so that nothing
            // they do escapes its rollback.
            let begun = self.host.session().borrow_mut().begin_rehearsal();
            if let Err(e) = begun {
                return Err(ledger_failure(
                    first,
                    format!("cannot begin the dry run: {e}"),
                ));
            }
        }
        for rev in revisions {
            let ast = rev.script.ast_for(self.host.engine());
            if !ScriptHost::defines(&ast, "upgrade", 1) {
                return Err(ScriptError {
                    kind: crate::script::FailureKind::Script,
                    message: "the file does not define `fn upgrade(db)`".into(),
                    revision: rev.id.clone(),
                    step: None,
                    file: rev.path.clone().into_boxed_path(),
                    line: 1,
                    column: 1,
                    source_line: None,
                });
            }
            if !ScriptHost::defines(&ast, "preflight", 1) {
                continue;
            }
            // A preflight's steps, if any, are kept as an upgrade's (as they always were:
            // under the bare revision id).
            self.host
                .session()
                .borrow_mut()
                .start_preflight(RevisionCtx::new(rev, Direction::Upgrade));
            let result = self.host.call(&ast, "preflight", &rev.id, &rev.path);
            let mut s = self.host.session().borrow_mut();
            if s.mode() != Mode::DryRun {
                s.abort_transaction();
            }
            s.end_revision();
            result.map(|_| ())?;
        }
        Ok(())
    }

    /// Runs revisions in order; stops at the first failure, which is recorded.
    pub fn run(
        &mut self,
        revisions: &[&RevisionMeta],
        direction: Direction,
    ) -> Result<Report, RunError> {
        let mut report = Report::default();
        if self.options.mode == Mode::Apply && !self.recorded && !revisions.is_empty() {
            // From here on the run writes; name its holder for migrators that wait.
            let mut s = self.host.session().borrow_mut();
            lock::record_holder(s.conn(), &self.actor)?;
            self.recorded = true;
        }
        if self.options.mode == Mode::DryRun {
            // One transaction for the whole dry run; the ledger's tables, if missing, are
            // created inside it so that the run can record steps, and rolled back too.
            let mut s = self.host.session().borrow_mut();
            if !s.conn().in_transaction() {
                s.begin_rehearsal()?;
            }
            ledger::create_in_transaction(s.conn())?;
        }
        if self.options.mode == Mode::Scratch && !revisions.is_empty() {
            // A scratch copy nobody else sees: the ledger, but no lock holder record.
            let mut s = self.host.session().borrow_mut();
            ledger::ensure(s.conn())?;
        }
        for (i, rev) in revisions.iter().enumerate() {
            match self.run_one(rev, direction)? {
                Ok(outcome) => report.completed.push(outcome),
                Err(e) => {
                    report.failed = Some(e);
                    report.not_run = revisions[i + 1..].iter().map(|r| r.id.clone()).collect();
                    break;
                }
            }
        }
        if self.options.mode == Mode::DryRun {
            let mut s = self.host.session().borrow_mut();
            s.abort_transaction();
            report.statements = s.take_statements();
        }
        if self.options.mode == Mode::Scratch {
            let mut s = self.host.session().borrow_mut();
            report.statements = s.take_statements();
        }
        Ok(report)
    }

    /// Runs one revision. The outer `Result` is a failure of the ledger itself; the
    /// inner one is the revision's own outcome (already recorded in the ledger).
    fn run_one(
        &mut self,
        rev: &RevisionMeta,
        direction: Direction,
    ) -> Result<Result<RevisionOutcome, ScriptError>, RunError> {
        let fn_name = direction.as_str();
        // The tree discovery compiled from the bytes it hashed (the checksum the ledger
        // records): a file edited since runs as it was planned, never half and half.
        let ast = rev.script.ast_for(self.host.engine());
        if !ScriptHost::defines(&ast, fn_name, 1) {
            return Err(RunError::MissingFunction {
                revision: rev.id.clone(),
                direction: fn_name,
                file: rev.path.display().to_string(),
            });
        }
        let ctx = RevisionCtx::new(rev, direction);
        let started = ledger::now_ms();
        {
            let session = self.host.session().clone();
            let mut s = session.borrow_mut();
            // The revision's own STATEMENT_TIMEOUT_SECONDS, else the configured limit
            // (set again for every revision, so one revision's never leaks into the next).
            let timeout = rev
                .statement_timeout_seconds
                .map(Duration::from_secs)
                .or(self.options.limits.statement_timeout);
            s.set_statement_timeout(timeout)?;
            let recorded = checkpoint::recorded_steps(s.conn(), &rev.id, direction)?;
            s.start_revision(
                ctx.clone(),
                StepBook::resuming(recorded),
                rev.defaults.0.clone(),
            );
            s.emit(Event::RevisionStarted {
                revision: rev.id.clone(),
                direction: fn_name.into(),
            });
            if direction == Direction::Upgrade {
                // The record says "running" from the first moment, so that a kill leaves
                // an honest state behind.
                let marked = s.record_revision(|c, r, _| checkpoint::mark_running(c, &r.key()));
                if let Err(e) = marked {
                    s.end_revision();
                    return Ok(Err(ledger_failure(
                        rev,
                        format!(
                            "cannot record that {} starts (nothing of it ran): {e}",
                            rev.id
                        ),
                    )));
                }
            }
        }
        // What the revision runs, read before it runs: the ledger records these files
        // (and their text) with the revision once it is applied.
        let sources = crate::revision_sources::of_revision(rev, &self.hooks);
        let result = self.host.call(&ast, fn_name, &rev.id, &rev.path);
        let session = self.host.session().clone();
        let mut s = session.borrow_mut();
        let finished = ledger::now_ms();
        let rows = s.rows();
        let note = self.options.note.clone();
        // What the history records of this run, whether it succeeded or failed.
        let run = Run {
            started_ms: started,
            finished_ms: finished,
            rows: rows as i64,
            note: note.as_deref(),
        };
        let alembic = self.options.alembic.get(&rev.id).cloned();
        match result {
            Ok(_) => {
                let recorded = s.record_revision(|c, r, actor| {
                    if let Some(follow) = &alembic {
                        follow.apply(c, direction)?;
                    }
                    match direction {
                        Direction::Upgrade => {
                            checkpoint::record_upgraded(c, &r.key(), actor, &sources, &run)
                        }
                        Direction::Downgrade => {
                            checkpoint::record_downgraded(c, &r.key(), actor, &run)
                        }
                    }
                });
                if let Err(e) = recorded {
                    end_failed(&mut s, &rev.id, fn_name, finished - started, rows);
                    let mut failed = ledger_failure(
                        rev,
                        format!(
                            "cannot record that {} is {}: {e}\n  (steps committed before stay \
                             committed; `ferry status` shows what the ledger holds, and `ferry \
                             upgrade` resumes from there)",
                            rev.id,
                            if direction == Direction::Upgrade {
                                "applied"
                            } else {
                                "downgraded"
                            }
                        ),
                    );
                    // The revision must not stay "running": record it failed through a
                    // second connection (this one refused: read-only, a permission).
                    if let (Mode::Apply, Some(url)) = (self.options.mode, &self.options.reconnect) {
                        if e.kind() != DbErrorKind::ConnectionLost {
                            let text = failed.ledger_text();
                            let failure = Failure {
                                direction,
                                step: None,
                                text: &text,
                                run,
                            };
                            if let Err(why) = failure.write_beside(url, &ctx, s.actor()) {
                                failed.message.push_str(&format!(
                                    "\n  (the failure could not be recorded either: {why})"
                                ));
                            }
                        }
                    }
                    return Ok(Err(failed));
                }
                let outcome = RevisionOutcome {
                    revision: rev.id.clone(),
                    direction,
                    duration_ms: finished - started,
                    rows,
                    steps_run: s.take_steps_run(),
                    steps_skipped: s.steps_done_before(),
                };
                s.emit(Event::RevisionFinished {
                    revision: rev.id.clone(),
                    direction: fn_name.into(),
                    outcome: if s.mode() == Mode::Apply {
                        "applied"
                    } else {
                        "rehearsed"
                    }
                    .into(),
                    duration_ms: finished - started,
                    rows,
                });
                s.end_revision();
                Ok(Ok(outcome))
            }
            Err(mut err) => {
                s.abort_transaction();
                if self.options.mode == Mode::Apply {
                    let text = err.ledger_text();
                    let failure = Failure {
                        direction,
                        step: err.step.as_deref(),
                        text: &text,
                        run,
                    };
                    let recorded =
                        s.record_revision(|c, r, actor| failure.write(c, &r.key(), actor));
                    if let Err(e) = recorded {
                        // A lost connection took the backend's lock with it: record through
                        // a new one, if the lock is free and nobody moved the revision on.
                        // Any other refusal (a session the script made read-only, a
                        // permission): this session still holds the lock, so record
                        // through a second connection beside it.
                        let elsewhere = match (&e, &self.options.reconnect) {
                            (e, Some(url)) if e.kind() == DbErrorKind::ConnectionLost => {
                                failure.write_elsewhere(url, &ctx, s.actor())
                            }
                            (_, Some(url)) => failure
                                .write_beside(url, &ctx, s.actor())
                                .map_err(|why| format!("{e}; through a second connection: {why}")),
                            _ => Err(e.to_string()),
                        };
                        let lost = e.kind() == DbErrorKind::ConnectionLost;
                        err.message.push_str(&match elsewhere {
                            Ok(()) if lost => "\n  (the connection was lost; the failure is \
                                               recorded through a new connection)"
                                .to_string(),
                            Ok(()) => format!(
                                "\n  (the run's connection could not record the failure ({e}); \
                                 it is recorded through a second connection)"
                            ),
                            Err(why) => format!(
                                "\n  (the failure could not be recorded in the ledger: {why}; \
                                 `ferry status` shows {} as running with what it committed, \
                                 and `ferry upgrade` resumes it)",
                                rev.id
                            ),
                        });
                    }
                }
                end_failed(&mut s, &rev.id, fn_name, finished - started, rows);
                Ok(Err(err))
            }
        }
    }
}

/// Tells the observer the revision failed, and forgets it as the one running.
fn end_failed(s: &mut Session, revision: &str, direction: &str, duration_ms: i64, rows: u64) {
    s.emit(Event::RevisionFinished {
        revision: revision.into(),
        direction: direction.into(),
        outcome: "failed".into(),
        duration_ms,
        rows,
    });
    s.end_revision();
}

/// A host failure about the ledger itself, reported like a failed revision.
fn ledger_failure(rev: &RevisionMeta, message: String) -> ScriptError {
    ScriptError {
        kind: FailureKind::Host,
        message,
        revision: rev.id.clone(),
        step: None,
        file: rev.path.clone().into_boxed_path(),
        line: 0,
        column: 0,
        source_line: None,
    }
}

/// A failed run of a revision, as the ledger records it.
struct Failure<'a> {
    direction: Direction,
    step: Option<&'a str>,
    text: &'a str,
    run: Run<'a>,
}

impl Failure<'_> {
    /// The revision's record says `failed` (upgrades) and the history gains a failed run.
    fn write(
        &self,
        c: &mut dyn Connection,
        key: &ledger::RevisionKey<'_>,
        actor: &Actor,
    ) -> Result<(), DbError> {
        checkpoint::record_failed(
            c,
            key,
            actor,
            self.direction,
            self.step,
            self.text,
            &self.run,
        )
    }

    /// Records the failure through a second connection to `url` while the run's own
    /// connection, which refused to record it, still holds the migration lock; only while
    /// the revision's record still reads as this run left it. Clears the lock record
    /// too (the run's connection may not be able to).
    fn write_beside(&self, url: &DbUrl, ctx: &RevisionCtx, actor: &Actor) -> Result<(), String> {
        let mut conn = backend::connect(url).map_err(|e| e.to_string())?;
        self.write_if_as_left(conn.as_mut(), ctx, actor, |left| {
            format!("the record of {} no longer reads {left:?}", ctx.id())
        })
    }

    /// Records the failure through a new connection to `url`, under the migration lock
    /// taken without waiting, and only while the revision's record still reads as this
    /// run left it (`running`, or `applied` for a downgrade); clears the lock record the
    /// lost connection left. Says why when it cannot.
    fn write_elsewhere(&self, url: &DbUrl, ctx: &RevisionCtx, actor: &Actor) -> Result<(), String> {
        let mut conn = backend::connect(url).map_err(|e| e.to_string())?;
        let me = actor.holder(crate::clock::now_unix());
        match conn.try_lock(&me).map_err(|e| e.to_string())? {
            LockAttempt::Acquired => {}
            LockAttempt::HeldBy(_) => return Err("another migrator holds the lock now".into()),
        }
        let written = self.write_if_as_left(conn.as_mut(), ctx, actor, |_| {
            format!(
                "another migrator changed the record of {} meanwhile",
                ctx.id()
            )
        });
        let _ = conn.unlock();
        written
    }

    /// Through `conn`: records the failure and clears the lock record in one
    /// transaction, if the revision's record still reads as this run left it
    /// (`running`, or `applied` for a downgrade); else the error `changed` makes of
    /// that state.
    fn write_if_as_left(
        &self,
        conn: &mut dyn Connection,
        ctx: &RevisionCtx,
        actor: &Actor,
        changed: impl FnOnce(RevisionState) -> String,
    ) -> Result<(), String> {
        let left = match self.direction {
            Direction::Upgrade => RevisionState::Running,
            Direction::Downgrade => RevisionState::Applied,
        };
        let records = ledger::revisions(conn).map_err(|e| e.to_string())?;
        if records.get(ctx.id()).map(|r| r.state) != Some(left) {
            return Err(changed(left));
        }
        with_transaction(conn, |c| {
            self.write(c, &ctx.key(), actor)?;
            checkpoint::clear_lock_holder(c)
        })
        .map_err(|e: DbError| e.to_string())
    }
}
