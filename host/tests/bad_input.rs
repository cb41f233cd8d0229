//! The bad-input corpus: every case under `tests/fixtures/bad_input/` through the real
//! `ferry` binary, on SQLite and PostgreSQL, each in its own copy of a base repository
//! that has content. A case passes when ferry exits with the expected code, its output
//! holds the expected words (file, line, cause), and the repository is unchanged (see
//! `bad_input_support`). `BAD_INPUT_CASE=name` runs the cases whose name contains it.
//!
//! docs/RELIABILITY.md ("Bad input") says how to add a case.

mod bad_input_support;
mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use bad_input_support::{cases, make_base, sqlite_from, Case};
use common::{pg_base_url, Backend, TestDb};
use ferry::backend::{connect, DbUrl};

/// Roles for the wrong-credentials cases (trust authentication accepts any password,
/// so a role that may not log in, and one without rights on the schema, are what fail).
const ROLES: [(&str, &str); 2] = [
    ("badinput_nologin", "NOLOGIN"),
    ("badinput_norights", "LOGIN"),
];

fn pg_admin(sql: &str) {
    let base = pg_base_url().expect("FERRY_TEST_PG_URL");
    let mut admin = connect(&DbUrl::parse(&base).expect("URL")).expect("connect");
    if let Err(e) = admin.execute_batch(sql) {
        eprintln!("bad_input: {sql}: {e}");
    }
}

fn create_roles() {
    for (role, how) in ROLES {
        pg_admin(&format!(
            "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{role}') \
             THEN CREATE ROLE {role} {how}; END IF; END $$"
        ));
    }
}

fn drop_roles() {
    for (role, _) in ROLES {
        pg_admin(&format!("DROP ROLE IF EXISTS {role}"));
    }
}

#[test]
fn corpus() {
    let all = cases();
    assert!(
        all.len() >= 60,
        "the corpus has {} cases, fewer than 60",
        all.len()
    );
    let filter = std::env::var("BAD_INPUT_CASE").ok();
    let selected: Vec<&Case> = all
        .iter()
        .filter(|c| filter.as_deref().is_none_or(|f| c.name.contains(f)))
        .collect();
    let postgres = pg_base_url().is_some();
    if !postgres {
        eprintln!("bad_input: PostgreSQL part skipped, FERRY_TEST_PG_URL is not set");
    } else {
        create_roles();
    }

    // One SQLite base repository, copied for every case.
    let master = TestDb::sqlite();
    make_base(&master);
    let master_path = master
        .url()
        .strip_prefix("sqlite:")
        .expect("sqlite URL")
        .to_string();

    let mut jobs: Vec<(&Case, Backend)> = Vec::new();
    for c in &selected {
        if c.runs_on(Backend::Sqlite) {
            jobs.push((c, Backend::Sqlite));
        }
        if postgres && c.runs_on(Backend::Postgres) {
            jobs.push((c, Backend::Postgres));
        }
    }
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((case, backend)) = jobs.get(i) else {
                    break;
                };
                let db = match backend {
                    Backend::Sqlite => sqlite_from(master_path.as_ref()),
                    Backend::Postgres => {
                        let db = TestDb::postgres("bad_input").expect("PostgreSQL");
                        make_base(&db);
                        db
                    }
                };
                if let Err(e) = case.check(&db) {
                    failures.lock().unwrap().push(e);
                }
            });
        }
    });
    if postgres {
        drop_roles();
    }
    let failures = failures.into_inner().unwrap();
    let count = |b: Backend| jobs.iter().filter(|(_, jb)| *jb == b).count();
    eprintln!(
        "bad_input: {} cases, {} on sqlite, {} on postgres, {} failed, in {:.1}s",
        selected.len(),
        count(Backend::Sqlite),
        count(Backend::Postgres),
        failures.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} runs failed:\n\n{}",
        failures.len(),
        jobs.len(),
        failures.join("\n\n")
    );
}
