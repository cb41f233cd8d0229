//! Shared helpers of the script API tests: a scratch repository (a SQLite file in a
//! temporary directory, or a fresh PostgreSQL schema) plus a script tree written by the
//! test, driven through [`Migrator`] exactly as an application would.
//!
//! The database comes from `common::fresh` (a test file declares `mod common;` too):
//! PostgreSQL runs when `FERRY_TEST_PG_URL` is set (e.g.
//! `postgresql://postgres@127.0.0.1:5432/test`); each test gets its own schema, dropped
//! at the end. Unset: the PostgreSQL variant prints that it was skipped and passes. Set
//! but unreachable: it fails.

#![allow(dead_code)]

use ferry::backend::{connect, Connection, DbUrl, Value};
use ferry::migrator::{Error, Migrator, UpgradeOptions};
use ferry::observer::{Event, Observer};
use ferry::runner::Report;
use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::rc::Rc;

pub use crate::common::fresh::Backend;
use crate::common::fresh::FreshDb;

/// A scratch repository and its script tree.
pub struct Repo {
    pub backend: Backend,
    pub url: String,
    /// The database, and the folder of the scripts (on SQLite, also of the file).
    db: FreshDb,
    revisions: RefCell<Vec<String>>,
}

/// Opens a scratch repository on `backend`, or `None` (after saying so) when the
/// backend is PostgreSQL and `FERRY_TEST_PG_URL` is unset.
pub fn repo(backend: Backend, test: &str) -> Option<Repo> {
    let db = FreshDb::new(backend, test)?;
    std::fs::create_dir_all(db.dir().join("scripts/t")).unwrap();
    Some(Repo {
        backend,
        url: db.url().to_string(),
        db,
        revisions: RefCell::new(Vec::new()),
    })
}

/// Runs a test body once on SQLite and once on PostgreSQL (`mod NAME { sqlite, postgres }`).
#[macro_export]
macro_rules! both {
    ($name:ident, $body:expr) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;
            #[test]
            fn sqlite() {
                let r = $crate::script_support::repo(
                    $crate::script_support::Backend::Sqlite,
                    stringify!($name),
                )
                .unwrap();
                let f: fn(&$crate::script_support::Repo) = $body;
                f(&r);
            }
            #[test]
            fn postgres() {
                if let Some(r) = $crate::script_support::repo(
                    $crate::script_support::Backend::Postgres,
                    stringify!($name),
                ) {
                    let f: fn(&$crate::script_support::Repo) = $body;
                    f(&r);
                }
            }
        }
    };
}

