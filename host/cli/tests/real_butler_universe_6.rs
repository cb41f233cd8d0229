//! daf_butler universe 5 -> 6 (the group and day_obs dimensions, the `day_obs_offset`
//! hook of the instrument plugins) and the repair of daf_butler_migrate's visit.day_obs
//! gap, on repositories the real daf_butler made, judged by the real daf_butler
//! (host/cli/tests/real_butler_support). SQLite and PostgreSQL; without FERRY_TEST_PYTHON
//! (or FERRY_TEST_PG_URL for the PostgreSQL half) a skip line is printed.

mod common;
mod real_butler_support;

use ferry::backend::Value;
use real_butler_support::*;
use serde_json::Value as Json;
use std::collections::BTreeSet;

const BACKENDS: [Backend; 2] = [Backend::Sqlite, Backend::Postgres];

/// The observing-day offsets of the test's instruments, in seconds (the rules of
/// REAL_BUTLER.md, written out here independently of the plugins).
fn offset_seconds(instrument: &str) -> i64 {
    match instrument {
        "HSC" => 0,
        "LATISS" | "LSSTCam" => 12 * 3600,
        other => panic!("no offset known for {other}"),
    }
}

/// Rows of one query on the repository's database.
fn query(repo: &RealRepo, sql: &str) -> Vec<Vec<Value>> {
    let mut conn =
        ferry::backend::connect(&ferry::backend::DbUrl::parse(&repo.url()).expect("URL parses"))
            .expect("connect");
    conn.query(sql, &[])
        .unwrap_or_else(|e| panic!("[{}] {sql}: {e}", repo.backend.name()))
        .rows
}

fn int(v: &Value) -> i64 {
    match v {
        Value::Int(i) => *i,
        other => panic!("not an integer: {other:?}"),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::Text(s) => s.clone(),
        other => panic!("not text: {other:?}"),
    }
}

/// The day_obs table's rows as (instrument, id, begin, end) in TAI nanoseconds, in
/// daf_butler's representation per backend.
fn day_obs_rows(repo: &RealRepo) -> Vec<(String, i64, i64, i64)> {
    let sql = match repo.backend {
        Backend::Sqlite => {
            "SELECT instrument, id, timespan_begin, timespan_end FROM day_obs ORDER BY 1, 2"
        }
        Backend::Postgres => {
            "SELECT instrument, id, lower(timespan), upper(timespan) FROM day_obs ORDER BY 1, 2"
        }
    };
    query(repo, sql)
        .iter()
        .map(|r| (text(&r[0]), int(&r[1]), int(&r[2]), int(&r[3])))
        .collect()
}

/// What the rules give for `exposures` (instrument, day_obs): one row per distinct
/// pair, [midnight TAI + offset, + 24 h) in nanoseconds since 1970-01-01 TAI.
fn expected_day_obs(pairs: &BTreeSet<(String, i64)>) -> Vec<(String, i64, i64, i64)> {
    pairs
        .iter()
        .map(|(i, d)| {
            let (y, m, day) = (d / 10000, (d / 100 % 100) as u32, (d % 100) as u32);
            let date = chrono_free_days(y, m, day);
            let begin = (date * 86400 + offset_seconds(i)) * 1_000_000_000;
            (i.clone(), *d, begin, begin + 86_400 * 1_000_000_000)
        })
        .collect()
}

/// Days since 1970-01-01 of a civil date, counted day by day (slow and plain: a second
/// computation, not the script's formula).
fn chrono_free_days(y: i64, m: u32, d: u32) -> i64 {
    let leap = |y: i64| (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let mut days = 0;
    for year in 1970..y {
        days += if leap(year) { 366 } else { 365 };
    }
    let lengths = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
    for month in 1..m {
        days += lengths[month as usize - 1] + i64::from(month == 2 && leap(y));
    }
    days + i64::from(d) - 1
}

/// (instrument, day_obs) pairs and (instrument, group_name) pairs.
type Pairs = (BTreeSet<(String, i64)>, BTreeSet<(String, String)>);

/// (instrument, day_obs) and (instrument, group_name) of the exposures daf_butler
/// reports at universe 5.
fn exposure_pairs(judged: &Json) -> Pairs {
    let mut days = BTreeSet::new();
    let mut groups = BTreeSet::new();
    for e in judged["records"]["exposure"].as_array().expect("exposures") {
        let i = e["instrument"].as_str().unwrap().to_string();
        days.insert((i.clone(), e["day_obs"].as_i64().unwrap()));
        groups.insert((i, e["group_name"].as_str().unwrap().to_string()));
    }
    (days, groups)
}

fn sorted_list(mut v: Vec<Json>) -> Json {
    v.sort_by_key(|r| serde_json::to_string(r).unwrap());
    Json::Array(v)
}

fn current_universe_revision(repo: &RealRepo) -> Vec<String> {
    let status: Json = serde_json::from_str(&repo.ferry_ok(&["status", "--json"])).unwrap();
    status["trees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tree"] == "dimensions-config")
        .expect("dimensions-config tree")["current"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_string())
        .collect()
}

