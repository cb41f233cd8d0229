//! A snapshot of a v1 repository by natural keys, and the checker of every rule of
//! "Registry v2" in `WORKLOAD.md` against it.
//!
//! Datasets are identified by (type name, run name, data ID) rather than by id, so the
//! same logical dataset can be followed across the id change; datasets known only to
//! the datastore are identified by their (unique) path. Every other row is compared
//! with collection and dataset type ids rendered as names.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use uuid::Uuid;

use ferry::backend::{Connection, DbError, KeyGenerator, Value};
use ferry::workload::schema::{self, DATASET_ID_TABLES, INT_DATASETS_MANAGER};

/// The namespace of raw dataset UUID5s.
pub const RAW_UUID_NAMESPACE: Uuid = Uuid::from_u128(0x840b31d9_05cd_5161_b2c8_00d32b280d0f);

/// The UUID5 of a raw dataset: namespace [`RAW_UUID_NAMESPACE`] over
/// `dataset_type=raw,run=<run>,` followed by the data ID items sorted by name,
/// `name=value` joined by `,`.
pub fn raw_dataset_uuid(run: &str, data_id: &[(String, String)]) -> Uuid {
    let mut items: Vec<&(String, String)> = data_id.iter().collect();
    items.sort();
    let items: Vec<String> = items.iter().map(|(k, v)| format!("{k}={v}")).collect();
    let name = format!("dataset_type=raw,run={run},{}", items.join(","));
    Uuid::new_v5(&RAW_UUID_NAMESPACE, name.as_bytes())
}

/// A registry dataset by its natural key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DatasetKey {
    /// The dataset type's name (`raw`, `calexp`, ...).
    pub dataset_type: String,
    /// The name of the RUN collection holding it.
    pub run: String,
    /// `(dimension, value)` sorted by dimension.
    pub data_id: Vec<(String, String)>,
}

/// One snapshot row: `(old dataset id, other columns)`.
pub type OldRow = (i64, Vec<Option<String>>);

/// One row with its dataset id apart: `(id as the database prints it, other columns)`.
type IdRow = (String, Vec<Option<String>>);

/// A v1 repository captured by natural keys, to compare with after migration.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Snapshot {
    /// Row count of every v1 table.
    pub counts: BTreeMap<String, u64>,
    /// Old id → natural key of every registry dataset.
    pub datasets: BTreeMap<i64, DatasetKey>,
    /// Old id → path of every dataset known only to the datastore.
    pub removed: BTreeMap<i64, String>,
    /// For `dataset` and every table with a `dataset_id`: (old id, the other columns in
    /// table order, collection and dataset type ids rendered as names), sorted.
    pub dataset_rows: BTreeMap<String, Vec<OldRow>>,
    /// Every other table except `butler_attributes`, rendered the same way, sorted.
    pub other_rows: BTreeMap<String, Vec<Vec<Option<String>>>>,
    /// `butler_attributes` as name → value.
    pub attributes: BTreeMap<String, String>,
}

/// Where a table keeps its dataset id.
fn id_column(table: &str) -> Option<&'static str> {
    if table == "dataset" {
        Some("id")
    } else if DATASET_ID_TABLES.contains(&table) {
        Some("dataset_id")
    } else {
        None
    }
}

fn render(value: Value) -> Option<String> {
    match value {
        Value::Null => None,
        Value::Bool(b) => Some(b.to_string()),
        Value::Int(i) => Some(i.to_string()),
        Value::Float(x) => Some(x.to_string()),
        Value::Text(s) => Some(s),
        Value::Bytes(b) => Some(b.iter().map(|x| format!("{x:02x}")).collect()),
        Value::Uuid(u) => Some(u.hyphenated().to_string()),
    }
}

/// Collection and dataset type names by id.
struct Names {
    collections: HashMap<String, String>,
    dataset_types: HashMap<String, String>,
}

