//! `upgrade --sql`: the statements of a rehearsed upgrade as a script that `sqlite3` or
//! `psql` runs.
//!
//! A rehearsal (see `Migrator::upgrade_sql`) runs on a [`Recording`] connection, which
//! passes every call to the real connection and notes each statement that wrote, with
//! its bound values rendered as literals of the dialect ([`literal`]): the scripts'
//! statements, the statements of portable schema changes and table rewrites, rows sent
//! by `bulk_insert` and `insert_derived` (as `INSERT … VALUES`), and Ferry's own ledger
//! writes (the `ferry_*` tables when they do not exist yet, the revision records, the
//! history rows, the step records), and queries that write (`INSERT … RETURNING`). Reads
//! are not noted: their results are already in the values of the statements that
//! follow. [`script`] wraps the notes in one
//! transaction.
//!
//! Literals, per dialect:
//!
//! | value   | SQLite                                  | PostgreSQL                           |
//! |---------|-----------------------------------------|--------------------------------------|
//! | NULL    | `NULL`                                  | `NULL`                               |
//! | boolean | `1`, `0` (as SQLite stores them)        | `TRUE`, `FALSE`                      |
//! | integer | `42`                                    | `42`                                 |
//! | float   | shortest exact decimal; ±∞ as `±9e999`; NaN as `NULL` (what SQLite stores for a bound NaN) | `'…'::float8`, also `'NaN'`, `'Infinity'`, `'-Infinity'` |
//! | text    | `'…'` with `'` doubled; text holding NUL as `CAST(X'…' AS TEXT)` | `'…'` with `'` doubled, `E'…'` when it holds a backslash; NUL is refused (PostgreSQL text cannot hold it) |
//! | bytes   | `X'…'`                                  | `'\x…'::bytea` (written `E'\\x…'`)   |
//! | UUID    | `'…'`: 32 lowercase hex digits          | `'…'::uuid`                          |
//!
//! Timestamps are bound as text (or integers) and rendered as such; the database
//! converts them as it does a bound value.

use crate::backend::{
    replace_placeholders, ColumnInfo, Connection, DbError, Dialect, ForeignKeyInfo, IndexInfo,
    KeyGenerator, KeyInfo, LockAttempt, LockHolder, LockState, RowCallback, RowDeriver, Rows,
    SchemaChange, SqlSyntax, Value,
};
use crate::backend::{Bulk, Ddl, Introspect, Locking, Sql, Streaming};
use std::cell::RefCell;
use std::fmt::Write as _;
use std::rc::Rc;
use std::time::Duration;

/// A value or statement that cannot be written as a literal script
/// ([`Migrator::upgrade_sql`](crate::Migrator::upgrade_sql)). It reaches an application
/// as the [`DbError`] it converts into (of kind
/// [`DbErrorKind::Conversion`](crate::error::DbErrorKind::Conversion)).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum RenderError {
    /// A text value holds a NUL character, which PostgreSQL text cannot hold (the text).
    #[error("PostgreSQL text cannot hold a NUL character (0x00): {0:?}")]
    NulInPostgresText(String),
    /// A statement's placeholders and bound values differ in number.
    #[error("the statement has {placeholders} placeholder(s) but {values} value(s): {sql}")]
    ParameterCount {
        /// The statement.
        sql: String,
        /// Its placeholders.
        placeholders: usize,
        /// The values bound to it.
        values: usize,
    },
}

impl From<RenderError> for DbError {
    fn from(e: RenderError) -> Self {
        DbError::conversion(format!("upgrade --sql: {e}"))
    }
}

