//! The one way a test gets a fresh database, and the one list of the databases tests run
//! on. Every other test helper (the `ferry` runner of `common`, the script API's
//! `script_support`, the real daf_butler repositories, the reference and fault
//! scenarios, the backend conformance suite) builds on this.
//!
//! - SQLite: a file in a fresh temporary folder (the file itself does not exist yet).
//! - PostgreSQL: a schema with a unique name on the server at `FERRY_TEST_PG_URL`,
//!   dropped with everything in it at the end (also when the test panics: the drop runs
//!   while unwinding). Ferry is pointed at it by the URL's `schema=` parameter.
//!
//! `FERRY_TEST_PG_URL` unset (or empty): the PostgreSQL half of a test prints a skip line
//! and passes. Set but unreachable: it fails.

#![allow(dead_code)] // each test file uses a different part of the helper

use std::path::Path;

use ferry::backend::{connect, Connection, DbUrl};

/// A database Ferry supports, as a test runs on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// `sqlite` or `postgres`, for messages and manifests.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }

    /// The backends `test` runs on: SQLite always, PostgreSQL when `FERRY_TEST_PG_URL`
    /// is set (otherwise a skip line naming `test` is printed).
    pub fn all(test: &str) -> Vec<Backend> {
        let mut out = vec![Backend::Sqlite];
        if pg_base(test).is_some() {
            out.push(Backend::Postgres);
        }
        out
    }
}

/// `FERRY_TEST_PG_URL`, if set and not empty.
pub fn pg_base_url() -> Option<String> {
    std::env::var("FERRY_TEST_PG_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

/// `FERRY_TEST_PG_URL`, or `None` after printing that `test`'s PostgreSQL part is skipped.
pub fn pg_base(test: &str) -> Option<String> {
    let base = pg_base_url();
    if base.is_none() {
        eprintln!("{test}: PostgreSQL part skipped, FERRY_TEST_PG_URL is not set");
    }
    base
}

/// `base` (a server URL) pointed at `schema`, as `ferry --db` takes it.
pub fn schema_url(base: &str, schema: &str) -> String {
    let sep = if base.contains('?') { '&' } else { '?' };
    format!("{base}{sep}schema={schema}")
}

/// A connection to the server at `base` itself (its default schema), for set-up.
pub fn pg_admin(base: &str) -> Box<dyn Connection> {
    connect(&DbUrl::parse(base).expect("FERRY_TEST_PG_URL parses"))
        .unwrap_or_else(|e| panic!("FERRY_TEST_PG_URL is set but unusable: {e}"))
}

/// A PostgreSQL schema with a unique name (`PREFIX_<uuid>`), dropped with everything in
/// it when this is dropped.
pub struct PgSchema {
    base: String,
    name: String,
}

impl PgSchema {
    /// Creates a fresh, empty schema on the server at `base`.
    pub fn create(base: &str, prefix: &str) -> PgSchema {
        let schema = PgSchema::reserve(base, prefix);
        pg_admin(base)
            .execute_batch(&format!("CREATE SCHEMA \"{}\"", schema.name))
            .expect("create test schema");
        schema
    }

    /// A unique name for a schema that someone else creates (e.g. daf_butler itself);
    /// whatever is there under that name at the end is dropped all the same.
    pub fn reserve(base: &str, prefix: &str) -> PgSchema {
        PgSchema {
            base: base.to_string(),
            name: format!("{prefix}_{}", uuid::Uuid::new_v4().simple()),
        }
    }

    /// The schema's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server URL, without the schema.
    pub fn base(&self) -> &str {
        &self.base
    }

    /// The URL of the schema, for `ferry --db`.
    pub fn url(&self) -> String {
        schema_url(&self.base, &self.name)
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        // A fresh connection: the test may have terminated every other one.
        let Some(mut admin) = DbUrl::parse(&self.base).ok().and_then(|u| connect(&u).ok()) else {
            return;
        };
        let _ = admin.execute_batch(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name));
    }
}

/// A fresh, empty repository database and a scratch folder beside it.
pub struct FreshDb {
    pub backend: Backend,
    url: String,
    /// The scratch folder (on SQLite, also the database file's folder).
    dir: tempfile::TempDir,
    pg: Option<PgSchema>,
}

impl FreshDb {
    /// `repo.sqlite` in a fresh temporary folder (the file itself does not exist yet).
    pub fn sqlite() -> FreshDb {
        FreshDb::sqlite_named("repo.sqlite")
    }

    /// A SQLite file called `file` in a fresh temporary folder.
    pub fn sqlite_named(file: &str) -> FreshDb {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite:{}", dir.path().join(file).display());
        FreshDb {
            backend: Backend::Sqlite,
            url,
            dir,
            pg: None,
        }
    }

    /// A fresh schema (`ferry_it_<uuid>`) on the server at `FERRY_TEST_PG_URL`; `None`
    /// (after printing that `test`'s PostgreSQL part is skipped) when it is not set.
    pub fn postgres(test: &str) -> Option<FreshDb> {
        let base = pg_base(test)?;
        let schema = PgSchema::create(&base, "ferry_it");
        Some(FreshDb {
            backend: Backend::Postgres,
            url: schema.url(),
            dir: tempfile::tempdir().expect("tempdir"),
            pg: Some(schema),
        })
    }

    /// A fresh database on `backend`; `None` as for [`FreshDb::postgres`].
    pub fn new(backend: Backend, test: &str) -> Option<FreshDb> {
        match backend {
            Backend::Sqlite => Some(FreshDb::sqlite()),
            Backend::Postgres => FreshDb::postgres(test),
        }
    }

    /// The database URL, for `ferry --db` and `ferry::backend::connect`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The scratch folder.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The PostgreSQL schema (`None` on SQLite).
    pub fn schema(&self) -> Option<&str> {
        self.pg.as_ref().map(PgSchema::name)
    }

    /// The SQLite file (`None` on PostgreSQL).
    pub fn sqlite_path(&self) -> Option<&Path> {
        self.url.strip_prefix("sqlite:").map(Path::new)
    }

    /// A new connection to the database through Ferry's library.
    pub fn connect(&self) -> Box<dyn Connection> {
        connect(&DbUrl::parse(&self.url).expect("test URL parses"))
            .unwrap_or_else(|e| panic!("[{}] connect: {e}", self.backend.name()))
    }
}

/// Runs `scenario` on a fresh database of each backend of [`Backend::all`].
pub fn on_each_fresh_db(test: &str, scenario: impl Fn(&FreshDb)) {
    for backend in Backend::all(test) {
        let db = FreshDb::new(backend, test).expect("backend configured");
        scenario(&db);
    }
}
