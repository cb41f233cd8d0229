//! A database failure, classified once where the driver's error is converted.
//!
//! A [`DbError`] carries what happened as a [`DbErrorKind`] (a unique violation, a lost
//! connection, ...), the database's own code for it (PostgreSQL's SQLSTATE, SQLite's
//! extended result code), the text users see, and the driver's error as its source. Code
//! above the backends asks the kind, never the text: the text is for people.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

/// What kind of failure a [`DbError`] is, whichever database reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DbErrorKind {
    /// A unique or primary key constraint refused a row (SQLSTATE 23505;
    /// `SQLITE_CONSTRAINT_UNIQUE`, `SQLITE_CONSTRAINT_PRIMARYKEY`).
    UniqueViolation,
    /// A foreign key constraint refused a change (SQLSTATE 23503;
    /// `SQLITE_CONSTRAINT_FOREIGNKEY`, or Ferry's own check at commit on SQLite).
    ForeignKeyViolation,
    /// The database, schema or file the URL names is not there (SQLSTATE 3D000 or
    /// 3F000; a SQLite file, or its directory, that does not exist).
    MissingDatabase,
    /// The role or file may not do this (SQLSTATE class 28 and 42501; SQLite's
    /// `SQLITE_PERM`, `SQLITE_AUTH` and `SQLITE_READONLY`).
    PermissionDenied,
    /// A statement ran past the statement timeout.
    Timeout,
    /// Another connection holds a lock this one waited for in vain (SQLSTATE 55P03;
    /// `SQLITE_BUSY`, `SQLITE_LOCKED`).
    Busy,
    /// A value cannot be stored in, or read from, a column of its type.
    Conversion,
    /// A schema change this backend cannot express.
    Unsupported,
    /// The connection is gone, or could not be made (server restart, terminated
    /// backend, dropped socket; SQLSTATE class 08 and 57P01-57P03).
    ConnectionLost,
    /// Anything else: a failing statement (a syntax error, a missing table, a check
    /// constraint, ...), a misuse.
    Other,
}

/// The source error a [`DbError`] keeps (the driver's own).
type Source = Box<dyn StdError + Send + Sync + 'static>;

/// A database failure, as a backend reports it: its [`DbErrorKind`], the database's code
/// ([`DbError::code`]) and the driver's error as [`std::error::Error::source`].
#[derive(Debug)]
pub struct DbError {
    kind: DbErrorKind,
    code: Option<String>,
    what: What,
    source: Option<Source>,
}

/// What failed, and the text users see (unchanged by the classification).
#[derive(Debug, thiserror::Error)]
enum What {
    /// The statement failed; `sql` is the statement as the script wrote it.
    #[error("{message}\n  in statement: {sql}")]
    Statement { message: String, sql: String },
    #[error("lost the database connection: {0}")]
    ConnectionLost(String),
    #[error("cannot open database {url}: {message}")]
    Connect { url: String, message: String },
    #[error(
        "statement cancelled: it ran past the statement timeout of {} s (`limits.statement_timeout_seconds`, \
         default 600; a revision's `STATEMENT_TIMEOUT_SECONDS` or a step's `timeout_seconds` overrides it)\n  in statement: {sql}",
        timeout_text(*.timeout)
    )]
    Timeout { timeout: Duration, sql: String },
    #[error("{0}")]
    Plain(String),
}

impl DbError {
    fn new(kind: DbErrorKind, what: What) -> DbError {
        DbError {
            kind,
            code: None,
            what,
            source: None,
        }
    }

    // The constructors are the backends' (and, under `internals`, the workload's): an
    // application only receives a `DbError`, so it reads it but never makes one.

    internal_fn! {
        /// Statement `sql` (as the script wrote it) failed with `message`.
        fn statement(message: impl Into<String>, sql: impl Into<String>) -> DbError {
            let (message, sql) = (message.into(), sql.into());
            DbError::new(DbErrorKind::Other, What::Statement { message, sql })
        }
    }

    internal_fn! {
        /// The connection is gone (server restart, terminated backend, dropped socket).
        fn connection_lost(message: impl Into<String>) -> DbError {
            DbError::new(
                DbErrorKind::ConnectionLost,
                What::ConnectionLost(message.into()),
            )
        }
    }

