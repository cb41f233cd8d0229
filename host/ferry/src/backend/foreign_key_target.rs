//! Checks, before a table is created, that each of its foreign keys points at something
//! a foreign key may reference: an existing table, existing columns, and columns that
//! are that table's primary key or one of its unique constraints (or unique indexes).
//!
//! SQLite accepts a `CREATE TABLE` whose foreign key names a missing table or column,
//! or columns that are not unique, and only complains ("foreign key mismatch") at the
//! first statement that writes to either table, after the broken table has been
//! committed. PostgreSQL refuses at `CREATE TABLE`, but its message does not name the
//! foreign key. Checking here, through the introspection every backend provides, makes
//! both refuse before anything is created, with the same message.

use super::{Connection, DbError, ForeignKeyDef, TableDef};

/// Why a foreign key of `def` cannot be created (`Ok(None)`: every key is fine).
pub fn problem(conn: &mut dyn Connection, def: &TableDef) -> Result<Option<String>, DbError> {
    for key in &def.foreign_keys {
        if let Some(why) = key_problem(conn, def, key)? {
            return Ok(Some(format!(
                "create_table {}: foreign key {} ({}) references {} ({}): {why}; nothing was created",
                def.name,
                key.name,
                key.columns.join(", "),
                key.referenced_table,
                key.referenced_columns.join(", ")
            )));
        }
    }
    Ok(None)
}

/// The columns and keys of the table a foreign key references.
struct Target {
    columns: Vec<String>,
    /// The primary key and every unique constraint or unique index, as column lists.
    unique_sets: Vec<Vec<String>>,
}

fn same(a: &str, b: &str) -> bool {
    // Both backends here compare unquoted names case-insensitively; Ferry's own
    // quoting keeps the author's spelling, which the check should not second-guess.
    a.eq_ignore_ascii_case(b)
}

fn same_set(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().all(|x| b.iter().any(|y| same(x, y)))
}

fn target_of(
    conn: &mut dyn Connection,
    def: &TableDef,
    key: &ForeignKeyDef,
) -> Result<Option<Target>, DbError> {
    // A table may reference itself (a parent row in the same table).
    if same(&key.referenced_table, &def.name) {
        let mut unique_sets: Vec<Vec<String>> = def.unique.iter().map(|(_, c)| c.clone()).collect();
        unique_sets.extend(def.primary_key.iter().map(|(_, c)| c.clone()));
        return Ok(Some(Target {
            columns: def.columns.iter().map(|c| c.name.clone()).collect(),
            unique_sets,
        }));
    }
    if !conn.table_exists(&key.referenced_table)? {
        return Ok(None);
    }
    let table = &key.referenced_table;
    let columns = conn.columns(table)?.into_iter().map(|c| c.name).collect();
    let mut unique_sets: Vec<Vec<String>> = conn
        .unique_constraints(table)?
        .into_iter()
        .map(|k| k.columns)
        .collect();
    unique_sets.extend(conn.primary_key(table)?.map(|k| k.columns));
    unique_sets.extend(
        conn.indexes(table)?
            .into_iter()
            .filter(|i| i.unique)
            .map(|i| i.columns),
    );
    // A unique constraint is also listed as its index on some backends: name it once.
    let mut seen: Vec<Vec<String>> = Vec::new();
    unique_sets.retain(|set| {
        let fresh = !seen.iter().any(|s| same_set(s, set));
        if fresh {
            seen.push(set.clone());
        }
        fresh
    });
    Ok(Some(Target {
        columns,
        unique_sets,
    }))
}

fn key_problem(
    conn: &mut dyn Connection,
    def: &TableDef,
    key: &ForeignKeyDef,
) -> Result<Option<String>, DbError> {
    if key.columns.len() != key.referenced_columns.len() {
        return Ok(Some(format!(
            "{} column(s) reference {} column(s); the two lists must have the same length",
            key.columns.len(),
            key.referenced_columns.len()
        )));
    }
    if let Some(c) = key
        .columns
        .iter()
        .find(|c| !def.columns.iter().any(|d| same(&d.name, c)))
    {
        return Ok(Some(format!("{} has no column {c}", def.name)));
    }
    let Some(target) = target_of(conn, def, key)? else {
        return Ok(Some(format!(
            "table {} does not exist (create it first, or list the revision that creates it in DEPENDS_ON)",
            key.referenced_table
        )));
    };
    if let Some(c) = key
        .referenced_columns
        .iter()
        .find(|c| !target.columns.iter().any(|t| same(t, c)))
    {
        return Ok(Some(format!(
            "table {} has no column {c} (its columns: {})",
            key.referenced_table,
            target.columns.join(", ")
        )));
    }
    if !target
        .unique_sets
        .iter()
        .any(|set| same_set(set, &key.referenced_columns))
    {
        let keys: Vec<String> = target
            .unique_sets
            .iter()
            .map(|s| format!("({})", s.join(", ")))
            .collect();
        return Ok(Some(format!(
            "({}) is neither the primary key nor unique in {} (its keys: {}); a foreign key must reference a primary key or unique columns",
            key.referenced_columns.join(", "),
            key.referenced_table,
            if keys.is_empty() {
                "none".to_string()
            } else {
                keys.join(", ")
            }
        )));
    }
    Ok(None)
}
