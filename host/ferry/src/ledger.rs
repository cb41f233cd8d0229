//! The ledger: Ferry's own tables in the target database (prefix `ferry_`).
//!
//! * `ferry_meta` — the ledger's own schema version.
//! * `ferry_revisions` — one row per revision that ever started: its state
//!   (`running`, `failed`, `applied`), the checksum of the script that produced it,
//!   the step it failed at and the error. This is the one record every command reads;
//!   none infers a revision's state from the history.
//! * `ferry_steps` — completed steps and, for batched steps, the cursor of the last
//!   committed batch.
//! * `ferry_history` — one row for every run of every revision (and every stamp, and
//!   every `ferry accept`).
//! * `ferry_sources` — what each applied revision ran: its own file, the `lib/` modules
//!   and hook files it uses (see [`crate::revision_sources`]), each with its checksum
//!   and, up to a size, its text (for `ferry show`'s diff). Ledger version 2; a
//!   version-1 ledger gains it (and `ferry_revisions.deps_checksum`) on the first write.
//! * `ferry_lock` — who holds the migration lock (the lock itself is the backend's).
//!
//! The tables are created through the same portable schema changes that scripts use,
//! so the ledger looks the same on every backend.
//!
//! This module holds the schema (creating and upgrading the tables, and the version in
//! `ferry_meta`) and the reads. Every other row is written through
//! [`crate::checkpoint`]: a step's record by
//! [`crate::checkpoint::StepTx`], everything else by the typed operations there
//! ([`crate::checkpoint::mark_running`], [`crate::checkpoint::record_upgraded`],
//! [`crate::checkpoint::record_stamp`], [`crate::checkpoint::record_lock_holder`], …),
//! which are the only code that knows the rows' SQL.

use crate::backend::{ColumnDef, Connection, DbError, SchemaChange, TableDef, Value};
use crate::checkpoint::with_transaction;
use std::collections::BTreeMap;

/// The version of the ledger's own tables that this build writes.
pub const LEDGER_VERSION: i64 = 2;

/// The first ledger version that records what a revision ran (`ferry_sources`,
/// `ferry_revisions.deps_checksum`).
const SOURCES_SINCE: i64 = 2;

/// What a revision's ledger record says (a revision without a record is pending).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RevisionState {
    /// Started; some steps may have committed (a run that was killed stays here).
    Running,
    /// The last run failed; `failed_step` and `error` say where and why.
    Failed,
    /// Applied: by a run of its `fn upgrade`, `stamp` or `adopt`.
    Applied,
}

impl RevisionState {
    /// The stored text: `running`, `failed` or `applied`.
    pub fn as_str(self) -> &'static str {
        match self {
            RevisionState::Running => "running",
            RevisionState::Failed => "failed",
            RevisionState::Applied => "applied",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        match s {
            "running" => Some(RevisionState::Running),
            "failed" => Some(RevisionState::Failed),
            "applied" => Some(RevisionState::Applied),
            _ => None,
        }
    }
}

/// How a revision came to be applied: `ferry_revisions.how`, stored as the text of
/// [`How::as_str`] (so ledgers written before read the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// A run of its `fn upgrade`.
    Upgrade,
    /// `ferry stamp`.
    Stamp,
    /// `ferry stamp --force`.
    StampForce,
    /// `ferry adopt`.
    Adopt,
}

impl How {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            How::Upgrade => "upgrade",
            How::Stamp => "stamp",
            How::StampForce => "stamp --force",
            How::Adopt => "adopt",
        }
    }

    /// Reads the stored text back.
    #[cfg(any(test, feature = "internals"))]
    pub fn parse(s: &str) -> Option<How> {
        [How::Upgrade, How::Stamp, How::StampForce, How::Adopt]
            .into_iter()
            .find(|h| h.as_str() == s)
    }
}

/// A revision's state with what each state carries, as the ledger records
/// it: a failure names its step and error, an applied revision how it was applied, and
/// no other combination can be written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status<'a> {
    /// An upgrade started (some steps may have committed).
    Running,
    /// The last upgrade failed, in `step` if it failed inside one.
    Failed {
        step: Option<&'a str>,
        error: &'a str,
    },
    /// Applied, by a run or a stamp.
    Applied { how: How },
}