impl Names {
    fn load(conn: &mut dyn Connection) -> Result<Names, DbError> {
        let mut load = |sql: &str| -> Result<HashMap<String, String>, DbError> {
            let rows = conn.query(sql, &[])?;
            Ok(rows
                .rows
                .into_iter()
                .filter_map(|mut r| {
                    let name = render(r.pop()?)?;
                    Some((render(r.pop()?)?, name))
                })
                .collect())
        };
        Ok(Names {
            collections: load("SELECT CAST(collection_id AS TEXT), name FROM collection")?,
            dataset_types: load("SELECT CAST(id AS TEXT), name FROM dataset_type")?,
        })
    }

    fn rename(&self, column: &str, value: Option<String>) -> Option<String> {
        let map = match column {
            "collection_id" | "run_id" => &self.collections,
            "dataset_type_id" => &self.dataset_types,
            _ => return value,
        };
        value.map(|v| {
            map.get(&v)
                .cloned()
                .unwrap_or_else(|| format!("<unknown id {v}>"))
        })
    }
}

/// Reads a whole table with every column cast to text, ids rendered as names.
fn read_table(
    conn: &mut dyn Connection,
    names: &Names,
    table: &str,
    columns: &[String],
) -> Result<Vec<IdRow>, DbError> {
    let id_at = id_column(table).and_then(|c| columns.iter().position(|x| x == c));
    let select: Vec<String> = columns
        .iter()
        .map(|c| format!("CAST({} AS TEXT)", conn.quote_ident(c)))
        .collect();
    let sql = format!(
        "SELECT {} FROM {}",
        select.join(", "),
        conn.quote_ident(table)
    );
    let mut out = Vec::new();
    conn.query_each(&sql, &[], &mut |_, row| {
        let mut id = String::new();
        let mut rest = Vec::with_capacity(columns.len());
        for (i, value) in row.into_iter().enumerate() {
            let text = render(value);
            if Some(i) == id_at {
                id = text.unwrap_or_default();
            } else {
                rest.push(names.rename(&columns[i], text));
            }
        }
        out.push((id, rest));
        Ok(true)
    })?;
    Ok(out)
}

fn column_names(def: &ferry::backend::TableDef) -> Vec<String> {
    def.columns.iter().map(|c| c.name.clone()).collect()
}

/// The tables of the repository, read through [`read_table`].
struct Contents {
    counts: BTreeMap<String, u64>,
    dataset_rows: BTreeMap<String, Vec<IdRow>>,
    other_rows: BTreeMap<String, Vec<Vec<Option<String>>>>,
    attributes: BTreeMap<String, String>,
}

fn read_contents(conn: &mut dyn Connection) -> Result<Contents, DbError> {
    let names = Names::load(conn)?;
    let mut contents = Contents {
        counts: BTreeMap::new(),
        dataset_rows: BTreeMap::new(),
        other_rows: BTreeMap::new(),
        attributes: BTreeMap::new(),
    };
    for def in schema::v1_tables() {
        let rows = read_table(conn, &names, &def.name, &column_names(&def))?;
        contents.counts.insert(def.name.clone(), rows.len() as u64);
        if def.name == "butler_attributes" {
            for (_, mut rest) in rows {
                let value = rest.pop().flatten().unwrap_or_default();
                let name = rest.pop().flatten().unwrap_or_default();
                contents.attributes.insert(name, value);
            }
        } else if id_column(&def.name).is_some() {
            contents.dataset_rows.insert(def.name, rows);
        } else {
            let mut rows: Vec<_> = rows.into_iter().map(|(_, rest)| rest).collect();
            rows.sort();
            contents.other_rows.insert(def.name, rows);
        }
    }
    Ok(contents)
}

