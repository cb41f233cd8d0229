//! Several migrators at once on one repository, on SQLite and PostgreSQL: FERRY_CONCURRENT
//! (default 6) `ferry upgrade` processes started together apply each revision exactly
//! once, the others wait (and find nothing to do) or exit 3 naming the holder, and the
//! ledger stays consistent; a migrator killed while it holds the lock does not block
//! the next one, not even while its server session still runs a long statement.

#[path = "../../cli/tests/common/mod.rs"]
mod common;
mod fault_support;
mod reference_support;

use common::{Backend, TestDb};
use fault_support::invariants::{self, LedgerView};
use fault_support::process::{self, KillAt, Outcome, Running};
use fault_support::reference::{self, V1Maker, UUID_REVISION};
use fault_support::settings::env_u64;
use ferry_workload::Snapshot;
use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

const N: u64 = 2000;
const BATCH: u64 = 100;

fn upgrade(db: &TestDb, lock_timeout: &str, target: Option<&str>) -> Command {
    reference::upgrade(db, lock_timeout, BATCH, target)
}

fn makers(test: &str) -> Vec<V1Maker> {
    [Backend::Sqlite, Backend::Postgres]
        .into_iter()
        .map(|b| V1Maker::new(b, test, N, 7))
        .collect()
}

/// How many of each event the runs wrote, per revision: `(event, revision) -> count`.
fn event_counts(runs: &[Outcome]) -> BTreeMap<(String, String), usize> {
    let mut counts = BTreeMap::new();
    for e in runs.iter().flat_map(|r| &r.events) {
        let key = (
            e["event"].as_str().unwrap_or("").to_string(),
            e["revision"].as_str().unwrap_or("").to_string(),
        );
        *counts.entry(key).or_default() += 1;
    }
    counts
}

/// Starts `count` migrators at once, half waiting for the lock, half not at all.
fn race(db: &TestDb, count: usize, target: Option<&str>) -> Vec<Outcome> {
    let running: Vec<Running> = (0..count)
        .map(|i| {
            let timeout = if i % 2 == 0 { "120" } else { "0" };
            Running::start(upgrade(db, timeout, target))
        })
        .collect();
    let pids: Vec<u32> = running.iter().map(|r| r.pid()).collect();
    let runs: Vec<Outcome> = running.into_iter().map(|r| r.finish()).collect();
    for (i, r) in runs.iter().enumerate() {
        match r.code {
            Some(0) => {}
            Some(3) => {
                assert!(i % 2 == 1, "a waiting migrator gave up: {}", r.describe());
                let names_holder = pids
                    .iter()
                    .any(|p| *p != r.pid && r.stderr.contains(&format!("pid {p}")));
                assert!(
                    r.stderr.contains("locked") && names_holder,
                    "exit 3 names the holder: {}",
                    r.describe()
                );
            }
            _ => panic!("a concurrent migrator failed: {}", r.describe()),
        }
    }
    runs
}

/// Each planned revision started and was applied exactly once across all the runs.
fn each_revision_once(runs: &[Outcome], revisions: &[&str]) {
    let counts = event_counts(runs);
    for rev in revisions {
        for event in ["revision_started", "revision_finished"] {
            let n = counts
                .get(&(event.to_string(), rev.to_string()))
                .copied()
                .unwrap_or(0);
            assert_eq!(n, 1, "{event} {rev}: {n} times; {counts:?}");
        }
    }
    let waited = counts
        .get(&("lock_waiting".to_string(), String::new()))
        .copied()
        .unwrap_or(0);
    eprintln!(
        "{} concurrent migrators: exit codes {:?}, {waited} waited for the lock",
        runs.len(),
        runs.iter()
            .map(|r| r.code.unwrap_or(-1))
            .collect::<Vec<_>>()
    );
}

fn v2_holds(db: &TestDb, before: &Snapshot) {
    let mut conn = db.connect();
    if let Err(problems) = ferry_workload::check_v2(conn.as_mut(), before) {
        panic!("v2 rules violated:\n{}", problems.join("\n"));
    }
    let view = LedgerView::read(conn.as_mut()).unwrap();
    let problems = view.consistency(false);
    assert!(problems.is_empty(), "{problems:#?}");
}

