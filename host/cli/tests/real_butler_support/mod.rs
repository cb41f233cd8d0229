//! Repositories made by the real Rubin data butler (lsst-daf-butler), for the tests of
//! the real daf_butler trees. Python runs only here, through `tests/python/butler_tool.py`
//! and the interpreter of the virtual environment that `tests/python/venv.sh` makes
//! (`FERRY_TEST_PYTHON`): it makes the repositories, describes their schemas and judges
//! them with daf_butler's own registry. Ferry itself never runs Python.
//!
//! - SQLite: one repository per universe per test run (made on first use, kept in a
//!   temporary folder for the life of the test process), copied for each test.
//! - PostgreSQL: every repository is made in a schema of its own, dropped at the end.
//!
//! Without `FERRY_TEST_PYTHON` the tests print a skip line and pass; `.ci/run` sets it.
//! The backends and the PostgreSQL schemas are `common::fresh`'s (a test file declares
//! `mod common;` too).

#![allow(dead_code)] // each test file uses a different part of the helper

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::{Arc, Mutex, OnceLock};

/// The project's root (the parent of `host/`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// The tests' Python interpreter, or `None` after printing a skip line for `test`.
pub fn python(test: &str) -> Option<PathBuf> {
    match std::env::var_os("FERRY_TEST_PYTHON") {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            eprintln!(
                "{test}: skipped, FERRY_TEST_PYTHON is not set \
                 (export FERRY_TEST_PYTHON=$(bash tests/python/venv.sh))"
            );
            None
        }
    }
}

/// Runs `butler_tool.py` with `args`; its stdout, or a panic with its stderr.
pub fn tool(python: &Path, args: &[&str]) -> String {
    let script = repo_root().join("tests/python/butler_tool.py");
    let out = Command::new(python)
        .arg(&script)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("run {} {}: {e}", python.display(), script.display()));
    if !out.status.success() {
        panic!(
            "butler_tool.py {}: {}\n{}",
            args.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    String::from_utf8(out.stdout).expect("utf-8 output")
}

pub use crate::common::fresh::{pg_base, Backend};
use crate::common::fresh::{schema_url, PgSchema};

/// A repository made by the real daf_butler: its butler root (for daf_butler) and its
/// database (for Ferry).
pub struct RealRepo {
    pub backend: Backend,
    pub universe: u32,
    dir: tempfile::TempDir,
    python: PathBuf,
    /// PostgreSQL: the schema (made by daf_butler), dropped on `Drop`.
    pg: Option<PgSchema>,
}

/// SQLite fixtures of this test process: (universe, extra `make` arguments) -> the
/// folder holding it.
type Fixtures = Mutex<HashMap<(u32, Vec<String>), Arc<tempfile::TempDir>>>;
fn sqlite_fixtures() -> &'static Fixtures {
    static F: OnceLock<Fixtures> = OnceLock::new();
    F.get_or_init(|| Mutex::new(HashMap::new()))
}

/// The data set's scale (`butler_tool.py make --n`): a few hundred datasets.
pub const N: &str = "200";

impl RealRepo {
    /// A repository at `universe` on `backend`; `None` (after a skip line) when Python,
    /// or PostgreSQL for the PostgreSQL backend, is not configured.
    pub fn make(test: &str, backend: Backend, universe: u32) -> Option<RealRepo> {
        Self::make_with(test, backend, universe, &[])
    }

