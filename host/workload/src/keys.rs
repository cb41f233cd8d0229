//! Rules every rewrite must keep, on any table of the repository: each primary-key
//! column is NOT NULL, and each auto-increment default draws from a sequence that exists
//! and is owned by that very column (no default left pointing at a sequence of a dropped
//! or renamed table, no sequence left over that no column owns). Part of
//! [`crate::check_v2`]; usable on its own through [`check_keys_and_sequences`].

use ferry::backend::{Connection, DbError, Dialect, Value};
use ferry::workload::schema;

/// Every problem found with primary-key nullability and auto-increment sequences in the
/// whole repository (the connection's namespace on PostgreSQL); empty when none.
pub fn check_keys_and_sequences(conn: &mut dyn Connection) -> Result<Vec<String>, DbError> {
    let mut problems = Vec::new();
    primary_keys_not_null(conn, &mut problems)?;
    match conn.dialect() {
        Dialect::Postgres => postgres_sequences(conn, &mut problems)?,
        Dialect::Sqlite => sqlite_autoincrement(conn, &mut problems)?,
    }
    Ok(problems)
}

/// Each column of each primary key is NOT NULL. On SQLite a one-column `INTEGER`
/// primary key is the rowid itself and cannot hold NULL whatever it declares.
fn primary_keys_not_null(
    conn: &mut dyn Connection,
    problems: &mut Vec<String>,
) -> Result<(), DbError> {
    let dialect = conn.dialect();
    for table in conn.tables("%")? {
        let Some(pk) = conn.primary_key(&table)? else {
            continue;
        };
        let columns = conn.columns(&table)?;
        for name in &pk.columns {
            let Some(c) = columns.iter().find(|c| &c.name == name) else {
                continue;
            };
            let rowid = dialect == Dialect::Sqlite
                && pk.columns.len() == 1
                && c.data_type.trim().eq_ignore_ascii_case("integer");
            if c.nullable && !rowid {
                problems.push(format!(
                    "{table}.{name} is part of primary key {} but accepts NULL",
                    pk.name
                ));
            }
        }
    }
    Ok(())
}

fn text(v: &Value) -> String {
    match v {
        Value::Text(t) => t.clone(),
        other => other.to_string(),
    }
}

/// The v1 auto-increment columns that keep their type (all but `dataset.id`); a table
/// the repository does not have is skipped by the callers.
fn kept_auto_increment() -> Vec<(String, String)> {
    schema::v1_tables()
        .into_iter()
        .flat_map(|t| {
            t.columns
                .iter()
                .filter(|c| c.auto_increment)
                .map(|c| (t.name.clone(), c.name.clone()))
                .collect::<Vec<_>>()
        })
        .filter(|(t, c)| !(t == "dataset" && c == "id"))
        .collect()
}

fn postgres_sequences(
    conn: &mut dyn Connection,
    problems: &mut Vec<String>,
) -> Result<(), DbError> {
    let namespace = Value::Text(conn.namespace().unwrap_or("public").to_string());
    // Every column default that draws from a sequence, and whether that sequence is
    // owned by the column itself (serial: 'a'; identity: 'i').
    let rows = conn.query(
        "SELECT t.relname::text, a.attname::text, s.relname::text, \
           EXISTS (SELECT 1 FROM pg_catalog.pg_depend o \
                   WHERE o.classid = 'pg_class'::regclass AND o.objid = s.oid \
                     AND o.refclassid = 'pg_class'::regclass AND o.refobjid = t.oid \
                     AND o.refobjsubid = a.attnum AND o.deptype IN ('a', 'i')) \
         FROM pg_catalog.pg_attrdef ad \
         JOIN pg_catalog.pg_class t ON t.oid = ad.adrelid \
         JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace \
         JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = ad.adnum \
         JOIN pg_catalog.pg_depend d ON d.classid = 'pg_attrdef'::regclass AND d.objid = ad.oid \
              AND d.refclassid = 'pg_class'::regclass \
         JOIN pg_catalog.pg_class s ON s.oid = d.refobjid AND s.relkind = 'S' \
         WHERE n.nspname = ? ORDER BY 1, 2",
        std::slice::from_ref(&namespace),
    )?;
    let mut drawing: Vec<(String, String)> = Vec::new();
    for row in &rows.rows {
        let (table, column, sequence) = (text(&row[0]), text(&row[1]), text(&row[2]));
        if row[3] != Value::Bool(true) {
            problems.push(format!(
                "{table}.{column} draws its default from sequence {sequence}, which it does \
                 not own (a sequence of a dropped or renamed table?)"
            ));
        }
        drawing.push((table, column));
    }
    // Sequences that no column owns are left over.
    let rows = conn.query(
        "SELECT s.relname::text FROM pg_catalog.pg_class s \
         JOIN pg_catalog.pg_namespace n ON n.oid = s.relnamespace \
         WHERE s.relkind = 'S' AND n.nspname = ? AND NOT EXISTS ( \
           SELECT 1 FROM pg_catalog.pg_depend o WHERE o.classid = 'pg_class'::regclass \
             AND o.objid = s.oid AND o.refclassid = 'pg_class'::regclass \
             AND o.deptype IN ('a', 'i')) ORDER BY 1",
        std::slice::from_ref(&namespace),
    )?;
    for row in &rows.rows {
        problems.push(format!(
            "sequence {} is owned by no column (left over from a dropped table?)",
            text(&row[0])
        ));
    }
    // The auto-increment keys v1 has besides dataset.id still generate values.
    let identities = conn.query(
        "SELECT table_name::text, column_name::text FROM information_schema.columns \
         WHERE table_schema = ? AND is_identity = 'YES'",
        &[namespace],
    )?;
    for (table, column) in kept_auto_increment() {
        if !conn.table_exists(&table)? {
            continue;
        }
        let identity = identities
            .rows
            .iter()
            .any(|r| text(&r[0]) == table && text(&r[1]) == column);
        if !identity && !drawing.contains(&(table.clone(), column.clone())) {
            problems.push(format!(
                "{table}.{column} no longer generates values (no sequence default, not an \
                 identity column)"
            ));
        }
    }
    Ok(())
}

fn sqlite_autoincrement(
    conn: &mut dyn Connection,
    problems: &mut Vec<String>,
) -> Result<(), DbError> {
    for (table, column) in kept_auto_increment() {
        if !conn.table_exists(&table)? {
            continue;
        }
        let rows = conn.query(
            "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?",
            &[Value::Text(table.clone())],
        )?;
        let sql = rows.rows.first().map(|r| text(&r[0])).unwrap_or_default();
        if !sql.to_uppercase().contains("AUTOINCREMENT") {
            problems.push(format!(
                "{table}.{column} is no longer AUTOINCREMENT: ids of deleted rows could be reused"
            ));
        }
    }
    Ok(())
}
