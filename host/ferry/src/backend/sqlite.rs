//! The SQLite backend (rusqlite, bundled SQLite).
//!
//! A repository is one file: the default rollback journal is kept (no WAL side
//! files). Writers take the write lock up front (`BEGIN IMMEDIATE`) and wait up to
//! [`BUSY_TIMEOUT`] (or `FERRY_SQLITE_BUSY_TIMEOUT_MS`) for another process to release it.
//!
//! The migration lock is an exclusive OS file lock (`flock` on Unix, `LockFileEx`
//! on Windows) on the sidecar file `<db path>.ferry-lock`, which holds the holder as
//! JSON. The operating system releases it when the holding process exits, even when
//! killed, so a crashed run never leaves a stale lock; the JSON left behind is then
//! only a record and is overwritten by the next holder.

mod authorizer;
mod constraint;
mod ddl;
mod deferred_keys;
mod introspect;
mod lock_file;
mod rewrite;
mod stored_definition;
mod table_sql;

use crate::backend::{Bulk, Ddl, Introspect, Locking, Sql, Streaming};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rusqlite::types::{ToSqlOutput, ValueRef};
use rusqlite::{ErrorCode, OpenFlags, ToSql};

use super::{
    ColumnInfo, Connection, DbError, DbErrorKind, DbUrl, Dialect, ForeignKeyInfo, IndexInfo,
    KeyGenerator, KeyInfo, LockAttempt, LockHolder, LockState, RowCallback, RowDeriver, Rows,
    SchemaChange, SqlSyntax, Value,
};

#[cfg(any(test, feature = "internals"))]
pub use ddl::sqlite_type;

/// How long a statement waits for another process's write lock.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Virtual-machine steps between two checks of the statement deadline.
const PROGRESS_STEPS: i32 = 1000;

/// SQLite's SQL as the statement guard reads it: `` `name` `` and `[name]` quote names,
/// a trigger's body is inline SQL whose `;`s do not end the `CREATE TRIGGER`, comments
/// do not nest, and no `SET` exists for a script to change a setting with.
pub static SQL_SYNTAX: SqlSyntax = SqlSyntax {
    // SQLite's own tokenizer does take `$` inside a name (`a$b`); the guard reads it as
    // `a`, `$`, `b`, as it always has on SQLite.
    dollar_in_names: false,
    dollar_quotes: false,
    nested_comments: false,
    escape_strings: false,
    unicode_escapes: false,
    backtick_and_bracket_names: true,
    inline_trigger_bodies: true,
    settable: &[],
};

/// An open SQLite repository file.
pub struct SqliteConnection {
    raw: rusqlite::Connection,
    path: PathBuf,
    timer: Timer,
    lock: Option<File>,
    /// An empty in-memory database standing in for the file at `path`, which does not
    /// exist ([`Self::empty_stand_in`]).
    stand_in: bool,
    /// Set while a transaction begun by `begin_checking_foreign_keys_at_commit` runs:
    /// what its commit must check.
    fk_check_at_commit: Option<deferred_keys::DeferredKeys>,
    /// On while a script's own statement runs (see `authorizer`).
    script: authorizer::Script,
    /// The rows the last `PrepareRewrite` copied ([`Ddl::rows_copied`]).
    rows_copied: Option<u64>,
}

/// The statement timeout: a deadline that the progress handler checks.
#[derive(Default)]
struct Timer {
    timeout: Option<Duration>,
    deadline: Arc<Mutex<Option<Instant>>>,
    fired: Arc<AtomicBool>,
}

impl Timer {
    /// Starts the clock for one statement.
    fn start(&self) {
        if let Some(t) = self.timeout {
            self.fired.store(false, Ordering::Relaxed);
            *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + t);
        }
    }

    fn stop(&self) {
        if self.timeout.is_some() {
            *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) = None;
        }
    }

    /// Maps a failure, telling a timeout apart from other interrupts.
    fn error(&self, e: rusqlite::Error, sql: &str) -> DbError {
        if let (Some(timeout), Some(ErrorCode::OperationInterrupted)) =
            (self.timeout, e.sqlite_error_code())
        {
            if self.fired.load(Ordering::Relaxed) {
                return classified(DbError::timeout(timeout, sql), e)
                    .with_kind(crate::backend::DbErrorKind::Timeout);
            }
        }
        statement_error(e, sql)
    }
}

