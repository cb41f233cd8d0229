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

use super::error::{host_failure, script_failure};
use super::rewrite_steps::table_step;
use super::session::{Mode, Session};
use crate::backend::rewrite_plan::staged_name;
use crate::backend::{Connection, DbError, SchemaChange, StepWorkers, TableRewrite};
use crate::checkpoint::{Begin, Progress, StepKey, StepTx};
use crate::observer::Event;
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
    let jobs = match crate::config::jobs(&s.config).map_err(|e| DbError::other(e.to_string()))? {
        Some(jobs) => jobs,
        None => s.conn().default_jobs()?,
    };
    if jobs < 2 {
        return Ok(None);
    }
    for rw in &pending {
        if s.conn().table_exists(&staged_name(&rw.table))? {
            return Ok(None);
        }
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

    let (done_tx, done_rx) = mpsc::channel::<(String, Result<(), DbError>)>();
    let mut running = 0usize;
    let mut failure: Option<(String, DbError)> = None;
    std::thread::scope(|scope| loop {
        while failure.is_none() && running < jobs {
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
            running += 1;
            let (done_tx, pool) = (done_tx.clone(), pool.clone());
            let key = s.step_key(&table_step(&rw.table));
            scope.spawn(move || {
                let result = table_step_on(pool.as_ref(), key, &rw, set);
                let _ = done_tx.send((rw.table, result));
            });
        }
        if running == 0 {
            break;
        }
        let Ok((table, result)) = done_rx.recv() else {
            break;
        };
        running -= 1;
        match result {
            Ok(()) => {
                let step = table_step(&table);
                committed.insert(table);
                s.steps.completed(&step);
                s.emit(Event::StepFinished {
                    revision: revision.clone(),
                    step,
                    rows: 0,
                });
            }
            Err(e) => {
                if failure.is_none() {
                    failure = Some((table, e));
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

/// One table's step on a pooled connection: its copy and its ledger row, committed
/// together in one [`StepTx`] (or neither).
fn table_step_on(
    pool: &dyn StepWorkers,
    key: StepKey,
    rw: &TableRewrite,
    set: &[String],
) -> Result<(), DbError> {
    let mut conn = pool.connection()?;
    let change = SchemaChange::PrepareRewrite {
        rewrite: rw.clone(),
        set: set.to_vec(),
        discard: Vec::new(),
    };
    crate::sql_guard::check_schema_change(&change, conn.dialect())
        .map_err(|r| DbError::other(r.to_string()))?;
    let conn: &mut dyn Connection = conn.as_mut();
    let mut tx = StepTx::begin(conn, key, Begin::ForeignKeysAtCommit)?;
    tx.run(|c| c.apply_schema_change(&change))?;
    tx.commit(Progress::Done {
        cursor: None,
        batches: 0,
        rows: 0,
    })
}
