//! Introspection of a SQLite database: `sqlite_master`, the table pragmas, and the
//! constraint names read from the stored `CREATE TABLE` text.

use rusqlite::Connection as Raw;

use super::statement_error;
use super::table_sql::{parse_create_table, ConstraintKind, ParsedTable};
use crate::backend::{ColumnInfo, DbError, ForeignKeyInfo, IndexInfo, KeyGenerator, KeyInfo};

fn query_strings(raw: &Raw, sql: &str, param: &str) -> Result<Vec<String>, DbError> {
    let mut stmt = raw
        .prepare_cached(sql)
        .map_err(|e| statement_error(e, sql))?;
    let rows = stmt
        .query_map([param], |r| r.get::<_, String>(0))
        .map_err(|e| statement_error(e, sql))?;
    rows.collect::<Result<_, _>>()
        .map_err(|e| statement_error(e, sql))
}

pub fn tables(raw: &Raw, like: &str) -> Result<Vec<String>, DbError> {
    let sql = "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE ?1 ESCAPE '\\' \
               AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' ORDER BY name";
    query_strings(raw, sql, like)
}

/// The `CREATE TABLE` statement SQLite keeps for `table`, if the table exists.
pub fn create_sql(raw: &Raw, table: &str) -> Result<Option<String>, DbError> {
    let sql = "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?1";
    Ok(query_strings(raw, sql, table)?.into_iter().next())
}

fn parsed(raw: &Raw, table: &str) -> Result<ParsedTable, DbError> {
    Ok(create_sql(raw, table)?
        .map(|s| parse_create_table(&s))
        .unwrap_or_default())
}

/// Columns in declaration order, with their position in the primary key (0: none).
pub fn columns_with_pk(raw: &Raw, table: &str) -> Result<Vec<(ColumnInfo, i64)>, DbError> {
    let sql =
        "SELECT name, type, \"notnull\", dflt_value, pk FROM pragma_table_info(?1) ORDER BY cid";
    let mut stmt = raw
        .prepare_cached(sql)
        .map_err(|e| statement_error(e, sql))?;
    let rows = stmt
        .query_map([table], |r| {
            let info = ColumnInfo {
                name: r.get(0)?,
                data_type: r.get::<_, String>(1)?.to_lowercase(),
                nullable: r.get::<_, i64>(2)? == 0,
                default: r.get(3)?,
            };
            Ok((info, r.get::<_, i64>(4)?))
        })
        .map_err(|e| statement_error(e, sql))?;
    rows.collect::<Result<_, _>>()
        .map_err(|e| statement_error(e, sql))
}

pub fn columns(raw: &Raw, table: &str) -> Result<Vec<ColumnInfo>, DbError> {
    Ok(columns_with_pk(raw, table)?
        .into_iter()
        .map(|(c, _)| c)
        .collect())
}

pub fn primary_key(raw: &Raw, table: &str) -> Result<Option<KeyInfo>, DbError> {
    let mut key: Vec<(i64, String)> = columns_with_pk(raw, table)?
        .into_iter()
        .filter(|(_, pk)| *pk > 0)
        .map(|(c, pk)| (pk, c.name))
        .collect();
    if key.is_empty() {
        return Ok(None);
    }
    key.sort();
    let columns: Vec<String> = key.into_iter().map(|(_, n)| n).collect();
    let name = parsed(raw, table)?
        .name_of(&ConstraintKind::PrimaryKey, &columns)
        .unwrap_or_else(|| format!("{table}_pkey"));
    Ok(Some(KeyInfo { name, columns }))
}

/// Columns whose declaration says `AUTOINCREMENT`.
pub fn autoincrement_columns(raw: &Raw, table: &str) -> Result<Vec<String>, DbError> {
    Ok(parsed(raw, table)?.autoincrement)
}

