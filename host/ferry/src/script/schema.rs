//! The `schema::` capability: portable DDL that keeps names. Each call becomes one
//! [`SchemaChange`] that the backend carries out (SQLite rebuilds tables where
//! `ALTER TABLE` cannot do the change).

use super::error::at;
use super::error::{host_failure, script_failure};
use super::session::{Mode, SharedSession};
use super::values::strings;
use crate::backend::{
    ColumnDef, ColumnRewrite, ForeignKeyDef, IndexDef, SchemaChange, TableDef, TableRewrite,
};
use rhai::{Array, Dynamic, EvalAltResult, Map, Module, NativeCallContext};

type Res<T> = Result<T, Box<EvalAltResult>>;

fn field_str(m: &Map, key: &str, what: &str) -> Res<String> {
    m.get(key)
        .and_then(|v| v.clone().into_string().ok())
        .ok_or_else(|| script_failure(format!("{what} needs `{key}` (a string)")))
}

fn opt_str(m: &Map, key: &str) -> Option<String> {
    m.get(key).and_then(|v| v.clone().into_string().ok())
}

fn opt_bool(m: &Map, key: &str, default: bool) -> bool {
    m.get(key).and_then(|v| v.as_bool().ok()).unwrap_or(default)
}

fn field_strings(m: &Map, key: &str, what: &str) -> Res<Vec<String>> {
    let a = m
        .get(key)
        .and_then(|v| v.clone().try_cast::<Array>())
        .ok_or_else(|| {
            script_failure(format!("{what} needs `{key}` (an array of column names)"))
        })?;
    strings(&a, key).map_err(script_failure)
}

fn default_sql(v: &Dynamic) -> Option<String> {
    if v.is_unit() {
        None
    } else if v.is_string() {
        // A string default is a SQL expression (write `"'text'"` for a literal).
        v.clone().into_string().ok()
    } else {
        Some(v.to_string())
    }
}

fn column(d: &Dynamic) -> Res<ColumnDef> {
    let m = d.clone().try_cast::<Map>().ok_or_else(|| {
        script_failure("a column is a map like #{name: \"id\", type: \"BIGINT\"}")
    })?;
    Ok(ColumnDef {
        name: field_str(&m, "name", "a column")?,
        data_type: field_str(&m, "type", "a column")?,
        nullable: opt_bool(&m, "nullable", true),
        // `default` is a reserved word in Rhai, so scripts write `default_value:`
        // (or the quoted key `"default":`).
        default: m
            .get("default_value")
            .or_else(|| m.get("default"))
            .and_then(default_sql),
        auto_increment: opt_bool(&m, "auto_increment", false),
    })
}

fn foreign_key(table: &str, m: &Map) -> Res<ForeignKeyDef> {
    let referenced_table = field_str(m, "references", "a foreign key")?;
    Ok(ForeignKeyDef {
        name: opt_str(m, "name").unwrap_or_else(|| format!("{table}_fkey_{referenced_table}")),
        columns: field_strings(m, "columns", "a foreign key")?,
        referenced_columns: field_strings(m, "referenced_columns", "a foreign key")?,
        referenced_table,
        on_delete: opt_str(m, "on_delete"),
    })
}

fn named_columns(table: &str, d: &Dynamic, suffix: &str) -> Res<(String, Vec<String>)> {
    if let Some(a) = d.clone().try_cast::<Array>() {
        return Ok((
            format!("{table}_{suffix}"),
            strings(&a, suffix).map_err(script_failure)?,
        ));
    }
    let m = d.clone().try_cast::<Map>().ok_or_else(|| {
        script_failure(format!(
            "{suffix} is an array of columns or #{{name, columns}}"
        ))
    })?;
    Ok((
        opt_str(&m, "name").unwrap_or_else(|| format!("{table}_{suffix}")),
        field_strings(&m, "columns", suffix)?,
    ))
}

fn table_def(name: &str, spec: &Map) -> Res<TableDef> {
    let columns = spec
        .get("columns")
        .and_then(|v| v.clone().try_cast::<Array>())
        .ok_or_else(|| script_failure("create_table needs `columns` (an array of column maps)"))?
        .iter()
        .map(column)
        .collect::<Res<Vec<_>>>()?;
    let primary_key = match spec.get("primary_key") {
        Some(d) if !d.is_unit() => Some(named_columns(name, d, "pkey")?),
        _ => None,
    };
    let mut unique = Vec::new();
    if let Some(list) = spec
        .get("unique")
        .and_then(|v| v.clone().try_cast::<Array>())
    {
        for u in &list {
            unique.push(named_columns(name, u, "unq")?);
        }
    }
    let mut foreign_keys = Vec::new();
    if let Some(list) = spec
        .get("foreign_keys")
        .and_then(|v| v.clone().try_cast::<Array>())
    {
        for f in &list {
            let m = f
                .clone()
                .try_cast::<Map>()
                .ok_or_else(|| script_failure("a foreign key is a map"))?;
            foreign_keys.push(foreign_key(name, &m)?);
        }
    }
    Ok(TableDef {
        name: name.into(),
        columns,
        primary_key,
        unique,
        foreign_keys,
    })
}