/// 5 -> 6: daf_butler opens the result at universe 6; its schema equals a fresh
/// universe-6 repository's (CHECKs, keys and indexes by name, visit.day_obs included);
/// exposures keep every field but group_name / group_id (now `group`); the group rows
/// are the distinct (instrument, group_name) of the exposures and the day_obs rows
/// those the rules give, as stored and as daf_butler reads them (equal to the records
/// daf_butler itself wrote for the same days in a fresh universe-6 repository).
#[test]
fn universe_5_to_6_group_and_day_obs() {
    let test = "universe_5_to_6_group_and_day_obs";
    for b in BACKENDS {
        let Some(repo) = RealRepo::make(test, b, 5) else {
            continue;
        };
        let before = repo.judge();
        assert_eq!(before["universe"], 5);
        let (days, groups) = exposure_pairs(&before);
        assert!(
            days.len() > 2 && groups.len() > 2,
            "[{}] the fixture has too few days or groups to prove much",
            b.name()
        );
        repo.ferry_ok(&["adopt"]);
        repo.ferry_ok(&["upgrade", "daf_butler-universe-6"]);
        assert_eq!(
            current_universe_revision(&repo),
            vec!["daf_butler-universe-6".to_string()]
        );
        let after = repo.judge();
        assert_eq!(after["universe"], 6, "[{}]", b.name());

        // Records: exposure's group fields renamed, the rest unchanged.
        let mut expected = before.clone();
        let rec = expected["records"].as_object_mut().unwrap();
        for e in rec["exposure"].as_array_mut().unwrap() {
            let e = e.as_object_mut().unwrap();
            let g = e.remove("group_name").unwrap();
            e.remove("group_id");
            e.insert("group".into(), g);
        }
        rec.insert(
            "group".into(),
            sorted_list(
                groups
                    .iter()
                    .map(|(i, g)| serde_json::json!({"instrument": i, "name": g}))
                    .collect(),
            ),
        );
        for key in [
            "exposure",
            "visit",
            "detector",
            "instrument",
            "physical_filter",
        ] {
            assert_eq!(
                sorted_list(after["records"][key].as_array().unwrap().clone()),
                sorted_list(rec[key].as_array().unwrap().clone()),
                "[{}] {key} records",
                b.name()
            );
        }
        assert_eq!(
            sorted_list(after["records"]["group"].as_array().unwrap().clone()),
            rec["group"],
            "[{}] group records",
            b.name()
        );
        for key in [
            "collections",
            "datasets",
            "tagged",
            "calibrations",
            "bias_found",
        ] {
            assert_eq!(after[key], before[key], "[{}] {key}", b.name());
        }
        // The day query on the new dimension works and finds what it found before.
        assert_eq!(
            after["raw_hsc_day_20240101"],
            before["raw_hsc_day_20240101"]
        );
        assert!(!after["raw_hsc_day_20240101"].as_array().unwrap().is_empty());

        // day_obs rows: as the rules give them, stored in daf_butler's representation.
        assert_eq!(
            day_obs_rows(&repo),
            expected_day_obs(&days),
            "[{}] day_obs rows",
            b.name()
        );
        // ... and as daf_butler reads them, equal to those daf_butler wrote itself for
        // the same days in a fresh universe-6 repository (butler_tool.py make).
        let fresh6 = RealRepo::make(test, b, 6).expect("configured");
        assert_eq!(
            sorted_list(after["records"]["day_obs"].as_array().unwrap().clone()),
            sorted_list(
                fresh6.judge()["records"]["day_obs"]
                    .as_array()
                    .unwrap()
                    .clone()
            ),
            "[{}] day_obs records against daf_butler's own",
            b.name()
        );

        let (fresh_schema, fresh_config) = fresh(test, b, 6);
        let diff = schema_differences(&repo.describe(), &fresh_schema);
        assert!(diff.is_empty(), "[{}]\n{}", b.name(), diff.join("\n"));
        assert_eq!(repo.attribute("config:dimensions.json"), fresh_config);
    }
}

