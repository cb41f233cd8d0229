//! `upgrade --sql` output applied by hand (psql for PostgreSQL, the SQLite library for
//! SQLite) reaches the same schema digest as a real upgrade; and a killed run is resumed
//! and reported correctly by `status`.

mod common;

use common::{for_each_backend, TestDb};

fn digest(db: &TestDb) -> String {
    db.ferry()
        .run(["digest"])
        .success()
        .stdout
        .trim()
        .to_string()
}

#[test]
fn sql_output_applied_by_hand_reaches_the_digest_of_a_real_upgrade() {
    for_each_backend("offline_sql", |db| {
        // The offline script for alpha-1..alpha-2, printed without touching the database.
        let printed = db
            .ferry()
            .tree("linear")
            .run(["upgrade", "--sql", "alpha-2"])
            .success()
            .stdout;
        assert!(printed.contains("CREATE TABLE alpha_item"), "{printed}");
        assert!(
            db.ferry_tables().is_empty(),
            "--sql must not create the ledger"
        );
        // Applied by hand.
        match db.schema() {
            Some(schema) => {
                let status = std::process::Command::new("psql")
                    .args([
                        "-h",
                        "127.0.0.1",
                        "-U",
                        "postgres",
                        "-d",
                        "test",
                        "-v",
                        "ON_ERROR_STOP=1",
                        "-q",
                    ])
                    .env("PGOPTIONS", format!("-c search_path={schema}"))
                    .arg("-c")
                    .arg(&printed)
                    .status()
                    .expect("psql runs");
                assert!(status.success());
            }
            None => db.connect().execute_batch(&printed).unwrap(),
        }
        let by_hand = digest(db);
        // The same revisions applied by Ferry in a second, fresh database.
        let other = match db.schema() {
            Some(_) => TestDb::postgres("offline_sql_real").unwrap(),
            None => TestDb::sqlite(),
        };
        other
            .ferry()
            .tree("linear")
            .run(["upgrade", "alpha-2"])
            .success();
        assert_eq!(by_hand, digest(&other));
    });
}

#[test]
fn a_killed_run_is_resumed_and_status_says_where_it_stopped() {
    for_each_backend("killed_status", |db| {
        // A batched revision: kill it once some batches have committed.
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("scripts/k");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(
            tree.join("k1.rhai"),
            r#"const REVISION = "k-1";
const TREE = "k";
const PARENTS = [];
const VERSION = "1";
const DEPENDS_ON = [];
const MESSAGE = "slow batches";
fn upgrade(db) {
    db.step("source", |db| {
        db.execute("CREATE TABLE src (id BIGINT PRIMARY KEY)");
        db.execute("CREATE TABLE dst (id BIGINT PRIMARY KEY)");
        db.execute("INSERT INTO src (id) WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 4000) SELECT i FROM n");
    });
    db.batches("copy", #{ table: "src", key: "id", size: 100 }, |db, b| {
        db.execute("INSERT INTO dst (id) SELECT id FROM src WHERE id > ? AND id <= ?", [b.lo, b.hi]);
        // Slow each batch down so the kill lands in the middle.
        let x = 0;
        for i in 0..20000 { x += i; }
    });
}
"#,
        )
        .unwrap();
        let scripts = tree.parent().unwrap().to_path_buf();
        let mut running = db.ferry().scripts(&scripts).spawn(["upgrade"]);
        running.wait_for_stderr("step \"copy\": 3");
        unsafe {
            libc::kill(running.pid() as i32, libc::SIGKILL);
        }
        let killed = running.finish();
        assert_ne!(killed.code, 0);
        let status = db
            .ferry()
            .scripts(&scripts)
            .run(["status"])
            .success()
            .stdout;
        // Nothing holds the lock any more: status says so instead of "running".
        assert!(status.contains("k-1 was interrupted"), "{status}");
        assert!(
            status.contains("step \"copy\" interrupted after"),
            "{status}"
        );
        assert!(status.contains("steps committed: source"), "{status}");
        let done_batches = db.scalar("SELECT batches FROM ferry_steps WHERE step = 'copy'");
        assert!(done_batches >= 3, "{done_batches}");
        assert_eq!(
            db.count("dst"),
            done_batches * 100,
            "rows match the committed cursor"
        );
        db.ferry().scripts(&scripts).run(["upgrade"]).success();
        assert_eq!(db.count("dst"), 4000);
        let status = db
            .ferry()
            .scripts(&scripts)
            .run(["status"])
            .success()
            .stdout;
        assert!(!status.contains("unfinished"), "{status}");
        db.ferry().scripts(&scripts).run(["check"]).success();
    });
}