impl Status<'_> {
    /// The stored columns: state, how, failed step, error. Only upgrades run or fail,
    /// so a running or failed record says `upgrade`.
    pub(crate) fn columns(&self) -> (RevisionState, How, Option<&str>, Option<&str>) {
        match *self {
            Status::Running => (RevisionState::Running, How::Upgrade, None, None),
            Status::Failed { step, error } => {
                (RevisionState::Failed, How::Upgrade, step, Some(error))
            }
            Status::Applied { how } => (RevisionState::Applied, how, None, None),
        }
    }
}

/// One row of `ferry_revisions`: a revision's ledger record.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RevisionRecord {
    /// The revision id.
    pub revision: String,
    /// Its tree.
    pub tree: String,
    /// Its `VERSION`, the tree's human version after it.
    pub version: String,
    /// Running, failed or applied.
    pub state: RevisionState,
    /// The sha256 of its script file when it ran (or was stamped), in hex.
    pub checksum: String,
    /// The step the last run failed in, when it failed inside one.
    pub failed_step: Option<String>,
    /// The error the last run failed with.
    pub error: Option<String>,
    /// How it became applied: `upgrade`, `stamp`, `stamp --force`, `adopt`.
    pub how: String,
    /// When the record last changed (seconds since the Unix epoch).
    pub updated_at: i64,
    /// The digest of the `lib/` modules and hook files the revision used when it was
    /// applied (`None`: applied before Ferry recorded them, or stamped without them).
    pub deps_checksum: Option<String>,
    /// The files it ran, as recorded then (without their text).
    pub sources: Vec<SourceRecord>,
}

/// One row of `ferry_sources`: a file an applied revision ran.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SourceRecord {
    /// The file's label (its root's folder name and its path inside the root).
    pub path: String,
    /// `revision`, `module` or `hook`.
    pub kind: String,
    /// The sha256 of the file as it ran, in hex.
    pub checksum: String,
    /// The text as it ran (`None` in listings, or when it was too large to keep).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// One row of `ferry_steps`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct StepRecord {
    pub revision: String,
    pub step: String,
    pub done: bool,
    /// The cursor after the last committed batch (a JSON value), for batched steps.
    pub cursor: Option<String>,
    pub batches: i64,
    pub rows: i64,
}

/// One row of `ferry_history`.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HistoryEntry {
    /// The row's id (increasing).
    pub id: i64,
    /// The revision run.
    pub revision: String,
    /// The tree it belongs to.
    pub tree: String,
    /// `upgrade`, `downgrade`, `stamp`, … (what was done).
    pub direction: String,
    /// The script's checksum when it ran.
    pub checksum: String,
    /// When it started (seconds since the Unix epoch).
    pub started_at: i64,
    /// When it ended (seconds since the Unix epoch).
    pub finished_at: i64,
    /// How long it took, in milliseconds.
    pub duration_ms: i64,
    /// Rows the run reported.
    pub rows: i64,
    /// How it ended (e.g. `applied`, `failed`).
    pub outcome: String,
    /// The error, when it failed.
    pub error: Option<String>,
    /// The host that ran it.
    pub host: String,
    /// The user who ran it.
    pub username: String,
    /// The process id that ran it.
    pub pid: i64,
    /// An operator's note (e.g. the reason given to `accept`).
    pub note: Option<String>,
}

/// Who is running Ferry: written into history rows and the lock record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub host: String,
    pub username: String,
    pub pid: u32,
}

impl Actor {
    /// The current process on this machine.
    pub fn current() -> Actor {
        Actor {
            host: hostname::get()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_else(|_| "unknown".into()),
            // $USER first (what a `sudo -u` or a container sets on purpose), then the
            // account of the process: cron and systemd units often set neither variable.
            username: std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .ok()
                .filter(|u| !u.is_empty())
                .or_else(|| whoami::username().ok())
                .unwrap_or_else(|| "unknown".into()),
            pid: std::process::id(),
        }
    }

