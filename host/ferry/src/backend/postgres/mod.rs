//! The PostgreSQL backend (tokio-postgres).
//!
//! The [`Connection`] trait is synchronous: each connection owns a tokio runtime
//! (`pg_runtime`), the driver's connection task is spawned on it, and every
//! call blocks on its future. TLS and passwords are read as libpq reads them
//! (`connect.rs`). Every unqualified name resolves in the connection's schema
//! (`SET search_path`); Ferry's own ledger statements also name the schema, and the
//! session is set up again before, and checked before the commit of, every transaction
//! (`session.rs`).
//!
//! Notes for script authors:
//! - `?` is always a placeholder, so jsonb's `?`, `?|` and `?&` operators cannot be
//!   used; see [`crate::backend::rewrite_placeholders`].
//! - Parameter and column conversions are listed in the private `values` module.
//! - `set_statement_timeout` is a session `SET`; inside a transaction that is then
//!   rolled back, PostgreSQL reverts it.

mod connect;
mod core_share;
mod ddl;
mod introspect;
mod rewrite;
mod session;
mod values;
mod workers;

use crate::backend::{Bulk, Ddl, Introspect, Locking, Sql, Streaming};
use std::collections::HashMap;
use std::pin::pin;
use std::time::Duration;

use super::pg_runtime::IoRuntime;
use futures_util::TryStreamExt;
use sha2::{Digest, Sha256};
use tokio::task::JoinHandle;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::Type;
use tokio_postgres::{Client, Row, Statement};

use super::url::mask_password;
use super::{
    rewrite_placeholders, ColumnInfo, Connection, DbError, DbErrorKind, DbUrl, Dialect,
    ForeignKeyInfo, IndexInfo, KeyGenerator, KeyInfo, LockAttempt, LockHolder, LockState,
    RowCallback, RowDeriver, Rows, SchemaChange, SqlSyntax, Value,
};
use connect::PgClient;
/// For the tests of the pooled steps' share of the cores.
#[cfg(feature = "internals")]
pub use core_share::workers_per_step;
use values::Param;

/// Sets how often the server checks, during a long statement, that the client is still there.
const CLIENT_CHECK: &str = "SET client_connection_check_interval = '1s'";

/// How many prepared statements a connection keeps before it starts afresh.
const STATEMENT_CACHE_LIMIT: usize = 512;

/// PostgreSQL's SQL as the statement guard reads it: `$` in names, dollar quoting and
/// `$n` parameters, nested comments, `E'…'` escapes, `U&` escaped strings and names; and
/// the settings a script may change with `SET` / `SET LOCAL` / `RESET`, planner and
/// memory knobs that cannot affect what Ferry relies on.
pub static SQL_SYNTAX: SqlSyntax = SqlSyntax {
    dollar_in_names: true,
    dollar_quotes: true,
    nested_comments: true,
    escape_strings: true,
    unicode_escapes: true,
    backtick_and_bracket_names: false,
    inline_trigger_bodies: false,
    settable: &[
        "work_mem",
        "maintenance_work_mem",
        "temp_buffers",
        "synchronous_commit",
        "max_parallel_workers_per_gather",
        "max_parallel_maintenance_workers",
        "random_page_cost",
        "seq_page_cost",
        "effective_cache_size",
        "effective_io_concurrency",
        "jit",
    ],
};

/// An open PostgreSQL connection, every table in one namespace.
pub struct PgConnection {
    // Declared before the runtime so that it is dropped first.
    client: Option<PgClient>,
    task: Option<JoinHandle<()>>,
    runtime: IoRuntime,
    schema: String,
    /// The URL without password, for messages.
    shown: String,
    statements: HashMap<String, Statement>,
    in_transaction: bool,
    statement_timeout: Option<Duration>,
    lock_held: bool,
    /// Whether Ferry set the statement timeout (else the role's or URL's default stays).
    timeout_set: bool,
    /// Whether the server knows `client_connection_check_interval` (PostgreSQL 14+).
    client_check: bool,
    /// The session as Ferry set it up (see `session.rs`), checked before each commit.
    session: Option<String>,
    /// How this connection was made, for the pool of parallel steps (`None` for a
    /// connection an application made or lent: its steps run one at a time).
    settings: Option<connect::Settings>,
    /// The pool of parallel steps, once asked for (`workers.rs`).
    workers: Option<std::sync::Arc<workers::PgStepWorkers>>,
    /// On a connection of that pool: the backend pid of the coordinating connection,
    /// which must still hold the migration lock when this one commits (`session.rs`).
    lock_holder: Option<i32>,
    /// The rows the last `PrepareRewrite` copied ([`Ddl::rows_copied`]).
    rows_copied: Option<u64>,
    /// On a connection of that pool: how it takes its share of the server's cores
    /// beside the other steps running (`core_share.rs`).
    core_share: Option<core_share::CoreShare>,
}

