//! `SchemaChange::RewriteTables` on SQLite.
//!
//! Each table is rebuilt as `SELECT … FROM t {join}` into a new table that carries the
//! same named constraints, then swapped in and its indexes recreated by name. Foreign
//! keys must be off while parents and children change type together: the change runs
//! only in a transaction begun by `begin_checking_foreign_keys_at_commit` (enforcement
//! off, `PRAGMA foreign_key_check` before `COMMIT`), and refuses otherwise — with
//! enforcement on, dropping the old parent would fire the children's `ON DELETE` rules.

use rusqlite::Connection as Raw;

use super::ddl::{create_table_sql, current_definition};
use super::introspect;
use super::{failure_on, statement_error};
use crate::backend::{DbError, TableRewrite};

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

pub fn rewrite_tables(raw: &Raw, rewrites: &[TableRewrite]) -> Result<Vec<String>, DbError> {
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
    Ok(ran)
}
