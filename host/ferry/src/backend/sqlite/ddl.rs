//! Portable schema changes on SQLite: `ALTER TABLE` where SQLite can, a table
//! rebuild (as Alembic's batch mode does) where it cannot.
//!
//! A rebuild follows SQLite's own procedure ("Making Other Kinds Of Table Schema
//! Changes", <https://www.sqlite.org/lang_altertable.html#otheralter>): read the
//! whole current definition, create `_ferry_tmp_{t}` with the new shape and the
//! same named constraints, copy the rows, drop `t`, rename the new table to `t`,
//! recreate the indexes and triggers by their stored SQL, and run
//! `PRAGMA foreign_key_check`.
//!
//! Foreign keys: `DROP TABLE t` with enforcement on would delete `t`'s rows first
//! and fire the `ON DELETE` actions of the tables that reference `t`. Outside a
//! transaction the rebuild turns enforcement off (`PRAGMA foreign_keys=OFF`) and
//! runs in its own transaction, then checks the whole database. Inside a caller's
//! transaction that pragma is a no-op (SQLite ignores it there), so the rebuild
//! sets `PRAGMA defer_foreign_keys=ON` (the table's own references are checked at
//! COMMIT, so a parent and its children can be converted in turn) and refuses a
//! table that other tables reference: `defer_foreign_keys` does not stop the
//! implicit delete from firing `ON DELETE CASCADE` on them (tested).
//! `PRAGMA legacy_alter_table=ON` keeps the final rename from re-checking views and
//! triggers that still name the dropped table.

use rusqlite::Connection as Raw;

use super::introspect;
use super::{failure_on, statement_error};
use crate::backend::{ColumnDef, DbError, ForeignKeyDef, SchemaChange, TableDef};

/// `name` as a quoted SQLite identifier.
pub(super) fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

