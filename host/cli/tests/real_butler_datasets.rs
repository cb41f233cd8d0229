//! daf_butler's datasets manager step ByDimensionsDatasetRecordStorageManagerUUID
//! 1.0.0 -> 2.0.0 (`dataset.ingest_date`: a UTC TIMESTAMP becomes TAI nanoseconds) on
//! repositories the real daf_butler made at 1.0.0 (`butler_tool.py make
//! --datasets-version 1.0.0`: daf_butler still creates that schema when its registry
//! configuration asks for it), judged by the real daf_butler: the ingest dates its query
//! system returns, every record and dataset, the schema against a fresh 2.0.0
//! repository (server defaults included). SQLite and PostgreSQL; without
//! FERRY_TEST_PYTHON (or, for PostgreSQL, FERRY_TEST_PG_URL) a skip line.

mod common;
mod real_butler_support;

use real_butler_support::*;
use std::collections::BTreeSet;

const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];
/// The dimension universe of the test repositories (today's).
const UNIVERSE: u32 = 8;
const AT_1_0_0: [&str; 2] = ["--datasets-version", "1.0.0"];

/// The UTC instants `butler_tool.py make --datasets-version 1.0.0` writes into
/// `ingest_date` (its INGEST_DATES), with TAI - UTC at each, from the IERS leap-second
/// table written out again here: the TAI nanoseconds each must become.
fn expected_tai_ns() -> BTreeSet<i64> {
    let instants = [
        // (unix seconds of the UTC instant, microseconds, TAI - UTC)
        (1_709_618_828_i64, 123_456_i64, 37_i64), // 2024-03-05 06:07:08.123456
        (1_704_067_199, 999_999, 37),             // 2023-12-31 23:59:59.999999
        (1_483_228_800, 0, 37),                   // 2017-01-01 00:00:00
        (1_483_228_799, 500_000, 36),             // 2016-12-31 23:59:59.5
        (1_435_665_600, 1, 35),                   // 2015-06-30 12:00:00.000001
        (915_148_800, 0, 32),                     // 1999-01-01 00:00:00
        (1_796_378_400, 500_000, 37),             // 2026-12-04 10:00:00.5
    ];
    instants
        .iter()
        .map(|(s, us, leap)| (s + leap) * 1_000_000_000 + us * 1000)
        .collect()
}

/// The values stored in `dataset.ingest_date`, read with Ferry's own driver.
fn stored_ingest_dates(repo: &RealRepo) -> Vec<ferry::backend::Value> {
    let mut conn =
        ferry::backend::connect(&ferry::backend::DbUrl::parse(&repo.url()).expect("URL parses"))
            .expect("connect");
    conn.query("SELECT ingest_date FROM dataset", &[])
        .expect("read dataset")
        .rows
        .into_iter()
        .map(|r| r[0].clone())
        .collect()
}

/// The distinct TAI nanoseconds stored in `dataset.ingest_date`.
fn stored_tai_ns(repo: &RealRepo, b: Backend) -> BTreeSet<i64> {
    stored_ingest_dates(repo)
        .iter()
        .map(|v| match v {
            ferry::backend::Value::Int(i) => *i,
            other => panic!("[{b:?}] ingest_date {other:?} is not an integer"),
        })
        .collect()
}

