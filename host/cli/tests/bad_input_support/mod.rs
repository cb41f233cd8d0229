//! The bad-input corpus (`tests/fixtures/bad_input/<case>/`): reading the cases, the
//! base repository every case starts from, running a case through the `ferry` binary,
//! and snapshots that prove the repository unchanged.
//!
//! A case is a folder with a `case.toml` (see [`Manifest`]) and, usually, a `scripts/`
//! root holding the broken revision; `cwd/` files are copied into the working
//! directory (a bad `ferry.toml`). The base tree (`_base/scripts`) is applied up to
//! `core-2` and `aux-1` and a few rows are added by hand before every case, so that
//! "unchanged" covers schema, data and ledger.

#![allow(dead_code)] // shared with other test files only in part

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use ferry::backend::Value;
use serde::Deserialize;

use crate::common::{Backend, TestDb};

/// The corpus folder.
pub fn corpus_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/bad_input")
        .canonicalize()
        .expect("tests/fixtures/bad_input exists")
}

/// The base tree every case starts from.
pub fn base_root() -> PathBuf {
    corpus_dir().join("_base/scripts")
}

/// What the repository may look like after the case.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Effect {
    /// Nothing at all changes: SQLite bytes identical; every table's rows identical.
    #[default]
    None,
    /// The revision ran and failed: its work is rolled back (schema and every
    /// non-ledger table identical) and the ledger records the failure (one failed
    /// history row, the revision `failed`); nothing else in the ledger changes.
    FailureRecorded,
}

/// `case.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// What is broken, in a sentence.
    pub about: String,
    /// The command line after the global options (`--db`, `--scripts`); `{case}` is
    /// the case folder, `{dir}` the working directory.
    pub args: Vec<String>,
    /// Script roots: `base` is the base tree, anything else is relative to the case
    /// folder. Default: `base`, plus `scripts` when the case has one.
    pub roots: Option<Vec<String>>,
    /// A `--db` URL instead of the test database (`{pg}`: the PostgreSQL server's URL
    /// without a schema, `{pg_host}`: its `host:port`, `{pg_db}`: its database,
    /// `{schema}`: the case's schema, `{dir}`).
    pub db: Option<String>,
    /// Expected exit code.
    pub exit: i32,
    /// Words the output (stderr and stdout) must contain, each verbatim.
    pub words: Vec<String>,
    /// The backends the case runs on (default both).
    #[serde(default = "both")]
    pub backends: Vec<String>,
    #[serde(default)]
    pub effect: Effect,
    /// With `effect = "failure_recorded"`: the revision recorded as failed.
    pub failed_revision: Option<String>,
}

fn both() -> Vec<String> {
    vec!["sqlite".into(), "postgres".into()]
}

/// One case of the corpus.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub dir: PathBuf,
    pub manifest: Manifest,
}

/// Every case, sorted by name (folders starting with `_` are not cases).
pub fn cases() -> Vec<Case> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(corpus_dir()).expect("read corpus") {
        let dir = entry.expect("corpus entry").path();
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        if name.starts_with('_') || !dir.is_dir() {
            continue;
        }
        let file = dir.join("case.toml");
        let text =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let manifest: Manifest =
            toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        for b in &manifest.backends {
            assert!(
                b == "sqlite" || b == "postgres",
                "{}: unknown backend {b}",
                file.display()
            );
        }
        assert!(
            !manifest.words.is_empty(),
            "{}: a case needs words its error must contain",
            file.display()
        );
        assert!(
            manifest.exit != 0,
            "{}: a bad input must not succeed",
            file.display()
        );
        assert_eq!(
            manifest.effect == Effect::FailureRecorded,
            manifest.failed_revision.is_some(),
            "{}: failed_revision goes with effect = \"failure_recorded\"",
            file.display()
        );
        out.push(Case {
            name,
            dir,
            manifest,
        });
    }
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