/// Maps a rusqlite failure to a [`DbError`] naming the statement.
fn statement_error(e: rusqlite::Error, sql: &str) -> DbError {
    let message = match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy) => format!("database is locked by another process ({e})"),
        Some(ErrorCode::DatabaseLocked) => format!("a table is locked by another connection ({e})"),
        Some(ErrorCode::ReadOnly)
            if e.sqlite_error().map(|f| f.extended_code)
                == Some(rusqlite::ffi::SQLITE_READONLY_DIRECTORY) =>
        {
            format!(
                "the database's directory is read-only ({e}): SQLite writes its rollback \
                 journal there; is the directory writable?"
            )
        }
        Some(ErrorCode::ReadOnly) => format!("the database file is read-only ({e})"),
        // SQLite writes its rollback journal next to the database file, creating and
        // deleting it in every transaction: a directory that turned read-only shows here.
        Some(ErrorCode::SystemIoFailure) => format!(
            "the file system refused a write ({e}): is the database's directory writable \
             (SQLite keeps its rollback journal there) and is the disk not full?"
        ),
        Some(ErrorCode::CannotOpen) => format!(
            "cannot open the database's rollback journal ({e}): is the database's directory \
             writable?"
        ),
        Some(ErrorCode::DiskFull) => format!("the disk is full ({e})"),
        _ => e.to_string(),
    };
    classified(DbError::statement(message, sql), e)
}

/// `error` classified by the extended result code of the driver's error `e`, which it
/// keeps as its source.
fn classified(error: DbError, e: rusqlite::Error) -> DbError {
    let error = match e.sqlite_error() {
        Some(failure) => error
            .with_kind(super::error::sqlite_kind(failure.extended_code))
            .with_code(failure.extended_code.to_string()),
        None => error,
    };
    error.with_source(e)
}

/// Maps a failure of `sql` (with `params`) run on `raw`, naming the table and key of a
/// unique violation.
fn failure_on(
    raw: &rusqlite::Connection,
    e: rusqlite::Error,
    sql: &str,
    params: &[Value],
) -> DbError {
    let key = constraint::describe(raw, &e, sql, params);
    with_key(statement_error(e, sql), key)
}

/// Adds what [`constraint`] found out to a statement's error.
/// Binds one row to a prepared [`SqliteConnection::insert_statement`] and runs it; a
/// constraint violation names the row's key.
fn insert_row(
    stmt: &mut rusqlite::CachedStatement<'_>,
    timer: &Timer,
    sql: &str,
    columns: &[String],
    row: &[Value],
) -> Result<(), DbError> {
    for (i, v) in row.iter().enumerate() {
        stmt.raw_bind_parameter(i + 1, Param(v))
            .map_err(|e| statement_error(e, sql))?;
    }
    stmt.raw_execute().map_err(|e| {
        let key = constraint::describe_row(&e, columns, row);
        with_key(timer.error(e, sql), key)
    })?;
    Ok(())
}

fn with_key(error: DbError, key: Option<String>) -> DbError {
    match (error, key) {
        (error, Some(key)) => error.with_message_suffix(&format!(" ({key})")),
        (error, None) => error,
    }
}

/// A [`Value`] bound as a statement parameter.
struct Param<'a>(&'a Value);

impl ToSql for Param<'_> {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        use rusqlite::types::Value as V;
        Ok(match self.0 {
            Value::Null => ToSqlOutput::Owned(V::Null),
            Value::Bool(b) => ToSqlOutput::Owned(V::Integer(i64::from(*b))),
            Value::Int(i) => ToSqlOutput::Owned(V::Integer(*i)),
            Value::Float(f) => ToSqlOutput::Owned(V::Real(*f)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Bytes(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
            Value::Uuid(u) => ToSqlOutput::Owned(V::Text(u.simple().to_string())),
        })
    }
}

fn read_value(v: ValueRef<'_>) -> Value {
    match v {
        ValueRef::Null => Value::Null,
        ValueRef::Integer(i) => Value::Int(i),
        ValueRef::Real(f) => Value::Float(f),
        ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
        ValueRef::Blob(b) => Value::Bytes(b.to_vec()),
    }
}

