//! `ferry lint` and the same checks at the start of `plan` and `upgrade`: the mistakes an
//! instrument team makes writing its first plugin (tests/fixtures/lint, a plugin
//! `obs_test` for a made-up instrument TST, and one copy of it per mistake), each
//! reported with its file, line and column, and refused before the repository is
//! touched; the shipped roots lint clean.

mod common;

use common::*;
use std::path::{Path, PathBuf};

fn checkout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("the checkout")
}

fn lint_fixture(name: &str) -> PathBuf {
    checkout().join("tests/fixtures/lint").join(name)
}

/// `ferry` with the shipped core scripts, plugins and stdlib.
fn with_core(db: &TestDb) -> Ferry<'_> {
    let c = checkout();
    db.ferry()
        .scripts(c.join("scripts"))
        .scripts(c.join("plugins/obs_base"))
        .scripts(c.join("plugins/obs_lsst"))
        .scripts(c.join("plugins/obs_subaru"))
        .stdlib(c.join("stdlib"))
}

/// [`with_core`] plus the plugin root `plugin`.
fn with_plugin<'a>(db: &'a TestDb, plugin: &str) -> Ferry<'a> {
    with_core(db).scripts(lint_fixture(plugin))
}

/// One mistake: its fixture, the file at fault (relative to the fixture), and the line
/// `ferry lint` prints for it after `path:`.
struct Mistake {
    fixture: &'static str,
    file: &'static str,
    at_and_message: &'static str,
}

const ERRORS: [Mistake; 7] = [
    Mistake {
        fixture: "hook_misspelt",
        file: "hooks/populate_amplifier_tst.rhai",
        at_and_message: "2:1: error: this file provides hook \"populate_amplifer\", which no revision declares in HOOKS, so nothing would ever run it; did you mean `populate_amplifier`?",
    },
    Mistake {
        fixture: "function_typo",
        file: "obs_test/obs_test-1.rhai",
        at_and_message: "22:5: error: function `register_detector` is not defined by this script, an imported module or Ferry's API; did you mean `register_detectors`?",
    },
    Mistake {
        fixture: "module_function_typo",
        file: "obs_test/obs_test-1.rhai",
        at_and_message: "16:33: error: module `camera` ({module}) has no public function `detector_nmae`; did you mean `detector_name`?",
    },
    Mistake {
        fixture: "db_method_typo",
        file: "obs_test/obs_test-1.rhai",
        at_and_message: "21:8: error: `db` has no method `exceute` (the database handle's methods are in docs/SCRIPTING.md); did you mean `execute`?",
    },
    Mistake {
        fixture: "import_unresolved",
        file: "obs_test/obs_test-1.rhai",
        at_and_message: "11:1: error: import \"tst_camra\" does not resolve: no tst_camra.rhai in {lib_dir} or {stdlib}; did you mean `tst_camera`?",
    },
    Mistake {
        fixture: "hooks_run_undeclared",
        file: "obs_test/obs_test-1.rhai",
        at_and_message: "23:12: error: hooks::run(\"populate_amplifier\") runs a hook that revision obs_test-1 does not declare: add \"populate_amplifier\" to its HOOKS constant",
    },
    Mistake {
        fixture: "lib_syntax_error",
        file: "lib/tst_camera.rhai",
        at_and_message: "3:17: error: syntax error: Expecting ';' to terminate this statement",
    },
];

impl Mistake {
    /// The exact line lint prints.
    fn line(&self) -> String {
        let root = lint_fixture(self.fixture);
        let message = self
            .at_and_message
            .replace("{lib_dir}", &root.join("lib").display().to_string())
            .replace(
                "{module}",
                &root.join("lib/tst_camera.rhai").display().to_string(),
            )
            .replace("{stdlib}", &checkout().join("stdlib").display().to_string());
        format!("{}:{message}", root.join(self.file).display())
    }
}