/// Natural keys of the registry datasets: type and run from `dataset`, the data ID from
/// the tags row in the dataset's own run. Problems are pushed to `problems`.
fn natural_keys(contents: &Contents, problems: &mut Vec<String>) -> BTreeMap<String, DatasetKey> {
    let mut data_ids: HashMap<(String, String), Vec<(String, String)>> = HashMap::new();
    for def in schema::v1_tables() {
        if !def.name.starts_with("dataset_tags_") {
            continue;
        }
        let columns: Vec<String> = column_names(&def)
            .into_iter()
            .filter(|c| c != "dataset_id")
            .collect();
        for (id, rest) in contents.dataset_rows.get(&def.name).into_iter().flatten() {
            let mut data_id = Vec::new();
            let mut collection = String::new();
            for (column, value) in columns.iter().zip(rest) {
                let value = value.clone().unwrap_or_default();
                match column.as_str() {
                    "collection_id" => collection = value,
                    "dataset_type_id" => {}
                    _ => data_id.push((column.clone(), value)),
                }
            }
            data_id.sort();
            data_ids.insert((id.clone(), collection), data_id);
        }
    }
    let mut keys = BTreeMap::new();
    for (id, rest) in contents.dataset_rows.get("dataset").into_iter().flatten() {
        // dataset columns after id: dataset_type_id, run_id, ingest_date.
        let dataset_type = rest[0].clone().unwrap_or_default();
        let run = rest[1].clone().unwrap_or_default();
        match data_ids.get(&(id.clone(), run.clone())) {
            Some(data_id) => {
                keys.insert(
                    id.clone(),
                    DatasetKey {
                        dataset_type,
                        run,
                        data_id: data_id.clone(),
                    },
                );
            }
            None => problems.push(format!(
                "dataset {id} ({dataset_type} in {run}) has no tags row in its own run"
            )),
        }
    }
    keys
}

/// Old id → path of the datastore records whose id is not a registry dataset.
fn removed_paths(contents: &Contents, registry: &BTreeSet<&String>) -> Vec<(String, String)> {
    contents
        .dataset_rows
        .get("file_datastore_records")
        .into_iter()
        .flatten()
        .filter(|(id, _)| !registry.contains(id))
        .map(|(id, rest)| (id.clone(), rest[1].clone().unwrap_or_default()))
        .collect()
}

impl Snapshot {
    /// Captures a v1 repository (integer dataset ids).
    pub fn take(conn: &mut dyn Connection) -> Result<Snapshot, DbError> {
        let contents = read_contents(conn)?;
        let mut problems = Vec::new();
        let keys = natural_keys(&contents, &mut problems);
        if !problems.is_empty() {
            return Err(DbError::other(format!(
                "not a v1 repository of the reference workload: {}",
                problems.join("; ")
            )));
        }
        let int = |id: &str| -> Result<i64, DbError> {
            id.parse()
                .map_err(|_| DbError::other(format!("dataset id {id:?} is not an integer")))
        };
        let mut snapshot = Snapshot {
            counts: contents.counts.clone(),
            other_rows: contents.other_rows.clone(),
            attributes: contents.attributes.clone(),
            ..Snapshot::default()
        };
        for (id, key) in &keys {
            snapshot.datasets.insert(int(id)?, key.clone());
        }
        let registry: BTreeSet<&String> = keys.keys().collect();
        for (id, path) in removed_paths(&contents, &registry) {
            snapshot.removed.insert(int(&id)?, path);
        }
        for (table, rows) in contents.dataset_rows {
            let mut out = Vec::with_capacity(rows.len());
            for (id, rest) in rows {
                out.push((int(&id)?, rest));
            }
            out.sort();
            snapshot.dataset_rows.insert(table, out);
        }
        Ok(snapshot)
    }
}

/// At most this many differing rows are listed per table.
const SHOWN: usize = 5;