    internal_fn! {
        /// Could not connect at all, or the URL points at something that is not there.
        fn connect(url: impl Into<String>, message: impl Into<String>) -> DbError {
            let (url, message) = (url.into(), message.into());
            DbError::new(DbErrorKind::Other, What::Connect { url, message })
        }
    }

    internal_fn! {
        /// Statement `sql` ran longer than the configured statement timeout.
        fn timeout(timeout: Duration, sql: impl Into<String>) -> DbError {
            let sql = sql.into();
            DbError::new(DbErrorKind::Timeout, What::Timeout { timeout, sql })
        }
    }

    internal_fn! {
        /// A value cannot be stored in, or read from, a column of this type.
        fn conversion(message: impl Into<String>) -> DbError {
            DbError::new(DbErrorKind::Conversion, What::Plain(message.into()))
        }
    }

    internal_fn! {
        /// A schema change this backend cannot express.
        fn unsupported(message: impl Into<String>) -> DbError {
            DbError::new(DbErrorKind::Unsupported, What::Plain(message.into()))
        }
    }

    internal_fn! {
        /// Any other failure.
        fn other(message: impl Into<String>) -> DbError {
            DbError::new(DbErrorKind::Other, What::Plain(message.into()))
        }
    }

    /// The same error, classified as `kind`.
    pub(crate) fn with_kind(mut self, kind: DbErrorKind) -> DbError {
        self.kind = kind;
        self
    }

    /// The same error with the database's code (SQLSTATE, SQLite extended result code).
    pub(crate) fn with_code(mut self, code: impl Into<String>) -> DbError {
        self.code = Some(code.into());
        self
    }

    /// The same error, keeping the driver's error as its source.
    pub(crate) fn with_source(mut self, source: impl StdError + Send + Sync + 'static) -> DbError {
        self.source = Some(Box::new(source));
        self
    }

    /// What kind of failure this is.
    pub fn kind(&self) -> DbErrorKind {
        self.kind
    }

    /// The database's code for the failure, when it gave one: PostgreSQL's five-character
    /// SQLSTATE (`23505`), or SQLite's extended result code in decimal (`2067`).
    pub fn code(&self) -> Option<&str> {
        self.code.as_deref()
    }

    /// The failure's text without the statement (the whole text is the `Display`).
    pub fn message(&self) -> &str {
        match &self.what {
            What::Statement { message, .. } | What::Connect { message, .. } => message,
            What::ConnectionLost(message) | What::Plain(message) => message,
            What::Timeout { .. } => "statement timeout",
        }
    }

    /// The statement that failed, when the failure was a statement's.
    pub fn sql(&self) -> Option<&str> {
        match &self.what {
            What::Statement { sql, .. } | What::Timeout { sql, .. } => Some(sql),
            _ => None,
        }
    }

    /// The database a connection could not be opened to, as shown (no password).
    pub fn url(&self) -> Option<&str> {
        match &self.what {
            What::Connect { url, .. } => Some(url),
            _ => None,
        }
    }

    /// The statement timeout that stopped the statement, for a [`DbErrorKind::Timeout`]
    /// that Ferry's own timeout caused.
    pub fn timeout_limit(&self) -> Option<Duration> {
        match &self.what {
            What::Timeout { timeout, .. } => Some(*timeout),
            _ => None,
        }
    }

    /// Whether the error is a statement's (not a connection's or a conversion's).
    pub fn is_statement(&self) -> bool {
        matches!(self.what, What::Statement { .. })
    }

    /// Whether the error is a failure to open a connection.
    pub fn is_connect(&self) -> bool {
        matches!(self.what, What::Connect { .. })
    }

    /// The same statement failure, its message extended by `more` (e.g. the key of a
    /// violated constraint); other failures are returned unchanged.
    pub(crate) fn with_message_suffix(mut self, more: &str) -> DbError {
        if let What::Statement { message, .. } = &mut self.what {
            message.push_str(more);
        }
        self
    }

    /// The same statement failure, naming `sql` as the statement; other failures are
    /// returned unchanged.
    pub(crate) fn in_statement(mut self, statement: &str) -> DbError {
        if let What::Statement { sql, .. } = &mut self.what {
            *sql = statement.to_string();
        }
        self
    }
}