/// `value` as a literal of `dialect` (see the table in the module docs).
pub fn literal(dialect: Dialect, value: &Value) -> Result<String, RenderError> {
    Ok(match (dialect, value) {
        (_, Value::Null) => "NULL".into(),
        (_, Value::Int(i)) => i.to_string(),
        (Dialect::Sqlite, Value::Bool(b)) => (if *b { "1" } else { "0" }).into(),
        (Dialect::Postgres, Value::Bool(b)) => (if *b { "TRUE" } else { "FALSE" }).into(),
        (Dialect::Sqlite, Value::Float(f)) => {
            if f.is_nan() {
                "NULL".into()
            } else if f.is_infinite() {
                (if *f > 0.0 { "9e999" } else { "-9e999" }).into()
            } else {
                float_text(*f)
            }
        }
        (Dialect::Postgres, Value::Float(f)) => {
            let text = if f.is_nan() {
                "NaN".to_string()
            } else if f.is_infinite() {
                (if *f > 0.0 { "Infinity" } else { "-Infinity" }).to_string()
            } else {
                float_text(*f)
            };
            format!("'{text}'::float8")
        }
        (Dialect::Sqlite, Value::Text(s)) if s.contains('\0') => {
            format!("CAST({} AS TEXT)", hex_blob(s.as_bytes()))
        }
        (Dialect::Sqlite, Value::Text(s)) => quoted(s),
        (Dialect::Postgres, Value::Text(s)) => {
            if s.contains('\0') {
                return Err(RenderError::NulInPostgresText(s.clone()));
            }
            if s.contains('\\') {
                format!("E{}", quoted(&s.replace('\\', "\\\\")))
            } else {
                quoted(s)
            }
        }
        (Dialect::Sqlite, Value::Bytes(b)) => hex_blob(b),
        (Dialect::Postgres, Value::Bytes(b)) => format!("E'\\\\x{}'::bytea", hex(b)),
        (Dialect::Sqlite, Value::Uuid(u)) => format!("'{}'", u.as_simple()),
        (Dialect::Postgres, Value::Uuid(u)) => format!("'{}'::uuid", u.as_hyphenated()),
    })
}

/// The shortest decimal that reads back as exactly `f` (Rust's `{:?}` of an `f64`),
/// with an exponent or a decimal point so that SQL reads it as a float.
fn float_text(f: f64) -> String {
    let text = format!("{f:?}");
    if text.contains(['.', 'e', 'E']) {
        text
    } else {
        format!("{text}.0")
    }
}

fn quoted(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

fn hex_blob(bytes: &[u8]) -> String {
    format!("X'{}'", hex(bytes))
}

/// `sql` with each `?` placeholder replaced by the literal of its value.
pub fn inline(dialect: Dialect, sql: &str, params: &[Value]) -> Result<String, RenderError> {
    let (text, count) = replace_placeholders(sql, |n, out| {
        if let Some(v) = params.get(n - 1) {
            out.push_str(&literal(dialect, v)?);
        }
        Ok(())
    })?;
    if count != params.len() {
        return Err(RenderError::ParameterCount {
            sql: sql.to_string(),
            placeholders: count,
            values: params.len(),
        });
    }
    Ok(text)
}

/// `INSERT INTO table (columns) VALUES (…), (…)` statements for `rows`, a few hundred
/// rows each.
pub fn insert_rows(
    dialect: Dialect,
    quoted_table: &str,
    quoted_columns: &[String],
    rows: &[Vec<Value>],
) -> Result<Vec<String>, RenderError> {
    const ROWS_PER_STATEMENT: usize = 500;
    let head = format!(
        "INSERT INTO {quoted_table} ({}) VALUES",
        quoted_columns.join(", ")
    );
    let mut out = Vec::new();
    for chunk in rows.chunks(ROWS_PER_STATEMENT) {
        let mut sql = head.clone();
        for (i, row) in chunk.iter().enumerate() {
            sql.push_str(if i == 0 { "\n  (" } else { ",\n  (" });
            for (j, v) in row.iter().enumerate() {
                if j > 0 {
                    sql.push_str(", ");
                }
                sql.push_str(&literal(dialect, v)?);
            }
            sql.push(')');
        }
        out.push(sql);
    }
    Ok(out)
}

/// Whether a statement run as a query writes (`INSERT … RETURNING`, a `WITH` that
/// modifies rows): those go into the script too; plain reads do not.
fn writes(sql: &str) -> bool {
    let words: Vec<String> = sql
        .split(|c: char| !c.is_ascii_alphanumeric() && c != '_')
        .filter(|w| !w.is_empty())
        .map(str::to_ascii_uppercase)
        .collect();
    const WRITING: [&str; 4] = ["INSERT", "UPDATE", "DELETE", "MERGE"];
    match words.first().map(String::as_str) {
        Some("WITH") => words.iter().any(|w| WRITING.contains(&w.as_str())),
        Some(first) => WRITING.contains(&first),
        None => false,
    }
}

/// The statements a [`Recording`] noted, in order.
#[derive(Debug, Default)]
pub struct Log {
    pub statements: Vec<String>,
    /// Where each open transaction began in `statements` (see [`Recording::new`]).
    begun_at: Option<usize>,
}

/// The shared handle to a [`Log`].
pub type SharedLog = Rc<RefCell<Log>>;

/// The script that replays `statements` on `dialect`: one transaction, so that a
/// failing statement (with `psql -v ON_ERROR_STOP=1` or `sqlite3 -bail`) leaves the
/// database as it was.
pub fn script(dialect: Dialect, header: &[String], statements: &[String]) -> String {
    let mut out = String::new();
    for line in header {
        out.push_str(&format!("-- {line}\n"));
    }
    if dialect == Dialect::Sqlite {
        // Tables are rebuilt as Ferry's rewrites do, with enforcement off (the pragma is
        // a no-op inside a transaction, so it comes first).
        out.push_str("PRAGMA foreign_keys = OFF;\n");
    }
    out.push_str("BEGIN;\n");
    for s in statements {
        let text = s.trim_end();
        out.push_str(text);
        if !text.ends_with(';') {
            out.push(';');
        }
        out.push('\n');
    }
    out.push_str("COMMIT;\n");
    out
}

/// A connection that notes every statement that writes (see the module docs).
pub struct Recording {
    inner: Box<dyn Connection>,
    log: SharedLog,
    /// Whether a rollback forgets what its transaction noted: yes where the rehearsal
    /// commits (a scratch copy), no where the whole rehearsal is one transaction that is
    /// rolled back at the end.
    forget_rolled_back: bool,
}

impl Recording {
    pub fn new(inner: Box<dyn Connection>, log: SharedLog, forget_rolled_back: bool) -> Self {
        Recording {
            inner,
            log,
            forget_rolled_back,
        }
    }

    fn note(&self, sql: String) {
        self.log.borrow_mut().statements.push(sql);
    }

    fn note_rows(
        &self,
        table: &str,
        columns: &[String],
        rows: &[Vec<Value>],
    ) -> Result<(), DbError> {
        let names: Vec<String> = columns.iter().map(|c| self.inner.quote_ident(c)).collect();
        for sql in insert_rows(
            self.inner.dialect(),
            &self.inner.quote_ident(table),
            &names,
            rows,
        )? {
            self.note(sql);
        }
        Ok(())
    }

    fn began(&mut self) {
        if !self.inner.in_transaction() {
            return;
        }
        let mut log = self.log.borrow_mut();
        if log.begun_at.is_none() {
            log.begun_at = Some(log.statements.len());
        }
    }

    fn ended(&mut self, rolled_back: bool) {
        if self.inner.in_transaction() {
            return;
        }
        let mut log = self.log.borrow_mut();
        if let Some(mark) = log.begun_at.take() {
            if rolled_back && self.forget_rolled_back {
                log.statements.truncate(mark);
            }
        }
    }
}

/// Keeps the rows a deriver makes, for the script.
struct Keeping<'a> {
    inner: &'a mut dyn RowDeriver,
    rows: Vec<Vec<Value>>,
}

