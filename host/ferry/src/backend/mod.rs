//! Database backends: one trait, implemented once per database.
//!
//! Everything above this module (ledger, runner, script API) talks to a
//! [`Connection`]; nothing above it asks "is this PostgreSQL?". Where a script must
//! know, it asks for the [`Dialect`]; where the statement guard must know how the
//! database writes SQL, it reads the connection's [`SqlSyntax`].

mod database;
mod error;
pub mod foreign_key_target;
mod lent;
mod pg_runtime;
mod placeholders;
pub mod postgres;
pub mod rewrite_plan;
pub mod schema_change;
mod sql_syntax;
pub mod sqlite;
mod url;

pub use database::{database, Database, PgPool, ScratchCopy};
pub use error::{DbError, DbErrorKind};
#[cfg(any(test, feature = "internals"))]
pub use lent::Lent;
pub use lent::LentConnection;
pub use placeholders::{replace_placeholders, rewrite_placeholders};
pub use schema_change::{
    ColumnDef, ColumnRewrite, ForeignKeyDef, IndexDef, SchemaChange, TableDef, TableRewrite,
};
pub use sql_syntax::SqlSyntax;
pub use url::{DbUrl, UrlError};

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The database family a connection talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    /// The name scripts see as `db.dialect`.
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }

    /// How an operator applies a SQL script written for this database.
    pub fn script_apply_hint(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite3 -bail FILE < script.sql",
            Dialect::Postgres => {
                "psql -v ON_ERROR_STOP=1 -f script.sql (with search_path set to the schema)"
            }
        }
    }
}

/// A value bound to a statement or read from a row.
///
/// UUIDs are a value of their own so that each backend stores them in its own
/// form: native `uuid` on PostgreSQL, 32 lowercase hex characters on SQLite.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Text(String),
    Bytes(Vec<u8>),
    Uuid(uuid::Uuid),
}

impl fmt::Display for Value {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Value::Null => f.write_str("NULL"),
            Value::Bool(b) => write!(f, "{b}"),
            Value::Int(i) => write!(f, "{i}"),
            Value::Float(x) => write!(f, "{x}"),
            Value::Text(s) => write!(f, "'{}'", s.replace('\'', "''")),
            Value::Bytes(b) => write!(f, "<{} bytes>", b.len()),
            Value::Uuid(u) => write!(f, "'{}'", u.as_simple()),
        }
    }
}

/// The result of a query held in memory (use [`Streaming::query_each`] to stream).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Rows {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

/// A column as introspection reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnInfo {
    pub name: String,
    /// The type as the database spells it, lower-cased (`bigint`, `character varying(64)`,
    /// `uuid`; on SQLite the declared type, e.g. `varchar(64)`).
    pub data_type: String,
    pub nullable: bool,
    /// The default expression as the database stores it, if any.
    pub default: Option<String>,
}

/// A primary key or unique constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyInfo {
    pub name: String,
    pub columns: Vec<String>,
}

/// A foreign key with its `ON DELETE` rule (`NO ACTION`, `CASCADE`, `SET NULL`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKeyInfo {
    pub name: String,
    pub columns: Vec<String>,
    pub referenced_table: String,
    pub referenced_columns: Vec<String>,
    pub on_delete: String,
}

/// An index that is not the implementation of a primary key or unique constraint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexInfo {
    pub name: String,
    pub columns: Vec<String>,
    pub unique: bool,
}

/// What gives a column its value when an insert leaves it out (or, for a row id, sets
/// it to NULL): [`Introspect::key_generators`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyGenerator {
    /// The column's default draws from the sequence `name` (`nextval`, as `serial`
    /// declares it); `owned`: the sequence belongs to this column and goes with it.
    Sequence { name: String, owned: bool },
    /// An identity column, generated from the sequence it owns.
    Identity { sequence: String },
    /// The table's row id, never reused: a new row gets one more than the largest id ever
    /// handed out, which the database records (`last`; `None` before the first row).
    /// SQLite's `INTEGER PRIMARY KEY AUTOINCREMENT`.
    Autoincrement { last: Option<i64> },
    /// The table's row id: a new row gets one more than the largest id present, so the
    /// ids of the last rows deleted are handed out again. SQLite's `INTEGER PRIMARY KEY`.
    RowId,
}

