//! The `db` capability: statements with bound parameters, queries, streaming, bulk
//! insert, introspection, and steps with checkpoints.
//!
//! Scripts receive it as the argument of `fn upgrade(db)` / `fn downgrade(db)`.

use super::error::{host_failure, refused, script_failure};
use super::session::SharedSession;
use super::values::{row_map, rows_array, strings, to_dynamic, to_params, to_value};
use crate::backend::{DbError, Value};
use crate::checkpoint::{BatchWalker, Begin, Entry, Progress, StepTx};
use crate::observer::Event;
use rhai::{Array, Dynamic, Engine, EvalAltResult, FnPtr, Map, NativeCallContext};

/// The script's handle on the database.
#[derive(Clone)]
pub struct Db(pub SharedSession);

type Res<T> = Result<T, Box<EvalAltResult>>;

fn is_write(sql: &str) -> bool {
    let head = sql
        .split_whitespace()
        .next()
        .unwrap_or("")
        .to_ascii_uppercase();
    !matches!(
        head.as_str(),
        "SELECT" | "WITH" | "EXPLAIN" | "SHOW" | "VALUES" | "PRAGMA"
    )
}

/// How a step runs (`db.step`'s options).
#[derive(Debug, Clone, Copy)]
pub(super) struct StepOptions {
    /// `false` for work that cannot run in a transaction (`CREATE INDEX CONCURRENTLY`).
    pub transactional: bool,
    /// Foreign keys checked once at commit instead of statement by statement.
    pub check_fks_at_commit: bool,
    /// Expected amount of work, for progress.
    pub total: Option<u64>,
    /// `timeout_seconds`: the statement timeout inside this step (over the revision's).
    pub timeout: Option<std::time::Duration>,
}

impl StepOptions {
    /// A transactional step whose foreign keys are checked at commit.
    pub fn keys_checked_at_commit() -> StepOptions {
        StepOptions {
            transactional: true,
            check_fks_at_commit: true,
            total: None,
            timeout: None,
        }
    }

    /// A transactional step whose foreign keys are checked statement by statement.
    pub fn plain() -> StepOptions {
        StepOptions {
            transactional: true,
            check_fks_at_commit: false,
            total: None,
            timeout: None,
        }
    }

    /// Reads `#{ transactional, foreign_keys, total }`.
    fn read(name: &str, options: &Map) -> Res<StepOptions> {
        let transactional = options
            .get("transactional")
            .and_then(|v| v.as_bool().ok())
            .unwrap_or(true);
        // `foreign_keys: "at_commit"`: check foreign keys once at commit, so a parent
        // table and the tables referencing it can be rebuilt together.
        let check_fks_at_commit = match options.get("foreign_keys") {
            None => false,
            Some(v) => match v.clone().into_string().as_deref() {
                Ok("at_commit") => true,
                Ok("immediate") => false,
                _ => {
                    return Err(script_failure(format!(
                    "step {name:?}: foreign_keys must be \"at_commit\" or \"immediate\", found {v}"
                )))
                }
            },
        };
        let total = options
            .get("total")
            .and_then(|v| v.as_int().ok())
            .map(|t| t as u64);
        let timeout = match options.get("timeout_seconds") {
            None => None,
            Some(v) => match v.as_int() {
                Ok(n) if n >= 1 && (n as u64) <= crate::config::MAX_SECONDS => {
                    Some(std::time::Duration::from_secs(n as u64))
                }
                _ => {
                    return Err(script_failure(format!(
                        "step {name:?}: timeout_seconds must be a whole number of seconds from 1 \
                         to {}, found {v}",
                        crate::config::MAX_SECONDS
                    )))
                }
            },
        };
        Ok(StepOptions {
            transactional,
            check_fks_at_commit,
            total,
            timeout,
        })
    }
}