fn lock_path(db: &Path) -> PathBuf {
    lock_file::path_for(db)
}

impl SqliteConnection {
    pub fn open(url: &DbUrl) -> Result<Self, DbError> {
        match url {
            DbUrl::Sqlite { path } => Self::open_path(path),
            DbUrl::Postgres { .. } => Err(DbError::connect("postgres", "not a SQLite URL")),
        }
    }

    /// Opens (or creates, for a new repository) the SQLite file at `path`.
    pub fn open_path(path: &Path) -> Result<Self, DbError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_CREATE;
        Self::open_path_with(path, flags)
    }

    /// Opens the existing SQLite file at `path` read-only: nothing is created, and a
    /// write fails (for the commands that only read: status, plan, history, ...).
    pub fn open_path_read_only(path: &Path) -> Result<Self, DbError> {
        Self::refuse_missing_directory(path)?;
        if !path.is_file() {
            return Err(DbError::connect(
                format!("sqlite:{}", path.display()),
                "the file does not exist",
            )
            .with_kind(DbErrorKind::MissingDatabase));
        }
        // A hot journal left by a killed writer must be rolled back before anyone reads,
        // which a read-only connection cannot do: then open the (existing) file as any
        // reader would, which rolls it back.
        let probe = rusqlite::Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .and_then(|raw| raw.query_row("SELECT COUNT(*) FROM sqlite_master", [], |_| Ok(())));
        let flags = match probe {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_READONLY_ROLLBACK =>
            {
                OpenFlags::SQLITE_OPEN_READ_WRITE
            }
            _ => OpenFlags::SQLITE_OPEN_READ_ONLY,
        };
        Self::open_path_with(path, flags)
    }

    /// The error for a file whose directory does not exist.
    fn refuse_missing_directory(path: &Path) -> Result<(), DbError> {
        match path.parent().filter(|p| !p.as_os_str().is_empty()) {
            Some(parent) if !parent.is_dir() => Err(DbError::connect(
                format!("sqlite:{}", path.display()),
                format!("the directory {} does not exist", parent.display()),
            )
            .with_kind(DbErrorKind::MissingDatabase)),
            _ => Ok(()),
        }
    }

    fn open_path_with(path: &Path, flags: OpenFlags) -> Result<Self, DbError> {
        let connect_error =
            |message: String| DbError::connect(format!("sqlite:{}", path.display()), message);
        Self::refuse_missing_directory(path)?;
        let flags = flags | OpenFlags::SQLITE_OPEN_URI | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let raw = rusqlite::Connection::open_with_flags(path, flags)
            .map_err(|e| classified(connect_error(e.to_string()), e))?;
        // FERRY_SQLITE_BUSY_TIMEOUT_MS overrides the wait (see docs/OPERATIONS.md).
        let busy = std::env::var("FERRY_SQLITE_BUSY_TIMEOUT_MS")
            .ok()
            .and_then(|ms| ms.parse::<u64>().ok())
            .map(Duration::from_millis)
            .unwrap_or(BUSY_TIMEOUT);
        raw.set_prepared_statement_cache_capacity(64);
        // A 16 MiB page cache (SQLite's default is 2 MiB) makes the table rewrites of
        // a large migration about 10% faster while keeping memory bounded;
        // FERRY_SQLITE_CACHE_KB overrides it (see docs/BENCHMARKS.md).
        let cache_kb = std::env::var("FERRY_SQLITE_CACHE_KB")
            .ok()
            .and_then(|kb| kb.parse::<u64>().ok())
            .unwrap_or(16 * 1024);
        raw.execute_batch(&format!("PRAGMA cache_size = -{cache_kb}"))
            .map_err(|e| classified(connect_error(e.to_string()), e))?;
        Self::with_ferry_settings(raw, path.to_path_buf(), busy)
    }

    /// Wraps a connection the application opened itself, on a file or in memory.
    /// Ferry turns foreign keys on and sets its busy timeout, as [`Self::open_path`]
    /// does, and guards it as every connection (`sqlite/authorizer.rs`) until
    /// [`Self::into_raw`] gives it back without the guard. An in-memory or temporary database (whose path SQLite reports as empty)
    /// is private to this connection, so its migration lock needs no lock file.
    pub fn from_raw(raw: rusqlite::Connection) -> Result<Self, DbError> {
        let path = PathBuf::from(raw.path().unwrap_or(""));
        Self::with_ferry_settings(raw, path, BUSY_TIMEOUT)
    }

    /// What every connection Ferry uses needs: the busy timeout, and foreign keys on.
    fn with_ferry_settings(
        raw: rusqlite::Connection,
        path: PathBuf,
        busy: Duration,
    ) -> Result<Self, DbError> {
        let connect_error = |e: rusqlite::Error| {
            classified(
                DbError::connect(format!("sqlite:{}", path.display()), e.to_string()),
                e,
            )
        };
        raw.busy_timeout(busy).map_err(connect_error)?;
        raw.execute_batch("PRAGMA foreign_keys = ON")
            .map_err(connect_error)?;
        let script = authorizer::install(&raw).map_err(connect_error)?;
        Ok(SqliteConnection {
            raw,
            path,
            timer: Timer::default(),
            lock: None,
            stand_in: false,
            fk_check_at_commit: None,
            script,
            rows_copied: None,
        })
    }

    /// An empty in-memory database standing in for the SQLite file at `path`, which
    /// does not exist (its directory does), for commands that only read: it describes
    /// itself as that file, and creates nothing, lock file included.
    pub fn empty_stand_in(path: &Path) -> Result<Self, DbError> {
        Self::refuse_missing_directory(path)?;
        let raw = rusqlite::Connection::open_in_memory()
            .map_err(|e| DbError::connect(format!("sqlite:{}", path.display()), e.to_string()))?;
        let mut conn = Self::with_ferry_settings(raw, path.to_path_buf(), BUSY_TIMEOUT)?;
        conn.stand_in = true;
        Ok(conn)
    }

    /// Gives the application its connection back.
    pub fn into_raw(self) -> rusqlite::Connection {
        authorizer::uninstall(&self.raw, &self.script);
        self.raw
    }

    /// Whether the database lives only in this connection (in memory or temporary).
    fn is_private(&self) -> bool {
        self.path.as_os_str().is_empty() || self.stand_in
    }

    /// Turns enforcement back on after a transaction that checked at commit.
    fn restore_foreign_keys(&mut self) -> Result<(), DbError> {
        if self.fk_check_at_commit.is_some() && self.raw.is_autocommit() {
            self.fk_check_at_commit = None;
            deferred_keys::DeferredKeys::unwatch(&self.raw);
            let sql = "PRAGMA foreign_keys = ON";
            self.raw
                .execute_batch(sql)
                .map_err(|e| statement_error(e, sql))?;
        }
        Ok(())
    }

    /// The database file.
    #[cfg(any(test, feature = "internals"))]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The rusqlite connection underneath (for benchmarks and tests).
    #[cfg(any(test, feature = "internals"))]
    pub fn raw(&self) -> &rusqlite::Connection {
        &self.raw
    }

    /// `INSERT INTO table (columns) VALUES (?, …)`, the statement both bulk paths prepare
    /// once (cached) and run per row; notes `table` for a foreign-key check at commit.
    fn insert_statement(&self, table: &str, columns: &[String]) -> String {
        let names: Vec<String> = columns.iter().map(|c| self.quote_ident(c)).collect();
        let marks = vec!["?"; columns.len()].join(", ");
        if let Some(keys) = &self.fk_check_at_commit {
            keys.touch(table);
        }
        format!(
            "INSERT INTO {} ({}) VALUES ({marks})",
            self.quote_ident(table),
            names.join(", ")
        )
    }

    fn bulk_insert_rows(
        &mut self,
        sql: &str,
        columns: &[String],
        rows: &mut dyn Iterator<Item = Vec<Value>>,
    ) -> Result<u64, DbError> {
        let width = columns.len();
        let timer = &self.timer;
        let mut stmt = self
            .raw
            .prepare_cached(sql)
            .map_err(|e| statement_error(e, sql))?;
        // The whole insert is one statement for the timeout (a deadline per row would
        // cost more than the row).
        timer.start();
        let result = (|| {
            let mut count = 0u64;
            for row in rows {
                if row.len() != width {
                    return Err(DbError::conversion(format!(
                        "bulk insert row {count} has {} values for {width} columns",
                        row.len()
                    )));
                }
                insert_row(&mut stmt, timer, sql, columns, &row)?;
                count += 1;
            }
            Ok(count)
        })();
        timer.stop();
        result
    }
}

