//! The native migration on SQLite (rusqlite), in one transaction.
//!
//! 1. The map old id → new id in one pass over `dataset` in id order (appends to an
//!    INTEGER PRIMARY KEY table), UUID5 for raw datasets, UUID4 for the rest and for the
//!    ids only the datastore knows.
//! 2. Each table rebuilt as SQLite must (new table, copy through the map in primary-key
//!    order so the key's index is appended to, drop, rename), its plain indexes created
//!    after the data.
//! 3. Only the foreign keys into the changed column are checked (every other column is
//!    copied unchanged), with enforcement off during the rebuild as SQLite requires.

use std::path::Path;

use rusqlite::{params, Connection, OptionalExtension};
use uuid::Uuid;

use super::{finish_sql, raw_uuid, Phases};
use ferry_workload::schema::dataset_id_columns;

const MAP: &str = "ferry_native_map";

fn err(e: rusqlite::Error) -> String {
    e.to_string()
}

fn hex(u: Uuid, buf: &mut [u8; 32]) -> &str {
    u.simple().encode_lower(buf)
}

pub fn migrate(path: &Path) -> Result<Phases, String> {
    let conn = Connection::open(path).map_err(err)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))
        .map_err(err)?;
    // The same page cache as Ferry's connections, so that memory compares.
    conn.execute_batch("PRAGMA cache_size = -16384; PRAGMA foreign_keys = OFF; BEGIN IMMEDIATE")
        .map_err(err)?;
    let mut phases = Phases::start();
    build_map(&conn)?;
    phases.end("map ids");
    for (table, column) in dataset_id_columns() {
        rewrite(&conn, table, column)?;
        phases.end(format!("rewrite {table}"));
    }
    check_foreign_keys(&conn)?;
    phases.end("check foreign keys");
    conn.execute_batch(&finish_sql(MAP)).map_err(err)?;
    phases.end("attributes");
    conn.execute_batch("COMMIT; PRAGMA foreign_keys = ON")
        .map_err(err)?;
    phases.end("commit");
    Ok(phases)
}

fn build_map(conn: &Connection) -> Result<(), String> {
    conn.execute_batch(&format!(
        "CREATE TABLE {MAP} (old_id INTEGER PRIMARY KEY, new_id CHAR(32) NOT NULL)"
    ))
    .map_err(err)?;
    let raw: Option<i64> = conn
        .query_row("SELECT id FROM dataset_type WHERE name = 'raw'", [], |r| {
            r.get(0)
        })
        .optional()
        .map_err(err)?;
    let raw = raw.unwrap_or(i64::MIN);
    let mut insert = conn
        .prepare(&format!(
            "INSERT INTO {MAP} (old_id, new_id) VALUES (?1, ?2)"
        ))
        .map_err(err)?;
    let mut source = conn
        .prepare(
            "SELECT d.id, c.name, t.instrument, t.exposure, t.detector
             FROM dataset d
             JOIN collection c ON c.collection_id = d.run_id
             LEFT JOIN dataset_tags_00000001 t
               ON d.dataset_type_id = ?1 AND t.dataset_id = d.id AND t.collection_id = d.run_id
             ORDER BY d.id",
        )
        .map_err(err)?;
    let mut rows = source.query([raw]).map_err(err)?;
    let mut buf = [0u8; 32];
    while let Some(r) = rows.next().map_err(err)? {
        let id: i64 = r.get(0).map_err(err)?;
        let instrument: Option<String> = r.get(2).map_err(err)?;
        let uuid = match instrument {
            Some(instrument) => {
                let run: String = r.get(1).map_err(err)?;
                raw_uuid(
                    &run,
                    r.get(4).map_err(err)?,
                    r.get(3).map_err(err)?,
                    &instrument,
                )
            }
            None => Uuid::new_v4(),
        };
        insert
            .execute(params![id, hex(uuid, &mut buf)])
            .map_err(err)?;
    }
    let mut removed = conn
        .prepare(
            "SELECT f.dataset_id FROM file_datastore_records f
               WHERE NOT EXISTS (SELECT 1 FROM dataset d WHERE d.id = f.dataset_id)
             UNION
             SELECT t.dataset_id FROM dataset_location_trash t
               WHERE NOT EXISTS (SELECT 1 FROM dataset d WHERE d.id = t.dataset_id)
             ORDER BY 1",
        )
        .map_err(err)?;
    let mut rows = removed.query([]).map_err(err)?;
    while let Some(r) = rows.next().map_err(err)? {
        let id: i64 = r.get(0).map_err(err)?;
        insert
            .execute(params![id, hex(Uuid::new_v4(), &mut buf)])
            .map_err(err)?;
    }
    Ok(())
}

