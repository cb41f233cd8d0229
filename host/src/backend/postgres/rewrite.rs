//! `SchemaChange::RewriteTables` on PostgreSQL.
//!
//! Foreign keys among the set (and from other tables into it) are dropped first and
//! recreated last, so a parent key and its children can change type together. Each
//! table is copied into a new table through the join (`INSERT … SELECT`, which beats
//! an `UPDATE` in place that writes every row twice), swapped in, and given back its
//! primary key, unique constraints and indexes, all by name, after the data is in
//! (building them once is cheaper than maintaining them row by row).

use super::ddl::{ident, pg_type};
use crate::backend::{Connection, DbError, ForeignKeyInfo, TableRewrite, Value};
use std::collections::BTreeSet;

fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| ident(n))
        .collect::<Vec<_>>()
        .join(", ")
}

fn exec(conn: &mut dyn Connection, sql: String, ran: &mut Vec<String>) -> Result<u64, DbError> {
    let n = conn.execute(&sql, &[])?;
    ran.push(sql);
    Ok(n)
}

fn count(conn: &mut dyn Connection, table: &str) -> Result<i64, DbError> {
    let rows = conn.query(&format!("SELECT COUNT(*) FROM {}", ident(table)), &[])?;
    Ok(match rows.rows.first().and_then(|r| r.first()) {
        Some(Value::Int(n)) => *n,
        _ => 0,
    })
}

/// Identity columns of a table (`GENERATED … AS IDENTITY`).
fn identity_columns(conn: &mut dyn Connection, table: &str) -> Result<Vec<String>, DbError> {
    let rows = conn.query(
        "SELECT a.attname::text FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relname = ? AND a.attidentity <> '' AND a.attnum > 0",
        &[Value::Text(table.into())],
    )?;
    Ok(rows
        .rows
        .into_iter()
        .filter_map(|r| match r.into_iter().next() {
            Some(Value::Text(t)) => Some(t),
            _ => None,
        })
        .collect())
}

fn add_foreign_key(
    conn: &mut dyn Connection,
    table: &str,
    k: &ForeignKeyInfo,
    ran: &mut Vec<String>,
) -> Result<(), DbError> {
    exec(
        conn,
        format!(
            "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE {}",
            ident(table),
            ident(&k.name),
            list(&k.columns),
            ident(&k.referenced_table),
            list(&k.referenced_columns),
            k.on_delete
        ),
        ran,
    )?;
    Ok(())
}