impl SqliteConnection {
    /// In a transaction that checks foreign keys at commit: after a statement that
    /// writes, decides whether the update hook saw what it changed (see
    /// `deferred_keys`). Inserts and updates always show their rows; anything else
    /// that showed none (DDL, a truncating `DELETE`) means checking everything.
    fn note_unseen_write(&mut self, sql: &str, rows_seen_before: u64) {
        let Some(keys) = &mut self.fk_check_at_commit else {
            return;
        };
        let head = sql
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        let row_writes = matches!(head.as_str(), "INSERT" | "REPLACE" | "UPDATE");
        if !row_writes && keys.rows_seen() == rows_seen_before {
            keys.check_everything();
        }
    }

    /// Steps `source` and inserts each derived row while the query is still open
    /// (SQLite allows writing one table while reading others on the same connection).
    fn insert_derived_rows(
        &mut self,
        source: &str,
        params: &[Value],
        insert: &str,
        columns: &[String],
        deriver: &mut dyn RowDeriver,
    ) -> Result<u64, DbError> {
        let width = columns.len();
        let timer = &self.timer;
        let mut query = self
            .raw
            .prepare_cached(source)
            .map_err(|e| statement_error(e, source))?;
        let mut insert_stmt = self
            .raw
            .prepare_cached(insert)
            .map_err(|e| statement_error(e, insert))?;
        let names: Vec<String> = query.column_names().into_iter().map(String::from).collect();
        deriver.columns(&names)?;
        timer.start();
        let result = (|| {
            let mut rows = query
                .query(rusqlite::params_from_iter(params.iter().map(Param)))
                .map_err(|e| timer.error(e, source))?;
            let mut values = Vec::with_capacity(names.len());
            let mut out = Vec::with_capacity(width);
            let mut count = 0u64;
            while let Some(row) = rows.next().map_err(|e| timer.error(e, source))? {
                values.clear();
                for i in 0..names.len() {
                    let v = row.get_ref(i).map_err(|e| statement_error(e, source))?;
                    values.push(read_value(v));
                }
                out.clear();
                deriver.derive(&values, &mut out)?;
                if out.len() != width {
                    return Err(DbError::conversion(format!(
                        "derived row {count} has {} values for {width} columns",
                        out.len()
                    )));
                }
                insert_row(&mut insert_stmt, timer, insert, columns, &out)?;
                count += 1;
            }
            Ok(count)
        })();
        timer.stop();
        result
    }
}

