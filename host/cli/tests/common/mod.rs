//! A small fluent helper for end-to-end tests: a fresh database (a SQLite file in a
//! temporary folder, or a fresh PostgreSQL schema dropped at the end), the real `ferry`
//! binary run against it, and direct queries through `ferry::backend::connect`.
//!
//! ```ignore
//! mod common;
//! use common::*;
//!
//! #[test]
//! fn linear() {
//!     for_each_backend("linear", |db| {
//!         db.ferry().tree("linear").run(["upgrade"]).success();
//!         assert_eq!(db.count("alpha_item"), 1);
//!     });
//! }
//! ```
//!
//! The database itself comes from [`fresh`], the one fresh-database helper of the tests:
//! PostgreSQL from `FERRY_TEST_PG_URL`; unset, the PostgreSQL half of a test prints a skip
//! line and passes; set but unreachable, it fails.

#![allow(dead_code)] // each test file uses a different part of the helper

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use ferry::backend::{Connection, Value};

/// The folder of one fixture scenario, `tests/fixtures/trees/<name>`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/trees")
        .join(name)
        .canonicalize()
        .unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

pub mod fresh;
pub mod steps;

#[allow(unused_imports)] // each test file uses a different part
pub use fresh::{pg_base_url, Backend, FreshDb};

/// A fresh, empty repository database and a scratch working directory for `ferry`.
pub struct TestDb {
    pub backend: Backend,
    /// The database and the working directory of every `ferry` run (on SQLite, also the
    /// database file's folder).
    fresh: FreshDb,
}

impl TestDb {
    /// A SQLite file in a fresh temporary folder (the file itself does not exist yet).
    pub fn sqlite() -> TestDb {
        TestDb::from(FreshDb::sqlite())
    }

    /// A fresh schema on the server at `FERRY_TEST_PG_URL`, dropped on `Drop`;
    /// `None` (after printing why) when the variable is not set.
    pub fn postgres(test: &str) -> Option<TestDb> {
        FreshDb::postgres(test).map(TestDb::from)
    }

    /// A fresh database on `backend`; `None` as for [`TestDb::postgres`].
    pub fn new(backend: Backend, test: &str) -> Option<TestDb> {
        FreshDb::new(backend, test).map(TestDb::from)
    }

    /// `sqlite` or `postgres`, for messages.
    pub fn name(&self) -> &'static str {
        self.backend.name()
    }

    /// The URL to pass as `--db`.
    pub fn url(&self) -> &str {
        self.fresh.url()
    }

    /// The scratch working directory of `ferry` runs.
    pub fn dir(&self) -> &Path {
        self.fresh.dir()
    }

    /// The PostgreSQL schema of this database (`None` on SQLite).
    pub fn schema(&self) -> Option<&str> {
        self.fresh.schema()
    }

    /// The `ferry` binary, pointed at this database, ready for roots and arguments.
    pub fn ferry(&self) -> Ferry<'_> {
        Ferry {
            db: self,
            roots: Vec::new(),
            env: Vec::new(),
            extra: Vec::new(),
            url: None,
            progress: Some("plain"),
            stdlib: None,
        }
    }

    /// A direct connection to the database (Ferry's library, not the binary).
    pub fn connect(&self) -> Box<dyn Connection> {
        self.fresh.connect()
    }

    /// Every table in the database (the schema, on PostgreSQL), sorted.
    pub fn tables(&self) -> Vec<String> {
        if self.backend == Backend::Sqlite && !self.sqlite_file_exists() {
            return Vec::new();
        }
        let mut conn = self.connect();
        conn.tables("%").expect("list tables")
    }

    /// Ferry's own tables (`ferry_*`) in the database.
    pub fn ferry_tables(&self) -> Vec<String> {
        self.tables()
            .into_iter()
            .filter(|t| t.starts_with("ferry_"))
            .collect()
    }

    pub fn has_table(&self, table: &str) -> bool {
        self.tables().iter().any(|t| t == table)
    }

    /// Runs a statement directly (setting up a starting state).
    pub fn execute(&self, sql: &str) {
        let mut conn = self.connect();
        conn.execute(sql, &[])
            .unwrap_or_else(|e| panic!("[{}] {sql}: {e}", self.name()));
    }

    /// The rows of a query, every value rendered as text (NULL as `None`).
    pub fn query(&self, sql: &str) -> Vec<Vec<Option<String>>> {
        let mut conn = self.connect();
        let rows = conn
            .query(sql, &[])
            .unwrap_or_else(|e| panic!("[{}] {sql}: {e}", self.name()));
        rows.rows
            .into_iter()
            .map(|r| r.into_iter().map(text).collect())
            .collect()
    }

    /// The single integer a query returns.
    pub fn scalar(&self, sql: &str) -> i64 {
        let rows = self.query(sql);
        let v = rows
            .first()
            .and_then(|r| r.first().cloned())
            .flatten()
            .unwrap_or_else(|| panic!("[{}] {sql}: no value", self.name()));
        v.parse()
            .unwrap_or_else(|_| panic!("[{}] {sql}: {v:?} is not an integer", self.name()))
    }

    pub fn count(&self, table: &str) -> i64 {
        self.scalar(&format!("SELECT COUNT(*) FROM {table}"))
    }

    /// The ledger's history, oldest first: (revision, direction, outcome).
    pub fn history(&self) -> Vec<(String, String, String)> {
        self.query("SELECT revision, direction, outcome FROM ferry_history ORDER BY id")
            .into_iter()
            .map(|r| {
                let mut it = r.into_iter().map(Option::unwrap_or_default);
                (it.next().unwrap(), it.next().unwrap(), it.next().unwrap())
            })
            .collect()
    }

    /// The revisions the history records as applied by upgrades, oldest first.
    pub fn applied_in_order(&self) -> Vec<String> {
        self.history()
            .into_iter()
            .filter(|(_, d, o)| d == "upgrade" && o == "applied")
            .map(|(r, _, _)| r)
            .collect()
    }

    /// The state `ferry_revisions` records for a revision (`None`: no record).
    pub fn revision_state(&self, revision: &str) -> Option<String> {
        let mut conn = self.connect();
        let rows = conn
            .query(
                "SELECT state FROM ferry_revisions WHERE revision = ?",
                &[Value::Text(revision.into())],
            )
            .expect("read ferry_revisions");
        rows.rows
            .into_iter()
            .next()
            .and_then(|r| text(r[0].clone()))
    }

    fn sqlite_file_exists(&self) -> bool {
        self.fresh.sqlite_path().is_some_and(Path::exists)
    }
}

