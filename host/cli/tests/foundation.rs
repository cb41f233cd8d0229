//! The foundation, end to end through the `ferry` binary, on SQLite and PostgreSQL:
//! discovery, the graph, the ledger, applying, failure and rerun, the lock, URLs and
//! the command line's output. Each scenario runs on a fresh SQLite file and on a fresh
//! PostgreSQL schema (`FERRY_TEST_PG_URL`), and checks what the database holds.

mod common;

use common::*;
use sha2::{Digest, Sha256};

fn strs(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("{v} is not an array"))
        .iter()
        .map(|s| s.as_str().expect("string").to_string())
        .collect()
}

fn position(order: &[String], revision: &str) -> usize {
    order
        .iter()
        .position(|r| r == revision)
        .unwrap_or_else(|| panic!("{revision} not applied: {order:?}"))
}

// --- applying trees ---

#[test]
fn linear_upgrade_status_history_check() {
    for_each_backend("linear_upgrade_status_history_check", |db| {
        let ferry = db.ferry().tree("linear");
        // Before: nothing applied, status does not create the ledger, check says behind.
        ferry
            .run(["status"])
            .success()
            .stdout_has("nothing applied")
            .stdout_has("alpha-3");
        assert_eq!(db.ferry_tables(), Vec::<String>::new(), "[{}]", db.name());
        ferry.run(["check"]).code(3).stdout_has("not at heads");

        ferry
            .run(["upgrade"])
            .success()
            .stdout_has("upgrade alpha-3: done");
        assert!(db.has_table("alpha_item") && db.has_table("alpha_label"));
        assert_eq!(db.count("alpha_item"), 1);

        let status = ferry.run(["status", "--json"]).success().json();
        let tree = &status["trees"][0];
        assert_eq!(tree["tree"], "alpha");
        assert_eq!(strs(&tree["current"]), ["alpha-3"]);
        assert_eq!(strs(&tree["heads"]), ["alpha-3"]);
        assert_eq!(tree["version"], "1.2.0");
        assert_eq!(tree["pending"].as_array().map(Vec::len), Some(0));
        let text = ferry.run(["status"]).success();
        let row = text
            .stdout
            .lines()
            .find(|l| l.starts_with("alpha "))
            .expect("a row for tree alpha");
        let cells: Vec<&str> = row.split_whitespace().collect();
        assert_eq!(cells, ["alpha", "alpha-3", "1.2.0", "alpha-3", "0"]);

        assert_eq!(db.applied_in_order(), ["alpha-1", "alpha-2", "alpha-3"]);
        assert_eq!(
            db.history().len(),
            3,
            "[{}] one row per revision",
            db.name()
        );
        for rev in ["alpha-1", "alpha-2", "alpha-3"] {
            assert_eq!(db.revision_state(rev).as_deref(), Some("applied"));
        }
        ferry.run(["check"]).success().stdout_has("at heads");

        // Again: nothing to do, nothing recorded.
        ferry.run(["upgrade"]).success().stdout_has("nothing to do");
        assert_eq!(db.history().len(), 3);
        assert_eq!(db.count("alpha_item"), 1);
    });
}