pub(super) fn apply(session: &SharedSession, change: SchemaChange) -> Res<()> {
    let mut s = session
        .try_borrow_mut()
        .map_err(|_| script_failure("schema changes cannot run inside the callback of db.each"))?;
    // A dry run is one transaction, where `CONCURRENTLY` cannot run: it builds and
    // drops indexes plainly, which gives the same schema and is rolled back.
    let change = match change {
        SchemaChange::AddIndex(index) if s.mode == Mode::DryRun => {
            SchemaChange::AddIndex(IndexDef {
                concurrently: false,
                ..index
            })
        }
        SchemaChange::DropIndex {
            table,
            name,
            if_exists,
            ..
        } if s.mode == Mode::DryRun => SchemaChange::DropIndex {
            table,
            name,
            if_exists,
            concurrently: false,
        },
        other => other,
    };
    let syntax = s.conn().sql_syntax();
    crate::sql_guard::check_schema_change(&change, syntax)
        .map_err(|r| script_failure(r.to_string()))?;
    if let SchemaChange::CreateTable(def) = &change {
        match crate::backend::foreign_key_target::problem(s.conn(), def) {
            Ok(None) => {}
            Ok(Some(why)) => return Err(script_failure(why)),
            Err(e) => return Err(host_failure(&mut s, e)),
        }
    }
    s.before_statement(true)
        .map_err(|r| super::error::refused(&mut s, r))?;
    let r = s.conn().apply_schema_change(&change);
    match r {
        Ok(statements) => {
            for st in statements {
                s.after_statement(&st, 0);
            }
            Ok(())
        }
        Err(e) => Err(host_failure(&mut s, e)),
    }
}

fn index_def(table: &str, name: &str, columns: Array, o: &Map) -> Res<IndexDef> {
    Ok(IndexDef {
        name: name.into(),
        table: table.into(),
        columns: strings(&columns, "columns").map_err(script_failure)?,
        unique: opt_bool(o, "unique", false),
        concurrently: opt_bool(o, "concurrently", false),
        if_not_exists: opt_bool(o, "if_not_exists", false),
    })
}

/// `[#{ table, join, columns: #{ col: #{ type, value } } }, ...]`
fn rewrites(list: &Array) -> Res<Vec<TableRewrite>> {
    list.iter()
        .map(|d| {
            let m = d
                .clone()
                .try_cast::<Map>()
                .ok_or_else(|| script_failure("rewrite_tables takes an array of maps"))?;
            let table = field_str(&m, "table", "a table rewrite")?;
            let join = opt_str(&m, "join").unwrap_or_default();
            let cols = m
                .get("columns")
                .and_then(|v| v.clone().try_cast::<Map>())
                .ok_or_else(|| {
                    script_failure(format!(
                        "rewrite of {table} needs `columns`: #{{ column: #{{ type: \"UUID\", value: \"m.new_id\" }} }}"
                    ))
                })?;
            let mut columns = Vec::new();
            for (name, spec) in cols {
                let spec = spec
                    .try_cast::<Map>()
                    .ok_or_else(|| script_failure(format!("rewrite of {table}.{name}: expected #{{ type, value }}")))?;
                columns.push(ColumnRewrite {
                    column: name.to_string(),
                    data_type: field_str(&spec, "type", "a column rewrite")?,
                    value: field_str(&spec, "value", "a column rewrite")?,
                });
            }
            Ok(TableRewrite { table, join, columns })
        })
        .collect()
}

/// `#{ steps: bool }`, the options of `schema::rewrite_tables(rewrites, options)`.
fn rewrite_options_want_steps(options: &Map) -> Res<bool> {
    for key in options.keys() {
        if key.as_str() != "steps" {
            return Err(script_failure(format!(
                "schema::rewrite_tables: unknown option `{key}` (the only option is `steps`)"
            )));
        }
    }
    match options.get("steps") {
        None => Ok(false),
        Some(v) => v
            .as_bool()
            .map_err(|_| script_failure("schema::rewrite_tables: `steps` must be true or false")),
    }
}