impl Case {
    pub fn runs_on(&self, backend: Backend) -> bool {
        self.manifest.backends.iter().any(|b| b == backend.name())
    }

    fn roots(&self) -> Vec<PathBuf> {
        let names = self.manifest.roots.clone().unwrap_or_else(|| {
            let mut r = vec!["base".to_string()];
            if self.dir.join("scripts").is_dir() {
                r.push("scripts".into());
            }
            r
        });
        names
            .iter()
            .map(|n| {
                if n == "base" {
                    base_root()
                } else {
                    self.dir.join(n)
                }
            })
            .collect()
    }

    fn expand(&self, text: &str, db: &TestDb) -> String {
        let mut out = text
            .replace("{case}", &self.dir.display().to_string())
            .replace("{dir}", &db.dir().display().to_string())
            .replace("{schema}", db.schema().unwrap_or("public"));
        if let Some(pg) = crate::common::pg_base_url() {
            let parsed = url::Url::parse(&pg).expect("FERRY_TEST_PG_URL is a URL");
            let host = format!(
                "{}:{}",
                parsed.host_str().unwrap_or("127.0.0.1"),
                parsed.port().unwrap_or(5432)
            );
            out = out
                .replace("{pg_host}", &host)
                .replace("{pg_db}", parsed.path().trim_start_matches('/'))
                .replace("{pg}", &pg);
        }
        out
    }

    /// Copies `cwd/` into the working directory; returns the copied files and bytes.
    fn prepare_cwd(&self, db: &TestDb) -> Vec<(PathBuf, Vec<u8>)> {
        let from = self.dir.join("cwd");
        let mut copied = Vec::new();
        if let Ok(entries) = std::fs::read_dir(&from) {
            for e in entries {
                let src = e.expect("cwd entry").path();
                let dst = db.dir().join(src.file_name().unwrap());
                let bytes = std::fs::read(&src).expect("read cwd file");
                std::fs::write(&dst, &bytes).expect("copy cwd file");
                copied.push((dst, bytes));
            }
        }
        copied
    }

    /// Runs the case against `db` (already at the base state) and returns what went
    /// wrong, if anything.
    pub fn check(&self, db: &TestDb) -> Result<(), String> {
        let m = &self.manifest;
        let copied = self.prepare_cwd(db);
        let before = Snapshot::take(db);
        let mut ferry = db.ferry();
        if let Some(url) = &m.db {
            ferry = ferry.db_url(&self.expand(url, db));
        }
        for root in self.roots() {
            ferry = ferry.scripts(root);
        }
        let args: Vec<String> = m.args.iter().map(|a| self.expand(a, db)).collect();
        let run = ferry.run(&args);
        let mut faults = Vec::new();
        if run.code != m.exit {
            faults.push(format!("exit {} (expected {})", run.code, m.exit));
        }
        let output = format!("{}{}", run.stderr, run.stdout);
        for w in &m.words {
            if !output.contains(w.as_str()) {
                faults.push(format!("the output lacks {w:?}"));
            }
        }
        if output.contains("panicked") || output.contains("RUST_BACKTRACE") {
            faults.push("ferry panicked".into());
        }
        for (path, bytes) in &copied {
            if std::fs::read(path).ok().as_deref() != Some(bytes.as_slice()) {
                faults.push(format!("{} was changed", path.display()));
            }
        }
        let after = Snapshot::take(db);
        faults.extend(match m.effect {
            Effect::None => before.same_as(&after),
            Effect::FailureRecorded => {
                before.failure_recorded(&after, m.failed_revision.as_deref().unwrap_or(""))
            }
        });
        if faults.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "{} [{}]: {}\n{}",
                self.name,
                db.name(),
                faults.join("; "),
                run.describe()
            ))
        }
    }
}

/// Ledger tables a recorded failure may change.
const FAILURE_TABLES: [&str; 2] = ["ferry_history", "ferry_revisions"];

