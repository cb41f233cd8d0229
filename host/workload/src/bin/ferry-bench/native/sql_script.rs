//! The pure-SQL bound on PostgreSQL: the same int → UUID migration as one SQL script
//! that the server runs from beginning to end (one round trip, one transaction), with no
//! client in the data path at all: UUID5 of raw datasets by `uuid-ossp`'s
//! `uuid_generate_v5`, UUID4 by `gen_random_uuid()`, each table copied through the map
//! into a new table, keys and indexes built after the data, foreign keys added last.
//!
//! The script's text is written from the catalogue before it runs (the tables' columns,
//! keys and indexes, as the native migration reads them); writing it takes milliseconds
//! and is timed with the rest.

use super::postgres::connect;
use super::{finish_sql, Phases};
use ferry_workload::schema::dataset_id_columns;
use ferry_workload::RAW_UUID_NAMESPACE;
use tokio_postgres::Client;

const MAP: &str = "ferry_sql_map";

struct Catalogue<'a> {
    rt: &'a tokio::runtime::Runtime,
    client: &'a Client,
}

impl Catalogue<'_> {
    fn rows(&self, sql: &str, table: &str) -> Result<Vec<tokio_postgres::Row>, String> {
        self.rt
            .block_on(self.client.query(sql, &[&table]))
            .map_err(|e| format!("{e}\n  in: {sql}"))
    }
}

/// Where `uuid_generate_v5` lives: the schema `uuid-ossp` is installed in, else
/// installed into the benchmark's own schema (dropped with it).
fn uuid_ossp(
    rt: &tokio::runtime::Runtime,
    client: &Client,
    schema: &str,
) -> Result<String, String> {
    let found = rt
        .block_on(client.query_opt(
            "SELECT extnamespace::regnamespace::text FROM pg_extension WHERE extname = 'uuid-ossp'",
            &[],
        ))
        .map_err(|e| e.to_string())?;
    if let Some(row) = found {
        return Ok(row.get(0));
    }
    rt.block_on(client.batch_execute(&format!(
        "CREATE EXTENSION \"uuid-ossp\" SCHEMA \"{schema}\""
    )))
    .map_err(|e| format!("the pure-SQL bound needs the uuid-ossp extension: {e}"))?;
    Ok(format!("\"{schema}\""))
}

/// The statements that copy `table` through the map with `column` as a UUID.
fn rewrite(cat: &Catalogue, table: &str, column: &str) -> Result<String, String> {
    let new = format!("{table}__sql_new");
    let columns: Vec<(String, bool)> = cat
        .rows(
            "SELECT a.attname::text, a.attidentity <> '' FROM pg_attribute a
             WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped
             ORDER BY a.attnum",
            table,
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let constraints: Vec<(String, String)> = cat
        .rows(
            "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint
             WHERE conrelid = $1::text::regclass AND contype IN ('p', 'u') ORDER BY contype, conname",
            table,
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let indexes: Vec<String> = cat
        .rows(
            "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
             WHERE i.indrelid = $1::text::regclass
               AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
            table,
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    let keeps_identity = columns.iter().any(|(c, identity)| *identity && c != column);
    let including = if keeps_identity {
        "INCLUDING DEFAULTS INCLUDING IDENTITY"
    } else {
        "INCLUDING DEFAULTS"
    };
    let list = columns
        .iter()
        .map(|(c, _)| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let values = columns
        .iter()
        .map(|(c, _)| {
            if c == column {
                "m.new_id".to_string()
            } else {
                format!("t.\"{c}\"")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let overriding = if keeps_identity {
        " OVERRIDING SYSTEM VALUE"
    } else {
        ""
    };
    let mut sql = format!(
        "CREATE TABLE \"{new}\" (LIKE \"{table}\" {including});
         ALTER TABLE \"{new}\" ALTER COLUMN \"{column}\" TYPE UUID USING NULL;
         INSERT INTO \"{new}\" ({list}){overriding} SELECT {values} FROM \"{table}\" t
           JOIN {MAP} m ON m.old_id = t.\"{column}\";
         DROP TABLE \"{table}\"; ALTER TABLE \"{new}\" RENAME TO \"{table}\";\n"
    );
    for (c, identity) in &columns {
        if *identity && c != column {
            sql.push_str(&format!(
                "SELECT setval(pg_get_serial_sequence('\"{table}\"', '{c}'), \
                 GREATEST(COALESCE(MAX(\"{c}\"), 0), 1)) FROM \"{table}\";\n"
            ));
        }
    }
    for (name, definition) in constraints {
        sql.push_str(&format!(
            "ALTER TABLE \"{table}\" ADD CONSTRAINT \"{name}\" {definition};\n"
        ));
    }
    for index in indexes {
        sql.push_str(&index);
        sql.push_str(";\n");
    }
    sql.push_str(&format!("ANALYZE \"{table}\";\n"));
    Ok(sql)
}

/// Writes the script, then runs it (see the module documentation).
pub fn migrate(conninfo: &str, schema: &str) -> Result<Phases, String> {
    let (rt, client) = connect(conninfo)?;
    let ossp = uuid_ossp(&rt, &client, schema)?;
    rt.block_on(client.batch_execute(&format!("SET search_path TO \"{schema}\"")))
        .map_err(|e| e.to_string())?;
    let mut phases = Phases::start();
    let cat = Catalogue {
        rt: &rt,
        client: &client,
    };
    let tables: Vec<String> = dataset_id_columns()
        .iter()
        .map(|(t, _)| t.to_string())
        .collect();
    let keys: Vec<(String, String, String)> = rt
        .block_on(client.query(
            "SELECT c.conrelid::regclass::text, c.conname::text, pg_get_constraintdef(c.oid)
             FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
             WHERE n.nspname = current_schema() AND c.contype = 'f'
               AND (c.conrelid::regclass::text = ANY($1) OR c.confrelid::regclass::text = ANY($1))
             ORDER BY 1, 2",
            &[&tables],
        ))
        .map_err(|e| e.to_string())?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
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
        script.push_str(&rewrite(&cat, table, column)?);
    }
    for (table, name, definition) in &keys {
        script.push_str(&format!(
            "ALTER TABLE \"{table}\" ADD CONSTRAINT \"{name}\" {definition};\n"
        ));
    }
    script.push_str(&finish_sql(MAP));
    script.push_str("\nCOMMIT;");
    phases.end("write the script");
    rt.block_on(client.batch_execute(&script))
        .map_err(|e| format!("the SQL script failed: {e}"))?;
    phases.end("run the script");
    Ok(phases)
}