#[test]
fn concurrent_upgrades_apply_each_revision_once() {
    let count = env_u64("FERRY_CONCURRENT", 6).max(2) as usize;
    for maker in makers("faults_concurrent") {
        let Some((db, before)) = maker.make() else {
            continue;
        };
        // To v2 first (the int → UUID migration), then to the heads.
        let runs = race(&db, count, Some(UUID_REVISION));
        each_revision_once(&runs, &[UUID_REVISION]);
        v2_holds(&db, &before);
        let runs = race(&db, count, None);
        each_revision_once(
            &runs,
            &[
                "collections-2.0.1",
                "datasets-uuid-1.0.1",
                "dimensions-config-1",
                "obs_subaru-1",
            ],
        );
        let status = invariants::usable(&db, reference::ferry(&db).command()).unwrap();
        let mut conn = db.connect();
        let problems = invariants::at_heads(&status, conn.as_mut(), false);
        assert!(problems.is_empty(), "[{}] {problems:#?}", db.name());
    }
}

#[test]
fn a_migrator_killed_holding_the_lock_does_not_block_the_waiters() {
    for maker in makers("faults_killed_holder") {
        let Some((db, before)) = maker.make() else {
            continue;
        };
        // Small batches keep the holder inside the revision (and holding the lock)
        // long after its second batch, while four waiters start up and line up.
        let mut holder = Running::start(reference::upgrade(&db, "0", 5, Some(UUID_REVISION)));
        holder.wait_for_event(Duration::from_secs(60), |e| {
            e["event"] == "progress" && e["done"].as_u64() >= Some(2)
        });
        let mut waiters: Vec<Running> = (0..4)
            .map(|_| Running::start(upgrade(&db, "30", Some(UUID_REVISION))))
            .collect();
        for w in &mut waiters {
            w.wait_for_event(Duration::from_secs(30), |e| e["event"] == "lock_waiting");
        }
        holder.kill();
        let holder = holder.finish();
        assert!(holder.killed, "{}", holder.describe());
        let runs: Vec<Outcome> = waiters.into_iter().map(|w| w.finish()).collect();
        for r in &runs {
            assert_eq!(r.code, Some(0), "[{}] {}", db.name(), r.describe());
        }
        each_revision_once(&runs, &[UUID_REVISION]);
        // The one that took over resumed: it skipped what the holder committed.
        let took_over: Vec<&serde_json::Value> = runs
            .iter()
            .flat_map(|r| &r.events)
            .filter(|e| e["revision"] == UUID_REVISION)
            .collect();
        assert!(
            took_over
                .iter()
                .any(|e| e["event"] == "step_skipped" && e["step"] == "create the id map"),
            "{took_over:?}"
        );
        if let Some(first) = took_over.iter().find(|e| e["event"] == "progress") {
            assert!(first["done"].as_u64() > Some(2), "{first}");
        }
        v2_holds(&db, &before);
    }
}

/// PostgreSQL: a migrator killed while its session runs a long statement. The server
/// notices the dead client within `client_connection_check_interval` (which Ferry
/// sets), ends the statement and releases the lock; without it the lock would stay
/// held until the statement finished.
#[test]
fn postgres_a_killed_migrator_mid_statement_does_not_hold_the_lock() {
    let Some(db) = TestDb::postgres("faults_killed_mid_statement") else {
        return;
    };
    let roots = [reference::fault_fixture("long_statement")];
    let run = |sleep: u32, lock_timeout: &str| {
        let mut cmd =
            reference::watched(reference::ferry_with(&db, &roots), lock_timeout).command();
        cmd.arg("--set")
            .arg(format!("fixture.sleep_seconds={sleep}"))
            .arg("upgrade");
        cmd
    };
    let mut holder = Running::start(run(300, "0"));
    holder.wait_for_event(Duration::from_secs(60), |e| {
        e["event"] == "step_started" && e["step"] == "wait"
    });
    let mut admin = db.connect();
    let since = Instant::now();
    loop {
        let rows = admin
            .query(
                "SELECT COUNT(*) FROM pg_stat_activity WHERE application_name LIKE ? \
                 AND query LIKE 'SELECT pg_sleep%' AND state = 'active'",
                &[ferry::backend::Value::Text(format!(
                    "ferry % {}",
                    holder.pid()
                ))],
            )
            .unwrap();
        if rows.rows[0][0] == ferry::backend::Value::Int(1) {
            break;
        }
        assert!(
            since.elapsed() < Duration::from_secs(30),
            "the statement never ran"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    holder.kill();
    assert!(holder.finish().killed);
    let started = Instant::now();
    let next = process::run(run(0, "20"), KillAt::Never);
    assert_eq!(
        next.code,
        Some(0),
        "the next migrator got the lock: {}",
        next.describe()
    );
    eprintln!(
        "the next migrator finished {:.1?} after the kill of one mid-statement",
        started.elapsed()
    );
    let mut conn = db.connect();
    let view = LedgerView::read(conn.as_mut()).unwrap();
    assert!(view.applied("long-1"), "{:?}", view.revisions);
    assert_eq!(view.applied_runs("long-1"), 1);
    assert!(view.consistency(false).is_empty());
}