impl RowDeriver for Keeping<'_> {
    fn columns(&mut self, names: &[String]) -> Result<(), DbError> {
        self.inner.columns(names)
    }
    fn derive(&mut self, row: &[Value], out: &mut Vec<Value>) -> Result<(), DbError> {
        self.inner.derive(row, out)?;
        self.rows.push(out.clone());
        Ok(())
    }
}

impl Connection for Recording {
    fn dialect(&self) -> Dialect {
        self.inner.dialect()
    }

    fn sql_syntax(&self) -> &'static SqlSyntax {
        self.inner.sql_syntax()
    }

    fn namespace(&self) -> Option<&str> {
        self.inner.namespace()
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn quote_ident(&self, name: &str) -> String {
        self.inner.quote_ident(name)
    }

    fn scratch_copy(&mut self, path: &std::path::Path) -> Result<bool, DbError> {
        self.inner.scratch_copy(path)
    }
}

impl Sql for Recording {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let text = inline(self.inner.dialect(), sql, params)?;
        let n = self.inner.execute(sql, params)?;
        self.began();
        self.note(text);
        Ok(n)
    }

    fn execute_batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.inner.execute_batch(sql)?;
        self.began();
        self.note(sql.to_string());
        Ok(())
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        if !writes(sql) {
            return self.inner.query(sql, params);
        }
        let text = inline(self.inner.dialect(), sql, params)?;
        let rows = self.inner.query(sql, params)?;
        self.began();
        self.note(text);
        Ok(rows)
    }

    fn begin(&mut self) -> Result<(), DbError> {
        self.inner.begin()?;
        self.began();
        Ok(())
    }

    fn begin_checking_foreign_keys_at_commit(&mut self) -> Result<(), DbError> {
        self.inner.begin_checking_foreign_keys_at_commit()?;
        self.began();
        Ok(())
    }

    fn begin_rehearsal(&mut self) -> Result<(), DbError> {
        self.inner.begin_rehearsal()?;
        self.began();
        Ok(())
    }

    fn commit(&mut self) -> Result<(), DbError> {
        let result = self.inner.commit();
        self.ended(result.is_err());
        result
    }

    fn rollback(&mut self) -> Result<(), DbError> {
        let result = self.inner.rollback();
        self.ended(true);
        result
    }

    fn in_transaction(&self) -> bool {
        self.inner.in_transaction()
    }

    fn set_statement_timeout(&mut self, timeout: Option<Duration>) -> Result<(), DbError> {
        self.inner.set_statement_timeout(timeout)
    }
}

