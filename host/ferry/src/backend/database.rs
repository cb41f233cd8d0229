//! One repository database as a whole, before any connection to it: whether it exists,
//! how to create it, how to open it for writing or only for reading, and a scratch
//! copy for a dry run. Each database family answers for itself, so that nothing above
//! the backends asks which family a URL names.

use super::postgres::PgConnection;
use super::sqlite::SqliteConnection;
use super::{Connection, DbError, DbErrorKind, DbUrl, Sql};
use std::path::{Path, PathBuf};

/// A repository database, as a URL or an application's pool names it.
pub trait Database {
    /// A connection for one operation; a database that does not exist is created where
    /// the family creates by opening (a SQLite file), else the error says it is missing.
    fn open(&self) -> Result<Box<dyn Connection>, DbError>;

    /// A connection, or `None` when the database does not exist; nothing is created.
    fn open_existing(&self) -> Result<Option<Box<dyn Connection>>, DbError> {
        match self.open() {
            Ok(conn) => Ok(Some(conn)),
            Err(e) if e.is_connect() && e.kind() == DbErrorKind::MissingDatabase => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Whether the database exists at all.
    fn exists(&self) -> Result<bool, DbError> {
        Ok(self.open_existing()?.is_some())
    }

    /// Creates the database when it does not exist (a missing PostgreSQL database is not
    /// created: that is the server administrator's call; its schema is).
    fn create(&self) -> Result<(), DbError>;

    /// A connection for an operation that only reads, which creates nothing.
    fn open_read_only(&self) -> Result<Box<dyn Connection>, DbError> {
        self.open()
    }

    /// The role's name and where the connection points, when connections to this
    /// database are a superuser's (which no statement guard can contain); nothing is
    /// created to find out.
    fn superuser(&self) -> Result<Option<(String, String)>, DbError> {
        match self.open_existing()? {
            Some(mut conn) => Ok(conn.superuser()?.map(|role| (role, conn.describe()))),
            None => Ok(None),
        }
    }

    /// The file the database lives in, for a database that is one file.
    fn file(&self) -> Option<&Path> {
        None
    }
}

/// The database a URL names.
pub fn database(url: &DbUrl) -> Box<dyn Database + '_> {
    match url {
        DbUrl::Sqlite { path } => Box::new(SqliteFile { path }),
        DbUrl::Postgres { .. } => Box::new(PgSchema { url }),
    }
}

/// A SQLite file: created by opening it for writing.
struct SqliteFile<'a> {
    path: &'a Path,
}

impl Database for SqliteFile<'_> {
    fn open(&self) -> Result<Box<dyn Connection>, DbError> {
        Ok(Box::new(SqliteConnection::open_path(self.path)?))
    }

    fn open_existing(&self) -> Result<Option<Box<dyn Connection>>, DbError> {
        if !self.path.exists() {
            return Ok(None);
        }
        self.open().map(Some)
    }

    fn exists(&self) -> Result<bool, DbError> {
        Ok(self.path.exists())
    }

    fn create(&self) -> Result<(), DbError> {
        self.open().map(|_| ())
    }

    /// The file opened read-only; one that does not exist (in a directory that does)
    /// reads as an empty database (an in-memory stand-in).
    fn open_read_only(&self) -> Result<Box<dyn Connection>, DbError> {
        if !self.path.exists() {
            return Ok(Box::new(SqliteConnection::empty_stand_in(self.path)?));
        }
        Ok(Box::new(SqliteConnection::open_path_read_only(self.path)?))
    }

    /// SQLite has no roles.
    fn superuser(&self) -> Result<Option<(String, String)>, DbError> {
        Ok(None)
    }

    fn file(&self) -> Option<&Path> {
        Some(self.path)
    }
}

/// A schema of a PostgreSQL database, named by a URL.
struct PgSchema<'a> {
    url: &'a DbUrl,
}

impl Database for PgSchema<'_> {
    fn open(&self) -> Result<Box<dyn Connection>, DbError> {
        Ok(Box::new(PgConnection::open(self.url)?))
    }

    fn create(&self) -> Result<(), DbError> {
        let DbUrl::Postgres { conninfo, schema } = self.url else {
            unreachable!("a PgSchema is made from a PostgreSQL URL");
        };
        if self.exists()? {
            return Ok(());
        }
        // The schema does not exist yet, so connect to the server's default one.
        let server = DbUrl::Postgres {
            conninfo: conninfo.clone(),
            schema: "public".into(),
        };
        let mut conn = PgConnection::open(&server)?;
        let sql = format!("CREATE SCHEMA IF NOT EXISTS {}", conn.quote_ident(schema));
        conn.execute_batch(&sql)
    }
}

/// A schema reached through an application's `deadpool_postgres` pool: each operation
/// gets a new connection from the pool's manager, its own until the operation ends.
pub struct PgPool {
    pool: deadpool_postgres::Pool,
    schema: String,
}

impl PgPool {
    pub fn new(pool: deadpool_postgres::Pool, schema: &str) -> PgPool {
        PgPool {
            pool,
            schema: schema.to_string(),
        }
    }
}

impl Database for PgPool {
    fn open(&self) -> Result<Box<dyn Connection>, DbError> {
        Ok(Box::new(PgConnection::from_pool(&self.pool, &self.schema)?))
    }

    fn create(&self) -> Result<(), DbError> {
        if self.exists()? {
            return Ok(());
        }
        let mut conn = PgConnection::from_pool(&self.pool, "public")?;
        let sql = format!(
            "CREATE SCHEMA IF NOT EXISTS {}",
            conn.quote_ident(&self.schema)
        );
        conn.execute_batch(&sql)
    }
}

/// A scratch database file in the temporary directory, for a dry run that runs and
/// commits on a copy ([`Connection::scratch_copy`]); removed, with the files SQLite and
/// Ferry keep beside it, when dropped.
pub struct ScratchCopy {
    path: PathBuf,
}

impl ScratchCopy {
    /// A new place for a copy of the database in `file` (named after it; `repo` when the
    /// database is no file of its own).
    pub fn beside(file: Option<&Path>) -> ScratchCopy {
        let name = file
            .and_then(Path::file_name)
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "repo".into());
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        ScratchCopy {
            path: std::env::temp_dir()
                .join(format!("ferry-sql-{}-{now_ms}-{name}", std::process::id())),
        }
    }

    /// Where the copy is (or will be) written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The URL that opens the copy.
    pub fn url(&self) -> DbUrl {
        DbUrl::Sqlite {
            path: self.path.clone(),
        }
    }
}

impl Drop for ScratchCopy {
    fn drop(&mut self) {
        let shown = self.path.display();
        for f in [
            self.path.clone(),
            PathBuf::from(format!("{shown}.ferry-lock")),
            PathBuf::from(format!("{shown}-journal")),
            PathBuf::from(format!("{shown}-wal")),
            PathBuf::from(format!("{shown}-shm")),
        ] {
            let _ = std::fs::remove_file(f);
        }
    }
}
