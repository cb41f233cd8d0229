//! Introspection methods on `db`: tables, columns, keys, constraints and indexes.

use super::db::Db;
use super::error::host_failure;
use crate::backend::{ColumnInfo, DbError, ForeignKeyInfo, IndexInfo, KeyInfo};
use rhai::{Array, Dynamic, Engine, EvalAltResult, Map};

type Res<T> = Result<T, Box<EvalAltResult>>;

fn strings(v: &[String]) -> Dynamic {
    Dynamic::from_array(v.iter().map(|s| Dynamic::from(s.clone())).collect())
}

fn column(c: ColumnInfo) -> Dynamic {
    let mut m = Map::new();
    m.insert("name".into(), c.name.into());
    m.insert("type".into(), c.data_type.into());
    m.insert("nullable".into(), c.nullable.into());
    // `default` is a reserved word in Rhai: scripts read `col.default_value`
    // (`col["default"]` works too).
    let default = c.default.map(Dynamic::from).unwrap_or(Dynamic::UNIT);
    m.insert("default_value".into(), default.clone());
    m.insert("default".into(), default);
    Dynamic::from_map(m)
}

fn key(k: KeyInfo) -> Dynamic {
    let mut m = Map::new();
    m.insert("name".into(), k.name.into());
    m.insert("columns".into(), strings(&k.columns));
    Dynamic::from_map(m)
}

fn foreign_key(k: ForeignKeyInfo) -> Dynamic {
    let mut m = Map::new();
    m.insert("name".into(), k.name.into());
    m.insert("columns".into(), strings(&k.columns));
    m.insert("references".into(), k.referenced_table.into());
    m.insert("referenced_columns".into(), strings(&k.referenced_columns));
    m.insert("on_delete".into(), k.on_delete.into());
    Dynamic::from_map(m)
}

fn index(i: IndexInfo) -> Dynamic {
    let mut m = Map::new();
    m.insert("name".into(), i.name.into());
    m.insert("columns".into(), strings(&i.columns));
    m.insert("unique".into(), i.unique.into());
    Dynamic::from_map(m)
}

fn read<T>(
    db: &mut Db,
    f: impl FnOnce(&mut dyn crate::backend::Connection) -> Result<T, DbError>,
) -> Res<T> {
    let mut s = db.session()?;
    let r = f(s.conn());
    r.map_err(|e| host_failure(&mut s, e))
}

/// Registers the introspection methods.
pub fn register(engine: &mut Engine) {
    engine.register_fn("tables", |db: &mut Db, pattern: &str| -> Res<Array> {
        Ok(read(db, |c| c.tables(pattern))?
            .into_iter()
            .map(Dynamic::from)
            .collect())
    });
    engine.register_fn("table_exists", |db: &mut Db, table: &str| -> Res<bool> {
        read(db, |c| c.table_exists(table))
    });
    engine.register_fn("columns", |db: &mut Db, table: &str| -> Res<Array> {
        Ok(read(db, |c| c.columns(table))?
            .into_iter()
            .map(column)
            .collect())
    });
    engine.register_fn("primary_key", |db: &mut Db, table: &str| -> Res<Dynamic> {
        Ok(read(db, |c| c.primary_key(table))?
            .map(key)
            .unwrap_or(Dynamic::UNIT))
    });
    engine.register_fn("foreign_keys", |db: &mut Db, table: &str| -> Res<Array> {
        Ok(read(db, |c| c.foreign_keys(table))?
            .into_iter()
            .map(foreign_key)
            .collect())
    });
    engine.register_fn(
        "unique_constraints",
        |db: &mut Db, table: &str| -> Res<Array> {
            Ok(read(db, |c| c.unique_constraints(table))?
                .into_iter()
                .map(key)
                .collect())
        },
    );
    engine.register_fn("indexes", |db: &mut Db, table: &str| -> Res<Array> {
        Ok(read(db, |c| c.indexes(table))?
            .into_iter()
            .map(index)
            .collect())
    });
}
