//! Replacing a table's stored `CREATE TABLE` text in place
//! ([`SchemaChange::ReplaceTableDefinition`](crate::backend::SchemaChange)).
//!
//! SQLite documents this procedure (`writable_schema`, an update of `sqlite_schema`, a
//! new `schema_version`) for changes that leave every stored row as it is: a declared
//! type of the same affinity, a CHECK constraint widened or removed. It is how a
//! daf_butler repository keeps the exact text (named CHECK constraints included) that a
//! fresh repository would have, where a rebuild would re-derive the table from its
//! columns. Done wrong, it corrupts the file, so the new text is first created in a
//! scratch database and compared with the table it replaces: same name, columns in the
//! same order, same affinities, same primary key and rowid, same automatic indexes of
//! PRIMARY KEY and UNIQUE constraints (their b-trees stay as they are). After the edit,
//! `PRAGMA integrity_check` of the table must read `ok` (it checks every row against the
//! new NOT NULL and CHECK constraints) before the transaction may go on, so a failure
//! leaves the old text. Scripts cannot do this with `PRAGMA writable_schema` themselves:
//! the statement guard and SQLite's defensive mode refuse it.

use rusqlite::config::DbConfig;
use rusqlite::Connection as Raw;

use super::statement_error;
use crate::backend::DbError;

/// What must not change for the stored rows and indexes to stay valid.
#[derive(Debug, PartialEq, Eq)]
struct Shape {
    name: String,
    /// (name, affinity, position in the primary key)
    columns: Vec<(String, &'static str, i64)>,
    without_rowid: bool,
    /// Automatic indexes of PRIMARY KEY and UNIQUE constraints: (name, columns).
    auto_indexes: Vec<(String, Vec<String>)>,
}

/// Replaces the stored definition of `table` with `sql` (one `CREATE TABLE`
/// statement) inside the open transaction; returns the statements run.
pub fn replace(raw: &Raw, table: &str, sql: &str) -> Result<Vec<String>, DbError> {
    let refuse = |why: String| {
        DbError::other(format!(
            "cannot replace the stored definition of {table}: {why}"
        ))
    };
    if raw.is_autocommit() {
        return Err(refuse(
            "it needs a transaction (a revision's or a transactional step's)".into(),
        ));
    }
    let stored: Option<(String, String)> = raw
        .query_row(
            "SELECT name, sql FROM sqlite_schema WHERE type = 'table' AND name = ?1 COLLATE NOCASE",
            [table],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .map(Some)
        .or_else(|e| match e {
            rusqlite::Error::QueryReturnedNoRows => Ok(None),
            e => Err(statement_error(e, "SELECT … FROM sqlite_schema")),
        })?;
    let Some((name, _old_sql)) = stored else {
        return Err(refuse("there is no such table".into()));
    };
    let old = shape(raw, &name)?;
    let new = scratch_shape(sql, &name).map_err(refuse)?;
    if new != old {
        return Err(refuse(format!(
            "the new text describes another stored table ({}); only changes that keep \
             every stored row and index as it is can be made in place",
            difference(&old, &new)
        )));
    }

    let version: i64 = raw
        .query_row("PRAGMA schema_version", [], |r| r.get(0))
        .map_err(|e| statement_error(e, "PRAGMA schema_version"))?;
    let statements = vec![
        "PRAGMA writable_schema = ON".to_string(),
        format!(
            "UPDATE sqlite_schema SET sql = {} WHERE type = 'table' AND name = {}",
            literal(sql),
            literal(&name)
        ),
        format!("PRAGMA schema_version = {}", version + 1),
        "PRAGMA writable_schema = OFF".to_string(),
    ];
    with_schema_writable(raw, || {
        for s in &statements {
            raw.execute_batch(s).map_err(|e| statement_error(e, s))?;
        }
        Ok(())
    })?;

    let check = format!("PRAGMA integrity_check({})", literal(&name));
    let problems: Vec<String> = raw
        .prepare(&check)
        .and_then(|mut st| {
            st.query_map([], |r| r.get::<_, String>(0))?
                .collect::<Result<_, _>>()
        })
        .map_err(|e| statement_error(e, &check))?;
    if problems != ["ok"] {
        return Err(refuse(format!(
            "the table's rows do not meet the new text: {}",
            problems.join("; ")
        )));
    }
    let mut ran = statements;
    ran.push(check);
    Ok(ran)
}

/// Runs `f` with defensive mode off (the connection's normal state is on), and puts
/// it back whatever `f` returns.
fn with_schema_writable(raw: &Raw, f: impl FnOnce() -> Result<(), DbError>) -> Result<(), DbError> {
    let config = |on: bool| {
        raw.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, on)
            .map_err(|e| statement_error(e, "sqlite3_db_config(DEFENSIVE)"))
    };
    let was_defensive = raw
        .db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE)
        .map_err(|e| statement_error(e, "sqlite3_db_config(DEFENSIVE)"))?;
    config(false)?;
    let result = f();
    // Whatever happened, writable_schema goes off and defensive mode back on.
    let _ = raw.execute_batch("PRAGMA writable_schema = OFF");
    let restored = config(was_defensive);
    result.and(restored.map(|_| ()))
}