#[test]
fn history_records_checksum_times_and_actor() {
    for_each_backend("history_records_checksum_times_and_actor", |db| {
        let ferry = db.ferry().tree("linear");
        db.ferry()
            .tree("linear")
            .env("USER", "ann")
            .run(["upgrade", "alpha-1"])
            .success();
        // Without USER and LOGNAME (cron, systemd), the process's account is recorded.
        db.ferry()
            .tree("linear")
            .env("USER", "")
            .env("LOGNAME", "")
            .run(["upgrade", "alpha-2"])
            .success();
        ferry.run(["check"]).code(3);
        let history = ferry.run(["history", "--json"]).success().json();
        let rows = history.as_array().expect("history is an array");
        assert_eq!(rows.len(), 2);
        // Newest first.
        assert_eq!(rows[0]["revision"], "alpha-2");
        assert_eq!(rows[1]["revision"], "alpha-1");
        let script = fixture("linear").join("scripts/alpha/002_label.rhai");
        let sha = format!("{:x}", Sha256::digest(std::fs::read(&script).unwrap()));
        let row = &rows[0];
        assert_eq!(row["checksum"], sha.as_str());
        assert_eq!(row["tree"], "alpha");
        assert_eq!(row["direction"], "upgrade");
        assert_eq!(row["outcome"], "applied");
        assert!(row["error"].is_null());
        let started = row["started_at"].as_i64().expect("started_at");
        let finished = row["finished_at"].as_i64().expect("finished_at");
        assert!(started > 1_600_000_000 && finished >= started);
        assert!(row["duration_ms"].as_i64().expect("duration_ms") >= 0);
        assert!(!row["host"].as_str().expect("host").is_empty());
        let account = std::process::Command::new("id")
            .arg("-un")
            .output()
            .unwrap();
        let account = String::from_utf8(account.stdout).unwrap();
        assert_eq!(row["username"], account.trim());
        assert_eq!(rows[1]["username"], "ann");
        assert!(row["pid"].as_i64().expect("pid") > 0);
        // The JSON agrees with the table it came from.
        let stored = db.query("SELECT checksum FROM ferry_history WHERE revision = 'alpha-2'");
        assert_eq!(stored, [[Some(sha)]]);

        let text = ferry.run(["history"]).success();
        for col in ["STARTED", "REVISION", "OUTCOME", "BY"] {
            assert!(text.stdout.contains(col), "{}", text.stdout);
        }
    });
}

#[test]
fn status_json_has_documented_fields() {
    for_each_backend("status_json_has_documented_fields", |db| {
        let status = db.ferry().tree("cross_tree").run(["status", "--json"]);
        let v = status.success().json();
        for key in [
            "database",
            "ledger",
            "trees",
            "locked_by",
            "changed",
            "unknown",
        ] {
            assert!(v.get(key).is_some(), "status JSON lacks {key}: {v}");
        }
        assert_eq!(v["ledger"], false);
        let trees = v["trees"].as_array().expect("trees");
        assert_eq!(trees.len(), 2);
        for t in trees {
            for key in [
                "tree",
                "current",
                "version",
                "heads",
                "pending",
                "unfinished",
            ] {
                assert!(t.get(key).is_some(), "tree JSON lacks {key}: {t}");
            }
        }
        assert_eq!(
            strs(&trees[0]["pending"]),
            ["alpha-1", "alpha-2", "alpha-3"]
        );
    });
}

#[test]
fn cross_tree_dependency_order() {
    for_each_backend("cross_tree_dependency_order", |db| {
        let ferry = db.ferry().tree("cross_tree");
        // Only beta's head: pulls in alpha up to alpha-2 (beta-1 DEPENDS_ON it), not alpha-3.
        ferry.run(["upgrade", "beta@head"]).success();
        let order = db.applied_in_order();
        assert_eq!(order.len(), 4, "[{}] {order:?}", db.name());
        assert!(position(&order, "alpha-2") < position(&order, "beta-1"));
        assert!(position(&order, "alpha-1") < position(&order, "alpha-2"));
        assert!(position(&order, "beta-1") < position(&order, "beta-2"));
        assert!(!order.contains(&"alpha-3".to_string()));
        assert!(db.has_table("beta_note") && !db.has_table("nothing"));
        assert_eq!(
            db.count("alpha_item"),
            0,
            "alpha-3 seeds; it must not have run"
        );

        ferry.run(["upgrade"]).success().stdout_has("alpha-3");
        assert_eq!(db.count("alpha_item"), 1);
        assert_eq!(db.history().len(), 5);
        ferry.run(["check"]).success();
    });
}

#[test]
fn merge_tree() {
    for_each_backend("merge_tree", |db| {
        let ferry = db.ferry().tree("merge");
        ferry.run(["upgrade"]).success();
        let order = db.applied_in_order();
        assert_eq!(order.len(), 4, "[{}] {order:?}", db.name());
        assert_eq!(order[0], "gamma-1");
        assert_eq!(order[3], "gamma-2");
        for t in ["gamma_a", "gamma_b", "gamma_c", "gamma_merged"] {
            assert!(db.has_table(t), "[{}] {t} missing", db.name());
        }
        let v = ferry.run(["status", "--json"]).success().json();
        assert_eq!(strs(&v["trees"][0]["current"]), ["gamma-2"]);
        assert_eq!(v["trees"][0]["version"], "2.0.0");
        ferry.run(["check"]).success();
    });
}

