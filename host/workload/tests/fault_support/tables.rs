//! Whole-table contents, for comparing a repository with itself before and after a
//! run, or with another repository that went through the same revisions.

use ferry::backend::{Connection, Value};
use std::collections::BTreeMap;

/// A table's rows, columns in name order (a SQLite rebuild may reorder columns), each
/// value rendered as text, rows sorted.
pub type Contents = Vec<Vec<Option<String>>>;

fn render(v: Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Text(s) => Some(s),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(f) => Some(f.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Uuid(u) => Some(u.simple().to_string()),
        Value::Bytes(b) => Some(format!("{b:?}")),
    }
}

/// The contents of `table`.
pub fn contents(conn: &mut dyn Connection, table: &str) -> Contents {
    let mut columns: Vec<String> = conn
        .columns(table)
        .unwrap_or_else(|e| panic!("columns of {table}: {e}"))
        .into_iter()
        .map(|c| c.name)
        .collect();
    columns.sort();
    let list: Vec<String> = columns.iter().map(|c| conn.quote_ident(c)).collect();
    let sql = format!(
        "SELECT {} FROM {}",
        list.join(", "),
        conn.quote_ident(table)
    );
    let rows = conn
        .query(&sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    let mut out: Contents = rows
        .rows
        .into_iter()
        .map(|r| r.into_iter().map(render).collect())
        .collect();
    out.sort();
    out
}

/// The contents of every table except Ferry's own (`ferry_*`).
pub fn all_contents(conn: &mut dyn Connection) -> BTreeMap<String, Contents> {
    let tables = conn.tables("%").expect("list tables");
    tables
        .into_iter()
        .filter(|t| !t.starts_with("ferry_"))
        .map(|t| {
            let c = contents(conn, &t);
            (t, c)
        })
        .collect()
}

/// The single integer a query returns.
pub fn scalar(conn: &mut dyn Connection, sql: &str, params: &[Value]) -> i64 {
    let rows = conn
        .query(sql, params)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    match rows.rows.first().and_then(|r| r.first()) {
        Some(Value::Int(i)) => *i,
        Some(Value::Text(t)) => t.parse().unwrap_or_else(|_| panic!("{sql}: {t:?}")),
        Some(Value::Null) => 0,
        other => panic!("{sql}: {other:?} is not an integer"),
    }
}

/// The text a query returns (`None` for no row or NULL).
pub fn text(conn: &mut dyn Connection, sql: &str, params: &[Value]) -> Option<String> {
    let rows = conn
        .query(sql, params)
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    rows.rows
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next())
        .and_then(render)
}

/// Lists, one per line, the tables whose contents differ between two dumps.
pub fn differences(
    expected: &BTreeMap<String, Contents>,
    found: &BTreeMap<String, Contents>,
) -> Vec<String> {
    let mut out = Vec::new();
    for (t, rows) in expected {
        match found.get(t) {
            None => out.push(format!("{t}: missing")),
            Some(f) if f != rows => {
                let first = rows
                    .iter()
                    .zip(f.iter())
                    .find(|(a, b)| a != b)
                    .map(|(a, b)| format!("expected {a:?}, found {b:?}"))
                    .unwrap_or_default();
                out.push(format!(
                    "{t}: {} rows expected, {} found; first difference: {first}",
                    rows.len(),
                    f.len()
                ))
            }
            Some(_) => {}
        }
    }
    for t in found.keys() {
        if !expected.contains_key(t) {
            out.push(format!("{t}: not expected"));
        }
    }
    out
}