impl KeyGenerator {
    /// Whether an inserted NULL becomes a fresh key, so that the column never holds NULL
    /// whatever it declares (a row id).
    #[cfg(any(test, feature = "internals"))]
    pub fn replaces_null(&self) -> bool {
        matches!(
            self,
            KeyGenerator::RowId | KeyGenerator::Autoincrement { .. }
        )
    }
}

/// A sequence in the namespace and the column that owns it, if any
/// ([`Introspect::sequences`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg(any(test, feature = "internals"))]
pub struct SequenceInfo {
    pub name: String,
    /// `(table, column)`: the column the sequence belongs to (a `serial` column's or an
    /// identity's); `None` for a sequence no column owns.
    pub owner: Option<(String, String)>,
}

/// Who holds (or wants) the migration lock.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct LockHolder {
    /// The holder's host name (on PostgreSQL, the client address of a session that is
    /// not a migrator).
    pub host: String,
    /// The holder's process id (or the server process of a session that is not one).
    pub pid: u32,
    /// The user (the database role, on PostgreSQL, for a session that is not one).
    pub user: String,
    /// Seconds since the Unix epoch when the lock was taken.
    pub since: i64,
}

impl fmt::Display for LockHolder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}@{} pid {} since {}",
            self.user,
            self.host,
            self.pid,
            crate::clock::format_utc(self.since)
        )
    }
}

/// The outcome of one attempt to take the migration lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockAttempt {
    Acquired,
    /// Someone else holds it; the holder as recorded, if it could be read.
    HeldBy(Option<LockHolder>),
}

/// Who holds the migration lock, as a look that takes nothing finds it
/// ([`Locking::lock_state`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockState {
    /// No session holds it.
    Free,
    /// A session holds it (this one or another); its holder, if the backend can name it.
    Held(Option<LockHolder>),
}

/// Called once per streamed row; return `Ok(false)` to stop early.
pub type RowCallback<'a> = dyn FnMut(&[String], Vec<Value>) -> Result<bool, DbError> + 'a;

/// Turns each row of a query into one row to insert ([`Bulk::insert_derived`]).
pub trait RowDeriver {
    /// Called once with the query's column names, before the first row.
    fn columns(&mut self, names: &[String]) -> Result<(), DbError>;
    /// Appends the values to insert for one query row to `out` (empty on entry).
    fn derive(&mut self, row: &[Value], out: &mut Vec<Value>) -> Result<(), DbError>;
}

/// One open connection to a repository database: what it is and how its session is set
/// up, and by its supertraits the rest, one concern each: statements and transactions
/// ([`Sql`]), streamed queries ([`Streaming`]), bulk inserts ([`Bulk`]), introspection
/// ([`Introspect`]), schema changes ([`Ddl`]) and the migration lock ([`Locking`]).
/// `&mut dyn Connection` reaches them all.
///
/// Every SQL text uses `?` placeholders; the PostgreSQL backend rewrites them to
/// `$n` with [`rewrite_placeholders`]. Identifiers passed as `&str` (tables,
/// columns) are unquoted names; implementations quote them with [`Connection::quote_ident`].
pub trait Connection: Sql + Streaming + Bulk + Introspect + Ddl + Locking {
    fn dialect(&self) -> Dialect;

    /// How this database writes SQL (quotes, comments, statement bounds) and which
    /// settings a script may change: what the statement guard (`sql_guard`) reads a
    /// script's SQL by.
    fn sql_syntax(&self) -> &'static SqlSyntax;

    /// The PostgreSQL namespace every table lives in (`None` on SQLite).
    fn namespace(&self) -> Option<&str>;

    /// A human description of where this connection points (no password).
    fn describe(&self) -> String;

    /// Writes a consistent copy of the database into a new file at `path`, for a
    /// rehearsal that runs and commits on the copy (SQLite: `VACUUM INTO`). `false`
    /// where a database has no such copy (PostgreSQL rehearses inside a rolled-back
    /// transaction instead, see [`Sql::begin_rehearsal`]).
    fn scratch_copy(&mut self, _path: &std::path::Path) -> Result<bool, DbError> {
        Ok(false)
    }

