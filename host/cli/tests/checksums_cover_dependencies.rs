//! A revision's checksum covers what it runs: its own file, the `lib/` modules it
//! imports (transitively) and the provider files of the hooks it declares. An edit of
//! any of them after the revision was applied is named by path in `check`, `status`,
//! `verify` and `upgrade`'s refusal; `ferry show REV` prints the diff against the text
//! that ran; `ferry accept REV --reason TEXT [--by NAME]` records the files as they are
//! now, with who and why in the history. A ledger written before Ferry recorded these
//! (version 1) keeps working and is brought to version 2 by the next write.
//!
//! The scripts: a core tree whose revision calls the `populate_amplifier` hook, and a
//! new instrument team's plugin `obs_test` (instrument TST) that provides the hook for
//! TST through a `lib/` module and has a revision of its own importing another module.
//! They are written into a temporary folder per test, so that the test can edit them.

mod common;
use common::*;
use std::path::PathBuf;

const CORE: &str = r#"const REVISION = "dimensions-1";
const TREE = "dimensions";
const PARENTS = [];
const VERSION = "1";
const DEPENDS_ON = [];
const MESSAGE = "amplifiers, populated per instrument";
const HOOKS = ["populate_amplifier"];
fn upgrade(db) {
    db.execute("CREATE TABLE amplifier (instrument VARCHAR(32) NOT NULL, name VARCHAR(32) NOT NULL, PRIMARY KEY (instrument, name))", []);
    for key in hooks::keys("populate_amplifier") {
        hooks::run("populate_amplifier", key, #{});
    }
}
fn downgrade(db) { db.execute("DROP TABLE amplifier", []); }
"#;

const HOOK: &str = r#"const HOOK = "populate_amplifier";
const KEY = "TST";
fn run(db, args) {
    import "tst_geometry" as geometry;
    for name in geometry::amplifiers() {
        db.execute("INSERT INTO amplifier (instrument, name) VALUES (?, ?)", ["TST", name]);
    }
}
"#;

const GEOMETRY: &str = "fn amplifiers() { [\"C00\", \"C01\"] }\n";

const FILTERS: &str = r#"const REVISION = "obs_test-1";
const TREE = "obs_test";
const PARENTS = [];
const VERSION = "1";
const DEPENDS_ON = ["dimensions-1"];
const MESSAGE = "TST filters";
fn upgrade(db) {
    import "tst_names" as names;
    db.execute("CREATE TABLE tst_filter (band VARCHAR(8) PRIMARY KEY)", []);
    for band in names::bands() {
        db.execute("INSERT INTO tst_filter (band) VALUES (?)", [band]);
    }
}
fn downgrade(db) { db.execute("DROP TABLE tst_filter", []); }
"#;

const NAMES: &str = "fn bands() { [\"g\", \"r\"] }\n";

/// The two roots, written under a fresh temporary folder.
struct Roots {
    _dir: tempfile::TempDir,
    core: PathBuf,
    plugin: PathBuf,
}

impl Roots {
    fn new() -> Roots {
        let dir = tempfile::tempdir().unwrap();
        let core = dir.path().join("scripts");
        let plugin = dir.path().join("plugins/obs_test");
        for (path, text) in [
            (core.join("dimensions/001_amplifier.rhai"), CORE),
            (plugin.join("hooks/populate_amplifier.rhai"), HOOK),
            (plugin.join("lib/tst_geometry.rhai"), GEOMETRY),
            (plugin.join("obs_test/001_filters.rhai"), FILTERS),
            (plugin.join("lib/tst_names.rhai"), NAMES),
        ] {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, text).unwrap();
        }
        Roots {
            _dir: dir,
            core,
            plugin,
        }
    }

    fn ferry<'a>(&self, db: &'a TestDb) -> Ferry<'a> {
        db.ferry()
            .scripts(&self.core)
            .scripts(&self.plugin)
            .env("USER", "operator")
    }

    fn append(&self, relative: &str, text: &str) {
        let path = self.path(relative);
        let old = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, format!("{old}{text}")).unwrap();
    }

    fn path(&self, relative: &str) -> PathBuf {
        match relative.strip_prefix("obs_test/") {
            Some(rest) => self.plugin.join(rest),
            None => self.core.join(relative.strip_prefix("scripts/").unwrap()),
        }
    }
}

