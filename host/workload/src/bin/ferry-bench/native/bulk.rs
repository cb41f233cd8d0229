//! The native half of the bulk-insert benchmark: the rows the benchmark's scripts insert
//! (`id`, `row-{id}`, 0.5 for id 1..=N), written through the drivers directly: one
//! cached prepared statement in one transaction on SQLite, binary COPY on PostgreSQL.

use std::pin::pin;

use ferry::backend::DbUrl;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::Type;

use super::Phases;
use crate::Backend;

pub const TABLE_SQL: &str =
    "CREATE TABLE bulk_rows (id BIGINT NOT NULL, name VARCHAR(64) NOT NULL, score DOUBLE PRECISION NOT NULL)";

pub fn run(backend: Backend, db: &str, rows: u64) -> Result<(), String> {
    let url = DbUrl::parse(db).map_err(|e| e.to_string())?;
    let phases = match (backend, url) {
        (Backend::Sqlite, DbUrl::Sqlite { path }) => sqlite(&path, rows),
        (Backend::Postgres, DbUrl::Postgres { conninfo, schema }) => {
            postgres(&conninfo, &schema, rows)
        }
        _ => return Err(format!("{db} is not a {} URL", backend.name())),
    }?;
    phases.print();
    Ok(())
}

fn sqlite(path: &std::path::Path, rows: u64) -> Result<Phases, String> {
    let err = |e: rusqlite::Error| e.to_string();
    let conn = rusqlite::Connection::open(path).map_err(err)?;
    conn.execute_batch(&format!("PRAGMA cache_size = -16384; {TABLE_SQL}"))
        .map_err(err)?;
    let mut phases = Phases::start();
    conn.execute_batch("BEGIN IMMEDIATE").map_err(err)?;
    {
        let mut insert = conn
            .prepare_cached("INSERT INTO bulk_rows (id, name, score) VALUES (?1, ?2, ?3)")
            .map_err(err)?;
        let mut name = String::new();
        for i in 1..=rows as i64 {
            use std::fmt::Write;
            name.clear();
            let _ = write!(name, "row-{i}");
            insert
                .execute(rusqlite::params![i, name, 0.5f64])
                .map_err(err)?;
        }
    }
    conn.execute_batch("COMMIT").map_err(err)?;
    phases.end("insert");
    Ok(phases)
}

fn postgres(conninfo: &str, schema: &str, rows: u64) -> Result<Phases, String> {
    let err = |e: tokio_postgres::Error| e.to_string();
    let (rt, client) = super::postgres::connect(conninfo)?;
    rt.block_on(client.batch_execute(&format!("SET search_path TO \"{schema}\"; {TABLE_SQL}")))
        .map_err(err)?;
    let mut phases = Phases::start();
    rt.block_on(async {
        let sink = client
            .copy_in("COPY bulk_rows (id, name, score) FROM STDIN BINARY")
            .await?;
        let mut writer = pin!(BinaryCopyInWriter::new(
            sink,
            &[Type::INT8, Type::VARCHAR, Type::FLOAT8]
        ));
        let mut name = String::new();
        for i in 1..=rows as i64 {
            use std::fmt::Write;
            name.clear();
            let _ = write!(name, "row-{i}");
            writer
                .as_mut()
                .write(&[&i, &name.as_str(), &0.5f64])
                .await?;
        }
        writer.as_mut().finish().await
    })
    .map_err(err)?;
    phases.end("insert");
    Ok(phases)
}