fn quote_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| quote(n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Maps a portable type to the type SQLite declares.
pub fn sqlite_type(portable: &str) -> String {
    let t = portable.trim();
    if t.eq_ignore_ascii_case("uuid") {
        "CHAR(32)".into()
    } else {
        t.to_string()
    }
}

fn is_integer_type(t: &str) -> bool {
    ["integer", "bigint", "smallint", "int"]
        .iter()
        .any(|i| t.trim().eq_ignore_ascii_case(i))
}

fn pk_name(def: &TableDef, name: &str) -> String {
    if name.is_empty() {
        format!("{}_pkey", def.name)
    } else {
        name.to_string()
    }
}

fn column_sql(def: &TableDef, c: &ColumnDef) -> String {
    if c.auto_increment {
        let name = def
            .primary_key
            .as_ref()
            .map(|(n, _)| pk_name(def, n))
            .unwrap_or_else(|| pk_name(def, ""));
        return format!(
            "{} INTEGER NOT NULL CONSTRAINT {} PRIMARY KEY AUTOINCREMENT",
            quote(&c.name),
            quote(&name)
        );
    }
    let mut s = format!("{} {}", quote(&c.name), sqlite_type(&c.data_type));
    // SQLite lets a primary-key column that is not the rowid hold NULL unless it says
    // NOT NULL (its own documented quirk); every other database refuses. A key column
    // comes out NOT NULL whatever the definition (or the table it was read from) says.
    let in_primary_key = def
        .primary_key
        .as_ref()
        .is_some_and(|(_, cols)| cols.iter().any(|k| k.eq_ignore_ascii_case(&c.name)));
    if !c.nullable || in_primary_key {
        s.push_str(" NOT NULL");
    }
    if let Some(d) = &c.default {
        s.push_str(&format!(" DEFAULT {d}"));
    }
    s
}

fn foreign_key_sql(key: &ForeignKeyDef) -> String {
    let mut s = format!(
        "CONSTRAINT {} FOREIGN KEY ({}) REFERENCES {} ({})",
        quote(&key.name),
        quote_list(&key.columns),
        quote(&key.referenced_table),
        quote_list(&key.referenced_columns)
    );
    if let Some(rule) = &key.on_delete {
        if !rule.eq_ignore_ascii_case("NO ACTION") {
            s.push_str(&format!(" ON DELETE {}", rule.to_uppercase()));
        }
    }
    s
}

/// `CREATE TABLE` for `def` under the name `as_name`, every constraint named.
pub fn create_table_sql(def: &TableDef, as_name: &str) -> Result<String, DbError> {
    let auto: Vec<&ColumnDef> = def.columns.iter().filter(|c| c.auto_increment).collect();
    if auto.len() > 1 {
        return Err(DbError::unsupported(format!(
            "table {}: more than one auto-increment column",
            def.name
        )));
    }
    if let (Some(c), Some((_, cols))) = (auto.first(), &def.primary_key) {
        if cols.len() != 1 || cols[0] != c.name {
            return Err(DbError::unsupported(format!(
                "table {}: the auto-increment column {} must be the whole primary key",
                def.name, c.name
            )));
        }
    }
    let mut parts: Vec<String> = def.columns.iter().map(|c| column_sql(def, c)).collect();
    if let (Some((name, cols)), true) = (&def.primary_key, auto.is_empty()) {
        parts.push(format!(
            "CONSTRAINT {} PRIMARY KEY ({})",
            quote(&pk_name(def, name)),
            quote_list(cols)
        ));
    }
    for (name, cols) in &def.unique {
        parts.push(format!(
            "CONSTRAINT {} UNIQUE ({})",
            quote(name),
            quote_list(cols)
        ));
    }
    parts.extend(def.foreign_keys.iter().map(foreign_key_sql));
    Ok(format!(
        "CREATE TABLE {} (\n  {}\n)",
        quote(as_name),
        parts.join(",\n  ")
    ))
}

fn run(raw: &Raw, sql: String, ran: &mut Vec<String>) -> Result<(), DbError> {
    raw.execute_batch(&sql)
        .map_err(|e| failure_on(raw, e, &sql, &[]))?;
    ran.push(sql);
    Ok(())
}

/// Applies one change; returns the statements run.
pub fn apply(raw: &Raw, change: &SchemaChange) -> Result<Vec<String>, DbError> {
    let mut ran = Vec::new();
    match change {
        // Only in a transaction that checks foreign keys at commit (`SqliteConnection`).
        SchemaChange::RewriteTables(_)
        | SchemaChange::PrepareRewrite { .. }
        | SchemaChange::SwapRewritten { .. } => {
            return Err(super::rewrite::needs_keys_checked_at_commit())
        }
        SchemaChange::CreateTable(def) => run(raw, create_table_sql(def, &def.name)?, &mut ran)?,
        SchemaChange::ReplaceTableDefinition { table, sql } => {
            ran = super::stored_definition::replace(raw, table, sql)?
        }
        SchemaChange::DropTable { table, if_exists } => {
            let ie = if *if_exists { "IF EXISTS " } else { "" };
            run(raw, format!("DROP TABLE {ie}{}", quote(table)), &mut ran)?
        }
        SchemaChange::RenameTable { table, new_name } => run(
            raw,
            format!("ALTER TABLE {} RENAME TO {}", quote(table), quote(new_name)),
            &mut ran,
        )?,
        SchemaChange::AddColumn { table, column }
            if !column.auto_increment && (column.nullable || column.default.is_some()) =>
        {
            let def = TableDef {
                name: table.clone(),
                columns: vec![],
                primary_key: None,
                unique: vec![],
                foreign_keys: vec![],
            };
            run(
                raw,
                format!(
                    "ALTER TABLE {} ADD COLUMN {}",
                    quote(table),
                    column_sql(&def, column)
                ),
                &mut ran,
            )?
        }
        SchemaChange::RenameColumn {
            table,
            column,
            new_name,
        } => run(
            raw,
            format!(
                "ALTER TABLE {} RENAME COLUMN {} TO {}",
                quote(table),
                quote(column),
                quote(new_name)
            ),
            &mut ran,
        )?,
        SchemaChange::DropColumn { table, column }
            if !column_in_key_or_index(raw, table, column)? =>
        {
            run(
                raw,
                format!("ALTER TABLE {} DROP COLUMN {}", quote(table), quote(column)),
                &mut ran,
            )?
        }
        SchemaChange::AddIndex(index) => {
            let unique = if index.unique { "UNIQUE " } else { "" };
            let ine = if index.if_not_exists {
                "IF NOT EXISTS "
            } else {
                ""
            };
            let sql = format!(
                "CREATE {unique}INDEX {ine}{} ON {} ({})",
                quote(&index.name),
                quote(&index.table),
                quote_list(&index.columns)
            );
            run(raw, sql, &mut ran)?
        }
        SchemaChange::DropIndex {
            name, if_exists, ..
        } => {
            let ie = if *if_exists { "IF EXISTS " } else { "" };
            run(raw, format!("DROP INDEX {ie}{}", quote(name)), &mut ran)?
        }
        other => return rebuild(raw, other),
    }
    Ok(ran)
}

fn column_in_key_or_index(raw: &Raw, table: &str, column: &str) -> Result<bool, DbError> {
    let has = |cols: &[String]| cols.iter().any(|c| c.eq_ignore_ascii_case(column));
    if introspect::primary_key(raw, table)?.is_some_and(|k| has(&k.columns)) {
        return Ok(true);
    }
    if introspect::unique_constraints(raw, table)?
        .iter()
        .any(|k| has(&k.columns))
    {
        return Ok(true);
    }
    if introspect::foreign_keys(raw, table)?
        .iter()
        .any(|k| has(&k.columns))
    {
        return Ok(true);
    }
    Ok(introspect::indexes(raw, table)?
        .iter()
        .any(|k| has(&k.columns)))
}

/// The `CHECK` constraints of `table` as table-level clauses for a rebuilt version of it
/// whose definition is `def`; those that name a column `def` no longer has go with that
/// column, as on PostgreSQL. ([`TableDef`] has no place for them: they are carried from
/// the stored statement to the new one.)
pub(super) fn kept_checks(raw: &Raw, table: &str, def: &TableDef) -> Result<Vec<String>, DbError> {
    let Some(sql) = introspect::create_sql(raw, table)? else {
        return Ok(Vec::new());
    };
    let old_columns = introspect::columns(raw, table)?;
    let gone: Vec<&str> = old_columns
        .iter()
        .map(|c| c.name.as_str())
        .filter(|o| !def.columns.iter().any(|n| n.name.eq_ignore_ascii_case(o)))
        .collect();
    Ok(super::table_sql::parse_create_table(&sql)
        .checks
        .iter()
        .filter(|c| !gone.iter().any(|g| c.mentions(g)))
        .map(|c| c.sql())
        .collect())
}

/// `create` (from [`create_table_sql`]) with `checks` added as table constraints.
pub(super) fn with_checks(create: String, checks: &[String]) -> String {
    match create.strip_suffix("\n)") {
        Some(body) if !checks.is_empty() => {
            format!("{body},\n  {}\n)", checks.join(",\n  "))
        }
        _ => create,
    }
}

/// The table's current definition as Ferry would write it.
pub(super) fn current_definition(raw: &Raw, table: &str) -> Result<TableDef, DbError> {
    if introspect::create_sql(raw, table)?.is_none() {
        return Err(DbError::other(format!("no table named {table}")));
    }
    let auto = introspect::autoincrement_columns(raw, table)?;
    let columns = introspect::columns(raw, table)?
        .into_iter()
        .map(|c| ColumnDef {
            auto_increment: auto.iter().any(|a| a.eq_ignore_ascii_case(&c.name)),
            data_type: if c.data_type.is_empty() {
                "BLOB".into()
            } else {
                c.data_type.to_uppercase()
            },
            name: c.name,
            nullable: c.nullable,
            default: c.default,
        })
        .collect();
    let primary_key = introspect::primary_key(raw, table)?.map(|k| (k.name, k.columns));
    let unique = introspect::unique_constraints(raw, table)?
        .into_iter()
        .map(|k| (k.name, k.columns))
        .collect();
    let foreign_keys = introspect::foreign_keys(raw, table)?
        .into_iter()
        .map(|k| ForeignKeyDef {
            name: k.name,
            columns: k.columns,
            referenced_table: k.referenced_table,
            referenced_columns: k.referenced_columns,
            on_delete: Some(k.on_delete),
        })
        .collect();
    Ok(TableDef {
        name: table.to_string(),
        columns,
        primary_key,
        unique,
        foreign_keys,
    })
}

fn find_column<'a>(def: &'a mut TableDef, column: &str) -> Result<&'a mut ColumnDef, DbError> {
    let table = def.name.clone();
    def.columns
        .iter_mut()
        .find(|c| c.name.eq_ignore_ascii_case(column))
        .ok_or_else(|| DbError::other(format!("table {table} has no column {column}")))
}

