//! The `ferry_steps` rows: written only here, by [`super::StepTx`] and the functions
//! of [`super`] that clear them, inside a transaction the caller holds.

use crate::backend::{Connection, DbError, Value};
use crate::clock::now_unix;
use crate::ledger::qualified;

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

/// Clears the steps of a revision (when it completes, or before a downgrade).
pub(super) fn clear_steps(conn: &mut dyn Connection, revision: &str) -> Result<(), DbError> {
    conn.execute(
        &qualified(&*conn, "DELETE FROM ferry_steps WHERE revision = ?"),
        &[Value::Text(revision.into())],
    )?;
    Ok(())
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
