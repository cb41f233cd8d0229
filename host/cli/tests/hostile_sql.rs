//! Hostile scripts, the SQL side: every case under `tests/fixtures/hostile/sql_*/` through
//! the real `ferry` binary, on each backend it names (issue 17, classes 1, 2, 3, 4 and 7).
//!
//! A case is one revision file, `002_hostile.rhai`, that follows the base revision of
//! `tests/fixtures/hostile/_base/`. Its first lines say what to expect:
//!
//! ```text
//! // expect: statement refused      (words the error must hold)
//! // backends: sqlite postgres
//! // args: --dry-run                 (optional: added to `upgrade`)
//! // records: nothing                 (optional: refused before anything is recorded)
//! ```
//!
//! and the attacking line ends with `// <- attack`. `@OUTSIDE@` stands for a folder
//! outside the repository (world-writable, so that the PostgreSQL server could write
//! there too). A case passes when `ferry upgrade` exits non-zero with a message naming
//! the file and the attacking line; the user's tables, and the ledger apart from the
//! hostile revision's own failure, are as before; nothing appeared in the outside
//! folder; and once the file is replaced by a correct revision, `ferry upgrade` applies
//! it. `HOSTILE_CASE=name` runs the cases whose name contains it.

mod common;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use common::{pg_base_url, Backend, TestDb};
use ferry::backend::prelude::*;

const HOSTILE: &str = "hostile-1";

const FIXED: &str = r#"const REVISION = "hostile-1";
const TREE = "base";
const PARENTS = ["base-1"];
const VERSION = "1.1.0";
const DEPENDS_ON = [];
const MESSAGE = "the hostile revision, fixed";

fn upgrade(db) {
    db.execute("INSERT INTO item (id, name) VALUES (?, ?)", [100, "fixed"]);
}

fn downgrade(db) {
    db.execute("DELETE FROM item WHERE id = ?", [100]);
}
"#;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/hostile")
        .canonicalize()
        .expect("tests/fixtures/hostile")
}

struct Case {
    /// `sql_class/variant`.
    name: String,
    text: String,
    expect: String,
    backends: Vec<Backend>,
    args: Vec<String>,
    /// 1-based line of `// <- attack`.
    line: usize,
    /// `// records: nothing`: the run is refused before anything is recorded (a
    /// failing preflight), as in a dry run.
    records_nothing: bool,
}

fn header<'a>(text: &'a str, key: &str) -> Option<&'a str> {
    text.lines()
        .take_while(|l| l.starts_with("//"))
        .find_map(|l| l.strip_prefix(&format!("// {key}:")))
        .map(str::trim)
}

fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    let mut classes: Vec<PathBuf> = fs::read_dir(root())
        .expect("read fixtures")
        .map(|e| e.expect("entry").path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("sql_"))
        })
        .collect();
    classes.sort();
    for class in classes {
        let mut variants: Vec<PathBuf> = fs::read_dir(&class)
            .expect("read class")
            .map(|e| e.expect("entry").path())
            .collect();
        variants.sort();
        for v in variants {
            let name = format!(
                "{}/{}",
                class.file_name().unwrap().to_string_lossy(),
                v.file_name().unwrap().to_string_lossy()
            );
            let text = fs::read_to_string(v.join("002_hostile.rhai"))
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let expect = header(&text, "expect")
                .unwrap_or_else(|| panic!("{name}: no `// expect:` line"))
                .to_string();
            let backends = header(&text, "backends")
                .unwrap_or_else(|| panic!("{name}: no `// backends:` line"))
                .split_whitespace()
                .map(|b| match b {
                    "sqlite" => Backend::Sqlite,
                    "postgres" => Backend::Postgres,
                    other => panic!("{name}: unknown backend {other}"),
                })
                .collect();
            let args = header(&text, "args")
                .map(|a| a.split_whitespace().map(String::from).collect())
                .unwrap_or_default();
            let line = text
                .lines()
                .position(|l| l.contains("// <- attack"))
                .unwrap_or_else(|| panic!("{name}: no `// <- attack` line"))
                + 1;
            let records_nothing = header(&text, "records") == Some("nothing");
            out.push(Case {
                records_nothing,
                name,
                text,
                expect,
                backends,
                args,
                line,
            });
        }
    }
    out
}

/// What must not change: the user's tables, and the ledger apart from the hostile
/// revision's own records.
#[derive(Debug, PartialEq)]
struct Snapshot {
    user: Vec<(String, Vec<Vec<Option<String>>>)>,
    revisions: Vec<Vec<Option<String>>>,
    history: Vec<Vec<Option<String>>>,
    steps: Vec<Vec<Option<String>>>,
    tables: Vec<String>,
}

