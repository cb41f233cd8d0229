//! `db.step_beside(name, #{ insert_derived: … }, |db| { … })`: a step whose work is
//! declared (an `insert_derived` spec), run on a pooled connection while `body(db)` runs
//! its own steps on the coordinating connection.
//!
//! The spec is read into plain data ([`InsertDerived`]) before anything runs, so the
//! step holds nothing of Rhai and can run on another thread, which a script's closure
//! cannot (docs/ARCHITECTURE.md, "What runs at once"). It runs in its own [`StepTx`],
//! which commits its rows together with its `ferry_steps` row: once committed, a rerun
//! skips it whatever became of the body, whose steps commit on their own as usual. The
//! call returns once both have ended, with the body's failure if it failed, else the
//! step's. A kill loses the step's uncommitted rows and those of the body's running
//! step, no more. The coordinating connection holds the migration lock throughout, and
//! the pooled connection checks before its commit that it still does
//! (`postgres/workers.rs`).
//!
//! Where no pooled connection is to be had (SQLite, `jobs` 1, a dry run, `--sql`, a
//! server with no connection slot to spare), the body runs first and then the step, on
//! the coordinating connection: the same steps, one after the other, in the order of
//! the script's text. Either way the two must not depend on each other's rows: beside
//! the body, the step's query reads what was committed when it began.

use super::db::{Db, StepOptions};
use super::derive::{DeriveFault, InsertDerived};
use super::error::{host_failure, script_failure};
use super::session::{Mode, Session};
use crate::backend::{Connection, DbError};
use crate::checkpoint::{Begin, Progress, StepKey, StepTx};
use crate::observer::{Event, Level};
use rhai::{Dynamic, EvalAltResult, FnPtr, Map, NativeCallContext};

type Res<T> = Result<T, Box<EvalAltResult>>;

/// The kinds of declared work a step beside can do (the keys of its spec).
const WORK: [&str; 1] = ["insert_derived"];

/// Runs step `name` (its work declared by `spec`) beside `body(db)`; see the module
/// documentation.
pub(super) fn run(
    db: &Db,
    ctx: &NativeCallContext,
    name: &str,
    spec: Map,
    body: FnPtr,
) -> Res<Dynamic> {
    let work = read(name, &spec)?;
    db.check_insert_derived(&work)?;
    let pooled = {
        let mut s = db.session()?;
        if let Some(step) = s.steps.current() {
            return Err(script_failure(format!(
                "db.step_beside makes step {name:?} and runs steps beside it, so it cannot run \
                 inside step {step:?}: call it outside db.step"
            )));
        }
        s.steps
            .check_entry(name)
            .map_err(|m| script_failure(m.to_string()))?;
        if s.steps.is_done(name) {
            None
        } else {
            pooled_connection(&mut s, name).map_err(|e| host_failure(&mut s, e))?
        }
    };
    let Some(conn) = pooled else {
        // In turn: the body, then the step (or its skip, once done).
        let value = body.call_within_context::<Dynamic>(ctx, (db.clone(),))?;
        let _ = db.run_step(name, StepOptions::plain(), |db| {
            db.insert_derived_checked(&work).map(Dynamic::from)
        })?;
        return Ok(value);
    };

    let key = {
        let mut s = db.session()?;
        s.steps
            .enter_host_steps()
            .map_err(|m| script_failure(m.to_string()))?;
        // Close the implicit (read-only) transaction, if reads opened one.
        s.finish_transaction()
            .map_err(|e| host_failure(&mut s, e))?;
        s.emit(Event::StepStarted {
            revision: s.revision_id(),
            step: name.into(),
            total: None,
        });
        s.step_key(name)
    };
    let (outcome, result) = std::thread::scope(|scope| {
        let step = scope.spawn(|| run_on(conn, key, &work));
        let result = body.call_within_context::<Dynamic>(ctx, (db.clone(),));
        let outcome = step.join().unwrap_or_else(|_| {
            Err(DeriveFault::Db(DbError::other(format!(
                "step {name:?} stopped on a panic (a Ferry bug); its work was rolled back"
            ))))
        });
        (outcome, result)
    });

    let mut s = db.session()?;
    let revision = s.revision_id();
    match outcome {
        Ok(rows) => {
            // The revision's count of rows, as when the step runs in turn.
            s.rows += rows;
            s.steps.completed(name);
            s.emit(Event::StepFinished {
                revision,
                step: name.into(),
                rows,
            });
        }
        // The body's failure is the one to report; the step's is told beside it.
        Err(fault) if result.is_err() => s.emit(Event::Log {
            revision,
            level: Level::Warn,
            message: format!("step {name:?}, beside the failed one, failed too: {fault}"),
        }),
        Err(fault) => {
            s.steps.failed(name);
            return Err(match fault {
                DeriveFault::Script(message) => script_failure(message),
                DeriveFault::Db(e) => host_failure(&mut s, e),
            });
        }
    }
    result
}

/// The spec's work, read into plain data: exactly one kind of work, from [`WORK`].
fn read(name: &str, spec: &Map) -> Res<InsertDerived> {
    let fail = |why: String| script_failure(format!("db.step_beside({name:?}, …): {why}"));
    if let Some(other) = spec.keys().find(|k| !WORK.contains(&k.as_str())) {
        return Err(fail(format!(
            "the spec declares the step's work as one of {}; found {other:?}",
            WORK.join(", ")
        )));
    }
    let derived = spec
        .get("insert_derived")
        .ok_or_else(|| {
            fail(format!(
                "the spec declares no work (one of {})",
                WORK.join(", ")
            ))
        })?
        .clone()
        .try_cast::<Map>()
        .ok_or_else(|| fail("insert_derived is a map (as db.insert_derived takes)".into()))?;
    InsertDerived::read(&derived).map_err(fail)
}

/// A pooled connection for the step, when this run may use one: a run that applies,
/// `jobs` above 1, a backend with a pool of step connections and a connection to spare
/// (else a warning, and the step runs after the body).
fn pooled_connection(
    s: &mut Session,
    name: &str,
) -> Result<Option<Box<dyn Connection + Send>>, DbError> {
    if s.mode != Mode::Apply {
        return Ok(None);
    }
    let Some((pool, _)) = super::parallel_steps::step_pool(s)? else {
        return Ok(None);
    };
    let conn = pool.connection()?;
    if conn.is_none() {
        s.emit(Event::Log {
            revision: s.revision_id(),
            level: Level::Warn,
            message: format!(
                "step {name:?} got no pooled connection (the server's max_connections or the \
                 role's CONNECTION LIMIT is reached): it runs on the migration's own \
                 connection, after the steps beside it"
            ),
        });
    }
    Ok(conn)
}

/// The step on its pooled connection: its rows and its ledger row, committed together
/// (or neither).
fn run_on(
    mut conn: Box<dyn Connection + Send>,
    key: StepKey,
    work: &InsertDerived,
) -> Result<u64, DeriveFault> {
    let conn: &mut dyn Connection = conn.as_mut();
    let mut tx = StepTx::begin(conn, key, Begin::Plain).map_err(DeriveFault::Db)?;
    let rows = tx.run(|c| Ok(work.run(c))).map_err(DeriveFault::Db)??;
    tx.commit(Progress::Done {
        cursor: None,
        batches: 0,
        rows: rows as i64,
    })
    .map_err(DeriveFault::Db)?;
    Ok(rows)
}