fn check_plugin_applied(db: &TestDb) {
    let order = db.applied_in_order();
    assert_eq!(order.len(), 3, "[{}] {order:?}", db.name());
    assert!(position(&order, "datasets-1") < position(&order, "obs_test-1"));
    assert!(db.has_table("dataset") && db.has_table("dataset_uuid"));
    assert!(db.has_table("obs_test_exposure"));
}

#[test]
fn plugin_root_with_repeated_scripts() {
    for_each_backend("plugin_root_with_repeated_scripts", |db| {
        let root = fixture("plugin");
        let ferry = db
            .ferry()
            .scripts(root.join("scripts"))
            .scripts(root.join("plugins/obs_test"));
        ferry
            .run(["heads"])
            .success()
            .stdout_has("obs_test: obs_test-1");
        ferry.run(["upgrade"]).success();
        check_plugin_applied(db);
        ferry.run(["check"]).success();
    });
}

#[test]
fn plugin_root_with_ferry_path() {
    for_each_backend("plugin_root_with_ferry_path", |db| {
        let root = fixture("plugin");
        let path = format!(
            "{}:{}",
            root.join("scripts").display(),
            root.join("plugins/obs_test").display()
        );
        let ferry = db.ferry().env("FERRY_PATH", path);
        ferry.run(["upgrade", "obs_test@head"]).success();
        let order = db.applied_in_order();
        assert_eq!(order, ["datasets-1", "obs_test-1"], "[{}]", db.name());
        ferry.run(["upgrade"]).success();
        check_plugin_applied(db);
    });
}

#[test]
fn default_roots_are_scripts_and_plugins_of_the_working_directory() {
    for_each_backend("default_roots", |db| {
        // A working directory laid out like a repository checkout.
        let root = fixture("plugin");
        copy_dir(&root.join("scripts"), &db.dir().join("scripts"));
        copy_dir(&root.join("plugins"), &db.dir().join("plugins"));
        db.ferry().run(["upgrade"]).success();
        check_plugin_applied(db);
    });
}