/// Applies `change` to `def`; returns the expressions that fill each new column
/// `(column, expression)` pairs that fill a column from a `using` expression.
fn reshape(def: &mut TableDef, change: &SchemaChange) -> Result<Vec<(String, String)>, DbError> {
    let mut using: Option<(String, String)> = None;
    match change {
        SchemaChange::AlterColumnType {
            column,
            data_type,
            using: expr,
            ..
        } => {
            let c = find_column(def, column)?;
            c.data_type = sqlite_type(data_type);
            if !is_integer_type(data_type) {
                c.auto_increment = false;
            }
            if let Some(expr) = expr {
                using = Some((c.name.clone(), expr.clone()));
            }
        }
        SchemaChange::SetNullable {
            column, nullable, ..
        } => find_column(def, column)?.nullable = *nullable,
        SchemaChange::AddColumn { column, .. } => {
            if column.auto_increment {
                def.primary_key = Some((String::new(), vec![column.name.clone()]));
            }
            def.columns.push(column.clone());
        }
        SchemaChange::DropColumn { column, .. } => {
            let name = find_column(def, column)?.name.clone();
            let has = |cols: &[String]| cols.iter().any(|c| c.eq_ignore_ascii_case(&name));
            def.columns.retain(|c| c.name != name);
            if def.primary_key.as_ref().is_some_and(|(_, cols)| has(cols)) {
                def.primary_key = None;
            }
            def.unique.retain(|(_, cols)| !has(cols));
            def.foreign_keys.retain(|k| !has(&k.columns));
        }
        SchemaChange::AddUnique { name, columns, .. } => {
            for c in columns {
                find_column(def, c)?;
            }
            def.unique.push((name.clone(), columns.clone()));
        }
        SchemaChange::AddForeignKey { key, .. } => {
            for c in &key.columns {
                find_column(def, c)?;
            }
            def.foreign_keys.push(key.clone());
        }
        SchemaChange::AddPrimaryKey { name, columns, .. } => {
            if let Some((existing, _)) = &def.primary_key {
                return Err(DbError::other(format!(
                    "table {} already has a primary key {existing}",
                    def.name
                )));
            }
            for c in columns {
                find_column(def, c)?.nullable = false;
            }
            def.primary_key = Some((name.clone(), columns.clone()));
        }
        SchemaChange::DropConstraint { name, .. } => {
            let before = (
                def.primary_key.is_some(),
                def.unique.len(),
                def.foreign_keys.len(),
            );
            if def.primary_key.as_ref().is_some_and(|(n, _)| n == name) {
                def.primary_key = None;
                def.columns
                    .iter_mut()
                    .for_each(|c| c.auto_increment = false);
            }
            def.unique.retain(|(n, _)| n != name);
            def.foreign_keys.retain(|k| &k.name != name);
            if before
                == (
                    def.primary_key.is_some(),
                    def.unique.len(),
                    def.foreign_keys.len(),
                )
            {
                return Err(DbError::other(format!(
                    "table {} has no constraint named {name}",
                    def.name
                )));
            }
        }
        other => {
            return Err(DbError::unsupported(format!(
                "the SQLite backend cannot apply {other:?}"
            )))
        }
    }
    Ok(using.into_iter().collect())
}