/// The shape of `sql` created alone in an empty in-memory database.
fn scratch_shape(sql: &str, name: &str) -> Result<Shape, String> {
    let scratch = Raw::open_in_memory().map_err(|e| e.to_string())?;
    let statement = scratch
        .prepare(sql)
        .map_err(|e| format!("the new text is not one valid statement ({e})"))?;
    if statement.readonly() {
        return Err("the new text is not a CREATE TABLE statement".into());
    }
    drop(statement);
    scratch
        .execute(sql, [])
        .map_err(|e| format!("the new text does not run ({e})"))?;
    let created: Vec<String> = scratch
        .prepare("SELECT name FROM sqlite_schema WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'")
        .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
        .map_err(|e| e.to_string())?;
    if created.len() != 1 || !created[0].eq_ignore_ascii_case(name) {
        return Err(format!(
            "the new text must create the table {name} and nothing else (it creates: {})",
            created.join(", ")
        ));
    }
    shape(&scratch, &created[0]).map_err(|e| e.to_string())
}

fn shape(raw: &Raw, table: &str) -> Result<Shape, DbError> {
    let q = statement_error_for;
    let columns = raw
        .prepare("SELECT name, type, pk FROM pragma_table_xinfo(?1) ORDER BY cid")
        .and_then(|mut st| {
            st.query_map([table], |r| {
                let declared: String = r.get(1)?;
                Ok((r.get::<_, String>(0)?, affinity(&declared), r.get(2)?))
            })?
            .collect::<Result<Vec<_>, _>>()
        })
        .map_err(q("pragma_table_xinfo"))?;
    let without_rowid: bool = raw
        .query_row(
            "SELECT wr FROM pragma_table_list WHERE name = ?1 AND schema = 'main'",
            [table],
            |r| r.get(0),
        )
        .map_err(q("pragma_table_list"))?;
    let mut auto_indexes = raw
        .prepare(
            "SELECT name FROM pragma_index_list(?1) WHERE origin IN ('pk', 'u') \
             AND name LIKE 'sqlite\\_autoindex\\_%' ESCAPE '\\'",
        )
        .and_then(|mut st| {
            st.query_map([table], |r| r.get::<_, String>(0))?
                .collect::<Result<Vec<_>, _>>()
        })
        .map_err(q("pragma_index_list"))?
        .into_iter()
        .map(|index| {
            let cols = raw
                .prepare("SELECT name FROM pragma_index_info(?1) ORDER BY seqno")
                .and_then(|mut st| {
                    st.query_map([&index], |r| r.get::<_, String>(0))?
                        .collect::<Result<Vec<_>, _>>()
                })
                .map_err(q("pragma_index_info"))?;
            Ok((index, cols))
        })
        .collect::<Result<Vec<_>, DbError>>()?;
    auto_indexes.sort();
    Ok(Shape {
        name: table.to_ascii_lowercase(),
        columns,
        without_rowid,
        auto_indexes,
    })
}

fn statement_error_for(sql: &'static str) -> impl Fn(rusqlite::Error) -> DbError {
    move |e| statement_error(e, sql)
}

/// SQLite's column affinity of a declared type (the rules of "Determination of
/// Column Affinity", in their order).
fn affinity(declared: &str) -> &'static str {
    let t = declared.to_ascii_uppercase();
    if t.contains("INT") {
        "INTEGER"
    } else if t.contains("CHAR") || t.contains("CLOB") || t.contains("TEXT") {
        "TEXT"
    } else if t.contains("BLOB") || t.is_empty() {
        "BLOB"
    } else if t.contains("REAL") || t.contains("FLOA") || t.contains("DOUB") {
        "REAL"
    } else {
        "NUMERIC"
    }
}