/// Everything that "unchanged" compares.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// sha256 of the SQLite file's bytes (`None` on PostgreSQL).
    pub file_sha256: Option<String>,
    /// The schema digest (`ferry digest`: tables, columns, keys, indexes; no ledger).
    pub digest: String,
    /// Every table (the ledger's included): its rows rendered as text, sorted.
    pub tables: BTreeMap<String, Vec<String>>,
}

impl Snapshot {
    pub fn take(db: &TestDb) -> Snapshot {
        let file_sha256 = (db.backend == Backend::Sqlite).then(|| {
            let path = db.url().strip_prefix("sqlite:").expect("sqlite URL");
            let bytes = std::fs::read(path).expect("the SQLite file exists");
            ferry::metadata::checksum(&bytes)
        });
        let mut conn = db.connect();
        let digest = ferry::digest::digest(conn.as_mut()).expect("digest").sha256;
        let mut tables = BTreeMap::new();
        for t in conn.tables("%").expect("list tables") {
            let rows = conn
                .query(&format!("SELECT * FROM {t}"), &[])
                .unwrap_or_else(|e| panic!("[{}] read {t}: {e}", db.name()));
            let mut lines: Vec<String> = rows
                .rows
                .into_iter()
                .map(|r| r.into_iter().map(render).collect::<Vec<_>>().join(" | "))
                .collect();
            lines.sort();
            tables.insert(t, lines);
        }
        Snapshot {
            file_sha256,
            digest,
            tables,
        }
    }

    /// The differences to `after`, where nothing may differ.
    pub fn same_as(&self, after: &Snapshot) -> Vec<String> {
        let mut faults = Vec::new();
        if self.file_sha256 != after.file_sha256 {
            faults.push("the SQLite file's bytes changed".to_string());
        }
        faults.extend(self.table_faults(after, &[]));
        faults
    }

    /// The differences to `after`, where the revision `failed` ran and failed.
    pub fn failure_recorded(&self, after: &Snapshot, failed: &str) -> Vec<String> {
        let mut faults = self.table_faults(after, &FAILURE_TABLES);
        let rows = |s: &Snapshot, t: &str| s.tables.get(t).cloned().unwrap_or_default();
        let (h0, h1) = (rows(self, "ferry_history"), rows(after, "ferry_history"));
        let new: Vec<&String> = h1.iter().filter(|r| !h0.contains(r)).collect();
        let lost = h0.iter().any(|r| !h1.contains(r));
        let one_failure = new.len() == 1
            && new[0].contains(&format!("| {failed} |"))
            && new[0].contains("| failed |");
        if lost || h1.len() != h0.len() + 1 || !one_failure {
            faults.push(format!(
                "ferry_history should gain one failed row of {failed}, it gained {new:?}"
            ));
        }
        let (r0, r1) = (
            rows(self, "ferry_revisions"),
            rows(after, "ferry_revisions"),
        );
        let changed: Vec<&String> = r1.iter().filter(|r| !r0.contains(r)).collect();
        let ok = changed.len() == 1
            && changed[0].starts_with(&format!("{failed} |"))
            && changed[0].contains("| failed |")
            && r0
                .iter()
                .all(|r| r1.contains(r) || r.starts_with(&format!("{failed} |")));
        if !ok {
            faults.push(format!(
                "ferry_revisions should only record {failed} as failed, it changed {changed:?}"
            ));
        }
        faults
    }

    fn table_faults(&self, after: &Snapshot, except: &[&str]) -> Vec<String> {
        let mut faults = Vec::new();
        if self.digest != after.digest {
            faults.push(format!(
                "the schema digest changed ({} -> {})",
                self.digest, after.digest
            ));
        }
        let names: std::collections::BTreeSet<&String> =
            self.tables.keys().chain(after.tables.keys()).collect();
        for t in names {
            if except.contains(&t.as_str()) {
                continue;
            }
            match (self.tables.get(t), after.tables.get(t)) {
                (Some(a), Some(b)) if a == b => {}
                (Some(a), Some(b)) => faults.push(format!(
                    "table {t} changed: {} rows -> {} rows",
                    a.len(),
                    b.len()
                )),
                (Some(_), None) => faults.push(format!("table {t} disappeared")),
                (None, _) => faults.push(format!("table {t} appeared")),
            }
        }
        faults
    }
}

