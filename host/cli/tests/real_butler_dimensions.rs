//! daf_butler's dimensions manager steps StaticDimensionRecordStorageManager 6.0.0 ->
//! 6.0.1 (four skypix overlap indexes) -> 6.0.2 (NOT NULL on the implied dimension
//! columns of the stored universe) on repositories the real daf_butler made, put back to
//! 6.0.0 or 6.0.1 by hand (`butler_tool.py make --dimensions-version`: today's daf_butler
//! creates 6.0.2 only; the hand-made state was checked once against daf_butler_migrate's
//! downgrade, see docs/REFERENCE_REPOSITORY.md), judged by the real daf_butler: the
//! version it reads, every record and dataset, the schema against a fresh 6.0.2
//! repository. SQLite and PostgreSQL; without FERRY_TEST_PYTHON (or, for PostgreSQL,
//! FERRY_TEST_PG_URL) a skip line.

mod common;
mod real_butler_support;

use ferry::backend::Value;
use real_butler_support::*;

const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];
const VERSION_ROW: &str =
    "version:lsst.daf.butler.registry.dimensions.static.StaticDimensionRecordStorageManager";
const NULL_FILTER_KEY: &str = "dimensions.null_physical_filter";
/// The visit whose physical filter the test sets to NULL: HSC's first (`butler_tool.py
/// make` gives every HSC visit the physical filter HSC-R).
const FIRST_HSC_VISIT: &str =
    "instrument = 'HSC' AND id = (SELECT MIN(id) FROM visit WHERE instrument = 'HSC')";

/// The physical filter of HSC's first visit, `None` for NULL.
fn first_visit_filter(repo: &RealRepo) -> Option<String> {
    let mut conn =
        ferry::backend::connect(&ferry::backend::DbUrl::parse(&repo.url()).expect("URL parses"))
            .expect("connect");
    let rows = conn
        .query(
            &format!("SELECT physical_filter FROM visit WHERE {FIRST_HSC_VISIT}"),
            &[],
        )
        .expect("read visit");
    match &rows.rows[0][0] {
        Value::Text(t) => Some(t.clone()),
        Value::Null => None,
        other => panic!("physical_filter {other:?}"),
    }
}

/// Asserts that `repo`'s schema equals `want` (`what` names `want` in the message).
fn assert_schema(repo: &RealRepo, want: &serde_json::Value, what: &str) {
    let differences = schema_differences(&repo.describe(), want);
    assert!(
        differences.is_empty(),
        "[{:?}] schema differs from {what}:\n{}",
        repo.backend,
        differences.join("\n")
    );
}

/// Universe 7 at 6.0.0: a version row the indexes contradict refused by adopt; a NULL
/// visit.physical_filter refused without the key (nothing changed), then filled with
/// it; upgraded to 6.0.2 and judged; downgraded to the hand-made 6.0.0 state; upgraded
/// again.
#[test]
fn indexes_and_not_null_up_and_back() {
    let test = "indexes_and_not_null_up_and_back";
    for b in BACKENDS {
        let Some(repo) = RealRepo::make_with(test, b, 7, &["--dimensions-version", "6.0.0"]) else {
            continue;
        };
        let (schema_602, _) = fresh(test, b, 7);
        let schema_600 = repo.describe();
        assert_eq!(repo.versions()["dimensions"], "6.0.0", "[{b:?}]");
        let judged = repo.judge();
        assert!(
            !schema_differences(&schema_600, &schema_602).is_empty(),
            "[{b:?}] the hand-made 6.0.0 schema differs from 6.0.2's"
        );

        // A version row the schema contradicts: adopt refuses, records nothing.
        repo.execute(
            "UPDATE butler_attributes SET value = '6.0.1' WHERE name = ?",
            &[Value::Text(VERSION_ROW.into())],
        );
        let out = repo.ferry(&["adopt"]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "[{b:?}] adopt refused");
        assert!(
            stderr.contains("butler_attributes says dimensions manager 6.0.1 but 0 of the 4 skypix overlap indexes"),
            "[{b:?}] {stderr}"
        );
        assert!(repo.current("dimensions").is_empty(), "[{b:?}]");
        repo.execute(
            "UPDATE butler_attributes SET value = '6.0.0' WHERE name = ?",
            &[Value::Text(VERSION_ROW.into())],
        );

        repo.ferry_ok(&["adopt"]);
        assert_eq!(
            repo.current("dimensions"),
            ["daf_butler-dimensions-6.0.0"],
            "[{b:?}]"
        );

        // A visit without a physical filter: refused at planning without the key, and
        // with a filter the instrument does not have; nothing changes.
        let filter = first_visit_filter(&repo).expect("a physical filter");
        repo.execute(
            &format!("UPDATE visit SET physical_filter = NULL WHERE {FIRST_HSC_VISIT}"),
            &[],
        );
        for extra in [
            vec![],
            vec!["--set", "dimensions.null_physical_filter=NO-SUCH"],
        ] {
            let mut args = vec!["upgrade", "dimensions@head"];
            args.extend(extra.iter().copied());
            let out = repo.ferry(&args);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(!out.status.success(), "[{b:?}] {args:?} refused");
            assert!(stderr.contains(NULL_FILTER_KEY), "[{b:?}] {stderr}");
            if extra.is_empty() {
                assert!(
                    stderr.contains("1 visit(s) have a NULL physical_filter"),
                    "[{b:?}] {stderr}"
                );
            } else {
                assert!(
                    stderr.contains("is not a physical filter of instrument(s) [\"HSC\"]"),
                    "[{b:?}] {stderr}"
                );
            }
            assert_eq!(
                repo.current("dimensions"),
                ["daf_butler-dimensions-6.0.0"],
                "[{b:?}]"
            );
            assert_eq!(repo.attribute(VERSION_ROW).as_deref(), Some("6.0.0"));
            assert_eq!(first_visit_filter(&repo), None, "[{b:?}]");
            assert_schema(&repo, &schema_600, "the 6.0.0 one after a refusal");
        }

        let out = repo.ferry_ok(&[
            "upgrade",
            "dimensions@head",
            "--set",
            &format!("{NULL_FILTER_KEY}={filter}"),
        ]);
        assert!(out.contains("daf_butler-dimensions-6.0.2"), "[{b:?}] {out}");
        assert_eq!(
            repo.current("dimensions"),
            ["daf_butler-dimensions-6.0.2"],
            "[{b:?}]"
        );

        // What daf_butler reads: version 6.0.2, the same registry (the NULL filled with
        // the filter it had); the schema of a fresh repository.
        assert_eq!(first_visit_filter(&repo), Some(filter.clone()), "[{b:?}]");
        assert_eq!(repo.versions()["dimensions"], "6.0.2", "[{b:?}]");
        assert_eq!(repo.attribute(VERSION_ROW).as_deref(), Some("6.0.2"));
        assert_eq!(repo.judge(), judged, "[{b:?}] the registry is unchanged");
        assert_schema(&repo, &schema_602, "a fresh 6.0.2 repository");

        // Back to 6.0.0: the hand-made schema; and up again.
        repo.ferry_ok(&["downgrade", "daf_butler-dimensions-6.0.0"]);
        assert_eq!(repo.versions()["dimensions"], "6.0.0", "[{b:?}]");
        assert_schema(
            &repo,
            &schema_600,
            "the hand-made 6.0.0 one after the downgrade",
        );
        repo.ferry_ok(&["upgrade", "dimensions@head"]);
        assert_eq!(repo.attribute(VERSION_ROW).as_deref(), Some("6.0.2"));
        assert_schema(
            &repo,
            &schema_602,
            "a fresh 6.0.2 repository, upgraded again",
        );
    }
}

