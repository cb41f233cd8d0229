//! A connection an application opened itself and lends to the migrator for every
//! operation (an open `rusqlite::Connection`, or a `tokio_postgres::Client` whose
//! connection task the application drives).
//!
//! A lent connection is shared by every operation of the migrator in turn: each
//! operation gets a [`Lent`] handle to it, and handles are only used one at a time
//! (the migrator is single-threaded and never nests database calls across handles).

use super::postgres::PgConnection;
use super::sqlite::SqliteConnection;
use super::{
    ColumnInfo, Connection, DbError, Dialect, ForeignKeyInfo, IndexInfo, KeyGenerator, KeyInfo,
    LockAttempt, LockHolder, LockState, RowCallback, Rows, SchemaChange, SqlSyntax, Value,
};
use crate::backend::{Bulk, Ddl, Introspect, Locking, Sql, Streaming};
use std::cell::RefCell;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

/// An application's own connection, lent to the migrator.
#[derive(Clone)]
pub enum LentConnection {
    Sqlite(Rc<RefCell<SqliteConnection>>),
    Postgres(Rc<RefCell<PgConnection>>),
}

impl LentConnection {
    /// An application's SQLite connection (Ferry turns foreign keys on and sets its
    /// busy timeout, see [`SqliteConnection::from_raw`]).
    pub fn sqlite(raw: rusqlite::Connection) -> Result<LentConnection, DbError> {
        let conn = SqliteConnection::from_raw(raw)?;
        Ok(LentConnection::Sqlite(Rc::new(RefCell::new(conn))))
    }

    /// `schema` on the server of an application's tokio-postgres client.
    pub fn postgres(client: tokio_postgres::Client, schema: &str) -> Result<Self, DbError> {
        let conn = PgConnection::from_client(client, schema, "postgres (application client)")?;
        Ok(LentConnection::Postgres(Rc::new(RefCell::new(conn))))
    }

    /// A handle for one operation.
    pub fn handle(&self) -> Box<dyn Connection> {
        match self {
            LentConnection::Sqlite(c) => Box::new(Lent::new(c.clone())),
            LentConnection::Postgres(c) => Box::new(Lent::new(c.clone())),
        }
    }

    /// Whether both are the very same connection.
    pub fn same(&self, other: &LentConnection) -> bool {
        match (self, other) {
            (LentConnection::Sqlite(a), LentConnection::Sqlite(b)) => Rc::ptr_eq(a, b),
            (LentConnection::Postgres(a), LentConnection::Postgres(b)) => Rc::ptr_eq(a, b),
            _ => false,
        }
    }

    /// The application's SQLite connection back, when this is one and no handle is left.
    pub fn into_sqlite(self) -> Option<rusqlite::Connection> {
        match self {
            LentConnection::Sqlite(rc) => Rc::try_unwrap(rc)
                .ok()
                .map(|cell| cell.into_inner().into_raw()),
            LentConnection::Postgres(_) => None,
        }
    }
}

/// A handle to a lent connection; every call borrows it for its own duration.
pub struct Lent<C: Connection> {
    inner: Rc<RefCell<C>>,
    dialect: Dialect,
    sql_syntax: &'static SqlSyntax,
    namespace: Option<String>,
}

impl<C: Connection> Lent<C> {
    pub fn new(inner: Rc<RefCell<C>>) -> Lent<C> {
        let (dialect, sql_syntax, namespace) = {
            let c = inner.borrow();
            (c.dialect(), c.sql_syntax(), c.namespace().map(String::from))
        };
        Lent {
            inner,
            dialect,
            sql_syntax,
            namespace,
        }
    }
}

impl<C: Connection> Connection for Lent<C> {
    fn dialect(&self) -> Dialect {
        self.dialect
    }

    fn sql_syntax(&self) -> &'static SqlSyntax {
        self.sql_syntax
    }

    fn namespace(&self) -> Option<&str> {
        self.namespace.as_deref()
    }

    fn describe(&self) -> String {
        self.inner.borrow().describe()
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

    fn quote_ident(&self, name: &str) -> String {
        self.inner.borrow().quote_ident(name)
    }
}

impl<C: Connection> Sql for Lent<C> {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        self.inner.borrow_mut().execute(sql, params)
    }

    fn execute_batch(&mut self, sql: &str) -> Result<(), DbError> {
        self.inner.borrow_mut().execute_batch(sql)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        self.inner.borrow_mut().query(sql, params)
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

    fn set_statement_timeout(&mut self, timeout: Option<Duration>) -> Result<(), DbError> {
        self.inner.borrow_mut().set_statement_timeout(timeout)
    }
}

impl<C: Connection> Streaming for Lent<C> {
    fn query_each(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut RowCallback<'_>,
    ) -> Result<u64, DbError> {
        self.inner.borrow_mut().query_each(sql, params, each)
    }
}

impl<C: Connection> Bulk for Lent<C> {
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

    fn add_foreign_keys_after_bulk_load(&self) -> bool {
        self.inner.borrow().add_foreign_keys_after_bulk_load()
    }

    fn advance_key_generator(&mut self, table: &str, column: &str) -> Result<(), DbError> {
        self.inner.borrow_mut().advance_key_generator(table, column)
    }

    fn refresh_statistics(&mut self, table: &str) -> Result<(), DbError> {
        self.inner.borrow_mut().refresh_statistics(table)
    }
}

impl<C: Connection> Introspect for Lent<C> {
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

    fn key_generators(&mut self, table: &str) -> Result<Vec<(String, KeyGenerator)>, DbError> {
        self.inner.borrow_mut().key_generators(table)
    }

    #[cfg(any(test, feature = "internals"))]
    fn sequences(&mut self) -> Result<Vec<crate::backend::SequenceInfo>, DbError> {
        self.inner.borrow_mut().sequences()
    }

    #[cfg(any(test, feature = "internals"))]
    fn non_uuid_values(&mut self, table: &str, column: &str) -> Result<u64, DbError> {
        self.inner.borrow_mut().non_uuid_values(table, column)
    }
}

impl<C: Connection> Ddl for Lent<C> {
    fn apply_schema_change(&mut self, change: &SchemaChange) -> Result<Vec<String>, DbError> {
        self.inner.borrow_mut().apply_schema_change(change)
    }

    fn rows_copied(&self) -> Option<u64> {
        self.inner.borrow().rows_copied()
    }

    #[cfg(any(test, feature = "internals"))]
    fn column_type(&self, portable: &str) -> String {
        self.inner.borrow().column_type(portable)
    }
}

impl<C: Connection> Locking for Lent<C> {
    fn try_lock(&mut self, holder: &LockHolder) -> Result<LockAttempt, DbError> {
        self.inner.borrow_mut().try_lock(holder)
    }

    fn unlock(&mut self) -> Result<(), DbError> {
        self.inner.borrow_mut().unlock()
    }

    fn lock_state(&mut self) -> Result<LockState, DbError> {
        self.inner.borrow_mut().lock_state()
    }
}
