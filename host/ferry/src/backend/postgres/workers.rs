//! The connections of parallel steps: a `deadpool-postgres` pool per database, made
//! from the coordinating connection's settings (server, credentials, TLS) and sized by
//! `jobs`.
//!
//! The pool's connection tasks run on a multi-threaded runtime of the pool's own, so
//! that a pooled connection's socket is served whichever thread waits on it; each step's
//! [`PgConnection`] blocks on its calls from its own thread. A pooled connection enters
//! the coordinating connection's schema and statement timeout and checks its session
//! before each commit like any other (`session.rs`), but never takes the migration lock
//! (the coordinating connection holds it while the steps run). Before each commit it
//! checks instead that the coordinating connection's backend still holds the lock: if
//! that connection died, the server released its lock and another migrator may have
//! taken it, so the step rolls back rather than commit beside that migrator.
//!
//! A server at its `max_connections`, or a role at its `CONNECTION LIMIT`, refuses a
//! new connection: the pool tries again for [`CONNECTION_WAIT`], then gives up, and the
//! step runs on the coordinating connection (`script/parallel_steps.rs`).

use super::connect::{PgClient, Settings};
use super::core_share::CoreShare;
use super::{classified, error_text, PgConnection};
use crate::backend::pg_runtime::IoRuntime;
use crate::backend::{Connection, DbError, Sql, StepWorkers};
use std::time::{Duration, Instant};
use tokio_postgres::error::SqlState;

/// How long a step waits for the server to accept a pooled connection before it runs
/// on the coordinating connection instead.
pub const CONNECTION_WAIT: Duration = Duration::from_secs(1);

/// How long to wait between two attempts to connect.
const RETRY_PAUSE: Duration = Duration::from_millis(100);

/// A pool of connections for parallel steps.
pub struct PgStepWorkers {
    // Declared before the runtime so that the pooled clients go first.
    pool: deadpool_postgres::Pool,
    runtime: tokio::runtime::Runtime,
    schema: String,
    shown: String,
    statement_timeout: Option<Duration>,
    /// The backend pid of the coordinating connection, which holds the migration lock
    /// (`None`: it holds none, and the steps check nothing).
    lock_holder: Option<i32>,
    /// The server's cores as far as known, shared by the steps running (`core_share.rs`).
    cores: usize,
}

impl PgStepWorkers {
    /// A pool of at most `jobs` connections (none is opened before it is asked for).
    pub(super) fn new(
        settings: Settings,
        jobs: usize,
        schema: &str,
        shown: &str,
        statement_timeout: Option<Duration>,
        lock_holder: Option<i32>,
        cores: usize,
    ) -> Result<PgStepWorkers, DbError> {
        let failed = |message: String| DbError::connect(shown, message);
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(jobs.clamp(1, 4))
            .thread_name("ferry-step-pool")
            .enable_all()
            .build()
            .map_err(|e| failed(format!("cannot start the pool's runtime: {e}")))?;
        let manager = deadpool_postgres::Manager::from_config(
            settings.config,
            settings.tls,
            deadpool_postgres::ManagerConfig {
                recycling_method: deadpool_postgres::RecyclingMethod::Fast,
            },
        );
        let pool = deadpool_postgres::Pool::builder(manager)
            .max_size(jobs.max(1))
            .build()
            .map_err(|e| failed(format!("cannot build the step pool: {e}")))?;
        Ok(PgStepWorkers {
            pool,
            runtime,
            schema: schema.to_string(),
            shown: format!("{shown} (step pool)"),
            statement_timeout,
            lock_holder,
            cores,
        })
    }

    /// A pooled connection, connecting again while the server refuses for want of
    /// connection slots, for at most [`CONNECTION_WAIT`]; `None` if it still refuses.
    fn checkout(&self) -> Result<Option<deadpool_postgres::Object>, DbError> {
        let failed = |message: String| DbError::connect(self.shown.clone(), message);
        let deadline = Instant::now() + CONNECTION_WAIT;
        loop {
            // Checked out (and, the first time, connected) on the pool's runtime, which
            // then runs the connection's task.
            match self.runtime.block_on(self.pool.get()) {
                Ok(object) => return Ok(Some(object)),
                Err(deadpool_postgres::PoolError::Backend(e)) => {
                    let full = e.code() == Some(&SqlState::TOO_MANY_CONNECTIONS);
                    if !full {
                        return Err(classified(failed(error_text(&e)), e));
                    }
                    if Instant::now() >= deadline {
                        tracing::debug!("no pooled connection: {}", error_text(&e));
                        return Ok(None);
                    }
                    std::thread::sleep(RETRY_PAUSE);
                }
                Err(other) => return Err(failed(other.to_string())),
            }
        }
    }
}

impl StepWorkers for PgStepWorkers {
    fn connection(&self) -> Result<Option<Box<dyn Connection + Send>>, DbError> {
        let failed = |message: String| DbError::connect(self.shown.clone(), message);
        let Some(object) = self.checkout()? else {
            return Ok(None);
        };
        let io =
            IoRuntime::new().map_err(|e| failed(format!("cannot start the I/O runtime: {e}")))?;
        let mut conn = PgConnection::enter(
            PgClient::Checkout(object),
            None,
            io,
            &self.schema,
            &self.shown,
        )?;
        conn.lock_holder = self.lock_holder;
        conn.core_share = Some(CoreShare {
            pool: self.pool.clone(),
            cores: self.cores,
        });
        if self.statement_timeout.is_some() {
            conn.set_statement_timeout(self.statement_timeout)?;
        }
        Ok(Some(Box::new(conn)))
    }
}
