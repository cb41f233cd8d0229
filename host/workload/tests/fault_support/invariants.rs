//! What must hold after any fault: the repository is usable (status works, the ledger
//! reads, a SQLite file passes `PRAGMA integrity_check`), and the ledger agrees with
//! the schema — every committed step's effect is there, no uncommitted step's effect
//! is, and a batched step's map holds exactly the rows up to its recorded cursor (so no
//! batch was applied twice and none is missing).
//!
//! Checks return the problems they find (empty: all is well) so that the caller can
//! report them with the seed and the moment of the kill.

use super::reference::{
    rewritten_tables, staged_copy, uuid_steps, UUID_MAP, UUID_MAP_STEPS, UUID_RECORD_STEP,
    UUID_REVISION, UUID_SWAP_STEP,
};
use super::tables::{scalar, text};
use crate::common::TestDb;
use ferry::backend::{Connection, Dialect, Value};
use ferry::ledger::{self, HistoryEntry, RevisionRecord, RevisionState, StepRecord};
use ferry_workload::schema::{CALIBS_DETECTOR, TAGS_DETECTOR, TAGS_EXPOSURE, TAGS_VISIT};
use ferry_workload::Snapshot;
use std::collections::BTreeMap;
use std::process::Command;

/// Runs `ferry status --json` and the direct checks of a usable repository; returns
/// the status JSON, or the problems found.
pub fn usable(db: &TestDb, mut status: Command) -> Result<serde_json::Value, Vec<String>> {
    let mut problems = Vec::new();
    let out = status
        .args(["status", "--json"])
        .output()
        .expect("run ferry status");
    let json = if out.status.code() != Some(0) {
        problems.push(format!(
            "ferry status exited {:?}: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        ));
        serde_json::Value::Null
    } else {
        match serde_json::from_slice::<serde_json::Value>(&out.stdout) {
            Ok(v) => {
                if !v["locked_by"].is_null() {
                    problems.push(format!(
                        "status reports a lock holder although no migrator runs: {}",
                        v["locked_by"]
                    ));
                }
                v
            }
            Err(e) => {
                problems.push(format!("ferry status --json is not JSON: {e}"));
                serde_json::Value::Null
            }
        }
    };
    let mut conn = db.connect();
    if let Err(e) = LedgerView::read(conn.as_mut()) {
        problems.push(format!("the ledger cannot be read: {e}"));
    }
    problems.extend(consistency_problems(conn.as_mut()));
    if problems.is_empty() {
        Ok(json)
    } else {
        Err(problems)
    }
}

/// What the database itself does not vouch for. SQLite: `PRAGMA integrity_check` says
/// anything but a single `ok`, or `PRAGMA foreign_key_check` finds a row (or either
/// cannot run). PostgreSQL: a foreign key is not validated (every foreign key holds for
/// every row: the server validated it when it was added, unless it was added NOT
/// VALID), or `pg_constraint` cannot be read.
pub fn consistency_problems(conn: &mut dyn Connection) -> Vec<String> {
    let mut problems = Vec::new();
    if conn.dialect() == Dialect::Sqlite {
        match conn.query("PRAGMA integrity_check", &[]) {
            Ok(r) if r.rows == vec![vec![Value::Text("ok".into())]] => {}
            Ok(r) => problems.push(format!("PRAGMA integrity_check: {:?}", r.rows)),
            Err(e) => problems.push(format!("PRAGMA integrity_check: {e}")),
        }
        match conn.query("PRAGMA foreign_key_check", &[]) {
            Ok(r) if r.rows.is_empty() => {}
            Ok(r) => problems.push(format!(
                "PRAGMA foreign_key_check: {} violations, the first: {:?}",
                r.rows.len(),
                &r.rows[..r.rows.len().min(10)]
            )),
            Err(e) => problems.push(format!("PRAGMA foreign_key_check: {e}")),
        }
    } else {
        let unvalidated = conn
            .query(
                "SELECT c.conrelid::regclass::text || '.' || c.conname FROM pg_constraint c \
                 JOIN pg_namespace n ON n.oid = c.connamespace \
                 WHERE n.nspname = current_schema() AND c.contype = 'f' AND NOT c.convalidated",
                &[],
            )
            .map(|r| r.rows)
            .unwrap_or_else(|e| vec![vec![Value::Text(format!("cannot read pg_constraint: {e}"))]]);
        if !unvalidated.is_empty() {
            problems.push(format!("foreign keys not validated: {unvalidated:?}"));
        }
    }
    problems
}

/// The ledger as the library reads it.
#[derive(Debug, Default)]
pub struct LedgerView {
    pub revisions: BTreeMap<String, RevisionRecord>,
    pub steps: BTreeMap<String, Vec<StepRecord>>,
    pub history: Vec<HistoryEntry>,
}

impl LedgerView {
    pub fn read(conn: &mut dyn Connection) -> Result<LedgerView, ledger::LedgerError> {
        let revisions = ledger::revisions(conn)?;
        let mut steps = BTreeMap::new();
        for r in revisions.keys() {
            steps.insert(r.clone(), ledger::steps(conn, r)?);
        }
        let history = ledger::history(conn, 0)?;
        Ok(LedgerView {
            revisions,
            steps,
            history,
        })
    }

    pub fn state(&self, revision: &str) -> Option<RevisionState> {
        self.revisions.get(revision).map(|r| r.state)
    }

    pub fn applied(&self, revision: &str) -> bool {
        self.state(revision) == Some(RevisionState::Applied)
    }

    /// The step's work is committed: the revision is applied, or the step is done.
    pub fn committed(&self, revision: &str, step: &str) -> bool {
        self.applied(revision) || self.step(revision, step).is_some_and(|s| s.done)
    }

    pub fn step(&self, revision: &str, step: &str) -> Option<&StepRecord> {
        self.steps.get(revision)?.iter().find(|s| s.step == step)
    }

    /// Upgrade runs of `revision` the history records as applied.
    pub fn applied_runs(&self, revision: &str) -> usize {
        self.history
            .iter()
            .filter(|h| {
                h.revision == revision && h.direction == "upgrade" && h.outcome == "applied"
            })
            .count()
    }

    /// The checks that hold whatever the revisions do: each applied revision applied
    /// once in the history and no step records left for it; a running or failed one
    /// never recorded as applied. With `failures_expected` false (only kills happened)
    /// no revision may be failed and no run recorded as failed.
    pub fn consistency(&self, failures_expected: bool) -> Vec<String> {
        let mut problems = Vec::new();
        for (id, record) in &self.revisions {
            let runs = self.applied_runs(id);
            match record.state {
                RevisionState::Applied => {
                    if record.how == "upgrade" && runs != 1 {
                        problems.push(format!(
                            "{id} is applied, but the history has {runs} applied runs"
                        ));
                    }
                    if self.steps.get(id).is_some_and(|s| !s.is_empty()) {
                        problems.push(format!(
                            "{id} is applied, but step records remain: {:?}",
                            self.steps[id]
                        ));
                    }
                }
                RevisionState::Running | RevisionState::Failed => {
                    if runs != 0 {
                        problems.push(format!(
                            "{id} is {:?}, but the history has {runs} applied runs",
                            record.state
                        ));
                    }
                    if record.state == RevisionState::Failed && !failures_expected {
                        problems.push(format!(
                            "{id} is failed after kills only: {:?}",
                            record.error
                        ));
                    }
                }
            }
        }
        if !failures_expected {
            for h in self.history.iter().filter(|h| h.outcome != "applied") {
                problems.push(format!(
                    "history row {} for {} is {}: {:?}",
                    h.id, h.revision, h.outcome, h.error
                ));
            }
        }
        for h in &self.history {
            if !self.revisions.contains_key(&h.revision) && h.direction == "upgrade" {
                problems.push(format!(
                    "history names {}, which has no ledger record",
                    h.revision
                ));
            }
        }
        problems
    }
}

/// The int → UUID revision's batch cursor as last seen, to check that it never goes back.
#[derive(Debug, Default, Clone, Copy)]
pub struct MapProgress {
    pub cursor: i64,
    pub batches: i64,
}

/// The type of `table.column` exactly as the connection reports it; `None`: no such
/// column (or table).
pub fn column_type(conn: &mut dyn Connection, table: &str, column: &str) -> Option<String> {
    let info = conn.columns(table).unwrap_or_default();
    info.into_iter()
        .find(|c| c.name == column)
        .map(|c| c.data_type)
}

/// Whether `data_type`, as given, is the type Ferry gives UUID columns on `dialect`.
pub fn is_uuid_type(dialect: Dialect, data_type: &str) -> bool {
    match dialect {
        Dialect::Postgres => data_type == "uuid",
        Dialect::Sqlite => data_type == "char(32)",
    }
}

/// Whether `table.column` exists and is a UUID column (its type compared without
/// spaces, in lower case).
pub fn is_uuid_column(conn: &mut dyn Connection, table: &str, column: &str) -> bool {
    column_type(conn, table, column)
        .is_some_and(|t| is_uuid_type(conn.dialect(), &t.replace(' ', "").to_lowercase()))
}

fn attribute(conn: &mut dyn Connection, name: &str) -> Option<String> {
    text(
        conn,
        "SELECT value FROM butler_attributes WHERE name = ?",
        &[Value::Text(name.into())],
    )
}

/// `datasets-uuid-1.0.0` against the schema: each step's effect is present exactly when
/// the step is committed, the steps committed form a prefix of the script's order (the
/// table steps, which may run at the same time, only after the tables they reference), and
/// the id map holds exactly the datasets up to the recorded cursor, with a batch count
/// that matches (a batch applied twice, or one committed without its cursor, shows).
/// Each table's rewrite step committed (and the swap not) ⇔ its rewritten copy exists,
/// complete (as many rows as the table, the column a UUID, the same primary key, its
/// foreign keys into the rewrite pointing at the parent's copy) while the table itself is
/// untouched; the swap committed ⇔ every table has its final name and type and no copy is
/// left.
pub fn uuid_revision(
    conn: &mut dyn Connection,
    view: &LedgerView,
    before: &Snapshot,
    batch_size: i64,
    last: &mut MapProgress,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    let committed = |step: &str| view.committed(UUID_REVISION, step);
    let [create, map_ids, removed, keyed] = UUID_MAP_STEPS;
    let steps = uuid_steps();
    // Table steps may run at the same time (`--jobs`), so they may commit in any order
    // among themselves, except that a table's step follows the steps of the tables of
    // the rewrite it references; "map removed datasets" runs beside "map dataset ids"
    // (`db.step_beside`) and may commit before it; every other step follows every
    // earlier one.
    let table_of = |step: &str| {
        step.strip_prefix("rewrite ")
            .filter(|t| rewritten_tables().iter().any(|(r, _)| r == t))
            .map(str::to_string)
    };
    let must_precede = |conn: &mut dyn Connection, earlier: &str, later: &str| match (
        table_of(earlier),
        table_of(later),
    ) {
        (Some(parent), Some(child)) => conn
            .foreign_keys(&child)
            .expect("foreign keys")
            .iter()
            .any(|k| k.referenced_table == parent),
        _ => !(earlier == map_ids && later == removed),
    };
    for (i, later) in steps.iter().enumerate() {
        for earlier in &steps[..i] {
            if committed(later) && !committed(earlier) && must_precede(conn, earlier, later) {
                expect(
                    false,
                    format!("step {later:?} is committed but the earlier {earlier:?} is not"),
                );
            }
        }
    }
    let map_exists = conn.table_exists(UUID_MAP).expect("introspect");
    expect(
        map_exists == (committed(create) && !committed(UUID_RECORD_STEP)),
        format!(
            "{UUID_MAP} exists: {map_exists}, but {create:?} committed: {}, {UUID_RECORD_STEP:?} committed: {}",
            committed(create),
            committed(UUID_RECORD_STEP)
        ),
    );
    let swapped = committed(UUID_SWAP_STEP);
    for (table, column) in rewritten_tables() {
        let step = format!("rewrite {table}");
        let copy = staged_copy(table);
        let copy_exists = conn.table_exists(&copy).expect("introspect");
        expect(
            copy_exists == (committed(&step) && !swapped),
            format!(
                "{copy} exists: {copy_exists}, but {step:?} committed: {}, the swap committed: {swapped}",
                committed(&step)
            ),
        );
        let is_uuid = is_uuid_column(conn, table, column);
        expect(
            is_uuid == swapped,
            format!("{table}.{column} is a UUID: {is_uuid}, but the swap committed: {swapped}"),
        );
        if swapped {
            let pk = conn
                .primary_key(table)
                .expect("primary key")
                .map(|k| k.name);
            expect(
                pk.as_deref() == Some(format!("{table}_pkey").as_str()),
                format!("{table} has primary key {pk:?} after the swap"),
            );
        }
        if copy_exists {
            for problem in staged_copy_problems(conn, table, column, &copy) {
                expect(false, problem);
            }
        }
    }
    let manager = attribute(conn, "config:registry.managers.datasets").unwrap_or_default();
    expect(
        manager.ends_with("UUID") == committed(UUID_RECORD_STEP),
        format!(
            "datasets manager is {manager:?}, but {UUID_RECORD_STEP:?} committed: {}",
            committed(UUID_RECORD_STEP)
        ),
    );
    if !map_exists {
        return problems;
    }
    // SQLite's map is keyed from the start (its rowid); elsewhere once its step commits.
    let map_keyed = conn.primary_key(UUID_MAP).expect("primary key").is_some();
    expect(
        map_keyed == (conn.dialect() == Dialect::Sqlite || committed(keyed)),
        format!(
            "{UUID_MAP} has a primary key: {map_keyed}, but {keyed:?} committed: {}",
            committed(keyed)
        ),
    );
    let datasets = before.datasets.len() as i64;
    let map_rows = scalar(conn, &format!("SELECT COUNT(*) FROM {UUID_MAP}"), &[]);
    // The removed datasets' rows, there exactly when their step committed.
    let removed_rows = if committed(removed) {
        before.removed.len() as i64
    } else {
        0
    };
    if !committed(map_ids) {
        let (cursor, batches) = match view.step(UUID_REVISION, map_ids) {
            Some(s) => (
                s.cursor
                    .as_deref()
                    .map(|c| c.parse::<i64>().unwrap_or_else(|_| panic!("cursor {c:?}")))
                    .unwrap_or(i64::MIN),
                s.batches,
            ),
            None => (i64::MIN, 0),
        };
        let below = if cursor == i64::MIN {
            0
        } else {
            scalar(
                conn,
                "SELECT COUNT(*) FROM dataset WHERE id <= ?",
                &[Value::Int(cursor)],
            )
        };
        let matched = scalar(
            conn,
            &format!("SELECT COUNT(*) FROM {UUID_MAP} m JOIN dataset d ON d.id = m.old_id WHERE d.id <= ?"),
            &[Value::Int(cursor)],
        );
        expect(
            map_rows == below + removed_rows && matched == below,
            format!(
                "the map holds {map_rows} rows ({matched} of datasets up to the cursor), \
                 but {below} datasets lie up to the recorded cursor {cursor} and \
                 {removed_rows} removed ones are committed"
            ),
        );
        let batches_for = (below + batch_size - 1) / batch_size;
        expect(
            batches == batches_for && (below == batches * batch_size || below == datasets),
            format!(
                "{batches} batches recorded for {below} mapped datasets at {batch_size} per batch"
            ),
        );
        if cursor != i64::MIN {
            expect(
                cursor >= last.cursor && batches >= last.batches,
                format!(
                    "the cursor went back: {cursor} after {} ({batches} batches after {})",
                    last.cursor, last.batches
                ),
            );
            *last = MapProgress { cursor, batches };
        }
    } else if !committed(removed) {
        expect(
            map_rows == datasets,
            format!("the map holds {map_rows} rows after {map_ids:?}, expected {datasets}"),
        );
    } else {
        let all = datasets + before.removed.len() as i64;
        expect(
            map_rows == all,
            format!("the map holds {map_rows} rows after {removed:?}, expected {all}"),
        );
    }
    problems
}

/// A committed rewritten copy of `table` (before the swap): as many rows as the table,
/// `column` a UUID in the copy and still an integer in the table, the same primary-key
/// columns, and its foreign keys into `dataset` pointing at dataset's copy.
fn staged_copy_problems(
    conn: &mut dyn Connection,
    table: &str,
    column: &str,
    copy: &str,
) -> Vec<String> {
    let mut problems = Vec::new();
    let rows = |conn: &mut dyn Connection, t: &str| {
        let sql = format!("SELECT COUNT(*) FROM {}", conn.quote_ident(t));
        scalar(conn, &sql, &[])
    };
    let (old, new) = (rows(conn, table), rows(conn, copy));
    if old != new {
        problems.push(format!("{copy} holds {new} rows, {table} {old}"));
    }
    if !is_uuid_column(conn, copy, column) {
        problems.push(format!("{copy}.{column} is not a UUID"));
    }
    let key_columns = |conn: &mut dyn Connection, t: &str| {
        conn.primary_key(t).expect("primary key").map(|k| k.columns)
    };
    let (old_key, new_key) = (key_columns(conn, table), key_columns(conn, copy));
    if old_key != new_key {
        problems.push(format!(
            "{copy} has primary key {new_key:?}, {table} {old_key:?}"
        ));
    }
    // The table's keys, those into dataset pointing at dataset's copy instead.
    let expected: Vec<(String, String)> = conn
        .foreign_keys(table)
        .expect("foreign keys")
        .into_iter()
        .map(|k| {
            let into = if k.referenced_table == "dataset" {
                staged_copy("dataset")
            } else {
                k.referenced_table
            };
            (k.name, into)
        })
        .collect();
    let found: Vec<(String, String)> = conn
        .foreign_keys(copy)
        .expect("foreign keys")
        .into_iter()
        .map(|k| (k.name, k.referenced_table))
        .collect();
    if found != expected {
        problems.push(format!(
            "{copy} has foreign keys {found:?}, expected {expected:?}"
        ));
    }
    problems
}

/// The dynamic tables that `datasets-uuid-1.0.1` indexes.
pub const DYNAMIC_TABLES: [&str; 4] = [TAGS_EXPOSURE, TAGS_VISIT, TAGS_DETECTOR, CALIBS_DETECTOR];

const UUID_MANAGER: &str =
    "lsst.daf.butler.registry.datasets.byDimensions.ByDimensionsDatasetRecordStorageManagerUUID";

/// The name `obs_subaru-1` gives an HSC detector.
fn ccd_name(id: i64) -> String {
    format!("{}_{}", id / 52, id % 52 + 1)
}

/// PostgreSQL indexes in the connection's schema that are not valid (left by an
/// interrupted `CREATE INDEX CONCURRENTLY`); always empty on SQLite.
pub fn invalid_indexes(conn: &mut dyn Connection) -> Vec<String> {
    if conn.dialect() != Dialect::Postgres {
        return vec![];
    }
    let rows = conn
        .query(
            "SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND NOT i.indisvalid ORDER BY 1",
            &[],
        )
        .expect("read pg_index");
    rows.rows
        .into_iter()
        .map(|r| match &r[0] {
            Value::Text(name) => name.clone(),
            other => other.to_string(),
        })
        .collect()
}

/// The revisions after v2 (`ferry upgrade` to the heads) against the schema.
pub fn later_revisions(conn: &mut dyn Connection, view: &LedgerView) -> Vec<String> {
    let mut problems = Vec::new();
    let mut expect = |ok: bool, what: String| {
        if !ok {
            problems.push(what);
        }
    };
    // collections-2.0.1 has no steps: its one implicit transaction commits with the record.
    let doc = conn
        .columns("collection")
        .expect("columns")
        .iter()
        .any(|c| c.name == "doc");
    let patched = view.applied("collections-2.0.1");
    expect(
        doc == patched,
        format!("collection.doc exists: {doc}, collections-2.0.1 applied: {patched}"),
    );

    let r = "datasets-uuid-1.0.1";
    let invalid = invalid_indexes(conn);
    for t in DYNAMIC_TABLES {
        let indexes = conn.indexes(t).expect("indexes");
        for column in ["collection_id", "dataset_type_id"] {
            let name = format!("{t}_idx_{column}");
            if view.committed(r, &format!("index {name}")) {
                expect(
                    indexes.iter().any(|i| i.name == name),
                    format!("{name} is committed but missing"),
                );
                expect(
                    !invalid.contains(&name),
                    format!("{name} is committed but invalid"),
                );
            }
        }
        let fk = format!("{t}_fkey_dataset_type");
        if view.committed(r, &format!("foreign key {fk}")) {
            let fks = conn.foreign_keys(t).expect("foreign keys");
            expect(
                fks.iter().any(|f| f.name == fk),
                format!("{fk} is committed but missing"),
            );
        }
    }
    let version = attribute(conn, &format!("version:{UUID_MANAGER}"));
    let recorded = view.committed(r, "record the manager version");
    expect(
        (version.as_deref() == Some("1.0.1")) == recorded,
        format!("UUID manager version {version:?}, {r} recorded: {recorded}"),
    );

    let d = "dimensions-config-1";
    let amplifier = conn.table_exists("amplifier").expect("introspect");
    expect(
        amplifier == view.committed(d, "create amplifier"),
        format!(
            "amplifier exists: {amplifier}, but its creation committed: {}",
            view.committed(d, "create amplifier")
        ),
    );
    if amplifier {
        let n = scalar(conn, "SELECT COUNT(*) FROM amplifier", &[]);
        let expected = if view.committed(d, "populate amplifier") {
            400
        } else {
            0
        };
        expect(
            n == expected,
            format!("amplifier holds {n} rows, expected {expected}"),
        );
    }
    let universe = attribute(conn, "config:dimensions.json").unwrap_or_default();
    expect(
        universe.contains("amplifier") == view.committed(d, "record universe 1"),
        format!(
            "universe {universe:?} but 'record universe 1' committed: {}",
            view.committed(d, "record universe 1")
        ),
    );

    let rows = conn
        .query(
            "SELECT id, full_name FROM detector WHERE instrument = 'HSC'",
            &[],
        )
        .expect("detectors");
    let renamed = rows
        .rows
        .iter()
        .filter(|r| matches!((&r[0], &r[1]), (Value::Int(id), Value::Text(name)) if *name == ccd_name(*id)))
        .count();
    let expected = if view.committed("obs_subaru-1", "rename HSC detectors") {
        rows.rows.len()
    } else {
        0
    };
    expect(
        renamed == expected,
        format!("{renamed} HSC detectors renamed, expected {expected}"),
    );
    problems
}

/// The end state of `ferry upgrade` to the heads: every tree at its heads with nothing
/// pending or unfinished (as `ferry status --json` reports it), every revision applied
/// once, no step records left, no invalid index.
pub fn at_heads(
    status: &serde_json::Value,
    conn: &mut dyn Connection,
    failures_expected: bool,
) -> Vec<String> {
    let mut problems = Vec::new();
    for tree in status["trees"].as_array().cloned().unwrap_or_default() {
        let name = tree["tree"].as_str().unwrap_or("?");
        if tree["current"] != tree["heads"] {
            problems.push(format!(
                "{name}: current {} but heads {}",
                tree["current"], tree["heads"]
            ));
        }
        if tree["pending"].as_array().is_none_or(|p| !p.is_empty()) {
            problems.push(format!("{name}: pending {}", tree["pending"]));
        }
        if tree["unfinished"].as_array().is_none_or(|p| !p.is_empty()) {
            problems.push(format!("{name}: unfinished {}", tree["unfinished"]));
        }
    }
    let view = LedgerView::read(conn).expect("read the ledger");
    problems.extend(view.consistency(failures_expected));
    for (id, r) in &view.revisions {
        if r.state != RevisionState::Applied {
            problems.push(format!("{id} is {:?} at the end", r.state));
        }
    }
    let leftover = scalar(conn, "SELECT COUNT(*) FROM ferry_steps", &[]);
    if leftover != 0 {
        problems.push(format!("{leftover} step records left in ferry_steps"));
    }
    let invalid = invalid_indexes(conn);
    if !invalid.is_empty() {
        problems.push(format!("invalid indexes: {invalid:?}"));
    }
    problems
}
