//! The reference workload on SQLite and PostgreSQL: a v1 repository created without
//! Ferry, filled at N = 20,000, its counts and distributions, determinism, and a
//! checker that does fail on an unmigrated repository.
//!
//! PostgreSQL tests run when `FERRY_TEST_PG_URL` is set (each in a fresh schema,
//! dropped at the end) and are skipped otherwise.

#[path = "../../cli/tests/common/mod.rs"]
mod common;

use common::fresh::{pg_base, Backend, FreshDb};
use ferry::backend::{Connection, Value};
use ferry_workload::{self as workload, Scale, Snapshot};

const N: u64 = 20_000;

/// Hands out fresh, empty repositories (`common::fresh`'s: SQLite files in temporary
/// folders, or PostgreSQL schemas with unique names), all dropped when this is dropped.
struct Fresh {
    backend: Backend,
    test: String,
    made: Vec<FreshDb>,
}

impl Fresh {
    fn sqlite() -> Fresh {
        Fresh {
            backend: Backend::Sqlite,
            test: "workload".into(),
            made: Vec::new(),
        }
    }

    /// `None` (and a note) when `FERRY_TEST_PG_URL` is unset; panics when it is set but
    /// the server cannot be reached.
    fn postgres(test: &str) -> Option<Fresh> {
        pg_base(test)?;
        Some(Fresh {
            backend: Backend::Postgres,
            test: test.into(),
            made: Vec::new(),
        })
    }

    fn repo(&mut self) -> Box<dyn Connection> {
        let db = FreshDb::new(self.backend, &self.test).expect("backend configured");
        let conn = db.connect();
        self.made.push(db);
        conn
    }
}

fn count(conn: &mut dyn Connection, sql: &str) -> i64 {
    let rows = conn
        .query(sql, &[])
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    match rows.rows.first().and_then(|r| r.first()) {
        Some(Value::Int(i)) => *i,
        other => panic!("{sql}: not a count: {other:?}"),
    }
}

fn filled(fresh: &mut Fresh, seed: u64) -> Box<dyn Connection> {
    let mut conn = fresh.repo();
    workload::create_v1_without_ferry(conn.as_mut()).expect("create v1");
    let report = workload::fill_v1(conn.as_mut(), N, seed).expect("fill");
    eprintln!(
        "{}: filled N = {N} ({} rows) in {:.2?}",
        conn.describe(),
        report.total_rows(),
        report.elapsed
    );
    conn
}

fn counts_and_distributions(fresh: &mut Fresh) {
    let mut conn = filled(fresh, 1);
    let c = conn.as_mut();
    let s = Scale::new(N).unwrap();
    let n = N as i64;
    assert_eq!(count(c, "SELECT COUNT(*) FROM dataset"), n);
    let by_type = |c: &mut dyn Connection, name: &str| {
        count(
            c,
            &format!(
                "SELECT COUNT(*) FROM dataset d JOIN dataset_type t ON t.id = d.dataset_type_id \
                 WHERE t.name = '{name}'"
            ),
        )
    };
    assert_eq!(by_type(c, "raw"), n * 40 / 100);
    assert_eq!(by_type(c, "calexp"), n * 40 / 100);
    assert_eq!(by_type(c, "bias"), 4);
    assert_eq!(by_type(c, "flat"), 4);
    assert_eq!(by_type(c, "src"), n - 2 * (n * 40 / 100) - 8);
    // raw: all in HSC/raw/all, one tags row each, 100 detectors per exposure.
    assert_eq!(
        count(
            c,
            "SELECT COUNT(*) FROM dataset d JOIN collection c ON c.collection_id = d.run_id \
             WHERE d.dataset_type_id = 1 AND c.name = 'HSC/raw/all'"
        ),
        s.raw as i64
    );
    assert_eq!(
        count(c, "SELECT COUNT(*) FROM dataset_tags_00000001"),
        s.raw as i64
    );
    assert_eq!(
        count(
            c,
            "SELECT COUNT(DISTINCT detector) FROM dataset_tags_00000001"
        ),
        100
    );
    assert_eq!(
        count(c, "SELECT MIN(exposure) FROM dataset_tags_00000001"),
        900_000
    );
    // calexp over ten runs w_00..w_09.
    assert_eq!(
        count(
            c,
            "SELECT COUNT(DISTINCT c.name) FROM dataset d JOIN collection c \
             ON c.collection_id = d.run_id WHERE d.dataset_type_id = 2 AND c.name LIKE 'HSC/runs/w\\_0_' ESCAPE '\\'"
        ),
        10
    );
    // tags_00000002: one row per calexp and src in its run, plus the tagged 10 %.
    assert_eq!(
        count(c, "SELECT COUNT(*) FROM dataset_tags_00000002"),
        (s.calexp + s.src + s.tagged) as i64
    );
    assert_eq!(
        count(
            c,
            "SELECT COUNT(*) FROM dataset_tags_00000002 t JOIN collection c \
             ON c.collection_id = t.collection_id WHERE c.name = 'HSC/tagged/good' AND c.type = 2 \
             AND t.dataset_type_id = 2"
        ),
        s.calexp as i64 / 10
    );
    // every src shares a calexp's visit, detector and run.
    assert_eq!(
        count(
            c,
            "SELECT COUNT(*) FROM dataset_tags_00000002 s JOIN dataset_tags_00000002 x \
             ON x.visit = s.visit AND x.detector = s.detector AND x.collection_id = s.collection_id \
             AND x.dataset_type_id = 2 WHERE s.dataset_type_id = 3"
        ),
        s.src as i64
    );
    // calibrations: a tags row and a calibs row each, in HSC/calib, non-overlapping.
    assert_eq!(count(c, "SELECT COUNT(*) FROM dataset_tags_00000003"), 8);
    assert_eq!(
        count(
            c,
            "SELECT COUNT(*) FROM dataset_calibs_00000003 k JOIN collection c \
             ON c.collection_id = k.collection_id WHERE c.name = 'HSC/calib' AND c.type = 4"
        ),
        8
    );
    assert_eq!(
        count(
            c,
            "SELECT COUNT(*) FROM dataset_calibs_00000003 a JOIN dataset_calibs_00000003 b \
             ON a.id < b.id AND a.dataset_type_id = b.dataset_type_id AND a.detector = b.detector \
             AND a.validity_begin < b.validity_end AND b.validity_begin < a.validity_end"
        ),
        0
    );
    // datastore: one record per dataset plus the removed ones, unique paths.
    let removed = (N / 200) as i64;
    assert_eq!(
        count(c, "SELECT COUNT(*) FROM file_datastore_records"),
        n + removed
    );
    assert_eq!(
        count(c, "SELECT COUNT(DISTINCT path) FROM file_datastore_records"),
        n + removed
    );
    assert_eq!(
        count(
            c,
            "SELECT COUNT(*) FROM file_datastore_records WHERE component <> ''"
        ),
        0
    );
    assert_eq!(count(c, "SELECT COUNT(*) FROM dataset_location"), n);
    assert_eq!(
        count(c, "SELECT COUNT(*) FROM dataset_location_trash"),
        removed
    );
    assert_eq!(
        count(c, "SELECT MIN(dataset_id) FROM dataset_location_trash"),
        n + 1
    );
    assert_eq!(count(c, "SELECT COUNT(*) FROM butler_attributes"), 11);

    let snapshot = Snapshot::take(c).expect("snapshot");
    assert_eq!(snapshot.datasets.len() as u64, N);
    assert_eq!(snapshot.removed.len() as i64, removed);
    assert_eq!(
        snapshot.counts["dataset_tags_00000002"],
        s.calexp + s.src + s.tagged
    );
}

