//! Table rewrites on SQLite: `PrepareRewrite`, `SwapRewritten`, and `RewriteTables`
//! (both in one transaction).
//!
//! Preparing a table builds its new version under the staged name
//! (`rewrite_plan::staged_name`) as `SELECT … FROM t {join}`, with the same named primary
//! key, unique constraints, foreign keys and CHECK constraints (every key column NOT
//! NULL), as SQLite declares them in `CREATE TABLE` (their
//! names need not be unique in the database); a foreign key into a table of the rewrite
//! points at that table's staged copy. The old table is not touched.
//!
//! Swapping drops the old tables (children first) and renames each copy to its table's
//! name. SQLite 3.26 and later, with `legacy_alter_table` off, rewrites the `REFERENCES`
//! of other tables as a table is renamed, so the copies' keys end up pointing at the final
//! names. Plain indexes and triggers are created last from their stored SQL: SQLite cannot
//! rename an index, and index names are unique in the whole database, so they cannot be
//! built on a copy under their own names while the old table still has them.
//!
//! Foreign keys must be off while tables are dropped and copied: every change here runs
//! only in a transaction begun by `begin_checking_foreign_keys_at_commit` (enforcement
//! off, the keys checked before `COMMIT`), and refuses otherwise — with enforcement on,
//! dropping an old parent would fire its children's `ON DELETE` rules. Each change says
//! which keys its commit must check (see `deferred_keys`).

use rusqlite::Connection as Raw;

use super::ddl::{create_table_sql, current_definition, kept_checks, quote, with_checks};
use super::introspect;
use super::{failure_on, statement_error};
use crate::backend::rewrite_plan::staged_name;
use crate::backend::{DbError, ForeignKeyInfo, TableRewrite};
use std::collections::{BTreeMap, BTreeSet};

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

/// What a rewrite change ran, and the foreign keys its commit must check.
pub type Rewritten = (Vec<String>, Vec<OwedKey>);

/// The refusal outside a transaction that checks foreign keys at commit.
pub fn needs_keys_checked_at_commit() -> DbError {
    DbError::unsupported(
        "rewriting tables on SQLite needs a transaction that checks foreign keys at commit: \
         run it in a step declared with #{ foreign_keys: \"at_commit\" }",
    )
}

fn require_keys_checked_at_commit(raw: &Raw) -> Result<(), DbError> {
    let fk_enforced: bool = raw
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .map_err(|e| statement_error(e, "PRAGMA foreign_keys"))?;
    if fk_enforced || raw.is_autocommit() {
        return Err(needs_keys_checked_at_commit());
    }
    Ok(())
}

/// The keys a prepared copy can break: every key into the copy, and every key of the
/// copy over a column the rewrite changes or into another staged copy. Keys over columns
/// copied unchanged into tables outside the rewrite hold as they did before.
fn keys_of_copy(
    raw: &Raw,
    copy: &str,
    changed: &BTreeSet<&str>,
    staged: &BTreeSet<String>,
) -> Result<Vec<OwedKey>, DbError> {
    let mut keys = introspect::all_foreign_keys(raw)?;
    keys.retain(|(table, key)| {
        let into_copy = key.referenced_table == copy;
        let of_copy = table == copy
            && (key.columns.iter().any(|c| changed.contains(c.as_str()))
                || staged.contains(&key.referenced_table));
        into_copy || of_copy
    });
    Ok(keys)
}

/// Builds the staged copy of `rw.table` (see the module documentation); `set` names the
/// tables of the whole rewrite, `discard` stale copies to drop first. Returns, beside
/// the statements and the keys owed, the rows copied.
pub fn prepare(
    raw: &Raw,
    rw: &TableRewrite,
    set: &[String],
    discard: &[String],
) -> Result<(Rewritten, u64), DbError> {
    require_keys_checked_at_commit(raw)?;
    let mut ran = Vec::new();
    let copy = staged_name(&rw.table);
    for stale in discard.iter().chain([&copy]) {
        run(
            raw,
            format!("DROP TABLE IF EXISTS {}", quote(stale)),
            &mut ran,
        )?;
    }
    let mut def = current_definition(raw, &rw.table)?;
    for c in &rw.columns {
        let col = def
            .columns
            .iter_mut()
            .find(|d| d.name == c.column)
            .ok_or_else(|| {
                DbError::other(format!("table {} has no column {}", rw.table, c.column))
            })?;
        col.data_type = c.data_type.clone();
        // The old integer sequence goes with the old type.
        col.auto_increment = false;
    }
    let staged: BTreeSet<String> = set.iter().map(|t| staged_name(t)).collect();
    for key in &mut def.foreign_keys {
        if set.contains(&key.referenced_table) {
            key.referenced_table = staged_name(&key.referenced_table);
        }
    }
    let value_of = |column: &str| match rw.columns.iter().find(|r| r.column == column) {
        Some(r) => r.value.clone(),
        None => format!("t.{}", quote(column)),
    };
    let columns: Vec<String> = def.columns.iter().map(|c| quote(&c.name)).collect();
    let values: Vec<String> = def.columns.iter().map(|c| value_of(&c.name)).collect();
    // Insert in primary-key order: a new UUID key in random order would make every row
    // land on a different page of the key's B-tree.
    let order: Vec<String> = def
        .primary_key
        .as_ref()
        .map(|(_, cols)| cols.iter().map(|c| value_of(c)).collect())
        .unwrap_or_default();
    let order_by = if order.is_empty() {
        String::new()
    } else {
        format!(" ORDER BY {}", order.join(", "))
    };
    let before = count(raw, &rw.table)?;
    let checks = kept_checks(raw, &rw.table, &def)?;
    run(
        raw,
        with_checks(create_table_sql(&def, &copy)?, &checks),
        &mut ran,
    )?;
    let copied = run(
        raw,
        format!(
            "INSERT INTO {} ({}) SELECT {} FROM {} AS t {}{order_by}",
            quote(&copy),
            columns.join(", "),
            values.join(", "),
            quote(&rw.table),
            rw.join
        ),
        &mut ran,
    )? as i64;
    if copied != before {
        return Err(DbError::other(format!(
            "rewriting {} would keep {copied} of its {before} rows: the join must match every row exactly once",
            rw.table
        )));
    }
    let changed = rw.columns.iter().map(|c| c.column.as_str()).collect();
    let owed = keys_of_copy(raw, &copy, &changed, &staged)?;
    Ok(((ran, owed), copied as u64))
}

