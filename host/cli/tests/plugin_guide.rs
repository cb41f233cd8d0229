//! The plugin author's guide (docs/PLUGINS.md) and its worked example
//! (examples/plugins/obs_test), run as the guide says: `ferry test PLUGIN_DIR` on SQLite
//! and, when `FERRY_TEST_PG_URL` is set, PostgreSQL; a failing expectation, a downgrade
//! that leaves a table behind and a broken declaration, each reported with its file
//! and line; `DIGEST` given per backend; and every complete file the guide shows.

mod common;
use common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo_root() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
        .canonicalize()
        .expect("repository root")
}

fn example() -> PathBuf {
    repo_root().join("examples/plugins/obs_test")
}

/// `ferry test ARGS...` run from the repository's root, as the guide shows it.
fn ferry_test_at_root(args: &[&str]) -> Run {
    let out = Command::new(env!("CARGO_BIN_EXE_ferry"))
        .current_dir(repo_root())
        .env_remove("FERRY_DB")
        .env_remove("FERRY_PATH")
        .env_remove("FERRY_STDLIB")
        .env("NO_COLOR", "1")
        .arg("test")
        .args(args)
        .output()
        .expect("run ferry");
    Run {
        what: format!("ferry test {}", args.join(" ")),
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// `ferry test PLUGIN` with the core roots and stdlib named explicitly (the plugin
/// being a copy outside the repository).
fn ferry_test_copy(plugin: &Path) -> Run {
    ferry_test_copy_with(plugin, &[])
}

/// [`ferry_test_copy`] with more arguments after the plugin.
fn ferry_test_copy_with(plugin: &Path, more: &[&str]) -> Run {
    let root = repo_root();
    let db = TestDb::sqlite();
    let mut f = db.ferry().no_progress().stdlib(root.join("stdlib"));
    f = f.scripts(root.join("scripts"));
    for p in ["obs_base", "obs_lsst", "obs_subaru"] {
        f = f.scripts(root.join("plugins").join(p));
    }
    let mut args = vec!["test", plugin.to_str().expect("utf-8 path")];
    args.extend(more);
    f.run(args)
}

/// A copy of the example plugin in a fresh folder, to break on purpose.
fn copy_of_example() -> tempfile::TempDir {
    fn copy(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).expect("mkdir");
        for e in std::fs::read_dir(from).expect("read_dir") {
            let e = e.expect("entry");
            let target = to.join(e.file_name());
            if e.file_type().expect("type").is_dir() {
                copy(&e.path(), &target);
            } else {
                std::fs::copy(e.path(), &target).expect("copy");
            }
        }
    }
    let dir = tempfile::tempdir().expect("tempdir");
    copy(&example(), &dir.path().join("obs_test"));
    dir
}

fn edit(path: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(path).expect("read");
    assert!(text.contains(from), "{} lacks {from:?}", path.display());
    std::fs::write(path, text.replacen(from, to, 1)).expect("write");
}

const PHASES: [&str; 9] = [
    "start",
    "upgrade",
    "expect after upgrade",
    "downgrade",
    "expect after downgrade",
    "digest after downgrade",
    "upgrade again",
    "expect after upgrade again",
    "digest after upgrade again",
];

#[test]
fn the_example_plugin_passes_ferry_test_on_every_backend() {
    let pg = pg_base_url();
    let mut args = vec!["examples/plugins/obs_test"];
    if let Some(url) = &pg {
        args.extend(["--postgres", url.as_str()]);
    } else {
        eprintln!("PostgreSQL part skipped, FERRY_TEST_PG_URL is not set");
    }
    let run = ferry_test_at_root(&args).success();
    let mut backends = vec!["sqlite"];
    backends.extend(pg.as_ref().map(|_| "postgres"));
    for backend in &backends {
        for phase in PHASES {
            let line = format!("[{backend}] {phase}: ok");
            assert!(
                run.stdout.contains(&line),
                "no {line:?}: {}",
                run.describe()
            );
        }
        for said in [
            format!("[{backend}] expect after upgrade: ok, 6 expectation(s) met"),
            format!("[{backend}] expect after downgrade: ok, 1 expectation(s) met"),
            format!("[{backend}] downgrade: ok, 2 revision(s) of obs_test undone"),
        ] {
            assert!(
                run.stdout.contains(&said),
                "no {said:?}: {}",
                run.describe()
            );
        }
    }
    assert!(
        run.stdout
            .contains(&format!("passed on {}", backends.join(" and "))),
        "{}",
        run.describe()
    );
}

#[test]
fn a_failing_expectation_names_the_declaration_file_and_line() {
    let dir = copy_of_example();
    let plugin = dir.path().join("obs_test");
    let spec = plugin.join("ferry-test.toml");
    edit(&spec, "rows = [[8]]", "rows = [[9]]");
    let text = std::fs::read_to_string(&spec).unwrap();
    let block = text.find("name = \"eight TST amplifiers in all\"").unwrap();
    let line = text[..block].matches('\n').count(); // the [[expect]] line above it
    let run = ferry_test_copy(&plugin).code(1);
    let canonical = spec.canonicalize().unwrap();
    let at = format!(
        "{}:{line}: expectation \"eight TST amplifiers in all\" failed: expected rows [[9]], found [[8]]",
        canonical.display()
    );
    assert!(run.stderr.contains(&at), "no {at:?}: {}", run.describe());
    assert!(run.stdout.contains("[sqlite] expect after upgrade: FAILED"));
    assert!(
        run.stdout.contains("failed on sqlite"),
        "{}",
        run.describe()
    );
    assert!(
        !run.stdout.contains("[sqlite] downgrade"),
        "stops at the failure"
    );

    // With --json the same message, file and line included, is the phase's detail.
    let run = ferry_test_copy_with(&plugin, &["--json"]).code(1);
    let json = run.json();
    let sqlite = &json["backends"][0];
    assert_eq!(sqlite["backend"], "sqlite", "{}", run.describe());
    let last = sqlite["phases"].as_array().and_then(|p| p.last());
    let last = last.unwrap_or_else(|| panic!("no phases: {}", run.describe()));
    assert_eq!(last["phase"], "expect after upgrade", "{last}");
    assert_eq!(last["outcome"], "failed", "{last}");
    assert!(last["error"].is_null(), "{last}");
    assert!(
        last["detail"].as_str().is_some_and(|d| d.contains(&at)),
        "no {at:?}: {last}"
    );
}

#[test]
fn a_downgrade_that_leaves_its_table_fails_the_digest_phase() {
    let dir = copy_of_example();
    let plugin = dir.path().join("obs_test");
    edit(
        &plugin.join("obs_test/obs_test-2.rhai"),
        "schema::drop_table(\"tst_filter\");",
        "db.execute(\"DELETE FROM tst_filter\");",
    );
    let run = ferry_test_copy(&plugin).code(1);
    assert!(
        run.stdout
            .contains("[sqlite] digest after downgrade: FAILED"),
        "{}",
        run.describe()
    );
    assert!(
        run.stderr
            .contains("the plugin's downgrade left part of its schema behind"),
        "{}",
        run.describe()
    );
}

#[test]
fn a_revision_that_fails_is_reported_with_its_file_and_line() {
    let dir = copy_of_example();
    let plugin = dir.path().join("obs_test");
    let file = plugin.join("obs_test/obs_test-2.rhai");
    edit(
        &file,
        "    schema::drop_table(\"tst_filter\");",
        "    throw \"cannot go back\";",
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let line = text[..text.find("throw").unwrap()].matches('\n').count() + 1;
    let run = ferry_test_copy(&plugin).code(1);
    assert!(
        run.stdout.contains("[sqlite] downgrade: FAILED"),
        "{}",
        run.describe()
    );
    assert!(run.stderr.contains("cannot go back"), "{}", run.describe());
    let at = format!("obs_test-2.rhai:{line}:5]");
    assert!(run.stderr.contains(&at), "no {at:?}: {}", run.describe());
}

/// `ferry test --json`: one JSON document for the run, on SQLite and (with
/// `FERRY_TEST_PG_URL`) PostgreSQL: every phase passed with the digests it took, then a
/// downgrade that throws, reported as a script error with its file and line, exit 1 as
/// the text form.
#[test]
fn ferry_test_json_reports_every_phase_and_a_failing_revision_with_its_line() {
    let pg = pg_base_url();
    let mut more = vec!["--json"];
    if let Some(url) = &pg {
        more.extend(["--postgres", url.as_str()]);
    } else {
        eprintln!("PostgreSQL part skipped, FERRY_TEST_PG_URL is not set");
    }
    let mut backends = vec!["sqlite"];
    backends.extend(pg.as_ref().map(|_| "postgres"));
    let dir = copy_of_example();
    let plugin = dir.path().join("obs_test");
    let names = |json: &serde_json::Value, list: &str, key: &str| -> Vec<String> {
        json[list]
            .as_array()
            .unwrap_or_else(|| panic!("no {list}: {json}"))
            .iter()
            .map(|v| v[key].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let is_sha256 = |v: &serde_json::Value| {
        v.as_str()
            .is_some_and(|s| s.len() == 64 && s.chars().all(|c| c.is_ascii_hexdigit()))
    };

    let run = ferry_test_copy_with(&plugin, &more).success();
    let json = run.json();
    assert_eq!(json["name"], "obs_test", "{}", run.describe());
    assert_eq!(json["passed"], true, "{}", run.describe());
    assert_eq!(names(&json, "backends", "backend"), backends);
    for b in json["backends"].as_array().unwrap() {
        assert_eq!(b["passed"], true, "{b}");
        assert_eq!(names(b, "phases", "phase"), PHASES, "{b}");
        assert!(
            b["phases"]
                .as_array()
                .unwrap()
                .iter()
                .all(|p| p["outcome"] == "passed" && p["error"].is_null()),
            "{b}"
        );
        let phase = |name: &str| {
            let i = PHASES.iter().position(|p| *p == name).unwrap();
            b["phases"][i].clone()
        };
        assert_eq!(
            phase("expect after upgrade")["detail"],
            "6 expectation(s) met"
        );
        // The digest after the upgrade holds the plugin's tables, the one after the
        // downgrade not; upgrading again gives the first back.
        assert!(is_sha256(&b["digest"]), "{b}");
        assert_eq!(phase("upgrade")["digest"], b["digest"]);
        assert_eq!(phase("digest after upgrade again")["digest"], b["digest"]);
        assert!(is_sha256(&phase("digest after downgrade")["digest"]), "{b}");
        assert_ne!(phase("digest after downgrade")["digest"], b["digest"]);
        assert!(phase("start")["digest"].is_null(), "{b}");
    }

    let file = plugin.join("obs_test/obs_test-2.rhai");
    edit(
        &file,
        "    schema::drop_table(\"tst_filter\");",
        "    throw \"cannot go back\";",
    );
    let text = std::fs::read_to_string(&file).unwrap();
    let line = text[..text.find("throw").unwrap()].matches('\n').count() + 1;
    let run = ferry_test_copy_with(&plugin, &more).code(1);
    let json = run.json();
    assert_eq!(json["passed"], false, "{}", run.describe());
    assert_eq!(names(&json, "backends", "backend"), backends);
    assert!(
        !run.stderr.contains("cannot go back"),
        "the failure is in the JSON only: {}",
        run.describe()
    );
    for b in json["backends"].as_array().unwrap() {
        assert_eq!(b["passed"], false, "{b}");
        assert_eq!(
            names(b, "phases", "phase"),
            PHASES[..4],
            "stops at the failure: {b}"
        );
        let failed = &b["phases"][3];
        assert_eq!(failed["outcome"], "script_error", "{b}");
        let error = &failed["error"];
        assert_eq!(error["kind"], "thrown", "{b}");
        assert_eq!(error["revision"], "obs_test-2", "{b}");
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.contains("cannot go back")),
            "{b}"
        );
        assert!(
            error["file"]
                .as_str()
                .is_some_and(|f| f.ends_with("obs_test/obs_test-2.rhai")),
            "{b}"
        );
        assert_eq!(error["line"], line, "{b}");
        assert_eq!(error["column"], 5, "{b}");
        assert!(is_sha256(&b["digest"]), "the upgrade ran: {b}");
    }
}

#[test]
fn a_broken_declaration_is_refused_before_anything_runs() {
    let dir = copy_of_example();
    let plugin = dir.path().join("obs_test");
    let spec = plugin.join("ferry-test.toml");
    edit(&spec, "after = \"downgrade\"", "after = \"later\"");
    let text = std::fs::read_to_string(&spec).unwrap();
    let line = text[..text.find("after = \"later\"").unwrap()]
        .matches('\n')
        .count()
        + 1;
    let run = ferry_test_copy(&plugin).code(2);
    let at = format!(
        "{}:{line}: unknown variant `later`",
        spec.canonicalize().unwrap().display()
    );
    assert!(run.stderr.contains(&at), "no {at:?}: {}", run.describe());
    assert!(
        !run.stdout.contains("[sqlite]"),
        "nothing ran: {}",
        run.describe()
    );

    std::fs::remove_file(&spec).unwrap();
    let run = ferry_test_copy(&plugin).code(2);
    assert!(
        run.stderr
            .contains("ferry-test.toml:0: cannot read the plugin's test declaration"),
        "{}",
        run.describe()
    );
}

/// A tree whose second revision declares `DIGEST` per backend: the real digest for the
/// backend under test (read with `ferry digest` after the first revision), and a bogus
/// one for the other backend, which must not be compared.
#[test]
fn digest_may_be_declared_per_backend() {
    for_each_backend("digest_may_be_declared_per_backend", |db| {
        let dir = tempfile::tempdir().unwrap();
        let tree = dir.path().join("scripts/alpha");
        std::fs::create_dir_all(&tree).unwrap();
        std::fs::write(
            tree.join("alpha-1.rhai"),
            "const REVISION = \"alpha-1\";\nconst TREE = \"alpha\";\nconst PARENTS = [];\n\
             const VERSION = \"1\";\nconst DEPENDS_ON = [];\nconst MESSAGE = \"m\";\n\
             fn upgrade(db) { db.execute(\"CREATE TABLE alpha_item (id BIGINT PRIMARY KEY)\"); }\n",
        )
        .unwrap();
        let scripts = dir.path().join("scripts");
        db.ferry().scripts(&scripts).run(["upgrade"]).success();
        let digest = db.ferry().scripts(&scripts).run(["digest"]).success();
        let sha = digest
            .stdout
            .split_whitespace()
            .find(|w| w.len() == 64)
            .unwrap_or_else(|| panic!("no digest: {}", digest.describe()))
            .to_string();
        let (mine, other) = match db.backend {
            Backend::Sqlite => ("sqlite", "postgres"),
            Backend::Postgres => ("postgres", "sqlite"),
        };
        let second = |digest: &str| {
            format!(
                "const REVISION = \"alpha-2\";\nconst TREE = \"alpha\";\nconst PARENTS = [\"alpha-1\"];\n\
                 const VERSION = \"2\";\nconst DEPENDS_ON = [];\nconst MESSAGE = \"m\";\n\
                 const DIGEST = {digest};\n\
                 fn upgrade(db) {{ db.execute(\"INSERT INTO alpha_item VALUES (1)\"); }}\n\
                 fn downgrade(db) {{ db.execute(\"DELETE FROM alpha_item\"); }}\n"
            )
        };
        // The other backend's digest is wrong and must not matter.
        std::fs::write(
            tree.join("alpha-2.rhai"),
            second(&format!(
                "#{{ {mine}: \"{sha}\", {other}: \"0000000000\" }}"
            )),
        )
        .unwrap();
        db.ferry().scripts(&scripts).run(["upgrade"]).success();
        db.ferry()
            .scripts(&scripts)
            .run(["show", "alpha-2"])
            .success()
            .stdout_has(&format!("{mine}: {sha}"));
        db.ferry()
            .scripts(&scripts)
            .run(["downgrade", "alpha-1"])
            .success();
        // Only the other backend named: not compared here.
        std::fs::write(
            tree.join("alpha-2.rhai"),
            second(&format!("#{{ {other}: \"0000000000\" }}")),
        )
        .unwrap();
        db.ferry()
            .scripts(&scripts)
            .run(["upgrade", "--allow-changed"])
            .success();
        db.ferry()
            .scripts(&scripts)
            .run(["downgrade", "alpha-1"])
            .success();
        // A wrong digest for this backend fails the upgrade, naming both.
        std::fs::write(
            tree.join("alpha-2.rhai"),
            second(&format!(
                "#{{ {mine}: \"0000000000\", {other}: \"{sha}\" }}"
            )),
        )
        .unwrap();
        db.ferry()
            .scripts(&scripts)
            .run(["upgrade", "--allow-changed"])
            .code(1)
            .stderr_has("differs from its DIGEST")
            .stderr_has("expected: 0000000000")
            .stderr_has(&format!("found:    {sha}"));
    });
}

/// The two orders of the example's obs_test-1 and the core revision that calls
/// `populate_amplifier` (dimensions-config-1), as docs/PLUGINS.md describes them: `ferry
/// test` runs the core revision first (TST arrives after it: obs_test-1 fills TST's
/// amplifiers itself); here TST is registered first and the core revision fills them
/// through the hook.
#[test]
fn tst_registered_before_the_amplifier_revision_gets_its_amplifiers_from_it() {
    let root = repo_root();
    for_each_backend("tst_registered_before", |db| {
        let ferry = || {
            let mut f = db.ferry().stdlib(root.join("stdlib"));
            f = f.scripts(root.join("scripts"));
            for p in ["obs_base", "obs_lsst", "obs_subaru"] {
                f = f.scripts(root.join("plugins").join(p));
            }
            f.scripts(example())
        };
        ferry().run(["upgrade", "obs_test@head"]).success();
        assert!(!db.has_table("amplifier"), "[{}] not yet", db.name());
        assert_eq!(db.count("detector"), 4);
        ferry()
            .run(["upgrade"])
            .success()
            .stdout_has("upgrade dimensions-config-1: done");
        assert_eq!(
            db.query(
                "SELECT detector, name, readout_corner FROM amplifier ORDER BY detector, name"
            ),
            (0..4)
                .flat_map(|d| [(d, "C00", "LL"), (d, "C01", "LR")])
                .map(|(d, n, c)| vec![Some(d.to_string()), Some(n.into()), Some(c.into())])
                .collect::<Vec<_>>(),
            "[{}]",
            db.name()
        );
    });
}

/// `[start] sql = "FILE"`: a hand-written SQL file shipped with the plugin is the
/// starting state on every backend (and of the reference repository), and what it made
/// is still there for the expectations; an error in it names the file.
#[test]
fn a_sql_file_shipped_with_the_plugin_is_the_starting_state() {
    let dir = copy_of_example();
    let plugin = dir.path().join("obs_test");
    let spec = plugin.join("ferry-test.toml");
    edit(&spec, "sample = 60", "sql = \"start.sql\"");
    let text = std::fs::read_to_string(&spec).unwrap();
    // An empty repository has no other instrument: that expectation goes.
    let other = text
        .find("[[expect]]\nname = \"the other instruments")
        .unwrap();
    let end = other + text[other..].find("\n\n").unwrap() + 2;
    let text = format!(
        "{}{}[[expect]]\nname = \"the site's own table is kept\"\nsql = \"SELECT note FROM site_notes\"\nrows = [[\"hand-written\"]]\n",
        &text[..other],
        &text[end..]
    );
    std::fs::write(&spec, text).unwrap();
    std::fs::write(
        plugin.join("start.sql"),
        "CREATE TABLE site_notes (note VARCHAR(64) NOT NULL);\nINSERT INTO site_notes VALUES ('hand-written');\n",
    )
    .unwrap();
    let mut args = vec![plugin.to_str().unwrap().to_string()];
    if let Some(url) = pg_base_url() {
        args.extend(["--postgres".to_string(), url]);
    }
    let root = repo_root();
    let db = TestDb::sqlite();
    let mut f = db.ferry().no_progress().stdlib(root.join("stdlib"));
    f = f.scripts(root.join("scripts"));
    for p in ["obs_base", "obs_lsst", "obs_subaru"] {
        f = f.scripts(root.join("plugins").join(p));
    }
    let mut cmd = vec!["test".to_string()];
    cmd.extend(args);
    let run = f.run(&cmd).success();
    assert!(
        run.stdout.contains("[sqlite] start: ok,") && run.stdout.contains("start.sql run"),
        "{}",
        run.describe()
    );
    assert!(
        run.stdout
            .contains("[sqlite] expect after upgrade again: ok, 6 expectation(s) met"),
        "{}",
        run.describe()
    );

    std::fs::write(plugin.join("start.sql"), "CREATE TABLE site_notes (;\n").unwrap();
    let run = f.run(&cmd).code(1);
    assert!(
        run.stdout.contains("[sqlite] start: FAILED"),
        "{}",
        run.describe()
    );
    assert!(run.stderr.contains("start.sql: "), "{}", run.describe());
}

/// A plugin revision that joins a core tree is refused before anything runs, naming
/// the file, the tree and the root that owns it (the core tree does not declare
/// `OPEN_TO_PLUGINS`).
#[test]
fn a_plugin_revision_in_a_core_tree_is_refused() {
    let dir = copy_of_example();
    let plugin = dir.path().join("obs_test");
    std::fs::write(
        plugin.join("obs_test/obs_test-dims.rhai"),
        "const REVISION = \"obs_test-dims\";\nconst TREE = \"dimensions\";\n\
         const PARENTS = [\"dimensions-6.0.2\"];\nconst VERSION = \"tst\";\n\
         const DEPENDS_ON = [];\nconst MESSAGE = \"joins a core tree\";\n\
         fn upgrade(db) {}\nfn downgrade(db) {}\n",
    )
    .unwrap();
    let run = ferry_test_copy(&plugin).code(2);
    assert!(
        run.stderr
            .contains("obs_test-dims.rhai:1: revision obs_test-dims (root ")
            && run
                .stderr
                .contains("joins tree dimensions, which belongs to root "),
        "{}",
        run.describe()
    );
    assert!(
        !run.stdout.contains("[sqlite]"),
        "nothing ran: {}",
        run.describe()
    );
}
