//! The ledger's rows as Ferry writes them: the only code that knows their SQL (the
//! schema and the reads are [`crate::ledger`]'s).
//!
//! Private to the checkpoint module. A step's row is written by [`super::StepTx`], in
//! the transaction that holds the step's work; every other row by the typed operations
//! of [`super::ledger_writes`] (`mark_running`, `record_upgraded`, `record_stamp`, …),
//! which the runner, the stamp, the lock and the commands call. Each writes inside a
//! transaction the caller holds open and never begins or commits one itself.

use super::ledger_writes::Run;
use crate::backend::{Connection, DbError, Value};
use crate::clock::now_unix;
use crate::ledger::{
    qualified, Actor, HistoryEntry, RevisionKey, RevisionRecord, SourceRecord, Status,
};

/// A nullable text column's value.
fn opt(s: Option<&str>) -> Value {
    s.map(|s| Value::Text(s.into())).unwrap_or(Value::Null)
}

/// Records progress of a step: `done`, or the cursor after a committed batch.
pub(super) fn set_step(
    conn: &mut dyn Connection,
    revision: &str,
    step: &str,
    done: bool,
    cursor: Option<&str>,
    batches: i64,
    rows: i64,
) -> Result<(), DbError> {
    let now = Value::Int(now_unix());
    let cursor = cursor.map(|c| Value::Text(c.into())).unwrap_or(Value::Null);
    let updated = conn.execute(
        &qualified(&*conn, "UPDATE ferry_steps SET done = ?, cursor = ?, batches = ?, row_count = ?, updated_at = ? \
         WHERE revision = ? AND step = ?"),
        &[
            Value::Int(done as i64),
            cursor.clone(),
            Value::Int(batches),
            Value::Int(rows),
            now.clone(),
            Value::Text(revision.into()),
            Value::Text(step.into()),
        ],
    )?;
    if updated == 0 {
        conn.execute(
            &qualified(&*conn, "INSERT INTO ferry_steps (revision, step, done, cursor, batches, row_count, updated_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?)"),
            &[
                Value::Text(revision.into()),
                Value::Text(step.into()),
                Value::Int(done as i64),
                cursor,
                Value::Int(batches),
                Value::Int(rows),
                now,
            ],
        )?;
    }
    Ok(())
}

/// Deletes the rows of ledger table `table` that belong to `revision`.
fn delete_rows_of(conn: &mut dyn Connection, table: &str, revision: &str) -> Result<(), DbError> {
    let sql = qualified(&*conn, &format!("DELETE FROM {table} WHERE revision = ?"));
    conn.execute(&sql, &[Value::Text(revision.into())])?;
    Ok(())
}

/// Clears the steps of a revision (when it completes, or before a downgrade).
pub(super) fn clear_steps(conn: &mut dyn Connection, revision: &str) -> Result<(), DbError> {
    delete_rows_of(conn, "ferry_steps", revision)
}

/// Forgets one step of a revision (its completion or its batch cursor), so that the
/// next run of the revision runs it again; returns whether there was a record.
pub(super) fn forget_step(
    conn: &mut dyn Connection,
    revision: &str,
    step: &str,
) -> Result<bool, DbError> {
    let n = conn.execute(
        &qualified(
            &*conn,
            "DELETE FROM ferry_steps WHERE revision = ? AND step = ?",
        ),
        &[Value::Text(revision.into()), Value::Text(step.into())],
    )?;
    Ok(n > 0)
}