    /// Marks the statements that follow as a script's own (`true`) or Ferry's (`false`).
    /// SQLite's authorizer then denies what a script may not send even if the statement
    /// guard (`sql_guard`) missed it; PostgreSQL checks the session before each
    /// commit instead ([`Sql::commit`]).
    fn restrict_to_script(&mut self, _on: bool) {}

    /// The role's name when the connection is a superuser's (PostgreSQL `rolsuper`),
    /// which no statement guard can contain: Ferry warns.
    fn superuser(&mut self) -> Result<Option<String>, DbError> {
        Ok(None)
    }

    /// Quotes an identifier safely for this database.
    fn quote_ident(&self, name: &str) -> String {
        format!("\"{}\"", name.replace('"', "\"\""))
    }

    /// How many steps may run at the same time when the configuration does not say
    /// (`jobs`): 1 where a backend runs steps one at a time (SQLite). PostgreSQL does not
    /// report its cores, so it takes `max_parallel_workers` (which an administrator sizes
    /// to the server's cores), bounded by this machine's cores when the server runs here
    /// (a loopback address or a Unix socket), capped at [`MAX_DEFAULT_JOBS`].
    fn default_jobs(&mut self) -> Result<usize, DbError> {
        Ok(1)
    }

    /// A pool of up to `jobs` further connections to the same database and namespace,
    /// each for one step in its own transaction while this connection holds the
    /// migration lock; `None` where steps run one at a time (SQLite, or a connection an
    /// application lent). The pool is made on the first call and kept.
    fn step_workers(&mut self, _jobs: usize) -> Result<Option<Arc<dyn StepWorkers>>, DbError> {
        Ok(None)
    }
}

/// Statements, queries and transactions ([`Connection`]'s first concern).
pub trait Sql {
    /// Runs one statement with bound parameters; returns the rows it touched.
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError>;

    /// Runs several `;`-separated statements without parameters.
    fn execute_batch(&mut self, sql: &str) -> Result<(), DbError>;

    /// Runs a query and holds the whole result in memory.
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, DbError>;

    fn begin(&mut self) -> Result<(), DbError>;

    /// Begins a transaction whose foreign keys are checked once, at commit, instead of
    /// statement by statement, so that a table and the tables referencing it can be
    /// rebuilt together. A violation makes `commit` fail and roll back. SQLite turns
    /// enforcement off before `BEGIN` and runs `PRAGMA foreign_key_check` before
    /// `COMMIT`; PostgreSQL needs nothing (its DDL keeps constraints consistent).
    fn begin_checking_foreign_keys_at_commit(&mut self) -> Result<(), DbError> {
        self.begin()
    }

    fn commit(&mut self) -> Result<(), DbError>;

    fn rollback(&mut self) -> Result<(), DbError>;

    fn in_transaction(&self) -> bool;

    /// Begins (unless one is open) the transaction of a dry run, which is rolled back
    /// at the end and must leave no trace. PostgreSQL takes the namespace's sequences
    /// into it: `nextval` is not transactional, but a sequence restarted inside a
    /// transaction (`ALTER SEQUENCE … RESTART WITH` its next value) is, so the rollback
    /// also takes back the values the dry run drew.
    fn begin_rehearsal(&mut self) -> Result<(), DbError> {
        if !self.in_transaction() {
            self.begin()?;
        }
        Ok(())
    }

    /// Stops any single statement that runs longer than `timeout` (`None`: no limit).
    fn set_statement_timeout(&mut self, timeout: Option<Duration>) -> Result<(), DbError>;
}

/// Queries whose rows are handed over one at a time instead of held.
pub trait Streaming {
    /// Runs a query and hands each row to `each` without holding the result;
    /// returns the number of rows handed over.
    fn query_each(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut RowCallback<'_>,
    ) -> Result<u64, DbError>;
}

/// The fast paths that insert many rows at once.
pub trait Bulk {
    /// Inserts rows into `table(columns)` as fast as the driver allows
    /// (binary `COPY` on PostgreSQL, a cached prepared statement on SQLite).
    fn bulk_insert(
        &mut self,
        table: &str,
        columns: &[String],
        rows: &mut dyn Iterator<Item = Vec<Value>>,
    ) -> Result<u64, DbError>;