fn history(roots: &Roots, db: &TestDb) -> serde_json::Value {
    roots.ferry(db).run(["history", "--json"]).success().json()
}

#[test]
fn an_edited_hook_file_is_named_shown_and_accepted() {
    for_each_backend("checksums_hook", |db| {
        let roots = Roots::new();
        roots.ferry(db).run(["upgrade"]).success();
        assert_eq!(db.count("amplifier"), 2);
        roots
            .ferry(db)
            .run(["check"])
            .success()
            .stdout_has("at heads");
        roots.append(
            "obs_test/hooks/populate_amplifier.rhai",
            "// reviewed: TST has two amplifiers\n",
        );
        // check, status, verify and upgrade all name the file and what to do.
        roots
            .ferry(db)
            .run(["check"])
            .code(3)
            .stdout_has("changed since applied: dimensions-1")
            .stdout_has("dimensions-1: obs_test/hooks/populate_amplifier.rhai (edited)")
            .stdout_has("ferry show dimensions-1")
            .stdout_has("ferry accept dimensions-1 --reason TEXT");
        let status = roots.ferry(db).run(["status", "--json"]).success().json();
        assert_eq!(status["changed"][0], "dimensions-1");
        assert_eq!(
            status["changed_files"][0]["files"][0]["path"],
            "obs_test/hooks/populate_amplifier.rhai"
        );
        assert_eq!(status["changed_files"][0]["files"][0]["kind"], "hook");
        let verify = roots.ferry(db).run(["verify", "--json"]).json();
        let detail = verify["trees"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["tree"] == "dimensions")
            .unwrap()["detail"]
            .as_str()
            .unwrap()
            .to_string();
        assert!(
            detail.contains("obs_test/hooks/populate_amplifier.rhai (edited)"),
            "{detail}"
        );
        let before = history(&roots, db).as_array().unwrap().len();
        roots
            .ferry(db)
            .run(["upgrade"])
            .code(2)
            .stderr_has("obs_test/hooks/populate_amplifier.rhai (edited)")
            .stderr_has("ferry accept dimensions-1");
        roots
            .ferry(db)
            .run(["show", "dimensions-1"])
            .success()
            .stdout_has("hook obs_test/hooks/populate_amplifier.rhai (edited)")
            .stdout_has("--- applied/obs_test/hooks/populate_amplifier.rhai")
            .stdout_has("+++ now/obs_test/hooks/populate_amplifier.rhai")
            .stdout_has("+// reviewed: TST has two amplifiers")
            .stdout_has("ferry accept dimensions-1 --reason TEXT");
        // Accept refuses without a reason, and records nothing then.
        roots
            .ferry(db)
            .run(["accept", "dimensions-1"])
            .code(2)
            .stderr_has("accept needs --reason TEXT");
        assert_eq!(history(&roots, db).as_array().unwrap().len(), before);
        roots
            .ferry(db)
            .run([
                "accept",
                "dimensions-1",
                "--reason",
                "comment only, reviewed in PR 12",
                "--by",
                "alice",
            ])
            .success()
            .stdout_has("accepted by alice: comment only, reviewed in PR 12")
            .stdout_has("obs_test/hooks/populate_amplifier.rhai (edited)");
        let h = history(&roots, db);
        assert_eq!(h[0]["revision"], "dimensions-1");
        assert_eq!(h[0]["direction"], "accept");
        assert_eq!(h[0]["username"], "alice");
        let note = h[0]["note"].as_str().unwrap();
        assert!(note.contains("comment only, reviewed in PR 12"), "{note}");
        assert!(note.contains("populate_amplifier.rhai (edited)"), "{note}");
        roots
            .ferry(db)
            .run(["history"])
            .success()
            .stdout_has("accept");
        roots
            .ferry(db)
            .run(["check"])
            .success()
            .stdout_has("at heads");
        // Nothing ran: the amplifiers are those of the first run.
        assert_eq!(db.count("amplifier"), 2);
        // Without --by, the history names $USER.
        roots.append("obs_test/hooks/populate_amplifier.rhai", "// again\n");
        roots
            .ferry(db)
            .run(["accept", "dimensions-1", "--reason", "second look"])
            .success();
        assert_eq!(history(&roots, db)[0]["username"], "operator");
    });
}

