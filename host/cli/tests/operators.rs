//! The operator commands through the real binary, on SQLite and (when
//! FERRY_TEST_PG_URL is set) PostgreSQL.

use std::path::{Path, PathBuf};
use std::process::Command;

mod common;

use common::{Backend, FreshDb};

const BIN: &str = env!("CARGO_BIN_EXE_ferry");

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/operators/shop/scripts")
}

fn reference_scripts() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts")
}

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn ferry(cwd: &Path, db: &str, scripts: &Path, args: &[&str]) -> Out {
    let out = Command::new(BIN)
        .current_dir(cwd)
        .arg("--db")
        .arg(db)
        .arg("--scripts")
        .arg(scripts)
        .args(["--progress", "none", "--lock-timeout", "1"])
        .args(args)
        .env_remove("FERRY_DB")
        .env_remove("FERRY_PATH")
        .output()
        .expect("run ferry");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A copy of the shop fixture that a test may change.
fn copy_fixture(dir: &Path) -> PathBuf {
    let to = dir.join("scripts");
    for tree in ["shop", "audit"] {
        std::fs::create_dir_all(to.join(tree)).unwrap();
        for e in std::fs::read_dir(fixture().join(tree)).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), to.join(tree).join(e.file_name())).unwrap();
        }
    }
    to
}

fn sql(db: &str, statements: &[&str]) {
    let url = ferry::backend::DbUrl::parse(db).unwrap();
    let mut c = ferry::backend::connect(&url).unwrap();
    for s in statements {
        c.execute(s, &[]).unwrap();
    }
}

/// Runs `f` with a scratch folder and a database URL for each backend available (on
/// SQLite, `repo.db` in that folder).
fn each_backend(name: &str, f: impl Fn(&Path, &str)) {
    for backend in Backend::all(name) {
        let db = match backend {
            Backend::Sqlite => FreshDb::sqlite_named("repo.db"),
            Backend::Postgres => FreshDb::postgres(name).expect("FERRY_TEST_PG_URL"),
        };
        f(db.dir(), db.url());
    }
}

#[test]
fn status_text_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let db = "sqlite:repo.db";
    assert_eq!(
        ferry(dir.path(), db, &fixture(), &["upgrade", "shop-1"]).code,
        0
    );
    let out = ferry(dir.path(), db, &fixture(), &["status"]);
    assert_eq!(out.code, 0);
    assert_eq!(
        out.stdout,
        "database: sqlite:repo.db\n\
         TREE   CURRENT  VERSION  HEAD     PENDING\n\
         audit  -        -        audit-1  1\n\
         shop   shop-1   1        shop-2   1\n\
         \n\
         statement timeout: 600 s (limits.statement_timeout_seconds)\n"
    );
}

#[test]
fn dry_run_leaves_the_repository_unchanged() {
    each_backend("dryrun", |dir, db| {
        let s = fixture();
        // Fresh, then part-way.
        for setup in [None, Some("shop-1")] {
            if let Some(t) = setup {
                assert_eq!(ferry(dir, db, &s, &["upgrade", t]).code, 0);
            }
            let before_digest = ferry(dir, db, &s, &["digest", "--verbose"]).stdout;
            // `digest` reads without creating the file; a dry run of a repository that
            // does not exist yet may leave an empty one (an empty database): compare both
            // as "no bytes".
            let bytes = || std::fs::read(dir.join("repo.db")).unwrap_or_default();
            let before_bytes = bytes();
            let out = ferry(dir, db, &s, &["upgrade", "--dry-run", "shop@head"]);
            assert_eq!(out.code, 0, "{}", out.stderr);
            assert!(
                out.stdout.contains("CREATE INDEX item_name"),
                "{}",
                out.stdout
            );
            assert!(
                out.stdout
                    .contains("this was a rehearsal; nothing was changed"),
                "{}",
                out.stdout
            );
            assert!(!out.stdout.contains("applied in"), "{}", out.stdout);
            assert!(!out.stderr.contains("applied in"), "{}", out.stderr);
            assert_eq!(
                ferry(dir, db, &s, &["digest", "--verbose"]).stdout,
                before_digest
            );
            if db.starts_with("sqlite:") {
                assert_eq!(bytes(), before_bytes);
            }
            let st = ferry(dir, db, &s, &["status", "--json"]);
            let v: serde_json::Value = serde_json::from_str(&st.stdout).unwrap();
            let shop = v["trees"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["tree"] == "shop")
                .unwrap()
                .clone();
            assert_eq!(
                shop["pending"].as_array().unwrap().len(),
                if setup.is_some() { 1 } else { 2 }
            );
        }
    });
}

