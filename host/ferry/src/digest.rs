//! The schema digest: a canonical fingerprint of a repository's schema.
//!
//! The digest is the sha256 (lowercase hex) of a canonical text that lists, per table
//! (sorted by name): its columns (sorted by name) with normalised types and
//! nullability, its primary key, unique constraints, foreign keys (with their `ON
//! DELETE` rule) and indexes, each with its name and columns.
//!
//! * Ferry's own tables (`ferry_*`) are left out.
//! * **Dynamic table families** are folded: a table whose name ends in `_<digits>`
//!   (`dataset_tags_00000001`, `dataset_calibs_00000002`) is written as `<prefix>_#`, the
//!   same substitution is made in the names of its constraints and indexes and in foreign
//!   keys that reference it, and identical blocks are written once. Ten tag tables of
//!   the same shape give the same digest as one (a family with no member at all is
//!   still different from a family with one).
//! * **Types** are normalised within a backend, not across backends: the first line of
//!   the text names the dialect, so SQLite and PostgreSQL digests of the same logical
//!   schema differ (a UUID column is `uuid` on PostgreSQL and `char(32)` on SQLite; they
//!   are kept distinct on purpose). Within a backend, spellings of one type are mapped
//!   to one form: `int8`/`bigint` → `BIGINT`, `character varying(n)`/`varchar(n)` →
//!   `VARCHAR(n)`, `int4`/`int`/`integer` → `INTEGER`, `bool` → `BOOLEAN`,
//!   `double precision`/`float8` → `DOUBLE`, `timestamp without time zone` →
//!   `TIMESTAMP`, whitespace collapsed, upper case.
//! * Column defaults and column order are left out: defaults are rendered differently
//!   by each database version (and name sequences), and the order of columns is not
//!   part of the logical schema.

use crate::backend::{Connection, DbError};
use std::collections::BTreeSet;

/// A computed digest and the canonical text it is the hash of.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SchemaDigest {
    /// The sha256 of `text`, in lowercase hex: what a revision's `DIGEST` declares.
    pub sha256: String,
    /// The canonical text of the schema (tables, columns, keys, indexes), one line each.
    pub text: String,
}

impl SchemaDigest {
    /// The backend the digest was computed on (`sqlite`, `postgres`), from the second
    /// line of the canonical text.
    pub fn dialect(&self) -> &str {
        self.text
            .lines()
            .nth(1)
            .and_then(|l| l.strip_prefix("dialect "))
            .unwrap_or_default()
    }

    internal_fn! {
        /// What a revision's `DIGEST` declares for this digest's backend (`None`: a
        /// per-backend `DIGEST` that does not name it, so there is nothing to compare).
        fn declared<'a>(&self, declared: &'a crate::metadata::DeclaredDigest) -> Option<&'a str> {
            declared.for_dialect(self.dialect())
        }
    }

    /// Whether a revision's declared `DIGEST` matches (a declared digest may be an
    /// abbreviation of at least 8 hex characters).
    pub fn matches(&self, declared: &str) -> bool {
        let d = declared.trim().to_ascii_lowercase();
        d.len() >= 8 && self.sha256.starts_with(&d)
    }
}

/// Computes the digest of the schema `conn` points at.
pub fn digest(conn: &mut dyn Connection) -> Result<SchemaDigest, DbError> {
    let text = canonical_text(conn)?;
    let sha256 = crate::metadata::checksum(text.as_bytes());
    Ok(SchemaDigest { sha256, text })
}

/// The folded name of a table: `dataset_tags_00000001` → `dataset_tags_#`.
pub fn fold_table(name: &str) -> Option<String> {
    let stem = name.trim_end_matches(|c: char| c.is_ascii_digit());
    if stem.len() < name.len() && stem.ends_with('_') && stem.len() > 1 {
        Some(format!("{stem}#"))
    } else {
        None
    }
}

fn fold_name(name: &str, table: &str, folded: &Option<String>) -> String {
    match folded {
        Some(f) => name.replace(table, f),
        None => name.to_string(),
    }
}