fn rebuild(raw: &Raw, change: &SchemaChange) -> Result<Vec<String>, DbError> {
    let table = match change {
        SchemaChange::AlterColumnType { table, .. }
        | SchemaChange::SetNullable { table, .. }
        | SchemaChange::AddColumn { table, .. }
        | SchemaChange::DropColumn { table, .. }
        | SchemaChange::AddUnique { table, .. }
        | SchemaChange::AddForeignKey { table, .. }
        | SchemaChange::AddPrimaryKey { table, .. }
        | SchemaChange::DropConstraint { table, .. } => table.clone(),
        other => {
            return Err(DbError::unsupported(format!(
                "the SQLite backend cannot apply {other:?}"
            )))
        }
    };
    let old = current_definition(raw, &table)?;
    let mut new = old.clone();
    let using = reshape(&mut new, change)?;
    let checks = kept_checks(raw, &table, &new)?;
    let dependents = introspect::dependent_sql(raw, &table)?;
    // Indexes over a dropped column go with it, as on PostgreSQL.
    let mut keep = Vec::new();
    for (kind, name, sql) in dependents {
        let gone = if kind == "index" {
            let cols = introspect::index_columns(raw, &name)?;
            cols.iter()
                .any(|c| !new.columns.iter().any(|n| n.name.eq_ignore_ascii_case(c)))
        } else {
            false
        };
        if !gone {
            keep.push(sql);
        }
    }

    let tmp = format!("_ferry_tmp_{table}");
    let mut targets = Vec::new();
    let mut sources = Vec::new();
    for c in &new.columns {
        if !old.columns.iter().any(|o| o.name == c.name) {
            continue; // an added column takes its default
        }
        targets.push(quote(&c.name));
        let expr = using
            .iter()
            .find(|(n, _)| *n == c.name)
            .map(|(_, e)| e.clone());
        sources.push(expr.unwrap_or_else(|| quote(&c.name)));
    }
    let statements = {
        let mut s = vec![with_checks(create_table_sql(&new, &tmp)?, &checks)];
        s.push(format!(
            "INSERT INTO {} ({}) SELECT {} FROM {}",
            quote(&tmp),
            targets.join(", "),
            sources.join(", "),
            quote(&table)
        ));
        s.push(format!("DROP TABLE {}", quote(&table)));
        s.push(format!(
            "ALTER TABLE {} RENAME TO {}",
            quote(&tmp),
            quote(&table)
        ));
        s.extend(keep);
        s
    };

    let own_transaction = raw.is_autocommit();
    let fk_enforced: bool = raw
        .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
        .map_err(|e| statement_error(e, "PRAGMA foreign_keys"))?;
    if !own_transaction && fk_enforced {
        let children = referencing_tables(raw, &table)?;
        if !children.is_empty() {
            return Err(DbError::unsupported(format!(
                "cannot rebuild table {table} inside a transaction while {} reference it: SQLite cannot turn \
                 foreign keys off inside a transaction, and dropping the old table would apply their ON DELETE \
                 rules; run this change outside a transaction",
                children.join(", ")
            )));
        }
    }
    let mut ran = Vec::new();
    let setup = if own_transaction {
        "PRAGMA foreign_keys=OFF; PRAGMA legacy_alter_table=ON; BEGIN IMMEDIATE"
    } else {
        "PRAGMA defer_foreign_keys=ON; PRAGMA legacy_alter_table=ON"
    };
    raw.execute_batch(setup)
        .map_err(|e| statement_error(e, setup))?;
    let body = (|| {
        for sql in statements {
            run(raw, sql, &mut ran)?;
        }
        // Inside a caller's transaction the check is the caller's (deferred to COMMIT):
        // a migration may convert a parent and its children in successive steps.
        if own_transaction {
            check_foreign_keys(raw)
        } else {
            Ok(())
        }
    })();
    let outcome = match (body, own_transaction) {
        (Ok(()), true) => raw
            .execute_batch("COMMIT")
            .map_err(|e| statement_error(e, "COMMIT")),
        (Err(e), true) => {
            let _ = raw.execute_batch("ROLLBACK");
            Err(e)
        }
        (result, false) => result,
    };
    let restore = format!(
        "PRAGMA legacy_alter_table=OFF; PRAGMA foreign_keys={}",
        if fk_enforced { "ON" } else { "OFF" }
    );
    raw.execute_batch(&restore)
        .map_err(|e| statement_error(e, &restore))?;
    outcome.map(|()| ran)
}