/// Sets the revision's record (insert or update).
pub(super) fn set_revision(
    conn: &mut dyn Connection,
    key: &RevisionKey<'_>,
    status: Status<'_>,
) -> Result<(), DbError> {
    let (state, how, failed_step, error) = status.columns();
    let how = how.as_str();
    let now = Value::Int(now_unix());
    let updated = conn.execute(
        &qualified(
            &*conn,
            "UPDATE ferry_revisions SET tree = ?, version = ?, state = ?, checksum = ?, \
         failed_step = ?, error = ?, how = ?, updated_at = ? WHERE revision = ?",
        ),
        &[
            Value::Text(key.tree.into()),
            Value::Text(key.version.into()),
            Value::Text(state.as_str().into()),
            Value::Text(key.checksum.into()),
            opt(failed_step),
            opt(error),
            Value::Text(how.into()),
            now.clone(),
            Value::Text(key.revision.into()),
        ],
    )?;
    if updated == 0 {
        conn.execute(
            &qualified(
                &*conn,
                "INSERT INTO ferry_revisions (revision, tree, version, state, checksum, \
             failed_step, error, how, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ),
            &[
                Value::Text(key.revision.into()),
                Value::Text(key.tree.into()),
                Value::Text(key.version.into()),
                Value::Text(state.as_str().into()),
                Value::Text(key.checksum.into()),
                opt(failed_step),
                opt(error),
                Value::Text(how.into()),
                now,
            ],
        )?;
    }
    Ok(())
}

/// Removes the revision's record (after a downgrade) and its steps.
pub(super) fn remove_revision(conn: &mut dyn Connection, revision: &str) -> Result<(), DbError> {
    for table in ["ferry_steps", "ferry_sources", "ferry_revisions"] {
        delete_rows_of(conn, table, revision)?;
    }
    Ok(())
}

/// A source row, written by [`set_sources`] for a run and by [`copy_sources`] for rows
/// another ledger holds.
const INSERT_SOURCE: &str =
    "INSERT INTO ferry_sources (revision, path, kind, checksum, content) VALUES (?, ?, ?, ?, ?)";

/// Records what `revision` ran: the files (with their text where small enough) and
/// the digest of its dependencies, replacing what was recorded before. Its own
/// file's checksum is the record's `checksum`, which [`set_revision`] writes.
pub(super) fn set_sources(
    conn: &mut dyn Connection,
    revision: &str,
    sources: &crate::revision_sources::RevisionSources,
) -> Result<(), DbError> {
    let rev = Value::Text(revision.into());
    conn.execute(
        &qualified(
            &*conn,
            "UPDATE ferry_revisions SET deps_checksum = ? WHERE revision = ?",
        ),
        &[Value::Text(sources.deps_checksum()), rev.clone()],
    )?;
    delete_rows_of(conn, "ferry_sources", revision)?;
    for f in &sources.files {
        conn.execute(
            &qualified(&*conn, INSERT_SOURCE),
            &[
                rev.clone(),
                Value::Text(f.label.clone()),
                Value::Text(f.kind.as_str().into()),
                Value::Text(f.checksum.clone()),
                opt(f.text.as_deref()),
            ],
        )?;
    }
    Ok(())
}

/// Sets the recorded checksum of `revision`'s own file (`ferry accept`).
pub(super) fn set_checksum(
    conn: &mut dyn Connection,
    revision: &str,
    checksum: &str,
) -> Result<(), DbError> {
    conn.execute(
        &qualified(
            &*conn,
            "UPDATE ferry_revisions SET checksum = ?, updated_at = ? WHERE revision = ?",
        ),
        &[
            Value::Text(checksum.into()),
            Value::Int(now_unix()),
            Value::Text(revision.into()),
        ],
    )?;
    Ok(())
}

/// A history row, written by [`add_history`] for a run and by [`copy_history`] for a row
/// another ledger holds.
const INSERT_HISTORY: &str = "INSERT INTO ferry_history (revision, tree, direction, \
     checksum, started_at, finished_at, duration_ms, row_count, outcome, error, host, \
     username, pid, note) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// Appends a history row: `what` was done (`upgrade`, `stamp`, …) to the revision of
/// `key` by `actor`, during `run`, ending as `outcome`.
pub(super) fn add_history(
    conn: &mut dyn Connection,
    key: &RevisionKey<'_>,
    actor: &Actor,
    what: &str,
    run: &Run<'_>,
    outcome: &str,
    error: Option<&str>,
) -> Result<(), DbError> {
    conn.execute(
        &qualified(&*conn, INSERT_HISTORY),
        &[
            Value::Text(key.revision.into()),
            Value::Text(key.tree.into()),
            Value::Text(what.into()),
            Value::Text(key.checksum.into()),
            Value::Int(run.started_ms / 1000),
            Value::Int(run.finished_ms / 1000),
            Value::Int(run.finished_ms - run.started_ms),
            Value::Int(run.rows),
            Value::Text(outcome.into()),
            opt(error),
            Value::Text(actor.host.clone()),
            Value::Text(actor.username.clone()),
            Value::Int(actor.pid as i64),
            opt(run.note),
        ],
    )?;
    Ok(())
}

/// Records the lock holder (the lock itself is the backend's).
pub(super) fn set_lock_holder(
    conn: &mut dyn Connection,
    actor: &Actor,
    since: i64,
) -> Result<(), DbError> {
    conn.execute(&qualified(&*conn, "DELETE FROM ferry_lock"), &[])?;
    conn.execute(
        &qualified(&*conn, "INSERT INTO ferry_lock (id, host, pid, username, since, heartbeat) VALUES (1, ?, ?, ?, ?, ?)"),
        &[
            Value::Text(actor.host.clone()),
            Value::Int(actor.pid as i64),
            Value::Text(actor.username.clone()),
            Value::Int(since),
            Value::Int(since),
        ],
    )?;
    Ok(())
}

/// Forgets the lock holder.
pub(super) fn clear_lock_holder(conn: &mut dyn Connection) -> Result<(), DbError> {
    conn.execute(&qualified(&*conn, "DELETE FROM ferry_lock"), &[])?;
    Ok(())
}

/// Writes a revision record exactly as another ledger holds it (moving a tree
/// between databases keeps its records as they were).
pub(super) fn copy_revision(conn: &mut dyn Connection, r: &RevisionRecord) -> Result<(), DbError> {
    conn.execute(
        &qualified(
            &*conn,
            "INSERT INTO ferry_revisions (revision, tree, version, state, checksum, \
         failed_step, error, how, updated_at, deps_checksum) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        ),
        &[
            Value::Text(r.revision.clone()),
            Value::Text(r.tree.clone()),
            Value::Text(r.version.clone()),
            Value::Text(r.state.as_str().into()),
            Value::Text(r.checksum.clone()),
            opt(r.failed_step.as_deref()),
            opt(r.error.as_deref()),
            Value::Text(r.how.clone()),
            Value::Int(r.updated_at),
            opt(r.deps_checksum.as_deref()),
        ],
    )?;
    Ok(())
}

/// Writes source rows exactly as another ledger holds them (moving a tree).
pub(super) fn copy_sources(
    conn: &mut dyn Connection,
    revision: &str,
    sources: &[SourceRecord],
) -> Result<(), DbError> {
    for f in sources {
        conn.execute(
            &qualified(&*conn, INSERT_SOURCE),
            &[
                Value::Text(revision.into()),
                Value::Text(f.path.clone()),
                Value::Text(f.kind.clone()),
                Value::Text(f.checksum.clone()),
                opt(f.text.as_deref()),
            ],
        )?;
    }
    Ok(())
}

/// Appends a history row exactly as another ledger holds it (but with this
/// ledger's next id).
pub(super) fn copy_history(conn: &mut dyn Connection, h: &HistoryEntry) -> Result<(), DbError> {
    conn.execute(
        &qualified(&*conn, INSERT_HISTORY),
        &[
            Value::Text(h.revision.clone()),
            Value::Text(h.tree.clone()),
            Value::Text(h.direction.clone()),
            Value::Text(h.checksum.clone()),
            Value::Int(h.started_at),
            Value::Int(h.finished_at),
            Value::Int(h.duration_ms),
            Value::Int(h.rows),
            Value::Text(h.outcome.clone()),
            opt(h.error.as_deref()),
            Value::Text(h.host.clone()),
            Value::Text(h.username.clone()),
            Value::Int(h.pid),
            opt(h.note.as_deref()),
        ],
    )?;
    Ok(())
}

/// Removes every record, step and history row of `tree` (after they were copied to
/// the ledger of the database the tree moved to).
pub(super) fn forget_tree(conn: &mut dyn Connection, tree: &str) -> Result<(), DbError> {
    // Steps and sources first: they find the tree's revisions through its records.
    for sql in [
        "DELETE FROM ferry_steps WHERE revision IN \
         (SELECT revision FROM ferry_revisions WHERE tree = ?)",
        "DELETE FROM ferry_sources WHERE revision IN \
         (SELECT revision FROM ferry_revisions WHERE tree = ?)",
        "DELETE FROM ferry_revisions WHERE tree = ?",
        "DELETE FROM ferry_history WHERE tree = ?",
    ] {
        conn.execute(&qualified(&*conn, sql), &[Value::Text(tree.into())])?;
    }
    Ok(())
}