    /// Runs `source` once and inserts one row into `table(columns)` per row it returns,
    /// as `deriver` makes it, streaming: at most `chunk` rows are held at a time, however
    /// many the query returns. One statement as far as timeouts and transactions go
    /// (a transaction is opened and committed around it if none is open).
    ///
    /// SQLite steps the query while it inserts through a cached prepared statement;
    /// PostgreSQL reads a cursor `chunk` rows at a time and sends each chunk with binary
    /// `COPY`.
    fn insert_derived(
        &mut self,
        source: &str,
        params: &[Value],
        table: &str,
        columns: &[String],
        chunk: usize,
        deriver: &mut dyn RowDeriver,
    ) -> Result<u64, DbError>;

    /// Whether a bulk load into tables with foreign keys goes faster with the keys
    /// dropped before it and added back after, each then checked in one join as a dump
    /// restore does, than checked row by row. PostgreSQL: yes (each row's check is a
    /// trigger that locks the parent row). SQLite: no (its checks are index lookups,
    /// and dropping a key rebuilds the table).
    fn add_foreign_keys_after_bulk_load(&self) -> bool;

    /// Moves the key generator of `table.column` ([`Introspect::key_generators`]) past
    /// the largest value the column holds, never back, so that the next insert leaving
    /// the column out gets a fresh key after rows were loaded with explicit keys.
    /// PostgreSQL sets the sequence (`setval`, which a rollback does not take back);
    /// SQLite's row ids follow the largest key by themselves (an `AUTOINCREMENT`
    /// counter records every larger id inserted), so there is nothing to do. Nothing is
    /// done for a column without a generator.
    fn advance_key_generator(&mut self, table: &str, column: &str) -> Result<(), DbError>;

    /// Brings the query planner's statistics of `table` up to date after a bulk load,
    /// as a restore's `vacuumdb --analyze` would: PostgreSQL plans joins over a freshly
    /// loaded table as if it held a few hundred rows until autovacuum comes by, so it
    /// runs `ANALYZE`. SQLite does nothing: its `ANALYZE` would add a `sqlite_stat1`
    /// table to the repository, and without statistics its planner assumes indexes are
    /// selective, which suits a repository's keys.
    fn refresh_statistics(&mut self, table: &str) -> Result<(), DbError>;
}

/// What the schema holds. Names are unqualified; the namespace is implied.
pub trait Introspect {
    /// Tables whose name matches a SQL `LIKE` pattern (`_` and `%`), sorted by name.
    fn tables(&mut self, like_pattern: &str) -> Result<Vec<String>, DbError>;

    fn table_exists(&mut self, table: &str) -> Result<bool, DbError> {
        let escaped = table
            .replace('\\', "\\\\")
            .replace('_', "\\_")
            .replace('%', "\\%");
        Ok(self.tables(&escaped)?.iter().any(|t| t == table))
    }

    fn columns(&mut self, table: &str) -> Result<Vec<ColumnInfo>, DbError>;

    fn primary_key(&mut self, table: &str) -> Result<Option<KeyInfo>, DbError>;

    fn foreign_keys(&mut self, table: &str) -> Result<Vec<ForeignKeyInfo>, DbError>;

    fn unique_constraints(&mut self, table: &str) -> Result<Vec<KeyInfo>, DbError>;

    fn indexes(&mut self, table: &str) -> Result<Vec<IndexInfo>, DbError>;

    /// The columns of `table` that get a value from a key generator when an insert
    /// leaves them out, with that generator, in column order (a column whose default
    /// draws from two sequences is listed twice).
    fn key_generators(&mut self, table: &str) -> Result<Vec<(String, KeyGenerator)>, DbError>;

    /// Every sequence of the namespace with the column owning it, sorted by name. SQLite
    /// has none: an `AUTOINCREMENT` counter belongs to its table
    /// ([`KeyGenerator::Autoincrement`]).
    #[cfg(any(test, feature = "internals"))]
    fn sequences(&mut self) -> Result<Vec<SequenceInfo>, DbError>;

