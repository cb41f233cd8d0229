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

use bad_input_support::{base_root, run_corpus, Case, Manifest};
use common::TestDb;

fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/hostile")
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
    run_corpus("hostile_engine", &selected, 2, |case, db| {
        let mut faults = Vec::new();
        if let Err(e) = case.check(db) {
            faults.push(e);
        }
        let more = after_checks(case, db);
        if !more.is_empty() {
            faults.push(format!(
                "{} [{}]: {}",
                case.name,
                db.name(),
                more.join("; ")
            ));
        }
        if faults.is_empty() {
            Ok(())
        } else {
            Err(faults.join("\n"))
        }
    });
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

    // A hard link to another file.
    std::fs::remove_dir(&lock).unwrap();
    std::fs::hard_link(&victim, &lock).unwrap();
    let err = conn.try_lock(&me()).unwrap_err().to_string();
    assert!(err.contains("hard links"), "{err}");
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "precious data");

    // A lock file someone else owns, neither the user nor the database's owner (only
    // root can make one here); the database owner's is accepted (a shared repository).
    std::fs::remove_file(&lock).unwrap();
    std::fs::write(&lock, "").unwrap();
    if std::os::unix::fs::chown(&lock, Some(65534), Some(65534)).is_ok() {
        let err = conn.try_lock(&me()).unwrap_err().to_string();
        assert!(err.contains("belongs to user id 65534"), "{err}");
        std::os::unix::fs::chown(&db, Some(65534), Some(65534)).unwrap();
        let taken = conn.try_lock(&me()).unwrap();
        assert!(
            matches!(taken, ferry::backend::LockAttempt::Acquired),
            "{taken:?}"
        );
        conn.unlock().unwrap();
    } else {
        eprintln!("the lock file owned by another user: skipped (cannot chown as this user)");
    }
}

// ---- class 8 and 5 through the binary: inputs refused promptly, never echoed.

/// Runs the binary in `cwd` with `args`, returning (exit code, stdout + stderr, seconds).
fn ferry_in(cwd: &std::path::Path, args: &[&str]) -> (Option<i32>, String, f64) {
    let started = std::time::Instant::now();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .current_dir(cwd)
        .args(args)
        .output()
        .expect("run ferry");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text, started.elapsed().as_secs_f64())
}

/// A copy of the base tree in a fresh folder, with a SQLite repository at core-2.
fn scratch_repository() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&base_root(), &dir.path().join("scripts"));
    let (code, text, _) = ferry_in(
        dir.path(),
        &["--db", "sqlite:repo.sqlite", "upgrade", "core-2", "aux-1"],
    );
    assert_eq!(code, Some(0), "{text}");
    dir
}

fn copy_tree(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &to.join(e.file_name()));
        } else {
            std::fs::copy(e.path(), to.join(e.file_name())).unwrap();
        }
    }
}

#[test]
fn new_with_a_newline_in_the_message_is_refused_and_writes_nothing() {
    let dir = scratch_repository();
    let files = |d: &std::path::Path| walk(d);
    let before = files(&dir.path().join("scripts"));
    let (code, text, _) = ferry_in(
        dir.path(),
        &[
            "--db",
            "sqlite:repo.sqlite",
            "new",
            "core",
            "-m",
            "line one\nline two",
        ],
    );
    assert!(code.is_some_and(|c| c != 0 && c != 101), "{code:?} {text}");
    assert!(
        text.contains("control character (\\n)"),
        "the refusal names the cause: {text}"
    );
    assert_eq!(
        files(&dir.path().join("scripts")),
        before,
        "a file was written"
    );
    // Escape sequences too; and afterwards every command still works.
    let (code, text, _) = ferry_in(
        dir.path(),
        &[
            "--db",
            "sqlite:repo.sqlite",
            "new",
            "core",
            "-m",
            "red \x1b[31m",
        ],
    );
    assert!(code.is_some_and(|c| c != 0 && c != 101), "{code:?} {text}");
    let (code, text, _) = ferry_in(dir.path(), &["--db", "sqlite:repo.sqlite", "status"]);
    assert!(code.is_some_and(|c| c != 101 && c != 2), "{code:?} {text}");
    let (code, text, _) = ferry_in(
        dir.path(),
        &[
            "--db",
            "sqlite:repo.sqlite",
            "new",
            "core",
            "-m",
            "a plain message",
        ],
    );
    assert_eq!(code, Some(0), "{text}");
    let (code, text, _) = ferry_in(dir.path(), &["--db", "sqlite:repo.sqlite", "status"]);
    assert!(code.is_some_and(|c| c != 101 && c != 2), "{code:?} {text}");
}

fn walk(d: &std::path::Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(d).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out.sort();
    out
}

