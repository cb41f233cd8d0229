//! Table rewrites on PostgreSQL: `PrepareRewrite`, `SwapRewritten`, and `RewriteTables`
//! (both in one transaction).
//!
//! Preparing a table copies it (with its defaults, identity and CHECK constraints, and
//! the comments on it and its columns, which daf_butler writes from its table specs)
//! through the join into a new table under its staged name
//! (`rewrite_plan::staged_name`; `INSERT … SELECT`, which beats an `UPDATE` in place that
//! writes every row twice), then builds the primary key, unique constraints and plain
//! indexes after the data (once, instead of maintaining them row by row) under staged
//! names — index names, constraint indexes included, are unique per schema while the old
//! table still holds the final ones — adds the foreign keys under their final names
//! (constraint names are unique per table; a key into a table of the rewrite references
//! that table's copy, and is validated against it), and analyzes the copy. The old table
//! is not touched.
//!
//! Swapping locks the old tables against writers (see [`lock_out_writers`]; the rewrite
//! in one transaction does so before its first copy) and checks that each still holds
//! as many rows as its copy (the count its step recorded; a copy whose step recorded
//! none is counted before the lock), hands each serial sequence a kept column still
//! draws from to the copy, drops the old tables (children first), renames each copy to
//! its table's name — foreign keys follow a renamed table, since they refer to it by
//! OID — and renames constraints, indexes and identity sequences to their final names:
//! catalogue changes only. Keys from tables outside the set into it are dropped before
//! and added back (and so validated) after.

use super::core_share::CoreShare;
use super::ddl::{ident, pg_type};
use crate::backend::rewrite_plan::staged_name;
use crate::backend::{Connection, DbError, ForeignKeyInfo, KeyGenerator, TableRewrite, Value};
use std::collections::{BTreeMap, BTreeSet};

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

/// Before a statement that can use parallel workers: limits them to this step's share
/// of the cores when it runs beside other steps (`core_share.rs`; the limit is a
/// performance setting of the transaction, not recorded in the statements run).
fn take_share(conn: &mut dyn Connection, share: Option<&CoreShare>) -> Result<(), DbError> {
    if let Some(share) = share {
        conn.query(&share.statement(), &[])?;
    }
    Ok(())
}

fn count(conn: &mut dyn Connection, table: &str) -> Result<i64, DbError> {
    let rows = conn.query(&format!("SELECT COUNT(*) FROM {}", ident(table)), &[])?;
    Ok(match rows.rows.first().and_then(|r| r.first()) {
        Some(Value::Int(n)) => *n,
        _ => 0,
    })
}