#[test]
fn shipped_roots_lint_clean() {
    let c = checkout();
    let db = TestDb::sqlite();
    let mut ferry = db
        .ferry()
        .scripts(c.join("scripts"))
        .stdlib(c.join("stdlib"));
    let mut plugins: Vec<PathBuf> = std::fs::read_dir(c.join("plugins"))
        .expect("plugins/")
        .map(|e| e.expect("plugins/ entry").path())
        .filter(|p| p.is_dir())
        .collect();
    plugins.sort();
    assert!(plugins.len() >= 3, "{plugins:?}");
    for p in plugins {
        ferry = ferry.scripts(p);
    }
    let run = ferry.run(["lint"]).success();
    assert_eq!(
        run.stdout,
        "0 error(s), 0 warning(s)\n",
        "{}",
        run.describe()
    );
}

/// The keys the host itself reads (`--jobs` becomes `jobs`) are known, and the example
/// plugin of docs/PLUGINS.md lints clean beside the core scripts.
#[test]
fn host_keys_and_the_example_plugin_lint_clean() {
    let c = checkout();
    let db = TestDb::sqlite();
    let run = db
        .ferry()
        .scripts(c.join("scripts"))
        .scripts(c.join("examples/plugins/obs_test"))
        .stdlib(c.join("stdlib"))
        .opt("--jobs")
        .opt("2")
        .opt("--set")
        .opt("attributes.table=butler_attributes")
        .run(["lint"])
        .success();
    assert_eq!(
        run.stdout,
        "0 error(s), 0 warning(s)\n",
        "{}",
        run.describe()
    );
}

#[test]
fn a_valid_plugin_lints_clean_and_upgrades() {
    for_each_backend("a_valid_plugin_lints_clean_and_upgrades", |db| {
        let run = with_plugin(db, "obs_test").run(["lint"]).success();
        assert_eq!(
            run.stdout,
            "0 error(s), 0 warning(s)\n",
            "{}",
            run.describe()
        );
        with_plugin(db, "obs_test").run(["upgrade"]).success();
        assert_eq!(
            db.scalar("SELECT COUNT(*) FROM detector WHERE instrument = 'TST'"),
            4
        );
        assert_eq!(db.count("tst_filter"), 2);
    });
}

#[test]
fn every_mistake_is_named_with_file_line_and_column() {
    let db = TestDb::sqlite();
    for m in &ERRORS {
        let run = with_plugin(&db, m.fixture).run(["lint"]).code(2);
        assert_eq!(
            run.stdout,
            format!("{}\n1 error(s), 0 warning(s)\n", m.line()),
            "{}",
            run.describe()
        );
    }
    // The same problem as JSON, for tools.
    let run = with_plugin(&db, "function_typo")
        .run(["lint", "--json"])
        .code(2);
    let problems = run.json();
    assert_eq!(problems[0]["line"], 22, "{}", run.describe());
    assert_eq!(problems[0]["column"], 5);
    assert_eq!(problems[0]["severity"], "error");
    assert!(problems[0]["path"]
        .as_str()
        .unwrap()
        .ends_with("function_typo/obs_test/obs_test-1.rhai"));
}

#[test]
fn every_problem_is_listed_at_once() {
    // Two mistakes in one run (a script and the configuration): both are listed.
    let db = TestDb::sqlite();
    let run = with_plugin(&db, "function_typo")
        .opt("--set")
        .opt("obs_test.detector_cuont=8")
        .run(["lint"])
        .code(2);
    assert!(run.stdout.contains(&ERRORS[1].line()), "{}", run.describe());
    assert!(
        run.stdout
            .contains("--set obs_test.detector_cuont=8: error: unknown configuration key"),
        "{}",
        run.describe()
    );
    assert!(
        run.stdout.ends_with("2 error(s), 0 warning(s)\n"),
        "{}",
        run.describe()
    );
}

/// The commands that would run scripts: each is refused, exit 2, naming the problem.
const REFUSED: [&[&str]; 4] = [
    &["plan"],
    &["upgrade"],
    &["upgrade", "--dry-run"],
    &["upgrade", "--sql"],
];

fn refused_everywhere(db: &TestDb, after_each: impl Fn()) {
    for m in &ERRORS {
        for args in REFUSED {
            let run = with_plugin(db, m.fixture)
                .run(args.iter().copied())
                .code(2)
                .stderr_has(&m.line())
                .stderr_has("nothing was run");
            assert!(!run.stderr.contains("error: error"), "{}", run.describe());
            after_each();
        }
    }
}

