//! The native migration on PostgreSQL (tokio-postgres), in one transaction.
//!
//! 1. The map old id → new id: one cursor over `dataset` (and one over the ids only the
//!    datastore knows), read in chunks; UUIDs computed here (UUID5 for raw datasets,
//!    UUID4 otherwise) and sent back with binary COPY; its key added after the data.
//! 2. Every foreign key touching the rewritten tables dropped; each table copied through
//!    the map into a new table (`INSERT … SELECT … JOIN`, which writes each row once,
//!    unlike an `UPDATE`), swapped in, its keys and indexes built after the data from
//!    their own definitions; the foreign keys added back last.

use std::pin::pin;

use tokio::runtime::Runtime;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, NoTls};
use uuid::Uuid;

use super::{finish_sql, raw_uuid, Phases};
use ferry_workload::schema::dataset_id_columns;

const MAP: &str = "ferry_native_map";
/// Rows per FETCH from a cursor (and per COPY): memory stays bounded.
const CHUNK: i64 = 50_000;

fn err(e: tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => e.to_string(),
    }
}

/// A connection on its own current-thread runtime.
pub(super) struct Pg {
    rt: Runtime,
    client: Client,
}

impl Pg {
    /// Connects on a current-thread runtime, as Ferry's backend does.
    pub(super) fn connect(conninfo: &str) -> Result<Pg, String> {
        let (rt, client) = connect(conninfo)?;
        Ok(Pg { rt, client })
    }

    pub(super) fn batch(&self, sql: &str) -> Result<(), String> {
        self.rt
            .block_on(self.client.batch_execute(sql))
            .map_err(|e| format!("{}\n  in: {sql}", err(e)))
    }

    fn execute(&self, sql: &str) -> Result<u64, String> {
        self.rt
            .block_on(self.client.execute(sql, &[]))
            .map_err(|e| format!("{}\n  in: {sql}", err(e)))
    }

    pub(super) fn query(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> Result<Vec<tokio_postgres::Row>, String> {
        self.rt
            .block_on(self.client.query(sql, params))
            .map_err(|e| format!("{}\n  in: {sql}", err(e)))
    }

    /// Runs a script of statements; an error does not repeat the script's text.
    pub(super) fn script(&self, sql: &str) -> Result<(), String> {
        self.rt
            .block_on(self.client.batch_execute(sql))
            .map_err(err)
    }

    /// Copies `(old_id, new_id)` rows into the map.
    fn copy_map(&self, rows: &[(i64, Uuid)]) -> Result<(), String> {
        self.rt
            .block_on(async {
                let sink = self
                    .client
                    .copy_in(&format!("COPY {MAP} (old_id, new_id) FROM STDIN BINARY"))
                    .await?;
                let mut writer = pin!(BinaryCopyInWriter::new(sink, &[Type::INT8, Type::UUID]));
                for (id, uuid) in rows {
                    writer.as_mut().write(&[id, uuid]).await?;
                }
                writer.as_mut().finish().await
            })
            .map(|_| ())
            .map_err(err)
    }

    /// Walks a cursor over `sql` in chunks, mapping each row to a map entry.
    fn map_from_cursor(
        &self,
        sql: &str,
        mut entry: impl FnMut(&tokio_postgres::Row) -> (i64, Uuid),
    ) -> Result<(), String> {
        self.batch(&format!(
            "DECLARE ferry_native_src NO SCROLL CURSOR FOR {sql}"
        ))?;
        let mut chunk = Vec::with_capacity(CHUNK as usize);
        loop {
            let rows = self.query(&format!("FETCH {CHUNK} FROM ferry_native_src"), &[])?;
            if rows.is_empty() {
                break;
            }
            chunk.clear();
            chunk.extend(rows.iter().map(&mut entry));
            self.copy_map(&chunk)?;
        }
        self.batch("CLOSE ferry_native_src")
    }
}

/// Connects on a current-thread runtime, as Ferry's backend does.
pub fn connect(conninfo: &str) -> Result<(Runtime, Client), String> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let (client, connection) = rt
        .block_on(tokio_postgres::connect(conninfo, NoTls))
        .map_err(err)?;
    rt.spawn(async move {
        let _ = connection.await;
    });
    Ok((rt, client))
}