impl Db {
    /// Borrows the session; fails (instead of panicking) when a callback that runs
    /// while the session is busy, such as `db.each`'s, tries to use `db`.
    pub fn session(&self) -> Res<std::cell::RefMut<'_, super::session::Session>> {
        self.0.try_borrow_mut().map_err(|_| {
            script_failure(
                "db cannot be used inside the callback of db.each (the result is still being \
                 read); collect what you need and write after the loop, or use db.batches",
            )
        })
    }

    /// Refuses SQL a script may not send (see [`crate::sql_guard`]), before the
    /// database sees it.
    pub(super) fn guard(&self, sql: &str) -> Res<()> {
        let syntax = self.session()?.conn().sql_syntax();
        crate::sql_guard::check(sql, syntax).map_err(|r| script_failure(r.to_string()))
    }

    /// Runs a statement the script wrote: guarded, and on SQLite under the authorizer
    /// that denies what the guard should already have refused.
    fn run_script_sql<T>(
        &self,
        sql: &str,
        f: impl FnOnce(&mut dyn crate::backend::Connection) -> Result<T, DbError>,
    ) -> Res<T> {
        self.guard(sql)?;
        self.run(is_write(sql), |c| {
            c.restrict_to_script(true);
            let result = f(c);
            c.restrict_to_script(false);
            result
        })
    }

    fn run<T>(
        &self,
        writes: bool,
        f: impl FnOnce(&mut dyn crate::backend::Connection) -> Result<T, DbError>,
    ) -> Res<T> {
        let mut s = self.session()?;
        s.before_statement(writes).map_err(|r| refused(&mut s, r))?;
        let result = f(s.conn());
        result.map_err(|e| host_failure(&mut s, e))
    }

    /// A host failure, remembered in the session (see [`host_failure`]).
    fn host_error(&self, e: DbError) -> Box<EvalAltResult> {
        match self.session() {
            Ok(mut s) => host_failure(&mut s, e),
            Err(busy) => busy,
        }
    }

    fn execute(&mut self, sql: &str, params: Array) -> Res<i64> {
        let params = to_params(&params).map_err(script_failure)?;
        let rows = self.run_script_sql(sql, |c| c.execute(sql, &params))?;
        self.session()?.after_statement(sql, rows);
        Ok(rows as i64)
    }

    /// `db.query`: the rows as an array, read as a stream and stopped at the first row
    /// past `max_rows` or value past `max_string` bytes, so that memory stays within the
    /// limits however large the result (a few million rows reached gigabytes when the
    /// whole result was read before the check).
    fn query_capped(
        &mut self,
        sql: &str,
        params: Array,
        max_rows: usize,
        max_string: usize,
    ) -> Res<Array> {
        let params = to_params(&params).map_err(script_failure)?;
        let mut kept = crate::backend::Rows {
            columns: Vec::new(),
            rows: Vec::new(),
        };
        let mut refused: Option<String> = None;
        let mut each = |columns: &[String], values: Vec<crate::backend::Value>| {
            if let Some(size) = values
                .iter()
                .map(|v| match v {
                    crate::backend::Value::Text(t) => t.len(),
                    crate::backend::Value::Bytes(b) => b.len(),
                    _ => 0,
                })
                .find(|size| *size > max_string)
            {
                refused = Some(format!(
                    "db.query returned a value of {size} bytes, more than \
                     limits.max_string_size ({max_string}) allows"
                ));
                return Ok(false);
            }
            if max_rows > 0 && kept.rows.len() >= max_rows {
                refused = Some(format!(
                    "db.query returned more rows than limits.max_array_size ({max_rows}) \
                     allows: read large results with db.each or db.batches"
                ));
                return Ok(false);
            }
            if kept.columns.is_empty() {
                kept.columns = columns.to_vec();
            }
            kept.rows.push(values);
            Ok(true)
        };
        self.run_script_sql(sql, |c| c.query_each(sql, &params, &mut each))?;
        if let Some(why) = refused {
            return Err(script_failure(why));
        }
        self.session()?.after_statement(sql, kept.rows.len() as u64);
        Ok(rows_array(kept))
    }

    fn query_row(&mut self, sql: &str, params: Array) -> Res<Dynamic> {
        let params = to_params(&params).map_err(script_failure)?;
        let rows = self.run_script_sql(sql, |c| c.query(sql, &params))?;
        let columns = rows.columns;
        Ok(match rows.rows.into_iter().next() {
            Some(r) => Dynamic::from_map(row_map(&columns, r)),
            None => Dynamic::UNIT,
        })
    }

    fn query_value(&mut self, sql: &str, params: Array) -> Res<Dynamic> {
        let params = to_params(&params).map_err(script_failure)?;
        let rows = self.run_script_sql(sql, |c| c.query(sql, &params))?;
        Ok(rows
            .rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .map(to_dynamic)
            .unwrap_or(Dynamic::UNIT))
    }

    /// Streams rows to a callback; the callback returning `false` stops early.
    fn each(&mut self, ctx: &NativeCallContext, sql: &str, params: Array, f: FnPtr) -> Res<i64> {
        let params = to_params(&params).map_err(script_failure)?;
        // The callback gets each row while the result is still being read, so it may
        // compute but not use `db` (Db::session reports that clearly).
        let mut script_error: Option<Box<EvalAltResult>> = None;
        self.guard(sql)?;
        let this = self.clone();
        let mut s = this.session()?;
        s.before_statement(is_write(sql))
            .map_err(|r| refused(&mut s, r))?;
        s.conn().restrict_to_script(true);
        let result = s.conn().query_each(sql, &params, &mut |cols, row| {
            let map = row_map(cols, row);
            match f.call_within_context::<Dynamic>(ctx, (Dynamic::from_map(map),)) {
                Ok(v) => Ok(v.as_bool().unwrap_or(true)),
                Err(e) => {
                    script_error = Some(e);
                    Ok(false)
                }
            }
        });
        s.conn().restrict_to_script(false);
        match (result, script_error) {
            (_, Some(e)) => Err(e),
            (Ok(n), None) => Ok(n as i64),
            (Err(e), None) => Err(host_failure(&mut s, e)),
        }
    }

    fn bulk_insert(&mut self, table: &str, columns: Array, rows: Array) -> Res<i64> {
        crate::sql_guard::check_table(table).map_err(|r| script_failure(r.to_string()))?;
        let columns = strings(&columns, "columns").map_err(script_failure)?;
        let width = columns.len();
        let mut converted = Vec::with_capacity(rows.len());
        for (i, row) in rows.into_iter().enumerate() {
            let values: Vec<Value> = if let Some(a) = row.clone().try_cast::<Array>() {
                to_params(&a).map_err(|e| script_failure(format!("row {}: {e}", i + 1)))?
            } else if let Some(m) = row.clone().try_cast::<Map>() {
                columns
                    .iter()
                    .map(|c| m.get(c.as_str()).map(to_value).unwrap_or(Ok(Value::Null)))
                    .collect::<Result<_, _>>()
                    .map_err(|e| script_failure(format!("row {}: {e}", i + 1)))?
            } else {
                return Err(script_failure(format!(
                    "row {} must be an array or a map, found {}",
                    i + 1,
                    row.type_name()
                )));
            };
            if values.len() != width {
                return Err(script_failure(format!(
                    "row {} has {} values for {} columns",
                    i + 1,
                    values.len(),
                    width
                )));
            }
            converted.push(values);
        }
        let n = self.run(true, |c| {
            c.bulk_insert(table, &columns, &mut converted.into_iter())
        })?;
        self.session()?
            .after_statement(&format!("bulk insert into {table}"), n);
        Ok(n as i64)
    }

    /// `db.bulk_insert(table, columns, #{ each, values })`: rows generated natively
    /// (see `generate.rs`), streamed into the same fast path.
    fn bulk_generate(&mut self, table: &str, columns: Array, spec: Map) -> Res<i64> {
        crate::sql_guard::check_table(table).map_err(|r| script_failure(r.to_string()))?;
        let columns = strings(&columns, "columns").map_err(script_failure)?;
        let mut rows = super::generate::Rows::new(&spec, columns.len())
            .map_err(|e| script_failure(format!("bulk_insert into {table}: {e}")))?;
        let n = self.run(true, |c| c.bulk_insert(table, &columns, &mut rows))?;
        self.session()?
            .after_statement(&format!("bulk insert of generated rows into {table}"), n);
        Ok(n as i64)
    }

    /// `db.step(name, options, f)`: runs `f(db)` as a named step (see [`Db::run_step`]).
    fn step(
        &mut self,
        ctx: &NativeCallContext,
        name: &str,
        options: Map,
        f: FnPtr,
    ) -> Res<Dynamic> {
        let options = StepOptions::read(name, &options)?;
        self.run_step(name, options, |db| {
            f.call_within_context::<Dynamic>(ctx, (db.clone(),))
        })
    }

    /// Runs `body` as a named step: skipped if the ledger records it done, otherwise
    /// run in its own [`StepTx`], which commits it with its ledger record. `db.step` and
    /// the steps the host makes itself (`schema::rewrite_tables(…, #{ steps: true })`)
    /// both run here.
    pub(super) fn run_step(
        &self,
        name: &str,
        options: StepOptions,
        body: impl FnOnce(&Db) -> Res<Dynamic>,
    ) -> Res<Dynamic> {
        let StepOptions {
            transactional,
            check_fks_at_commit,
            total,
            timeout,
        } = options;
        let key = {
            let mut s = self.session()?;
            if self.enter_step(&mut s, name)? == Entry::Skip {
                return Ok(Dynamic::UNIT);
            }
            // Set before the step's transaction begins (a PostgreSQL SET inside it would
            // be undone by its rollback) and put back once it committed; after a failure
            // the next revision sets its own.
            if let Some(t) = timeout {
                s.conn()
                    .set_statement_timeout(Some(t))
                    .map_err(|e| host_failure(&mut s, e))?;
            }
            s.step_key(name)
        };
        // A dry run runs a non-transactional step too, inside its one transaction:
        // `schema::add_index(…, #{ concurrently: true })` builds the index plainly there
        // (see `schema::apply`), which the rollback undoes.
        let begin = if check_fks_at_commit {
            Begin::ForeignKeysAtCommit
        } else {
            Begin::Plain
        };
        let tx = if transactional {
            let tx = StepTx::begin(self.0.clone(), key.clone(), begin);
            Some(tx.map_err(|e| self.host_error(e))?)
        } else {
            None
        };
        let rows_before = {
            let mut s = self.session()?;
            s.emit(Event::StepStarted {
                revision: key.revision.clone(),
                step: name.into(),
                total,
            });
            s.step_rows = 0;
            s.rows
        };
        let result = body(self);
        let (result, rows) = {
            let mut s = self.session()?;
            // A database error the script caught still fails the step.
            let result = match result {
                Ok(_) if s.poisoned => Err(caught_host_error(&s)),
                other => other,
            };
            let rows = s.rows - rows_before + std::mem::take(&mut s.step_rows);
            (result, rows as i64)
        };
        let value = match result {
            Ok(v) => v,
            Err(e) => {
                self.session()?.steps.failed(name);
                // Dropping the step's transaction rolls its work back.
                drop(tx);
                return Err(e);
            }
        };
        // A non-transactional step's record commits in a transaction of its own.
        let tx = match tx {
            Some(tx) => tx,
            None => StepTx::begin(self.0.clone(), key.clone(), Begin::Plain)
                .map_err(|e| self.host_error(e))?,
        };
        tx.commit(Progress::Done {
            cursor: None,
            batches: 0,
            rows,
        })
        .map_err(|e| self.host_error(e))?;
        let mut s = self.session()?;
        if timeout.is_some() {
            let revision_timeout = s.statement_timeout;
            s.conn()
                .set_statement_timeout(revision_timeout)
                .map_err(|e| host_failure(&mut s, e))?;
        }
        s.steps.completed(name);
        s.emit(Event::StepFinished {
            revision: key.revision,
            step: name.into(),
            rows: rows as u64,
        });
        Ok(value)
    }

    /// Enters step `name` (a script that breaks a rule of steps is at fault); tells the
    /// observer when it is skipped.
    fn enter_step(&self, s: &mut super::session::Session, name: &str) -> Res<Entry> {
        s.steps
            .check_entry(name)
            .map_err(|m| script_failure(m.to_string()))?;
        // Close the implicit (read-only) transaction, if reads opened one.
        s.finish_transaction().map_err(|e| host_failure(s, e))?;
        let entry = s.steps.enter(name);
        if entry == Entry::Skip {
            s.emit(Event::StepSkipped {
                revision: s.revision_id(),
                step: name.into(),
            });
        }
        Ok(entry)
    }

    /// Walks `options.table` in key order (`options.key`, `options.size` keys per batch),
    /// calling `f(db, batch)` with `batch.lo` (exclusive) and `batch.hi` (inclusive);
    /// each batch commits together with its cursor, so a rerun resumes after the last
    /// committed batch (see [`BatchWalker`]).
    fn batches(&mut self, ctx: &NativeCallContext, name: &str, options: Map, f: FnPtr) -> Res<i64> {
        let get = |k: &str| options.get(k).cloned();
        let table = get("table")
            .and_then(|v| v.into_string().ok())
            .ok_or_else(|| script_failure("db.batches needs options.table (a string)"))?;
        let key = get("key")
            .and_then(|v| v.into_string().ok())
            .ok_or_else(|| script_failure("db.batches needs options.key (a column name)"))?;
        let size = get("size").and_then(|v| v.as_int().ok()).unwrap_or(10_000);
        if size <= 0 {
            return Err(script_failure("db.batches: options.size must be positive"));
        }
        let declared_total = get("total").and_then(|v| v.as_int().ok()).map(|t| t as u64);
        let (resume, step_key) = {
            let mut s = self.session()?;
            match self.enter_step(&mut s, name)? {
                Entry::Skip => return Ok(0),
                Entry::Run { resume } => (resume, s.step_key(name)),
            }
        };
        let started = self.run(false, |c| {
            BatchWalker::start(c, &table, &key, size, resume.as_ref())
        })?;
        let mut walker = started.map_err(|fault| script_failure(fault.to_string()))?;
        // Without a declared total, count the batches left, so that progress has a total.
        let total = match declared_total {
            Some(t) => Some(t),
            None => self.run(false, |c| walker.total_batches(c))?,
        };
        let revision = step_key.revision.clone();
        self.session()?.emit(Event::StepStarted {
            revision: revision.clone(),
            step: name.into(),
            total,
        });
        loop {
            // One transaction per batch, holding the batch's work and its cursor.
            let mut tx = StepTx::begin(self.0.clone(), step_key.clone(), Begin::Plain)
                .map_err(|e| self.host_error(e))?;
            let hi = tx
                .run(|c| walker.next_bound(c))
                .map_err(|e| self.host_error(e))?;
            let Some(hi) = hi else {
                tx.commit(walker.finished())
                    .map_err(|e| self.host_error(e))?;
                let mut s = self.session()?;
                s.steps.completed(name);
                s.emit(Event::StepFinished {
                    revision,
                    step: name.into(),
                    rows: walker.rows() as u64,
                });
                return Ok(walker.batches());
            };
            let rows_before = self.session()?.rows;
            let mut batch = Map::new();
            batch.insert("lo".into(), to_dynamic(walker.after().clone()));
            batch.insert("hi".into(), to_dynamic(hi.clone()));
            batch.insert("number".into(), Dynamic::from_int(walker.batches() + 1));
            let result =
                f.call_within_context::<Dynamic>(ctx, (self.clone(), Dynamic::from_map(batch)));
            let result = match result {
                Ok(_) if self.session()?.poisoned => Err(caught_host_error(&*self.session()?)),
                other => other,
            };
            if let Err(e) = result {
                self.session()?.steps.failed(name);
                // Dropping the batch's transaction rolls its work back.
                drop(tx);
                return Err(e);
            }
            let rows = (self.session()?.rows - rows_before) as i64;
            tx.commit(walker.advance(hi, rows))
                .map_err(|e| self.host_error(e))?;
            self.session()?.emit(Event::Progress {
                revision: revision.clone(),
                step: name.into(),
                done: walker.batches() as u64,
                total,
            });
        }
    }
}

