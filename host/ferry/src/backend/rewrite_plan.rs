//! What every backend's table rewrite shares: the names of the rewritten copies, and the
//! order and validity of a set of rewrites.
//!
//! A rewrite builds each table's new version next to the old one under a *staged* name
//! ([`staged_name`]), parents before the tables that reference them (a child's copy
//! references its parent's copy), and then swaps all of them in at once
//! ([`SchemaChange::PrepareRewrite`], [`SchemaChange::SwapRewritten`]); the old tables stay
//! untouched until the swap.
//!
//! [`SchemaChange::PrepareRewrite`]: crate::backend::SchemaChange::PrepareRewrite
//! [`SchemaChange::SwapRewritten`]: crate::backend::SchemaChange::SwapRewritten

use super::{Connection, DbError, TableRewrite};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// The prefix of staged copies (and, on PostgreSQL, of their index and constraint names).
/// Names starting with `ferry_` are Ferry's own: introspection helpers such as
/// `tables::with_column` and the schema digest leave them out.
pub const STAGED_PREFIX: &str = "ferry_new_";

/// PostgreSQL's identifier limit (NAMEDATALEN - 1) in bytes; longer names are truncated
/// by the server, which could make two staged names collide.
const MAX_NAME_BYTES: usize = 63;

/// The staged name of a table, index or constraint: `ferry_new_{name}`, or, when that is
/// longer than 63 bytes, its first bytes followed by `_` and 8 hex digits of the name's
/// sha256 (so two long names that share a beginning stay apart).
pub fn staged_name(name: &str) -> String {
    let full = format!("{STAGED_PREFIX}{name}");
    if full.len() <= MAX_NAME_BYTES {
        return full;
    }
    let hash: String = Sha256::digest(name.as_bytes())
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect();
    let room = MAX_NAME_BYTES - STAGED_PREFIX.len() - 1 - hash.len();
    let mut end = room;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    format!("{STAGED_PREFIX}{}_{hash}", &name[..end])
}

/// Checks a set of rewrites against the database and returns them parents first: a table
/// whose foreign key references another table of the set comes after it (otherwise in
/// the given order). Refuses, naming the culprit: a table named twice, a table or column
/// that does not exist, foreign keys among the set that form a cycle, and a table outside
/// the set whose foreign key references a column the rewrite changes (its values would
/// point nowhere).
pub fn ordered(
    conn: &mut dyn Connection,
    rewrites: &[TableRewrite],
) -> Result<Vec<TableRewrite>, DbError> {
    let mut changed: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for rw in rewrites {
        let columns = rw.columns.iter().map(|c| c.column.as_str()).collect();
        if changed.insert(rw.table.as_str(), columns).is_some() {
            return Err(DbError::other(format!(
                "the rewrite names table {} twice",
                rw.table
            )));
        }
        let existing = conn.columns(&rw.table)?;
        if existing.is_empty() {
            return Err(DbError::other(format!("no table named {}", rw.table)));
        }
        for c in &rw.columns {
            if !existing.iter().any(|e| e.name == c.column) {
                return Err(DbError::other(format!(
                    "table {} has no column {}",
                    rw.table, c.column
                )));
            }
        }
    }
    // Which tables of the set each table references (itself left out).
    let mut parents: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for table in conn.tables("%")? {
        let in_set = changed.contains_key(table.as_str());
        for key in conn.foreign_keys(&table)? {
            let Some(columns) = changed.get(key.referenced_table.as_str()) else {
                continue;
            };
            if in_set {
                if key.referenced_table != table {
                    let rw = rewrites.iter().find(|r| r.table == table).expect("in set");
                    parents
                        .entry(rw.table.as_str())
                        .or_default()
                        .insert(key.referenced_table.clone());
                }
            } else if let Some(c) = key
                .referenced_columns
                .iter()
                .find(|c| columns.contains(c.as_str()))
            {
                return Err(DbError::unsupported(format!(
                    "{table}.{} references {}.{c}, which the rewrite changes; add {table} to the rewrite",
                    key.name, key.referenced_table
                )));
            }
        }
    }
    let mut placed: Vec<TableRewrite> = Vec::with_capacity(rewrites.len());
    let mut left: Vec<&TableRewrite> = rewrites.iter().collect();
    while !left.is_empty() {
        let ready = left.iter().position(|rw| {
            parents
                .get(rw.table.as_str())
                .is_none_or(|ps| ps.iter().all(|p| placed.iter().any(|d| &d.table == p)))
        });
        let Some(i) = ready else {
            let names: Vec<&str> = left.iter().map(|r| r.table.as_str()).collect();
            return Err(DbError::unsupported(format!(
                "the foreign keys among {} form a cycle: no table can be rewritten first",
                names.join(", ")
            )));
        };
        placed.push(left.remove(i).clone());
    }
    Ok(placed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staged_names_fit_postgres_and_stay_apart() {
        assert_eq!(staged_name("dataset"), "ferry_new_dataset");
        let a = staged_name(&format!("{}_a", "x".repeat(70)));
        let b = staged_name(&format!("{}_b", "x".repeat(70)));
        assert!(a.len() <= 63 && b.len() <= 63, "{a} {b}");
        assert_ne!(a, b);
        assert!(a.starts_with(STAGED_PREFIX));
        // Multi-byte characters are never cut in half.
        let long = "é".repeat(40);
        assert!(staged_name(&long).len() <= 63);
        assert_eq!(staged_name(&"y".repeat(53)).len(), 63);
    }
}