/// Checks every rule of "Registry v2" of `WORKLOAD.md` against the snapshot taken
/// before the migration; returns every violation found.
pub fn check_v2(conn: &mut dyn Connection, before: &Snapshot) -> Result<(), Vec<String>> {
    let mut problems = Vec::new();
    if let Err(e) = check_columns(conn, &mut problems) {
        problems.push(format!("introspection failed: {e}"));
    }
    if let Err(e) = check_structure(conn, &mut problems) {
        problems.push(format!("introspection failed: {e}"));
    }
    if let Err(e) = check_no_sequence(conn, &mut problems) {
        problems.push(format!("sequence check failed: {e}"));
    }
    match crate::keys::check_keys_and_sequences(conn) {
        Ok(found) => problems.extend(found),
        Err(e) => problems.push(format!("key and sequence check failed: {e}")),
    }
    match read_contents(conn) {
        Ok(contents) => check_contents(&contents, before, &mut problems),
        Err(e) => problems.push(format!("cannot read the repository: {e}")),
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

/// Declared types and stored forms of every dataset id column: the type this backend
/// gives a portable `UUID` column, NOT NULL, and every value a UUID as the backend stores
/// one.
fn check_columns(conn: &mut dyn Connection, problems: &mut Vec<String>) -> Result<(), DbError> {
    let squeezed = |t: &str| -> String {
        t.chars()
            .filter(|ch| !ch.is_whitespace())
            .collect::<String>()
            .to_lowercase()
    };
    let expected = squeezed(&conn.column_type("UUID"));
    for (table, column) in schema::dataset_id_columns() {
        let info = conn.columns(table)?;
        match info.iter().find(|c| c.name == column) {
            None => problems.push(format!("{table}.{column} is missing")),
            Some(c) => {
                if squeezed(&c.data_type) != expected {
                    problems.push(format!(
                        "{table}.{column} is declared {:?}, expected {expected}",
                        c.data_type
                    ));
                }
                if c.nullable {
                    problems.push(format!("{table}.{column} is nullable"));
                }
                let bad = conn.non_uuid_values(table, column)?;
                if bad != 0 {
                    problems.push(format!(
                        "{table}.{column}: {bad} values are not UUIDs as this database stores them"
                    ));
                }
            }
        }
    }
    Ok(())
}

fn normalize_rule(rule: Option<&str>) -> String {
    rule.unwrap_or("NO ACTION").trim().to_uppercase()
}

/// Keys, constraints and indexes of every table, by name, as v1 defined them.
fn check_structure(conn: &mut dyn Connection, problems: &mut Vec<String>) -> Result<(), DbError> {
    for def in schema::v1_tables() {
        let table = def.name.as_str();
        if let Some((name, columns)) = &def.primary_key {
            match conn.primary_key(table)? {
                Some(pk) if &pk.name == name && &pk.columns == columns => {}
                other => problems.push(format!(
                    "{table}: primary key {name} {columns:?} expected, found {other:?}"
                )),
            }
        }
        let uniques = conn.unique_constraints(table)?;
        for (name, columns) in &def.unique {
            if !uniques
                .iter()
                .any(|u| &u.name == name && &u.columns == columns)
            {
                problems.push(format!(
                    "{table}: unique constraint {name} {columns:?} missing (found {uniques:?})"
                ));
            }
        }
        let fks = conn.foreign_keys(table)?;
        for fk in &def.foreign_keys {
            let found = fks.iter().find(|f| f.name == fk.name);
            let ok = found.is_some_and(|f| {
                f.columns == fk.columns
                    && f.referenced_table == fk.referenced_table
                    && f.referenced_columns == fk.referenced_columns
                    && normalize_rule(Some(&f.on_delete)) == normalize_rule(fk.on_delete.as_deref())
            });
            if !ok {
                problems.push(format!(
                    "{table}: foreign key {} {:?} → {}{:?} ON DELETE {} expected, found {found:?}",
                    fk.name,
                    fk.columns,
                    fk.referenced_table,
                    fk.referenced_columns,
                    normalize_rule(fk.on_delete.as_deref())
                ));
            }
        }
    }
    for index in schema::v1_indexes() {
        let found = conn.indexes(&index.table)?;
        if !found
            .iter()
            .any(|i| i.name == index.name && i.columns == index.columns)
        {
            problems.push(format!(
                "{}: index {} {:?} missing (found {found:?})",
                index.table, index.name, index.columns
            ));
        }
    }
    Ok(())
}

/// No sequence or auto-increment may be left on `dataset.id`.
fn check_no_sequence(conn: &mut dyn Connection, problems: &mut Vec<String>) -> Result<(), DbError> {
    let columns = conn.columns("dataset")?;
    if let Some(default) = columns
        .iter()
        .find(|c| c.name == "id")
        .and_then(|c| c.default.clone())
    {
        problems.push(format!("dataset.id still has a default: {default}"));
    }
    match conn
        .key_generators("dataset")?
        .into_iter()
        .find(|(c, _)| c == "id")
        .map(|(_, g)| g)
    {
        Some(KeyGenerator::Identity { .. }) => {
            problems.push("dataset.id is still an identity column".into())
        }
        Some(KeyGenerator::Autoincrement { .. }) => {
            problems.push("dataset.id is still AUTOINCREMENT".into())
        }
        // A sequence default is reported above; a row id is an integer column, which
        // `check_columns` reports.
        Some(KeyGenerator::Sequence { .. } | KeyGenerator::RowId) | None => {}
    }
    for sequence in conn.sequences()? {
        if sequence.name.starts_with("dataset_id") {
            problems.push(format!("sequence {} is still present", sequence.name));
        }
    }
    Ok(())
}

fn parse_uuid(table: &str, id: &str, problems: &mut Vec<String>) -> Option<Uuid> {
    match Uuid::parse_str(id) {
        Ok(u) => Some(u),
        Err(_) => {
            problems.push(format!("{table}: dataset id {id:?} is not a UUID"));
            None
        }
    }
}

fn check_contents(contents: &Contents, before: &Snapshot, problems: &mut Vec<String>) {
    for (table, count) in &before.counts {
        let now = contents.counts.get(table).copied().unwrap_or(0);
        if now != *count {
            problems.push(format!("{table}: {now} rows, {count} before the migration"));
        }
    }
    for (table, rows) in &before.other_rows {
        if contents.other_rows.get(table) != Some(rows) {
            problems.push(format!("{table}: rows changed"));
        }
    }
    check_attributes(&contents.attributes, &before.attributes, problems);

    // New ids of registry datasets, by natural key.
    let keys = natural_keys(contents, problems);
    let mut by_key: HashMap<&DatasetKey, Uuid> = HashMap::new();
    let mut bad_ids = 0usize;
    for (id, key) in &keys {
        let Some(uuid) = parse_uuid("dataset", id, problems) else {
            bad_ids += 1;
            if bad_ids > SHOWN {
                problems.pop();
            }
            continue;
        };
        if key.dataset_type == "raw" {
            let expected = raw_dataset_uuid(&key.run, &key.data_id);
            if uuid != expected {
                problems.push(format!(
                    "raw {key:?} has id {uuid}, expected the UUID5 {expected}"
                ));
            }
        } else if uuid.get_version_num() != 4 || uuid.get_variant() != uuid::Variant::RFC4122 {
            problems.push(format!("{key:?} has id {uuid}, not a UUID4"));
        }
        by_key.insert(key, uuid);
    }
    if bad_ids > SHOWN {
        problems.push(format!("dataset: {bad_ids} ids are not UUIDs in all"));
    }

    // Old id → new UUID, through natural keys (registry) and paths (removed).
    let mut mapping: HashMap<i64, Uuid> = HashMap::new();
    let mut unmapped = 0usize;
    for (old, key) in &before.datasets {
        match by_key.get(key) {
            Some(u) => {
                mapping.insert(*old, *u);
            }
            None => {
                unmapped += 1;
                if unmapped <= SHOWN {
                    problems.push(format!("dataset {old} {key:?} is gone"));
                }
            }
        }
    }
    if unmapped > SHOWN {
        problems.push(format!("{unmapped} datasets are gone in all"));
    }
    let registry: BTreeSet<&String> = keys.keys().collect();
    let by_path: HashMap<String, String> = removed_paths(contents, &registry)
        .into_iter()
        .map(|(id, path)| (path, id))
        .collect();
    let mut bad_removed = 0usize;
    for (old, path) in &before.removed {
        let uuid = by_path.get(path).and_then(|id| Uuid::parse_str(id).ok());
        match uuid {
            Some(uuid) if uuid.get_version_num() == 4 => {
                mapping.insert(*old, uuid);
            }
            _ => {
                bad_removed += 1;
                if bad_removed <= SHOWN {
                    problems.push(format!(
                        "removed dataset {old} ({path}): datastore id {:?} is not a UUID4",
                        by_path.get(path)
                    ));
                }
                if let Some(uuid) = uuid {
                    mapping.insert(*old, uuid);
                }
            }
        }
    }
    if bad_removed > SHOWN {
        problems.push(format!(
            "{bad_removed} removed datasets lack a UUID4 in all"
        ));
    }
    let mut seen: HashMap<Uuid, i64> = HashMap::new();
    for (old, new) in &mapping {
        if let Some(other) = seen.insert(*new, *old) {
            problems.push(format!("datasets {other} and {old} both became {new}"));
        }
    }

    // Every row of every table with a dataset id, translated through the mapping.
    for (table, rows) in &before.dataset_rows {
        let mut expected: Vec<(Option<Uuid>, &Vec<Option<String>>)> = rows
            .iter()
            .map(|(old, rest)| (mapping.get(old).copied(), rest))
            .collect();
        let mut actual: Vec<(Option<Uuid>, &Vec<Option<String>>)> = contents
            .dataset_rows
            .get(table.as_str())
            .into_iter()
            .flatten()
            .map(|(id, rest)| (Uuid::parse_str(id).ok(), rest))
            .collect();
        expected.sort();
        actual.sort();
        if expected != actual {
            let e: BTreeSet<_> = expected.iter().collect();
            let a: BTreeSet<_> = actual.iter().collect();
            let missing: Vec<_> = e.difference(&a).collect();
            let extra: Vec<_> = a.difference(&e).collect();
            problems.push(format!(
                "{table}: {} rows do not point at the same datasets as before (e.g. expected \
                 {:?}); {} unexpected rows (e.g. {:?})",
                missing.len(),
                &missing[..missing.len().min(SHOWN)],
                extra.len(),
                &extra[..extra.len().min(SHOWN)],
            ));
        }
    }
}

fn check_attributes(
    now: &BTreeMap<String, String>,
    before: &BTreeMap<String, String>,
    problems: &mut Vec<String>,
) {
    const KEY: &str = "config:registry.managers.datasets";
    let manager = now.get(KEY).cloned().unwrap_or_default();
    if !manager.ends_with("ByDimensionsDatasetRecordStorageManagerUUID") {
        problems.push(format!(
            "butler_attributes: {KEY} is {manager:?}, not the UUID manager"
        ));
    }
    let version_key = format!("version:{manager}");
    if now.get(&version_key).map(String::as_str) != Some("1.0.0") {
        problems.push(format!(
            "butler_attributes: {version_key} is {:?}, expected \"1.0.0\"",
            now.get(&version_key)
        ));
    }
    let int_version = format!("version:{INT_DATASETS_MANAGER}");
    if now.contains_key(&int_version) {
        problems.push(format!("butler_attributes: {int_version} is still present"));
    }
    for (name, value) in before {
        if name == KEY || name == &int_version {
            continue;
        }
        match now.get(name) {
            Some(v) if v == value => {}
            other => problems.push(format!(
                "butler_attributes: {name} was {value:?}, is now {other:?}"
            )),
        }
    }
    for name in now.keys() {
        if !before.contains_key(name) && name != &version_key {
            problems.push(format!("butler_attributes: unexpected new row {name}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_uuid_of_the_workload_example() {
        let data_id = [
            ("instrument".to_string(), "HSC".to_string()),
            ("exposure".to_string(), "903334".to_string()),
            ("detector".to_string(), "42".to_string()),
        ];
        // Python: uuid.uuid5(uuid.UUID("840b31d9-05cd-5161-b2c8-00d32b280d0f"),
        //   "dataset_type=raw,run=HSC/raw/all,detector=42,exposure=903334,instrument=HSC")
        assert_eq!(
            raw_dataset_uuid("HSC/raw/all", &data_id).to_string(),
            "2f5ee4b8-756e-5705-96b4-3c7b66c7dab5"
        );
    }

    #[test]
    fn attributes_rules() {
        let before: BTreeMap<String, String> = schema::v1_attributes().into_iter().collect();
        let mut problems = Vec::new();
        check_attributes(&before, &before, &mut problems);
        assert_eq!(problems.len(), 2, "{problems:?}");

        let mut after = before.clone();
        let uuid_manager = format!("{INT_DATASETS_MANAGER}UUID");
        after.remove(&format!("version:{INT_DATASETS_MANAGER}"));
        after.insert(
            "config:registry.managers.datasets".into(),
            uuid_manager.clone(),
        );
        after.insert(format!("version:{uuid_manager}"), "1.0.0".into());
        let mut problems = Vec::new();
        check_attributes(&after, &before, &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
    }
}