#[test]
fn sqlite_repository_unchanged_when_refused() {
    let db = TestDb::sqlite();
    let file = db.dir().join("repo.sqlite");
    // A repository with the core applied, then every refused command on it.
    with_core(&db).run(["upgrade"]).success();
    let before = std::fs::read(&file).expect("the repository file");
    refused_everywhere(&db, || {
        assert_eq!(
            std::fs::read(&file).expect("the repository file"),
            before,
            "the SQLite file changed"
        );
    });
    // A repository that does not exist yet is not created.
    let fresh = TestDb::sqlite();
    refused_everywhere(&fresh, || {
        assert!(!fresh.dir().join("repo.sqlite").exists());
    });
}

#[test]
fn postgres_repository_unchanged_when_refused() {
    let Some(db) = TestDb::postgres("postgres_repository_unchanged_when_refused") else {
        return;
    };
    refused_everywhere(&db, || {
        assert_eq!(db.tables(), Vec::<String>::new(), "no ledger, no table");
    });
}

#[test]
fn a_missing_depends_on_is_a_warning() {
    let root = lint_fixture("missing_depends_on");
    let line = format!(
        "{}:21:16: warning: table `instrument` is created by revision dimensions-6.0.2 ({}), \
         which revision obs_test-1 does not follow: add \"dimensions-6.0.2\" (or a revision \
         after it) to DEPENDS_ON, or an empty repository may run obs_test-1 before the table \
         exists (table names are read from SQL literals: a heuristic)",
        root.join("obs_test/obs_test-1.rhai").display(),
        checkout()
            .join("scripts/dimensions/dimensions-6.0.2.rhai")
            .display()
    );
    let db = TestDb::sqlite();
    let run = with_plugin(&db, "missing_depends_on")
        .run(["lint"])
        .success();
    assert_eq!(
        run.stdout,
        format!("{line}\n0 error(s), 1 warning(s)\n"),
        "{}",
        run.describe()
    );
    // plan goes on, and says it.
    with_plugin(&db, "missing_depends_on")
        .run(["plan"])
        .success()
        .stderr_has(&line);
}

#[test]
fn unknown_configuration_keys_name_the_closest_known_key() {
    let db = TestDb::sqlite();
    let message = "error: unknown configuration key obs_test.detector_cuont: no script reads \
                   it and Ferry has no such setting; did you mean `obs_test.detector_count`?";
    let run = with_plugin(&db, "obs_test")
        .opt("--set")
        .opt("obs_test.detector_cuont=8")
        .run(["lint"])
        .code(2);
    assert_eq!(
        run.stdout,
        format!("--set obs_test.detector_cuont=8: {message}\n1 error(s), 0 warning(s)\n"),
        "{}",
        run.describe()
    );
    with_plugin(&db, "obs_test")
        .opt("--set")
        .opt("obs_test.detector_cuont=8")
        .run(["upgrade"])
        .code(2)
        .stderr_has(&format!("--set obs_test.detector_cuont=8: {message}"));
    assert!(!db.dir().join("repo.sqlite").exists());
    // The same key in ./ferry.toml: named with its file and line.
    let toml = db.dir().join("ferry.toml");
    std::fs::write(&toml, "[obs_test]\n# TST's detectors\ndetector_cuont = 8\n").unwrap();
    let run = with_plugin(&db, "obs_test").run(["lint"]).code(2);
    assert_eq!(
        run.stdout,
        format!(
            "{}:3:1: {message}\n1 error(s), 0 warning(s)\n",
            toml.display()
        ),
        "{}",
        run.describe()
    );
    // A key the scripts know is accepted.
    std::fs::write(&toml, "[obs_test]\ndetector_count = 8\n").unwrap();
    with_plugin(&db, "obs_test").run(["lint"]).success();
    // A misspelt limit is refused as soon as the configuration is read.
    std::fs::remove_file(&toml).unwrap();
    with_plugin(&db, "obs_test")
        .opt("--set")
        .opt("limits.max_secs=2")
        .run(["upgrade"])
        .code(2)
        .stderr_has("unknown configuration key limits.max_secs (did you mean limits.max_seconds?)");
    assert!(!db.dir().join("repo.sqlite").exists());
}