/// The error a step fails with when the script caught a database error and went on.
fn caught_host_error(s: &super::session::Session) -> Box<EvalAltResult> {
    let first = s
        .host_error
        .as_ref()
        .map(|e| e.to_string())
        .unwrap_or_default();
    Box::new(EvalAltResult::ErrorRuntime(
        format!(
            "{first}\n  (the script caught this database error and went on; the step fails anyway)"
        )
        .into(),
        rhai::Position::NONE,
    ))
}

/// Registers the `db` type and its methods.
pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<Db>("Db");
    engine.register_get("dialect", |db: &mut Db| -> Res<String> {
        Ok(db.session()?.conn().dialect().name().to_string())
    });
    engine.register_fn("quote", |db: &mut Db, ident: &str| -> Res<String> {
        Ok(db.session()?.conn().quote_ident(ident))
    });
    engine.register_fn("execute", |db: &mut Db, sql: &str| {
        db.execute(sql, Array::new())
    });
    engine.register_fn("execute", |db: &mut Db, sql: &str, p: Array| {
        db.execute(sql, p)
    });
    // The rows of db.query are capped at the engine's array limit before they become
    // script values (limits.max_array_size), with an error that says so.
    engine.register_fn("query", |ctx: NativeCallContext, db: &mut Db, sql: &str| {
        let e = ctx.engine();
        db.query_capped(sql, Array::new(), e.max_array_size(), e.max_string_size())
    });
    engine.register_fn(
        "query",
        |ctx: NativeCallContext, db: &mut Db, sql: &str, p: Array| {
            let e = ctx.engine();
            db.query_capped(sql, p, e.max_array_size(), e.max_string_size())
        },
    );
    engine.register_fn("query_row", |db: &mut Db, sql: &str| {
        db.query_row(sql, Array::new())
    });
    engine.register_fn("query_row", |db: &mut Db, sql: &str, p: Array| {
        db.query_row(sql, p)
    });
    engine.register_fn("query_value", |db: &mut Db, sql: &str| {
        db.query_value(sql, Array::new())
    });
    engine.register_fn("query_value", |db: &mut Db, sql: &str, p: Array| {
        db.query_value(sql, p)
    });
    engine.register_fn(
        "each",
        |ctx: NativeCallContext, db: &mut Db, sql: &str, p: Array, f: FnPtr| {
            db.each(&ctx, sql, p, f)
        },
    );
    engine.register_fn("insert_derived", |db: &mut Db, spec: Map| {
        db.insert_derived(spec)
    });
    engine.register_fn("bulk_insert", |db: &mut Db, t: &str, c: Array, r: Array| {
        db.bulk_insert(t, c, r)
    });
    engine.register_fn(
        "bulk_insert",
        |db: &mut Db, t: &str, c: Array, spec: Map| db.bulk_generate(t, c, spec),
    );
    engine.register_fn(
        "step",
        |ctx: NativeCallContext, db: &mut Db, name: &str, f: FnPtr| {
            db.step(&ctx, name, Map::new(), f)
        },
    );
    engine.register_fn(
        "step",
        |ctx: NativeCallContext, db: &mut Db, name: &str, o: Map, f: FnPtr| {
            db.step(&ctx, name, o, f)
        },
    );
    engine.register_fn(
        "step_beside",
        |ctx: NativeCallContext, db: &mut Db, name: &str, spec: Map, f: FnPtr| {
            super::step_beside::run(db, &ctx, name, spec, f)
        },
    );
    engine.register_fn(
        "batches",
        |ctx: NativeCallContext, db: &mut Db, name: &str, o: Map, f: FnPtr| {
            db.batches(&ctx, name, o, f)
        },
    );
    super::introspect::register(engine);
}