fn copy_dir(from: &std::path::Path, to: &std::path::Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

// --- broken trees ---

/// Each broken fixture, and the file names its error must mention.
const BROKEN: &[(&str, &[&str])] = &[
    ("broken_cycle", &["001_a.rhai", "002_b.rhai", "003_c.rhai"]),
    (
        "broken_duplicate",
        &["001_create.rhai:2", "001_create_again.rhai:2"],
    ),
    ("broken_missing_field", &["001_create.rhai", "MESSAGE"]),
    ("broken_mistyped_field", &["001_create.rhai:4", "PARENTS"]),
    ("broken_syntax", &["002_broken.rhai:10"]),
    ("broken_unknown_dep", &["beta/001_create.rhai:6", "alpha-9"]),
    ("broken_unknown_parent", &["002_orphan.rhai:4", "alpha-0"]),
];

#[test]
fn broken_trees_exit_2_name_the_file_and_touch_nothing() {
    for (scenario, needles) in BROKEN {
        for_each_backend(scenario, |db| {
            // A repository that already holds data of its own.
            db.execute("CREATE TABLE keep_me (id INTEGER PRIMARY KEY)");
            for cmd in ["upgrade", "status", "check"] {
                let mut run = db.ferry().tree(scenario).run([cmd]).code(2);
                for n in *needles {
                    run = run.stderr_has(n);
                }
            }
            assert_eq!(db.tables(), ["keep_me"], "[{}] {scenario}", db.name());
        });
    }
}

#[test]
fn missing_root_exits_2_and_names_it() {
    for_each_backend("missing_root", |db| {
        db.ferry()
            .scripts(db.dir().join("no_such_root"))
            .run(["upgrade"])
            .code(2)
            .stderr_has("no_such_root");
        assert!(db.ferry_tables().is_empty());
    });
}

#[test]
fn two_heads_allowed_but_tree_head_is_ambiguous() {
    for_each_backend("two_heads", |db| {
        let ferry = db.ferry().tree("broken_two_heads");
        ferry
            .run(["upgrade", "alpha@head"])
            .code(2)
            .stderr_has("ambiguous")
            .stderr_has("alpha-left")
            .stderr_has("alpha-right");
        assert!(!db.has_table("alpha_item"), "[{}] nothing ran", db.name());
        // Refused before anything ran: not even the ledger is created.
        assert!(db.ferry_tables().is_empty(), "[{}] no ledger", db.name());

        ferry
            .run(["heads"])
            .success()
            .stdout_has("alpha-left, alpha-right");
        ferry.run(["upgrade"]).success();
        assert!(db.has_table("alpha_left") && db.has_table("alpha_right"));
        assert_eq!(db.applied_in_order()[0], "alpha-1");
        assert_eq!(db.history().len(), 3);
        ferry.run(["check"]).success();
    });
}

// --- a failing revision, then the fixed one ---

#[test]
fn failing_revision_rolls_back_and_fixed_rerun_applies_it() {
    for_each_backend("failing_revision", |db| {
        let failed = db.ferry().tree("failing").run(["upgrade"]).code(1);
        // The error names the script position: file:line:column of the failing call.
        let failed = failed
            .stderr_has("002_fill.rhai:13:")
            .stderr_has("alpha_tagz")
            .stderr_has("alpha-2");
        assert!(
            failed.stdout.contains("alpha-1: done"),
            "alpha-1 ran before the failure: {}",
            failed.stdout
        );
        // alpha-1 stays applied; alpha-2's table was rolled back with its failure.
        assert!(db.has_table("alpha_item"));
        assert!(
            !db.has_table("alpha_tag"),
            "[{}] not rolled back",
            db.name()
        );
        assert_eq!(
            db.history(),
            [
                ("alpha-1".into(), "upgrade".into(), "applied".into()),
                ("alpha-2".into(), "upgrade".into(), "failed".into()),
            ]
        );
        let error = db.query("SELECT error FROM ferry_history WHERE outcome = 'failed'");
        let error = error[0][0].clone().expect("error text recorded");
        assert!(error.contains("alpha_tagz"), "{error}");
        assert!(error.contains("002_fill.rhai:13:"), "{error}");
        assert_eq!(db.revision_state("alpha-1").as_deref(), Some("applied"));
        assert_eq!(db.revision_state("alpha-2").as_deref(), Some("failed"));

        let status = db.ferry().tree("failing").run(["status", "--json"]).json();
        let unfinished = &status["trees"][0]["unfinished"];
        assert_eq!(unfinished[0]["revision"], "alpha-2", "{status}");
        assert_eq!(unfinished[0]["state"], "failed", "{status}");
        db.ferry().tree("failing").run(["check"]).code(3);

        // The fixed script (same revision id) applies on the next run.
        let fixed = db.ferry().tree("fixed");
        fixed
            .run(["upgrade"])
            .success()
            .stdout_has("upgrade alpha-2: done");
        assert!(
            !fixed.run(["history"]).stdout.is_empty(),
            "history prints a table"
        );
        assert_eq!(db.count("alpha_tag"), 2);
        assert_eq!(db.applied_in_order(), ["alpha-1", "alpha-2"]);
        assert_eq!(db.history().len(), 3);
        assert_eq!(db.revision_state("alpha-2").as_deref(), Some("applied"));
        fixed.run(["check"]).success();
    });
}

// --- one migrator at a time ---

#[test]
fn concurrent_upgrades_apply_each_revision_once() {
    for_each_backend("concurrent_upgrades", |db| {
        let ferry = db.ferry().tree("slow").opt("--lock-timeout").opt("120");
        let a = ferry.spawn(["upgrade"]);
        let b = ferry.spawn(["upgrade"]);
        let (a, b) = (a.finish(), b.finish());
        for r in [&a, &b] {
            assert!(
                r.code == 0 || r.code == 3,
                "unexpected exit {}: {}\n{}",
                r.code,
                r.stdout,
                r.stderr
            );
        }
        let appliers = [&a, &b]
            .iter()
            .filter(|r| r.stdout.contains("upgrade bulk-2: done"))
            .count();
        assert_eq!(appliers, 1, "[{}] exactly one applies bulk-2", db.name());
        let other = if a.stdout.contains("bulk-2: done") {
            &b
        } else {
            &a
        };
        assert!(
            other.stdout.contains("nothing to do") || other.code == 3,
            "the other waited and found nothing to do: {}\n{}",
            other.stdout,
            other.stderr
        );
        assert_eq!(db.applied_in_order(), ["bulk-1", "bulk-2", "bulk-3"]);
        assert_eq!(db.history().len(), 3, "[{}] each revision once", db.name());
        assert_eq!(db.scalar("SELECT n FROM bulk_count"), 500_000);
    });
}

#[test]
fn second_upgrade_with_lock_timeout_0_exits_3_naming_the_holder() {
    for_each_backend("lock_timeout_0", |db| {
        let ferry = db.ferry().tree("slow");
        let mut first = ferry.spawn(["upgrade"]);
        // The first migrator holds the lock once it starts a revision; bulk-2 takes a while.
        first.wait_for_stderr("upgrade bulk-2 ...");
        let second = ferry
            .run(["--lock-timeout", "0", "upgrade"])
            .code(3)
            .stderr_has("locked");
        assert!(
            second.stderr.contains(&format!("pid {}", first.pid())),
            "the holder is named: {}",
            second.stderr
        );
        first.finish().success();
        assert_eq!(db.history().len(), 3, "[{}]", db.name());
        assert_eq!(db.count("bulk_row"), 500_000);
        // Now free: a run with timeout 0 goes through.
        ferry.run(["upgrade"]).success().stdout_has("nothing to do");
    });
}

// --- database URLs ---

#[test]
fn unsupported_url_exits_2() {
    let db = TestDb::sqlite();
    db.ferry()
        .tree("linear")
        .db_url("mysql://x")
        .run(["status"])
        .code(2)
        .stderr_has("unsupported database URL")
        .stderr_has("mysql://x");
}

#[test]
fn unreachable_postgres_exits_2() {
    let db = TestDb::sqlite();
    db.ferry()
        .tree("linear")
        .db_url("postgresql://postgres@127.0.0.1:1/test")
        .run(["upgrade"])
        .code(2)
        .stderr_has("cannot open database")
        .stderr_has("127.0.0.1:1");
}

#[test]
fn sqlite_in_a_missing_directory_exits_2() {
    let db = TestDb::sqlite();
    let missing = db.dir().join("no/such/dir/repo.sqlite");
    db.ferry()
        .tree("linear")
        .db_url(&format!("sqlite:{}", missing.display()))
        .run(["upgrade"])
        .code(2)
        .stderr_has("does not exist");
    assert!(!missing.exists());
}

#[test]
fn missing_postgres_schema_exits_2() {
    let Some(base) = pg_base_url() else {
        eprintln!("missing_postgres_schema_exits_2: skipped, FERRY_TEST_PG_URL is not set");
        return;
    };
    let sep = if base.contains('?') { '&' } else { '?' };
    let url = format!("{base}{sep}schema=ferry_no_such_schema");
    let db = TestDb::sqlite();
    for cmd in ["status", "upgrade"] {
        db.ferry()
            .tree("linear")
            .db_url(&url)
            .run([cmd])
            .code(2)
            .stderr_has("schema ferry_no_such_schema does not exist");
    }
}

#[test]
fn ferry_db_environment_variable() {
    for_each_backend("ferry_db_env", |db| {
        // No --db: the helper always passes one, so run the binary by hand here.
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .current_dir(db.dir())
            .env("FERRY_DB", db.url())
            .env_remove("FERRY_PATH")
            .arg("--scripts")
            .arg(fixture("linear").join("scripts"))
            .arg("upgrade")
            .output()
            .unwrap();
        assert!(out.status.success(), "{out:?}");
        assert_eq!(db.applied_in_order(), ["alpha-1", "alpha-2", "alpha-3"]);
    });
}

// --- the command line ---

#[test]
fn help_for_every_command() {
    let db = TestDb::sqlite();
    let top = db.ferry().run(["--help"]).success();
    for cmd in [
        "status",
        "history",
        "heads",
        "upgrade",
        "downgrade",
        "check",
    ] {
        assert!(
            top.stdout.contains(cmd),
            "--help lists {cmd}: {}",
            top.stdout
        );
        db.ferry()
            .run([cmd, "--help"])
            .success()
            .stdout_has("Usage: ferry");
        db.ferry().run(["help", cmd]).success().stdout_has("Usage");
    }
    assert!(top.stdout.contains("--db") && top.stdout.contains("--scripts"));
    db.ferry().run(["no-such-command"]).code(2);
    assert!(
        !db.dir().join("repo.sqlite").exists(),
        "--help opens nothing"
    );
}