pub fn migrate(conninfo: &str, schema: &str) -> Result<Phases, String> {
    let pg = Pg::connect(conninfo)?;
    // As Ferry's rewrite does: no JIT for a few huge statements, joins and index
    // builds in memory, cursors planned for reading them whole.
    pg.batch(&format!(
        "SET search_path TO \"{schema}\"; BEGIN; SET LOCAL jit = off;
         SET LOCAL work_mem = '128MB'; SET LOCAL maintenance_work_mem = '256MB';
         SET LOCAL cursor_tuple_fraction = 1"
    ))?;
    let mut phases = Phases::start();
    build_map(&pg)?;
    phases.end("map ids");
    let foreign_keys = drop_foreign_keys(&pg)?;
    phases.end("drop foreign keys");
    for (table, column) in dataset_id_columns() {
        rewrite(&pg, table, column)?;
        phases.end(format!("rewrite {table}"));
    }
    for (table, name, definition) in &foreign_keys {
        pg.batch(&format!(
            "ALTER TABLE \"{table}\" ADD CONSTRAINT \"{name}\" {definition}"
        ))?;
    }
    phases.end("add foreign keys");
    pg.batch(&finish_sql(MAP))?;
    phases.end("attributes");
    pg.batch("COMMIT")?;
    phases.end("commit");
    Ok(phases)
}

fn build_map(pg: &Pg) -> Result<(), String> {
    pg.batch(&format!(
        "CREATE TABLE {MAP} (old_id BIGINT NOT NULL, new_id UUID NOT NULL)"
    ))?;
    let raw: i64 = pg
        .query("SELECT id FROM dataset_type WHERE name = 'raw'", &[])?
        .first()
        .map(|r| r.get(0))
        .unwrap_or(i64::MIN);
    pg.map_from_cursor(
        &format!(
            "SELECT d.id, c.name, t.instrument, t.exposure, t.detector
             FROM dataset d
             JOIN collection c ON c.collection_id = d.run_id
             LEFT JOIN dataset_tags_00000001 t
               ON d.dataset_type_id = {raw} AND t.dataset_id = d.id AND t.collection_id = d.run_id"
        ),
        |r| {
            let id: i64 = r.get(0);
            let instrument: Option<&str> = r.get(2);
            let uuid = match instrument {
                Some(instrument) => raw_uuid(r.get(1), r.get(4), r.get(3), instrument),
                None => Uuid::new_v4(),
            };
            (id, uuid)
        },
    )?;
    pg.map_from_cursor(
        "SELECT f.dataset_id FROM file_datastore_records f
           WHERE NOT EXISTS (SELECT 1 FROM dataset d WHERE d.id = f.dataset_id)
         UNION
         SELECT t.dataset_id FROM dataset_location_trash t
           WHERE NOT EXISTS (SELECT 1 FROM dataset d WHERE d.id = t.dataset_id)",
        |r| (r.get(0), Uuid::new_v4()),
    )?;
    pg.batch(&format!(
        "ALTER TABLE {MAP} ADD CONSTRAINT {MAP}_pkey PRIMARY KEY (old_id); ANALYZE {MAP}"
    ))
}

/// Every foreign key from or into a rewritten table, as `(table, name, definition)`.
pub(super) fn foreign_keys(pg: &Pg) -> Result<Vec<(String, String, String)>, String> {
    let tables: Vec<String> = dataset_id_columns()
        .iter()
        .map(|(t, _)| t.to_string())
        .collect();
    let rows = pg.query(
        "SELECT c.conrelid::regclass::text, c.conname::text, pg_get_constraintdef(c.oid)
         FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
         WHERE n.nspname = current_schema() AND c.contype = 'f'
           AND (c.conrelid::regclass::text = ANY($1) OR c.confrelid::regclass::text = ANY($1))
         ORDER BY 1, 2",
        &[&tables],
    )?;
    Ok(rows
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect())
}