impl Connection for SqliteConnection {
    fn dialect(&self) -> Dialect {
        Dialect::Sqlite
    }

    fn sql_syntax(&self) -> &'static SqlSyntax {
        &SQL_SYNTAX
    }

    fn namespace(&self) -> Option<&str> {
        None
    }

    fn describe(&self) -> String {
        if self.path.as_os_str().is_empty() {
            return "sqlite (in memory)".into();
        }
        format!("sqlite:{}", self.path.display())
    }

    fn scratch_copy(&mut self, path: &Path) -> Result<bool, DbError> {
        let sql = "VACUUM INTO ?1";
        self.raw
            .execute(sql, [path.to_string_lossy()])
            .map_err(|e| statement_error(e, sql))?;
        Ok(true)
    }

    fn restrict_to_script(&mut self, on: bool) {
        self.script.set(on);
    }
}

impl Sql for SqliteConnection {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let mut stmt = self
            .raw
            .prepare_cached(sql)
            .map_err(|e| statement_error(e, sql))?;
        let readonly = stmt.readonly();
        let seen = self.fk_check_at_commit.as_ref().map(|k| k.rows_seen());
        self.timer.start();
        let result = stmt.execute(rusqlite::params_from_iter(params.iter().map(Param)));
        self.timer.stop();
        drop(stmt);
        if let (Some(before), false) = (seen, readonly) {
            self.note_unseen_write(sql, before);
        }
        result.map(|n| n as u64).map_err(|e| {
            let key = constraint::describe(&self.raw, &e, sql, params);
            with_key(self.timer.error(e, sql), key)
        })
    }

    fn execute_batch(&mut self, sql: &str) -> Result<(), DbError> {
        if let Some(keys) = &mut self.fk_check_at_commit {
            keys.check_everything();
        }
        self.timer.start();
        let result = self.raw.execute_batch(sql);
        self.timer.stop();
        result.map_err(|e| {
            let key = constraint::describe(&self.raw, &e, sql, &[]);
            with_key(self.timer.error(e, sql), key)
        })
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let mut out = Rows::default();
        let mut each = |columns: &[String], row: Vec<Value>| {
            if out.columns.is_empty() {
                out.columns = columns.to_vec();
            }
            out.rows.push(row);
            Ok(true)
        };
        self.query_each(sql, params, &mut each)?;
        if out.columns.is_empty() {
            let stmt = self
                .raw
                .prepare_cached(sql)
                .map_err(|e| statement_error(e, sql))?;
            out.columns = stmt.column_names().into_iter().map(String::from).collect();
        }
        Ok(out)
    }

    fn begin(&mut self) -> Result<(), DbError> {
        self.raw
            .execute_batch("BEGIN IMMEDIATE")
            .map_err(|e| statement_error(e, "BEGIN IMMEDIATE"))
    }

    fn begin_checking_foreign_keys_at_commit(&mut self) -> Result<(), DbError> {
        // The pragma is a no-op inside a transaction, so it must come first.
        let sql = "PRAGMA foreign_keys = OFF; BEGIN IMMEDIATE";
        self.raw
            .execute_batch(sql)
            .map_err(|e| statement_error(e, sql))?;
        self.fk_check_at_commit = Some(deferred_keys::DeferredKeys::begin(&self.raw));
        Ok(())
    }

    fn commit(&mut self) -> Result<(), DbError> {
        if let Some(keys) = &self.fk_check_at_commit {
            let start = Instant::now();
            let checked = keys.check(&self.raw);
            tracing::debug!(elapsed = ?start.elapsed(), "foreign key check at commit");
            if let Err(e) = checked {
                let _ = self.rollback();
                return Err(e);
            }
        }
        let result = self
            .raw
            .execute_batch("COMMIT")
            .map_err(|e| statement_error(e, "COMMIT"));
        self.restore_foreign_keys()?;
        result
    }

    fn rollback(&mut self) -> Result<(), DbError> {
        let result = self
            .raw
            .execute_batch("ROLLBACK")
            .map_err(|e| statement_error(e, "ROLLBACK"));
        self.restore_foreign_keys()?;
        result
    }

    fn in_transaction(&self) -> bool {
        !self.raw.is_autocommit()
    }

    fn set_statement_timeout(&mut self, timeout: Option<Duration>) -> Result<(), DbError> {
        self.timer.timeout = timeout;
        *self
            .timer
            .deadline
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = None;
        match timeout {
            Some(_) => {
                let deadline = Arc::clone(&self.timer.deadline);
                let fired = Arc::clone(&self.timer.fired);
                self.raw.progress_handler(
                    PROGRESS_STEPS,
                    Some(move || {
                        let due = deadline
                            .lock()
                            .map(|d| d.is_some_and(|d| Instant::now() >= d))
                            .unwrap_or(false);
                        if due {
                            fired.store(true, Ordering::Relaxed);
                        }
                        due
                    }),
                );
            }
            None => self
                .raw
                .progress_handler(PROGRESS_STEPS, None::<fn() -> bool>),
        }
        Ok(())
    }
}