#[test]
fn passwords_are_never_echoed_whatever_the_url_form() {
    let dir = tempfile::tempdir().unwrap();
    for url in [
        "host=127.0.0.1 port=1 user=x password=hunter2secret dbname=y",
        "host=127.0.0.1 port=1 password = 'hunter2secret' dbname=y",
        "postgresql://x:hunter2secret@127.0.0.1:1/y",
        "postgresql://x@127.0.0.1:1/y?password=hunter2secret",
    ] {
        for command in ["status", "upgrade"] {
            let (code, text, _) = ferry_in(dir.path(), &["--db", url, command]);
            assert!(code.is_some_and(|c| c != 0 && c != 101), "{url}: {text}");
            assert!(!text.contains("hunter2secret"), "{url} {command}: {text}");
        }
    }
}

#[test]
fn an_in_memory_sqlite_database_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    copy_tree(&base_root(), &dir.path().join("scripts"));
    for url in ["sqlite::memory:", "sqlite:file::memory:?cache=shared"] {
        let (code, text, _) = ferry_in(dir.path(), &["--db", url, "upgrade"]);
        assert_eq!(code, Some(2), "{url}: {text}");
        assert!(text.contains("vanishes when ferry exits"), "{url}: {text}");
    }
}

#[test]
fn a_huge_revision_file_is_refused_at_discovery_promptly() {
    let dir = scratch_repository();
    let header =
        "const REVISION = \"core-9\";\nconst TREE = \"core\";\nconst PARENTS = [\"core-2\"];\n\
                  const VERSION = \"9\";\nconst DEPENDS_ON = [];\nconst MESSAGE = \"big\";\n\
                  fn upgrade(db) {}\n";
    // 2 MB of small functions (the attack), then a file under the size limit with too
    // many functions.
    let mut big = header.to_string();
    let mut i = 0;
    while big.len() < 2 * 1024 * 1024 {
        big.push_str(&format!("fn f{i}(x) {{ x + {i} }}\n"));
        i += 1;
    }
    let file = dir.path().join("scripts/core/009_big.rhai");
    std::fs::write(&file, &big).unwrap();
    for command in ["status", "check", "upgrade"] {
        let (code, text, secs) = ferry_in(dir.path(), &["--db", "sqlite:repo.sqlite", command]);
        assert_eq!(code, Some(2), "{command}: {text}");
        assert!(
            text.contains("009_big.rhai:1: the file has") && text.contains("bytes, more than"),
            "{command}: {text}"
        );
        assert!(secs < 5.0, "{command} took {secs:.1}s");
    }
    let mut many = header.to_string();
    for i in 0..1500 {
        many.push_str(&format!("fn f{i}() {{}}\n"));
    }
    std::fs::write(&file, &many).unwrap();
    let (code, text, secs) = ferry_in(dir.path(), &["--db", "sqlite:repo.sqlite", "status"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(
        text.contains("009_big.rhai:1: the file defines 1501 functions"),
        "{text}"
    );
    assert!(secs < 5.0, "status took {secs:.1}s");
}

#[test]
fn print_output_is_capped() {
    let dir = scratch_repository();
    std::fs::write(
        dir.path().join("scripts/core/009_loud.rhai"),
        "const REVISION = \"core-9\";\nconst TREE = \"core\";\nconst PARENTS = [\"core-2\"];\n\
         const VERSION = \"9\";\nconst DEPENDS_ON = [];\nconst MESSAGE = \"loud\";\n\
         fn upgrade(db) {\n    for i in 0..20000 { print(`line ${i} of a loud script, padded to be long enough`); }\n    throw \"done\";\n}\n",
    )
    .unwrap();
    let (code, text, _) = ferry_in(
        dir.path(),
        &[
            "--db",
            "sqlite:repo.sqlite",
            "--set",
            "limits.max_output_bytes=10000",
            "upgrade",
            "core-9",
        ],
    );
    assert_eq!(code, Some(1), "{text}");
    assert!(
        text.contains("output limit reached"),
        "{}",
        &text[text.len().saturating_sub(2000)..]
    );
    assert!(text.contains("line 0 of"), "the first lines are shown");
    assert!(
        !text.contains("line 19999 of"),
        "the output goes on past the cap"
    );
    assert!(text.len() < 40_000, "{} bytes of output", text.len());
}

#[test]
fn a_closed_stdout_ends_quietly_with_the_run_recorded() {
    let dir = scratch_repository();
    // `ferry upgrade | head -0`: the reader is gone before ferry writes its report.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
        .current_dir(dir.path())
        .args(["--db", "sqlite:repo.sqlite", "upgrade"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(!stderr.contains("internal error"), "{stderr}");
    assert!(
        matches!(out.status.code(), Some(0) | Some(141)),
        "{:?}: {stderr}",
        out.status
    );
    let (code, text, _) = ferry_in(dir.path(), &["--db", "sqlite:repo.sqlite", "check"]);
    assert_eq!(code, Some(0), "the run is recorded complete: {text}");
}
