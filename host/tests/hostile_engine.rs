//! Hostile and careless scripts, the engine and input side (issue 17): every case under
//! `tests/fixtures/hostile/engine_<class>/<case>/` through the real `ferry` binary, on
//! SQLite and PostgreSQL, each in its own copy of the bad-input corpus's base
//! repository. A case passes when ferry ends with the expected non-zero exit (never a
//! crash: no abort, no panic, no signal), its output names the file and line and the
//! cause, the user's tables and the ledger are unchanged except for the recorded
//! failure (no revision left `running`), and the next correct upgrade works.
//! `HOSTILE_CASE=name` runs the cases whose name contains it.
//!
//! A case folder has the same `case.toml` as the bad-input corpus (see
//! `bad_input_support::Manifest`); docs/RELIABILITY.md ("Hostile scripts: engine and
//! input") counts them.

mod bad_input_support;
mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use bad_input_support::{base_root, make_base, sqlite_from, Case, Manifest};
use common::{pg_base_url, Backend, TestDb};

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures/hostile")
        .canonicalize()
        .expect("tests/fixtures/hostile exists")
}

/// Every case of every `engine_*` class, as `class/case`, sorted.
fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for class in std::fs::read_dir(corpus_dir()).expect("read corpus") {
        let class = class.expect("class").path();
        let class_name = class.file_name().unwrap().to_string_lossy().to_string();
        if !class_name.starts_with("engine_") || !class.is_dir() {
            continue;
        }
        for entry in std::fs::read_dir(&class).expect("read class") {
            let dir = entry.expect("case").path();
            if !dir.is_dir() {
                continue;
            }
            let file = dir.join("case.toml");
            let text = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            let manifest: Manifest =
                toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            assert!(manifest.exit != 0, "{}: must not succeed", file.display());
            assert!(
                !manifest.words.is_empty(),
                "{}: a case needs words its error must contain",
                file.display()
            );
            assert!(
                manifest.words.iter().any(|w| w.contains(".rhai")
                    || w.contains("--set")
                    || w.contains("config")
                    || w.contains("-> ")),
                "{}: the words must name the file and line (or the option) at fault",
                file.display()
            );
            let name = format!(
                "{class_name}/{}",
                dir.file_name().unwrap().to_string_lossy()
            );
            out.push(Case {
                name,
                dir,
                manifest,
            });
        }
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// The checks beyond the bad-input corpus's: no crash, nothing left running, and the
/// next correct upgrade (the base tree's pending revision) works.
fn after_checks(case: &Case, db: &TestDb) -> Vec<String> {
    let mut faults = Vec::new();
    let running = db.query("SELECT revision FROM ferry_revisions WHERE state = 'running'");
    if !running.is_empty() {
        faults.push(format!("revisions left running: {running:?}"));
    }
    // Without the case's own config files (a bad ferry.toml would refuse this too).
    if let Ok(entries) = std::fs::read_dir(case.dir.join("cwd")) {
        for e in entries.flatten() {
            let _ = std::fs::remove_file(db.dir().join(e.file_name()));
        }
    }
    let next = db.ferry().scripts(base_root()).run(["upgrade", "core-3"]);
    if next.code != 0 {
        faults.push(format!(
            "the next correct upgrade failed:\n{}",
            next.describe()
        ));
    } else if !db.has_table("notes") {
        faults.push("the next correct upgrade did not create its table".into());
    }
    faults
}

#[test]
fn corpus() {
    let all = cases();
    let per_class = |prefix: &str| all.iter().filter(|c| c.name.starts_with(prefix)).count();
    for class in [
        "engine_exit/",
        "engine_callback/",
        "engine_depth/",
        "engine_limits/",
        "engine_input/",
        "engine_record/",
    ] {
        assert!(
            per_class(class) >= 2,
            "class {class} has {} cases, fewer than 2",
            per_class(class)
        );
    }
    let filter = std::env::var("HOSTILE_CASE").ok();
    let selected: Vec<&Case> = all
        .iter()
        .filter(|c| filter.as_deref().is_none_or(|f| c.name.contains(f)))
        .collect();
    let postgres = pg_base_url().is_some();
    if !postgres {
        eprintln!("hostile_engine: PostgreSQL part skipped, FERRY_TEST_PG_URL is not set");
    }
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
        for _ in 0..2 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((case, backend)) = jobs.get(i) else {
                    break;
                };
                let db = match backend {
                    Backend::Sqlite => sqlite_from(master_path.as_ref()),
                    Backend::Postgres => {
                        let db = TestDb::postgres("hostile_engine").expect("PostgreSQL");
                        make_base(&db);
                        db
                    }
                };
                let mut faults = Vec::new();
                if let Err(e) = case.check(&db) {
                    faults.push(e);
                }
                let more = after_checks(case, &db);
                if !more.is_empty() {
                    faults.push(format!(
                        "{} [{}]: {}",
                        case.name,
                        db.name(),
                        more.join("; ")
                    ));
                }
                if !faults.is_empty() {
                    failures.lock().unwrap().push(faults.join("\n"));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let count = |b: Backend| jobs.iter().filter(|(_, jb)| *jb == b).count();
    eprintln!(
        "hostile_engine: {} cases, {} on sqlite, {} on postgres, {} failed, in {:.1}s",
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

// ---- class 4, SQLite: the lock is keyed on the database file, and its file is safe.

fn sqlite_conn(path: &std::path::Path) -> Box<dyn ferry::backend::Connection> {
    let url = ferry::backend::DbUrl::parse(&format!("sqlite:{}", path.display())).expect("URL");
    ferry::backend::connect(&url).expect("connect")
}

fn me() -> ferry::backend::LockHolder {
    ferry::ledger::Actor::current().holder(ferry::clock::now_unix())
}

#[test]
fn sqlite_lock_is_shared_by_every_path_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let real = dir.path().join("repo.sqlite");
    let mut first = sqlite_conn(&real);
    first.execute("CREATE TABLE t (id INTEGER)", &[]).unwrap();
    std::os::unix::fs::symlink(&real, dir.path().join("alias.sqlite")).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let through_dots = dir.path().join("sub/../repo.sqlite");
    assert!(matches!(
        first.try_lock(&me()).unwrap(),
        ferry::backend::LockAttempt::Acquired
    ));
    for other in [dir.path().join("alias.sqlite"), through_dots] {
        let mut second = sqlite_conn(&other);
        let attempt = second.try_lock(&me()).unwrap();
        assert!(
            matches!(attempt, ferry::backend::LockAttempt::HeldBy(_)),
            "{} took its own lock: {attempt:?}",
            other.display()
        );
    }
    first.unlock().unwrap();
    let mut second = sqlite_conn(&dir.path().join("alias.sqlite"));
    assert!(matches!(
        second.try_lock(&me()).unwrap(),
        ferry::backend::LockAttempt::Acquired
    ));
    second.unlock().unwrap();
}

#[test]
fn sqlite_lock_file_that_is_a_link_or_not_a_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("repo.sqlite");
    let victim = dir.path().join("precious.txt");
    std::fs::write(&victim, "precious data").unwrap();
    let lock = dir.path().join("repo.sqlite.ferry-lock");
    std::os::unix::fs::symlink(&victim, &lock).unwrap();
    let mut conn = sqlite_conn(&db);
    let err = conn.try_lock(&me()).unwrap_err().to_string();
    assert!(
        err.contains("repo.sqlite.ferry-lock") && err.contains("symbolic link"),
        "{err}"
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious data");
    // Through the binary: the upgrade is refused with the same words, nothing written.
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .args(["--db", &format!("sqlite:{}", db.display()), "--scripts"])
        .arg(base_root())
        .arg("upgrade")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert_eq!(run.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("symbolic link"), "{stderr}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious data");

    std::fs::remove_file(&lock).unwrap();
    std::fs::create_dir(&lock).unwrap();
    let err = conn.try_lock(&me()).unwrap_err().to_string();
    assert!(err.contains("not a regular file"), "{err}");

    // A lock file someone else owns (only root can make one here).
    std::fs::remove_dir(&lock).unwrap();
    std::fs::write(&lock, "").unwrap();
    if std::os::unix::fs::chown(&lock, Some(65534), Some(65534)).is_ok() {
        let err = conn.try_lock(&me()).unwrap_err().to_string();
        assert!(err.contains("belongs to user id 65534"), "{err}");
    } else {
        eprintln!("the lock file owned by another user: skipped (cannot chown as this user)");
    }
}
