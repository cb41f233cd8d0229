//! The server's cores shared between the parallel steps running at one moment.
//!
//! PostgreSQL builds a large index or runs a large scan with parallel workers, up to
//! `max_parallel_maintenance_workers` and `max_parallel_workers_per_gather` (2 each by
//! default) besides the step's own backend. That helps a step that runs alone; beside
//! other steps on a server with few cores it only adds processes that compete for the
//! same cores (and the copying between them). Measured on a 2-core machine at N =
//! 1,000,000 (docs/BENCHMARKS.md, "Issue 16 at stop 24"): the table steps that ran two at
//! a time took 0.3–0.7 s less each without workers, and the step that ran alone at the
//! end 0.3–0.6 s more.
//!
//! So before each statement of a table step that can use workers, a step on a pooled
//! connection sets both settings, for its transaction only, to what its share of the
//! cores allows at that moment: `cores / steps running − 1` workers (its own backend is
//! one of its share) when other steps run, the session's own values when it runs alone.
//! It never raises a setting above the session's value. "Steps running" counts the
//! pool's connections lent out; the coordinating connection is idle while table steps
//! run.

/// The workers a step may use when `running` steps share `cores`; `None` when it runs
/// alone (the session's settings stand).
pub fn workers_per_step(cores: usize, running: usize) -> Option<usize> {
    if running < 2 {
        return None;
    }
    Some((cores / running).saturating_sub(1))
}

/// The statement that sets the parallel-worker limits of the current transaction to
/// `workers` at most (`None`: back to the session's values).
pub(crate) fn limit_statement(workers: Option<usize>) -> String {
    // `set_config(…, true)` lasts until the transaction ends, like `SET LOCAL`;
    // `reset_val` is the session's value (the server's, the role's, the URL's options).
    // Read from `pg_settings`, a setting the server does not have (before PostgreSQL 11,
    // `max_parallel_maintenance_workers`) is left out instead of failing the step.
    let value = match workers {
        Some(w) => format!("least({w}, reset_val::int)::text"),
        None => "reset_val".to_string(),
    };
    format!(
        "SELECT set_config(name, {value}, true) FROM pg_settings \
         WHERE name IN ('max_parallel_workers_per_gather', 'max_parallel_maintenance_workers')"
    )
}

/// What a pooled connection needs to know to take its share: the pool (how many of its
/// connections are lent out now) and the server's cores as far as known.
#[derive(Clone)]
pub struct CoreShare {
    pub(super) pool: deadpool_postgres::Pool,
    pub(super) cores: usize,
}

impl CoreShare {
    /// The statement to run before a statement that can use parallel workers.
    pub(super) fn statement(&self) -> String {
        let status = self.pool.status();
        let running = status.size.saturating_sub(status.available);
        limit_statement(workers_per_step(self.cores, running))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_step_alone_keeps_the_session_settings() {
        assert_eq!(workers_per_step(2, 0), None);
        assert_eq!(workers_per_step(2, 1), None);
        assert_eq!(workers_per_step(16, 1), None);
    }

    #[test]
    fn steps_side_by_side_share_the_cores() {
        assert_eq!(workers_per_step(2, 2), Some(0));
        assert_eq!(workers_per_step(4, 2), Some(1));
        assert_eq!(workers_per_step(4, 4), Some(0));
        assert_eq!(workers_per_step(8, 2), Some(3));
        assert_eq!(workers_per_step(1, 3), Some(0));
    }

    #[test]
    fn the_statement_never_raises_a_setting() {
        let s = limit_statement(Some(3));
        assert!(
            s.contains("set_config(name, least(3, reset_val::int)::text, true)"),
            "{s}"
        );
        assert!(s.contains("'max_parallel_maintenance_workers'"), "{s}");
        assert!(limit_statement(None).contains("set_config(name, reset_val, true)"));
    }
}