    /// This actor as the holder of a lock taken at `since` (Unix seconds).
    pub fn holder(&self, since: i64) -> crate::backend::LockHolder {
        crate::backend::LockHolder {
            host: self.host.clone(),
            pid: self.pid,
            user: self.username.clone(),
            since,
        }
    }
}

/// A ledger failure: Ferry's own tables (`ferry_*`) cannot be read or written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LedgerError {
    /// The database failed reading or writing them.
    #[error("ledger: {0}")]
    Db(#[from] DbError),
    /// A newer Ferry wrote them: this one does not understand them.
    #[error("the ledger in this database has version {found}, newer than this Ferry understands ({LEDGER_VERSION}); upgrade Ferry")]
    TooNew {
        /// The ledger version found (`ferry_meta`).
        found: i64,
    },
    /// A revision's record holds a value Ferry never writes.
    #[error("the ledger row for revision {revision} is corrupt: {reason}")]
    Corrupt {
        /// The revision.
        revision: String,
        /// What is wrong with the row.
        reason: String,
    },
}

const TABLES: [&str; 6] = [
    "ferry_meta",
    "ferry_revisions",
    "ferry_steps",
    "ferry_history",
    "ferry_lock",
    "ferry_sources",
];

fn col(name: &str, data_type: &str, nullable: bool) -> ColumnDef {
    ColumnDef {
        name: name.into(),
        data_type: data_type.into(),
        nullable,
        default: None,
        auto_increment: false,
    }
}

fn table(name: &str, columns: Vec<ColumnDef>, pk: &[&str]) -> TableDef {
    TableDef {
        name: name.into(),
        columns,
        primary_key: Some((
            format!("{name}_pkey"),
            pk.iter().map(|c| c.to_string()).collect(),
        )),
        unique: vec![],
        foreign_keys: vec![],
    }
}

fn ledger_tables() -> Vec<TableDef> {
    let id = ColumnDef {
        auto_increment: true,
        ..col("id", "BIGINT", false)
    };
    vec![
        table(
            "ferry_meta",
            vec![
                col("key", "VARCHAR(64)", false),
                col("value", "TEXT", false),
            ],
            &["key"],
        ),
        table(
            "ferry_revisions",
            vec![
                col("revision", "VARCHAR(255)", false),
                col("tree", "VARCHAR(255)", false),
                col("version", "VARCHAR(255)", false),
                col("state", "VARCHAR(16)", false),
                col("checksum", "VARCHAR(64)", false),
                col("failed_step", "VARCHAR(255)", true),
                col("error", "TEXT", true),
                col("how", "VARCHAR(32)", false),
                col("updated_at", "BIGINT", false),
                deps_checksum_column(),
            ],
            &["revision"],
        ),
        sources_table(),
        table(
            "ferry_steps",
            vec![
                col("revision", "VARCHAR(255)", false),
                col("step", "VARCHAR(255)", false),
                col("done", "SMALLINT", false),
                col("cursor", "TEXT", true),
                col("batches", "BIGINT", false),
                col("row_count", "BIGINT", false),
                col("updated_at", "BIGINT", false),
            ],
            &["revision", "step"],
        ),
        table(
            "ferry_history",
            vec![
                id,
                col("revision", "VARCHAR(255)", false),
                col("tree", "VARCHAR(255)", false),
                col("direction", "VARCHAR(16)", false),
                col("checksum", "VARCHAR(64)", false),
                col("started_at", "BIGINT", false),
                col("finished_at", "BIGINT", false),
                col("duration_ms", "BIGINT", false),
                col("row_count", "BIGINT", false),
                col("outcome", "VARCHAR(16)", false),
                col("error", "TEXT", true),
                col("host", "VARCHAR(255)", false),
                col("username", "VARCHAR(255)", false),
                col("pid", "BIGINT", false),
                col("note", "TEXT", true),
            ],
            &["id"],
        ),
        table(
            "ferry_lock",
            vec![
                col("id", "INTEGER", false),
                col("host", "VARCHAR(255)", false),
                col("pid", "BIGINT", false),
                col("username", "VARCHAR(255)", false),
                col("since", "BIGINT", false),
                col("heartbeat", "BIGINT", false),
            ],
            &["id"],
        ),
    ]
}

