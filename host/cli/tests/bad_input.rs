//! The bad-input corpus: every case under `tests/fixtures/bad_input/` through the real
//! `ferry` binary, on SQLite and PostgreSQL, each in its own copy of a base repository
//! that has content. A case passes when ferry exits with the expected code, its output
//! holds the expected words (file, line, cause), and the repository is unchanged (see
//! `bad_input_support`). `BAD_INPUT_CASE=name` runs the cases whose name contains it.
//!
//! docs/RELIABILITY.md ("Bad input") says how to add a case.

mod bad_input_support;
mod common;

use bad_input_support::{cases, run_corpus, Case};
use common::pg_base_url;
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
    // The roles some PostgreSQL cases connect as exist for the whole run.
    let postgres = pg_base_url().is_some();
    if postgres {
        create_roles();
    }
    run_corpus("bad_input", &selected, 4, |case, db| case.check(db));
    if postgres {
        drop_roles();
    }
}