/// The text of a driver error, with the server's message, detail and hint.
fn error_text(e: &tokio_postgres::Error) -> String {
    if let Some(db) = e.as_db_error() {
        let mut text = format!(
            "{}: {} (SQLSTATE {})",
            db.severity(),
            db.message(),
            db.code().code()
        );
        if let Some(detail) = db.detail() {
            text.push_str(&format!("\n  detail: {detail}"));
        }
        if let Some(hint) = db.hint() {
            text.push_str(&format!("\n  hint: {hint}"));
        }
        // A constraint's message names the constraint and its detail the key; the
        // table is in a field of its own.
        if let Some(table) = db.table() {
            match table.strip_prefix(crate::backend::rewrite_plan::STAGED_PREFIX) {
                // A table rewrite's copy (`rewrite.rs`): name the table it stands for.
                Some(original) => text.push_str(&format!(
                    "\n  table: {original} (its rewritten copy {table})"
                )),
                None => text.push_str(&format!("\n  table: {table}")),
            }
        }
        return text;
    }
    let mut text = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `error` with the kind and SQLSTATE of the driver's error `e`, which it keeps as its
/// source. A kind the caller already decided (a lost connection, a timeout, a value
/// that does not convert) stands.
fn classified(error: DbError, e: tokio_postgres::Error) -> DbError {
    let error = match e.code() {
        Some(code) => {
            let error = if error.kind() == DbErrorKind::Other {
                error.with_kind(super::error::postgres_kind(code.code()))
            } else {
                error
            };
            error.with_code(code.code())
        }
        // No answer from a server at all: it could not be reached, or went away.
        None if e.is_closed() || (error.is_connect() && e.as_db_error().is_none()) => {
            error.with_kind(DbErrorKind::ConnectionLost)
        }
        None => error,
    };
    error.with_source(e)
}

/// The application name that lets another session name this one as lock holder.
fn application_name() -> String {
    let host = hostname::get()
        .map(|h| h.to_string_lossy().into_owned())
        .unwrap_or_else(|_| "unknown".into());
    format!("ferry {} {}", host.replace(' ', "_"), std::process::id())
}

/// The advisory lock key of a schema: the first 8 bytes of sha256("ferry:" + schema).
/// Whether a statement changes the schema.
fn is_ddl(sql: &str) -> bool {
    let head = sql.split_whitespace().next().unwrap_or("");
    ["CREATE", "ALTER", "DROP", "TRUNCATE", "COMMENT"]
        .iter()
        .any(|k| head.eq_ignore_ascii_case(k))
}

pub fn lock_key(schema: &str) -> i64 {
    let digest = Sha256::digest(format!("ferry:{schema}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

impl PgConnection {
    /// Connects to the server of a `postgres://` URL and enters its schema.
    pub fn open(url: &DbUrl) -> Result<Self, DbError> {
        let DbUrl::Postgres { conninfo, schema } = url else {
            return Err(DbError::other(format!(
                "not a PostgreSQL URL: {}",
                mask_password(&url.display())
            )));
        };
        let shown = mask_password(conninfo);
        let connect_error = |message: String| DbError::connect(shown.clone(), message);
        // TLS, the password and their environment variables, as libpq reads them.
        let mut settings = connect::settings(conninfo, &connect::Surroundings::process())
            .map_err(connect_error)?;
        settings.config.application_name(application_name());
        let runtime = IoRuntime::new()
            .map_err(|e| connect_error(format!("cannot start the I/O runtime: {e}")))?;
        let kept = settings.clone();
        let (client, task) = runtime
            .block_on(connect::connect(settings, &runtime))
            .map_err(|e| classified(connect_error(error_text(&e)), e))?;
        let mut conn = Self::enter(PgClient::Own(client), Some(task), runtime, schema, &shown)?;
        conn.settings = Some(kept);
        Ok(conn)
    }

    /// A connection made by an application's pool's manager (see
    /// [`crate::migrator::Builder::pg_pool`]) on a runtime of Ferry's own, and enters
    /// `schema`. The connection is Ferry's until dropped: it never goes back to the pool.
    pub fn from_pool(pool: &deadpool_postgres::Pool, schema: &str) -> Result<Self, DbError> {
        let shown = "a connection of the application's pool".to_string();
        let runtime = IoRuntime::new()
            .map_err(|e| DbError::other(format!("cannot start the I/O runtime: {e}")))?;
        let client = runtime.block_on(connect::from_pool(pool)).map_err(|e| {
            let message = format!("the application's pool could not connect: {e}");
            classified(DbError::connect(shown.clone(), message), e)
        })?;
        Self::enter(PgClient::Pooled(client), None, runtime, schema, &shown)
    }

    /// Wraps a client connected elsewhere whose connection task is driven elsewhere
    /// (e.g. on a multi-threaded runtime), and enters `schema`.
    pub fn from_client(client: Client, schema: &str, shown: &str) -> Result<Self, DbError> {
        let runtime = IoRuntime::new()
            .map_err(|e| DbError::other(format!("cannot start the I/O runtime: {e}")))?;
        Self::enter(
            PgClient::Own(client),
            None,
            runtime,
            schema,
            &mask_password(shown),
        )
    }

    fn enter(
        client: PgClient,
        task: Option<JoinHandle<()>>,
        runtime: IoRuntime,
        schema: &str,
        shown: &str,
    ) -> Result<Self, DbError> {
        let connect_error = |message: String| DbError::connect(shown, message);
        let found = runtime
            .block_on(client.query_opt(
                "SELECT current_user::text, has_schema_privilege(oid, 'USAGE') \
                 FROM pg_namespace WHERE nspname = $1",
                &[&schema],
            ))
            .map_err(|e| classified(connect_error(error_text(&e)), e))?;
        let Some(found) = found else {
            return Err(connect_error(format!("schema {schema} does not exist"))
                .with_kind(DbErrorKind::MissingDatabase));
        };
        // Without USAGE every table of the schema reads as missing: say why instead.
        if !found.get::<_, bool>(1) {
            let role: String = found.get(0);
            return Err(connect_error(format!(
                "role {role} has no USAGE privilege on schema {schema}: permission denied \
                 (GRANT USAGE ON SCHEMA {schema} TO {role})"
            ))
            .with_kind(DbErrorKind::PermissionDenied));
        }
        runtime
            .block_on(client.batch_execute(&format!(
                "SET search_path TO {}; SET standard_conforming_strings = on",
                ddl::ident(schema)
            )))
            .map_err(|e| classified(connect_error(error_text(&e)), e))?;
        // A killed migrator's session would otherwise run its statement to the end,
        // holding the migration lock and its row locks, before it notices the client is
        // gone: the server checks every second instead (PostgreSQL 14 and later; older
        // servers reject the setting, and keep the old behaviour).
        let client_check = runtime.block_on(client.batch_execute(CLIENT_CHECK)).is_ok();
        let mut conn = PgConnection {
            client: Some(client),
            task,
            runtime,
            schema: schema.to_string(),
            shown: shown.to_string(),
            statements: HashMap::new(),
            in_transaction: false,
            statement_timeout: None,
            lock_held: false,
            timeout_set: false,
            client_check,
            session: None,
            settings: None,
            workers: None,
            lock_holder: None,
            rows_copied: None,
            core_share: None,
        };
        conn.remember_session()?;
        Ok(conn)
    }

    fn client(&self) -> &Client {
        self.client
            .as_deref()
            .expect("the client lives as long as the connection")
    }

    /// Turns a driver error on statement `sql` into a [`DbError`], classified once here.
    fn error(&self, e: tokio_postgres::Error, sql: &str) -> DbError {
        let lost = || DbError::connection_lost(format!("{}: {}", self.shown, error_text(&e)));
        let error = if e.is_closed() || self.client().is_closed() {
            lost()
        } else {
            let text = error_text(&e);
            match (e.code(), self.statement_timeout) {
                (Some(code), Some(timeout)) if *code == SqlState::QUERY_CANCELED => {
                    DbError::timeout(timeout, sql)
                }
                (Some(code), _)
                    if *code == SqlState::ADMIN_SHUTDOWN
                        || *code == SqlState::CRASH_SHUTDOWN
                        || *code == SqlState::CANNOT_CONNECT_NOW =>
                {
                    lost()
                }
                // Serialising a parameter or reading a column failed: the driver tells
                // these apart from other client-side failures only in its text.
                (None, _)
                    if text.starts_with("error serializing")
                        || text.starts_with("error deserializing") =>
                {
                    DbError::conversion(format!("{text}\n  in statement: {sql}"))
                }
                _ => DbError::statement(text, sql),
            }
        };
        classified(error, e)
    }

    /// The prepared statement for `sql` (with `?` placeholders), from the cache.
    fn statement(&mut self, sql: &str) -> Result<Statement, DbError> {
        if let Some(statement) = self.statements.get(sql) {
            return Ok(statement.clone());
        }
        let (text, _) = rewrite_placeholders(sql);
        let statement = self
            .runtime
            .block_on(self.client().prepare(&text))
            .map_err(|e| self.error(e, sql))?;
        if self.statements.len() >= STATEMENT_CACHE_LIMIT {
            self.statements.clear();
        }
        self.statements.insert(sql.to_string(), statement.clone());
        Ok(statement)
    }

    /// Prepares `sql` and checks the number of parameters.
    fn bound_statement(&mut self, sql: &str, params: &[Value]) -> Result<Statement, DbError> {
        let statement = self.statement(sql)?;
        if statement.params().len() != params.len() {
            return Err(DbError::statement(
                format!(
                    "the statement has {} placeholders but {} values were given",
                    statement.params().len(),
                    params.len()
                ),
                sql.to_string(),
            ));
        }
        Ok(statement)
    }

    /// Checks that every column of a statement's result can be read.
    fn check_readable(statement: &Statement) -> Result<Vec<String>, DbError> {
        statement
            .columns()
            .iter()
            .map(|c| {
                if values::readable(c.type_()) {
                    Ok(c.name().to_string())
                } else {
                    Err(DbError::conversion(values::unreadable(c.name(), c.type_())))
                }
            })
            .collect()
    }

    fn row_values(row: &Row) -> Result<Vec<Value>, DbError> {
        (0..row.len())
            .map(|i| {
                row.try_get::<_, Value>(i).map_err(|e| {
                    let column = &row.columns()[i];
                    DbError::conversion(format!(
                        "cannot read column {:?} of type {}: {}",
                        column.name(),
                        column.type_(),
                        error_text(&e)
                    ))
                })
            })
            .collect()
    }

    /// Runs a catalogue query with native parameters.
    fn catalogue(
        &self,
        sql: &str,
        params: &[&(dyn tokio_postgres::types::ToSql + Sync)],
    ) -> Result<Vec<Row>, DbError> {
        self.runtime
            .block_on(self.client().query(sql, params))
            .map_err(|e| self.error(e, sql))
    }

    fn constraints(&self, table: &str, kind: i8) -> Result<Vec<Row>, DbError> {
        self.catalogue(introspect::CONSTRAINTS, &[&self.schema, &table, &kind])
    }

    fn key_infos(&self, table: &str, kind: u8) -> Result<Vec<KeyInfo>, DbError> {
        Ok(self
            .constraints(table, kind as i8)?
            .iter()
            .map(|row| KeyInfo {
                name: row.get(0),
                columns: row.get(1),
            })
            .collect())
    }

    /// Drops an index named `name` that is not valid: what an interrupted `CREATE
    /// INDEX CONCURRENTLY` leaves behind (a killed or disconnected build, a statement
    /// timeout, a unique violation). It is never used by queries but still takes the
    /// name, so `IF NOT EXISTS` would keep it for ever and a plain create would fail.
    fn drop_invalid_index(&self, name: &str) -> Result<(), DbError> {
        let invalid = self.catalogue(introspect::INVALID_INDEX, &[&self.schema, &name])?;
        if !invalid.is_empty() {
            self.batch(&format!(
                "DROP INDEX CONCURRENTLY IF EXISTS {}",
                ddl::ident(name)
            ))?;
        }
        Ok(())
    }

    fn batch(&self, sql: &str) -> Result<(), DbError> {
        let start = std::time::Instant::now();
        let result = self
            .runtime
            .block_on(self.client().batch_execute(sql))
            .map_err(|e| self.error(e, sql));
        tracing::debug!(elapsed = ?start.elapsed(), "{sql}");
        result
    }
}

impl PgConnection {
    /// The server's cores as far as it tells: its `max_parallel_workers` (PostgreSQL
    /// does not report its cores; an administrator sizes that setting to them), at most
    /// this machine's cores when the server runs here (a Unix socket has no server
    /// address).
    pub fn server_cores(&mut self) -> Result<usize, DbError> {
        let rows = self.catalogue(
            "SELECT current_setting('max_parallel_workers')::int, \
             coalesce(inet_server_addr() <<= inet '127.0.0.0/8' \
                      OR inet_server_addr() = inet '::1', true)",
            &[],
        )?;
        let (workers, local) = rows
            .first()
            .map(|r| (r.get::<_, i32>(0), r.get::<_, bool>(1)))
            .unwrap_or((1, false));
        let mut cores = workers.max(1) as usize;
        if local {
            cores = cores.min(std::thread::available_parallelism().map_or(1, |n| n.get()));
        }
        Ok(cores)
    }

    /// Sends rows with binary `COPY`, each value converted to the column's type. The rows
    /// are taken from `rows` as the COPY goes (the server takes in what was sent while
    /// the next rows are made); the first `Err` ends the COPY unfinished and is returned.
    fn copy_in(
        &mut self,
        table: &str,
        columns: &[String],
        rows: &mut dyn Iterator<Item = Result<Vec<Value>, DbError>>,
    ) -> Result<u64, DbError> {
        let list = columns
            .iter()
            .map(|c| ddl::ident(c))
            .collect::<Vec<_>>()
            .join(", ");
        let probe = format!("SELECT {list} FROM {} LIMIT 0", ddl::ident(table));
        let types: Vec<Type> = self
            .statement(&probe)?
            .columns()
            .iter()
            .map(|c| c.type_().clone())
            .collect();
        let copy = format!("COPY {} ({list}) FROM STDIN BINARY", ddl::ident(table));
        let client = self
            .client
            .as_ref()
            .expect("the client lives as long as the connection");
        let width = columns.len();
        // The server's cancellation of a COPY (statement_timeout) only reaches the
        // client when the COPY ends, and the rows may come from an endless generator:
        // keep the statement timeout on this side too.
        let timeout = self.statement_timeout;
        let deadline = timeout.map(|t| std::time::Instant::now() + t);
        let result: Result<u64, Result<DbError, tokio_postgres::Error>> =
            self.runtime.block_on(async {
                let sink = client.copy_in(copy.as_str()).await.map_err(Err)?;
                let mut writer = pin!(BinaryCopyInWriter::new(sink, &types));
                for (index, row) in rows.enumerate() {
                    let row = row.map_err(Ok)?;
                    if index % 1024 == 0 {
                        if let (Some(deadline), Some(timeout)) = (deadline, timeout) {
                            if std::time::Instant::now() > deadline {
                                return Err(Ok(DbError::timeout(timeout, copy.as_str())));
                            }
                        }
                    }
                    if row.len() != width {
                        return Err(Ok(DbError::conversion(format!(
                            "bulk insert into {table}: row {index} has {} values for {width} columns",
                            row.len()
                        ))));
                    }
                    writer.as_mut().write_raw(row.iter().map(Param)).await.map_err(Err)?;
                }
                writer.as_mut().finish().await.map_err(Err)
            });
        match result {
            Ok(count) => Ok(count),
            Err(Ok(error)) => Err(error),
            Err(Err(error)) => Err(self.error(error, &copy)),
        }
    }

    /// `insert_derived` inside a transaction: a cursor over `source`, read `chunk` rows at
    /// a time; each chunk derived and sent with [`Self::copy_in`].
    fn insert_derived_chunks(
        &mut self,
        source: &str,
        params: &[Value],
        table: &str,
        columns: &[String],
        chunk: usize,
        deriver: &mut dyn RowDeriver,
    ) -> Result<u64, DbError> {
        const CURSOR: &str = "ferry_derived_source";
        let names = Self::check_readable(&self.bound_statement(source, params)?)?;
        deriver.columns(&names)?;
        let declare = format!("DECLARE {CURSOR} NO SCROLL CURSOR FOR {source}");
        // The planner would otherwise plan a cursor for its first 10 % of rows (nested
        // loops); all of them will be read, so plan for all of them.
        self.batch("SET LOCAL cursor_tuple_fraction = 1")?;
        let declared = self.execute(&declare, params);
        self.batch("SET LOCAL cursor_tuple_fraction TO DEFAULT")?;
        declared.map_err(|e| e.in_statement(source))?;
        let fetch = format!("FETCH {} FROM {CURSOR}", chunk.max(1));
        let mut total = 0u64;
        let (mut fetching, mut copying) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
        loop {
            let start = std::time::Instant::now();
            let rows = self
                .runtime
                .block_on(self.client().query(fetch.as_str(), &[]))
                .map_err(|e| self.error(e, source))?;
            fetching += start.elapsed();
            if rows.is_empty() {
                break;
            }
            // Each row is derived as the COPY takes it: this side derives while the
            // server takes in the rows sent before.
            let mut derived_rows = rows.iter().map(|row| {
                let values = Self::row_values(row)?;
                let mut derived = Vec::with_capacity(columns.len());
                deriver.derive(&values, &mut derived)?;
                Ok(derived)
            });
            let start = std::time::Instant::now();
            total += self.copy_in(table, columns, &mut derived_rows)?;
            copying += start.elapsed();
        }
        tracing::debug!(
            ?fetching,
            ?copying,
            rows = total,
            "insert_derived into {table}"
        );
        self.batch(&format!("CLOSE {CURSOR}"))?;
        Ok(total)
    }
}

impl Drop for PgConnection {
    fn drop(&mut self) {
        // Dropping the client asks the connection task to say goodbye to the server.
        drop(self.client.take());
        if let Some(task) = self.task.take() {
            let _ = self
                .runtime
                .block_on(async { tokio::time::timeout(Duration::from_secs(1), task).await });
        }
    }
}

impl Connection for PgConnection {
    fn dialect(&self) -> Dialect {
        Dialect::Postgres
    }

    fn sql_syntax(&self) -> &'static SqlSyntax {
        &SQL_SYNTAX
    }

    fn namespace(&self) -> Option<&str> {
        Some(&self.schema)
    }

    fn describe(&self) -> String {
        format!("{} (schema {})", self.shown, self.schema)
    }

    fn superuser(&mut self) -> Result<Option<String>, DbError> {
        self.superuser_role()
    }

    fn default_jobs(&mut self) -> Result<usize, DbError> {
        Ok(self.server_cores()?.min(crate::backend::MAX_DEFAULT_JOBS))
    }

    fn step_workers(
        &mut self,
        jobs: usize,
    ) -> Result<Option<std::sync::Arc<dyn crate::backend::StepWorkers>>, DbError> {
        // Inside an application's runtime the pool's own runtime could neither be
        // waited on nor dropped: steps run one at a time there.
        if tokio::runtime::Handle::try_current().is_ok() {
            return Ok(None);
        }
        if self.workers.is_none() {
            let Some(settings) = self.settings.clone() else {
                return Ok(None);
            };
            let timeout = if self.timeout_set {
                self.statement_timeout
            } else {
                None
            };
            let cores = self.server_cores()?;
            // The steps check before each commit that this backend still holds the lock.
            let lock_holder = if self.lock_held {
                let rows = self.catalogue("SELECT pg_backend_pid()", &[])?;
                rows.first().map(|r| r.get::<_, i32>(0))
            } else {
                None
            };
            self.workers = Some(std::sync::Arc::new(workers::PgStepWorkers::new(
                settings,
                jobs,
                &self.schema,
                &self.shown,
                timeout,
                lock_holder,
                cores,
            )?));
        }
        Ok(self
            .workers
            .clone()
            .map(|w| w as std::sync::Arc<dyn crate::backend::StepWorkers>))
    }
}

impl Sql for PgConnection {
    fn execute(&mut self, sql: &str, params: &[Value]) -> Result<u64, DbError> {
        let statement = self.bound_statement(sql, params)?;
        let start = std::time::Instant::now();
        let result = self
            .runtime
            .block_on(
                self.client()
                    .execute_raw(&statement, params.iter().map(Param)),
            )
            .map_err(|e| self.error(e, sql));
        tracing::debug!(elapsed = ?start.elapsed(), rows = ?result.as_ref().ok(), "{sql}");
        if is_ddl(sql) {
            // DDL can change what cached statements read ("cached plan must not change
            // result type"); DDL is rare, so forgetting the cache costs nothing.
            self.statements.clear();
        }
        result
    }

    fn execute_batch(&mut self, sql: &str) -> Result<(), DbError> {
        // The batch may change tables that cached statements read.
        self.statements.clear();
        self.batch(sql)
    }

    fn query(&mut self, sql: &str, params: &[Value]) -> Result<Rows, DbError> {
        let mut rows = Vec::new();
        let mut columns = Vec::new();
        self.query_each(sql, params, &mut |names, row| {
            if columns.is_empty() {
                columns = names.to_vec();
            }
            rows.push(row);
            Ok(true)
        })?;
        if columns.is_empty() {
            columns = Self::check_readable(&self.statement(sql)?)?;
        }
        Ok(Rows { columns, rows })
    }

    fn begin(&mut self) -> Result<(), DbError> {
        // The session checked and set up again, the transaction marked as Ferry's
        // (session.rs).
        self.check_session_before_begin()?;
        self.batch(&format!(
            "{}; BEGIN; SET LOCAL ferry.transaction = 'on'",
            self.session_setup()
        ))?;
        self.in_transaction = true;
        Ok(())
    }

    fn commit(&mut self) -> Result<(), DbError> {
        if self.in_transaction {
            self.check_session()?;
        }
        // A failed COMMIT ends the transaction too.
        self.in_transaction = false;
        self.batch("COMMIT")
    }

    fn rollback(&mut self) -> Result<(), DbError> {
        self.in_transaction = false;
        self.batch("ROLLBACK")
    }

    fn in_transaction(&self) -> bool {
        self.in_transaction
    }

    fn set_statement_timeout(&mut self, timeout: Option<Duration>) -> Result<(), DbError> {
        let millis = timeout.map_or(0, |t| t.as_millis().clamp(1, i32::MAX as u128));
        self.batch(&format!("SET statement_timeout = {millis}"))?;
        self.statement_timeout = timeout;
        self.timeout_set = true;
        self.remember_session()
    }

    fn begin_rehearsal(&mut self) -> Result<(), DbError> {
        if !self.in_transaction {
            self.begin()?;
        }
        let sequences = self.catalogue(
            "SELECT c.relname, s.seqincrement, s.seqmin, s.seqmax FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             JOIN pg_sequence s ON s.seqrelid = c.oid \
             WHERE c.relkind = 'S' AND n.nspname = $1 ORDER BY c.relname",
            &[&self.schema],
        )?;
        for row in sequences {
            let name: String = row.get(0);
            let increment: i64 = row.get(1);
            let seq = format!("{}.{}", ddl::ident(&self.schema), ddl::ident(&name));
            let state = self.catalogue(&format!("SELECT last_value, is_called FROM {seq}"), &[])?;
            let Some(state) = state.first() else { continue };
            let (last, called): (i64, bool) = (state.get(0), state.get(1));
            let (min, max): (i64, i64) = (row.get(2), row.get(3));
            let next = if called {
                last.checked_add(increment)
            } else {
                Some(last)
            };
            // A sequence at its end draws nothing more (nextval fails), so it needs nothing.
            if let Some(next) = next.filter(|n| (min..=max).contains(n)) {
                self.batch(&format!("ALTER SEQUENCE {seq} RESTART WITH {next}"))?;
            }
        }
        Ok(())
    }
}

impl Streaming for PgConnection {
    fn query_each(
        &mut self,
        sql: &str,
        params: &[Value],
        each: &mut RowCallback<'_>,
    ) -> Result<u64, DbError> {
        let statement = self.bound_statement(sql, params)?;
        let columns = Self::check_readable(&statement)?;
        let client = self
            .client
            .as_ref()
            .expect("the client lives as long as the connection");
        let result: Result<u64, Result<DbError, tokio_postgres::Error>> =
            self.runtime.block_on(async {
                let stream = client
                    .query_raw(&statement, params.iter().map(Param))
                    .await
                    .map_err(Err)?;
                let mut stream = pin!(stream);
                let mut count = 0u64;
                while let Some(row) = stream.try_next().await.map_err(Err)? {
                    count += 1;
                    let values = Self::row_values(&row).map_err(Ok)?;
                    if !each(&columns, values).map_err(Ok)? {
                        break;
                    }
                }
                Ok(count)
            });
        match result {
            Ok(count) => Ok(count),
            Err(Ok(error)) => Err(error),
            Err(Err(error)) => Err(self.error(error, sql)),
        }
    }
}

impl Bulk for PgConnection {
    fn bulk_insert(
        &mut self,
        table: &str,
        columns: &[String],
        rows: &mut dyn Iterator<Item = Vec<Value>>,
    ) -> Result<u64, DbError> {
        self.copy_in(table, columns, &mut rows.map(Ok))
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
        super::in_own_transaction(self, |c| {
            c.insert_derived_chunks(source, params, table, columns, chunk, deriver)
        })
    }

    fn add_foreign_keys_after_bulk_load(&self) -> bool {
        true
    }

    fn advance_key_generator(&mut self, table: &str, column: &str) -> Result<(), DbError> {
        let sequence = self
            .key_generators(table)?
            .into_iter()
            .find_map(|(c, generator)| match generator {
                KeyGenerator::Identity { sequence }
                | KeyGenerator::Sequence { name: sequence, .. }
                    if c == column =>
                {
                    Some(sequence)
                }
                _ => None,
            });
        let Some(sequence) = sequence else {
            return Ok(());
        };
        let schema = ddl::ident(&self.schema);
        let sequence = format!("{schema}.{}", ddl::ident(&sequence));
        // The next value is one past the largest key, or the sequence's own next value
        // if that is larger already.
        let sql = format!(
            "SELECT setval($1::text::regclass, GREATEST( \
               COALESCE((SELECT MAX({c}) FROM {schema}.{t}), 0) + 1, \
               (SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END FROM {sequence})), \
             false)",
            c = ddl::ident(column),
            t = ddl::ident(table),
        );
        self.catalogue(&sql, &[&sequence]).map(|_| ())
    }

    fn refresh_statistics(&mut self, table: &str) -> Result<(), DbError> {
        self.batch(&format!(
            "ANALYZE {}.{}",
            ddl::ident(&self.schema),
            ddl::ident(table)
        ))
    }
}

impl Introspect for PgConnection {
    fn tables(&mut self, like_pattern: &str) -> Result<Vec<String>, DbError> {
        Ok(self
            .catalogue(introspect::TABLES, &[&self.schema, &like_pattern])?
            .iter()
            .map(|row| row.get(0))
            .collect())
    }

    fn columns(&mut self, table: &str) -> Result<Vec<ColumnInfo>, DbError> {
        let rows = self.catalogue(introspect::COLUMNS, &[&self.schema, &table])?;
        if rows.is_empty() && !self.table_exists(table)? {
            return Err(DbError::other(format!(
                "table {table} does not exist in schema {}",
                self.schema
            )));
        }
        Ok(rows
            .iter()
            .map(|row| ColumnInfo {
                name: row.get(0),
                data_type: row.get(1),
                nullable: row.get(2),
                default: row.get(3),
            })
            .collect())
    }

    fn primary_key(&mut self, table: &str) -> Result<Option<KeyInfo>, DbError> {
        Ok(self.key_infos(table, b'p')?.into_iter().next())
    }

    fn foreign_keys(&mut self, table: &str) -> Result<Vec<ForeignKeyInfo>, DbError> {
        Ok(self
            .constraints(table, b'f' as i8)?
            .iter()
            .map(|row| ForeignKeyInfo {
                name: row.get(0),
                columns: row.get(1),
                referenced_table: row.get(2),
                referenced_columns: row.get(3),
                on_delete: row.get(4),
            })
            .collect())
    }

    fn unique_constraints(&mut self, table: &str) -> Result<Vec<KeyInfo>, DbError> {
        self.key_infos(table, b'u')
    }

    fn indexes(&mut self, table: &str) -> Result<Vec<IndexInfo>, DbError> {
        Ok(self
            .catalogue(introspect::INDEXES, &[&self.schema, &table])?
            .iter()
            .map(|row| IndexInfo {
                name: row.get(0),
                unique: row.get(1),
                columns: row.get(2),
            })
            .collect())
    }

    fn key_generators(&mut self, table: &str) -> Result<Vec<(String, KeyGenerator)>, DbError> {
        Ok(self
            .catalogue(introspect::KEY_GENERATORS, &[&self.schema, &table])?
            .iter()
            .map(|row| {
                let sequence: String = row.get(3);
                let generator = if row.get::<_, bool>(2) {
                    KeyGenerator::Identity { sequence }
                } else {
                    KeyGenerator::Sequence {
                        name: sequence,
                        owned: row.get(4),
                    }
                };
                (row.get(1), generator)
            })
            .collect())
    }

    #[cfg(any(test, feature = "internals"))]
    fn sequences(&mut self) -> Result<Vec<crate::backend::SequenceInfo>, DbError> {
        Ok(self
            .catalogue(introspect::SEQUENCES, &[&self.schema])?
            .iter()
            .map(|row| crate::backend::SequenceInfo {
                name: row.get(0),
                owner: row
                    .get::<_, Option<String>>(1)
                    .zip(row.get::<_, Option<String>>(2)),
            })
            .collect())
    }

    /// A `uuid` column holds nothing else, so only its NULLs are counted (none, without
    /// reading the table, when it is NOT NULL); every row of a column of another type
    /// counts.
    #[cfg(any(test, feature = "internals"))]
    fn non_uuid_values(&mut self, table: &str, column: &str) -> Result<u64, DbError> {
        let columns = self.columns(table)?;
        let Some(info) = columns.iter().find(|c| c.name == column) else {
            return Err(DbError::other(format!(
                "column {column} does not exist in table {table}"
            )));
        };
        let condition = match (info.data_type.as_str(), info.nullable) {
            ("uuid", false) => return Ok(0),
            ("uuid", true) => format!(" WHERE {} IS NULL", ddl::ident(column)),
            _ => String::new(),
        };
        let sql = format!(
            "SELECT COUNT(*) FROM {}.{}{condition}",
            ddl::ident(&self.schema),
            ddl::ident(table)
        );
        let rows = self.catalogue(&sql, &[])?;
        Ok(rows.first().map_or(0, |r| r.get::<_, i64>(0)) as u64)
    }
}

impl Ddl for PgConnection {
    fn apply_schema_change(&mut self, change: &SchemaChange) -> Result<Vec<String>, DbError> {
        let rewritten = match change {
            SchemaChange::RewriteTables(rewrites) => {
                let ordered = crate::backend::rewrite_plan::ordered(self, rewrites)?;
                Some(rewrite::rewrite_tables(self, &ordered))
            }
            SchemaChange::PrepareRewrite {
                rewrite,
                set,
                discard,
            } => {
                let share = self.core_share.clone();
                Some(
                    rewrite::prepare(self, share.as_ref(), rewrite, set, discard).map(
                        |(ran, rows)| {
                            self.rows_copied = Some(rows);
                            ran
                        },
                    ),
                )
            }
            SchemaChange::SwapRewritten { tables, copied } => {
                Some(rewrite::swap(self, tables, copied))
            }
            _ => None,
        };
        if let Some(ran) = rewritten {
            self.statements.clear();
            return ran;
        }
        if let SchemaChange::AddIndex(index) = change {
            if index.concurrently {
                self.drop_invalid_index(&index.name)?;
            }
        }
        let statements = ddl::statements(change)?;
        self.statements.clear();
        // Several statements run as one simple query: one implicit transaction.
        self.batch(&statements.join(";\n"))?;
        Ok(statements)
    }

    fn rows_copied(&self) -> Option<u64> {
        self.rows_copied
    }

    #[cfg(any(test, feature = "internals"))]
    fn column_type(&self, portable: &str) -> String {
        ddl::pg_type(portable)
    }
}

impl Locking for PgConnection {
    fn try_lock(&mut self, _holder: &LockHolder) -> Result<LockAttempt, DbError> {
        if self.lock_held {
            return Ok(LockAttempt::Acquired);
        }
        let key = lock_key(&self.schema);
        let sql = "SELECT pg_try_advisory_lock($1)";
        let rows = self.catalogue(sql, &[&key])?;
        if rows.first().is_some_and(|row| row.get::<_, bool>(0)) {
            self.lock_held = true;
            return Ok(LockAttempt::Acquired);
        }
        let holder = self
            .catalogue(introspect::LOCK_HOLDER, &[&key])?
            .first()
            .map(holder_of_row);
        Ok(LockAttempt::HeldBy(holder))
    }

    fn lock_state(&mut self) -> Result<LockState, DbError> {
        let key = lock_key(&self.schema);
        let rows = self.catalogue(introspect::LOCK_HOLDER, &[&key])?;
        Ok(match rows.first() {
            Some(row) => LockState::Held(Some(holder_of_row(row))),
            None => LockState::Free,
        })
    }

    fn unlock(&mut self) -> Result<(), DbError> {
        if !self.lock_held {
            return Ok(());
        }
        let key = lock_key(&self.schema);
        self.catalogue("SELECT pg_advisory_unlock($1)", &[&key])?;
        self.lock_held = false;
        Ok(())
    }
}

/// The holder of the advisory lock, from a row of [`introspect::LOCK_HOLDER`].
fn holder_of_row(row: &tokio_postgres::Row) -> LockHolder {
    let application: Option<String> = row.get(0);
    let address: Option<String> = row.get(1);
    let pid: i32 = row.get(2);
    let user: Option<String> = row.get(3);
    let since: Option<i64> = row.get(4);
    // `ferry HOST PID` names the holder's own process; otherwise report the
    // server backend.
    let named = application.as_deref().and_then(|a| {
        let mut parts = a.split(' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("ferry"), Some(host), Some(pid)) => {
                pid.parse::<u32>().ok().map(|pid| (host.to_string(), pid))
            }
            _ => None,
        }
    });
    let (host, pid) = named.unwrap_or_else(|| {
        (
            address.unwrap_or_else(|| "local socket".into()),
            pid.max(0) as u32,
        )
    });
    LockHolder {
        host,
        pid,
        user: user.unwrap_or_default(),
        since: since.unwrap_or(0),
    }
}

#[cfg(test)]
mod tests {
    use super::lock_key;

    #[test]
    fn lock_keys_differ_per_schema_and_are_stable() {
        assert_eq!(lock_key("public"), lock_key("public"));
        assert_ne!(lock_key("public"), lock_key("repo"));
    }
}