fn deps_checksum_column() -> ColumnDef {
    col("deps_checksum", "VARCHAR(64)", true)
}

fn sources_table() -> TableDef {
    table(
        "ferry_sources",
        vec![
            col("revision", "VARCHAR(255)", false),
            col("path", "VARCHAR(1024)", false),
            col("kind", "VARCHAR(16)", false),
            col("checksum", "VARCHAR(64)", false),
            col("content", "TEXT", true),
        ],
        &["revision", "path"],
    )
}

/// Brings a version-1 ledger to version 2 inside the caller's transaction: the
/// dependency digest column and the sources table. Records written before stay as
/// they were (no dependency digest: only their own file is compared).
fn upgrade_from_v1(conn: &mut dyn Connection) -> Result<(), DbError> {
    let has_column = conn
        .columns("ferry_revisions")?
        .iter()
        .any(|c| c.name.eq_ignore_ascii_case("deps_checksum"));
    if !has_column {
        conn.apply_schema_change(&SchemaChange::AddColumn {
            table: "ferry_revisions".into(),
            column: deps_checksum_column(),
        })?;
    }
    if !conn.table_exists("ferry_sources")? {
        conn.apply_schema_change(&SchemaChange::CreateTable(sources_table()))?;
    }
    conn.execute(
        &qualified(
            &*conn,
            "UPDATE ferry_meta SET value = ? WHERE key = 'ledger_version'",
        ),
        &[Value::Text(LEDGER_VERSION.to_string())],
    )?;
    Ok(())
}

/// Whether this database has a ledger at all (without creating one).
pub fn exists(conn: &mut dyn Connection) -> Result<bool, LedgerError> {
    Ok(conn.table_exists("ferry_revisions")?)
}

/// Creates the ledger tables if they are missing, in one transaction, and checks
/// that an existing ledger is of a version this build understands.
pub fn ensure(conn: &mut dyn Connection) -> Result<(), LedgerError> {
    if exists(conn)? {
        let found = ledger_version(conn)?;
        if found > LEDGER_VERSION {
            return Err(LedgerError::TooNew { found });
        }
        if found < SOURCES_SINCE {
            return Ok(with_transaction(conn, upgrade_from_v1)?);
        }
        return Ok(());
    }
    let created = with_transaction(conn, |conn| -> Result<(), DbError> {
        for t in ledger_tables() {
            if !conn.table_exists(&t.name)? {
                conn.apply_schema_change(&SchemaChange::CreateTable(t))?;
            }
        }
        conn.execute(
            &qualified(
                &*conn,
                "INSERT INTO ferry_meta (key, value) VALUES ('ledger_version', ?)",
            ),
            &[Value::Text(LEDGER_VERSION.to_string())],
        )?;
        Ok(())
    });
    Ok(created?)
}

/// Creates the missing ledger tables inside the transaction the caller holds open
/// (a dry run, which rolls them back with everything else).
pub fn create_in_transaction(conn: &mut dyn Connection) -> Result<(), LedgerError> {
    if exists(conn)? {
        if ledger_version(conn)? < SOURCES_SINCE {
            upgrade_from_v1(conn)?;
        }
        return Ok(());
    }
    for t in ledger_tables() {
        if !conn.table_exists(&t.name)? {
            conn.apply_schema_change(&SchemaChange::CreateTable(t))?;
        }
    }
    // As `ensure` leaves it, so that `upgrade --sql` writes the same ledger.
    conn.execute(
        "INSERT INTO ferry_meta (key, value) VALUES ('ledger_version', ?)",
        &[Value::Text(LEDGER_VERSION.to_string())],
    )?;
    Ok(())
}

fn ledger_version(conn: &mut dyn Connection) -> Result<i64, LedgerError> {
    let rows = conn.query(
        &qualified(
            &*conn,
            "SELECT value FROM ferry_meta WHERE key = 'ledger_version'",
        ),
        &[],
    )?;
    Ok(match rows.rows.first().and_then(|r| r.first()) {
        Some(Value::Text(t)) => t.parse().unwrap_or(0),
        Some(Value::Int(i)) => *i,
        _ => 0,
    })
}