fn determinism(fresh: &mut Fresh) {
    let a = Snapshot::take(filled(fresh, 42).as_mut()).unwrap();
    let b = Snapshot::take(filled(fresh, 42).as_mut()).unwrap();
    assert!(a == b, "the same seed gave different repositories");
    let c = Snapshot::take(filled(fresh, 43).as_mut()).unwrap();
    assert!(a != c, "another seed gave the same repository");
    assert_eq!(a.counts, c.counts);
}

fn checker_fails_on_v1(fresh: &mut Fresh) {
    let mut conn = filled(fresh, 7);
    let before = Snapshot::take(conn.as_mut()).unwrap();
    let problems = workload::check_v2(conn.as_mut(), &before).expect_err("v1 is not v2");
    let text = problems.join("\n");
    assert!(text.contains("dataset.id is declared"), "{text}");
    assert!(text.contains("dataset_location_trash.dataset_id"), "{text}");
    assert!(text.contains("not the UUID manager"), "{text}");
    assert!(text.contains("is not a UUID"), "{text}");
    assert!(text.contains("removed datasets lack a UUID4"), "{text}");
    assert!(problems.len() < 60, "violations are summarised: {text}");
}

#[test]
fn sqlite_counts_and_distributions() {
    counts_and_distributions(&mut Fresh::sqlite());
}

#[test]
fn sqlite_determinism() {
    determinism(&mut Fresh::sqlite());
}

#[test]
fn sqlite_checker_fails_on_v1() {
    checker_fails_on_v1(&mut Fresh::sqlite());
}

#[test]
fn postgres_counts_and_distributions() {
    if let Some(mut fresh) = Fresh::postgres("postgres_counts_and_distributions") {
        counts_and_distributions(&mut fresh);
    }
}

#[test]
fn postgres_determinism() {
    if let Some(mut fresh) = Fresh::postgres("postgres_determinism") {
        determinism(&mut fresh);
    }
}

#[test]
fn postgres_checker_fails_on_v1() {
    if let Some(mut fresh) = Fresh::postgres("postgres_checker_fails_on_v1") {
        checker_fails_on_v1(&mut fresh);
    }
}

#[test]
fn raw_uuid5_matches_python() {
    let data_id = [
        ("detector".to_string(), "42".to_string()),
        ("exposure".to_string(), "903334".to_string()),
        ("instrument".to_string(), "HSC".to_string()),
    ];
    assert_eq!(
        workload::raw_dataset_uuid("HSC/raw/all", &data_id).to_string(),
        "2f5ee4b8-756e-5705-96b4-3c7b66c7dab5"
    );
}