pub fn rewrite_tables(
    conn: &mut dyn Connection,
    rewrites: &[TableRewrite],
) -> Result<Vec<String>, DbError> {
    let set: BTreeSet<&str> = rewrites.iter().map(|r| r.table.as_str()).collect();
    let mut ran = Vec::new();
    // For this transaction only: a few statements over millions of rows. JIT would
    // compile each (hundreds of ms) to save nothing on a copy bound by writing; hash
    // joins through the map and the key and index builds stay in memory instead of
    // spilling to temporary files.
    for setting in [
        "jit = off",
        "work_mem = '128MB'",
        "maintenance_work_mem = '256MB'",
    ] {
        exec(conn, format!("SET LOCAL {setting}"), &mut ran)?;
    }

    // Every foreign key that touches the set: the set's own, and other tables' into it.
    let mut foreign_keys: Vec<(String, ForeignKeyInfo)> = Vec::new();
    for table in conn.tables("%")? {
        for k in conn.foreign_keys(&table)? {
            let from_set = set.contains(table.as_str());
            let into_set = set.contains(k.referenced_table.as_str());
            if !from_set && into_set {
                let rw = rewrites
                    .iter()
                    .find(|r| r.table == k.referenced_table)
                    .expect("in the set");
                if let Some(c) = rw
                    .columns
                    .iter()
                    .find(|c| k.referenced_columns.contains(&c.column))
                {
                    return Err(DbError::Unsupported(format!(
                        "{table}.{} references {}.{}, which the rewrite changes; add {table} to the rewrite",
                        k.name, k.referenced_table, c.column
                    )));
                }
            }
            if from_set || into_set {
                foreign_keys.push((table.clone(), k));
            }
        }
    }
    for (table, k) in &foreign_keys {
        exec(
            conn,
            format!(
                "ALTER TABLE {} DROP CONSTRAINT {}",
                ident(table),
                ident(&k.name)
            ),
            &mut ran,
        )?;
    }

    for rw in rewrites {
        let t = &rw.table;
        let columns = conn.columns(t)?;
        if columns.is_empty() {
            return Err(DbError::Other(format!("no table named {t}")));
        }
        for c in &rw.columns {
            if !columns.iter().any(|col| col.name == c.column) {
                return Err(DbError::Other(format!(
                    "table {t} has no column {}",
                    c.column
                )));
            }
        }
        let primary_key = conn.primary_key(t)?;
        let uniques = conn.unique_constraints(t)?;
        let indexes = conn.indexes(t)?;
        let identities = identity_columns(conn, t)?;
        let new = format!("{t}__ferry_new");
        let before = count(conn, t)?;

        exec(
            conn,
            format!("DROP TABLE IF EXISTS {}", ident(&new)),
            &mut ran,
        )?;
        exec(
            conn,
            format!(
                "CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING IDENTITY)",
                ident(&new),
                ident(t)
            ),
            &mut ran,
        )?;
        for c in &rw.columns {
            let col = ident(&c.column);
            let alter =
                |rest: String| format!("ALTER TABLE {} ALTER COLUMN {col} {rest}", ident(&new));
            if identities.contains(&c.column) {
                // The old integer sequence goes with the old type.
                exec(conn, alter("DROP IDENTITY IF EXISTS".into()), &mut ran)?;
            }
            exec(conn, alter("DROP DEFAULT".into()), &mut ran)?;
            exec(
                conn,
                alter(format!("TYPE {} USING NULL", pg_type(&c.data_type))),
                &mut ran,
            )?;
        }
        let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        let values: Vec<String> = columns
            .iter()
            .map(|c| match rw.columns.iter().find(|r| r.column == c.name) {
                Some(r) => r.value.clone(),
                None => format!("t.{}", ident(&c.name)),
            })
            .collect();
        let keeps_identity = identities
            .iter()
            .any(|i| !rw.columns.iter().any(|c| &c.column == i));
        let copied = exec(
            conn,
            format!(
                "INSERT INTO {} ({}){} SELECT {} FROM {} AS t {}",
                ident(&new),
                list(&names),
                if keeps_identity {
                    " OVERRIDING SYSTEM VALUE"
                } else {
                    ""
                },
                values.join(", "),
                ident(t),
                rw.join
            ),
            &mut ran,
        )? as i64;
        if copied != before {
            return Err(DbError::Other(format!(
                "rewriting {t} would keep {copied} of its {before} rows: the join must match every row exactly once"
            )));
        }
        exec(conn, format!("DROP TABLE {}", ident(t)), &mut ran)?;
        exec(
            conn,
            format!("ALTER TABLE {} RENAME TO {}", ident(&new), ident(t)),
            &mut ran,
        )?;
        for id in identities
            .iter()
            .filter(|i| !rw.columns.iter().any(|c| &c.column == *i))
        {
            // The copied identity starts afresh: continue after the largest value.
            exec(
                conn,
                format!(
                    "SELECT setval(pg_get_serial_sequence({}, {}), GREATEST(COALESCE(MAX({}), 0), 1)) FROM {}",
                    Value::Text(ident(t)),
                    Value::Text(id.clone()),
                    ident(id),
                    ident(t)
                ),
                &mut ran,
            )?;
        }
        if let Some(pk) = primary_key {
            exec(
                conn,
                format!(
                    "ALTER TABLE {} ADD CONSTRAINT {} PRIMARY KEY ({})",
                    ident(t),
                    ident(&pk.name),
                    list(&pk.columns)
                ),
                &mut ran,
            )?;
        }
        for u in uniques {
            exec(
                conn,
                format!(
                    "ALTER TABLE {} ADD CONSTRAINT {} UNIQUE ({})",
                    ident(t),
                    ident(&u.name),
                    list(&u.columns)
                ),
                &mut ran,
            )?;
        }
        for i in indexes {
            exec(
                conn,
                format!(
                    "CREATE {}INDEX {} ON {} ({})",
                    if i.unique { "UNIQUE " } else { "" },
                    ident(&i.name),
                    ident(t),
                    list(&i.columns)
                ),
                &mut ran,
            )?;
        }
        exec(conn, format!("ANALYZE {}", ident(t)), &mut ran)?;
    }
    for (table, k) in &foreign_keys {
        add_foreign_key(conn, table, k, &mut ran)?;
    }
    Ok(ran)
}