impl From<FreshDb> for TestDb {
    fn from(fresh: FreshDb) -> TestDb {
        TestDb {
            backend: fresh.backend,
            fresh,
        }
    }
}

fn text(v: Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::Text(s) => Some(s),
        Value::Int(i) => Some(i.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        other => Some(other.to_string()),
    }
}

/// Runs `scenario` on a fresh SQLite database, then on a fresh PostgreSQL schema
/// (skipped with a message when `FERRY_TEST_PG_URL` is not set).
pub fn for_each_backend(test: &str, scenario: impl Fn(&TestDb)) {
    for backend in Backend::all(test) {
        scenario(&TestDb::new(backend, test).expect("backend configured"));
    }
}

/// One `ferry` invocation being put together.
pub struct Ferry<'a> {
    db: &'a TestDb,
    roots: Vec<PathBuf>,
    env: Vec<(String, OsString)>,
    extra: Vec<String>,
    url: Option<String>,
    /// `--progress MODE`; `None`: no `--progress` at all.
    progress: Option<&'static str>,
    stdlib: Option<PathBuf>,
}

impl<'a> Ferry<'a> {
    /// Passes another `--db` URL instead of the test database's (bad-URL tests).
    pub fn db_url(mut self, url: &str) -> Self {
        self.url = Some(url.into());
        self
    }

    /// Sets `--progress MODE` (default `plain`).
    pub fn progress(mut self, mode: &'static str) -> Self {
        self.progress = Some(mode);
        self
    }

    /// Passes no `--progress` at all: ferry's own default applies, or the mode the
    /// arguments give.
    pub fn no_progress(mut self) -> Self {
        self.progress = None;
        self
    }

    /// Sets `--stdlib DIR`.
    pub fn stdlib(mut self, dir: impl Into<PathBuf>) -> Self {
        self.stdlib = Some(dir.into());
        self
    }

    /// Adds `--scripts DIR`.
    pub fn scripts(mut self, dir: impl Into<PathBuf>) -> Self {
        self.roots.push(dir.into());
        self
    }

    /// Adds the fixture scenario's `scripts/` root.
    pub fn tree(self, scenario: &str) -> Self {
        let dir = fixture(scenario).join("scripts");
        self.scripts(dir)
    }

    pub fn env(mut self, key: &str, value: impl Into<OsString>) -> Self {
        self.env.push((key.into(), value.into()));
        self
    }

    /// Adds a global option placed before the command (e.g. `--lock-timeout 0`).
    pub fn opt(mut self, arg: &str) -> Self {
        self.extra.push(arg.into());
        self
    }