/// Swaps the staged copies of `tables` (parents first) in; the commit must check the
/// keys from tables outside the set into it (they now point at the new rows).
pub fn swap(
    raw: &Raw,
    tables: &[String],
    copied: &BTreeMap<String, u64>,
) -> Result<Rewritten, DbError> {
    swap_copies(raw, tables, Some(copied))
}

/// `recount` (the rows each copy was made with, where its step recorded them; a copy not
/// in it is counted): check that no table gained or lost rows since its copy was made
/// (in another transaction).
fn swap_copies(
    raw: &Raw,
    tables: &[String],
    recount: Option<&BTreeMap<String, u64>>,
) -> Result<Rewritten, DbError> {
    require_keys_checked_at_commit(raw)?;
    let mut ran = Vec::new();
    let mut dependents = Vec::new();
    for t in tables {
        let copy = staged_name(t);
        if introspect::create_sql(raw, &copy)?.is_none() {
            return Err(DbError::other(format!(
                "table {t} has no rewritten copy {copy} to swap in: its rewrite has not run"
            )));
        }
        if let Some(recorded) = recount {
            let new = match recorded.get(t) {
                Some(&rows) => rows as i64,
                None => count(raw, &copy)?,
            };
            let old = count(raw, t)?;
            if old != new {
                return Err(DbError::other(format!(
                    "table {t} holds {old} rows but its rewritten copy {new}: the table was \
                     written after its rewrite ran; run that rewrite again"
                )));
            }
        }
        dependents.extend(
            introspect::dependent_sql(raw, t)?
                .into_iter()
                .map(|(_, _, sql)| sql),
        );
    }
    let set: BTreeSet<&str> = tables.iter().map(String::as_str).collect();
    let copies: BTreeSet<String> = tables.iter().map(|t| staged_name(t)).collect();
    let mut owed = introspect::all_foreign_keys(raw)?;
    owed.retain(|(table, key)| {
        !set.contains(table.as_str())
            && !copies.contains(table)
            && set.contains(key.referenced_table.as_str())
    });
    for t in tables.iter().rev() {
        run(raw, format!("DROP TABLE {}", quote(t)), &mut ran)?;
    }
    // The renames must carry over into the other copies' REFERENCES (see the module
    // documentation); this is SQLite's default, stated here because it is relied on.
    raw.execute_batch("PRAGMA legacy_alter_table = OFF")
        .map_err(|e| statement_error(e, "PRAGMA legacy_alter_table = OFF"))?;
    for t in tables {
        run(
            raw,
            format!(
                "ALTER TABLE {} RENAME TO {}",
                quote(&staged_name(t)),
                quote(t)
            ),
            &mut ran,
        )?;
    }
    for sql in dependents {
        run(raw, sql, &mut ran)?;
    }
    Ok((ran, owed))
}

/// `RewriteTables`: every table prepared (parents first, as `rewrite_plan::ordered`
/// returns them), then swapped in, in the caller's one transaction. The keys owed by the
/// copies are named by the tables' final names, which they have when the commit checks.
pub fn rewrite_tables(raw: &Raw, ordered: &[TableRewrite]) -> Result<Rewritten, DbError> {
    let set: Vec<String> = ordered.iter().map(|r| r.table.clone()).collect();
    let mut ran = Vec::new();
    let mut owed = Vec::new();
    for rw in ordered {
        let ((r, o), _) = prepare(raw, rw, &set, &[])?;
        ran.extend(r);
        owed.extend(o);
    }
    let (r, o) = swap_copies(raw, &set, None)?;
    ran.extend(r);
    let finals: BTreeMap<String, String> =
        set.iter().map(|t| (staged_name(t), t.clone())).collect();
    let final_name = |name: &mut String| {
        if let Some(f) = finals.get(name.as_str()) {
            *name = f.clone();
        }
    };
    for (table, key) in &mut owed {
        final_name(table);
        final_name(&mut key.referenced_table);
    }
    owed.extend(o);
    Ok((ran, owed))
}
