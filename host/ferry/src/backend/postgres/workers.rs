//! The connections of parallel steps: a `deadpool-postgres` pool per database, made
//! from the coordinating connection's settings (server, credentials, TLS) and sized by
//! `jobs`.
//!
//! The pool's connection tasks run on a multi-threaded runtime of the pool's own, so
//! that a pooled connection's socket is served whichever thread waits on it; each step's
//! [`PgConnection`] blocks on its calls from its own thread. A pooled connection enters
//! the coordinating connection's schema and statement timeout and checks its session
//! before each commit like any other (`session.rs`), but never takes the migration lock
//! (the coordinating connection holds it while the steps run).

use super::connect::{PgClient, Settings};
use super::{classified, error_text, PgConnection};
use crate::backend::pg_runtime::IoRuntime;
use crate::backend::{Connection, DbError, Sql, StepWorkers};
use std::time::Duration;

/// A pool of connections for parallel steps.
pub struct PgStepWorkers {
    // Declared before the runtime so that the pooled clients go first.
    pool: deadpool_postgres::Pool,
    runtime: tokio::runtime::Runtime,
    schema: String,
    shown: String,
    statement_timeout: Option<Duration>,
}

impl PgStepWorkers {
    /// A pool of at most `jobs` connections (none is opened before it is asked for).
    pub(super) fn new(
        settings: Settings,
        jobs: usize,
        schema: &str,
        shown: &str,
        statement_timeout: Option<Duration>,
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
        })
    }
}

impl StepWorkers for PgStepWorkers {
    fn connection(&self) -> Result<Box<dyn Connection + Send>, DbError> {
        let failed = |message: String| DbError::connect(self.shown.clone(), message);
        // Checked out (and, the first time, connected) on the pool's runtime, which
        // then runs the connection's task.
        let object = self
            .runtime
            .block_on(self.pool.get())
            .map_err(|e| match e {
                deadpool_postgres::PoolError::Backend(e) => classified(failed(error_text(&e)), e),
                other => failed(other.to_string()),
            })?;
        let io =
            IoRuntime::new().map_err(|e| failed(format!("cannot start the I/O runtime: {e}")))?;
        let mut conn = PgConnection::enter(
            PgClient::Checkout(object),
            None,
            io,
            &self.schema,
            &self.shown,
        )?;
        if self.statement_timeout.is_some() {
            conn.set_statement_timeout(self.statement_timeout)?;
        }
        Ok(Box::new(conn))
    }
}