fn schema_sql(conn: &Connection, kind: &str, table: &str) -> Result<Vec<String>, String> {
    let mut stmt = conn
        .prepare(
            "SELECT sql FROM sqlite_master WHERE type = ?1 AND tbl_name = ?2 AND sql IS NOT NULL",
        )
        .map_err(err)?;
    let rows = stmt
        .query_map(params![kind, table], |r| r.get(0))
        .map_err(err)?;
    rows.collect::<Result<_, _>>().map_err(err)
}

/// The v2 definition: the id column becomes CHAR(32) (the dataset key stops being the
/// rowid and its AUTOINCREMENT goes).
fn v2_definition(sql: &str, table: &str, column: &str, new: &str) -> Result<String, String> {
    let renamed = sql.replacen(&format!("\"{table}\""), &format!("\"{new}\""), 1);
    let (old_col, new_col) = if table == "dataset" {
        (
            "\"id\" INTEGER NOT NULL CONSTRAINT \"dataset_pkey\" PRIMARY KEY AUTOINCREMENT",
            "\"id\" CHAR(32) NOT NULL CONSTRAINT \"dataset_pkey\" PRIMARY KEY",
        )
    } else {
        (
            "\"dataset_id\" BIGINT NOT NULL",
            "\"dataset_id\" CHAR(32) NOT NULL",
        )
    };
    if !renamed.contains(old_col) {
        return Err(format!(
            "{table}.{column} is not defined as expected: {sql}"
        ));
    }
    Ok(renamed.replacen(old_col, new_col, 1))
}

fn rewrite(conn: &Connection, table: &str, column: &str) -> Result<(), String> {
    let new = format!("{table}__native_new");
    let definition = schema_sql(conn, "table", table)?
        .pop()
        .ok_or_else(|| format!("no table {table}"))?;
    let indexes = schema_sql(conn, "index", table)?;
    let columns: Vec<String> = {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT name FROM pragma_table_info('{table}') ORDER BY cid"
            ))
            .map_err(err)?;
        let names = stmt.query_map([], |r| r.get(0)).map_err(err)?;
        names.collect::<Result<_, _>>().map_err(err)?
    };
    let values: Vec<String> = columns
        .iter()
        .map(|c| {
            if c == column {
                "m.new_id".to_string()
            } else {
                format!("t.\"{c}\"")
            }
        })
        .collect();
    // Primary-key order: the key's index is then appended to, not written at random.
    let order = match table {
        "dataset" => "m.new_id".to_string(),
        "dataset_calibs_00000003" => "t.id".to_string(),
        "file_datastore_records" => "m.new_id, t.component".to_string(),
        "dataset_location" | "dataset_location_trash" => "m.new_id, t.datastore_name".to_string(),
        _ => "m.new_id, t.collection_id".to_string(),
    };
    let before: i64 = conn
        .query_row(&format!("SELECT COUNT(*) FROM \"{table}\""), [], |r| {
            r.get(0)
        })
        .map_err(err)?;
    conn.execute_batch(&v2_definition(&definition, table, column, &new)?)
        .map_err(err)?;
    let list = columns
        .iter()
        .map(|c| format!("\"{c}\""))
        .collect::<Vec<_>>()
        .join(", ");
    let copied = conn
        .execute(
            &format!(
                "INSERT INTO \"{new}\" ({list}) SELECT {} FROM \"{table}\" t \
                 JOIN {MAP} m ON m.old_id = t.\"{column}\" ORDER BY {order}",
                values.join(", ")
            ),
            [],
        )
        .map_err(err)? as i64;
    if copied != before {
        return Err(format!("{table}: copied {copied} of {before} rows"));
    }
    conn.execute_batch(&format!(
        "DROP TABLE \"{table}\"; ALTER TABLE \"{new}\" RENAME TO \"{table}\";"
    ))
    .map_err(err)?;
    for sql in indexes {
        conn.execute_batch(&sql).map_err(err)?;
    }
    Ok(())
}

/// Only the keys into `dataset.id` can have been broken: every other column was copied.
fn check_foreign_keys(conn: &Connection) -> Result<(), String> {
    for (table, column) in dataset_id_columns() {
        let mut stmt = conn
            .prepare(&format!(
                "SELECT \"table\" FROM pragma_foreign_key_list('{table}') WHERE \"from\" = ?1"
            ))
            .map_err(err)?;
        let parents: Vec<String> = stmt
            .query_map([column], |r| r.get(0))
            .map_err(err)?
            .collect::<Result<_, _>>()
            .map_err(err)?;
        for parent in parents {
            let orphans: i64 = conn
                .query_row(
                    &format!(
                        "SELECT COUNT(*) FROM \"{table}\" c WHERE NOT EXISTS \
                         (SELECT 1 FROM \"{parent}\" p WHERE p.id = c.\"{column}\")"
                    ),
                    [],
                    |r| r.get(0),
                )
                .map_err(err)?;
            if orphans != 0 {
                return Err(format!("{table}: {orphans} rows reference no {parent}"));
            }
        }
    }
    Ok(())
}