    /// The `ferry` binary with the environment and global options put together so far,
    /// for the caller to add the command and run as it likes.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(ferry_binary());
        cmd.current_dir(self.db.dir())
            .env_remove("FERRY_DB")
            .env_remove("FERRY_PATH")
            .env_remove("FERRY_STDLIB")
            .env("NO_COLOR", "1")
            .arg("--db")
            .arg(self.url.as_deref().unwrap_or(self.db.url()));
        if let Some(mode) = self.progress {
            cmd.arg("--progress").arg(mode);
        }
        if let Some(dir) = &self.stdlib {
            cmd.arg("--stdlib").arg(dir);
        }
        for r in &self.roots {
            cmd.arg("--scripts").arg(r);
        }
        cmd.args(&self.extra);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// [`Ferry::command`] with `args` added, and how to name the run in messages.
    fn prepared<I, S>(&self, args: I) -> (Command, String)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut cmd = self.command();
        let args: Vec<String> = args.into_iter().map(|a| a.as_ref().to_string()).collect();
        cmd.args(&args);
        (
            cmd,
            format!("[{}] ferry {}", self.db.name(), args.join(" ")),
        )
    }

    /// Runs `ferry ARGS...` to completion.
    pub fn run<I, S>(&self, args: I) -> Run
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let (mut cmd, what) = self.prepared(args);
        let out = cmd.output().unwrap_or_else(|e| panic!("{what}: {e}"));
        Run::new(what, out)
    }

    /// Starts `ferry ARGS...` with stdout and stderr piped; see [`Running`].
    pub fn spawn<I, S>(&self, args: I) -> Running
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let (mut cmd, what) = self.prepared(args);
        let child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        Running { what, child }
    }
}

/// A `ferry` process started with [`Ferry::spawn`].
pub struct Running {
    what: String,
    pub child: Child,
}

impl Running {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Reads stderr line by line until a line contains `needle`; returns the lines read.
    /// Panics if the process closes stderr first.
    pub fn wait_for_stderr(&mut self, needle: &str) -> Vec<String> {
        use std::io::{BufRead, BufReader};
        let stderr = self.child.stderr.take().expect("stderr piped");
        let mut reader = BufReader::new(stderr);
        let mut seen = Vec::new();
        loop {
            let mut line = String::new();
            let n = reader.read_line(&mut line).expect("read stderr");
            if n == 0 {
                panic!(
                    "{}: stderr closed before {needle:?}; it said:\n{}",
                    self.what,
                    seen.join("")
                );
            }
            let found = line.contains(needle);
            seen.push(line);
            if found {
                // Keep draining stderr so the child never blocks on a full pipe.
                std::thread::spawn(move || {
                    let mut sink = String::new();
                    while reader.read_line(&mut sink).unwrap_or(0) > 0 {
                        sink.clear();
                    }
                });
                return seen;
            }
        }
    }

    /// Waits for the process to end.
    pub fn finish(self) -> Run {
        let out = self
            .child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("{}: {e}", self.what));
        Run::new(self.what, out)
    }
}

/// A finished `ferry` run: exit code and output, with assertions that show both.
pub struct Run {
    pub what: String,
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn new(what: String, out: Output) -> Run {
        Run {
            what,
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// The run's name, exit code, stdout and stderr, for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "{} exited {}\n--- stdout ---\n{}--- stderr ---\n{}",
            self.what, self.code, self.stdout, self.stderr
        )
    }

    /// Asserts exit code 0.
    pub fn success(self) -> Run {
        self.code(0)
    }

    /// Asserts the exit code.
    pub fn code(self, expected: i32) -> Run {
        assert_eq!(
            self.code,
            expected,
            "expected exit {expected}: {}",
            self.describe()
        );
        self
    }

    pub fn stdout_has(self, needle: &str) -> Run {
        assert!(
            self.stdout.contains(needle),
            "stdout should contain {needle:?}: {}",
            self.describe()
        );
        self
    }

    pub fn stderr_has(self, needle: &str) -> Run {
        assert!(
            self.stderr.contains(needle),
            "stderr should contain {needle:?}: {}",
            self.describe()
        );
        self
    }

    /// stdout parsed as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.describe()))
    }
}

/// The `ferry` binary. Cargo names it to the tests of its own package (ferry-cli);
/// the tests of ferry and ferry-workload, which share this module, find it in the
/// target directory next to their own executable (target/debug/deps/..), where
/// `cargo test --workspace` and `cargo build -p ferry-cli` put it.
pub fn ferry_binary() -> PathBuf {
    if let Some(path) = option_env!("CARGO_BIN_EXE_ferry") {
        return PathBuf::from(path);
    }
    let exe = std::env::current_exe().expect("the test executable's path");
    let path = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join(format!("ferry{}", std::env::consts::EXE_SUFFIX)))
        .expect("the target directory above the test executable");
    assert!(
        path.is_file(),
        "no ferry binary at {}: this test runs it; build it first with \
         `cargo build -p ferry-cli` (or run `cargo test --workspace`)",
        path.display()
    );
    path
}

/// A root of the embedding fixtures, `tests/fixtures/embed/<name>` (see its README).
pub fn embed_root(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/embed")
        .join(name)
}