/// Other tables whose foreign keys reference `table`.
fn referencing_tables(raw: &Raw, table: &str) -> Result<Vec<String>, DbError> {
    let mut out: Vec<String> = Vec::new();
    for (other, key) in introspect::all_foreign_keys(raw)? {
        if other != table
            && key.referenced_table.eq_ignore_ascii_case(table)
            && out.last() != Some(&other)
        {
            out.push(other);
        }
    }
    Ok(out)
}

pub(super) fn check_foreign_keys(raw: &Raw) -> Result<(), DbError> {
    let sql = "PRAGMA foreign_key_check";
    let mut stmt = raw.prepare(sql).map_err(|e| statement_error(e, sql))?;
    let violations: Vec<(String, Option<i64>, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(|e| statement_error(e, sql))?
        .collect::<Result<_, _>>()
        .map_err(|e| statement_error(e, sql))?;
    if violations.is_empty() {
        return Ok(());
    }
    let first: Vec<String> = violations
        .iter()
        .take(5)
        .map(|(t, row, parent)| {
            format!(
                "{t} rowid {} → {parent}",
                row.map_or("?".into(), |r| r.to_string())
            )
        })
        .collect();
    Err(DbError::statement(
        format!(
            "the rebuild left {} foreign key violation(s): {}",
            violations.len(),
            first.join("; ")
        ),
        sql,
    )
    .with_kind(crate::backend::DbErrorKind::ForeignKeyViolation))
}