/// `sql` with each ledger table qualified by the connection's namespace (PostgreSQL),
/// so that a changed search path cannot send Ferry's records to another repository.
pub(crate) fn qualified(conn: &dyn Connection, sql: &str) -> String {
    let Some(namespace) = conn.namespace() else {
        return sql.to_string();
    };
    let prefix = format!("{}.", conn.quote_ident(namespace));
    let mut out = String::with_capacity(sql.len() + 64);
    let mut rest = sql;
    while let Some(at) = rest.find("ferry_") {
        let (before, from) = rest.split_at(at);
        out.push_str(before);
        let name_len = from
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(from.len());
        let preceded = before
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.' || c == '"');
        if TABLES.contains(&&from[..name_len]) && !preceded {
            out.push_str(&prefix);
        }
        out.push_str(&from[..name_len]);
        rest = &from[name_len..];
    }
    out.push_str(rest);
    out
}

/// The names of Ferry's own tables (excluded from digests and introspection reports).
pub fn table_names() -> &'static [&'static str] {
    &TABLES
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Text(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        Value::Text(t) => t.parse().unwrap_or(0),
        Value::Float(f) => *f as i64,
        Value::Bool(b) => *b as i64,
        _ => 0,
    }
}

/// Every revision record, keyed by revision id.
pub fn revisions(
    conn: &mut dyn Connection,
) -> Result<BTreeMap<String, RevisionRecord>, LedgerError> {
    if !exists(conn)? {
        return Ok(BTreeMap::new());
    }
    let recorded_sources = ledger_version(conn)? >= SOURCES_SINCE;
    let deps = if recorded_sources {
        "deps_checksum"
    } else {
        "NULL"
    };
    let rows = conn.query(
        &qualified(
            &*conn,
            &format!(
                "SELECT revision, tree, version, state, checksum, failed_step, error, how, \
                 updated_at, {deps} FROM ferry_revisions ORDER BY revision"
            ),
        ),
        &[],
    )?;
    let mut sources: BTreeMap<String, Vec<SourceRecord>> = BTreeMap::new();
    if recorded_sources {
        let rows = conn.query(
            &qualified(
                &*conn,
                "SELECT revision, path, kind, checksum FROM ferry_sources ORDER BY revision, path",
            ),
            &[],
        )?;
        for r in rows.rows {
            sources
                .entry(text(&r[0]).unwrap_or_default())
                .or_default()
                .push(SourceRecord {
                    path: text(&r[1]).unwrap_or_default(),
                    kind: text(&r[2]).unwrap_or_default(),
                    checksum: text(&r[3]).unwrap_or_default(),
                    text: None,
                });
        }
    }
    let mut out = BTreeMap::new();
    for r in rows.rows {
        let revision = text(&r[0]).unwrap_or_default();
        let state_text = text(&r[3]).unwrap_or_default();
        let state = RevisionState::parse(&state_text).ok_or_else(|| LedgerError::Corrupt {
            revision: revision.clone(),
            reason: format!("unknown state {state_text:?}"),
        })?;
        let key = revision.clone();
        out.insert(
            revision.clone(),
            RevisionRecord {
                revision,
                tree: text(&r[1]).unwrap_or_default(),
                version: text(&r[2]).unwrap_or_default(),
                state,
                checksum: text(&r[4]).unwrap_or_default(),
                failed_step: text(&r[5]),
                error: text(&r[6]),
                how: text(&r[7]).unwrap_or_default(),
                updated_at: int(&r[8]),
                deps_checksum: text(&r[9]),
                sources: sources.remove(&key).unwrap_or_default(),
            },
        );
    }
    Ok(out)
}

