//! The table steps of `schema::rewrite_tables(…, #{ steps: true })`, run at the same
//! time where the backend has a pool of step connections (PostgreSQL) and `jobs` is
//! above 1.
//!
//! A table's step starts once the steps of the tables of the rewrite it references have
//! committed (its copy's foreign keys point at their copies); up to `jobs` run at once,
//! each on its own pooled connection, in its own transaction, which commits the table's
//! copy together with the step's ledger row. The coordinating connection holds the
//! migration lock throughout and runs no transaction meanwhile; pooled connections never
//! take the lock. Each step writes only its own `ferry_steps` row (keyed by revision and
//! step), so steps do not wait for one another there, and the copy adds its foreign keys
//! last, sorted by the table they reference (`postgres/rewrite.rs`), so two steps that
//! reference the same tables take those locks in the same order and cannot deadlock.
//!
//! When a step fails, no further step starts; those running finish and their commits
//! stand, and the failure is the step's: a rerun skips every committed step. A kill
//! loses the uncommitted work of the steps running at that moment, at most `jobs`.
//! Dry runs, `--sql` and SQLite run the steps one at a time (`rewrite_steps.rs`).
//!
//! Each pooled step checks, before its commit, that the coordinating connection still
//! holds the migration lock (`postgres/session.rs`). If that connection died, the server
//! released the lock and another migrator may have taken it: the step rolls back and
//! fails as a lost connection, no further step starts, and those running fail the same
//! check, so none commits after the lock was lost.
//!
//! When the pool gets no connection within a short wait (the server's `max_connections`
//! or the role's `CONNECTION LIMIT` reached), that step and every later one run on the
//! coordinating connection, one after another as on SQLite, with a warning to the
//! observer; the steps already running on pooled connections go on beside them.

use super::error::{host_failure, script_failure};
use super::rewrite_steps::table_step;
use super::session::{Mode, Session};
use crate::backend::rewrite_plan::staged_name;
use crate::backend::{Connection, DbError, SchemaChange, StepWorkers, TableRewrite};
use crate::checkpoint::{Begin, Progress, StepKey, StepTx};
use crate::observer::{Event, Level};
use rhai::EvalAltResult;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{mpsc, Arc};

type Res<T> = Result<T, Box<EvalAltResult>>;

/// A pool of step connections and how many steps may run at once.
pub(super) type StepPool = (Arc<dyn StepWorkers>, usize);

/// The step pool and how many steps may run at once, when the pending table steps of
/// `ordered` are to run in parallel; `None` to run them one at a time (a dry run or
/// `--sql`, SQLite, `jobs` = 1, a single pending step, or a staged copy left by
/// `ferry reset`, which the one-at-a-time path knows how to discard).
pub(super) fn pool_for(
    s: &mut Session,
    ordered: &[TableRewrite],
) -> Result<Option<StepPool>, DbError> {
    if s.mode != Mode::Apply {
        return Ok(None);
    }
    let pending: Vec<&TableRewrite> = ordered
        .iter()
        .filter(|rw| !s.steps.is_done(&table_step(&rw.table)))
        .collect();
    if pending.len() < 2 {
        return Ok(None);
    }
    for rw in &pending {
        if s.conn().table_exists(&staged_name(&rw.table))? {
            return Ok(None);
        }
    }
    step_pool(s)
}

/// The pool of step connections and how many steps may run at once, when the backend
/// has one and `jobs` (the config's, else the backend's default) is above 1.
pub(super) fn step_pool(s: &mut Session) -> Result<Option<StepPool>, DbError> {
    let jobs = match crate::config::jobs(&s.config).map_err(|e| DbError::other(e.to_string()))? {
        Some(jobs) => jobs,
        None => s.conn().default_jobs()?,
    };
    if jobs < 2 {
        return Ok(None);
    }
    Ok(s.conn().step_workers(jobs)?.map(|pool| (pool, jobs)))
}