/// An instrument with exposures that no plugin gives a day_obs offset stops the upgrade
/// at planning time, naming the instrument and the hook; nothing ran (not even the
/// steps before 5 -> 6 in the same plan).
#[test]
fn an_instrument_without_a_day_obs_offset_stops_the_plan() {
    let test = "an_instrument_without_a_day_obs_offset_stops_the_plan";
    for b in BACKENDS {
        let Some(repo) = RealRepo::make(test, b, 4) else {
            continue;
        };
        let t = |s: &str| Value::Text(s.to_string());
        repo.execute(
            "INSERT INTO instrument (name, detector_max) VALUES (?, 10)",
            &[t("DECam")],
        );
        repo.execute(
            "INSERT INTO physical_filter (instrument, name, band) VALUES (?, 'g DECam', 'r')",
            &[t("DECam")],
        );
        repo.execute(
            "INSERT INTO exposure (instrument, id, physical_filter, day_obs, group_name) \
             VALUES (?, 1, 'g DECam', 20240101, 'g1')",
            &[t("DECam")],
        );
        repo.ferry_ok(&["adopt"]);
        let config = repo.attribute("config:dimensions.json");
        let out = repo.ferry(&["upgrade"]);
        assert_eq!(out.status.code(), Some(2), "[{}]", b.name());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("DECam") && err.contains("day_obs_offset"),
            "[{}] {err}",
            b.name()
        );
        // Only the instrument without a provider is named as missing.
        assert!(err.contains("instrument(s) DECam ("), "{err}");
        assert_eq!(repo.attribute("config:dimensions.json"), config);
        assert_eq!(
            current_universe_revision(&repo),
            vec!["daf_butler-universe-4".to_string()]
        );
        let tables = repo.describe();
        assert!(tables["tables"].get("day_obs").is_none());
    }
}

/// Plain `ferry adopt` + `ferry upgrade` from universe `from` reach universe 8: the
/// schema equals a fresh universe-8 repository's, `check` passes, and the day_obs and
/// group records daf_butler reads are those it wrote itself in a fresh universe-8
/// repository with the same data.
fn reaches_universe_8(test: &str, from: u32) {
    for b in BACKENDS {
        let Some(repo) = RealRepo::make(test, b, from) else {
            continue;
        };
        let before = repo.judge();
        repo.ferry_ok(&["adopt"]);
        let mut args = vec!["upgrade"];
        if from < 2 {
            args.extend(["--set", "dimensions_config.has_simulated=0"]);
        }
        repo.ferry_ok(&args);
        let after = repo.judge();
        assert_eq!(after["universe"], 8, "[{}] from {from}", b.name());
        assert_eq!(
            repo.ferry(&["check"]).status.code(),
            Some(0),
            "[{}] from {from}: check",
            b.name()
        );
        let (fresh_schema, fresh_config) = fresh(test, b, 8);
        let diff = schema_differences(&repo.describe(), &fresh_schema);
        assert!(
            diff.is_empty(),
            "[{}] from {from}:\n{}",
            b.name(),
            diff.join("\n")
        );
        assert_eq!(repo.attribute("config:dimensions.json"), fresh_config);
        let fresh8 = RealRepo::make(test, b, 8).expect("configured").judge();
        for key in ["day_obs", "group"] {
            assert_eq!(
                sorted_list(after["records"][key].as_array().unwrap().clone()),
                sorted_list(fresh8["records"][key].as_array().unwrap().clone()),
                "[{}] from {from}: {key}",
                b.name()
            );
        }
        for key in ["datasets", "tagged", "calibrations", "collections"] {
            assert_eq!(after[key], before[key], "[{}] from {from}: {key}", b.name());
        }
        assert_eq!(
            after["raw_hsc_day_20240101"],
            before["raw_hsc_day_20240101"],
            "[{}] from {from}: the day query",
            b.name()
        );
    }
}

#[test]
fn adopt_and_upgrade_reach_universe_8_from_0() {
    reaches_universe_8("adopt_and_upgrade_reach_universe_8_from_0", 0);
}

#[test]
fn adopt_and_upgrade_reach_universe_8_from_5() {
    reaches_universe_8("adopt_and_upgrade_reach_universe_8_from_5", 5);
}