/// Adopt at 1.0.0, upgrade (in batches of 7 rows), judged; then downgrade back to the
/// original schema and values, and up again.
#[test]
fn ingest_date_becomes_tai_nanoseconds_and_back() {
    let test = "ingest_date_becomes_tai_nanoseconds_and_back";
    for b in BACKENDS {
        let Some(repo) = RealRepo::make_with(test, b, UNIVERSE, &AT_1_0_0) else {
            continue;
        };
        let fresh_2 = RealRepo::make(test, b, UNIVERSE).expect("configured");
        let schema_2 = fresh_2.describe_with_defaults();
        drop(fresh_2);
        let schema_1 = repo.describe_with_defaults();
        let before = repo.ingest_dates();
        let judged = repo.judge();
        assert_eq!(before["datasets_version"], "1.0.0", "[{b:?}]");
        let n = before["ingest_dates"].as_object().unwrap().len();
        assert!(n > 50, "[{b:?}] {n} datasets");
        assert_eq!(
            schema_1["tables"]["dataset"]["columns"]["ingest_date"]["type"], "TIMESTAMP",
            "[{b:?}] daf_butler made a 1.0.0 schema"
        );

        repo.ferry_ok(&["adopt"]);
        assert_eq!(
            repo.current("datasets"),
            ["daf_butler-datasets-uuid-1.0.0"],
            "[{b:?}]"
        );
        let out = repo.ferry_ok(&["upgrade", "--set", "datasets.ingest_date_batch_size=7"]);
        assert!(
            out.contains("daf_butler-datasets-uuid-2.0.0"),
            "[{b:?}] {out}"
        );
        assert_eq!(
            repo.current("datasets"),
            ["daf_butler-datasets-uuid-2.0.0"],
            "[{b:?}]"
        );
        repo.ferry_ok(&["check"]);

        // What daf_butler reads: version 2.0.0, the same instants, the same registry.
        let after = repo.ingest_dates();
        assert_eq!(after["datasets_version"], "2.0.0", "[{b:?}]");
        assert_eq!(
            after["ingest_dates"], before["ingest_dates"],
            "[{b:?}] every ingest_date is the same instant"
        );
        assert_eq!(repo.judge(), judged, "[{b:?}] the registry is unchanged");
        // What is stored: the TAI nanoseconds computed here from the leap-second table.
        assert_eq!(stored_tai_ns(&repo, b), expected_tai_ns(), "[{b:?}]");
        let differences = schema_differences(&repo.describe_with_defaults(), &schema_2);
        assert!(
            differences.is_empty(),
            "[{b:?}] schema differs from a fresh 2.0.0 repository:\n{}",
            differences.join("\n")
        );
        assert_eq!(
            repo.attribute(
                "version:lsst.daf.butler.registry.datasets.byDimensions._manager.ByDimensionsDatasetRecordStorageManagerUUID"
            )
            .as_deref(),
            Some("2.0.0")
        );

        // Back to 1.0.0: the original schema (TIMESTAMP, its default) and instants.
        repo.ferry_ok(&[
            "downgrade",
            "daf_butler-datasets-uuid-1.0.0",
            "--set",
            "datasets.ingest_date_batch_size=7",
        ]);
        let down = repo.ingest_dates();
        assert_eq!(down["datasets_version"], "1.0.0", "[{b:?}]");
        assert_eq!(down["ingest_dates"], before["ingest_dates"], "[{b:?}]");
        let differences = schema_differences(&repo.describe_with_defaults(), &schema_1);
        assert!(
            differences.is_empty(),
            "[{b:?}] schema after the downgrade differs from the 1.0.0 one:\n{}",
            differences.join("\n")
        );

        // And up again (the second run of the revision on the same repository).
        repo.ferry_ok(&["upgrade"]);
        assert_eq!(stored_tai_ns(&repo, b), expected_tai_ns(), "[{b:?}]");
    }
}