fn render(v: Value) -> String {
    match v {
        Value::Null => "NULL".into(),
        Value::Text(s) => s,
        Value::Int(i) => i.to_string(),
        Value::Bool(b) => b.to_string(),
        other => other.to_string(),
    }
}

/// Brings a fresh database to the base state: `core-2` and `aux-1` applied by the
/// binary, then rows and a table Ferry knows nothing of added by hand.
pub fn make_base(db: &TestDb) {
    db.ferry()
        .scripts(base_root())
        .run(["upgrade", "core-2", "aux-1"])
        .success();
    db.execute("INSERT INTO items (id, name) VALUES (6, 'added by hand')");
    db.execute("CREATE TABLE local_notes (id BIGINT PRIMARY KEY, body TEXT)");
    db.execute("INSERT INTO local_notes (id, body) VALUES (1, 'kept by the operator')");
}

/// A copy of a SQLite base repository for one case.
pub fn sqlite_from(master: &Path) -> TestDb {
    let db = TestDb::sqlite();
    let path = db.url().strip_prefix("sqlite:").expect("sqlite URL");
    std::fs::copy(master, path).expect("copy the base repository");
    db
}

/// Runs `selected` cases on SQLite (each on a copy of one base repository) and, when
/// `FERRY_TEST_PG_URL` is set, on PostgreSQL (a fresh base schema each), `threads` at a
/// time; `check` judges one run and returns what went wrong. Prints the counts under
/// `name` and fails with every failure at once.
pub fn run_corpus(
    name: &str,
    selected: &[&Case],
    threads: usize,
    check: impl Fn(&Case, &TestDb) -> Result<(), String> + Sync,
) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;
    let postgres = crate::common::pg_base_url().is_some();
    if !postgres {
        eprintln!("{name}: PostgreSQL part skipped, FERRY_TEST_PG_URL is not set");
    }
    // One SQLite base repository, copied for every case.
    let master = TestDb::sqlite();
    make_base(&master);
    let master_path = master
        .url()
        .strip_prefix("sqlite:")
        .expect("sqlite URL")
        .to_string();
    let mut jobs: Vec<(&Case, Backend)> = Vec::new();
    for c in selected {
        if c.runs_on(Backend::Sqlite) {
            jobs.push((c, Backend::Sqlite));
        }
        if postgres && c.runs_on(Backend::Postgres) {
            jobs.push((c, Backend::Postgres));
        }
    }
    let next = AtomicUsize::new(0);
    let failures = Mutex::new(Vec::new());
    let start = std::time::Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::SeqCst);
                let Some((case, backend)) = jobs.get(i) else {
                    break;
                };
                let db = match backend {
                    Backend::Sqlite => sqlite_from(master_path.as_ref()),
                    Backend::Postgres => {
                        let db = TestDb::postgres(name).expect("PostgreSQL");
                        make_base(&db);
                        db
                    }
                };
                if let Err(e) = check(case, &db) {
                    failures.lock().unwrap().push(e);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap();
    let count = |b: Backend| jobs.iter().filter(|(_, jb)| *jb == b).count();
    eprintln!(
        "{name}: {} cases, {} on sqlite, {} on postgres, {} failed, in {:.1}s",
        selected.len(),
        count(Backend::Sqlite),
        count(Backend::Postgres),
        failures.len(),
        start.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} runs failed:\n\n{}",
        failures.len(),
        jobs.len(),
        failures.join("\n\n")
    );
}