/// Runs the table steps of `ordered` (parents first) on `pool`, up to `jobs` at a time;
/// see the module documentation.
pub(super) fn run(
    s: &mut Session,
    ordered: &[TableRewrite],
    set: &[String],
    pool: Arc<dyn StepWorkers>,
    jobs: usize,
) -> Res<()> {
    s.steps
        .enter_host_steps()
        .map_err(|m| script_failure(m.to_string()))?;
    // Close the implicit (read-only) transaction, if reads opened one.
    s.finish_transaction().map_err(|e| host_failure(s, e))?;
    let revision = s.revision_id();
    let parents = parents_in_set(s, ordered, set).map_err(|e| host_failure(s, e))?;

    let mut committed: BTreeSet<String> = BTreeSet::new();
    let mut waiting: Vec<&TableRewrite> = Vec::new();
    for rw in ordered {
        let step = table_step(&rw.table);
        if s.steps.is_done(&step) {
            committed.insert(rw.table.clone());
            s.emit(Event::StepSkipped {
                revision: revision.clone(),
                step,
            });
        } else {
            waiting.push(rw);
        }
    }

    let (done_tx, done_rx) = mpsc::channel::<(TableRewrite, Outcome)>();
    let mut running = 0usize;
    let mut failure: Option<(String, DbError)> = None;
    // Whether the pool ran out of connections: the steps left run on this connection.
    let mut alone = false;
    std::thread::scope(|scope| loop {
        while failure.is_none() && (alone || running < jobs) {
            let Some(next) = waiting
                .iter()
                .position(|rw| parents[&rw.table].iter().all(|p| committed.contains(p)))
            else {
                break;
            };
            let rw = waiting.remove(next).clone();
            s.emit(Event::StepStarted {
                revision: revision.clone(),
                step: table_step(&rw.table),
                total: None,
            });
            let key = s.step_key(&table_step(&rw.table));
            if alone {
                let result = table_step_in(s.conn(), key, &rw, set);
                ended(s, &mut committed, &mut failure, rw.table, result);
                continue;
            }
            running += 1;
            let (done_tx, pool) = (done_tx.clone(), pool.clone());
            scope.spawn(move || {
                let outcome = match pool.connection() {
                    Ok(Some(mut conn)) => Outcome::Ran(table_step_in(conn.as_mut(), key, &rw, set)),
                    Ok(None) => Outcome::NoConnection(key),
                    Err(e) => Outcome::Ran(Err(e)),
                };
                let _ = done_tx.send((rw, outcome));
            });
        }
        if running == 0 {
            break;
        }
        let Ok((rw, outcome)) = done_rx.recv() else {
            break;
        };
        running -= 1;
        match outcome {
            Outcome::Ran(result) => ended(s, &mut committed, &mut failure, rw.table, result),
            Outcome::NoConnection(key) => {
                if !alone {
                    alone = true;
                    s.emit(Event::Log {
                        revision: revision.clone(),
                        level: Level::Warn,
                        message: format!(
                            "step {:?} got no pooled connection (the server's \
                             max_connections or the role's CONNECTION LIMIT is reached): it \
                             and the steps after it run on the migration's own connection, \
                             one after another",
                            table_step(&rw.table),
                        ),
                    });
                }
                // Its start was told already; it runs now, here (unless another step
                // failed meanwhile: then it does not run at all).
                if failure.is_none() {
                    let result = table_step_in(s.conn(), key, &rw, set);
                    ended(s, &mut committed, &mut failure, rw.table, result);
                }
            }
        }
    });
    if let Some((table, e)) = failure {
        s.steps.failed(&table_step(&table));
        return Err(host_failure(s, e));
    }
    if let Some(rw) = waiting.first() {
        return Err(host_failure(
            s,
            DbError::other(format!(
                "step {:?} could not start: the tables it references were not rewritten",
                table_step(&rw.table)
            )),
        ));
    }
    Ok(())
}

/// What became of a step sent to the pool.
enum Outcome {
    /// It ran on a pooled connection: committed, or failed (and rolled back).
    Ran(Result<u64, DbError>),
    /// The pool gave no connection; the step, not begun, is to run on the coordinating
    /// connection.
    NoConnection(StepKey),
}

/// Takes note of a step's end: a commit is recorded and told; the first failure is kept.
fn ended(
    s: &mut Session,
    committed: &mut BTreeSet<String>,
    failure: &mut Option<(String, DbError)>,
    table: String,
    result: Result<u64, DbError>,
) {
    match result {
        Ok(rows) => {
            let step = table_step(&table);
            committed.insert(table);
            s.steps.completed(&step);
            let revision = s.revision_id();
            s.emit(Event::StepFinished {
                revision,
                step,
                rows,
            });
        }
        Err(e) => {
            if failure.is_none() {
                *failure = Some((table, e));
            }
        }
    }
}

/// For each table of the rewrite, the other tables of the rewrite it references.
fn parents_in_set(
    s: &mut Session,
    ordered: &[TableRewrite],
    set: &[String],
) -> Result<BTreeMap<String, BTreeSet<String>>, DbError> {
    let mut parents = BTreeMap::new();
    for rw in ordered {
        let referenced: BTreeSet<String> = s
            .conn()
            .foreign_keys(&rw.table)?
            .into_iter()
            .map(|k| k.referenced_table)
            .filter(|t| t != &rw.table && set.contains(t))
            .collect();
        parents.insert(rw.table.clone(), referenced);
    }
    Ok(parents)
}

/// One table's step on `conn` (a pooled connection, or the coordinating one when the
/// pool has none to give): its copy and its ledger row, committed together in one
/// [`StepTx`] (or neither). Returns the rows copied, which its ledger row records.
fn table_step_in(
    conn: &mut dyn Connection,
    key: StepKey,
    rw: &TableRewrite,
    set: &[String],
) -> Result<u64, DbError> {
    let change = SchemaChange::PrepareRewrite {
        rewrite: rw.clone(),
        set: set.to_vec(),
        discard: Vec::new(),
    };
    crate::sql_guard::check_schema_change(&change, conn.sql_syntax())
        .map_err(|r| DbError::other(r.to_string()))?;
    let mut tx = StepTx::begin(conn, key, Begin::ForeignKeysAtCommit)?;
    tx.run(|c| c.apply_schema_change(&change))?;
    // The rows copied, which the swap compares the table with.
    let rows = tx.run(|c| Ok(c.rows_copied().unwrap_or(0)))?;
    tx.commit(Progress::Done {
        cursor: None,
        batches: 0,
        rows: rows as i64,
    })?;
    Ok(rows)
}