impl Streaming for SqliteConnection {
    fn query_each(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut RowCallback<'_>,
    ) -> Result<u64, DbError> {
        let timer = &self.timer;
        let mut stmt = self
            .raw
            .prepare_cached(sql)
            .map_err(|e| statement_error(e, sql))?;
        let columns: Vec<String> = stmt.column_names().into_iter().map(String::from).collect();
        let readonly = stmt.readonly();
        let seen = self.fk_check_at_commit.as_ref().map(|k| k.rows_seen());
        timer.start();
        let result = (|| {
            let mut rows = stmt
                .query(rusqlite::params_from_iter(params.iter().map(Param)))
                .map_err(|e| timer.error(e, sql))?;
            let mut count = 0u64;
            while let Some(row) = rows.next().map_err(|e| timer.error(e, sql))? {
                let values = (0..columns.len())
                    .map(|i| row.get_ref(i).map(read_value))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| statement_error(e, sql))?;
                count += 1;
                if !each(&columns, values)? {
                    break;
                }
            }
            Ok(count)
        })();
        timer.stop();
        drop(stmt);
        if let (Some(before), false) = (seen, readonly) {
            self.note_unseen_write(sql, before);
        }
        result
    }
}

impl Bulk for SqliteConnection {
    fn bulk_insert(
        &mut self,
        table: &str,
        columns: &[String],
        rows: &mut dyn Iterator<Item = Vec<Value>>,
    ) -> Result<u64, DbError> {
        let sql = self.insert_statement(table, columns);
        super::in_own_transaction(self, |c| c.bulk_insert_rows(&sql, columns, rows))
    }