/// The row id's generator, on the column that is the row id: the sole column of the
/// primary key of a table with row ids, declared exactly `INTEGER`
/// (<https://sqlite.org/lang_createtable.html#rowid>). `AUTOINCREMENT` keeps the largest
/// id handed out in `sqlite_sequence`.
pub fn key_generators(raw: &Raw, table: &str) -> Result<Vec<(String, KeyGenerator)>, DbError> {
    let key: Vec<ColumnInfo> = columns_with_pk(raw, table)?
        .into_iter()
        .filter(|(_, pk)| *pk > 0)
        .map(|(c, _)| c)
        .collect();
    let [column] = key.as_slice() else {
        return Ok(Vec::new());
    };
    let sql = "SELECT wr FROM pragma_table_list WHERE schema = 'main' AND name = ?1";
    let without_rowid = raw
        .query_row(sql, [table], |r| r.get::<_, i64>(0))
        .map_err(|e| statement_error(e, sql))?
        != 0;
    if without_rowid || !column.data_type.trim().eq_ignore_ascii_case("integer") {
        return Ok(Vec::new());
    }
    let autoincrement = parsed(raw, table)?
        .autoincrement
        .iter()
        .any(|c| c.eq_ignore_ascii_case(&column.name));
    let generator = if autoincrement {
        let sql = "SELECT seq FROM sqlite_sequence WHERE name = ?1";
        let mut stmt = raw
            .prepare_cached(sql)
            .map_err(|e| statement_error(e, sql))?;
        let last = stmt
            .query_map([table], |r| r.get::<_, i64>(0))
            .map_err(|e| statement_error(e, sql))?
            .next()
            .transpose()
            .map_err(|e| statement_error(e, sql))?;
        KeyGenerator::Autoincrement { last }
    } else {
        KeyGenerator::RowId
    };
    Ok(vec![(column.name.clone(), generator)])
}

/// Rows whose `column` is not 32 lowercase hex characters stored as text, the form a
/// bound [`crate::backend::Value::Uuid`] takes.
#[cfg(any(test, feature = "internals"))]
pub fn non_uuid_values(raw: &Raw, table: &str, column: &str) -> Result<u64, DbError> {
    let q = super::ddl::quote(column);
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE {q} IS NULL OR typeof({q}) <> 'text' \
         OR length({q}) <> 32 OR {q} GLOB '*[^0-9a-f]*'",
        super::ddl::quote(table)
    );
    raw.query_row(&sql, [], |r| r.get::<_, i64>(0))
        .map(|n| n as u64)
        .map_err(|e| statement_error(e, &sql))
}

/// `(name, unique, origin)` of every index on `table`.
fn index_list(raw: &Raw, table: &str) -> Result<Vec<(String, bool, String)>, DbError> {
    let sql = "SELECT name, \"unique\", origin FROM pragma_index_list(?1) ORDER BY name";
    let mut stmt = raw
        .prepare_cached(sql)
        .map_err(|e| statement_error(e, sql))?;
    let rows = stmt
        .query_map([table], |r| {
            Ok((r.get(0)?, r.get::<_, i64>(1)? != 0, r.get(2)?))
        })
        .map_err(|e| statement_error(e, sql))?;
    rows.collect::<Result<_, _>>()
        .map_err(|e| statement_error(e, sql))
}

/// The key columns of an index, in order (expression parts are left out).
pub fn index_columns(raw: &Raw, index: &str) -> Result<Vec<String>, DbError> {
    let sql = "SELECT name FROM pragma_index_info(?1) WHERE name IS NOT NULL ORDER BY seqno";
    query_strings(raw, sql, index)
}

pub fn unique_constraints(raw: &Raw, table: &str) -> Result<Vec<KeyInfo>, DbError> {
    let parsed = parsed(raw, table)?;
    let mut keys = Vec::new();
    for (index, _, origin) in index_list(raw, table)? {
        if origin != "u" {
            continue;
        }
        let columns = index_columns(raw, &index)?;
        let name = parsed
            .name_of(&ConstraintKind::Unique, &columns)
            .unwrap_or_else(|| {
                if keys.is_empty() {
                    format!("{table}_unq")
                } else {
                    format!("{table}_unq{}", keys.len())
                }
            });
        keys.push(KeyInfo { name, columns });
    }
    // Keep declaration order stable regardless of SQLite's index naming.
    keys.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(keys)
}

