//! What the commit of a transaction begun by `begin_checking_foreign_keys_at_commit`
//! checks.
//!
//! Enforcement is off in such a transaction, so the commit must prove every foreign key
//! the transaction could have broken. The database satisfied its keys when the
//! transaction began (Ferry's connections always enforce them), so only keys that touch
//! what the transaction changed need checking:
//!
//! - rows written to a table (seen by SQLite's update hook): every key from that table
//!   and every key into it;
//! - a table rewrite (`RewriteTables`): the keys into the rewritten tables and the keys
//!   over the columns it changed; every other column is copied unchanged, so keys over
//!   those hold as before (a million-row rewrite then checks one key per child table,
//!   not all of them);
//! - anything the hook cannot see (DDL through `execute`, `execute_batch`, a `DELETE`
//!   of a whole table, writes to `WITHOUT ROWID` tables): the whole database, with
//!   `PRAGMA foreign_key_check`.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::hooks::Action;
use rusqlite::Connection as Raw;

use super::ddl::{check_foreign_keys, quote};
use super::introspect;
use super::statement_error;
use crate::backend::{DbError, ForeignKeyInfo};

/// The tables written while the hook is on, and how many rows it saw.
#[derive(Default)]
struct Seen {
    tables: Mutex<BTreeSet<String>>,
    rows: AtomicU64,
}

/// The checks owed by the open deferred transaction.
pub struct DeferredKeys {
    whole: bool,
    seen: Arc<Seen>,
    /// `(child table, key)` pairs a rewrite asked for.
    keys: Vec<(String, ForeignKeyInfo)>,
}

impl DeferredKeys {
    /// Starts watching writes on `raw`.
    pub fn begin(raw: &Raw) -> DeferredKeys {
        // The update hook does not see writes to WITHOUT ROWID tables.
        let without_rowid: i64 = raw
            .query_row(
                "SELECT COUNT(*) FROM pragma_table_list WHERE wr <> 0",
                [],
                |r| r.get(0),
            )
            .unwrap_or(1);
        let keys = DeferredKeys {
            whole: without_rowid != 0,
            seen: Arc::default(),
            keys: Vec::new(),
        };
        keys.watch(raw);
        keys
    }

    /// (Re)installs the update hook.
    pub fn watch(&self, raw: &Raw) {
        let seen = Arc::clone(&self.seen);
        raw.update_hook(Some(
            move |_: Action, _db: &str, table: &str, _rowid: i64| {
                seen.rows.fetch_add(1, Ordering::Relaxed);
                let mut tables = seen.tables.lock().unwrap_or_else(|e| e.into_inner());
                if !tables.contains(table) {
                    tables.insert(table.to_string());
                }
            },
        ));
    }

    /// Stops watching (the rewrite's own inserts need no hook: it states its checks).
    pub fn unwatch(raw: &Raw) {
        raw.update_hook(None::<fn(Action, &str, &str, i64)>);
    }

    /// Rows the hook has seen so far.
    pub fn rows_seen(&self) -> u64 {
        self.seen.rows.load(Ordering::Relaxed)
    }

    /// Something changed that the hook cannot see: check everything at commit.
    pub fn check_everything(&mut self) {
        self.whole = true;
    }

    /// Rows were written to `table` (also when the hook might not see them).
    pub fn touch(&self, table: &str) {
        let mut tables = self.seen.tables.lock().unwrap_or_else(|e| e.into_inner());
        tables.insert(table.to_string());
    }

    /// Keys a rewrite may have broken.
    pub fn expect(&mut self, keys: Vec<(String, ForeignKeyInfo)>) {
        self.keys.extend(keys);
    }

    /// Runs the owed checks; an error lists the first violations.
    pub fn check(&self, raw: &Raw) -> Result<(), DbError> {
        if self.whole {
            return check_foreign_keys(raw);
        }
        let touched: BTreeSet<String> = self
            .seen
            .tables
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let mut owed: Vec<(String, ForeignKeyInfo)> = Vec::new();
        if !touched.is_empty() {
            owed = introspect::all_foreign_keys(raw)?;
            owed.retain(|(table, key)| {
                touched.contains(table) || touched.contains(&key.referenced_table)
            });
        }
        owed.extend(self.keys.iter().cloned());
        let mut done = BTreeSet::new();
        let mut violations = Vec::new();
        for (table, key) in owed {
            if !done.insert((table.clone(), key.name.clone(), key.columns.clone())) {
                continue;
            }
            violations.extend(violations_of(raw, &table, &key)?);
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(DbError::statement(
                format!(
                    "the step left foreign key violation(s): {}",
                    violations.join("; ")
                ),
                "foreign key check at commit",
            )
            .with_kind(crate::backend::DbErrorKind::ForeignKeyViolation))
        }
    }
}

/// The rows of `table` whose `key` points at no parent row, as one line (none: `None`);
/// a key with a NULL column is satisfied, as SQLite's MATCH SIMPLE has it.
fn violations_of(raw: &Raw, table: &str, key: &ForeignKeyInfo) -> Result<Option<String>, DbError> {
    let not_null: Vec<String> = key
        .columns
        .iter()
        .map(|c| format!("c.{} IS NOT NULL", quote(c)))
        .collect();
    let matches: Vec<String> = key
        .columns
        .iter()
        .zip(&key.referenced_columns)
        .map(|(c, p)| format!("p.{} = c.{}", quote(p), quote(c)))
        .collect();
    let sql = format!(
        "SELECT COUNT(*) FROM {} AS c WHERE {} AND NOT EXISTS (SELECT 1 FROM {} AS p WHERE {})",
        quote(table),
        not_null.join(" AND "),
        quote(&key.referenced_table),
        matches.join(" AND ")
    );
    let orphans: i64 = raw
        .query_row(&sql, [], |r| r.get(0))
        .map_err(|e| statement_error(e, &sql))?;
    Ok((orphans > 0).then(|| {
        format!(
            "{orphans} rows of {table} point at no {} row ({} → {}.{})",
            key.referenced_table,
            key.columns.join(", "),
            key.referenced_table,
            key.referenced_columns.join(", ")
        )
    }))
}