    fn insert_derived(
        &mut self,
        source: &str,
        params: &[Value],
        table: &str,
        columns: &[String],
        _chunk: usize,
        deriver: &mut dyn RowDeriver,
    ) -> Result<u64, DbError> {
        let insert = self.insert_statement(table, columns);
        super::in_own_transaction(self, |c| {
            c.insert_derived_rows(source, params, &insert, columns, deriver)
        })
    }

    fn add_foreign_keys_after_bulk_load(&self) -> bool {
        false
    }

    fn advance_key_generator(&mut self, _table: &str, _column: &str) -> Result<(), DbError> {
        Ok(())
    }

    fn refresh_statistics(&mut self, _table: &str) -> Result<(), DbError> {
        Ok(())
    }
}

impl Introspect for SqliteConnection {
    fn tables(&mut self, like_pattern: &str) -> Result<Vec<String>, DbError> {
        introspect::tables(&self.raw, like_pattern)
    }

    fn columns(&mut self, table: &str) -> Result<Vec<ColumnInfo>, DbError> {
        introspect::columns(&self.raw, table)
    }

    fn primary_key(&mut self, table: &str) -> Result<Option<KeyInfo>, DbError> {
        introspect::primary_key(&self.raw, table)
    }

    fn foreign_keys(&mut self, table: &str) -> Result<Vec<ForeignKeyInfo>, DbError> {
        introspect::foreign_keys(&self.raw, table)
    }

    fn unique_constraints(&mut self, table: &str) -> Result<Vec<KeyInfo>, DbError> {
        introspect::unique_constraints(&self.raw, table)
    }

    fn indexes(&mut self, table: &str) -> Result<Vec<IndexInfo>, DbError> {
        introspect::indexes(&self.raw, table)
    }

    fn key_generators(&mut self, table: &str) -> Result<Vec<(String, KeyGenerator)>, DbError> {
        introspect::key_generators(&self.raw, table)
    }

    #[cfg(any(test, feature = "internals"))]
    fn sequences(&mut self) -> Result<Vec<crate::backend::SequenceInfo>, DbError> {
        Ok(Vec::new())
    }

    #[cfg(any(test, feature = "internals"))]
    fn non_uuid_values(&mut self, table: &str, column: &str) -> Result<u64, DbError> {
        introspect::non_uuid_values(&self.raw, table, column)
    }
}

impl Ddl for SqliteConnection {
    fn apply_schema_change(&mut self, change: &SchemaChange) -> Result<Vec<String>, DbError> {
        let rewrite = matches!(
            change,
            SchemaChange::RewriteTables(_)
                | SchemaChange::PrepareRewrite { .. }
                | SchemaChange::SwapRewritten { .. }
        );
        if rewrite && self.fk_check_at_commit.is_some() {
            let ordered = match change {
                SchemaChange::RewriteTables(rewrites) => {
                    crate::backend::rewrite_plan::ordered(self, rewrites)?
                }
                _ => Vec::new(),
            };
            // A rewrite states which keys it may break; its own million-row inserts
            // need no hook.
            deferred_keys::DeferredKeys::unwatch(&self.raw);
            let result = match change {
                SchemaChange::PrepareRewrite {
                    rewrite,
                    set,
                    discard,
                } => rewrite::prepare(&self.raw, rewrite, set, discard).map(|(r, rows)| {
                    self.rows_copied = Some(rows);
                    r
                }),
                SchemaChange::SwapRewritten { tables, copied } => {
                    rewrite::swap(&self.raw, tables, copied)
                }
                _ => rewrite::rewrite_tables(&self.raw, &ordered),
            };
            let keys = self
                .fk_check_at_commit
                .as_mut()
                .expect("checked above; the rewrite does not end the transaction");
            keys.watch(&self.raw);
            let (ran, owed) = result?;
            keys.expect(owed);
            return Ok(ran);
        }
        if let Some(keys) = &mut self.fk_check_at_commit {
            keys.check_everything();
        }
        ddl::apply(&self.raw, change)
    }

