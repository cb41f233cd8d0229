//! Building a [`Migrator`]: where the database is, the script roots, configuration,
//! limits and an observer.

use crate::backend::{DbUrl, LentConnection, PgPool};
use crate::config::{self, ConfigMap};
use crate::migrator::{Error, Migrator};
use crate::observer::Observer;
use crate::source::Source;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

/// Builds a [`Migrator`]. Every setting but the database is optional.
///
/// From a URL, with the configuration of a `ferry.toml`:
///
/// ```no_run
/// use ferry::Migrator;
/// let migrator = Migrator::builder()
///     .url("postgresql://butler@db.example.org/registry?schema=main")
///     .roots(["scripts", "plugins/obs_base"])
///     .config_file("ferry.toml")?
///     .set("datasets.uuid_batch_size", 50_000)
///     .build()?;
/// # Ok::<(), ferry::Error>(())
/// ```
///
/// From the application's own SQLite connection, here in memory (SQLite needs no
/// lock file then: nobody else can see the database), given back afterwards:
///
/// ```
/// use ferry::{Migrator, UpgradeOptions};
/// # let scripts = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/trees/linear/scripts");
/// let conn = rusqlite::Connection::open_in_memory()?;
/// let migrator = Migrator::builder()
///     .sqlite_connection(conn)?
///     .roots([scripts])
///     .build()?;
/// migrator.upgrade(&[], &UpgradeOptions::default())?;
/// let conn = migrator.into_sqlite_connection().expect("the migrator lent it");
/// let n: i64 = conn.query_row("SELECT COUNT(*) FROM alpha_item", [], |r| r.get(0))?;
/// assert_eq!(n, 1);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// From a tokio-postgres client the application connected (it keeps driving the
/// connection task on its own runtime; call the migrator from a blocking thread, e.g.
/// `tokio::task::spawn_blocking`, since it blocks on each statement):
///
/// ```no_run
/// # async fn example() -> Result<(), Box<dyn std::error::Error>> {
/// use ferry::Migrator;
/// let (client, connection) =
///     tokio_postgres::connect("host=127.0.0.1 user=postgres dbname=test", tokio_postgres::NoTls).await?;
/// tokio::spawn(connection);
/// let report = tokio::task::spawn_blocking(move || -> Result<_, ferry::Error> {
///     let migrator = Migrator::builder()
///         .postgres_client(client, "registry")?
///         .roots(["scripts"])
///         .build()?;
///     migrator.upgrade(&[], &Default::default())
/// })
/// .await??;
/// assert!(report.succeeded());
/// # Ok(()) }
/// ```
#[derive(Default)]
pub struct Builder {
    main: Option<Result<Source, Error>>,
    placed: Vec<(String, Result<Source, Error>, Vec<String>)>,
    roots: Option<Vec<PathBuf>>,
    stdlib: Option<Option<PathBuf>>,
    config: ConfigMap,
    sets: Vec<(String, toml::Value)>,
    lock_timeout: Option<Duration>,
    observer: Option<Rc<dyn Observer>>,
    limits_from_config: bool,
}

impl Builder {
    /// The main database: `sqlite:PATH`, `postgres://…` or `postgresql://…` (`?schema=NAME`).
    pub fn url(mut self, url: &str) -> Self {
        self.main = Some(DbUrl::parse(url).map(Source::Url).map_err(Error::from));
        self
    }

    /// The main database is the application's own SQLite connection, lent to the
    /// migrator for every operation ([`Migrator::into_sqlite_connection`] gives it
    /// back). Ferry turns foreign keys on and sets a busy timeout on it.
    pub fn sqlite_connection(mut self, conn: rusqlite::Connection) -> Result<Self, Error> {
        self.main = Some(Ok(Source::Lent(LentConnection::sqlite(conn)?)));
        Ok(self)
    }

    /// The main database is `schema` on the server of the application's own
    /// tokio-postgres client, whose connection task the application drives. The
    /// migrator keeps the client: it changes the session (`search_path`, the statement
    /// timeout, an advisory lock), so the client must not serve anyone else.
    pub fn postgres_client(
        mut self,
        client: tokio_postgres::Client,
        schema: &str,
    ) -> Result<Self, Error> {
        self.main = Some(Ok(Source::Lent(LentConnection::postgres(client, schema)?)));
        Ok(self)
    }

