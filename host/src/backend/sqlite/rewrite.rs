//! `SchemaChange::RewriteTables` on SQLite.
//!
//! Each table is rebuilt as `SELECT … FROM t {join}` into a new table that carries the
//! same named constraints, then swapped in and its indexes recreated by name. Foreign
//! keys must be off while parents and children change type together: the change runs
//! only in a transaction begun by `begin_checking_foreign_keys_at_commit` (enforcement
//! off, the keys checked before `COMMIT`), and refuses otherwise — with enforcement on,
//! dropping the old parent would fire the children's `ON DELETE` rules. The commit
//! checks only the keys the rewrite can break (`keys_to_check`, see `deferred_keys`).

use rusqlite::Connection as Raw;

use super::ddl::{create_table_sql, current_definition};
use super::introspect;
use super::{failure_on, statement_error};
use crate::backend::{DbError, ForeignKeyInfo, TableRewrite};
use std::collections::{BTreeMap, BTreeSet};

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn run(raw: &Raw, sql: String, ran: &mut Vec<String>) -> Result<usize, DbError> {
    let start = std::time::Instant::now();
    let n = raw
        .execute(&sql, [])
        .map_err(|e| failure_on(raw, e, &sql, &[]))?;
    tracing::debug!(elapsed = ?start.elapsed(), rows = n, "{sql}");
    ran.push(sql);
    Ok(n)
}

fn count(raw: &Raw, table: &str) -> Result<i64, DbError> {
    let sql = format!("SELECT COUNT(*) FROM {}", quote(table));
    raw.query_row(&sql, [], |r| r.get(0))
        .map_err(|e| statement_error(e, &sql))
}

/// A foreign key with the table that holds it.
pub type OwedKey = (String, ForeignKeyInfo);

/// The keys a rewrite can break: every key into a rewritten table, and every key of a
/// rewritten table over a column it changes. Keys over columns copied unchanged hold
/// as they did before.
fn keys_to_check(raw: &Raw, rewrites: &[TableRewrite]) -> Result<Vec<OwedKey>, DbError> {
    let changed: BTreeMap<&str, BTreeSet<&str>> = rewrites
        .iter()
        .map(|rw| {
            let columns = rw.columns.iter().map(|c| c.column.as_str()).collect();
            (rw.table.as_str(), columns)
        })
        .collect();
    let mut keys = Vec::new();
    for table in introspect::tables(raw, "%")? {
        for key in introspect::foreign_keys(raw, &table)? {
            let into_set = changed.contains_key(key.referenced_table.as_str());
            let over_changed = changed
                .get(table.as_str())
                .is_some_and(|cols| key.columns.iter().any(|c| cols.contains(c.as_str())));
            if into_set || over_changed {
                keys.push((table.clone(), key));
            }
        }
    }
    Ok(keys)
}

/// Rewrites the tables; returns the statements run and the foreign keys the commit must
/// check (see [`keys_to_check`]).
pub fn rewrite_tables(
    raw: &Raw,
    rewrites: &[TableRewrite],
) -> Result<(Vec<String>, Vec<OwedKey>), DbError> {
    let fk_enforced: bool = raw
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .map_err(|e| statement_error(e, "PRAGMA foreign_keys"))?;
    if fk_enforced || raw.is_autocommit() {
        return Err(DbError::Unsupported(
            "rewriting tables on SQLite needs a transaction that checks foreign keys at commit: \
             run it in a step declared with #{ foreign_keys: \"at_commit\" }"
                .into(),
        ));
    }
    let owed = keys_to_check(raw, rewrites)?;
    let mut ran = Vec::new();
    for rw in rewrites {
        let mut def = current_definition(raw, &rw.table)?;
        for c in &rw.columns {
            let col = def
                .columns
                .iter_mut()
                .find(|d| d.name == c.column)
                .ok_or_else(|| {
                    DbError::Other(format!("table {} has no column {}", rw.table, c.column))
                })?;
            col.data_type = c.data_type.clone();
            // The old integer sequence goes with the old type.
            col.auto_increment = false;
        }
        let indexes: Vec<String> = introspect::dependent_sql(raw, &rw.table)?
            .into_iter()
            .map(|(_, _, sql)| sql)
            .collect();
        let tmp = format!("{}__ferry_new", rw.table);
        let columns: Vec<String> = def.columns.iter().map(|c| quote(&c.name)).collect();
        let values: Vec<String> = def
            .columns
            .iter()
            .map(|c| match rw.columns.iter().find(|r| r.column == c.name) {
                Some(r) => r.value.clone(),
                None => format!("t.{}", quote(&c.name)),
            })
            .collect();
        // Insert in primary-key order: a new UUID key in random order would make
        // every row land on a different page of the key's B-tree.
        let order: Vec<String> = def
            .primary_key
            .as_ref()
            .map(|(_, cols)| {
                cols.iter()
                    .map(|c| match rw.columns.iter().find(|r| &r.column == c) {
                        Some(r) => r.value.clone(),
                        None => format!("t.{}", quote(c)),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let order_by = if order.is_empty() {
            String::new()
        } else {
            format!(" ORDER BY {}", order.join(", "))
        };
        let before = count(raw, &rw.table)?;
        run(
            raw,
            format!("DROP TABLE IF EXISTS {}", quote(&tmp)),
            &mut ran,
        )?;
        run(raw, create_table_sql(&def, &tmp)?, &mut ran)?;
        let copied = run(
            raw,
            format!(
                "INSERT INTO {} ({}) SELECT {} FROM {} AS t {}{order_by}",
                quote(&tmp),
                columns.join(", "),
                values.join(", "),
                quote(&rw.table),
                rw.join
            ),
            &mut ran,
        )? as i64;
        if copied != before {
            return Err(DbError::Other(format!(
                "rewriting {} would keep {copied} of its {before} rows: the join must match every row exactly once",
                rw.table
            )));
        }
        run(raw, format!("DROP TABLE {}", quote(&rw.table)), &mut ran)?;
        run(
            raw,
            format!("ALTER TABLE {} RENAME TO {}", quote(&tmp), quote(&rw.table)),
            &mut ran,
        )?;
        for sql in indexes {
            run(raw, sql, &mut ran)?;
        }
    }
    // Foreign keys are checked once, at commit (see the module documentation).
    Ok((ran, owed))
}