    fn rows_copied(&self) -> Option<u64> {
        self.rows_copied
    }

    #[cfg(any(test, feature = "internals"))]
    fn column_type(&self, portable: &str) -> String {
        ddl::sqlite_type(portable)
    }
}

/// The holder a locked lock file names. The holder writes its name just after taking
/// the lock: a reader that comes in between finds the file empty or half written, so it
/// looks again for a moment before giving up on naming the holder.
fn recorded_holder(file: &mut std::fs::File) -> Option<LockHolder> {
    for _ in 0..50 {
        let mut text = String::new();
        let holder = file
            .seek(SeekFrom::Start(0))
            .and_then(|_| file.read_to_string(&mut text))
            .ok()
            .and_then(|_| serde_json::from_str(&text).ok());
        if holder.is_some() {
            return holder;
        }
        std::thread::sleep(std::time::Duration::from_millis(2));
    }
    None
}

impl Locking for SqliteConnection {
    fn try_lock(&mut self, holder: &LockHolder) -> Result<LockAttempt, DbError> {
        if self.lock.is_some() || self.is_private() {
            return Ok(LockAttempt::Acquired);
        }
        let path = lock_path(&self.path);
        let io = |e: std::io::Error| DbError::other(format!("lock file {}: {e}", path.display()));
        let mut file = lock_file::open(&path, &self.path).map_err(io)?;
        match file.try_lock() {
            Ok(()) => {
                let json =
                    serde_json::to_string(holder).map_err(|e| DbError::other(e.to_string()))?;
                file.set_len(0).map_err(io)?;
                file.seek(SeekFrom::Start(0)).map_err(io)?;
                file.write_all(json.as_bytes()).map_err(io)?;
                file.sync_data().map_err(io)?;
                self.lock = Some(file);
                Ok(LockAttempt::Acquired)
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                Ok(LockAttempt::HeldBy(recorded_holder(&mut file)))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }

    /// A lock file can only be asked by trying to lock it, so this tries for a *shared*
    /// lock, released at once: it fails while a migrator holds the exclusive one, and
    /// never takes the exclusive lock a migrator holds. A lock file that does not exist
    /// (nothing ever locked this database) is not created.
    fn lock_state(&mut self) -> Result<LockState, DbError> {
        if self.is_private() {
            return Ok(LockState::Free);
        }
        if let Some(file) = self.lock.as_mut() {
            return Ok(LockState::Held(recorded_holder(file)));
        }
        let path = lock_path(&self.path);
        let io = |e: std::io::Error| DbError::other(format!("lock file {}: {e}", path.display()));
        let Some(mut file) = lock_file::open_to_read(&path).map_err(io)? else {
            return Ok(LockState::Free);
        };
        match file.try_lock_shared() {
            Ok(()) => {
                file.unlock().map_err(io)?;
                Ok(LockState::Free)
            }
            Err(std::fs::TryLockError::WouldBlock) => {
                Ok(LockState::Held(recorded_holder(&mut file)))
            }
            Err(std::fs::TryLockError::Error(e)) => Err(io(e)),
        }
    }

    fn unlock(&mut self) -> Result<(), DbError> {
        if let Some(file) = self.lock.take() {
            let path = lock_path(&self.path);
            let io =
                |e: std::io::Error| DbError::other(format!("lock file {}: {e}", path.display()));
            file.set_len(0).map_err(io)?;
            file.unlock().map_err(io)?;
        }
        Ok(())
    }
}