impl Streaming for Recording {
    fn query_each(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut RowCallback<'_>,
    ) -> Result<u64, DbError> {
        if !writes(sql) {
            return self.inner.query_each(sql, params, each);
        }
        let text = inline(self.inner.dialect(), sql, params)?;
        let n = self.inner.query_each(sql, params, each)?;
        self.began();
        self.note(text);
        Ok(n)
    }
}

impl Bulk for Recording {
    fn bulk_insert(
        &mut self,
        table: &str,
        columns: &[String],
        rows: &mut dyn Iterator<Item = Vec<Value>>,
    ) -> Result<u64, DbError> {
        let mut kept = Vec::new();
        let mut keeping = rows.inspect(|r| kept.push(r.clone()));
        let n = self.inner.bulk_insert(table, columns, &mut keeping)?;
        self.began();
        self.note_rows(table, columns, &kept)?;
        Ok(n)
    }

    fn insert_derived(
        &mut self,
        source: &str,
        params: &[Value],
        table: &str,
        columns: &[String],
        chunk: usize,
        deriver: &mut dyn RowDeriver,
    ) -> Result<u64, DbError> {
        let mut keeping = Keeping {
            inner: deriver,
            rows: Vec::new(),
        };
        let n = self
            .inner
            .insert_derived(source, params, table, columns, chunk, &mut keeping)?;
        let rows = std::mem::take(&mut keeping.rows);
        self.began();
        self.note_rows(table, columns, &rows)?;
        Ok(n)
    }

    fn add_foreign_keys_after_bulk_load(&self) -> bool {
        self.inner.add_foreign_keys_after_bulk_load()
    }

    /// Not recorded: the statement a backend runs is its own, so a script could not
    /// show it (nothing a revision runs calls this).
    fn advance_key_generator(&mut self, table: &str, column: &str) -> Result<(), DbError> {
        Err(DbError::unsupported(format!(
            "advancing the key generator of {table}.{column} cannot be written to an offline SQL script"
        )))
    }

    /// Statistics change no data: an offline script does without them.
    fn refresh_statistics(&mut self, table: &str) -> Result<(), DbError> {
        self.inner.refresh_statistics(table)
    }
}

impl Introspect for Recording {
    fn tables(&mut self, like_pattern: &str) -> Result<Vec<String>, DbError> {
        self.inner.tables(like_pattern)
    }

    fn table_exists(&mut self, table: &str) -> Result<bool, DbError> {
        self.inner.table_exists(table)
    }

    fn columns(&mut self, table: &str) -> Result<Vec<ColumnInfo>, DbError> {
        self.inner.columns(table)
    }

    fn primary_key(&mut self, table: &str) -> Result<Option<KeyInfo>, DbError> {
        self.inner.primary_key(table)
    }

    fn foreign_keys(&mut self, table: &str) -> Result<Vec<ForeignKeyInfo>, DbError> {
        self.inner.foreign_keys(table)
    }

    fn unique_constraints(&mut self, table: &str) -> Result<Vec<KeyInfo>, DbError> {
        self.inner.unique_constraints(table)
    }

    fn indexes(&mut self, table: &str) -> Result<Vec<IndexInfo>, DbError> {
        self.inner.indexes(table)
    }

    fn key_generators(&mut self, table: &str) -> Result<Vec<(String, KeyGenerator)>, DbError> {
        self.inner.key_generators(table)
    }

    #[cfg(any(test, feature = "internals"))]
    fn sequences(&mut self) -> Result<Vec<crate::backend::SequenceInfo>, DbError> {
        self.inner.sequences()
    }

    #[cfg(any(test, feature = "internals"))]
    fn non_uuid_values(&mut self, table: &str, column: &str) -> Result<u64, DbError> {
        self.inner.non_uuid_values(table, column)
    }
}