pub fn foreign_keys(raw: &Raw, table: &str) -> Result<Vec<ForeignKeyInfo>, DbError> {
    let sql = "SELECT id, seq, \"table\", \"from\", \"to\", on_delete \
               FROM pragma_foreign_key_list(?1) ORDER BY id, seq";
    type FkRow = (i64, String, String, Option<String>, String);
    let rows: Vec<FkRow> = {
        let mut stmt = raw
            .prepare_cached(sql)
            .map_err(|e| statement_error(e, sql))?;
        let rows = stmt
            .query_map([table], |r| {
                Ok((r.get(0)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
            })
            .map_err(|e| statement_error(e, sql))?;
        rows.collect::<Result<_, _>>()
            .map_err(|e| statement_error(e, sql))?
    };
    let parsed = parsed(raw, table)?;
    let mut keys: Vec<(i64, ForeignKeyInfo)> = Vec::new();
    for (id, referenced_table, from, to, on_delete) in rows {
        if keys.last().is_none_or(|(last, _)| *last != id) {
            let info = ForeignKeyInfo {
                name: String::new(),
                columns: Vec::new(),
                referenced_table,
                referenced_columns: Vec::new(),
                on_delete,
            };
            keys.push((id, info));
        }
        let key = &mut keys.last_mut().expect("pushed above").1;
        key.columns.push(from);
        if let Some(to) = to {
            key.referenced_columns.push(to);
        }
    }
    let mut out = Vec::new();
    for (_, mut key) in keys {
        if key.referenced_columns.is_empty() {
            // `REFERENCES t` without columns points at t's primary key.
            if let Some(pk) = primary_key(raw, &key.referenced_table)? {
                key.referenced_columns = pk.columns;
            }
        }
        let kind = ConstraintKind::ForeignKey {
            referenced_table: key.referenced_table.clone(),
        };
        key.name = parsed
            .name_of(&kind, &key.columns)
            .unwrap_or_else(|| format!("{table}_fkey_{}", key.referenced_table));
        out.push(key);
    }
    // SQLite numbers foreign keys last-declared first; report them by name.
    out.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(out)
}

/// Every foreign key of every table, with the table it belongs to.
pub fn all_foreign_keys(raw: &Raw) -> Result<Vec<(String, ForeignKeyInfo)>, DbError> {
    let mut out = Vec::new();
    for table in tables(raw, "%")? {
        for key in foreign_keys(raw, &table)? {
            out.push((table.clone(), key));
        }
    }
    Ok(out)
}

/// Indexes created with `CREATE INDEX` (not those implementing keys).
pub fn indexes(raw: &Raw, table: &str) -> Result<Vec<IndexInfo>, DbError> {
    let mut out = Vec::new();
    for (name, unique, origin) in index_list(raw, table)? {
        if origin == "c" {
            let columns = index_columns(raw, &name)?;
            out.push(IndexInfo {
                name,
                columns,
                unique,
            });
        }
    }
    Ok(out)
}

/// The stored SQL of the indexes (origin `c`) and triggers of `table`, by name,
/// to recreate them after a rebuild.
pub fn dependent_sql(raw: &Raw, table: &str) -> Result<Vec<(String, String, String)>, DbError> {
    let sql = "SELECT type, name, sql FROM sqlite_master \
               WHERE tbl_name = ?1 AND type IN ('index', 'trigger') AND sql IS NOT NULL ORDER BY type, name";
    let mut stmt = raw
        .prepare_cached(sql)
        .map_err(|e| statement_error(e, sql))?;
    let rows = stmt
        .query_map([table], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(|e| statement_error(e, sql))?;
    rows.collect::<Result<_, _>>()
        .map_err(|e| statement_error(e, sql))
}