/// The header of a test revision `id` in tree `t` with the given parents.
pub fn header(id: &str, parents: &[&str], hooks: &[&str]) -> String {
    let list = |v: &[&str]| {
        v.iter()
            .map(|p| format!("{p:?}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    format!(
        "const REVISION = {id:?};\nconst TREE = \"t\";\nconst PARENTS = [{}];\n\
         const VERSION = {id:?};\nconst DEPENDS_ON = [];\nconst MESSAGE = \"test {id}\";\n\
         const HOOKS = [{}];\n",
        list(parents),
        list(hooks)
    )
}

impl Repo {
    pub fn root(&self) -> &Path {
        self.db.dir()
    }

    /// Writes a file under the repository's directory (creating folders).
    pub fn write(&self, rel: &str, text: &str) -> PathBuf {
        let path = self.db.dir().join(rel);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Adds a revision whose body (everything after the header) is `body`; it follows
    /// the previously added revision. Returns the file's path.
    pub fn revision(&self, id: &str, body: &str) -> PathBuf {
        self.revision_with_hooks(id, &[], body)
    }

    pub fn revision_with_hooks(&self, id: &str, hooks: &[&str], body: &str) -> PathBuf {
        let parents: Vec<String> = self
            .revisions
            .borrow()
            .last()
            .cloned()
            .into_iter()
            .collect();
        let parents: Vec<&str> = parents.iter().map(String::as_str).collect();
        self.revisions.borrow_mut().push(id.to_string());
        self.write(
            &format!("scripts/t/{id}.rhai"),
            &format!("{}\n{body}\n", header(id, &parents, hooks)),
        )
    }

    /// Replaces the body of revision `id` (keeping its parents), e.g. to fix a bug.
    pub fn rewrite(&self, id: &str, body: &str) {
        let path = self.db.dir().join(format!("scripts/t/{id}.rhai"));
        let text = std::fs::read_to_string(&path).unwrap();
        let head: String = text
            .lines()
            .take_while(|l| l.starts_with("const "))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&path, format!("{head}\n{body}\n")).unwrap();
    }

    /// The script roots: `scripts/` and every folder under `plugins/`.
    pub fn roots(&self) -> Vec<PathBuf> {
        let mut roots = vec![self.db.dir().join("scripts")];
        if let Ok(entries) = std::fs::read_dir(self.db.dir().join("plugins")) {
            let mut plugins: Vec<PathBuf> =
                entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
            plugins.sort();
            roots.extend(plugins);
        }
        roots
    }

    /// A migrator over this repository; `stdlib/` is the repository's own, if written.
    pub fn migrator(&self) -> Migrator {
        let stdlib = self.db.dir().join("stdlib");
        Migrator::new(&self.url)
            .expect("url")
            .with_roots(self.roots())
            .with_stdlib(stdlib.is_dir().then_some(stdlib))
    }

    /// Upgrades to the heads with `m`; panics on any error, a failed revision included.
    pub fn upgrade_with(&self, m: Migrator) -> Report {
        m.upgrade(&[], &UpgradeOptions::default())
            .unwrap_or_else(|e| panic!("upgrade failed or did not run:\n{e}"))
    }

    pub fn try_upgrade(&self) -> Result<Report, Error> {
        self.migrator().upgrade(&[], &UpgradeOptions::default())
    }

    /// Upgrades to the heads and asserts that every revision applied.
    pub fn upgrade_ok(&self) {
        let _report = self.upgrade_with(self.migrator());
    }

    /// Upgrades and returns the failure (panics if the upgrade succeeded).
    pub fn upgrade_fails(&self) -> ferry::script::ScriptError {
        self.upgrade_fails_with(self.migrator())
    }

    /// Upgrades with `m` and returns the failure, read from the partial report of the
    /// `Error::Failed` (whose message must be the failure's own).
    pub fn upgrade_fails_with(&self, m: Migrator) -> ferry::script::ScriptError {
        match m.upgrade(&[], &UpgradeOptions::default()) {
            Err(Error::Failed { report }) => {
                let failure = report
                    .failed
                    .clone()
                    .expect("a failed run's report names its failure");
                let err = Error::Failed { report };
                assert_eq!(err.to_string(), failure.to_string());
                failure
            }
            Err(e) => panic!("the upgrade was expected to fail in a revision, not: {e}"),
            Ok(report) => panic!("the upgrade was expected to fail: {report:?}"),
        }
    }

    pub fn conn(&self) -> Box<dyn Connection> {
        connect(&DbUrl::parse(&self.url).unwrap()).expect("connect")
    }

    /// The first column of every row of `sql`.
    pub fn column(&self, sql: &str) -> Vec<Value> {
        self.conn()
            .query(sql, &[])
            .unwrap_or_else(|e| panic!("{sql}: {e}"))
            .rows
            .into_iter()
            .map(|r| r.into_iter().next().unwrap())
            .collect()
    }

    /// The single value of `sql`.
    pub fn value(&self, sql: &str) -> Value {
        self.column(sql).into_iter().next().unwrap_or(Value::Null)
    }

    pub fn int(&self, sql: &str) -> i64 {
        match self.value(sql) {
            Value::Int(i) => i,
            other => panic!("{sql}: expected an integer, found {other:?}"),
        }
    }

    pub fn text(&self, sql: &str) -> String {
        match self.value(sql) {
            Value::Text(t) => t,
            other => panic!("{sql}: expected text, found {other:?}"),
        }
    }
}

/// An observer that keeps every event.
#[derive(Default)]
pub struct Collect(pub RefCell<Vec<Event>>);

impl Observer for Collect {
    fn event(&self, event: &Event) {
        self.0.borrow_mut().push(event.clone());
    }
}

impl Collect {
    pub fn new() -> Rc<Collect> {
        Rc::new(Collect::default())
    }
    pub fn events(&self) -> Vec<Event> {
        self.0.borrow().clone()
    }
}
