//! The v1 registry schema (integer dataset ids) and its `butler_attributes` rows.
//!
//! Names follow the convention of `WORKLOAD.md`: primary key `{table}_pkey`, unique
//! constraint `{table}_unq`, foreign key `{table}_fkey_{referenced table}`, index
//! `{table}_idx_{column}`.

#[cfg(any(test, feature = "internals"))]
use crate::backend::Value;
use crate::backend::{
    ColumnDef, Connection, DbError, ForeignKeyDef, IndexDef, SchemaChange, TableDef,
};

/// The tag table of raw datasets (instrument, exposure, detector).
pub const TAGS_EXPOSURE: &str = "dataset_tags_00000001";
/// The tag table of calexp and src datasets (instrument, visit, detector).
pub const TAGS_VISIT: &str = "dataset_tags_00000002";
/// The tag table of bias and flat datasets (instrument, detector).
pub const TAGS_DETECTOR: &str = "dataset_tags_00000003";
/// The calibration table of bias and flat datasets (instrument, detector).
pub const CALIBS_DETECTOR: &str = "dataset_calibs_00000003";

/// Every table holding a `dataset_id` column, with that column's nullability rules
/// identical (NOT NULL) in v1 and v2.
#[cfg(any(test, feature = "internals"))]
pub const DATASET_ID_TABLES: [&str; 7] = [
    TAGS_EXPOSURE,
    TAGS_VISIT,
    TAGS_DETECTOR,
    CALIBS_DETECTOR,
    "file_datastore_records",
    "dataset_location",
    "dataset_location_trash",
];

fn col(name: &str, data_type: &str, nullable: bool) -> ColumnDef {
    ColumnDef {
        name: name.into(),
        data_type: data_type.into(),
        nullable,
        default: None,
        auto_increment: false,
    }
}

fn auto_id(name: &str) -> ColumnDef {
    ColumnDef {
        auto_increment: true,
        ..col(name, "BIGINT", false)
    }
}

fn names(columns: &[&str]) -> Vec<String> {
    columns.iter().map(|c| (*c).to_string()).collect()
}

fn pkey(table: &str, columns: &[&str]) -> Option<(String, Vec<String>)> {
    Some((format!("{table}_pkey"), names(columns)))
}

fn unq(table: &str, columns: &[&str]) -> Vec<(String, Vec<String>)> {
    vec![(format!("{table}_unq"), names(columns))]
}

fn fkey(
    table: &str,
    columns: &[&str],
    referenced_table: &str,
    referenced_columns: &[&str],
    cascade: bool,
) -> ForeignKeyDef {
    ForeignKeyDef {
        name: format!("{table}_fkey_{referenced_table}"),
        columns: names(columns),
        referenced_table: referenced_table.into(),
        referenced_columns: names(referenced_columns),
        on_delete: cascade.then(|| "CASCADE".to_string()),
    }
}

fn dimension_table(name: &str, extra: &[ColumnDef]) -> TableDef {
    let mut columns = vec![
        col("instrument", "VARCHAR(16)", false),
        col("id", "BIGINT", false),
    ];
    columns.extend_from_slice(extra);
    TableDef {
        name: name.into(),
        columns,
        primary_key: pkey(name, &["instrument", "id"]),
        unique: vec![],
        foreign_keys: vec![fkey(name, &["instrument"], "instrument", &["name"], false)],
    }
}

