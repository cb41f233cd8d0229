//! `upgrade --sql` round trips: the script applied with the database's own command-line
//! client (`sqlite3 -bail`, `psql -v ON_ERROR_STOP=1`) gives the schema, data and ledger
//! of a real upgrade of an identical copy; and neither `--sql` nor `--dry-run` leaves a
//! trace in the database (SQLite: the file's bytes; PostgreSQL: tables, digest, rows and
//! every sequence's position). Run on a fixture holding every kind of value and on a
//! WORKLOAD.md v1 sample made by `ferry-sample --without-ferry`, with the project's own
//! `scripts/` and `plugins/` after `ferry adopt`.

#[path = "../../cli/tests/common/mod.rs"]
mod common;

use common::{pg_base_url, Backend, Ferry, TestDb};
use ferry::backend::Connection;
use std::path::PathBuf;
use std::process::Command;

/// Two fresh databases of each backend (PostgreSQL when `FERRY_TEST_PG_URL` is set).
fn each_pair(test: &str, f: impl Fn(&TestDb, &TestDb)) {
    f(&TestDb::sqlite(), &TestDb::sqlite());
    if let (Some(a), Some(b)) = (TestDb::postgres(test), TestDb::postgres(test)) {
        f(&a, &b);
    }
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// `ferry` over the project's own scripts, plugins and stdlib.
fn reference(db: &TestDb) -> Ferry<'_> {
    let root = repo();
    db.ferry()
        .scripts(root.join("scripts"))
        .scripts(root.join("plugins/obs_base"))
        .scripts(root.join("plugins/obs_lsst"))
        .scripts(root.join("plugins/obs_subaru"))
        .stdlib(root.join("stdlib"))
}

fn sqlite_path(db: &TestDb) -> PathBuf {
    PathBuf::from(db.url().strip_prefix("sqlite:").expect("a SQLite URL"))
}

