//! Naming the row behind a unique violation. SQLite's message names the table and the
//! columns (`UNIQUE constraint failed: item_code.code`) but not the key, which the
//! operator needs to find the bad data. After the failure (the statement is undone,
//! the transaction still open) Ferry looks the key up: among the rows the failed
//! `INSERT … SELECT | VALUES` would have written (one that is already in the table, or
//! one that comes twice), else among the table's own rows (a unique index or constraint
//! added over existing data), or, for a bulk insert, in the row that failed.

use rusqlite::Connection as Raw;

use super::ddl::quote;
use super::Param;
use crate::backend::Value;

/// The table a rebuild copy stands for: a schema change fills `_ferry_tmp_{t}`
/// (`ddl.rs`), a table rewrite `ferry_new_{t}` (`rewrite.rs`; a name too long for
/// PostgreSQL is shortened with a hash there and stays as it is here).
fn rebuilt(table: &str) -> &str {
    table
        .strip_prefix("_ferry_tmp_")
        .or_else(|| table.strip_prefix(crate::backend::rewrite_plan::STAGED_PREFIX))
        .unwrap_or(table)
}

/// The table and columns of a unique or primary-key violation, from SQLite's message.
fn violated_key(e: &rusqlite::Error) -> Option<(String, Vec<String>)> {
    let failure = e.sqlite_error()?;
    let unique = [
        rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE,
        rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY,
    ];
    if !unique.contains(&failure.extended_code) {
        return None;
    }
    let rusqlite::Error::SqliteFailure(_, Some(message)) = e else {
        return None;
    };
    // "UNIQUE constraint failed: t.a, t.b" (an index on expressions says "index 'x'").
    let list = message.split_once("constraint failed: ")?.1;
    let mut table = None;
    let mut columns = Vec::new();
    for item in list.split(", ") {
        let (t, c) = item.split_once('.')?;
        if table.get_or_insert_with(|| t.to_string()) != t {
            return None;
        }
        columns.push(c.to_string());
    }
    Some((table?, columns))
}

/// Says which table and key a unique violation is about, when `e` is one:
/// `table item_code, key (code) = ('A-2')`; `sql` and `params` are the failed statement.
pub(super) fn describe(
    raw: &Raw,
    e: &rusqlite::Error,
    sql: &str,
    params: &[Value],
) -> Option<String> {
    let (table, columns) = violated_key(e)?;
    let key = inserted_duplicate(raw, sql, params, &table, &columns)
        .or_else(|| existing_duplicate(raw, &table, &columns));
    Some(render(&table, &columns, key.as_deref()))
}

/// As [`describe`], for a bulk insert whose failed row is `row` (values of `columns`).
pub(super) fn describe_row(
    e: &rusqlite::Error,
    columns: &[String],
    row: &[Value],
) -> Option<String> {
    let (table, key_columns) = violated_key(e)?;
    let key: Option<Vec<Value>> = key_columns
        .iter()
        .map(|k| {
            columns
                .iter()
                .position(|c| c.eq_ignore_ascii_case(k))
                .map(|i| row[i].clone())
        })
        .collect();
    Some(render(&table, &key_columns, key.as_deref()))
}

fn render(table: &str, columns: &[String], key: Option<&[Value]>) -> String {
    let shown = rebuilt(table);
    let columns = columns.join(", ");
    match key {
        Some(values) => {
            let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
            format!("table {shown}, key ({columns}) = ({})", values.join(", "))
        }
        None => format!("table {shown}, key ({columns})"),
    }
}

/// The first key value of rows the failed `INSERT INTO table [(columns)] <source>`
/// would have written that is already in the table or comes twice.
fn inserted_duplicate(
    raw: &Raw,
    sql: &str,
    params: &[Value],
    table: &str,
    key: &[String],
) -> Option<Vec<Value>> {
    let (target, listed, source) = split_insert(sql)?;
    if !target.eq_ignore_ascii_case(table) {
        return None;
    }
    let columns = match listed {
        Some(c) => c,
        None => table_columns(raw, table)?,
    };
    let positions: Option<Vec<usize>> = key
        .iter()
        .map(|k| columns.iter().position(|c| c.eq_ignore_ascii_case(k)))
        .collect();
    let positions = positions?;
    let names: Vec<String> = (0..columns.len()).map(|i| format!("c{i}")).collect();
    let picked: Vec<&str> = positions.iter().map(|&i| names[i].as_str()).collect();
    let matches: Vec<String> = key
        .iter()
        .zip(&picked)
        .map(|(k, n)| format!("o.{} = n.{n}", quote(k)))
        .collect();
    let not_null: Vec<String> = picked.iter().map(|n| format!("{n} IS NOT NULL")).collect();
    let diagnostic = format!(
        "WITH ferry_rows({}) AS ({source}) \
         SELECT {k} FROM ferry_rows WHERE {nn} GROUP BY {k} HAVING COUNT(*) > 1 \
         UNION ALL \
         SELECT {k} FROM ferry_rows n WHERE EXISTS (SELECT 1 FROM {t} o WHERE {m}) \
         LIMIT 1",
        names.join(", "),
        k = picked.join(", "),
        nn = not_null.join(" AND "),
        t = quote(table),
        m = matches.join(" AND "),
    );
    first_row(raw, &diagnostic, params)
}