fn snapshot(db: &TestDb) -> Snapshot {
    let tables = db.tables();
    let user = tables
        .iter()
        .filter(|t| !t.starts_with("ferry_"))
        .map(|t| {
            (
                t.clone(),
                db.query(&format!("SELECT * FROM {t} ORDER BY 1")),
            )
        })
        .collect();
    Snapshot {
        user,
        revisions: db.query(&format!(
            "SELECT revision, tree, version, state, checksum, failed_step, error, how, \
             updated_at FROM ferry_revisions WHERE revision <> '{HOSTILE}' ORDER BY revision"
        )),
        history: db.query(&format!(
            "SELECT id, revision, direction, checksum, outcome, error FROM ferry_history \
             WHERE revision <> '{HOSTILE}' ORDER BY id"
        )),
        steps: db.query(&format!(
            "SELECT revision, step, done, cursor FROM ferry_steps \
             WHERE revision <> '{HOSTILE}' ORDER BY revision, step"
        )),
        tables,
    }
}

fn write_revision(scripts: &Path, text: &str) {
    fs::write(scripts.join("base/002_hostile.rhai"), text).expect("write revision");
}

/// Runs one case on one backend; `Err` says what went wrong.
fn run(case: &Case, backend: Backend) -> Result<(), String> {
    let db = match backend {
        Backend::Sqlite => TestDb::sqlite(),
        Backend::Postgres => TestDb::postgres("hostile_sql").expect("FERRY_TEST_PG_URL"),
    };
    let work = tempfile::tempdir().map_err(|e| e.to_string())?;
    let scripts = work.path().join("scripts");
    fs::create_dir_all(scripts.join("base")).map_err(|e| e.to_string())?;
    fs::copy(
        root().join("_base/base/001_base.rhai"),
        scripts.join("base/001_base.rhai"),
    )
    .map_err(|e| e.to_string())?;
    let outside = tempfile::Builder::new()
        .prefix("ferry-hostile-outside-")
        .tempdir_in("/tmp")
        .map_err(|e| e.to_string())?;
    fs::set_permissions(outside.path(), fs::Permissions::from_mode(0o777))
        .map_err(|e| e.to_string())?;

    let base = db.ferry().scripts(&scripts).run(["upgrade"]);
    if base.code != 0 {
        return Err(format!("the base upgrade failed: {}", base.describe()));
    }
    let before = snapshot(&db);
    let repo_files = list(db.dir());

    let text = case
        .text
        .replace("@OUTSIDE@", &outside.path().display().to_string());
    write_revision(&scripts, &text);
    let mut args = vec!["upgrade".to_string()];
    args.extend(case.args.iter().cloned());
    let attacked = db.ferry().scripts(&scripts).run(&args);
    let said = format!("{}{}", attacked.stdout, attacked.stderr);
    if attacked.code == 0 || attacked.code == -1 {
        return Err(format!(
            "ended with {}, not a failure: {said}",
            attacked.code
        ));
    }
    let place = format!("002_hostile.rhai:{}", case.line);
    if !said.contains(&place) {
        return Err(format!("the message does not name {place}: {said}"));
    }
    if !said.contains(&case.expect) {
        return Err(format!(
            "the message does not say {:?}: {said}",
            case.expect
        ));
    }
    if said.contains("panicked") {
        return Err(format!("ferry panicked: {said}"));
    }
    let after = snapshot(&db);
    if after != before {
        return Err(format!(
            "the repository changed:\n before: {before:?}\n after:  {after:?}\n ferry said: {said}"
        ));
    }
    // A real run records the failure (state and a failed history row); a dry run and
    // `--sql` record nothing at all.
    let state = db.revision_state(HOSTILE);
    let failed_rows = db.scalar(&format!(
        "SELECT COUNT(*) FROM ferry_history WHERE revision = '{HOSTILE}' AND outcome = 'failed'"
    ));
    let all_rows = db.scalar(&format!(
        "SELECT COUNT(*) FROM ferry_history WHERE revision = '{HOSTILE}'"
    ));
    let rehearsal =
        case.records_nothing || case.args.iter().any(|a| a == "--dry-run" || a == "--sql");
    let recorded = if rehearsal {
        state.is_none() && all_rows == 0
    } else {
        state.as_deref() == Some("failed") && failed_rows == 1 && all_rows == 1
    };
    if !recorded {
        return Err(format!(
            "the ledger records the hostile revision as {state:?} with {failed_rows} failed \
             of {all_rows} history rows: {said}"
        ));
    }
    let found = list(outside.path());
    if !found.is_empty() {
        return Err(format!("files appeared outside the repository: {found:?}"));
    }
    let now = list(db.dir());
    if now != repo_files {
        return Err(format!(
            "the repository folder changed: {repo_files:?} -> {now:?}"
        ));
    }

    write_revision(&scripts, FIXED);
    let fixed = db.ferry().scripts(&scripts).run(["upgrade"]);
    if fixed.code != 0 {
        return Err(format!(
            "the corrected upgrade failed: {}\n(after the attack: {said})",
            fixed.describe()
        ));
    }
    if db.revision_state(HOSTILE).as_deref() != Some("applied") {
        return Err("the corrected revision is not recorded applied".into());
    }
    if db.scalar("SELECT COUNT(*) FROM item WHERE id = 100") != 1 {
        return Err("the corrected revision's row is missing".into());
    }
    Ok(())
}