    /// The main database is the PostgreSQL schema `schema` reached through the
    /// application's own `deadpool_postgres` pool (its server, credentials, TLS and
    /// connect hooks). Each operation gets a connection of its own from the pool's
    /// manager, which holds the migration lock and does the work, and closes it at the
    /// end: Ferry changes the session it works on, so it never hands a connection back
    /// to the pool, and never takes one the application is using. The connection's I/O
    /// runs on Ferry's own runtime, so this works from inside the application's
    /// runtime, current-thread or multi-threaded (see docs/EMBEDDING.md).
    pub fn pg_pool(mut self, pool: deadpool_postgres::Pool, schema: &str) -> Self {
        self.main = Some(Ok(Source::Pool(Rc::new(PgPool::new(pool, schema)))));
        self
    }

    /// Places `trees` in another database at `url` (see `databases`).
    pub fn database<I, S>(mut self, name: &str, url: &str, trees: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.placed.push((
            name.to_string(),
            DbUrl::parse(url).map(Source::Url).map_err(Error::from),
            trees.into_iter().map(Into::into).collect(),
        ));
        self
    }

    /// The script roots (default: `./scripts` and every directory under `./plugins`).
    pub fn roots<I, P>(mut self, roots: I) -> Self
    where
        I: IntoIterator<Item = P>,
        P: AsRef<Path>,
    {
        self.roots = Some(
            roots
                .into_iter()
                .map(|p| p.as_ref().to_path_buf())
                .collect(),
        );
        self
    }

    /// The folder of shared Rhai modules (default: `./stdlib` if it exists).
    pub fn stdlib(mut self, stdlib: Option<PathBuf>) -> Self {
        self.stdlib = Some(stdlib);
        self
    }

    /// Configuration, as dotted keys; later calls and [`Self::set`] override it.
    pub fn config(mut self, config: ConfigMap) -> Self {
        self.config.extend(config);
        self
    }

    /// Reads a configuration file (`ferry.toml`), its `[databases]` section included.
    pub fn config_file(mut self, path: impl AsRef<Path>) -> Result<Self, Error> {
        self.config.extend(config::read_file(path.as_ref())?);
        Ok(self)
    }

    /// Sets one configuration value (as `--set KEY=VALUE` does).
    pub fn set(mut self, key: &str, value: impl Into<toml::Value>) -> Self {
        self.sets.push((key.to_string(), value.into()));
        self
    }

    /// Also read the sandbox limits from the configuration's `limits.*` keys (the
    /// binary does); otherwise the defaults apply.
    pub fn limits_from_config(mut self) -> Self {
        self.limits_from_config = true;
        self
    }

    /// How long to wait for another migrator's lock (default 10 s).
    pub fn lock_timeout(mut self, timeout: Duration) -> Self {
        self.lock_timeout = Some(timeout);
        self
    }

    /// Receives progress and log events ([`crate::observer`]).
    pub fn observer(mut self, observer: Rc<dyn Observer>) -> Self {
        self.observer = Some(observer);
        self
    }

    /// The migrator; fails on a bad URL, configuration or missing database.
    pub fn build(self) -> Result<Migrator, Error> {
        let main = self.main.unwrap_or_else(|| {
            Err(Error::Refused(
                "no database given: call url(), sqlite_connection(), postgres_client() or pg_pool()".into(),
            ))
        })?;
        let mut config = self.config;
        config.extend(self.sets);
        let mut m = Migrator::with_source(main);
        for (name, source, trees) in self.placed {
            m = m.with_database(&name, source?, trees);
        }
        if self.limits_from_config {
            m = m.with_limits(config::limits(&config)?);
        }
        // Bad `[databases]` configuration is reported now, not at the first operation.
        m = m.with_config(config);
        m.databases()?;
        if let Some(roots) = self.roots {
            m = m.with_roots(roots);
        }
        if let Some(stdlib) = self.stdlib {
            m = m.with_stdlib(stdlib);
        }
        if let Some(t) = self.lock_timeout {
            m = m.with_lock_timeout(t);
        }
        if let Some(o) = self.observer {
            m = m.with_observer(o);
        }
        Ok(m)
    }
}

impl Migrator {
    /// Gives back the SQLite connection lent with [`Builder::sqlite_connection`]
    /// (`None` when the main database was not a lent SQLite connection).
    pub fn into_sqlite_connection(self) -> Option<rusqlite::Connection> {
        match self.main {
            Source::Lent(lent) => lent.into_sqlite(),
            _ => None,
        }
    }
}