/// Normalises a type name as one backend spells it.
pub fn normalise_type(raw: &str) -> String {
    let mut t = raw
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_ascii_lowercase()
        .replace(" (", "(")
        .replace(", ", ",");
    let (base, args) = match t.find('(') {
        Some(i) => (t[..i].trim().to_string(), t[i..].to_string()),
        None => (t.clone(), String::new()),
    };
    let base = match base.as_str() {
        "character varying" => "varchar",
        "character" => "char",
        "timestamp without time zone" => "timestamp",
        "timestamp with time zone" => "timestamptz",
        "double precision" | "float8" => "double",
        "float4" => "real",
        "int8" => "bigint",
        "int4" | "int" => "integer",
        "int2" => "smallint",
        "bool" => "boolean",
        other => other,
    };
    t = format!("{base}{args}");
    t.to_ascii_uppercase()
}

fn list(cols: &[String]) -> String {
    cols.join(", ")
}

/// The canonical text the digest hashes.
pub fn canonical_text(conn: &mut dyn Connection) -> Result<String, DbError> {
    let own: BTreeSet<&str> = crate::ledger::table_names().iter().copied().collect();
    let mut blocks: BTreeSet<String> = BTreeSet::new();
    for table in conn.tables("%")? {
        if own.contains(table.as_str()) || table.starts_with("ferry_") {
            continue;
        }
        let folded = fold_table(&table);
        let shown = folded.clone().unwrap_or_else(|| table.clone());
        let mut lines = vec![format!("table {shown}")];
        let mut columns = conn.columns(&table)?;
        columns.sort_by(|a, b| a.name.cmp(&b.name));
        for c in columns {
            lines.push(format!(
                "  column {} {}{}",
                c.name,
                normalise_type(&c.data_type),
                if c.nullable { "" } else { " NOT NULL" }
            ));
        }
        if let Some(pk) = conn.primary_key(&table)? {
            lines.push(format!(
                "  primary key {} ({})",
                fold_name(&pk.name, &table, &folded),
                list(&pk.columns)
            ));
        }
        let mut keyed: Vec<String> = Vec::new();
        for u in conn.unique_constraints(&table)? {
            keyed.push(format!(
                "  unique {} ({})",
                fold_name(&u.name, &table, &folded),
                list(&u.columns)
            ));
        }
        for fk in conn.foreign_keys(&table)? {
            let target = fold_table(&fk.referenced_table).unwrap_or(fk.referenced_table.clone());
            keyed.push(format!(
                "  foreign key {} ({}) references {} ({}) on delete {}",
                fold_name(&fk.name, &table, &folded),
                list(&fk.columns),
                target,
                list(&fk.referenced_columns),
                fk.on_delete.to_ascii_uppercase()
            ));
        }
        for ix in conn.indexes(&table)? {
            keyed.push(format!(
                "  {}index {} ({})",
                if ix.unique { "unique " } else { "" },
                fold_name(&ix.name, &table, &folded),
                list(&ix.columns)
            ));
        }
        keyed.sort();
        lines.extend(keyed);
        blocks.insert(lines.join("\n"));
    }
    let mut text = format!(
        "ferry schema digest v1\ndialect {}\n",
        conn.dialect().name()
    );
    for b in blocks {
        text.push_str(&b);
        text.push('\n');
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_numbered_tables_only() {
        assert_eq!(
            fold_table("dataset_tags_00000001").as_deref(),
            Some("dataset_tags_#")
        );
        assert_eq!(fold_table("dataset_v2"), None);
        assert_eq!(fold_table("dataset"), None);
        assert_eq!(fold_table("_1"), None);
    }

    #[test]
    fn normalises_spellings() {
        assert_eq!(normalise_type("character varying(64)"), "VARCHAR(64)");
        assert_eq!(normalise_type("varchar (64)"), "VARCHAR(64)");
        assert_eq!(normalise_type("int8"), "BIGINT");
        assert_eq!(normalise_type("bigint"), "BIGINT");
        assert_eq!(normalise_type("int"), "INTEGER");
        assert_eq!(normalise_type("bool"), "BOOLEAN");
        assert_eq!(normalise_type("boolean"), "BOOLEAN");
        assert_eq!(normalise_type("uuid"), "UUID");
        assert_eq!(normalise_type("char(32)"), "CHAR(32)");
        assert_eq!(normalise_type("timestamp without time zone"), "TIMESTAMP");
    }
}