impl fmt::Display for DbError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.what.fmt(f)
    }
}

impl StdError for DbError {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.source
            .as_deref()
            .map(|s| s as &(dyn StdError + 'static))
    }
}

/// A timeout in seconds, with a fraction only when it has one (`2`, `0.2`).
fn timeout_text(t: Duration) -> String {
    if t.subsec_millis() == 0 {
        t.as_secs().to_string()
    } else {
        format!("{:.1}", t.as_secs_f64())
    }
}

/// The kind of a PostgreSQL error, from its SQLSTATE.
pub(crate) fn postgres_kind(sqlstate: &str) -> DbErrorKind {
    match sqlstate {
        "23505" => DbErrorKind::UniqueViolation,
        "23503" => DbErrorKind::ForeignKeyViolation,
        // invalid_catalog_name (no such database), invalid_schema_name.
        "3D000" | "3F000" => DbErrorKind::MissingDatabase,
        "42501" => DbErrorKind::PermissionDenied,
        s if s.starts_with("28") => DbErrorKind::PermissionDenied,
        // query_canceled: a statement timeout (the backend tells its own timeout apart).
        "57014" => DbErrorKind::Timeout,
        "55P03" => DbErrorKind::Busy,
        // admin_shutdown, crash_shutdown, cannot_connect_now.
        "57P01" | "57P02" | "57P03" => DbErrorKind::ConnectionLost,
        s if s.starts_with("08") => DbErrorKind::ConnectionLost,
        _ => DbErrorKind::Other,
    }
}

/// The kind of a SQLite error, from its extended result code.
pub(crate) fn sqlite_kind(extended_code: i32) -> DbErrorKind {
    use rusqlite::ffi;
    match extended_code {
        ffi::SQLITE_CONSTRAINT_UNIQUE | ffi::SQLITE_CONSTRAINT_PRIMARYKEY => {
            DbErrorKind::UniqueViolation
        }
        ffi::SQLITE_CONSTRAINT_FOREIGNKEY => DbErrorKind::ForeignKeyViolation,
        _ => match extended_code & 0xff {
            ffi::SQLITE_PERM | ffi::SQLITE_AUTH | ffi::SQLITE_READONLY => {
                DbErrorKind::PermissionDenied
            }
            ffi::SQLITE_BUSY | ffi::SQLITE_LOCKED => DbErrorKind::Busy,
            _ => DbErrorKind::Other,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_is_the_failures_and_the_kind_travels_beside_it() {
        let e = DbError::statement("boom", "SELECT 1")
            .with_kind(DbErrorKind::UniqueViolation)
            .with_code("23505");
        assert_eq!(e.to_string(), "boom\n  in statement: SELECT 1");
        assert_eq!(e.kind(), DbErrorKind::UniqueViolation);
        assert_eq!(e.code(), Some("23505"));
        assert_eq!(e.sql(), Some("SELECT 1"));
        let lost = DbError::connection_lost("gone");
        assert_eq!(lost.to_string(), "lost the database connection: gone");
        assert_eq!(lost.kind(), DbErrorKind::ConnectionLost);
    }

    #[test]
    fn sqlstates_and_sqlite_codes_map_to_kinds() {
        assert_eq!(postgres_kind("23505"), DbErrorKind::UniqueViolation);
        assert_eq!(postgres_kind("28P01"), DbErrorKind::PermissionDenied);
        assert_eq!(postgres_kind("08006"), DbErrorKind::ConnectionLost);
        assert_eq!(postgres_kind("42601"), DbErrorKind::Other);
        use rusqlite::ffi;
        assert_eq!(
            sqlite_kind(ffi::SQLITE_CONSTRAINT_PRIMARYKEY),
            DbErrorKind::UniqueViolation
        );
        assert_eq!(
            sqlite_kind(ffi::SQLITE_CONSTRAINT_NOTNULL),
            DbErrorKind::Other
        );
        assert_eq!(
            sqlite_kind(ffi::SQLITE_READONLY_DIRECTORY),
            DbErrorKind::PermissionDenied
        );
        assert_eq!(sqlite_kind(ffi::SQLITE_BUSY_SNAPSHOT), DbErrorKind::Busy);
    }
}