/// An ingest_date Ferry does not convert (before 1972; on SQLite also text that is not
/// a timestamp) stops the upgrade before anything runs, naming the cause; nothing
/// changes.
#[test]
fn unconvertible_ingest_date_is_refused_before_anything_runs() {
    let test = "unconvertible_ingest_date_is_refused_before_anything_runs";
    for b in BACKENDS {
        let Some(repo) = RealRepo::make_with(test, b, UNIVERSE, &AT_1_0_0) else {
            continue;
        };
        repo.ferry_ok(&["adopt"]);
        let mut bad = vec!["1969-07-20 20:17:40"];
        if b == Backend::Sqlite {
            bad.push("yesterday");
        }
        for value in bad {
            repo.execute(
                &format!(
                    "UPDATE dataset SET ingest_date = '{value}' \
                     WHERE id = (SELECT id FROM dataset ORDER BY id LIMIT 1)"
                ),
                &[],
            );
            let out = repo.ferry(&["upgrade"]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "[{b:?}] {value}: upgrade refused");
            assert!(
                stderr.contains("1 dataset row(s) have an ingest_date Ferry cannot convert")
                    && stderr.contains("daf_butler-datasets-uuid-2.0.0.rhai"),
                "[{b:?}] {value}: {stderr}"
            );
            assert_eq!(
                repo.current("datasets"),
                ["daf_butler-datasets-uuid-1.0.0"],
                "[{b:?}]"
            );
            // Nothing changed: the value is still there as written, no column added.
            let mut conn = ferry::backend::connect(
                &ferry::backend::DbUrl::parse(&repo.url()).expect("URL parses"),
            )
            .expect("connect");
            let kept = conn
                .query(
                    "SELECT COUNT(*) FROM dataset WHERE CAST(ingest_date AS TEXT) = ?",
                    &[ferry::backend::Value::Text(value.into())],
                )
                .expect("count");
            assert_eq!(
                kept.rows[0][0],
                ferry::backend::Value::Int(1),
                "[{b:?}] ingest_date untouched"
            );
            assert!(
                conn.query("SELECT ingest_date_tai_ns FROM dataset", &[])
                    .is_err(),
                "[{b:?}] no column added"
            );
        }
    }
}

