//! The session Ferry relies on, kept and checked.
//!
//! A script's SQL is guarded ([`crate::sql_guard`]), but PL/pgSQL that builds SQL at run
//! time can still reach the session. So before each transaction Ferry checks that the
//! settings, the role and the lock are as it left them (a non-transactional step runs
//! between transactions), sets again what it relies on (search path, statement timeout,
//! the client connection check) and marks the transaction (`SET LOCAL
//! ferry.transaction`); before each commit it checks that the mark is still there (the
//! transaction is the one Ferry began: no `COMMIT` or `ROLLBACK` slipped in), that the
//! settings and the role are as Ferry left them, and that this session still holds the
//! migration lock. Otherwise the transaction is rolled back (or not begun) and the
//! call fails, naming what changed; a lost lock is taken back if it is free, so that
//! the failure can be recorded.
//!
//! A connection of the step pool (`workers.rs`) holds no lock of its own: before each
//! commit it checks that the coordinating connection's backend still holds it, in the
//! same statement as the other checks and inside the transaction, right before its
//! `COMMIT`. If not, the coordinating connection was lost (the server released its
//! lock) or the lock released, and another migrator may be running: the transaction is
//! rolled back and the call fails as a lost connection, naming the lock.

use super::{ddl, lock_key, PgConnection};
use crate::backend::{DbError, DbErrorKind};

/// What the session looks like, as one comparable text.
const SNAPSHOT: &str = "SELECT concat_ws(', ', \
     'search_path = ' || current_setting('search_path'), \
     'statement_timeout = ' || current_setting('statement_timeout'), \
     'client_connection_check_interval = ' \
        || coalesce(current_setting('client_connection_check_interval', true), 'unknown'), \
     'standard_conforming_strings = ' || current_setting('standard_conforming_strings'), \
     'role = ' || current_user::text, \
     'session authorization = ' || session_user::text)";

impl PgConnection {
    /// The statements that set the session up as Ferry relies on.
    pub(super) fn session_setup(&self) -> String {
        // Standard strings: a backslash escapes nothing outside E'…', as the statement
        // guard reads them.
        let mut sql = format!(
            "SET search_path TO {}; SET standard_conforming_strings = on",
            ddl::ident(&self.schema)
        );
        // The timeout only when Ferry set one (a role's or URL's own default stays).
        if self.timeout_set {
            let millis = self
                .statement_timeout
                .map_or(0, |t| t.as_millis().clamp(1, i32::MAX as u128));
            sql.push_str(&format!("; SET statement_timeout = {millis}"));
        }
        if self.client_check {
            sql.push_str("; ");
            sql.push_str(super::CLIENT_CHECK);
        }
        sql
    }

    /// Remembers the session as it is now as the one to keep.
    pub(super) fn remember_session(&mut self) -> Result<(), DbError> {
        let rows = self.catalogue(SNAPSHOT, &[])?;
        self.session = rows.first().map(|r| r.get(0));
        Ok(())
    }

    /// What is wrong with the session, if anything: the transaction mark (when
    /// `in_transaction`), the lock (this session's, or on a pooled connection the
    /// coordinating one's), the settings, with the kind of error it makes. A failure to
    /// ask keeps its kind (a lost connection stays one, so that the failure is recorded
    /// through a new one).
    fn session_problem(
        &mut self,
        in_transaction: bool,
    ) -> Result<Option<(String, DbErrorKind)>, DbError> {
        let key = lock_key(&self.schema);
        let held_by = |pid: &str| {
            format!(
                "EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND pid = {pid} AND objsubid = 1 \
                 AND ((classid::bigint << 32) | objid::bigint) = $1)"
            )
        };
        let sql = format!(
            "SELECT coalesce(current_setting('ferry.transaction', true), ''), ({SNAPSHOT}), \
             {}, {}",
            held_by("pg_backend_pid()"),
            held_by("$2"),
        );
        let found = self
            .catalogue(&sql, &[&key, &self.lock_holder])?
            .first()
            .map(|r| {
                (
                    r.get::<_, String>(0),
                    r.get::<_, Option<String>>(1),
                    r.get::<_, bool>(2),
                    r.get::<_, bool>(3),
                )
            });
        let problem = match found {
            None => Some("the session could not be checked".into()),
            Some((_, _, _, false)) if self.lock_holder.is_some() => {
                return Ok(Some((self.holder_lost(), DbErrorKind::ConnectionLost)));
            }
            Some((mark, settings, locked, _)) => {
                if in_transaction && mark != "on" {
                    Some(
                        "the transaction Ferry began is no longer open (a statement ended it \
                         or began another)"
                            .into(),
                    )
                } else if self.lock_held && !locked {
                    Some(self.lock_lost())
                } else if self.session.is_some() && settings != self.session {
                    Some(format!(
                        "the session was changed: Ferry set {}, found {}",
                        self.session.as_deref().unwrap_or(""),
                        settings.as_deref().unwrap_or("nothing")
                    ))
                } else {
                    None
                }
            }
        };
        Ok(problem.map(|p| (p, DbErrorKind::Other)))
    }

    /// What a pooled connection says when the coordinating connection no longer holds
    /// the migration lock.
    fn holder_lost(&self) -> String {
        format!(
            "the migration lock is lost: the coordinating connection (server process {}) \
             no longer holds it (that connection was lost or the lock released), so another \
             migrator may be running",
            self.lock_holder.unwrap_or_default()
        )
    }

    /// The lock is gone: take it back if it is free, so that the failure can still be
    /// recorded under it, and say what happened.
    fn lock_lost(&mut self) -> String {
        let key = lock_key(&self.schema);
        let back = self
            .catalogue("SELECT pg_try_advisory_lock($1)", &[&key])
            .ok()
            .and_then(|rows| rows.first().map(|r| r.get::<_, bool>(0)))
            .unwrap_or(false);
        self.lock_held = back;
        format!(
            "this session no longer holds the migration lock (a statement released it); {}",
            if back {
                "Ferry took it back, but another migrator may have run meanwhile"
            } else {
                "another session holds it now"
            }
        )
    }

    /// Before a commit: the transaction is Ferry's, the session as Ferry left it, the
    /// lock still held. On failure the transaction is rolled back.
    pub(super) fn check_session(&mut self) -> Result<(), DbError> {
        let problem = match self.session_problem(true) {
            Ok(None) => return Ok(()),
            Ok(Some((problem, kind))) => DbError::other(format!(
                "{problem}; the transaction was rolled back instead of committed"
            ))
            .with_kind(kind),
            Err(e) => e,
        };
        self.in_transaction = false;
        let _ = self.batch("ROLLBACK");
        Err(problem)
    }

    /// Before a transaction begins: nothing changed the session since the last one (a
    /// non-transactional step runs outside Ferry's transactions). On failure the
    /// session is set up again, so that the failure itself can be recorded.
    pub(super) fn check_session_before_begin(&mut self) -> Result<(), DbError> {
        let Some((problem, kind)) = self.session_problem(false)? else {
            return Ok(());
        };
        let _ = self.batch(&self.session_setup());
        Err(DbError::other(format!(
            "{problem} (outside a transaction); Ferry set the session up again"
        ))
        .with_kind(kind))
    }

    /// The superuser role of this session, if it is one's.
    pub(super) fn superuser_role(&self) -> Result<Option<String>, DbError> {
        let rows = self.catalogue(
            "SELECT rolname::text FROM pg_roles WHERE rolsuper \
             AND rolname IN (current_user, session_user) LIMIT 1",
            &[],
        )?;
        Ok(rows.first().map(|r| r.get(0)))
    }
}