/// The first key value that comes twice among the table's own rows (a unique index or
/// constraint added over existing data).
fn existing_duplicate(raw: &Raw, table: &str, key: &[String]) -> Option<Vec<Value>> {
    let source = rebuilt(table);
    let k: Vec<String> = key.iter().map(|c| quote(c)).collect();
    let not_null: Vec<String> = k.iter().map(|c| format!("{c} IS NOT NULL")).collect();
    let diagnostic = format!(
        "SELECT {k} FROM {t} WHERE {nn} GROUP BY {k} HAVING COUNT(*) > 1 LIMIT 1",
        k = k.join(", "),
        t = quote(source),
        nn = not_null.join(" AND "),
    );
    first_row(raw, &diagnostic, &[])
}

fn first_row(raw: &Raw, sql: &str, params: &[Value]) -> Option<Vec<Value>> {
    let mut stmt = raw.prepare(sql).ok()?;
    let width = stmt.column_count();
    let mut rows = stmt
        .query(rusqlite::params_from_iter(params.iter().map(Param)))
        .ok()?;
    let row = rows.next().ok()??;
    (0..width)
        .map(|i| row.get_ref(i).ok().map(super::read_value))
        .collect()
}

fn table_columns(raw: &Raw, table: &str) -> Option<Vec<String>> {
    let columns = super::introspect::columns(raw, table).ok()?;
    let names: Vec<String> = columns.into_iter().map(|c| c.name).collect();
    (!names.is_empty()).then_some(names)
}

/// Splits `INSERT [OR …] INTO name [(columns)] <SELECT|WITH|VALUES …>` into the table,
/// the listed columns and the source; `None` for anything else (an upsert, `RETURNING`,
/// `DEFAULT VALUES`), which is then not looked into.
fn split_insert(sql: &str) -> Option<(String, Option<Vec<String>>, &str)> {
    let s = sql.trim_start();
    let rest = strip_keyword(s, "INSERT")
        .or_else(|| strip_keyword(s, "REPLACE"))?
        .trim_start();
    let rest = match strip_keyword(rest, "OR") {
        Some(r) => {
            let r = r.trim_start();
            let word = r.find(char::is_whitespace)?;
            r[word..].trim_start()
        }
        None => rest,
    };
    let rest = strip_keyword(rest, "INTO")?.trim_start();
    let (table, rest) = identifier(rest)?;
    let rest = rest.trim_start();
    let (columns, rest) = if let Some(inner) = rest.strip_prefix('(') {
        let close = inner.find(')')?;
        let columns: Option<Vec<String>> = inner[..close]
            .split(',')
            .map(|c| identifier(c.trim()).map(|(name, tail)| (name, tail.trim().is_empty())))
            .map(|c| c.and_then(|(name, whole)| whole.then_some(name)))
            .collect();
        (Some(columns?), inner[close + 1..].trim_start())
    } else {
        (None, rest)
    };
    let upper = rest.to_ascii_uppercase();
    let source_kind = ["SELECT", "WITH", "VALUES"]
        .iter()
        .any(|k| strip_keyword(rest, k).is_some());
    if !source_kind || upper.contains("RETURNING") || upper.contains(" ON CONFLICT") {
        return None;
    }
    let source = rest.trim_end().trim_end_matches(';');
    Some((table, columns, source))
}

/// `s` without a leading keyword (any case) followed by a non-identifier character.
fn strip_keyword<'a>(s: &'a str, keyword: &str) -> Option<&'a str> {
    let head = s.get(..keyword.len())?;
    let rest = &s[keyword.len()..];
    let ends = rest
        .chars()
        .next()
        .is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
    (head.eq_ignore_ascii_case(keyword) && ends).then_some(rest)
}

/// A leading identifier, bare or in double quotes, and what follows it.
fn identifier(s: &str) -> Option<(String, &str)> {
    if let Some(inner) = s.strip_prefix('"') {
        let mut name = String::new();
        let mut chars = inner.char_indices();
        while let Some((i, c)) = chars.next() {
            if c == '"' {
                if inner[i + 1..].starts_with('"') {
                    name.push('"');
                    chars.next();
                } else {
                    return Some((name, &inner[i + 1..]));
                }
            } else {
                name.push(c);
            }
        }
        None
    } else {
        let end = s
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .unwrap_or(s.len());
        (end > 0).then(|| (s[..end].to_string(), &s[end..]))
    }
}

#[cfg(test)]
mod tests {
    use super::split_insert;

    #[test]
    fn inserts_are_split_into_table_columns_and_source() {
        let (t, c, s) =
            split_insert("INSERT INTO item_code (code, item_id) SELECT code, id FROM item")
                .unwrap();
        assert_eq!(t, "item_code");
        assert_eq!(c.unwrap(), ["code", "item_id"]);
        assert_eq!(s, "SELECT code, id FROM item");
        let (t, c, s) = split_insert("insert or abort into \"a \"\"b\" VALUES (?, ?);").unwrap();
        assert_eq!(t, "a \"b");
        assert!(c.is_none());
        assert_eq!(s, "VALUES (?, ?)");
        assert!(split_insert("INSERT INTO t (a) VALUES (1) ON CONFLICT DO NOTHING").is_none());
        assert!(split_insert("INSERT INTO t DEFAULT VALUES").is_none());
        assert!(split_insert("UPDATE t SET a = 1").is_none());
        assert!(split_insert("INSERTINTO t VALUES (1)").is_none());
    }
}
