//! Where a migrator's connections come from: a URL it opens itself for every
//! operation, or one connection the application opened and lends to it (an open
//! `rusqlite::Connection`, or a `tokio_postgres::Client` whose connection task the
//! application drives).
//!
//! A lent connection is shared by every operation of the migrator in turn: each
//! operation gets a [`Lent`] handle to it, and handles are only used one at a time
//! (the migrator is single-threaded and never nests database calls across handles).
//!
//! An application's pool ([`Source::Pool`]) is used for making connections, never for
//! lending them: Ferry changes the session it migrates on (`search_path`, the statement
//! timeout, the session-level advisory lock, cached prepared statements). A connection
//! handed back to a pool would carry that state to the next user, so Ferry has the
//! pool's manager make one connection for its own and closes it at the end.

use crate::backend::postgres::PgConnection;
use crate::backend::sqlite::SqliteConnection;
use crate::backend::{
    self, ColumnInfo, Connection, DbError, DbUrl, Dialect, ForeignKeyInfo, IndexInfo, KeyInfo,
    LockAttempt, LockHolder, RowCallback, Rows, SchemaChange, Value,
};
use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

/// Where the connections to one database come from.
#[derive(Clone)]
pub enum Source {
    /// Opened afresh from the URL for each operation.
    Url(DbUrl),
    /// An application's own SQLite connection, lent for every operation.
    Sqlite(Rc<RefCell<SqliteConnection>>),
    /// An application's own PostgreSQL client, lent for every operation.
    Postgres(Rc<RefCell<PgConnection>>),
    /// An application's `deadpool_postgres` pool and the schema: each operation gets a
    /// new connection from the pool's manager, its own until the operation ends.
    Pool(Rc<(deadpool_postgres::Pool, String)>),
}

impl Source {
    /// The URL, when this source opens its own connections.
    pub fn url(&self) -> Option<&DbUrl> {
        match self {
            Source::Url(u) => Some(u),
            _ => None,
        }
    }

    /// Whether the database exists at all. Only a URL can name a database that is not
    /// there: a SQLite file that does not exist yet, or a PostgreSQL schema (or
    /// database) that does not exist. A lent connection is always to something.
    pub fn exists(&self) -> Result<bool, DbError> {
        match self {
            Source::Url(DbUrl::Sqlite { path }) => Ok(path.exists()),
            Source::Url(_) | Source::Pool(_) => Ok(self.open_existing()?.is_some()),
            _ => Ok(true),
        }
    }

    /// A connection, or `None` when the database does not exist (see [`Self::exists`]);
    /// a SQLite file that is not there is not created.
    pub fn open_existing(&self) -> Result<Option<Box<dyn Connection>>, DbError> {
        match self {
            Source::Url(DbUrl::Sqlite { path }) if !path.exists() => Ok(None),
            Source::Url(DbUrl::Postgres { .. }) | Source::Pool(_) => match self.open() {
                Ok(conn) => Ok(Some(conn)),
                Err(e) if names_missing_database(&e) => Ok(None),
                Err(e) => Err(e),
            },
            _ => self.open().map(Some),
        }
    }

    /// Creates the database a URL names when it does not exist: a SQLite file is
    /// created by opening it; a PostgreSQL schema is created in its database (a missing
    /// PostgreSQL database is not created: that is the server administrator's call).
    pub fn create(&self) -> Result<(), DbError> {
        match self {
            Source::Url(DbUrl::Postgres { conninfo, schema }) if !self.exists()? => {
                // The schema does not exist yet, so connect to the server's default one.
                let server = DbUrl::Postgres {
                    conninfo: conninfo.clone(),
                    schema: "public".into(),
                };
                let mut conn = backend::connect(&server)?;
                let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", conn.quote_ident(schema));
                conn.execute_batch(&sql)
            }
            Source::Url(url) => backend::connect(url).map(|_| ()),
            Source::Pool(pool) if !self.exists()? => {
                let mut conn = PgConnection::from_pool(&pool.0, "public")?;
                let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", conn.quote_ident(&pool.1));
                conn.execute_batch(&sql)
            }
            _ => Ok(()),
        }
    }

    /// A connection for an operation that only reads, which creates nothing: a SQLite
    /// file is opened read-only, and one that does not exist (in a directory that does)
    /// reads as an empty database (an in-memory stand-in; the command line says the
    /// file does not exist).
    pub fn open_read_only(&self) -> Result<Box<dyn Connection>, DbError> {
        match self {
            Source::Url(DbUrl::Sqlite { path }) if !path.exists() => {
                Ok(Box::new(SqliteConnection::empty_stand_in(path)?))
            }
            Source::Url(DbUrl::Sqlite { path }) => {
                Ok(Box::new(SqliteConnection::open_path_read_only(path)?))
            }
            _ => self.open(),
        }
    }

    /// A connection for one operation.
    pub fn open(&self) -> Result<Box<dyn Connection>, DbError> {
        match self {
            Source::Url(url) => backend::connect(url),
            Source::Sqlite(c) => Ok(Box::new(Lent::new(c.clone()))),
            Source::Postgres(c) => Ok(Box::new(Lent::new(c.clone()))),
            Source::Pool(pool) => Ok(Box::new(PgConnection::from_pool(&pool.0, &pool.1)?)),
        }
    }