/// Makes daf_butler_migrate's gap in a real repository: visit.day_obs NULL-able, without
/// its foreign key to day_obs and its index (what that tool's 5 -> 6 step leaves).
fn make_visit_day_obs_gap(repo: &RealRepo) {
    repo.execute("DROP INDEX visit_fkidx_instrument_day_obs", &[]);
    match repo.backend {
        Backend::Postgres => {
            repo.execute("ALTER TABLE visit ALTER COLUMN day_obs DROP NOT NULL", &[]);
            repo.execute(
                "ALTER TABLE visit DROP CONSTRAINT fkey_visit_day_obs_instrument_id_instrument_day_obs",
                &[],
            );
        }
        Backend::Sqlite => {
            // The stored text as universe 5 had it (SQLite's documented writable_schema
            // procedure, outside Ferry: scripts may not do this).
            let path = repo.root().join("gen3.sqlite3");
            let conn = rusqlite::Connection::open(&path).expect("open");
            let sql: String = conn
                .query_row(
                    "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'visit'",
                    [],
                    |r| r.get(0),
                )
                .expect("visit");
            let fk = ", \n\tCONSTRAINT fkey_visit_day_obs_instrument_id_instrument_day_obs FOREIGN KEY(instrument, day_obs) REFERENCES day_obs (instrument, id)";
            assert!(sql.contains(fk), "{sql}");
            let gap = sql
                .replace(fk, "")
                .replace("day_obs BIGINT NOT NULL,", "day_obs BIGINT,");
            conn.execute_batch("PRAGMA writable_schema = ON")
                .expect("writable_schema");
            conn.execute(
                "UPDATE sqlite_master SET sql = ?1 WHERE type = 'table' AND name = 'visit'",
                [&gap],
            )
            .expect("update sqlite_master");
            let v: i64 = conn
                .query_row("PRAGMA schema_version", [], |r| r.get(0))
                .unwrap();
            conn.execute_batch(&format!(
                "PRAGMA schema_version = {}; PRAGMA writable_schema = OFF",
                v + 1
            ))
            .expect("schema_version");
            drop(conn);
            let conn = rusqlite::Connection::open(&path).expect("reopen");
            let check: String = conn
                .query_row("PRAGMA integrity_check", [], |r| r.get(0))
                .unwrap();
            assert_eq!(check, "ok");
        }
    }
}

/// A repository taken over from daf_butler_migrate with the visit.day_obs gap, at
/// universe 6, 7 or 8: `ferry adopt` records the universe (at 8: not the repair), and
/// `ferry upgrade` reaches universe 8 with the gap closed, the schema equal to a fresh
/// universe-8 repository's; a second run of the repair finds nothing to do.
#[test]
fn the_visit_day_obs_gap_is_repaired() {
    let test = "the_visit_day_obs_gap_is_repaired";
    for b in BACKENDS {
        for from in [6, 8] {
            let Some(repo) = RealRepo::make(test, b, from) else {
                break;
            };
            let before = repo.judge();
            make_visit_day_obs_gap(&repo);
            let (fresh_schema, _) = fresh(test, b, 8);
            let gap = schema_differences(&repo.describe(), &fresh(test, b, from).0);
            assert!(
                gap.iter().any(|d| d.contains("visit")) && gap.len() >= 2,
                "[{}] the gap was not made: {gap:?}",
                b.name()
            );
            repo.ferry_ok(&["adopt"]);
            assert_eq!(
                current_universe_revision(&repo),
                vec![format!("daf_butler-universe-{from}")],
                "[{}] adopt at {from} with the gap",
                b.name()
            );
            let out = repo.ferry_ok(&["upgrade"]);
            assert!(out.contains("daf_butler-universe-8-bugfix-1"), "{out}");
            assert_eq!(
                current_universe_revision(&repo),
                vec!["daf_butler-universe-8-bugfix-1".to_string()]
            );
            let diff = schema_differences(&repo.describe(), &fresh_schema);
            assert!(
                diff.is_empty(),
                "[{}] from {from}:\n{}",
                b.name(),
                diff.join("\n")
            );
            let after = repo.judge();
            assert_eq!(after["universe"], 8);
            for key in ["datasets", "calibrations", "collections"] {
                assert_eq!(after[key], before[key], "[{}] {key}", b.name());
            }
            assert_eq!(
                sorted_list(after["records"]["visit"].as_array().unwrap().clone()),
                sorted_list(before["records"]["visit"].as_array().unwrap().clone()),
            );
            // Idempotent: down past the repair and up again changes nothing.
            repo.ferry_ok(&["downgrade", "daf_butler-universe-8"]);
            repo.ferry_ok(&["upgrade"]);
            let diff = schema_differences(&repo.describe(), &fresh_schema);
            assert!(diff.is_empty(), "[{}]\n{}", b.name(), diff.join("\n"));
        }
    }
}

/// A visit with no day_obs stops the repair at planning time, naming the count, with
/// nothing changed.
#[test]
fn the_repair_refuses_visits_without_day_obs() {
    let test = "the_repair_refuses_visits_without_day_obs";
    for b in BACKENDS {
        let Some(repo) = RealRepo::make(test, b, 8) else {
            continue;
        };
        make_visit_day_obs_gap(&repo);
        repo.execute(
            "UPDATE visit SET day_obs = NULL WHERE instrument = 'HSC'",
            &[],
        );
        let nulls = query(&repo, "SELECT COUNT(*) FROM visit WHERE day_obs IS NULL");
        let n = int(&nulls[0][0]);
        assert!(n > 0);
        repo.ferry_ok(&["adopt"]);
        let gap = repo.describe();
        let out = repo.ferry(&["upgrade"]);
        assert_eq!(out.status.code(), Some(2), "[{}]", b.name());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!("{n} visit(s) have no day_obs")),
            "{err}"
        );
        assert!(schema_differences(&repo.describe(), &gap).is_empty());
    }
}