#[test]
fn stamp_checks_the_digest() {
    each_backend("stamp", |dir, db| {
        let s = fixture();
        let out = ferry(dir, db, &s, &["stamp", "audit-1"]);
        assert_eq!(out.code, 2, "{}", out.stderr);
        assert!(
            out.stderr.contains("expected: 00000000deadbeef"),
            "{}",
            out.stderr
        );
        assert!(out.stderr.contains("found:"), "{}", out.stderr);
        let h = ferry(dir, db, &s, &["history", "--json"]);
        assert_eq!(h.stdout.trim(), "[]");
        // A revision without DIGEST stamps, with its ancestors.
        let out = ferry(dir, db, &s, &["stamp", "shop-2"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stdout.contains("stamped shop-1") && out.stdout.contains("stamped shop-2"));
        let out = ferry(dir, db, &s, &["stamp", "--force", "audit-1"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        let h: serde_json::Value =
            serde_json::from_str(&ferry(dir, db, &s, &["history", "--json"]).stdout).unwrap();
        assert_eq!(h[0]["revision"], "audit-1");
        assert_eq!(h[0]["direction"], "stamp");
        assert_eq!(h[0]["note"], "stamp --force");
        let show: serde_json::Value =
            serde_json::from_str(&ferry(dir, db, &s, &["show", "audit", "--json"]).stdout).unwrap();
        assert_eq!(show["record"]["how"], "stamp --force");
        assert_eq!(ferry(dir, db, &s, &["check"]).code, 0);
    });
}

#[test]
fn upgrade_fails_when_the_declared_digest_differs() {
    each_backend("digestcheck", |dir, db| {
        let out = ferry(dir, db, &fixture(), &["upgrade"]);
        assert_eq!(out.code, 1, "{}", out.stderr);
        assert!(out.stderr.contains("after audit-1"), "{}", out.stderr);
        assert!(
            out.stderr.contains("expected: 00000000deadbeef"),
            "{}",
            out.stderr
        );
    });
}

#[test]
fn digest_folds_table_families_and_ignores_ferry_tables() {
    each_backend("family", |dir, db| {
        let s = fixture();
        sql(
            db,
            &["CREATE TABLE dataset_tags_00000001 (id BIGINT PRIMARY KEY, v VARCHAR(10))"],
        );
        let one = ferry(dir, db, &s, &["digest"]).stdout;
        sql(
            db,
            &["CREATE TABLE dataset_tags_00000002 (id BIGINT PRIMARY KEY, v VARCHAR(10))"],
        );
        assert_eq!(ferry(dir, db, &s, &["digest"]).stdout, one);
        assert_eq!(ferry(dir, db, &s, &["stamp", "shop-1"]).code, 0);
        assert_eq!(
            ferry(dir, db, &s, &["digest"]).stdout,
            one,
            "ferry_* tables are excluded"
        );
        sql(db, &["CREATE TABLE other (id BIGINT PRIMARY KEY)"]);
        assert_ne!(ferry(dir, db, &s, &["digest"]).stdout, one);
        let v = ferry(dir, db, &s, &["digest", "--verbose"]).stdout;
        assert!(v.contains("table dataset_tags_#"), "{v}");
    });
}

#[test]
fn changed_scripts_are_shown_refused_and_recorded() {
    each_backend("changed", |dir, db| {
        let s = copy_fixture(dir);
        assert_eq!(ferry(dir, db, &s, &["upgrade", "shop-1"]).code, 0);
        let f = s.join("shop/shop-1.rhai");
        let text = std::fs::read_to_string(&f).unwrap();
        std::fs::write(&f, format!("{text}\n// edited\n")).unwrap();
        let st = ferry(dir, db, &s, &["status"]);
        assert!(
            st.stdout.contains("changed since applied: shop-1"),
            "{}",
            st.stdout
        );
        assert_eq!(ferry(dir, db, &s, &["check"]).code, 3);
        let up = ferry(dir, db, &s, &["upgrade", "shop-2"]);
        assert_eq!(up.code, 2);
        assert!(up.stderr.contains("--allow-changed"), "{}", up.stderr);
        let up = ferry(dir, db, &s, &["upgrade", "shop-2", "--allow-changed"]);
        assert_eq!(up.code, 0, "{}", up.stderr);
        let h: serde_json::Value =
            serde_json::from_str(&ferry(dir, db, &s, &["history", "--json"]).stdout).unwrap();
        assert_eq!(h[0]["revision"], "shop-2");
        assert_eq!(h[0]["note"], "allow-changed");
    });
}

/// `upgrade --sql` prints revisions that read the database too (with the values they
/// read as literals), and their ledger writes, without changing the database.
#[test]
fn sql_prints_every_revision_with_its_ledger_writes() {
    each_backend("sql", |dir, db| {
        let s = fixture();
        let before = ferry(dir, db, &s, &["digest"]).stdout;
        let out = ferry(dir, db, &s, &["upgrade", "--sql"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        for expected in [
            "revisions, in order: ",
            "CREATE INDEX item_name ON item (name);",
            "ferry_history (revision, tree, direction",
            "'audit-1'",
            "COMMIT;",
        ] {
            assert!(out.stdout.contains(expected), "{expected}: {}", out.stdout);
        }
        assert_eq!(ferry(dir, db, &s, &["digest"]).stdout, before);
        assert_eq!(
            ferry(dir, db, &s, &["history", "--json"]).stdout.trim(),
            "[]"
        );
    });
}

#[test]
fn unlock_frees_only_a_dead_holders_lock() {
    each_backend("unlock", |dir, db| {
        let s = fixture();
        let out = ferry(dir, db, &s, &["unlock"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(out.stdout.contains("nothing to do"));
        assert_eq!(ferry(dir, db, &s, &["upgrade", "shop-1"]).code, 0);
        // A stale record, as a killed migrator leaves it.
        sql(db, &["INSERT INTO ferry_lock (id, host, pid, username, since, heartbeat) VALUES (1, 'gone', 999999, 'nobody', 0, 0)"]);
        let out = ferry(dir, db, &s, &["unlock"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            out.stdout.contains("nobody@gone pid 999999"),
            "{}",
            out.stdout
        );
        // A live holder: this test process.
        let url = ferry::backend::DbUrl::parse(db).unwrap();
        let mut holder = ferry::backend::connect(&url).unwrap();
        let me = ferry::backend::LockHolder {
            host: "here".into(),
            pid: std::process::id(),
            user: "test".into(),
            since: 0,
        };
        assert_eq!(
            holder.try_lock(&me).unwrap(),
            ferry::backend::LockAttempt::Acquired
        );
        let out = ferry(dir, db, &s, &["unlock"]);
        assert_eq!(out.code, 3, "{}", out.stderr);
        assert!(
            out.stderr.contains("held by a live migrator"),
            "{}",
            out.stderr
        );
        let out = ferry(dir, db, &s, &["upgrade"]);
        assert_eq!(out.code, 3, "{}", out.stderr);
        holder.unlock().unwrap();
    });
}

#[test]
fn status_names_a_live_holder_and_leaves_it_the_lock() {
    each_backend("status_holder", |dir, db| {
        let s = fixture();
        assert_eq!(ferry(dir, db, &s, &["upgrade", "shop-1"]).code, 0);
        // A live holder (this test process), with its record as a migrator writes it.
        let url = ferry::backend::DbUrl::parse(db).unwrap();
        let mut holder = ferry::backend::connect(&url).unwrap();
        let me = ferry::backend::LockHolder {
            host: "here".into(),
            pid: std::process::id(),
            user: "test".into(),
            since: 0,
        };
        assert_eq!(
            holder.try_lock(&me).unwrap(),
            ferry::backend::LockAttempt::Acquired
        );
        let record = format!(
            "INSERT INTO ferry_lock (id, host, pid, username, since, heartbeat) \
             VALUES (1, 'here', {}, 'test', 0, 0)",
            std::process::id()
        );
        sql(db, &[&record]);
        // PostgreSQL: the holder's advisory lock, as pg_locks shows it.
        let advisory = |c: &mut dyn ferry::backend::Connection, pid: i64| {
            let sql = format!(
                "SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
                 AND pid = {pid}"
            );
            match c.query(&sql, &[]).unwrap().rows[0][0] {
                ferry::backend::Value::Int(n) => n,
                ref v => panic!("{v:?}"),
            }
        };
        let pg = holder.dialect() == ferry::backend::Dialect::Postgres;
        let holder_pid = if pg {
            match holder.query("SELECT pg_backend_pid()", &[]).unwrap().rows[0][0] {
                ferry::backend::Value::Int(n) => n,
                ref v => panic!("{v:?}"),
            }
        } else {
            0
        };
        let mut watcher = ferry::backend::connect(&url).unwrap();
        if pg {
            assert_eq!(advisory(watcher.as_mut(), holder_pid), 1);
        }
        for _ in 0..2 {
            let out = ferry(dir, db, &s, &["status"]);
            assert_eq!(out.code, 0, "{}", out.stderr);
            assert!(
                out.stdout
                    .contains(&format!("locked by test@here pid {}", std::process::id())),
                "{}",
                out.stdout
            );
        }
        // The holder still holds the lock: pg_locks shows it, and nobody else can take it.
        if pg {
            assert_eq!(advisory(watcher.as_mut(), holder_pid), 1);
        }
        match watcher.try_lock(&me).unwrap() {
            ferry::backend::LockAttempt::HeldBy(_) => {}
            other => panic!("status disturbed the holder: {other:?}"),
        }
        let out = ferry(dir, db, &s, &["upgrade"]);
        assert_eq!(out.code, 3, "{}", out.stderr);
        // Released, the same record is stale: status names no holder.
        holder.unlock().unwrap();
        let out = ferry(dir, db, &s, &["status"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(!out.stdout.contains("locked by"), "{}", out.stdout);
    });
}

fn v1_attributes(db: &str, datasets_version: &str) {
    let p = "lsst.daf.butler.registry";
    let rows = [
        (
            "attributes",
            format!("{p}.attributes.DefaultButlerAttributeManager"),
            "1.0.0",
        ),
        (
            "collections",
            format!("{p}.collections.synthIntKey.SynthIntKeyCollectionManager"),
            "2.0.0",
        ),
        (
            "datasets",
            format!("{p}.datasets.byDimensions.ByDimensionsDatasetRecordStorageManager"),
            datasets_version,
        ),
        (
            "datastores",
            format!("{p}.bridge.monolithic.MonolithicDatastoreRegistryBridgeManager"),
            "0.2.0",
        ),
        (
            "dimensions",
            format!("{p}.dimensions.static.StaticDimensionRecordStorageManager"),
            "6.0.2",
        ),
    ];
    let mut stmts = vec![
        "CREATE TABLE butler_attributes (name VARCHAR(1024) PRIMARY KEY, value TEXT NOT NULL)".to_string(),
        "INSERT INTO butler_attributes VALUES ('config:dimensions.json', '{\"namespace\": \"daf_butler\", \"version\": 0}')".to_string(),
    ];
    for (c, class, v) in rows {
        stmts.push(format!(
            "INSERT INTO butler_attributes VALUES ('config:registry.managers.{c}', '{class}')"
        ));
        stmts.push(format!(
            "INSERT INTO butler_attributes VALUES ('version:{class}', '{v}')"
        ));
    }
    let refs: Vec<&str> = stmts.iter().map(String::as_str).collect();
    sql(db, &refs);
}

#[test]
fn adopt_stamps_a_v1_repository_created_without_ferry() {
    each_backend("adopt", |dir, db| {
        let s = reference_scripts();
        v1_attributes(db, "1.0.0");
        let out = ferry(dir, db, &s, &["adopt"]);
        assert_eq!(out.code, 0, "{}", out.stderr);
        assert!(
            out.stdout.contains("probe datasets: datasets-int-1.0.0"),
            "{}",
            out.stdout
        );
        let st: serde_json::Value =
            serde_json::from_str(&ferry(dir, db, &s, &["status", "--json"]).stdout).unwrap();
        let current = |tree: &str| {
            st["trees"]
                .as_array()
                .unwrap()
                .iter()
                .find(|t| t["tree"] == tree)
                .unwrap()["current"]
                .clone()
        };
        assert_eq!(
            current("datasets"),
            serde_json::json!(["datasets-int-1.0.0"])
        );
        assert_eq!(
            current("dimensions-config"),
            serde_json::json!(["dimensions-config-0"])
        );
        assert_eq!(
            current("collections"),
            serde_json::json!(["collections-2.0.0"])
        );
        // A second adopt refuses: the ledger is there now.
        let again = ferry(dir, db, &s, &["adopt"]);
        assert_eq!(again.code, 2);
        assert!(
            again.stderr.contains("already has a Ferry ledger"),
            "{}",
            again.stderr
        );
    });
}

#[test]
fn adopt_refuses_unknown_manager_versions_and_strangers() {
    each_backend("adoptbad", |dir, db| {
        let s = reference_scripts();
        v1_attributes(db, "0.9.9");
        let out = ferry(dir, db, &s, &["adopt"]);
        assert_eq!(out.code, 2, "{}", out.stdout);
        assert!(
            out.stderr.contains("unknown datasets manager"),
            "{}",
            out.stderr
        );
        assert_eq!(
            ferry(dir, db, &s, &["history", "--json"]).stdout.trim(),
            "[]"
        );
    });
    let dir = tempfile::tempdir().unwrap();
    let db = "sqlite:repo.db";
    sql(
        &format!("sqlite:{}", dir.path().join("repo.db").display()),
        &["CREATE TABLE mystery (id INTEGER)"],
    );
    let out = ferry(dir.path(), db, &reference_scripts(), &["adopt"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("no probe recognised"), "{}", out.stderr);
}

#[test]
fn show_plan_heads_graph() {
    let dir = tempfile::tempdir().unwrap();
    let db = "sqlite:repo.db";
    let s = fixture();
    let show = ferry(dir.path(), db, &s, &["show", "shop-2"]);
    assert_eq!(show.code, 0);
    assert!(
        show.stdout.contains("parents         shop-1"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.contains("online-safe     yes"),
        "{}",
        show.stdout
    );
    assert!(
        show.stdout.contains("state           pending"),
        "{}",
        show.stdout
    );
    let heads: serde_json::Value =
        serde_json::from_str(&ferry(dir.path(), db, &s, &["heads", "--json"]).stdout).unwrap();
    assert_eq!(heads["shop"], serde_json::json!(["shop-2"]));
    let plan: serde_json::Value =
        serde_json::from_str(&ferry(dir.path(), db, &s, &["plan", "--json"]).stdout).unwrap();
    let ids: Vec<&str> = plan["revisions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["revision"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["shop-1", "audit-1", "shop-2"]);
    assert_eq!(plan["revisions"][1]["downgradable"], false);
    let text = ferry(dir.path(), db, &s, &["plan", "shop@head"]).stdout;
    assert!(
        text.contains("1 revision(s) need the repository to be idle"),
        "{text}"
    );
    let graph = ferry(dir.path(), db, &s, &["graph"]).stdout;
    assert!(
        graph.contains("* shop-2  2  Index item names  (head)"),
        "{graph}"
    );
    assert_eq!(ferry(dir.path(), db, &s, &["show", "nope"]).code, 2);
    let merge =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/trees/merge/scripts");
    let graph = ferry(dir.path(), db, &merge, &["graph"]).stdout;
    assert!(
        graph.contains("| \\\n") && graph.contains("| /\n"),
        "{graph}"
    );
}

#[test]
fn new_writes_a_revision_after_the_head() {
    let dir = tempfile::tempdir().unwrap();
    let db = "sqlite:repo.db";
    let s = copy_fixture(dir.path());
    let out = ferry(dir.path(), db, &s, &["new", "shop", "-m", "Add price"]);
    assert_eq!(out.code, 0, "{}", out.stderr);
    let text = std::fs::read_to_string(s.join("shop/shop-3.rhai")).unwrap();
    assert!(text.contains("const PARENTS = [\"shop-2\"];"), "{text}");
    assert!(text.contains("const MESSAGE = \"Add price\";"), "{text}");
    let heads: serde_json::Value =
        serde_json::from_str(&ferry(dir.path(), db, &s, &["heads", "--json"]).stdout).unwrap();
    assert_eq!(heads["shop"], serde_json::json!(["shop-3"]));
    let out = ferry(dir.path(), db, &s, &["new", "stock", "-m", "x"]);
    assert_eq!(out.code, 2);
    assert!(out.stderr.contains("--new-tree"), "{}", out.stderr);
    let out = ferry(
        dir.path(),
        db,
        &s,
        &["new", "stock", "-m", "x", "--new-tree"],
    );
    assert_eq!(out.code, 0, "{}", out.stderr);
    assert!(s.join("stock/stock-1.rhai").exists());
}
