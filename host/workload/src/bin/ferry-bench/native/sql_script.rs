//! The pure-SQL bound on PostgreSQL: the same int → UUID migration as one SQL script
//! that the server runs from beginning to end (one round trip, one transaction), with no
//! client in the data path at all: UUID5 of raw datasets by `uuid-ossp`'s
//! `uuid_generate_v5`, UUID4 by `gen_random_uuid()`, each table copied through the map
//! into a new table, keys and indexes built after the data, foreign keys added last.
//!
//! The script's text is written from the catalogue before it runs (the tables' columns,
//! keys and indexes, as the native migration reads them); writing it takes milliseconds
//! and is timed with the rest.

use super::postgres::{foreign_keys, Pg, TableCopy};
use super::{finish_sql, Phases};
use ferry_workload::schema::dataset_id_columns;
use ferry_workload::RAW_UUID_NAMESPACE;

const MAP: &str = "ferry_sql_map";

/// Where `uuid_generate_v5` lives: the schema `uuid-ossp` is installed in, else
/// installed into the benchmark's own schema (dropped with it).
fn uuid_ossp(pg: &Pg, schema: &str) -> Result<String, String> {
    let found = pg.query(
        "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'uuid-ossp'",
        &[],
    )?;
    if let Some(row) = found.first() {
        return Ok(row.get(0));
    }
    pg.script(&format!(
        "CREATE EXTENSION \"uuid-ossp\" SCHEMA \"{schema}\""
    ))
    .map_err(|e| format!("the pure-SQL bound needs the uuid-ossp extension: {e}"))?;
    Ok(format!("\"{schema}\""))
}

/// The statements that copy `table` through the map with `column` as a UUID: those of
/// the native migration, one after the other.
fn rewrite(pg: &Pg, table: &str, column: &str) -> Result<String, String> {
    let copy = TableCopy::read(pg, table, column, &format!("{table}__sql_new"), MAP)?;
    let mut sql = String::new();
    for statement in [&copy.create, &copy.insert, &copy.swap]
        .into_iter()
        .chain(&copy.after)
    {
        sql.push_str(statement);
        sql.push_str(";\n");
    }
    Ok(sql)
}

/// Writes the script, then runs it (see the module documentation).
pub fn migrate(conninfo: &str, schema: &str) -> Result<Phases, String> {
    let pg = Pg::connect(conninfo)?;
    let ossp = uuid_ossp(&pg, schema)?;
    pg.batch(&format!("SET search_path TO \"{schema}\""))?;
    let mut phases = Phases::start();
    let keys = foreign_keys(&pg)?;
    let mut script = format!(
        "BEGIN; SET LOCAL jit = off; SET LOCAL work_mem = '128MB';
         SET LOCAL maintenance_work_mem = '256MB';
         CREATE TABLE {MAP} (old_id BIGINT NOT NULL, new_id UUID NOT NULL);
         INSERT INTO {MAP} (old_id, new_id)
           SELECT d.id, CASE WHEN t.instrument IS NULL THEN gen_random_uuid()
             ELSE {ossp}.uuid_generate_v5('{RAW_UUID_NAMESPACE}'::uuid,
               'dataset_type=raw,run=' || c.name || ',detector=' || t.detector
               || ',exposure=' || t.exposure || ',instrument=' || t.instrument) END
           FROM dataset d
           JOIN collection c ON c.collection_id = d.run_id
           LEFT JOIN dataset_tags_00000001 t
             ON d.dataset_type_id = (SELECT id FROM dataset_type WHERE name = 'raw')
            AND t.dataset_id = d.id AND t.collection_id = d.run_id;
         INSERT INTO {MAP} (old_id, new_id)
           SELECT r.dataset_id, gen_random_uuid() FROM (
             SELECT f.dataset_id FROM file_datastore_records f
               WHERE NOT EXISTS (SELECT 1 FROM dataset d WHERE d.id = f.dataset_id)
             UNION
             SELECT t.dataset_id FROM dataset_location_trash t
               WHERE NOT EXISTS (SELECT 1 FROM dataset d WHERE d.id = t.dataset_id)) r;
         ALTER TABLE {MAP} ADD CONSTRAINT {MAP}_pkey PRIMARY KEY (old_id); ANALYZE {MAP};\n"
    );
    for (table, name, _) in &keys {
        script.push_str(&format!(
            "ALTER TABLE \"{table}\" DROP CONSTRAINT \"{name}\";\n"
        ));
    }
    for (table, column) in dataset_id_columns() {
        script.push_str(&rewrite(&pg, table, column)?);
    }
    for (table, name, definition) in &keys {
        script.push_str(&format!(
            "ALTER TABLE \"{table}\" ADD CONSTRAINT \"{name}\" {definition};\n"
        ));
    }
    script.push_str(&finish_sql(MAP));
    script.push_str("\nCOMMIT;");
    phases.end("write the script");
    pg.script(&script)
        .map_err(|e| format!("the SQL script failed: {e}"))?;
    phases.end("run the script");
    Ok(phases)
}