    /// The SQLite file behind this source, if it is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Source::Url(DbUrl::Sqlite { path }) => Some(path),
            _ => None,
        }
    }

    /// Whether two sources are the same database (so they share one ledger and lock).
    pub fn same_database(&self, other: &Source) -> bool {
        match (self, other) {
            (Source::Url(a), Source::Url(b)) => a == b,
            (Source::Sqlite(a), Source::Sqlite(b)) => Rc::ptr_eq(a, b),
            (Source::Postgres(a), Source::Postgres(b)) => Rc::ptr_eq(a, b),
            (Source::Pool(a), Source::Pool(b)) => Rc::ptr_eq(a, b),
            _ => false,
        }
    }
}

/// Whether a connection failure says the database or schema is not there.
fn names_missing_database(e: &DbError) -> bool {
    match e {
        DbError::Connect { message, .. } => {
            message.contains("does not exist") && !message.contains("role")
        }
        _ => false,
    }
}

/// A handle to a lent connection; every call borrows it for its own duration.
pub struct Lent<C: Connection> {
    inner: Rc<RefCell<C>>,
    dialect: Dialect,
    namespace: Option<String>,
}

impl<C: Connection> Lent<C> {
    pub fn new(inner: Rc<RefCell<C>>) -> Lent<C> {
        let (dialect, namespace) = {
            let c = inner.borrow();
            (c.dialect(), c.namespace().map(String::from))
        };
        Lent {
            inner,
            dialect,
            namespace,
        }
    }
}

impl<C: Connection> Connection for Lent<C> {
    fn dialect(&self) -> Dialect {
        self.dialect
    }
    fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }
    fn describe(&self) -> String {
        self.inner.borrow().describe()
    }
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        self.inner.borrow_mut().execute(sql, params)
    }
    fn execute_batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.inner.borrow_mut().execute_batch(sql)
    }
    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        self.inner.borrow_mut().query(sql, params)
    }
    fn query_each(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut RowCallback<'_>,
    ) -> Result<u64, DbError> {
        self.inner.borrow_mut().query_each(sql, params, each)
    }
    fn bulk_insert(
        &mut self,
        table: &str,
        columns: &[String],
        rows: &mut dyn Iterator<Item = Vec<Value>>,
    ) -> Result<u64, DbError> {
        self.inner.borrow_mut().bulk_insert(table, columns, rows)
    }
    fn insert_derived(
        &mut self,
        source: &str,
        params: &[Value],
        table: &str,
        columns: &[String],
        chunk: usize,
        deriver: &mut dyn crate::backend::RowDeriver,
    ) -> Result<u64, DbError> {
        self.inner
            .borrow_mut()
            .insert_derived(source, params, table, columns, chunk, deriver)
    }
    fn begin(&mut self) -> Result<(), DbError> {
        self.inner.borrow_mut().begin()
    }
    fn begin_checking_foreign_keys_at_commit(&mut self) -> Result<(), DbError> {
        self.inner
            .borrow_mut()
            .begin_checking_foreign_keys_at_commit()
    }
    fn commit(&mut self) -> Result<(), DbError> {
        self.inner.borrow_mut().commit()
    }
    fn rollback(&mut self) -> Result<(), DbError> {
        self.inner.borrow_mut().rollback()
    }
    fn in_transaction(&self) -> bool {
        self.inner.borrow().in_transaction()
    }
    fn begin_rehearsal(&mut self) -> Result<(), DbError> {
        self.inner.borrow_mut().begin_rehearsal()
    }
    fn scratch_copy(&mut self, path: &Path) -> Result<bool, DbError> {
        self.inner.borrow_mut().scratch_copy(path)
    }
    fn restrict_to_script(&mut self, on: bool) {
        self.inner.borrow_mut().restrict_to_script(on)
    }
    fn superuser(&mut self) -> Result<Option<String>, DbError> {
        self.inner.borrow_mut().superuser()
    }
    fn set_statement_timeout(&mut self, timeout: Option<Duration>) -> Result<(), DbError> {
        self.inner.borrow_mut().set_statement_timeout(timeout)
    }
    fn quote_ident(&self, name: &str) -> String {
        self.inner.borrow().quote_ident(name)
    }
    fn tables(&mut self, like_pattern: &str) -> Result<Vec<String>, DbError> {
        self.inner.borrow_mut().tables(like_pattern)
    }
    fn table_exists(&mut self, table: &str) -> Result<bool, DbError> {
        self.inner.borrow_mut().table_exists(table)
    }
    fn columns(&mut self, table: &str) -> Result<Vec<ColumnInfo>, DbError> {
        self.inner.borrow_mut().columns(table)
    }
    fn primary_key(&mut self, table: &str) -> Result<Option<KeyInfo>, DbError> {
        self.inner.borrow_mut().primary_key(table)
    }
    fn foreign_keys(&mut self, table: &str) -> Result<Vec<ForeignKeyInfo>, DbError> {
        self.inner.borrow_mut().foreign_keys(table)
    }
    fn unique_constraints(&mut self, table: &str) -> Result<Vec<KeyInfo>, DbError> {
        self.inner.borrow_mut().unique_constraints(table)
    }
    fn indexes(&mut self, table: &str) -> Result<Vec<IndexInfo>, DbError> {
        self.inner.borrow_mut().indexes(table)
    }
    fn apply_schema_change(&mut self, change: &SchemaChange) -> Result<Vec<String>, DbError> {
        self.inner.borrow_mut().apply_schema_change(change)
    }
    fn try_lock(&mut self, holder: &LockHolder) -> Result<LockAttempt, DbError> {
        self.inner.borrow_mut().try_lock(holder)
    }
    fn unlock(&mut self) -> Result<(), DbError> {
        self.inner.borrow_mut().unlock()
    }
}