fn difference(old: &Shape, new: &Shape) -> String {
    if old.columns != new.columns {
        let show = |s: &Shape| {
            s.columns
                .iter()
                .map(|(n, a, pk)| {
                    if *pk > 0 {
                        format!("{n} {a} pk{pk}")
                    } else {
                        format!("{n} {a}")
                    }
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        return format!("columns [{}] would become [{}]", show(old), show(new));
    }
    if old.without_rowid != new.without_rowid {
        return "WITHOUT ROWID would change".into();
    }
    format!(
        "the PRIMARY KEY / UNIQUE constraints {:?} would become {:?}",
        old.auto_indexes, new.auto_indexes
    )
}

fn literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn repo() -> Raw {
        let raw = Raw::open_in_memory().unwrap();
        raw.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, true)
            .unwrap();
        raw.execute_batch(
            "CREATE TABLE instrument (name VARCHAR(16) NOT NULL, visit_max BIGINT, \
             CONSTRAINT instrument_len_name CHECK (length(name) <= 16 AND length(name) >= 1), \
             PRIMARY KEY (name), UNIQUE (visit_max));
             INSERT INTO instrument VALUES ('HSC', 21), ('LATISS', 22);
             BEGIN;",
        )
        .unwrap();
        raw
    }

    const WIDER: &str = "CREATE TABLE instrument (name VARCHAR(32) NOT NULL, visit_max BIGINT, \
         CONSTRAINT instrument_len_name CHECK (length(name) <= 32 AND length(name) >= 1), \
         PRIMARY KEY (name), UNIQUE (visit_max))";

    #[test]
    fn a_widened_check_keeps_the_rows_and_takes_longer_names() {
        let raw = repo();
        let long = "a-21-character-name-x";
        assert!(raw
            .execute("INSERT INTO instrument VALUES (?1, 1)", [long])
            .is_err());
        let ran = replace(&raw, "instrument", WIDER).unwrap();
        assert!(ran.iter().any(|s| s.starts_with("UPDATE sqlite_schema")));
        raw.execute("INSERT INTO instrument VALUES (?1, 1)", [long])
            .unwrap();
        let n: i64 = raw
            .query_row("SELECT count(*) FROM instrument", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 3);
        let sql: String = raw
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE name = 'instrument'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(sql, WIDER);
        // Defensive mode is back on: a script could not write the schema itself.
        assert!(raw.db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE).unwrap());
    }

    #[test]
    fn texts_that_describe_another_stored_table_are_refused() {
        let raw = repo();
        for (sql, words) in [
            (
                "CREATE TABLE instrument (visit_max BIGINT, name VARCHAR(32) NOT NULL, PRIMARY KEY (name), UNIQUE (visit_max))",
                "columns",
            ),
            (
                "CREATE TABLE instrument (name VARCHAR(32) NOT NULL, visit_max TEXT, PRIMARY KEY (name), UNIQUE (visit_max))",
                "columns",
            ),
            (
                "CREATE TABLE instrument (name VARCHAR(32) NOT NULL, visit_max BIGINT, PRIMARY KEY (name))",
                "UNIQUE",
            ),
            ("CREATE TABLE other (name VARCHAR(32))", "must create the table instrument"),
            ("SELECT 1", "not a CREATE TABLE"),
            ("CREATE TABLE instrument (name VARCHAR(32) NOT NULL", "not one valid statement"),
        ] {
            let e = replace(&raw, "instrument", sql).unwrap_err().to_string();
            assert!(e.contains(words), "{sql}: {e}");
        }
        let sql: String = raw
            .query_row(
                "SELECT sql FROM sqlite_schema WHERE name = 'instrument'",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert!(sql.contains("VARCHAR(16)"), "{sql}");
    }

    #[test]
    fn a_narrowed_check_that_rows_break_is_refused() {
        let raw = repo();
        let narrow = WIDER.replace("<= 32", "<= 3").replace("(32)", "(3)");
        let e = replace(&raw, "instrument", &narrow)
            .unwrap_err()
            .to_string();
        assert!(e.contains("do not meet the new text"), "{e}");
    }

    #[test]
    fn outside_a_transaction_nothing_is_written() {
        let raw = repo();
        raw.execute_batch("COMMIT").unwrap();
        let e = replace(&raw, "instrument", WIDER).unwrap_err().to_string();
        assert!(e.contains("needs a transaction"), "{e}");
    }
}
