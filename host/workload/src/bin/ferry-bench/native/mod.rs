//! The native migration: the int → UUID migration of WORKLOAD.md written by hand in
//! Rust against the drivers Ferry uses (rusqlite, tokio-postgres), as fast as we can
//! make it, with no scripting, no ledger and no checkpoints: one transaction.
//!
//! It is the yardstick of the scripted migration, so it may use everything the schema's
//! author knows (the table list, the UUID rule of raw datasets) and every trick that
//! keeps the result correct: set-based SQL, binary COPY, keys and indexes built after the
//! data, foreign keys re-checked only where values changed.
//!
//! Run as `ferry-bench native --backend B --db URL` in its own process (so that its peak
//! memory is its own); it prints one JSON object per phase on stdout.

pub mod bulk;
pub mod postgres;
mod sql_script;
mod sqlite;

use std::time::{Duration, Instant};

use ferry::backend::DbUrl;
use ferry_workload::schema::{INT_DATASETS_MANAGER, UUID_DATASETS_MANAGER};
use uuid::Uuid;

use crate::Backend;

/// The namespace and name of a raw dataset's UUID5 (WORKLOAD.md).
pub fn raw_uuid(run: &str, detector: i64, exposure: i64, instrument: &str) -> Uuid {
    let name = format!(
        "dataset_type=raw,run={run},detector={detector},exposure={exposure},instrument={instrument}"
    );
    Uuid::new_v5(&ferry_workload::RAW_UUID_NAMESPACE, name.as_bytes())
}

/// `butler_attributes` as v2 has it, and the map dropped (the same SQL on both backends).
pub fn finish_sql(map: &str) -> String {
    format!(
        "UPDATE butler_attributes SET value = '{UUID_DATASETS_MANAGER}' WHERE name = 'config:registry.managers.datasets';
         DELETE FROM butler_attributes WHERE name = 'version:{INT_DATASETS_MANAGER}';
         INSERT INTO butler_attributes (name, value) VALUES ('version:{UUID_DATASETS_MANAGER}', '1.0.0');
         DROP TABLE {map};"
    )
}

/// Times named phases and prints them as JSON lines.
#[derive(Default)]
pub struct Phases {
    last: Option<Instant>,
    done: Vec<(String, Duration)>,
}

impl Phases {
    pub fn start() -> Phases {
        Phases {
            last: Some(Instant::now()),
            done: Vec::new(),
        }
    }

    /// Ends the phase running since the last call.
    pub fn end(&mut self, name: impl Into<String>) {
        let now = Instant::now();
        let since = self.last.replace(now).unwrap_or(now);
        self.done.push((name.into(), now - since));
    }

    pub fn print(&self) {
        for (name, d) in &self.done {
            println!(
                "{}",
                serde_json::json!({ "phase": name, "seconds": d.as_secs_f64() })
            );
        }
    }
}

/// Runs the native migration, or with `sql_script` the pure-SQL bound (PostgreSQL only,
/// `sql_script.rs`).
pub fn run(backend: Backend, db: &str, sql_script: bool) -> Result<(), String> {
    let url = DbUrl::parse(db).map_err(|e| e.to_string())?;
    let phases = match (backend, url) {
        (Backend::Postgres, DbUrl::Postgres { conninfo, schema }) if sql_script => {
            sql_script::migrate(&conninfo, &schema)?
        }
        (Backend::Sqlite, _) if sql_script => {
            return Err("the pure-SQL bound is written for PostgreSQL".into())
        }
        (Backend::Sqlite, DbUrl::Sqlite { path }) => sqlite::migrate(&path)?,
        (Backend::Postgres, DbUrl::Postgres { conninfo, schema }) => {
            postgres::migrate(&conninfo, &schema)?
        }
        _ => return Err(format!("{db} is not a {} URL", backend.name())),
    };
    phases.print();
    Ok(())
}