impl Ddl for Recording {
    fn apply_schema_change(&mut self, change: &SchemaChange) -> Result<Vec<String>, DbError> {
        let ran = self.inner.apply_schema_change(change)?;
        self.began();
        for sql in &ran {
            self.note(sql.clone());
        }
        Ok(ran)
    }

    #[cfg(any(test, feature = "internals"))]
    fn column_type(&self, portable: &str) -> String {
        self.inner.column_type(portable)
    }
}

impl Locking for Recording {
    fn try_lock(&mut self, holder: &LockHolder) -> Result<LockAttempt, DbError> {
        self.inner.try_lock(holder)
    }

    fn unlock(&mut self) -> Result<(), DbError> {
        self.inner.unlock()
    }

    fn lock_state(&mut self) -> Result<LockState, DbError> {
        self.inner.lock_state()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    const INJECTION: &str = "x'); DROP TABLE a; --";

    fn sqlite() -> rusqlite::Connection {
        rusqlite::Connection::open_in_memory().unwrap()
    }

    /// What SQLite holds for `literal`, as (type, text of the value).
    fn sqlite_reads(conn: &rusqlite::Connection, literal: &str) -> (String, Vec<u8>) {
        conn.query_row(
            &format!("SELECT typeof(v), CAST(v AS BLOB) FROM (SELECT {literal} AS v)"),
            [],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get::<_, Option<Vec<u8>>>(1)?.unwrap_or_default(),
                ))
            },
        )
        .unwrap()
    }

    /// What SQLite holds for `value` bound as a parameter the way the backend binds it.
    fn sqlite_binds(conn: &rusqlite::Connection, value: &Value) -> (String, Vec<u8>) {
        use rusqlite::types::Value as V;
        let bound = match value {
            Value::Null => V::Null,
            Value::Bool(b) => V::Integer(i64::from(*b)),
            Value::Int(i) => V::Integer(*i),
            Value::Float(f) => V::Real(*f),
            Value::Text(s) => V::Text(s.clone()),
            Value::Bytes(b) => V::Blob(b.clone()),
            Value::Uuid(u) => V::Text(u.simple().to_string()),
        };
        conn.query_row(
            "SELECT typeof(v), CAST(v AS BLOB) FROM (SELECT ? AS v)",
            [bound],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get::<_, Option<Vec<u8>>>(1)?.unwrap_or_default(),
                ))
            },
        )
        .unwrap()
    }

    fn samples() -> Vec<Value> {
        vec![
            Value::Null,
            Value::Bool(true),
            Value::Bool(false),
            Value::Int(0),
            Value::Int(i64::MAX),
            Value::Int(i64::MIN),
            Value::Float(0.1),
            Value::Float(-2.5e-300),
            Value::Float(1e300),
            Value::Float(3.0),
            Value::Float(f64::INFINITY),
            Value::Float(f64::NEG_INFINITY),
            Value::Float(f64::NAN),
            Value::Text(String::new()),
            Value::Text(INJECTION.into()),
            Value::Text("it's \\ a \"test\"\nsecond line\r\ttab ünïcødé ?".into()),
            Value::Text("nul \0 inside".into()),
            Value::Bytes(vec![]),
            Value::Bytes(vec![0, 1, 0x27, 0x5c, 0xff]),
            Value::Uuid(Uuid::parse_str("840b31d9-05cd-5161-b2c8-00d32b280d0f").unwrap()),
        ]
    }

    #[test]
    fn every_sqlite_literal_reads_back_as_the_bound_value() {
        let conn = sqlite();
        for v in samples() {
            let text = literal(Dialect::Sqlite, &v).unwrap();
            assert_eq!(
                sqlite_reads(&conn, &text),
                sqlite_binds(&conn, &v),
                "{v:?} rendered as {text}"
            );
        }
    }

    #[test]
    fn the_injection_example_stays_one_value_on_sqlite() {
        let conn = sqlite();
        conn.execute_batch("CREATE TABLE a (id INTEGER PRIMARY KEY, v TEXT)")
            .unwrap();
        let sql = inline(
            Dialect::Sqlite,
            "INSERT INTO a (id, v) VALUES (?, ?)",
            &[Value::Int(1), Value::Text(INJECTION.into())],
        )
        .unwrap();
        assert_eq!(
            sql,
            "INSERT INTO a (id, v) VALUES (1, 'x''); DROP TABLE a; --')"
        );
        conn.execute_batch(&sql).unwrap();
        let v: String = conn
            .query_row("SELECT v FROM a WHERE id = 1", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, INJECTION);
    }

    #[test]
    fn postgres_literals_per_type() {
        let pg = |v: Value| literal(Dialect::Postgres, &v).unwrap();
        assert_eq!(pg(Value::Null), "NULL");
        assert_eq!(pg(Value::Bool(true)), "TRUE");
        assert_eq!(pg(Value::Bool(false)), "FALSE");
        assert_eq!(pg(Value::Int(i64::MIN)), "-9223372036854775808");
        assert_eq!(pg(Value::Float(0.1)), "'0.1'::float8");
        assert_eq!(pg(Value::Float(3.0)), "'3.0'::float8");
        assert_eq!(pg(Value::Float(f64::NAN)), "'NaN'::float8");
        assert_eq!(pg(Value::Float(f64::INFINITY)), "'Infinity'::float8");
        assert_eq!(pg(Value::Float(f64::NEG_INFINITY)), "'-Infinity'::float8");
        assert_eq!(
            pg(Value::Text(INJECTION.into())),
            "'x''); DROP TABLE a; --'"
        );
        assert_eq!(pg(Value::Text("a\\'b\nc".into())), "E'a\\\\''b\nc'");
        assert_eq!(
            pg(Value::Bytes(vec![0, 0xff, 0x27])),
            "E'\\\\x00ff27'::bytea"
        );
        assert_eq!(
            pg(Value::Uuid(
                Uuid::parse_str("840b31d905cd5161b2c800d32b280d0f").unwrap()
            )),
            "'840b31d9-05cd-5161-b2c8-00d32b280d0f'::uuid"
        );
        assert!(matches!(
            literal(Dialect::Postgres, &Value::Text("a\0b".into())),
            Err(RenderError::NulInPostgresText(_))
        ));
        assert_eq!(
            inline(
                Dialect::Postgres,
                "INSERT INTO a (id, v) VALUES (?, ?)",
                &[Value::Int(1), Value::Text(INJECTION.into())]
            )
            .unwrap(),
            "INSERT INTO a (id, v) VALUES (1, 'x''); DROP TABLE a; --')"
        );
    }

    #[test]
    fn placeholders_inside_quotes_and_comments_stay() {
        let sql = inline(
            Dialect::Sqlite,
            "SELECT '?', \"a?\" -- ?\n, ? /* ? */",
            &[Value::Text("it's".into())],
        )
        .unwrap();
        assert_eq!(sql, "SELECT '?', \"a?\" -- ?\n, 'it''s' /* ? */");
    }

    #[test]
    fn a_value_count_that_does_not_match_is_an_error() {
        let err = inline(Dialect::Sqlite, "SELECT ?, ?", &[Value::Int(1)]).unwrap_err();
        assert_eq!(
            err,
            RenderError::ParameterCount {
                sql: "SELECT ?, ?".into(),
                placeholders: 2,
                values: 1
            }
        );
    }

    #[test]
    fn queries_that_write_are_told_from_reads() {
        assert!(writes("INSERT INTO t (a) VALUES (?) RETURNING id"));
        assert!(writes("  delete from t where a = ? returning *"));
        assert!(writes(
            "WITH moved AS (DELETE FROM a RETURNING *) INSERT INTO b SELECT * FROM moved"
        ));
        assert!(!writes("SELECT id FROM t WHERE name = 'INSERT'"));
        assert!(!writes("WITH x AS (SELECT 1) SELECT * FROM x"));
        assert!(!writes(""));
    }

    #[test]
    fn rows_become_multi_row_inserts() {
        let rows: Vec<Vec<Value>> = (0..501)
            .map(|i| vec![Value::Int(i), Value::Text(format!("r'{i}"))])
            .collect();
        let sql = insert_rows(
            Dialect::Sqlite,
            "\"t\"",
            &["\"id\"".into(), "\"v\"".into()],
            &rows,
        )
        .unwrap();
        assert_eq!(sql.len(), 2);
        let conn = sqlite();
        conn.execute_batch("CREATE TABLE t (id INTEGER, v TEXT)")
            .unwrap();
        for s in &sql {
            conn.execute_batch(s).unwrap();
        }
        let (n, last): (i64, String) = conn
            .query_row("SELECT COUNT(*), MAX(v) FROM t WHERE id = 500", [], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        assert_eq!((n, last.as_str()), (1, "r'500"));
    }
}
