//! The walk of a batched step: a table in key order, `size` keys per batch, each batch
//! committed with its cursor (see [`super::StepTx`]), a rerun resuming after the last
//! committed one.

use super::book::Cursor;
use super::tx::Progress;
use crate::backend::{Connection, DbError, Value};

/// A key column a walk cannot use (the script's fault, not the database's).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyFault {
    #[error("db.batches: key {key} of {table} holds the nil UUID, which no batch can start before; use another key")]
    NilUuid { table: String, key: String },
    #[error("db.batches: key {key} of {table} has values like {value}; use an integer, text or UUID key")]
    Unsupported {
        table: String,
        key: String,
        value: String,
    },
}

/// Where a batched step stands: the last key done (`None`: the table has no keys) and
/// the batches and rows committed so far, on this run and the runs before.
#[derive(Debug, Clone)]
pub struct BatchWalker {
    table: String,
    key: String,
    size: i64,
    after: Value,
    batches: i64,
    rows: i64,
}

impl BatchWalker {
    /// Starts walking `table` by `key`, `size` keys per batch: after `resume`, the
    /// cursor a run before committed, or else before the smallest key.
    pub fn start(
        conn: &mut dyn Connection,
        table: &str,
        key: &str,
        size: i64,
        resume: Option<&Cursor>,
    ) -> Result<Result<BatchWalker, KeyFault>, DbError> {
        let (qt, qk) = (conn.quote_ident(table), conn.quote_ident(key));
        let mut walker = BatchWalker {
            table: qt.clone(),
            key: qk.clone(),
            size,
            after: Value::Null,
            batches: 0,
            rows: 0,
        };
        if let Some(c) = resume {
            walker.after = cursor_value(&c.cursor);
            walker.batches = c.batches;
            walker.rows = c.rows;
        }
        if walker.after != Value::Null {
            return Ok(Ok(walker));
        }
        // ORDER BY rather than MIN/MAX: PostgreSQL has no MIN or MAX over uuid.
        let sql = format!("SELECT {qk} FROM {qt} WHERE {qk} IS NOT NULL ORDER BY {qk} LIMIT 1");
        let first = conn.query(&sql, &[])?;
        walker.after = match first
            .rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
        {
            Some(Value::Int(i)) => Value::Int(i - 1),
            Some(Value::Text(_)) => Value::Text(String::new()),
            // A UUID key (PostgreSQL's uuid type) starts after the nil UUID, the
            // smallest there is; a table whose smallest key is the nil UUID itself is
            // refused rather than have that row skipped.
            Some(Value::Uuid(u)) if u.is_nil() => {
                return Ok(Err(KeyFault::NilUuid {
                    table: table.into(),
                    key: key.into(),
                }))
            }
            Some(Value::Uuid(_)) => Value::Uuid(uuid::Uuid::nil()),
            Some(Value::Null) | None => Value::Null,
            Some(other) => {
                return Ok(Err(KeyFault::Unsupported {
                    table: table.into(),
                    key: key.into(),
                    value: other.to_string(),
                }))
            }
        };
        Ok(Ok(walker))
    }

    /// The number of batches in all, those committed before included: one COUNT over
    /// the key's index, so that progress has a total (and an ETA), on a resume too.
    pub fn total_batches(&self, conn: &mut dyn Connection) -> Result<Option<u64>, DbError> {
        if self.after == Value::Null {
            return Ok(Some(self.batches as u64));
        }
        let sql = format!("SELECT COUNT(*) FROM {} WHERE {} > ?", self.table, self.key);
        let left = conn.query(&sql, std::slice::from_ref(&self.after))?;
        Ok(match left.rows.first().and_then(|r| r.first()) {
            Some(Value::Int(n)) => {
                Some(self.batches as u64 + (*n as u64).div_ceil(self.size as u64))
            }
            _ => None,
        })
    }

    /// The last key of the next batch (inclusive), or `None` when the walk is over.
    pub fn next_bound(&self, conn: &mut dyn Connection) -> Result<Option<Value>, DbError> {
        if self.after == Value::Null {
            return Ok(None);
        }
        let (qt, qk) = (&self.table, &self.key);
        let sql = format!(
            "SELECT {qk} FROM (SELECT {qk} FROM {qt} WHERE {qk} > ? ORDER BY {qk} LIMIT ?) AS ferry_batch ORDER BY {qk} DESC LIMIT 1"
        );
        let r = conn.query(&sql, &[self.after.clone(), Value::Int(self.size)])?;
        Ok(r.rows
            .into_iter()
            .next()
            .and_then(|r| r.into_iter().next())
            .filter(|v| *v != Value::Null))
    }

    /// The last key done (exclusive lower bound of the next batch).
    pub fn after(&self) -> &Value {
        &self.after
    }

    /// The batches committed so far.
    pub fn batches(&self) -> i64 {
        self.batches
    }

    /// The rows the committed batches touched.
    pub fn rows(&self) -> i64 {
        self.rows
    }

    /// Moves past the batch that ended at `hi` and touched `rows` rows; the record to
    /// commit with the batch's work.
    pub fn advance(&mut self, hi: Value, rows: i64) -> Progress {
        self.batches += 1;
        self.rows += rows;
        self.after = hi;
        Progress::Batch {
            cursor: cursor_text(&self.after),
            batches: self.batches,
            rows: self.rows,
        }
    }

    /// The record of the finished walk.
    pub fn finished(&self) -> Progress {
        Progress::Done {
            cursor: Some(cursor_text(&self.after)),
            batches: self.batches,
            rows: self.rows,
        }
    }
}

/// A key value as the JSON text the ledger keeps as a cursor.
pub fn cursor_text(v: &Value) -> String {
    match v {
        Value::Int(i) => serde_json::json!(i).to_string(),
        Value::Text(s) => serde_json::json!(s).to_string(),
        Value::Uuid(u) => serde_json::json!(u.as_simple().to_string()).to_string(),
        Value::Float(f) => serde_json::json!(f).to_string(),
        other => serde_json::json!(other.to_string()).to_string(),
    }
}

/// A cursor read back from its JSON text.
pub fn cursor_value(text: &str) -> Value {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Number(n)) if n.is_i64() => Value::Int(n.as_i64().unwrap_or(0)),
        Ok(serde_json::Value::Number(n)) => Value::Float(n.as_f64().unwrap_or(0.0)),
        Ok(serde_json::Value::String(s)) => Value::Text(s),
        _ => Value::Null,
    }
}