#[test]
fn an_edited_lib_module_is_named_for_every_revision_that_uses_it() {
    for_each_backend("checksums_module", |db| {
        let roots = Roots::new();
        roots.ferry(db).run(["upgrade"]).success();
        // Imported by the plugin's own revision.
        roots.append("obs_test/lib/tst_names.rhai", "fn unused() { 0 }\n");
        let check = roots.ferry(db).run(["check"]).code(3);
        assert!(
            check
                .stdout
                .contains("obs_test-1: obs_test/lib/tst_names.rhai (edited)"),
            "{}",
            check.describe()
        );
        assert!(
            !check.stdout.contains("dimensions-1:"),
            "{}",
            check.describe()
        );
        // Imported by the hook that the core revision declares: the core revision
        // used it too.
        roots.append("obs_test/lib/tst_geometry.rhai", "// touched\n");
        roots
            .ferry(db)
            .run(["upgrade"])
            .code(2)
            .stderr_has("dimensions-1: obs_test/lib/tst_geometry.rhai (edited)")
            .stderr_has("obs_test-1: obs_test/lib/tst_names.rhai (edited)");
        roots
            .ferry(db)
            .run(["show", "obs_test-1"])
            .success()
            .stdout_has("module obs_test/lib/tst_names.rhai (edited)")
            .stdout_has("+fn unused() { 0 }");
        // A module the revision starts to use is named as such.
        std::fs::write(roots.path("obs_test/lib/tst_extra.rhai"), "fn x() { 1 }\n").unwrap();
        roots.append(
            "obs_test/lib/tst_names.rhai",
            "fn more() { import \"tst_extra\" as e; e::x() }\n",
        );
        roots
            .ferry(db)
            .run(["check"])
            .code(3)
            .stdout_has("obs_test/lib/tst_extra.rhai (now used)");
        for rev in ["obs_test-1", "dimensions-1"] {
            roots
                .ferry(db)
                .run(["accept", rev, "--reason", "helpers only"])
                .success();
        }
        roots.ferry(db).run(["check"]).success();
    });
}

#[test]
fn an_edited_revision_is_named_with_its_path_and_diff() {
    for_each_backend("checksums_revision", |db| {
        let roots = Roots::new();
        roots.ferry(db).run(["upgrade"]).success();
        roots.append("obs_test/obs_test/001_filters.rhai", "// a comment\n");
        roots
            .ferry(db)
            .run(["upgrade"])
            .code(2)
            .stderr_has("obs_test-1: obs_test/obs_test/001_filters.rhai (edited)")
            .stderr_has("--allow-changed");
        roots
            .ferry(db)
            .run(["show", "obs_test-1"])
            .success()
            .stdout_has("revision obs_test/obs_test/001_filters.rhai (edited)")
            .stdout_has("+// a comment")
            .stdout_has(" fn downgrade(db) { db.execute(\"DROP TABLE tst_filter\", []); }");
        roots
            .ferry(db)
            .run(["accept", "obs_test", "--reason", "comment"])
            .success();
        roots.ferry(db).run(["check"]).success();
        let show = roots
            .ferry(db)
            .run(["show", "obs_test-1", "--json"])
            .success()
            .json();
        assert_eq!(show["changed"], false);
        let own: Vec<&serde_json::Value> = show["record"]["sources"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["kind"] == "revision")
            .collect();
        assert_eq!(own.len(), 1, "{show}");
        assert_eq!(own[0]["path"], "obs_test/obs_test/001_filters.rhai");
    });
}

#[test]
fn accept_refuses_a_revision_that_is_not_applied() {
    for_each_backend("checksums_not_applied", |db| {
        let roots = Roots::new();
        roots.ferry(db).run(["upgrade", "dimensions-1"]).success();
        roots
            .ferry(db)
            .run(["accept", "obs_test-1", "--reason", "looked at it"])
            .code(2)
            .stderr_has("revision obs_test-1 is not applied");
        assert_eq!(db.revision_state("obs_test-1"), None);
        roots
            .ferry(db)
            .run(["accept", "no-such-rev", "--reason", "x"])
            .code(2);
    });
}

