//! Where a migrator's connections come from: a URL it opens itself for every
//! operation, one connection the application opened and lends to it (see
//! [`crate::backend::LentConnection`]), or an application's pool.
//!
//! An application's pool ([`Source::Pool`]) is used for making connections, never for
//! lending them: Ferry changes the session it migrates on (`search_path`, the statement
//! timeout, the session-level advisory lock, cached prepared statements). A connection
//! handed back to a pool would carry that state to the next user, so Ferry has the
//! pool's manager make one connection for its own and closes it at the end.
//!
//! What a database is and how it is opened, created or copied is the backends' business
//! ([`crate::backend::Database`]); this module only says where to ask.

use crate::backend::{self, Connection, Database, DbError, DbUrl, LentConnection};
use std::path::PathBuf;
use std::rc::Rc;

/// Where the connections to one database come from.
#[derive(Clone)]
pub enum Source {
    /// Opened afresh from the URL for each operation.
    Url(DbUrl),
    /// An application's own connection, lent for every operation.
    Lent(LentConnection),
    /// An application's pool: each operation gets a new connection from the pool's
    /// manager, its own until the operation ends.
    Pool(Rc<dyn Database>),
}

impl Source {
    /// The URL, when this source opens its own connections.
    pub fn url(&self) -> Option<&DbUrl> {
        match self {
            Source::Url(u) => Some(u),
            _ => None,
        }
    }

    /// Runs `f` on the database this source names, when it names one (a lent connection
    /// is always to something that exists).
    fn with_database<T>(&self, f: impl FnOnce(&dyn Database) -> T) -> Option<T> {
        match self {
            Source::Url(url) => Some(f(backend::database(url).as_ref())),
            Source::Pool(db) => Some(f(db.as_ref())),
            Source::Lent(_) => None,
        }
    }

    #[cfg(any(test, feature = "internals"))]
    /// Whether the database exists at all. Only a URL or a pool can name a database that
    /// is not there: a SQLite file that does not exist yet, or a PostgreSQL schema (or
    /// database) that does not exist. A lent connection is always to something.
    pub fn exists(&self) -> Result<bool, DbError> {
        self.with_database(|db| db.exists()).unwrap_or(Ok(true))
    }

    /// A connection, or `None` when the database does not exist (see [`Self::exists`]);
    /// a SQLite file that is not there is not created.
    pub fn open_existing(&self) -> Result<Option<Box<dyn Connection>>, DbError> {
        match self.with_database(|db| db.open_existing()) {
            Some(conn) => conn,
            None => self.open().map(Some),
        }
    }

    /// Creates the database a URL names when it does not exist: a SQLite file is
    /// created by opening it; a PostgreSQL schema is created in its database (a missing
    /// PostgreSQL database is not created: that is the server administrator's call).
    pub fn create(&self) -> Result<(), DbError> {
        self.with_database(|db| db.create()).unwrap_or(Ok(()))
    }

    /// A connection for an operation that only reads, which creates nothing: a SQLite
    /// file is opened read-only, and one that does not exist (in a directory that does)
    /// reads as an empty database (an in-memory stand-in; the command line says the
    /// file does not exist).
    pub fn open_read_only(&self) -> Result<Box<dyn Connection>, DbError> {
        match self.with_database(|db| db.open_read_only()) {
            Some(conn) => conn,
            None => self.open(),
        }
    }

    /// A connection for one operation.
    pub fn open(&self) -> Result<Box<dyn Connection>, DbError> {
        match self {
            Source::Lent(lent) => Ok(lent.handle()),
            _ => self
                .with_database(|db| db.open())
                .expect("a source that is not lent names a database"),
        }
    }

    /// The role's name and where the connection points, when connections to this
    /// database are a superuser's; a database that is not there is not created.
    pub fn superuser(&self) -> Result<Option<(String, String)>, DbError> {
        match self.with_database(|db| db.superuser()) {
            Some(found) => found,
            None => {
                let mut conn = self.open()?;
                Ok(conn.superuser()?.map(|role| (role, conn.describe())))
            }
        }
    }

    /// The file behind this source, for a database that is one file named by a URL.
    pub fn file_path(&self) -> Option<PathBuf> {
        self.with_database(|db| db.file().map(PathBuf::from))
            .flatten()
    }

    /// Whether two sources are the same database (so they share one ledger and lock).
    pub fn same_database(&self, other: &Source) -> bool {
        match (self, other) {
            (Source::Url(a), Source::Url(b)) => a == b,
            (Source::Lent(a), Source::Lent(b)) => a.same(b),
            (Source::Pool(a), Source::Pool(b)) => Rc::ptr_eq(a, b),
            _ => false,
        }
    }
}