fn texts(rows: crate::backend::Rows) -> Vec<Vec<String>> {
    rows.rows
        .into_iter()
        .map(|r| {
            r.into_iter()
                .map(|v| match v {
                    Value::Text(t) => t,
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

/// The comment on a table (`COMMENT ON TABLE`), if it has one.
fn table_comment(conn: &mut dyn Connection, table: &str) -> Result<Option<String>, DbError> {
    let rows = conn.query(
        "SELECT obj_description(c.oid, 'pg_class') FROM pg_class c \
         JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relname = ?",
        &[Value::Text(table.into())],
    )?;
    Ok(match rows.rows.first().and_then(|r| r.first()) {
        Some(Value::Text(text)) => Some(text.clone()),
        _ => None,
    })
}

/// Identity columns of a table (`GENERATED … AS IDENTITY`), as the backend's
/// [`Introspect::key_generators`](crate::backend::Introspect::key_generators) reports them.
fn identity_columns(conn: &mut dyn Connection, table: &str) -> Result<Vec<String>, DbError> {
    Ok(conn
        .key_generators(table)?
        .into_iter()
        .filter(|(_, generator)| matches!(generator, KeyGenerator::Identity { .. }))
        .map(|(column, _)| column)
        .collect())
}

/// `(column, sequence)` for each identity or serial column of a table.
fn sequences(conn: &mut dyn Connection, table: &str) -> Result<Vec<(String, String)>, DbError> {
    let rows = conn.query(
        "SELECT a.attname::text, s.relname::text FROM pg_class s \
         JOIN pg_depend d ON d.classid = 'pg_class'::regclass AND d.objid = s.oid \
              AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') \
         JOIN pg_class t ON t.oid = d.refobjid \
         JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = d.refobjsubid \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         WHERE s.relkind = 'S' AND n.nspname = current_schema() AND t.relname = ?",
        &[Value::Text(table.into())],
    )?;
    Ok(texts(rows)
        .into_iter()
        .map(|mut r| {
            let sequence = r.remove(1);
            (r.remove(0), sequence)
        })
        .collect())
}

/// `(sequence, copy's column)` for each serial sequence owned by a column of `table`
/// from whose default a column of the staged copy still draws (the copy's default was
/// copied by `LIKE … INCLUDING DEFAULTS`; a column that changed type dropped its default).
fn kept_serials(conn: &mut dyn Connection, table: &str) -> Result<Vec<(String, String)>, DbError> {
    let rows = conn.query(
        "SELECT s.relname::text, ca.attname::text FROM pg_class t \
         JOIN pg_namespace n ON n.oid = t.relnamespace \
         JOIN pg_depend o ON o.classid = 'pg_class'::regclass AND o.refclassid = 'pg_class'::regclass \
              AND o.refobjid = t.oid AND o.deptype = 'a' \
         JOIN pg_class s ON s.oid = o.objid AND s.relkind = 'S' \
         JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = ? \
         JOIN pg_attrdef ad ON ad.adrelid = c.oid \
         JOIN pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid \
              AND d.refclassid = 'pg_class'::regclass AND d.refobjid = s.oid \
         JOIN pg_attribute ca ON ca.attrelid = c.oid AND ca.attnum = ad.adnum \
         WHERE n.nspname = current_schema() AND t.relname = ?",
        &[Value::Text(staged_name(table)), Value::Text(table.into())],
    )?;
    Ok(texts(rows)
        .into_iter()
        .map(|mut r| {
            let column = r.remove(1);
            (r.remove(0), column)
        })
        .collect())
}

fn add_foreign_key(
    conn: &mut dyn Connection,
    table: &str,
    k: &ForeignKeyInfo,
    references: &str,
    ran: &mut Vec<String>,
) -> Result<(), DbError> {
    exec(
        conn,
        format!(
            "ALTER TABLE {} ADD CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({}) ON DELETE {}",
            ident(table),
            ident(&k.name),
            list(&k.columns),
            ident(references),
            list(&k.referenced_columns),
            k.on_delete
        ),
        ran,
    )?;
    Ok(())
}

/// For this transaction only: a few statements over millions of rows. JIT would compile
/// each (hundreds of ms) to save nothing on a copy bound by writing; hash joins through
/// the map and the key and index builds stay in memory instead of spilling to temporary
/// files.
fn bulk_settings(conn: &mut dyn Connection, ran: &mut Vec<String>) -> Result<(), DbError> {
    for setting in [
        "jit = off",
        "work_mem = '128MB'",
        "maintenance_work_mem = '256MB'",
    ] {
        exec(conn, format!("SET LOCAL {setting}"), ran)?;
    }
    Ok(())
}

/// Builds the staged copy of `rw.table` (see the module documentation); `set` names the
/// tables of the whole rewrite, `discard` stale copies to drop first; `share`, on a
/// pooled connection, limits the parallel workers beside other steps. Returns the
/// statements run and the rows copied.
pub fn prepare(
    conn: &mut dyn Connection,
    share: Option<&CoreShare>,
    rw: &TableRewrite,
    set: &[String],
    discard: &[String],
) -> Result<(Vec<String>, u64), DbError> {
    let mut ran = Vec::new();
    bulk_settings(conn, &mut ran)?;
    let t = &rw.table;
    let copy = staged_name(t);
    for stale in discard.iter().chain([&copy]) {
        exec(
            conn,
            format!("DROP TABLE IF EXISTS {}", ident(stale)),
            &mut ran,
        )?;
    }
    let columns = conn.columns(t)?;
    if columns.is_empty() {
        return Err(DbError::other(format!("no table named {t}")));
    }
    for c in &rw.columns {
        if !columns.iter().any(|col| col.name == c.column) {
            return Err(DbError::other(format!(
                "table {t} has no column {}",
                c.column
            )));
        }
    }
    let primary_key = conn.primary_key(t)?;
    let uniques = conn.unique_constraints(t)?;
    let indexes = conn.indexes(t)?;
    let mut foreign_keys = conn.foreign_keys(t)?;
    // Added in the order of the tables they reference: each takes a lock on its table
    // until the commit, and steps running at the same time (`script::parallel_steps`)
    // that take them in one order cannot deadlock.
    foreign_keys
        .sort_by(|a, b| (&a.referenced_table, &a.name).cmp(&(&b.referenced_table, &b.name)));
    let identities = identity_columns(conn, t)?;
    take_share(conn, share)?;
    let before = count(conn, t)?;

    exec(
        conn,
        format!(
            "CREATE TABLE {} (LIKE {} INCLUDING DEFAULTS INCLUDING IDENTITY INCLUDING CONSTRAINTS \
             INCLUDING COMMENTS)",
            ident(&copy),
            ident(t)
        ),
        &mut ran,
    )?;
    // LIKE copies the columns' comments, not the table's own.
    if let Some(comment) = table_comment(conn, t)? {
        exec(
            conn,
            format!(
                "COMMENT ON TABLE {} IS {}",
                ident(&copy),
                Value::Text(comment)
            ),
            &mut ran,
        )?;
    }
    for c in &rw.columns {
        let col = ident(&c.column);
        let alter =
            |rest: String| format!("ALTER TABLE {} ALTER COLUMN {col} {rest}", ident(&copy));
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
    let kept_identities: Vec<&String> = identities
        .iter()
        .filter(|i| !rw.columns.iter().any(|c| &c.column == *i))
        .collect();
    let copied = exec(
        conn,
        format!(
            "INSERT INTO {} ({}){} SELECT {} FROM {} AS t {}",
            ident(&copy),
            list(&names),
            if kept_identities.is_empty() {
                ""
            } else {
                " OVERRIDING SYSTEM VALUE"
            },
            values.join(", "),
            ident(t),
            rw.join
        ),
        &mut ran,
    )? as i64;
    if copied != before {
        return Err(DbError::other(format!(
            "rewriting {t} would keep {copied} of its {before} rows: the join must match every row exactly once"
        )));
    }
    for id in kept_identities {
        // The copied identity starts afresh: continue after the largest value.
        exec(
            conn,
            format!(
                "SELECT setval(pg_get_serial_sequence({}, {}), GREATEST(COALESCE(MAX({}), 0), 1)) FROM {}",
                Value::Text(ident(&copy)),
                Value::Text(id.clone()),
                ident(id),
                ident(&copy)
            ),
            &mut ran,
        )?;
    }
    let add_constraint = |name: &str, kind: &str, columns: &[String]| {
        format!(
            "ALTER TABLE {} ADD CONSTRAINT {} {kind} ({})",
            ident(&copy),
            ident(&staged_name(name)),
            list(columns)
        )
    };
    if let Some(pk) = primary_key {
        take_share(conn, share)?;
        exec(
            conn,
            add_constraint(&pk.name, "PRIMARY KEY", &pk.columns),
            &mut ran,
        )?;
    }
    for u in uniques {
        take_share(conn, share)?;
        exec(
            conn,
            add_constraint(&u.name, "UNIQUE", &u.columns),
            &mut ran,
        )?;
    }
    for i in indexes {
        take_share(conn, share)?;
        exec(
            conn,
            format!(
                "CREATE {}INDEX {} ON {} ({})",
                if i.unique { "UNIQUE " } else { "" },
                ident(&staged_name(&i.name)),
                ident(&copy),
                list(&i.columns)
            ),
            &mut ran,
        )?;
    }
    for k in &foreign_keys {
        let references = if set.contains(&k.referenced_table) {
            staged_name(&k.referenced_table)
        } else {
            k.referenced_table.clone()
        };
        take_share(conn, share)?;
        add_foreign_key(conn, &copy, k, &references, &mut ran)?;
    }
    exec(conn, format!("ANALYZE {}", ident(&copy)), &mut ran)?;
    Ok((ran, copied as u64))
}

/// What the swap renames for one table: `(staged, final)` pairs.
struct FinalNames {
    constraints: Vec<(String, String)>,
    indexes: Vec<(String, String)>,
    sequences: Vec<(String, String)>,
}

fn final_names(conn: &mut dyn Connection, t: &str) -> Result<FinalNames, DbError> {
    let staged = |name: String| (staged_name(&name), name);
    let mut constraints: Vec<(String, String)> = conn
        .primary_key(t)?
        .map(|k| staged(k.name))
        .into_iter()
        .collect();
    constraints.extend(
        conn.unique_constraints(t)?
            .into_iter()
            .map(|k| staged(k.name)),
    );
    let indexes = conn
        .indexes(t)?
        .into_iter()
        .map(|i| staged(i.name))
        .collect();
    // The copy's identity columns got sequences of their own: give them the old names.
    let old = sequences(conn, t)?;
    let sequences = sequences(conn, &staged_name(t))?
        .into_iter()
        .filter_map(|(column, new)| {
            old.iter()
                .find(|(c, _)| *c == column)
                .map(|(_, name)| (new, name.clone()))
        })
        .collect();
    Ok(FinalNames {
        constraints,
        indexes,
        sequences,
    })
}

/// Waits for the transactions writing to `tables` to end and keeps new ones out until
/// this transaction ends (`SHARE` mode lets readers on): without it, a row committed
/// between the check that a table still matches its copy (or the copy itself, in one
/// transaction) and the table's `DROP` would be dropped with it.
fn lock_out_writers(
    conn: &mut dyn Connection,
    tables: &[String],
    ran: &mut Vec<String>,
) -> Result<(), DbError> {
    exec(
        conn,
        format!("LOCK TABLE {} IN SHARE MODE", list(tables)),
        ran,
    )?;
    Ok(())
}

/// Swaps the staged copies of `tables` (parents first) in (see the module documentation).
/// With `recount` (the rows each copy was made with, where its step recorded them), check
/// first that no table gained or lost rows since its copy was made.
fn swap_copies(
    conn: &mut dyn Connection,
    tables: &[String],
    recount: Option<&BTreeMap<String, u64>>,
) -> Result<Vec<String>, DbError> {
    let mut ran = Vec::new();
    // A copy whose step did not record its rows (an earlier Ferry's) is counted, before
    // the old tables are locked: nothing but its own step writes it, so writers stay
    // locked out for the old tables' counts alone.
    let mut copied = Vec::with_capacity(tables.len());
    for t in tables {
        let copy = staged_name(t);
        if !conn.table_exists(&copy)? {
            return Err(DbError::other(format!(
                "table {t} has no rewritten copy {copy} to swap in: its rewrite has not run"
            )));
        }
        if let Some(recorded) = recount {
            copied.push(match recorded.get(t) {
                Some(&rows) => rows as i64,
                None => count(conn, &copy)?,
            });
        }
    }
    if recount.is_some() {
        lock_out_writers(conn, tables, &mut ran)?;
        for (t, new) in tables.iter().zip(copied) {
            let old = count(conn, t)?;
            if old != new {
                return Err(DbError::other(format!(
                    "table {t} holds {old} rows but its rewritten copy {new}: the table was \
                     written after its rewrite ran; run that rewrite again"
                )));
            }
        }
    }
    let mut renames = Vec::with_capacity(tables.len());
    for t in tables {
        renames.push(final_names(conn, t)?);
    }
    let set: BTreeSet<&str> = tables.iter().map(String::as_str).collect();
    let copies: BTreeSet<String> = tables.iter().map(|t| staged_name(t)).collect();
    let mut outside: Vec<(String, ForeignKeyInfo)> = Vec::new();
    for table in conn.tables("%")? {
        if set.contains(table.as_str()) || copies.contains(&table) {
            continue;
        }
        for k in conn.foreign_keys(&table)? {
            if set.contains(k.referenced_table.as_str()) {
                outside.push((table.clone(), k));
            }
        }
    }
    for (table, k) in &outside {
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
    for t in tables.iter().rev() {
        // A serial column the copy keeps draws from a sequence the old table owns, which
        // would block (or, with CASCADE, strip the copy's default on) the drop: the copy
        // takes the sequence over, name and position included. Sequences of columns that
        // changed type go with the old table.
        for (sequence, column) in kept_serials(conn, t)? {
            exec(
                conn,
                format!(
                    "ALTER SEQUENCE {} OWNED BY {}.{}",
                    ident(&sequence),
                    ident(&staged_name(t)),
                    ident(&column)
                ),
                &mut ran,
            )?;
        }
        exec(conn, format!("DROP TABLE {}", ident(t)), &mut ran)?;
    }
    for (t, names) in tables.iter().zip(renames) {
        exec(
            conn,
            format!(
                "ALTER TABLE {} RENAME TO {}",
                ident(&staged_name(t)),
                ident(t)
            ),
            &mut ran,
        )?;
        for (staged, name) in names.constraints {
            // Renames the constraint's index too.
            exec(
                conn,
                format!(
                    "ALTER TABLE {} RENAME CONSTRAINT {} TO {}",
                    ident(t),
                    ident(&staged),
                    ident(&name)
                ),
                &mut ran,
            )?;
        }
        for (staged, name) in names.indexes {
            exec(
                conn,
                format!("ALTER INDEX {} RENAME TO {}", ident(&staged), ident(&name)),
                &mut ran,
            )?;
        }
        for (staged, name) in names.sequences {
            exec(
                conn,
                format!(
                    "ALTER SEQUENCE {} RENAME TO {}",
                    ident(&staged),
                    ident(&name)
                ),
                &mut ran,
            )?;
        }
    }
    for (table, k) in &outside {
        add_foreign_key(conn, table, k, &k.referenced_table, &mut ran)?;
    }
    Ok(ran)
}

/// `SwapRewritten`.
pub fn swap(
    conn: &mut dyn Connection,
    tables: &[String],
    copied: &BTreeMap<String, u64>,
) -> Result<Vec<String>, DbError> {
    swap_copies(conn, tables, Some(copied))
}

/// `RewriteTables`: every table prepared (parents first, as `rewrite_plan::ordered`
/// returns them), then swapped in, in one transaction.
pub fn rewrite_tables(
    conn: &mut dyn Connection,
    ordered: &[TableRewrite],
) -> Result<Vec<String>, DbError> {
    let set: Vec<String> = ordered.iter().map(|r| r.table.clone()).collect();
    let mut ran = Vec::new();
    lock_out_writers(conn, &set, &mut ran)?;
    for rw in ordered {
        ran.extend(prepare(conn, None, rw, &set, &[])?.0);
    }
    ran.extend(swap_copies(conn, &set, None)?);
    Ok(ran)
}