/// The files in a folder (names, sorted), ignoring SQLite's transient journal files.
fn list(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .filter(|n| {
                    !n.ends_with("-journal") && !n.ends_with("-wal") && !n.ends_with("-shm")
                })
                .collect()
        })
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn corpus() {
    let all = cases();
    let count = |class: &str| all.iter().filter(|c| c.name.starts_with(class)).count();
    for class in ["sql_transaction/", "sql_ledger/", "sql_outside/"] {
        assert!(count(class) >= 8, "{class} has only {} cases", count(class));
    }
    for class in ["sql_session/", "sql_lock/"] {
        assert!(count(class) >= 5, "{class} has only {} cases", count(class));
    }
    let filter = std::env::var("HOSTILE_CASE").ok();
    let postgres = pg_base_url().is_some();
    if !postgres {
        eprintln!("hostile_sql: PostgreSQL cases skipped, FERRY_TEST_PG_URL is not set");
    }
    let mut jobs: Vec<(&Case, Backend)> = Vec::new();
    for c in all
        .iter()
        .filter(|c| filter.as_deref().is_none_or(|f| c.name.contains(f)))
    {
        for b in &c.backends {
            if *b == Backend::Postgres && !postgres {
                continue;
            }
            jobs.push((c, *b));
        }
    }
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((case, backend)) = jobs.get(i) else {
                    break;
                };
                if let Err(e) = run(case, *backend) {
                    failures
                        .lock()
                        .unwrap()
                        .push(format!("{} [{backend:?}]: {e}", case.name));
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    eprintln!(
        "hostile_sql: {} runs of {} cases, {} failed",
        jobs.len(),
        all.len(),
        failures.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// The authorizer denies what the guard refuses, for statements marked as a script's,
/// even when they reach the connection without the guard; Ferry's own statements
/// (not marked) still write the ledger.
#[test]
fn sqlite_authorizer_denies_what_the_guard_refuses() {
    let db = TestDb::sqlite();
    db.ferry()
        .scripts(root().join("_base"))
        .run(["upgrade"])
        .success();
    let outside = tempfile::tempdir().expect("tempdir");
    let target = outside.path().join("x.db");
    let mut conn = db.connect();
    conn.restrict_to_script(true);
    for sql in [
        format!("ATTACH DATABASE '{}' AS x", target.display()),
        "DELETE FROM ferry_history".to_string(),
        "UPDATE ferry_revisions SET state = 'applied'".to_string(),
        "CREATE TRIGGER t AFTER INSERT ON ferry_history BEGIN SELECT 1; END".to_string(),
        "CREATE TEMP TABLE ferry_revisions (revision TEXT)".to_string(),
        "PRAGMA journal_mode = OFF".to_string(),
        "PRAGMA foreign_keys = OFF".to_string(),
        "SAVEPOINT s".to_string(),
        "BEGIN".to_string(),
    ] {
        let e = conn
            .execute(&sql, &[])
            .expect_err(&format!("{sql} was allowed"));
        assert!(e.to_string().contains("not authorized"), "{sql}: {e}");
    }
    assert!(conn.query("PRAGMA table_info(item)", &[]).is_ok());
    assert!(conn
        .query("SELECT count(*) FROM ferry_history", &[])
        .is_ok());
    conn.restrict_to_script(false);
    // Ferry's own statements are not a script's.
    conn.execute("UPDATE ferry_meta SET value = value", &[])
        .expect("ledger write outside script mode");
    assert!(!target.exists());
    // Double-quoted strings are names, for Ferry's statements too.
    let e = conn
        .query("SELECT \"idd\" FROM item", &[])
        .expect_err("a double-quoted unknown name must not read as a string");
    assert!(e.to_string().contains("idd"), "{e}");
}

/// `status` and `upgrade` warn when the PostgreSQL connection is a superuser's (the
/// test server's URL is one), and say nothing of the kind on SQLite.
#[test]
fn superuser_connections_are_warned_about() {
    let lite = TestDb::sqlite();
    let run = lite
        .ferry()
        .scripts(root().join("_base"))
        .run(["upgrade"])
        .success();
    assert!(!run.stderr.contains("superuser"), "{}", run.stderr);
    let Some(db) = TestDb::postgres("superuser_connections_are_warned_about") else {
        return;
    };
    let is_super = db.query("SELECT rolsuper::text FROM pg_roles WHERE rolname = current_user");
    if is_super.first().and_then(|r| r[0].clone()).as_deref() != Some("true") {
        eprintln!("superuser warning: the test role is not a superuser; skipped");
        return;
    }
    for args in [vec!["status"], vec!["upgrade"]] {
        let r = db.ferry().scripts(root().join("_base")).run(&args);
        assert!(
            r.stderr.contains("warning: connected as superuser"),
            "{args:?}: {}",
            r.describe()
        );
    }
}

/// The dedicated role docs/OPERATIONS.md describes ("A role for migrations"): a login
/// role without superuser that owns the repository's schema runs an upgrade and a
/// hostile revision's refusal alike, and gets no superuser warning.
#[test]
fn a_dedicated_role_migrates_without_a_warning() {
    let Some(db) = TestDb::postgres("a_dedicated_role_migrates_without_a_warning") else {
        return;
    };
    const ROLE: &str = "ferry_hostile_migrator";
    let schema = db.schema().expect("schema").to_string();
    let admin = |sql: &str| {
        let base = pg_base_url().expect("FERRY_TEST_PG_URL");
        let mut c = ferry::backend::connect(&ferry::backend::DbUrl::parse(&base).expect("URL"))
            .expect("connect");
        c.execute_batch(sql)
    };
    admin(&format!(
        "DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{ROLE}') \
         THEN CREATE ROLE {ROLE} LOGIN; END IF; END $$"
    ))
    .expect("create role");
    admin(&format!("ALTER SCHEMA \"{schema}\" OWNER TO {ROLE}")).expect("owner");
    let url = db.url().to_string();
    let rest = url
        .split_once('@')
        .map(|(_, rest)| rest)
        .expect("the test URL names a user");
    let as_role = format!("postgresql://{ROLE}@{rest}");
    let run = db
        .ferry()
        .db_url(&as_role)
        .scripts(root().join("_base"))
        .run(["upgrade"]);
    assert_eq!(run.code, 0, "{}", run.describe());
    assert!(!run.stderr.contains("superuser"), "{}", run.describe());
    assert_eq!(db.revision_state("base-1").as_deref(), Some("applied"));
    drop(db);
    let _ = admin(&format!("DROP ROLE IF EXISTS {ROLE}"));
}

/// An application's SQLite connection lent to Ferry is guarded while Ferry has it and
/// comes back with its own settings and no authorizer (docs/EMBEDDING.md).
#[test]
fn a_lent_sqlite_connection_comes_back_as_it_was() {
    use ferry::backend::sqlite::SqliteConnection;
    use ferry::backend::Connection;
    use rusqlite::config::DbConfig;
    let settings = [
        DbConfig::SQLITE_DBCONFIG_DEFENSIVE,
        DbConfig::SQLITE_DBCONFIG_DQS_DML,
        DbConfig::SQLITE_DBCONFIG_DQS_DDL,
    ];
    let raw = rusqlite::Connection::open_in_memory().expect("memory");
    // The opposite of what Ferry sets, so that a restore is visible.
    raw.set_db_config(DbConfig::SQLITE_DBCONFIG_DEFENSIVE, false)
        .unwrap();
    raw.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DML, true)
        .unwrap();
    raw.set_db_config(DbConfig::SQLITE_DBCONFIG_DQS_DDL, true)
        .unwrap();
    let before: Vec<bool> = settings
        .iter()
        .map(|c| raw.db_config(*c).unwrap())
        .collect();
    let mut conn = SqliteConnection::from_raw(raw).expect("lend");
    conn.restrict_to_script(true);
    let e = conn
        .execute("ATTACH ':memory:' AS x", &[])
        .expect_err("ATTACH from a script statement");
    assert!(e.to_string().contains("not authorized"), "{e}");
    conn.restrict_to_script(false);
    let raw = conn.into_raw();
    let after: Vec<bool> = settings
        .iter()
        .map(|c| raw.db_config(*c).unwrap())
        .collect();
    assert_eq!(before, after);
    raw.execute_batch("ATTACH ':memory:' AS x; DETACH x")
        .expect("the application's own ATTACH works again");
}
