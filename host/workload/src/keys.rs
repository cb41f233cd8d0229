//! Rules every rewrite must keep, on any table of the repository: each primary-key
//! column is NOT NULL, and each auto-increment default draws from a sequence that exists
//! and is owned by that very column (no default left pointing at a sequence of a dropped
//! or renamed table, no sequence left over that no column owns). Part of
//! [`crate::check_v2`]; usable on its own through [`check_keys_and_sequences`].

use ferry::backend::{Connection, DbError, KeyGenerator};
use ferry::workload::schema;

/// Every problem found with primary-key nullability and auto-increment sequences in the
/// whole repository (the connection's namespace on PostgreSQL); empty when none.
pub fn check_keys_and_sequences(conn: &mut dyn Connection) -> Result<Vec<String>, DbError> {
    let mut problems = Vec::new();
    primary_keys_not_null(conn, &mut problems)?;
    sequences_owned(conn, &mut problems)?;
    keys_still_generated(conn, &mut problems)?;
    Ok(problems)
}

/// Each column of each primary key is NOT NULL, unless it is a row id that replaces an
/// inserted NULL with a fresh key (SQLite's one-column `INTEGER` primary key), which
/// cannot hold NULL whatever it declares.
fn primary_keys_not_null(
    conn: &mut dyn Connection,
    problems: &mut Vec<String>,
) -> Result<(), DbError> {
    for table in conn.tables("%")? {
        let Some(pk) = conn.primary_key(&table)? else {
            continue;
        };
        let columns = conn.columns(&table)?;
        let generators = conn.key_generators(&table)?;
        for name in &pk.columns {
            let Some(c) = columns.iter().find(|c| &c.name == name) else {
                continue;
            };
            let row_id = generators
                .iter()
                .any(|(column, g)| column == name && g.replaces_null());
            if c.nullable && !row_id {
                problems.push(format!(
                    "{table}.{name} is part of primary key {} but accepts NULL",
                    pk.name
                ));
            }
        }
    }
    Ok(())
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

/// Every default drawing from a sequence draws from one its column owns, and every
/// sequence is owned by a column (none left over from a dropped or renamed table).
fn sequences_owned(conn: &mut dyn Connection, problems: &mut Vec<String>) -> Result<(), DbError> {
    for table in conn.tables("%")? {
        for (column, generator) in conn.key_generators(&table)? {
            if let KeyGenerator::Sequence { name, owned: false } = generator {
                problems.push(format!(
                    "{table}.{column} draws its default from sequence {name}, which it does \
                     not own (a sequence of a dropped or renamed table?)"
                ));
            }
        }
    }
    for sequence in conn.sequences()? {
        if sequence.owner.is_none() {
            problems.push(format!(
                "sequence {} is owned by no column (left over from a dropped table?)",
                sequence.name
            ));
        }
    }
    Ok(())
}

/// The auto-increment keys v1 has besides dataset.id still generate values, and never
/// hand out the id of a deleted row again.
fn keys_still_generated(
    conn: &mut dyn Connection,
    problems: &mut Vec<String>,
) -> Result<(), DbError> {
    for (table, column) in kept_auto_increment() {
        if !conn.table_exists(&table)? {
            continue;
        }
        let generators = conn.key_generators(&table)?;
        match generators
            .iter()
            .find(|(c, _)| *c == column)
            .map(|(_, g)| g)
        {
            None => problems.push(format!(
                "{table}.{column} no longer generates values (no sequence default, not an \
                 identity column, not AUTOINCREMENT)"
            )),
            Some(KeyGenerator::RowId) => problems.push(format!(
                "{table}.{column} is no longer AUTOINCREMENT: ids of deleted rows could be reused"
            )),
            Some(_) => {}
        }
    }
    Ok(())
}