pub fn module(session: SharedSession) -> Module {
    let mut m = Module::new();
    macro_rules! def {
        ($name:literal, |$($arg:ident : $ty:ty),*| $body:expr) => {{
            let s = session.clone();
            m.set_native_fn($name, move |ctx: NativeCallContext, $($arg: $ty),*| -> Res<()> {
                at(&ctx, || apply(&s, $body?))
            });
        }};
    }
    def!("create_table", |name: &str, spec: Map| table_def(
        name, &spec
    )
    .map(SchemaChange::CreateTable));
    def!("drop_table", |table: &str| Res::Ok(
        SchemaChange::DropTable {
            table: table.into(),
            if_exists: false
        }
    ));
    def!("drop_table_if_exists", |table: &str| Res::Ok(
        SchemaChange::DropTable {
            table: table.into(),
            if_exists: true
        }
    ));
    def!("rename_table", |table: &str, new_name: &str| Res::Ok(
        SchemaChange::RenameTable {
            table: table.into(),
            new_name: new_name.into()
        }
    ));
    def!("add_column", |table: &str, col: Map| column(
        &Dynamic::from_map(col)
    )
    .map(|column| SchemaChange::AddColumn {
        table: table.into(),
        column
    }));
    def!("drop_column", |table: &str, col: &str| Res::Ok(
        SchemaChange::DropColumn {
            table: table.into(),
            column: col.into()
        }
    ));
    def!("rename_column", |table: &str, col: &str, new_name: &str| {
        Res::Ok(SchemaChange::RenameColumn {
            table: table.into(),
            column: col.into(),
            new_name: new_name.into(),
        })
    });
    def!("alter_column_type", |table: &str, col: &str, ty: &str| {
        Res::Ok(SchemaChange::AlterColumnType {
            table: table.into(),
            column: col.into(),
            data_type: ty.into(),
            using: None,
        })
    });
    def!(
        "alter_column_type",
        |table: &str, col: &str, ty: &str, using: &str| Res::Ok(SchemaChange::AlterColumnType {
            table: table.into(),
            column: col.into(),
            data_type: ty.into(),
            using: Some(using.into())
        })
    );
    def!(
        "replace_table_definition",
        |table: &str, sql: &str| Res::Ok(SchemaChange::ReplaceTableDefinition {
            table: table.into(),
            sql: sql.into()
        })
    );
    def!("set_nullable", |table: &str, col: &str, nullable: bool| {
        Res::Ok(SchemaChange::SetNullable {
            table: table.into(),
            column: col.into(),
            nullable,
        })
    });
    def!("add_index", |table: &str, name: &str, cols: Array| {
        index_def(table, name, cols, &Map::new()).map(SchemaChange::AddIndex)
    });
    def!("add_index", |table: &str,
                       name: &str,
                       cols: Array,
                       o: Map| index_def(
        table, name, cols, &o
    )
    .map(SchemaChange::AddIndex));
    def!("drop_index", |table: &str, name: &str| Res::Ok(
        SchemaChange::DropIndex {
            table: table.into(),
            name: name.into(),
            if_exists: false,
            concurrently: false
        }
    ));
    def!("drop_index", |table: &str, name: &str, o: Map| Res::Ok(
        SchemaChange::DropIndex {
            table: table.into(),
            name: name.into(),
            if_exists: opt_bool(&o, "if_exists", false),
            concurrently: opt_bool(&o, "concurrently", false)
        }
    ));
    def!("add_unique", |table: &str, name: &str, cols: Array| {
        strings(&cols, "columns")
            .map_err(script_failure)
            .map(|columns| SchemaChange::AddUnique {
                table: table.into(),
                name: name.into(),
                columns,
            })
    });
    def!("add_foreign_key", |table: &str, spec: Map| foreign_key(
        table, &spec
    )
    .map(|key| SchemaChange::AddForeignKey {
        table: table.into(),
        key
    }));
    def!("add_primary_key", |table: &str, name: &str, cols: Array| {
        strings(&cols, "columns")
            .map_err(script_failure)
            .map(|columns| SchemaChange::AddPrimaryKey {
                table: table.into(),
                name: name.into(),
                columns,
            })
    });
    def!("rewrite_tables", |list: Array| rewrites(&list)
        .map(SchemaChange::RewriteTables));
    let s = session.clone();
    m.set_native_fn(
        "rewrite_tables",
        move |ctx: NativeCallContext, list: Array, options: Map| -> Res<()> {
            at(&ctx, || {
                let rewrites = rewrites(&list)?;
                if rewrite_options_want_steps(&options)? {
                    super::rewrite_steps::run(&s, rewrites)
                } else {
                    apply(&s, SchemaChange::RewriteTables(rewrites))
                }
            })
        },
    );
    def!("drop_constraint", |table: &str, name: &str| Res::Ok(
        SchemaChange::DropConstraint {
            table: table.into(),
            name: name.into()
        }
    ));
    m
}