/// Drops [`foreign_keys`] and returns them, to be added back last.
fn drop_foreign_keys(pg: &Pg) -> Result<Vec<(String, String, String)>, String> {
    let keys = foreign_keys(pg)?;
    for (table, name, _) in &keys {
        pg.batch(&format!(
            "ALTER TABLE \"{table}\" DROP CONSTRAINT \"{name}\""
        ))?;
    }
    Ok(keys)
}

/// The statements that copy a table through the map into a new table with the dataset
/// column as a UUID and swap it in, written from the catalogue (shared with the
/// pure-SQL bound, which runs them as one script).
pub(super) struct TableCopy {
    /// Creates the new table like the old one, the dataset column a UUID.
    pub create: String,
    /// Copies every row through the map (the one statement whose row count matters).
    pub insert: String,
    /// Drops the old table and renames the new one.
    pub swap: String,
    /// After the swap: identities continued, keys and indexes built from their own
    /// definitions, statistics.
    pub after: Vec<String>,
}

impl TableCopy {
    /// Reads `table`'s columns, keys and indexes; `new` is the new table's name, `map`
    /// the map table's.
    pub(super) fn read(
        pg: &Pg,
        table: &str,
        column: &str,
        new: &str,
        map: &str,
    ) -> Result<TableCopy, String> {
        let columns: Vec<(String, bool)> = pg
            .query(
                "SELECT a.attname::text, a.attidentity <> '' FROM pg_attribute a
                 WHERE a.attrelid = $1::text::regclass AND a.attnum > 0 AND NOT a.attisdropped
                 ORDER BY a.attnum",
                &[&table],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        // Keys and indexes, rebuilt after the data from their own definitions.
        let constraints: Vec<(String, String)> = pg
            .query(
                "SELECT conname::text, pg_get_constraintdef(oid) FROM pg_constraint
                 WHERE conrelid = $1::text::regclass AND contype IN ('p', 'u') ORDER BY contype, conname",
                &[&table],
            )?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        let indexes: Vec<String> = pg
            .query(
                "SELECT pg_get_indexdef(i.indexrelid) FROM pg_index i
                 WHERE i.indrelid = $1::text::regclass
                   AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)",
                &[&table],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect();
        // The dataset key loses its identity; another table's identity (dataset_calibs'
        // own id) comes along and continues after its largest value.
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
        let mut after = Vec::new();
        for (c, identity) in &columns {
            if *identity && c != column {
                after.push(format!(
                    "SELECT setval(pg_get_serial_sequence('\"{table}\"', '{c}'), \
                     GREATEST(COALESCE(MAX(\"{c}\"), 0), 1)) FROM \"{table}\""
                ));
            }
        }
        for (name, definition) in constraints {
            after.push(format!(
                "ALTER TABLE \"{table}\" ADD CONSTRAINT \"{name}\" {definition}"
            ));
        }
        after.extend(indexes);
        after.push(format!("ANALYZE \"{table}\""));
        Ok(TableCopy {
            create: format!(
                "CREATE TABLE \"{new}\" (LIKE \"{table}\" {including});
                 ALTER TABLE \"{new}\" ALTER COLUMN \"{column}\" TYPE UUID USING NULL"
            ),
            insert: format!(
                "INSERT INTO \"{new}\" ({list}){overriding} SELECT {values} FROM \"{table}\" t \
                 JOIN {map} m ON m.old_id = t.\"{column}\""
            ),
            swap: format!("DROP TABLE \"{table}\"; ALTER TABLE \"{new}\" RENAME TO \"{table}\""),
            after,
        })
    }
}

fn rewrite(pg: &Pg, table: &str, column: &str) -> Result<(), String> {
    let copy = TableCopy::read(pg, table, column, &format!("{table}__native_new"), MAP)?;
    let before: i64 = pg.query(&format!("SELECT COUNT(*) FROM \"{table}\""), &[])?[0].get(0);
    pg.batch(&copy.create)?;
    let copied = pg.execute(&copy.insert)? as i64;
    if copied != before {
        return Err(format!("{table}: copied {copied} of {before} rows"));
    }
    pg.batch(&copy.swap)?;
    for sql in &copy.after {
        pg.batch(sql)?;
    }
    Ok(())
}