/// A tags table for the given extra dimensions (each `(column, dimension table)`).
fn tags_table(name: &str, dimensions: &[(&str, &str)]) -> TableDef {
    let mut columns = vec![
        col("dataset_type_id", "BIGINT", false),
        col("dataset_id", "BIGINT", false),
        col("collection_id", "BIGINT", false),
        col("instrument", "VARCHAR(16)", false),
    ];
    let mut unique = vec!["dataset_type_id", "collection_id", "instrument"];
    let mut foreign_keys = vec![
        fkey(name, &["dataset_id"], "dataset", &["id"], true),
        fkey(
            name,
            &["collection_id"],
            "collection",
            &["collection_id"],
            true,
        ),
    ];
    for (column, dimension) in dimensions {
        columns.push(col(column, "BIGINT", false));
        unique.push(column);
        foreign_keys.push(fkey(
            name,
            &["instrument", column],
            dimension,
            &["instrument", "id"],
            false,
        ));
    }
    TableDef {
        name: name.into(),
        columns,
        primary_key: pkey(name, &["dataset_id", "collection_id"]),
        unique: unq(name, &unique),
        foreign_keys,
    }
}

/// The v1 tables, in an order that satisfies every foreign key.
pub fn v1_tables() -> Vec<TableDef> {
    vec![
        TableDef {
            name: "butler_attributes".into(),
            columns: vec![
                col("name", "VARCHAR(1024)", false),
                col("value", "TEXT", false),
            ],
            primary_key: pkey("butler_attributes", &["name"]),
            unique: vec![],
            foreign_keys: vec![],
        },
        TableDef {
            name: "instrument".into(),
            columns: vec![
                col("name", "VARCHAR(16)", false),
                col("visit_max", "BIGINT", true),
                col("exposure_max", "BIGINT", true),
                col("detector_max", "BIGINT", true),
                col("class_name", "VARCHAR(64)", true),
            ],
            primary_key: pkey("instrument", &["name"]),
            unique: vec![],
            foreign_keys: vec![],
        },
        dimension_table("detector", &[col("full_name", "VARCHAR(32)", true)]),
        dimension_table(
            "exposure",
            &[
                col("obs_id", "VARCHAR(64)", true),
                col("day_obs", "INTEGER", true),
            ],
        ),
        dimension_table(
            "visit",
            &[
                col("name", "VARCHAR(64)", true),
                col("day_obs", "INTEGER", true),
            ],
        ),
        TableDef {
            name: "collection".into(),
            columns: vec![
                auto_id("collection_id"),
                col("name", "VARCHAR(64)", false),
                col("type", "SMALLINT", false),
            ],
            primary_key: pkey("collection", &["collection_id"]),
            unique: unq("collection", &["name"]),
            foreign_keys: vec![],
        },
        TableDef {
            name: "run".into(),
            columns: vec![
                col("collection_id", "BIGINT", false),
                col("host", "VARCHAR(128)", true),
                col("timespan_begin", "BIGINT", true),
                col("timespan_end", "BIGINT", true),
            ],
            primary_key: pkey("run", &["collection_id"]),
            unique: vec![],
            foreign_keys: vec![fkey(
                "run",
                &["collection_id"],
                "collection",
                &["collection_id"],
                true,
            )],
        },
        TableDef {
            name: "dataset_type".into(),
            columns: vec![
                col("id", "BIGINT", false),
                col("name", "VARCHAR(128)", false),
                col("storage_class", "VARCHAR(64)", false),
                col("dimensions_key", "VARCHAR(64)", false),
                col("tag_association_table", "VARCHAR(128)", false),
                col("calibration_association_table", "VARCHAR(128)", true),
            ],
            primary_key: pkey("dataset_type", &["id"]),
            unique: unq("dataset_type", &["name"]),
            foreign_keys: vec![],
        },
        TableDef {
            name: "dataset".into(),
            columns: vec![
                auto_id("id"),
                col("dataset_type_id", "BIGINT", false),
                col("run_id", "BIGINT", false),
                col("ingest_date", "TIMESTAMP", true),
            ],
            primary_key: pkey("dataset", &["id"]),
            unique: vec![],
            foreign_keys: vec![
                fkey(
                    "dataset",
                    &["dataset_type_id"],
                    "dataset_type",
                    &["id"],
                    false,
                ),
                fkey("dataset", &["run_id"], "run", &["collection_id"], true),
            ],
        },
        tags_table(
            TAGS_EXPOSURE,
            &[("exposure", "exposure"), ("detector", "detector")],
        ),
        tags_table(TAGS_VISIT, &[("visit", "visit"), ("detector", "detector")]),
        tags_table(TAGS_DETECTOR, &[("detector", "detector")]),
        TableDef {
            name: CALIBS_DETECTOR.into(),
            columns: vec![
                auto_id("id"),
                col("dataset_type_id", "BIGINT", false),
                col("dataset_id", "BIGINT", false),
                col("collection_id", "BIGINT", false),
                col("instrument", "VARCHAR(16)", false),
                col("detector", "BIGINT", false),
                col("validity_begin", "BIGINT", true),
                col("validity_end", "BIGINT", true),
            ],
            primary_key: pkey(CALIBS_DETECTOR, &["id"]),
            unique: vec![],
            foreign_keys: vec![
                fkey(CALIBS_DETECTOR, &["dataset_id"], "dataset", &["id"], true),
                fkey(
                    CALIBS_DETECTOR,
                    &["collection_id"],
                    "collection",
                    &["collection_id"],
                    false,
                ),
            ],
        },
        TableDef {
            name: "file_datastore_records".into(),
            columns: vec![
                col("dataset_id", "BIGINT", false),
                col("component", "VARCHAR(32)", false),
                col("path", "VARCHAR(256)", false),
                col("formatter", "VARCHAR(128)", true),
                col("storage_class", "VARCHAR(64)", true),
                col("checksum", "VARCHAR(128)", true),
                col("file_size", "BIGINT", true),
            ],
            primary_key: pkey("file_datastore_records", &["dataset_id", "component"]),
            unique: vec![],
            foreign_keys: vec![],
        },
        TableDef {
            name: "dataset_location".into(),
            columns: vec![
                col("dataset_id", "BIGINT", false),
                col("datastore_name", "VARCHAR(256)", false),
            ],
            primary_key: pkey("dataset_location", &["dataset_id", "datastore_name"]),
            unique: vec![],
            foreign_keys: vec![fkey(
                "dataset_location",
                &["dataset_id"],
                "dataset",
                &["id"],
                false,
            )],
        },
        TableDef {
            name: "dataset_location_trash".into(),
            columns: vec![
                col("dataset_id", "BIGINT", false),
                col("datastore_name", "VARCHAR(256)", false),
            ],
            primary_key: pkey("dataset_location_trash", &["dataset_id", "datastore_name"]),
            unique: vec![],
            foreign_keys: vec![],
        },
    ]
}