/// Applies `script` with the database's own command-line client, stopping at the first
/// error.
fn apply_with_client(db: &TestDb, script: &str) {
    let file = db.dir().join("upgrade.sql");
    std::fs::write(&file, script).unwrap();
    let out = match db.backend {
        Backend::Sqlite => Command::new("sqlite3")
            .arg("-bail")
            .arg(sqlite_path(db))
            .stdin(std::fs::File::open(&file).unwrap())
            .output(),
        Backend::Postgres => Command::new("psql")
            .arg(pg_base_url().unwrap())
            .args(["-X", "-q", "-v", "ON_ERROR_STOP=1", "-f"])
            .arg(&file)
            .env(
                "PGOPTIONS",
                format!("-c search_path={}", db.schema().unwrap()),
            )
            .output(),
    }
    .expect("the command-line client runs");
    assert!(
        out.status.success(),
        "[{}] applying the script failed: {}",
        db.name(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Every row of `table`, in the order of all its columns, as the backend reads them.
fn rows(conn: &mut dyn Connection, table: &str) -> Vec<String> {
    let columns = conn.columns(table).unwrap();
    let names: Vec<String> = columns.iter().map(|c| conn.quote_ident(&c.name)).collect();
    let order: Vec<String> = (1..=names.len()).map(|i| i.to_string()).collect();
    let sql = format!(
        "SELECT {} FROM {} ORDER BY {}",
        names.join(", "),
        conn.quote_ident(table),
        order.join(", ")
    );
    conn.query(&sql, &[])
        .unwrap()
        .rows
        .iter()
        .map(|r| format!("{r:?}"))
        .collect()
}

/// The schema: the digest's canonical text (every table but Ferry's), and Ferry's own
/// tables' columns, keys and indexes.
fn schema(db: &TestDb) -> String {
    let mut text = db.ferry().run(["digest", "--verbose"]).success().stdout;
    let mut conn = db.connect();
    for t in db.ferry_tables() {
        text.push_str(&format!(
            "\n{t}: {:?} {:?} {:?} {:?}",
            conn.columns(&t).unwrap(),
            conn.primary_key(&t).unwrap(),
            conn.unique_constraints(&t).unwrap(),
            conn.indexes(&t).unwrap()
        ));
    }
    text
}

/// The ledger without what must differ between two runs (times, host, user, pid,
/// durations), and the positions of the database's sequences.
fn ledger(db: &TestDb) -> Vec<Vec<Option<String>>> {
    let mut out = Vec::new();
    for sql in [
        "SELECT revision, tree, version, state, checksum, failed_step, error, how \
         FROM ferry_revisions ORDER BY revision",
        "SELECT id, revision, tree, direction, checksum, row_count, outcome, error, note \
         FROM ferry_history ORDER BY id",
        "SELECT revision, step, done, cursor, batches, row_count FROM ferry_steps \
         ORDER BY revision, step",
        "SELECT key, value FROM ferry_meta ORDER BY key",
        "SELECT COUNT(*) FROM ferry_lock",
    ] {
        out.extend(db.query(sql));
    }
    out.extend(sequences(db));
    out
}

/// Every sequence of the database and its position (SQLite: `sqlite_sequence`).
fn sequences(db: &TestDb) -> Vec<Vec<Option<String>>> {
    match db.backend {
        Backend::Sqlite if db.has_table("sqlite_sequence") => {
            db.query("SELECT name, seq FROM sqlite_sequence ORDER BY name")
        }
        Backend::Sqlite => Vec::new(),
        Backend::Postgres => db.query(&format!(
            "SELECT sequencename, last_value FROM pg_sequences WHERE schemaname = '{}' \
             ORDER BY sequencename",
            db.schema().unwrap()
        )),
    }
}

/// `ferry status` without its first line (which names the database).
fn status(f: Ferry<'_>) -> String {
    let out = f.run(["status"]).success().stdout;
    out.lines().skip(1).collect::<Vec<_>>().join("\n")
}

/// Fails naming the first entry where two long listings differ.
fn assert_same(found: &[String], expected: &[String], what: &str) {
    let first = found.iter().zip(expected).position(|(a, b)| a != b);
    if let Some(i) = first {
        panic!(
            "{what}: entry {i} differs:\n  found:    {:.2000}\n  expected: {:.2000}",
            found[i], expected[i]
        );
    }
    assert_eq!(found.len(), expected.len(), "{what}: lengths differ");
}

/// Everything `--sql` or `--dry-run` must leave as it was: on SQLite the file's bytes,
/// on PostgreSQL the tables, the digest text, every row and every sequence's position.
fn trace(db: &TestDb) -> Vec<String> {
    if db.backend == Backend::Sqlite {
        let bytes = std::fs::read(sqlite_path(db)).unwrap_or_default();
        return vec![format!("{} bytes: {:?}", bytes.len(), bytes)];
    }
    let mut out = vec![db.ferry().run(["digest", "--verbose"]).success().stdout];
    let mut conn = db.connect();
    for t in db.tables() {
        out.push(t.clone());
        out.extend(rows(conn.as_mut(), &t));
    }
    out.extend(sequences(db).into_iter().map(|r| format!("{r:?}")));
    out
}

#[test]
fn every_kind_of_value_survives_the_round_trip() {
    each_pair("sql_values", |by_script, by_ferry| {
        let before = trace(by_script);
        let printed = by_script
            .ferry()
            .tree("sql_values")
            .run(["upgrade", "--sql"])
            .success()
            .stdout;
        assert_same(
            &trace(by_script),
            &before,
            &format!("[{}] --sql left a trace", by_script.name()),
        );
        assert!(by_script.tables().is_empty(), "{:?}", by_script.tables());
        // The injection example of issue 13 is one quoted value.
        assert!(printed.contains("'x''); DROP TABLE vals; --'"), "{printed}");
        assert!(printed.contains("CREATE TABLE"), "{printed}");
        // Only the revision that reads is named as holding values read from the database.
        assert!(
            printed.contains(
                "-- revisions that read the database (their values are in the script): values-2\n"
            ),
            "{printed}"
        );
        apply_with_client(by_script, &printed);
        by_script
            .ferry()
            .tree("sql_values")
            .run(["check"])
            .success();

        by_ferry
            .ferry()
            .tree("sql_values")
            .run(["upgrade"])
            .success();
        assert_eq!(
            status(by_script.ferry().tree("sql_values")),
            status(by_ferry.ferry().tree("sql_values"))
        );
        assert_eq!(schema(by_script), schema(by_ferry));
        assert_eq!(ledger(by_script), ledger(by_ferry));
        let (mut a, mut b) = (by_script.connect(), by_ferry.connect());
        for t in ["vals", "serials", "copies", "bulk", "derived"] {
            let rows_a = rows(a.as_mut(), t);
            assert!(!rows_a.is_empty(), "{t}");
            assert_same(&rows_a, &rows(b.as_mut(), t), t);
        }
    });
}

/// A WORKLOAD.md v1 sample made without Ferry, adopted: the same rows in both databases
/// (`ferry-sample` is deterministic for a seed).
fn sample(db: &TestDb) {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry-sample"))
        .args(["--db", db.url(), "--n", "40", "--without-ferry"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    reference(db).run(["adopt"]).success();
}

/// Tables that hold dataset ids: their UUIDs are random (UUID4) except raw datasets'.
fn holds_dataset_ids(conn: &mut dyn Connection, table: &str) -> bool {
    table == "dataset"
        || conn
            .columns(table)
            .unwrap()
            .iter()
            .any(|c| c.name == "dataset_id" || c.name == "new_id")
}

#[test]
fn the_reference_upgrade_of_a_sample_round_trips() {
    each_pair("sql_sample", |by_script, by_ferry| {
        sample(by_script);
        sample(by_ferry);
        let before = trace(by_script);
        let printed = reference(by_script)
            .run(["upgrade", "--sql"])
            .success()
            .stdout;
        assert_same(
            &trace(by_script),
            &before,
            &format!("[{}] --sql left a trace", by_script.name()),
        );
        assert!(printed.contains("datasets-uuid-1.0.0"), "{printed}");
        apply_with_client(by_script, &printed);
        reference(by_script).run(["check"]).success();

        reference(by_ferry).run(["upgrade"]).success();
        assert_eq!(status(reference(by_script)), status(reference(by_ferry)));
        assert_eq!(schema(by_script), schema(by_ferry));
        assert_eq!(ledger(by_script), ledger(by_ferry));

        // Data, per rule: tables without dataset ids are identical; tables with them
        // have the same row counts, raw datasets the same UUID5s, and every dataset the
        // same type, run and file; the other UUIDs are random draws of each upgrade.
        let (mut a, mut b) = (by_script.connect(), by_ferry.connect());
        let tables = by_script.tables();
        assert_eq!(tables, by_ferry.tables());
        for t in tables.iter().filter(|t| !t.starts_with("ferry_")) {
            assert_eq!(by_script.count(t), by_ferry.count(t), "rows of {t}");
            if !holds_dataset_ids(a.as_mut(), t) {
                assert_same(&rows(a.as_mut(), t), &rows(b.as_mut(), t), t);
            }
        }
        let raw = "SELECT dataset_id FROM dataset_tags_00000001 ORDER BY 1";
        let raw_ids = by_script.query(raw);
        assert!(!raw_ids.is_empty());
        assert_eq!(raw_ids, by_ferry.query(raw));
        let logical = "SELECT r.path, d.dataset_type_id, d.run_id FROM dataset d \
                       JOIN file_datastore_records r ON r.dataset_id = d.id ORDER BY 1";
        assert_eq!(by_script.query(logical), by_ferry.query(logical));
        assert_eq!(
            by_script.count("dataset") as usize,
            by_script.query(logical).len()
        );
        let calexp = "SELECT t.dataset_id FROM dataset_tags_00000002 t ORDER BY 1";
        assert_ne!(
            by_script.query(calexp),
            by_ferry.query(calexp),
            "the two upgrades drew the same random UUIDs"
        );
    });
}

/// Issue 13, item 4: the dry run rehearses the whole default plan (the int → UUID
/// rewrite included) and changes nothing; it says it was a rehearsal.
#[test]
fn the_dry_run_rehearses_the_whole_default_plan_and_changes_nothing() {
    each_pair("dry_run_sample", |db, _| {
        sample(db);
        let before = trace(db);
        let pending_before = status(reference(db));
        let out = reference(db).run(["upgrade", "--dry-run"]).success();
        assert_same(
            &trace(db),
            &before,
            &format!("[{}] the dry run left a trace", db.name()),
        );
        assert_eq!(status(reference(db)), pending_before);
        for revision in ["datasets-uuid-1.0.0", "datasets-uuid-1.0.1", "obs_subaru-1"] {
            assert!(
                out.stdout
                    .contains(&format!("upgrade {revision}: rehearsed in")),
                "{revision}: {}",
                out.describe()
            );
        }
        assert!(
            out.stdout
                .contains("dry run: this was a rehearsal; nothing was changed"),
            "{}",
            out.describe()
        );
        assert!(
            out.stdout.contains("swap rewritten tables"),
            "{}",
            out.describe()
        );
        for wrong in ["applied in", "fix the cause", "run `ferry upgrade` again"] {
            assert!(
                !out.stdout.contains(wrong) && !out.stderr.contains(wrong),
                "{wrong}: {}",
                out.describe()
            );
        }
    });
}

/// A dry run that fails says so, and that nothing was changed, without telling the
/// operator to resume a run that never happened.
#[test]
fn a_failing_dry_run_says_nothing_was_changed() {
    each_pair("dry_run_failing", |db, _| {
        let before = trace(db);
        let out = db
            .ferry()
            .tree("failing")
            .run(["upgrade", "--dry-run"])
            .code(1);
        assert!(
            out.stderr
                .contains("dry run: the rehearsal failed here; nothing was changed"),
            "{}",
            out.describe()
        );
        assert!(!out.stderr.contains("fix the cause"), "{}", out.describe());
        assert!(db.ferry_tables().is_empty(), "{:?}", db.ferry_tables());
        if db.backend == Backend::Postgres {
            assert_same(&trace(db), &before, "the failed dry run left a trace");
        }
    });
}

/// A dry run of a downgrade rehearses too (on SQLite on a scratch copy) and changes
/// nothing.
#[test]
fn a_dry_run_of_a_downgrade_changes_nothing() {
    each_pair("dry_run_downgrade", |db, _| {
        sample(db);
        reference(db).run(["upgrade"]).success();
        let before = trace(db);
        let out = reference(db)
            .run(["downgrade", "--dry-run", "datasets-uuid-1.0.0"])
            .success();
        assert_same(
            &trace(db),
            &before,
            &format!("[{}] the downgrade's dry run left a trace", db.name()),
        );
        assert!(
            out.stdout
                .contains("downgrade datasets-uuid-1.0.1: rehearsed in"),
            "{}",
            out.describe()
        );
        assert!(
            out.stdout
                .contains("dry run: this was a rehearsal; nothing was changed"),
            "{}",
            out.describe()
        );
    });
}