/// The files `revision` ran as the ledger recorded them, with their text where it was
/// kept (empty: nothing recorded, e.g. a ledger older than version 2).
pub fn sources_with_text(
    conn: &mut dyn Connection,
    revision: &str,
) -> Result<Vec<SourceRecord>, LedgerError> {
    if !exists(conn)? || ledger_version(conn)? < SOURCES_SINCE {
        return Ok(vec![]);
    }
    let rows = conn.query(
        &qualified(
            &*conn,
            "SELECT path, kind, checksum, content FROM ferry_sources WHERE revision = ? ORDER BY path",
        ),
        &[Value::Text(revision.into())],
    )?;
    Ok(rows
        .rows
        .into_iter()
        .map(|r| SourceRecord {
            path: text(&r[0]).unwrap_or_default(),
            kind: text(&r[1]).unwrap_or_default(),
            checksum: text(&r[2]).unwrap_or_default(),
            text: text(&r[3]),
        })
        .collect())
}

/// The ids of applied revisions.
pub fn applied(records: &BTreeMap<String, RevisionRecord>) -> std::collections::BTreeSet<String> {
    records
        .values()
        .filter(|r| r.state == RevisionState::Applied)
        .map(|r| r.revision.clone())
        .collect()
}

/// Steps recorded for one revision, in the order they were first recorded.
pub fn steps(conn: &mut dyn Connection, revision: &str) -> Result<Vec<StepRecord>, LedgerError> {
    if !exists(conn)? {
        return Ok(vec![]);
    }
    let rows = conn.query(
        &qualified(
            &*conn,
            "SELECT revision, step, done, cursor, batches, row_count FROM ferry_steps \
         WHERE revision = ? ORDER BY updated_at, step",
        ),
        &[Value::Text(revision.into())],
    )?;
    Ok(rows
        .rows
        .into_iter()
        .map(|r| StepRecord {
            revision: text(&r[0]).unwrap_or_default(),
            step: text(&r[1]).unwrap_or_default(),
            done: int(&r[2]) != 0,
            cursor: text(&r[3]),
            batches: int(&r[4]),
            rows: int(&r[5]),
        })
        .collect())
}

/// The history, newest first; `limit` 0 means all.
pub fn history(conn: &mut dyn Connection, limit: usize) -> Result<Vec<HistoryEntry>, LedgerError> {
    if !exists(conn)? {
        return Ok(vec![]);
    }
    let rows = conn.query(
        &qualified(&*conn, "SELECT id, revision, tree, direction, checksum, started_at, finished_at, duration_ms, \
         row_count, outcome, error, host, username, pid, note FROM ferry_history ORDER BY id DESC"),
        &[],
    )?;
    let iter = rows.rows.into_iter().map(|r| HistoryEntry {
        id: int(&r[0]),
        revision: text(&r[1]).unwrap_or_default(),
        tree: text(&r[2]).unwrap_or_default(),
        direction: text(&r[3]).unwrap_or_default(),
        checksum: text(&r[4]).unwrap_or_default(),
        started_at: int(&r[5]),
        finished_at: int(&r[6]),
        duration_ms: int(&r[7]),
        rows: int(&r[8]),
        outcome: text(&r[9]).unwrap_or_default(),
        error: text(&r[10]),
        host: text(&r[11]).unwrap_or_default(),
        username: text(&r[12]).unwrap_or_default(),
        pid: int(&r[13]),
        note: text(&r[14]),
    });
    Ok(if limit == 0 {
        iter.collect()
    } else {
        iter.take(limit).collect()
    })
}

/// What the runner knows about the revision it is recording.
#[derive(Debug, Clone)]
pub struct RevisionKey<'a> {
    pub revision: &'a str,
    pub tree: &'a str,
    pub version: &'a str,
    pub checksum: &'a str,
}

/// The recorded lock holder, if any (it may be stale: the backend's lock is the truth).
pub fn lock_holder(
    conn: &mut dyn Connection,
) -> Result<Option<crate::backend::LockHolder>, LedgerError> {
    if !exists(conn)? {
        return Ok(None);
    }
    let rows = conn.query(
        &qualified(&*conn, "SELECT host, pid, username, since FROM ferry_lock"),
        &[],
    )?;
    Ok(rows.rows.first().map(|r| crate::backend::LockHolder {
        host: text(&r[0]).unwrap_or_default(),
        pid: int(&r[1]) as u32,
        user: text(&r[2]).unwrap_or_default(),
        since: int(&r[3]),
    }))
}

/// Milliseconds since the Unix epoch (history rows keep durations in ms).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}