    /// Like [`RealRepo::make`], passing `extra` to `butler_tool.py make` (for example
    /// `["--datasets-version", "1.0.0"]`).
    pub fn make_with(
        test: &str,
        backend: Backend,
        universe: u32,
        extra: &[&str],
    ) -> Option<RealRepo> {
        let python = python(test)?;
        let dir = tempfile::tempdir().expect("tempdir");
        match backend {
            Backend::Sqlite => {
                let fixture = {
                    let mut map = sqlite_fixtures().lock().unwrap_or_else(|e| e.into_inner());
                    let key = (universe, extra.iter().map(|a| a.to_string()).collect());
                    map.entry(key)
                        .or_insert_with(|| {
                            let d = tempfile::tempdir().expect("tempdir");
                            let root = d.path().join("repo");
                            let universe = universe.to_string();
                            let mut args = vec![
                                "make",
                                "--universe",
                                &universe,
                                "--root",
                                root.to_str().unwrap(),
                                "--n",
                                N,
                            ];
                            args.extend_from_slice(extra);
                            tool(&python, &args);
                            Arc::new(d)
                        })
                        .clone()
                };
                let from = fixture.path().join("repo");
                let to = dir.path().join("repo");
                std::fs::create_dir_all(&to).expect("mkdir");
                for f in ["butler.yaml", "gen3.sqlite3"] {
                    std::fs::copy(from.join(f), to.join(f)).expect("copy the fixture");
                }
                Some(RealRepo {
                    backend,
                    universe,
                    dir,
                    python,
                    pg: None,
                })
            }
            Backend::Postgres => {
                let base = pg_base(test)?;
                let pg = PgSchema::reserve(&base, "ferry_real");
                let schema = pg.name().to_string();
                let root = dir.path().join("repo");
                // From here on the schema exists (the tool creates it): drop it even if
                // making the repository fails.
                let repo = RealRepo {
                    backend,
                    universe,
                    dir,
                    python: python.clone(),
                    pg: Some(pg),
                };
                let universe = universe.to_string();
                let plain = pg_plain(&base);
                let mut args = vec![
                    "make",
                    "--universe",
                    &universe,
                    "--root",
                    root.to_str().unwrap(),
                    "--n",
                    N,
                    "--pg",
                    plain.as_str(),
                    "--schema",
                    &schema,
                ];
                args.extend_from_slice(extra);
                tool(&python, &args);
                Some(repo)
            }
        }
    }

    /// The butler root (the folder of `butler.yaml`).
    pub fn root(&self) -> PathBuf {
        self.dir.path().join("repo")
    }

    /// The database URL for `ferry --db`.
    pub fn url(&self) -> String {
        match &self.pg {
            None => format!("sqlite:{}", self.root().join("gen3.sqlite3").display()),
            Some(pg) => schema_url(pg.base(), pg.name()),
        }
    }

    /// Runs `ferry --db URL ARGS...` with the default roots (`./scripts`, `./plugins/*`
    /// of the project).
    pub fn ferry(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_ferry"))
            .current_dir(repo_root())
            .arg("--db")
            .arg(self.url())
            .args(args)
            .env_remove("FERRY_PATH")
            .env_remove("FERRY_DB")
            .output()
            .expect("run ferry")
    }

