//! A plain tokio service that embeds Ferry: at start-up, inside its own async runtime,
//! it verifies its repository and migrates it (auto-migrate), then serves from its
//! own `deadpool_postgres` pool, which Ferry borrowed for the migration.
//!
//! ```sh
//! cargo run --example pool_service -- 'postgresql://postgres@127.0.0.1/test' my_schema \
//!     tests/fixtures/embed/base
//! cargo run --example pool_service -- sqlite:inventory.sqlite - tests/fixtures/embed/base
//! ```
//!
//! `host/ferry/tests/embed_async.rs` runs [`start`] on current-thread and multi-threaded
//! runtimes against PostgreSQL and SQLite, so this example cannot rot.

use ferry::Access;
use ferry::{Migrator, Verification, VerifyOptions};
use std::path::PathBuf;

/// Where the service keeps its data.
pub enum Store {
    /// The application's pool and the schema its tables live in.
    Postgres {
        pool: deadpool_postgres::Pool,
        schema: String,
    },
    /// A SQLite file (`sqlite:PATH`).
    Sqlite(String),
}

/// The service, started: what Ferry found, and how many items it holds.
pub struct Service {
    pub verification: Verification,
    pub items: i64,
}

/// A pool for a `postgresql://` URL (Ferry's `?schema=` and TLS keys are not for it).
pub fn pool(url: &str) -> Result<deadpool_postgres::Pool, String> {
    let config: tokio_postgres::Config = url.parse().map_err(|e| format!("{e}"))?;
    let manager = deadpool_postgres::Manager::new(config, tokio_postgres::NoTls);
    deadpool_postgres::Pool::builder(manager)
        .max_size(4)
        .build()
        .map_err(|e| e.to_string())
}

/// Verifies and migrates the repository, then reads from it as the service would.
/// Called from async code: Ferry's calls block this task while they run, which at
/// start-up is what a service wants (nothing is served before the schema is right).
pub async fn start(store: &Store, scripts: Vec<PathBuf>) -> Result<Service, String> {
    let builder = match store {
        Store::Postgres { pool, schema } => Migrator::builder().pg_pool(pool.clone(), schema),
        Store::Sqlite(url) => Migrator::builder().url(url),
    };
    let migrator = builder
        .roots(scripts)
        .stdlib(None)
        .build()
        .map_err(|e| e.to_string())?;
    let options = VerifyOptions::default()
        .auto_migrate(true)
        .supports("app", "1.1.0")
        .supports("install", "1.0.0");
    let verification = migrator.verify(&options).map_err(|e| e.to_string())?;
    if verification.access.access != Access::Write {
        return Err(format!("not usable: {}", verification.access.reason));
    }
    // Serve: the application's own pool (or file) holds the migrated tables.
    let items = match store {
        Store::Postgres { pool, schema } => {
            let client = pool.get().await.map_err(|e| e.to_string())?;
            let sql = format!("SELECT count(*) FROM \"{schema}\".app_item");
            client
                .query_one(&sql, &[])
                .await
                .map_err(|e| e.to_string())?
                .get(0)
        }
        Store::Sqlite(url) => {
            let path = url.trim_start_matches("sqlite:");
            let conn = rusqlite::Connection::open(path).map_err(|e| e.to_string())?;
            conn.query_row("SELECT count(*) FROM app_item", [], |r| r.get(0))
                .map_err(|e| e.to_string())?
        }
    };
    Ok(Service {
        verification,
        items,
    })
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, schema, scripts] = args.as_slice() else {
        return Err("usage: pool_service URL SCHEMA|- SCRIPTS".into());
    };
    let store = if url.starts_with("sqlite:") {
        Store::Sqlite(url.clone())
    } else {
        Store::Postgres {
            pool: pool(url)?,
            schema: schema.clone(),
        }
    };
    let service = start(&store, vec![PathBuf::from(scripts)]).await?;
    println!(
        "started: {} item(s), migrated: {}",
        service.items,
        service.verification.migrated.is_some()
    );
    Ok(())
}