fn index(table: &str, column: &str) -> IndexDef {
    IndexDef {
        name: format!("{table}_idx_{column}"),
        table: table.into(),
        columns: vec![column.into()],
        unique: false,
        concurrently: false,
        if_not_exists: false,
    }
}

/// The v1 indexes that are not the implementation of a key.
pub fn v1_indexes() -> Vec<IndexDef> {
    vec![
        index("dataset", "dataset_type_id"),
        index("dataset", "run_id"),
        index(CALIBS_DETECTOR, "dataset_id"),
    ]
}

/// The integer datasets manager, whose version row the migration removes.
#[cfg(any(test, feature = "internals"))]
pub const INT_DATASETS_MANAGER: &str =
    "lsst.daf.butler.registry.datasets.byDimensions.ByDimensionsDatasetRecordStorageManager";

/// The UUID datasets manager that replaces it.
#[cfg(any(test, feature = "internals"))]
pub const UUID_DATASETS_MANAGER: &str =
    "lsst.daf.butler.registry.datasets.byDimensions.ByDimensionsDatasetRecordStorageManagerUUID";

/// Every column that holds a dataset id, with its table: `dataset.id`, then
/// `dataset_id` of each table in [`DATASET_ID_TABLES`].
#[cfg(any(test, feature = "internals"))]
pub fn dataset_id_columns() -> Vec<(&'static str, &'static str)> {
    std::iter::once(("dataset", "id"))
        .chain(DATASET_ID_TABLES.iter().map(|t| (*t, "dataset_id")))
        .collect()
}

