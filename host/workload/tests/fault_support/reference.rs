//! The reference repository (WORKLOAD.md) on a fresh database, and the `ferry` binary
//! pointed at it with the project's own trees, plugins and stdlib.

use crate::common::{Backend, Ferry, TestDb};
use crate::reference_support;
use crate::reference_support::foreign::{self, Source};
use ferry_workload::Snapshot;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The int → UUID revision, the one the kill harness targets first.
pub const UUID_REVISION: &str = "datasets-uuid-1.0.0";

/// Its steps before the rewrite, in the order the script runs them.
pub const UUID_MAP_STEPS: [&str; 4] = [
    "create the id map",
    "map dataset ids",
    "map removed datasets",
    "key the id map",
];

/// The step that swaps the rewritten tables in (`schema::rewrite_tables(…, #{ steps: true })`).
pub const UUID_SWAP_STEP: &str = "swap rewritten tables";

/// Its last step.
pub const UUID_RECORD_STEP: &str = "record the UUID manager";

/// The tables the revision rewrites, each with the column that becomes a UUID, in the
/// order of their steps (`rewrite {table}`): `dataset` first (the others reference it),
/// then every table with a `dataset_id` column, sorted by name as `tables::with_column`
/// returns them.
pub fn rewritten_tables() -> Vec<(&'static str, &'static str)> {
    let mut children = ferry_workload::schema::DATASET_ID_TABLES.to_vec();
    children.sort();
    std::iter::once(("dataset", "id"))
        .chain(children.into_iter().map(|t| (t, "dataset_id")))
        .collect()
}

/// Every step of the revision, in the order the script runs them.
pub fn uuid_steps() -> Vec<String> {
    UUID_MAP_STEPS
        .iter()
        .map(|s| s.to_string())
        .chain(
            rewritten_tables()
                .iter()
                .map(|(t, _)| format!("rewrite {t}")),
        )
        .chain([UUID_SWAP_STEP.to_string(), UUID_RECORD_STEP.to_string()])
        .collect()
}

/// The name under which a table's rewritten copy is built until the swap.
pub fn staged_copy(table: &str) -> String {
    ferry::backend::rewrite_plan::staged_name(table)
}

/// The id map the revision builds and drops.
pub const UUID_MAP: &str = "ferry_dataset_uuid_map";

/// The script roots of the reference repository: the core trees and every plugin.
pub fn roots() -> Vec<PathBuf> {
    let root = reference_support::repo_root();
    [
        "scripts",
        "plugins/obs_base",
        "plugins/obs_lsst",
        "plugins/obs_subaru",
    ]
    .iter()
    .map(|r| root.join(r))
    .collect()
}

/// The `ferry` binary against `db` with the reference roots and stdlib, and no
/// `--progress`; add options, then run it or take its [`Ferry::command`].
pub fn ferry(db: &TestDb) -> Ferry<'_> {
    ferry_with(db, &roots())
}

/// The `ferry` binary against `db` with script roots `roots` and the project's stdlib,
/// and no `--progress`.
pub fn ferry_with<'a>(db: &'a TestDb, roots: &[PathBuf]) -> Ferry<'a> {
    let ferry = db
        .ferry()
        .no_progress()
        .stdlib(reference_support::repo_root().join("stdlib"));
    roots.iter().fold(ferry, |ferry, r| ferry.scripts(r))
}

/// Asks for progress as JSON lines (what [`super::process`] reads) and sets how long
/// to wait for another migrator's lock.
pub fn watched<'a>(ferry: Ferry<'a>, lock_timeout: &str) -> Ferry<'a> {
    ferry
        .progress("json")
        .opt("--lock-timeout")
        .opt(lock_timeout)
}

/// `ferry upgrade [target]` on the reference roots, watched, with a lock timeout of
/// `lock_timeout` seconds and `datasets.uuid_batch_size` set to `batch`.
pub fn upgrade(db: &TestDb, lock_timeout: &str, batch: u64, target: Option<&str>) -> Command {
    let mut cmd = watched(ferry(db), lock_timeout).command();
    cmd.arg("--set")
        .arg(format!("datasets.uuid_batch_size={batch}"))
        .arg("upgrade");
    cmd.args(target);
    cmd
}

/// The scripts of a fault scenario, `tests/fixtures/faults/<name>/scripts`.
pub fn fault_fixture(name: &str) -> PathBuf {
    reference_support::repo_root()
        .join("tests/fixtures/faults")
        .join(name)
        .join("scripts")
}

/// The SQLite file behind a `sqlite:` URL.
pub fn sqlite_path(db: &TestDb) -> PathBuf {
    PathBuf::from(
        db.url()
            .strip_prefix("sqlite:")
            .expect("a SQLite test database"),
    )
}

/// Makes fresh v1 reference repositories at scale `n`, all alike: on SQLite by copying
/// one file filled once, on PostgreSQL by filling a fresh schema each time; from Ferry's
/// generator, or (`Source::Foreign`) from `tests/fixtures/foreign_v1`, adopted.
pub struct V1Maker {
    backend: Backend,
    source: Source,
    n: u64,
    seed: u64,
    /// SQLite: the filled template and its snapshot.
    template: Option<(TestDb, Snapshot)>,
    name: String,
}

impl V1Maker {
    pub fn new(backend: Backend, test: &str, n: u64, seed: u64) -> V1Maker {
        V1Maker::from_source(Source::Ferry, backend, test, n, seed)
    }

    pub fn from_source(source: Source, backend: Backend, test: &str, n: u64, seed: u64) -> V1Maker {
        let template = (backend == Backend::Sqlite).then(|| {
            let db = TestDb::sqlite();
            let mut conn = foreign::create_v1_from(source, db.url(), n, seed);
            let snapshot = Snapshot::take(conn.as_mut()).expect("snapshot of the template");
            (db, snapshot)
        });
        V1Maker {
            backend,
            source,
            n,
            seed,
            template,
            name: test.to_string(),
        }
    }

    /// A fresh v1 repository and its snapshot by natural keys; `None` when the backend
    /// is PostgreSQL and FERRY_TEST_PG_URL is not set.
    pub fn make(&self) -> Option<(TestDb, Snapshot)> {
        match &self.template {
            Some((template, snapshot)) => {
                let db = TestDb::sqlite();
                copy_file(&sqlite_path(template), &sqlite_path(&db));
                Some((db, snapshot.clone()))
            }
            None => {
                let db = TestDb::postgres(&self.name)?;
                let mut conn = foreign::create_v1_from(self.source, db.url(), self.n, self.seed);
                let snapshot = Snapshot::take(conn.as_mut()).expect("snapshot");
                Some((db, snapshot))
            }
        }
    }
}

fn copy_file(from: &Path, to: &Path) {
    std::fs::copy(from, to)
        .unwrap_or_else(|e| panic!("copy {} to {}: {e}", from.display(), to.display()));
}