/// `ferry adopt` refuses a repository whose version row contradicts the column.
#[test]
fn adopt_refuses_a_version_the_column_contradicts() {
    let test = "adopt_refuses_a_version_the_column_contradicts";
    for b in BACKENDS {
        let Some(repo) = RealRepo::make_with(test, b, UNIVERSE, &AT_1_0_0) else {
            continue;
        };
        repo.execute(
            "UPDATE butler_attributes SET value = '2.0.0' WHERE name LIKE 'version:%ByDimensionsDatasetRecordStorageManagerUUID'",
            &[],
        );
        let out = repo.ferry(&["adopt"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "[{b:?}] adopt refused");
        assert!(
            stderr.contains("butler_attributes says datasets manager 2.0.0 but dataset.ingest_date is timestamp"),
            "[{b:?}] {stderr}"
        );
        assert!(
            repo.current("datasets").is_empty(),
            "[{b:?}] nothing recorded"
        );
    }
}

/// A batch that fails (a trigger planted on one row) leaves the batches before it
/// committed; the rerun resumes after them, and a row that 1.0.0 code added meanwhile
/// below the cursor is converted by the swap.
#[test]
fn a_failed_batch_resumes_and_rows_added_meanwhile_are_converted() {
    let test = "a_failed_batch_resumes_and_rows_added_meanwhile_are_converted";
    for b in BACKENDS {
        let Some(repo) = RealRepo::make_with(test, b, UNIVERSE, &AT_1_0_0) else {
            continue;
        };
        repo.ferry_ok(&["adopt"]);
        let mut conn = ferry::backend::connect(
            &ferry::backend::DbUrl::parse(&repo.url()).expect("URL parses"),
        )
        .expect("connect");
        // The 31st dataset in key order: batches of 7 commit 4 batches (28 rows) first.
        let id = match &conn
            .query("SELECT id FROM dataset ORDER BY id LIMIT 1 OFFSET 30", &[])
            .expect("an id")
            .rows[0][0]
        {
            ferry::backend::Value::Text(t) => t.clone(),
            ferry::backend::Value::Uuid(u) => u.simple().to_string(),
            other => panic!("{other:?}"),
        };
        plant_failure(&repo, &id, "injected failure");
        // Batches on PostgreSQL too (a table this small is otherwise one ALTER … USING).
        let out = repo.ferry(&[
            "upgrade",
            "--set",
            "datasets.ingest_date_batch_size=7",
            "--set",
            "datasets.ingest_date_single_statement_rows=0",
        ]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "[{b:?}] the planted failure");
        assert!(stderr.contains("injected failure"), "[{b:?}] {stderr}");
        let converted = conn
            .query(
                "SELECT COUNT(*) FROM dataset WHERE ingest_date_tai_ns IS NOT NULL",
                &[],
            )
            .expect("count");
        assert_eq!(
            converted.rows[0][0],
            ferry::backend::Value::Int(28),
            "[{b:?}] the four batches before the failure stay committed"
        );
        assert_eq!(repo.current("datasets"), ["daf_butler-datasets-uuid-1.0.0"]);

        // From now on the first row fails if touched again: the rerun must resume after
        // the committed batches, not start over.
        drop_failure(&repo);
        let first_id = match &conn
            .query("SELECT id FROM dataset ORDER BY id LIMIT 1", &[])
            .expect("an id")
            .rows[0][0]
        {
            ferry::backend::Value::Text(t) => t.clone(),
            ferry::backend::Value::Uuid(u) => u.simple().to_string(),
            other => panic!("{other:?}"),
        };
        plant_failure(&repo, &first_id, "batch 1 ran twice");
        // A dataset added meanwhile by 1.0.0 code, below the cursor: a copy of the
        // first one under the smallest id there is but one.
        let low = "00000000000000000000000000000001";
        repo.execute(
            &format!(
                "INSERT INTO dataset (id, dataset_type_id, run_id, ingest_date) \
                 SELECT '{low}', dataset_type_id, run_id, ingest_date FROM dataset \
                 WHERE id = (SELECT id FROM dataset ORDER BY id LIMIT 1)"
            ),
            &[],
        );
        repo.ferry_ok(&[
            "upgrade",
            "--set",
            "datasets.ingest_date_batch_size=7",
            "--set",
            "datasets.ingest_date_single_statement_rows=0",
        ]);
        drop_failure(&repo);
        assert_eq!(repo.current("datasets"), ["daf_butler-datasets-uuid-2.0.0"]);
        assert_eq!(stored_tai_ns(&repo, b), expected_tai_ns(), "[{b:?}]");
        let first = conn
            .query(
                &format!(
                    "SELECT COUNT(*) FROM dataset a JOIN dataset b ON a.ingest_date = b.ingest_date \
                     WHERE a.id = '{low}' AND b.id = (SELECT id FROM dataset WHERE id <> '{low}' ORDER BY id LIMIT 1)"
                ),
                &[],
            )
            .expect("the added row");
        assert_eq!(first.rows[0][0], ferry::backend::Value::Int(1), "[{b:?}]");
    }
}

/// A trigger that makes any UPDATE of the dataset row `id` fail with `message`.
fn plant_failure(repo: &RealRepo, id: &str, message: &str) {
    match repo.backend {
        Backend::Sqlite => repo.execute(
            &format!(
                "CREATE TRIGGER test_fail BEFORE UPDATE ON dataset FOR EACH ROW \
                 WHEN OLD.id = '{id}' BEGIN SELECT RAISE(ABORT, '{message}'); END"
            ),
            &[],
        ),
        Backend::Postgres => {
            repo.execute(
                &format!(
                    "CREATE OR REPLACE FUNCTION test_fail() RETURNS trigger LANGUAGE plpgsql AS \
                     $$ BEGIN RAISE EXCEPTION '{message}'; END $$"
                ),
                &[],
            );
            repo.execute(
                &format!(
                    "CREATE TRIGGER test_fail BEFORE UPDATE ON dataset FOR EACH ROW \
                     WHEN (OLD.id = '{id}') EXECUTE FUNCTION test_fail()"
                ),
                &[],
            );
        }
    }
}

/// Drops the trigger `plant_failure` made.
fn drop_failure(repo: &RealRepo) {
    repo.execute(
        match repo.backend {
            Backend::Sqlite => "DROP TRIGGER test_fail",
            Backend::Postgres => "DROP TRIGGER test_fail ON dataset",
        },
        &[],
    );
}