/// Turns the ledger back into what Ferry wrote before it recorded sources (version 1):
/// no `ferry_sources`, no `ferry_revisions.deps_checksum`.
fn make_ledger_version_1(db: &TestDb) {
    db.execute("DROP TABLE ferry_sources");
    db.execute("ALTER TABLE ferry_revisions DROP COLUMN deps_checksum");
    db.execute("UPDATE ferry_meta SET value = '1' WHERE key = 'ledger_version'");
}

#[test]
fn a_version_1_ledger_keeps_working_and_is_upgraded_by_the_next_write() {
    for_each_backend("checksums_ledger_v1", |db| {
        let roots = Roots::new();
        roots.ferry(db).run(["upgrade", "dimensions-1"]).success();
        make_ledger_version_1(db);
        // Read-only commands read it as it is.
        roots
            .ferry(db)
            .run(["status"])
            .success()
            .stdout_has("obs_test-1");
        assert!(!db.has_table("ferry_sources"));
        // Without a recorded dependency digest only the revision's own file is compared.
        roots.append("obs_test/hooks/populate_amplifier.rhai", "// edited\n");
        roots.append("scripts/dimensions/001_amplifier.rhai", "// edited too\n");
        roots
            .ferry(db)
            .run(["check"])
            .code(3)
            .stdout_has("dimensions-1: scripts/dimensions/001_amplifier.rhai (edited)");
        roots
            .ferry(db)
            .run(["show", "dimensions-1"])
            .success()
            .stdout_has("applied before Ferry kept the text it ran");
        // The first write brings the ledger to version 2.
        roots
            .ferry(db)
            .run(["accept", "dimensions-1", "--reason", "old ledger, reviewed"])
            .success();
        assert!(db.has_table("ferry_sources"));
        assert_eq!(
            db.query("SELECT value FROM ferry_meta WHERE key = 'ledger_version'")[0][0].as_deref(),
            Some("2")
        );
        roots.ferry(db).run(["upgrade"]).success();
        roots.ferry(db).run(["check"]).success();
        // Now the dependency digest is recorded: a hook edit is seen.
        roots.append("obs_test/hooks/populate_amplifier.rhai", "// and again\n");
        roots
            .ferry(db)
            .run(["check"])
            .code(3)
            .stdout_has("obs_test/hooks/populate_amplifier.rhai (edited)");
        let history = history(&roots, db);
        assert!(history
            .as_array()
            .unwrap()
            .iter()
            .any(|h| h["direction"] == "accept" && h["revision"] == "dimensions-1"));
    });
}

#[test]
fn accept_waits_for_the_migration_lock() {
    for_each_backend("checksums_accept_lock", |db| {
        let roots = Roots::new();
        roots.ferry(db).run(["upgrade"]).success();
        roots.append("obs_test/obs_test/001_filters.rhai", "// reviewed\n");
        let mut holder = db.connect();
        let someone = ferry::backend::LockHolder {
            host: "elsewhere".into(),
            pid: 4242,
            user: "migrator".into(),
            since: ferry::clock::now_unix(),
        };
        assert!(matches!(
            holder.try_lock(&someone).unwrap(),
            ferry::backend::LockAttempt::Acquired
        ));
        let before = history(&roots, db).as_array().unwrap().len();
        roots
            .ferry(db)
            .run([
                "--lock-timeout",
                "0",
                "accept",
                "obs_test-1",
                "--reason",
                "r",
            ])
            .code(3)
            .stderr_has("locked");
        assert_eq!(history(&roots, db).as_array().unwrap().len(), before);
        roots.ferry(db).run(["check"]).code(3);
        holder.unlock().unwrap();
        roots
            .ferry(db)
            .run([
                "--lock-timeout",
                "0",
                "accept",
                "obs_test-1",
                "--reason",
                "r",
            ])
            .success();
        roots.ferry(db).run(["check"]).success();
    });
}
