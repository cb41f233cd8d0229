//! `schema::rewrite_tables(rewrites, #{ steps: true })`: a table rewrite as one step per
//! table and a final swap, so that a kill loses at most one table's copy.
//!
//! The host makes the steps itself, so that a script cannot get their order, options or
//! table list wrong: `rewrite {table}` for each table, parents first
//! (`rewrite_plan::ordered`), each building the table's new version next to the old one
//! ([`SchemaChange::PrepareRewrite`]), then [`SWAP_STEP`], which swaps them all in
//! ([`SchemaChange::SwapRewritten`]). Every step checks foreign keys at its commit. Until
//! the swap commits, the old tables are as they were, so the repository is consistent
//! (and readable by code that knows only the old schema) after every commit.
//!
//! With `jobs` above 1 on a backend with a step pool (PostgreSQL), the table steps run
//! at the same time where their keys allow (`parallel_steps.rs`); the swap runs on the
//! coordinating connection after all of them.

use super::db::{Db, StepOptions};
use super::error::{host_failure, script_failure};
use super::schema::apply;
use super::session::SharedSession;
use crate::backend::rewrite_plan::{self, staged_name};
use crate::backend::{DbError, SchemaChange, TableRewrite};
use rhai::{Dynamic, EvalAltResult};
use std::collections::BTreeMap;

type Res<T> = Result<T, Box<EvalAltResult>>;

/// The name of the step that swaps the rewritten tables in.
pub const SWAP_STEP: &str = "swap rewritten tables";

/// The name of the step that rewrites `table`.
pub fn table_step(table: &str) -> String {
    format!("rewrite {table}")
}

/// Runs the steps (see the module documentation).
pub fn run(session: &SharedSession, rewrites: Vec<TableRewrite>) -> Res<()> {
    let db = Db(session.clone());
    if let Some(step) = db.session()?.steps.current().map(str::to_string) {
        return Err(script_failure(format!(
            "schema::rewrite_tables(…, #{{ steps: true }}) makes its own steps, so it cannot \
             run inside step {step:?}: call it outside db.step"
        )));
    }
    let ordered = {
        let mut s = db.session()?;
        s.before_statement(false)
            .map_err(|r| super::error::refused(&mut s, r))?;
        let checked = rewrite_plan::ordered(s.conn(), &rewrites);
        checked.map_err(|e| host_failure(&mut s, e))?
    };
    let set: Vec<String> = ordered.iter().map(|r| r.table.clone()).collect();
    let parallel = {
        let mut s = db.session()?;
        let pool = super::parallel_steps::pool_for(&mut s, &ordered);
        match pool.map_err(|e| host_failure(&mut s, e))? {
            Some((pool, jobs)) => {
                super::parallel_steps::run(&mut s, &ordered, &set, pool, jobs)?;
                true
            }
            None => false,
        }
    };
    for rw in ordered.iter().filter(|_| !parallel) {
        let _ = db.run_step(
            &table_step(&rw.table),
            StepOptions::keys_checked_at_commit(),
            |_| {
                let discard = stale_copies(&db, &set, &rw.table)?;
                apply(
                    session,
                    SchemaChange::PrepareRewrite {
                        rewrite: rw.clone(),
                        set: set.clone(),
                        discard,
                    },
                )?;
                // The step's row count in the ledger: the rows copied, which the swap
                // compares the table with.
                let mut s = db.session()?;
                s.step_rows = s.conn().rows_copied().unwrap_or(0);
                Ok(Dynamic::UNIT)
            },
        )?;
    }
    let _ = db.run_step(SWAP_STEP, StepOptions::keys_checked_at_commit(), |_| {
        let copied = recorded_copies(&db, &set)?;
        apply(
            session,
            SchemaChange::SwapRewritten {
                tables: set.clone(),
                copied,
            },
        )?;
        Ok(Dynamic::UNIT)
    })?;
    Ok(())
}

/// The rows each table's copy was made with, as its committed step recorded them. A
/// step that recorded none (an earlier Ferry's, or an empty table) is left out: the swap
/// counts that copy.
fn recorded_copies(db: &Db, set: &[String]) -> Res<BTreeMap<String, u64>> {
    let mut s = db.session()?;
    let owner = s.step_key(SWAP_STEP).ledger_revision();
    let steps = crate::ledger::steps(s.conn(), &owner)
        .map_err(|e| DbError::other(e.to_string()))
        .map_err(|e| host_failure(&mut s, e))?;
    Ok(set
        .iter()
        .filter_map(|t| {
            let step = table_step(t);
            steps
                .iter()
                .find(|r| r.done && r.step == step && r.rows > 0)
                .map(|r| (t.clone(), r.rows as u64))
        })
        .collect())
}

/// The copies the step rewriting `table` must drop first, children first: those of
/// tables whose steps are not committed. They exist only after `ferry reset` made the
/// ledger forget committed steps. A committed copy that references one of them (or the
/// copy of `table` itself) would be left pointing at rows that are rebuilt: refused,
/// naming the steps to reset as well.
fn stale_copies(db: &Db, set: &[String], table: &str) -> Res<Vec<String>> {
    let mut s = db.session()?;
    let found = (|| {
        let mut stale = vec![staged_name(table)];
        let mut kept = Vec::new();
        for t in set.iter().filter(|t| *t != table) {
            let copy = staged_name(t);
            if s.conn().table_exists(&copy)? {
                if s.steps.is_committed(&table_step(t)) {
                    kept.push((t, copy));
                } else {
                    stale.push(copy);
                }
            }
        }
        for (t, copy) in kept {
            for key in s.conn().foreign_keys(&copy)? {
                if stale.contains(&key.referenced_table) {
                    return Err(DbError::other(format!(
                        "the rewritten copy of {t} ({copy}), committed by step {:?}, references \
                         {}, which this step rebuilds: make the ledger forget that step too \
                         (ferry reset REVISION --step {:?})",
                        table_step(t),
                        key.referenced_table,
                        table_step(t)
                    )));
                }
            }
        }
        stale.remove(0);
        stale.reverse();
        Ok(stale)
    })();
    found.map_err(|e| host_failure(&mut s, e))
}