    /// The current revisions of `tree` in Ferry's ledger (`ferry status --json`).
    pub fn current(&self, tree: &str) -> Vec<String> {
        let status: serde_json::Value =
            serde_json::from_str(&self.ferry_ok(&["status", "--json"])).expect("status --json");
        status["trees"]
            .as_array()
            .expect("trees")
            .iter()
            .find(|t| t["tree"] == tree)
            .map(|t| {
                t["current"]
                    .as_array()
                    .expect("current")
                    .iter()
                    .map(|c| c.as_str().expect("a revision id").to_string())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Like [`RealRepo::ferry`], panicking with the output unless it succeeds.
    pub fn ferry_ok(&self, args: &[&str]) -> String {
        let out = self.ferry(args);
        if !out.status.success() {
            panic!(
                "[{}] ferry {}: {}\nstdout:\n{}\nstderr:\n{}",
                self.backend.name(),
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The schema as `butler_tool.py describe` gives it (Ferry's tables left out).
    pub fn describe(&self) -> serde_json::Value {
        self.describe_with(&[])
    }

    /// The schema with every column's server default too (`describe --defaults`).
    pub fn describe_with_defaults(&self) -> serde_json::Value {
        self.describe_with(&["--defaults"])
    }

    fn describe_with(&self, extra: &[&str]) -> serde_json::Value {
        let file = self.root().join("gen3.sqlite3");
        let mut args = vec!["describe"];
        let plain;
        match &self.pg {
            None => args.extend(["--sqlite", file.to_str().unwrap()]),
            Some(pg) => {
                plain = pg_plain(pg.base());
                args.extend(["--pg", plain.as_str(), "--schema", pg.name()]);
            }
        }
        args.extend_from_slice(extra);
        serde_json::from_str(&tool(&self.python, &args)).expect("describe prints JSON")
    }

    /// Every dataset's ingest_date as daf_butler's query system returns it
    /// (`butler_tool.py ingest-dates`: TAI nanoseconds and UTC text by dataset id) and
    /// the datasets manager's schema version.
    pub fn ingest_dates(&self) -> serde_json::Value {
        let text = tool(
            &self.python,
            &["ingest-dates", "--root", self.root().to_str().unwrap()],
        );
        serde_json::from_str(&text).expect("ingest-dates prints JSON")
    }

    /// What the real daf_butler reports when it opens the repository read-write.
    pub fn judge(&self) -> serde_json::Value {
        let text = tool(
            &self.python,
            &["judge", "--root", self.root().to_str().unwrap()],
        );
        serde_json::from_str(&text).expect("judge prints JSON")
    }

    /// The schema version of each manager as the real daf_butler reads it when it
    /// opens the repository read-write (`butler_tool.py versions`), by manager name.
    pub fn versions(&self) -> serde_json::Value {
        let text = tool(
            &self.python,
            &["versions", "--root", self.root().to_str().unwrap()],
        );
        serde_json::from_str(&text).expect("versions prints JSON")
    }

    /// One row of `butler_attributes`.
    pub fn attribute(&self, name: &str) -> Option<String> {
        let mut conn = ferry::backend::connect(
            &ferry::backend::DbUrl::parse(&self.url()).expect("URL parses"),
        )
        .expect("connect");
        let rows = conn
            .query(
                "SELECT value FROM butler_attributes WHERE name = ?",
                &[ferry::backend::Value::Text(name.to_string())],
            )
            .expect("read butler_attributes");
        rows.rows.into_iter().next().and_then(|r| match &r[0] {
            ferry::backend::Value::Text(s) => Some(s.clone()),
            ferry::backend::Value::Null => None,
            other => Some(format!("{other:?}")),
        })
    }

    /// Runs one statement on the repository's database.
    pub fn execute(&self, sql: &str, params: &[ferry::backend::Value]) {
        let mut conn = ferry::backend::connect(
            &ferry::backend::DbUrl::parse(&self.url()).expect("URL parses"),
        )
        .expect("connect");
        conn.execute(sql, params)
            .unwrap_or_else(|e| panic!("[{}] {sql}: {e}", self.backend.name()));
    }
}

/// The server URL without Ferry's own query parameters, for libpq and SQLAlchemy.
fn pg_plain(base: &str) -> String {
    base.split('?').next().unwrap_or(base).to_string()
}

/// A fresh repository at `universe` on `backend`: its schema and its stored dimension
/// configuration, made once per test process (and dropped at once on PostgreSQL).
pub fn fresh(test: &str, backend: Backend, universe: u32) -> (serde_json::Value, Option<String>) {
    type Cache = Mutex<HashMap<(Backend, u32), (serde_json::Value, Option<String>)>>;
    static F: OnceLock<Cache> = OnceLock::new();
    let cache = F.get_or_init(|| Mutex::new(HashMap::new()));
    let mut map = cache.lock().unwrap_or_else(|e| e.into_inner());
    map.entry((backend, universe))
        .or_insert_with(|| {
            let repo = RealRepo::make(test, backend, universe).expect("configured");
            (repo.describe(), repo.attribute("config:dimensions.json"))
        })
        .clone()
}

/// What differs between two descriptions, one line per difference (empty: equal).
pub fn schema_differences(a: &serde_json::Value, b: &serde_json::Value) -> Vec<String> {
    let mut out = Vec::new();
    let empty = serde_json::Map::new();
    let ta = a["tables"].as_object().unwrap_or(&empty);
    let tb = b["tables"].as_object().unwrap_or(&empty);
    let names: std::collections::BTreeSet<&String> = ta.keys().chain(tb.keys()).collect();
    for name in names {
        match (ta.get(name), tb.get(name)) {
            (Some(x), Some(y)) if x != y => {
                for part in [
                    "columns",
                    "primary_key",
                    "foreign_keys",
                    "unique",
                    "indexes",
                    "checks",
                ] {
                    if x[part] != y[part] {
                        out.push(format!("table {name} {part}: {} != {}", x[part], y[part]));
                    }
                }
            }
            (Some(_), None) => out.push(format!("table {name}: only in the first")),
            (None, Some(_)) => out.push(format!("table {name}: only in the second")),
            _ => {}
        }
    }
    out
}