/// The `butler_attributes` rows of a v1 repository.
#[cfg(any(test, feature = "internals"))]
pub fn v1_attributes() -> Vec<(String, String)> {
    let managers = [
        (
            "attributes",
            "lsst.daf.butler.registry.attributes.DefaultButlerAttributeManager",
            "1.0.0",
        ),
        (
            "collections",
            "lsst.daf.butler.registry.collections.synthIntKey.SynthIntKeyCollectionManager",
            "2.0.0",
        ),
        ("datasets", INT_DATASETS_MANAGER, "1.0.0"),
        (
            "datastores",
            "lsst.daf.butler.registry.bridge.monolithic.MonolithicDatastoreRegistryBridgeManager",
            "0.2.0",
        ),
        (
            "dimensions",
            "lsst.daf.butler.registry.dimensions.static.StaticDimensionRecordStorageManager",
            "6.0.2",
        ),
    ];
    let mut rows = Vec::new();
    for (manager, class, version) in managers {
        rows.push((
            format!("config:registry.managers.{manager}"),
            class.to_string(),
        ));
        rows.push((format!("version:{class}"), version.to_string()));
    }
    rows.push((
        "config:dimensions.json".into(),
        r#"{"namespace": "daf_butler", "version": 0, "elements": ["instrument", "detector", "exposure", "visit"]}"#
            .into(),
    ));
    rows
}

/// Creates an empty v1 repository as another tool would: the tables and indexes
/// through [`crate::backend::Ddl::apply_schema_change`] and the `butler_attributes` rows,
/// in one transaction, with nothing that names a migration tool.
#[cfg(any(test, feature = "internals"))]
pub fn create_v1_without_ferry(conn: &mut dyn Connection) -> Result<(), DbError> {
    crate::checkpoint::with_transaction(conn, create_v1_tables)
}

#[cfg(any(test, feature = "internals"))]
fn create_v1_tables(conn: &mut dyn Connection) -> Result<(), DbError> {
    for table in v1_tables() {
        conn.apply_schema_change(&SchemaChange::CreateTable(table))?;
    }
    for index in v1_indexes() {
        conn.apply_schema_change(&SchemaChange::AddIndex(index))?;
    }
    let columns = names(&["name", "value"]);
    let mut rows = v1_attributes()
        .into_iter()
        .map(|(name, value)| vec![Value::Text(name), Value::Text(value)]);
    conn.bulk_insert("butler_attributes", &columns, &mut rows)?;
    Ok(())
}

/// Creates the tables and indexes of v1 that do not exist yet, as the application does
/// when it registers dataset types (the dynamic `dataset_tags_*` / `dataset_calibs_*`
/// tables), after Ferry's root revisions have created the static ones.
pub fn create_missing_tables(conn: &mut dyn Connection) -> Result<Vec<String>, DbError> {
    crate::checkpoint::with_transaction(conn, |conn| {
        let mut created = Vec::new();
        for table in v1_tables() {
            if !conn.table_exists(&table.name)? {
                created.push(table.name.clone());
                conn.apply_schema_change(&SchemaChange::CreateTable(table))?;
            }
        }
        for index in v1_indexes() {
            if created.contains(&index.table) {
                conn.apply_schema_change(&SchemaChange::AddIndex(index))?;
            }
        }
        Ok(created)
    })
}

/// The root revisions of the reference trees: upgrading to them gives registry v1.
pub const V1_REVISIONS: [&str; 6] = [
    "attributes-1.0.0",
    "dimensions-6.0.2",
    "dimensions-config-0",
    "collections-2.0.0",
    "datasets-int-1.0.0",
    "datastores-0.2.0",
];