    /// How many rows of `table` hold in `column` anything but a UUID in the form this
    /// backend stores one ([`Value::Uuid`]: native `uuid` on PostgreSQL, 32 lowercase hex
    /// characters on SQLite); NULL counts.
    #[cfg(any(test, feature = "internals"))]
    fn non_uuid_values(&mut self, table: &str, column: &str) -> Result<u64, DbError>;
}

/// Portable schema changes.
pub trait Ddl {
    /// Applies one schema change, preserving names; returns the statements it ran.
    /// SQLite rebuilds the table where `ALTER TABLE` cannot do the change.
    fn apply_schema_change(&mut self, change: &SchemaChange) -> Result<Vec<String>, DbError>;

    /// The rows the last [`SchemaChange::PrepareRewrite`] on this connection copied
    /// (`None` before one): the table's step records them in the ledger, so that the
    /// swap compares the old table with them instead of counting the copy again.
    fn rows_copied(&self) -> Option<u64> {
        None
    }

    /// The type this backend declares for a column of the portable type `portable`
    /// ([`schema_change`]): `UUID` is `uuid` on PostgreSQL and `CHAR(32)` on SQLite;
    /// types it does not map pass through.
    #[cfg(any(test, feature = "internals"))]
    fn column_type(&self, portable: &str) -> String;
}

/// The migration lock (see lock.rs for the recorded holder).
pub trait Locking {
    /// Tries once to take the migration lock without waiting.
    fn try_lock(&mut self, holder: &LockHolder) -> Result<LockAttempt, DbError>;

    /// Releases the lock if this connection holds it.
    fn unlock(&mut self) -> Result<(), DbError>;

    /// Who holds the lock now, without taking it or waiting, so that a holder is not
    /// disturbed. PostgreSQL reads `pg_locks` and takes nothing. SQLite's lock file can
    /// only be asked by trying it: the look tries for a *shared* lock, released at once,
    /// which fails while a migrator holds the exclusive one; a migrator starting in
    /// that instant finds the lock busy and waits it out as it does any held lock.
    fn lock_state(&mut self) -> Result<LockState, DbError>;
}

/// The largest number of parallel steps Ferry picks by itself (`--jobs` may ask for more).
pub const MAX_DEFAULT_JOBS: usize = 4;

/// Hands out connections for parallel steps ([`Connection::step_workers`]). Each
/// connection is set up as the coordinating one is (namespace, statement timeout,
/// session checks before each commit) but never takes the migration lock: the
/// coordinating connection holds it for all of them, and each step checks before its
/// commit that it still does.
pub trait StepWorkers: Send + Sync {
    /// A connection of the pool, waiting for one to be free; `None` when the server
    /// gives none within a short wait (its or the role's connection limit is reached),
    /// so that the step runs on the coordinating connection instead.
    fn connection(&self) -> Result<Option<Box<dyn Connection + Send>>, DbError>;
}

/// Runs `f` in the connection's open transaction, or else in one of its own that commits
/// when `f` succeeds and rolls back when it fails, so that a bulk operation is one
/// statement as far as transactions go.
pub(crate) fn in_own_transaction<C: Connection + ?Sized, T>(
    conn: &mut C,
    f: impl FnOnce(&mut C) -> Result<T, DbError>,
) -> Result<T, DbError> {
    if conn.in_transaction() {
        return f(conn);
    }
    conn.begin()?;
    match f(conn) {
        Ok(v) => conn.commit().map(|()| v),
        Err(e) => {
            let _ = conn.rollback();
            Err(e)
        }
    }
}

/// Opens a connection for a parsed URL.
pub fn connect(url: &DbUrl) -> Result<Box<dyn Connection>, DbError> {
    match url {
        DbUrl::Sqlite { .. } => Ok(Box::new(sqlite::SqliteConnection::open(url)?)),
        DbUrl::Postgres { .. } => Ok(Box::new(postgres::PgConnection::open(url)?)),
    }
}

/// The connection trait and its concerns, for code that calls them on a concrete
/// connection type (`use ferry::backend::prelude::*`); through `dyn Connection` they
/// need no import.
#[cfg(any(test, feature = "internals"))]
pub mod prelude {
    pub use super::{Bulk, Connection, Ddl, Introspect, Locking, Sql, Streaming};
}