/// Universe 0, whose implied columns differ (visit.visit_system, visit_definition.visit),
/// adopted at 6.0.1 and taken to 6.0.2 (`dimensions@head`: the universe stays 0);
/// downgraded to 6.0.1.
#[test]
fn universe_0_from_6_0_1() {
    let test = "universe_0_from_6_0_1";
    for b in BACKENDS {
        let Some(repo) = RealRepo::make_with(test, b, 0, &["--dimensions-version", "6.0.1"]) else {
            continue;
        };
        let (schema_602, _) = fresh(test, b, 0);
        let schema_601 = repo.describe();
        for (table, column) in [
            ("visit", "visit_system"),
            ("visit", "physical_filter"),
            ("visit_definition", "visit"),
            ("exposure", "physical_filter"),
        ] {
            assert_eq!(
                schema_601["tables"][table]["columns"][column]["nullable"], true,
                "[{b:?}] {table}.{column} at 6.0.1"
            );
            assert_eq!(
                schema_602["tables"][table]["columns"][column]["nullable"], false,
                "[{b:?}] {table}.{column} at 6.0.2"
            );
        }
        repo.ferry_ok(&["adopt"]);
        assert_eq!(
            repo.current("dimensions"),
            ["daf_butler-dimensions-6.0.1"],
            "[{b:?}]"
        );
        repo.ferry_ok(&["upgrade", "dimensions@head"]);
        assert_eq!(
            repo.current("dimensions"),
            ["daf_butler-dimensions-6.0.2"],
            "[{b:?}]"
        );
        assert_eq!(repo.attribute(VERSION_ROW).as_deref(), Some("6.0.2"));
        assert_schema(&repo, &schema_602, "a fresh universe-0 repository");
        repo.ferry_ok(&["downgrade", "daf_butler-dimensions-6.0.1"]);
        assert_eq!(repo.attribute(VERSION_ROW).as_deref(), Some("6.0.1"));
        assert_schema(&repo, &schema_601, "the hand-made 6.0.1 one");
    }
}

/// Universe 8 at 6.0.0: visit.day_obs is NULL-able there, which the dimensions-config
/// probe takes for daf_butler_migrate's gap (`daf_butler-universe-8`); a plain `upgrade`
/// then runs both that repair and 6.0.2, each adding only what is missing, and reaches
/// a fresh universe-8 repository's schema. SQLite only (the two backends' steps are
/// covered above).
#[test]
fn universe_8_with_the_day_obs_repair() {
    let test = "universe_8_with_the_day_obs_repair";
    let b = Backend::Sqlite;
    let Some(repo) = RealRepo::make_with(test, b, 8, &["--dimensions-version", "6.0.0"]) else {
        return;
    };
    let (schema_fresh, _) = fresh(test, b, 8);
    repo.ferry_ok(&["adopt"]);
    assert_eq!(
        repo.current("dimensions-config"),
        ["daf_butler-universe-8"],
        "[{b:?}] the NULL-able visit.day_obs looks like the gap"
    );
    repo.ferry_ok(&["upgrade"]);
    assert_eq!(
        repo.current("dimensions"),
        ["daf_butler-dimensions-6.0.2"],
        "[{b:?}]"
    );
    assert_eq!(
        repo.current("dimensions-config"),
        ["daf_butler-universe-8-bugfix-1"],
        "[{b:?}]"
    );
    repo.ferry_ok(&["check"]);
    assert_eq!(repo.versions()["dimensions"], "6.0.2", "[{b:?}]");
    assert_schema(&repo, &schema_fresh, "a fresh universe-8 repository");
}
