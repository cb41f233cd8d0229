//! `db.insert_derived`: per-row work done natively. Runs a query once (in `key` order
//! when given), derives each output row (copied columns, text templates, UUID v4 / v5),
//! and inserts it while the query streams ([`crate::backend::Bulk::insert_derived`]:
//! SQLite steps the query and inserts with a prepared statement, PostgreSQL reads a
//! cursor in chunks and sends each with binary COPY). Memory is bounded by the chunk
//! size, never by the table.
//!
//! ```rhai
//! db.insert_derived(#{
//!     source: "SELECT d.id, r.name AS run FROM dataset d JOIN collection r ON r.collection_id = d.run_id",
//!     key: "id",
//!     into: "id_map",
//!     columns: ["old_id", "new_id"],
//!     values: ["id", #{ uuid5: "840b31d9-05cd-5161-b2c8-00d32b280d0f", name: "run={run},id={id}" }],
//! });
//! ```

use super::db::Db;
use super::error::{host_failure, script_failure};
use super::values::strings;
use crate::backend::{Connection, DbError, RowDeriver, Value};
use rhai::{Array, Dynamic, EvalAltResult, Map};

type Res<T> = Result<T, Box<EvalAltResult>>;

/// One piece of a name template: literal text or a column reference.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Piece {
    Text(String),
    Column(usize),
}

#[derive(Debug, Clone, PartialEq)]
pub(super) enum Derivation {
    Copy(usize),
    /// A number, boolean or `()` written in the spec: the same in every row.
    Constant(Value),
    Uuid4,
    Uuid5 {
        namespace: uuid::Uuid,
        name: Vec<Piece>,
    },
    Template(Vec<Piece>),
}

fn template(text: &str, columns: &[String]) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find('{') {
        if open > 0 {
            pieces.push(Piece::Text(rest[..open].to_string()));
        }
        let close = rest[open..]
            .find('}')
            .ok_or_else(|| format!("unclosed '{{' in template {text:?}"))?
            + open;
        let name = &rest[open + 1..close];
        let idx = columns
            .iter()
            .position(|c| c == name)
            .ok_or_else(|| format!("template {text:?} names {{{name}}}, which the source query does not return (it returns {})", columns.join(", ")))?;
        pieces.push(Piece::Column(idx));
        rest = &rest[close + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    Ok(pieces)
}

fn render(pieces: &[Piece], row: &[Value], out: &mut String) {
    out.clear();
    for p in pieces {
        match p {
            Piece::Text(t) => out.push_str(t),
            Piece::Column(i) => match &row[*i] {
                Value::Text(t) => out.push_str(t),
                Value::Int(n) => {
                    use std::fmt::Write;
                    let _ = write!(out, "{n}");
                }
                Value::Null => {}
                other => {
                    use std::fmt::Write;
                    let _ = write!(out, "{}", other.to_string().trim_matches('\''));
                }
            },
        }
    }
}

/// One value of a spec as the script wrote it, read into plain data before the source
/// query runs: a mistake in its form is reported before any row is read, and a step
/// running on another thread can hold it (`step_beside.rs`).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum ValueSpec {
    Column(String),
    Constant(Value),
    Uuid4,
    Uuid5 { namespace: uuid::Uuid, name: String },
    Template(String),
}

impl ValueSpec {
    pub(super) fn read(spec: &Dynamic) -> Result<ValueSpec, String> {
        if let Ok(name) = spec.clone().into_string() {
            return Ok(ValueSpec::Column(name));
        }
        if spec.is_unit() || spec.is_int() || spec.is_float() || spec.is_bool() {
            return super::values::to_value(spec).map(ValueSpec::Constant);
        }
        let m = spec.clone().try_cast::<Map>().ok_or_else(|| {
            format!(
                "a value is a column name, a number, a boolean, () or a map, found {}",
                spec.type_name()
            )
        })?;
        if m.contains_key("uuid4") {
            return Ok(ValueSpec::Uuid4);
        }
        if let Some(ns) = m.get("uuid5") {
            let ns_text = ns.to_string();
            let namespace = uuid::Uuid::parse_str(&ns_text)
                .map_err(|e| format!("uuid5 namespace {ns_text:?}: {e}"))?;
            let name = m
                .get("name")
                .and_then(|v| v.clone().into_string().ok())
                .ok_or_else(|| {
                    "a uuid5 value needs `name`, a template like \"run={run}\"".to_string()
                })?;
            return Ok(ValueSpec::Uuid5 { namespace, name });
        }
        if let Some(t) = m.get("template").and_then(|v| v.clone().into_string().ok()) {
            return Ok(ValueSpec::Template(t));
        }
        Err("a derived value is #{uuid4: true}, #{uuid5: NAMESPACE, name: TEMPLATE} or #{template: TEMPLATE}".into())
    }

    /// The derivation, once the source's `columns` are known.
    pub(super) fn resolve(&self, columns: &[String]) -> Result<Derivation, String> {
        Ok(match self {
            ValueSpec::Column(name) => {
                let idx = columns.iter().position(|c| c == name).ok_or_else(|| {
                    format!(
                        "value {name:?} is not a column of the source query (it returns {})",
                        columns.join(", ")
                    )
                })?;
                Derivation::Copy(idx)
            }
            ValueSpec::Constant(v) => Derivation::Constant(v.clone()),
            ValueSpec::Uuid4 => Derivation::Uuid4,
            ValueSpec::Uuid5 { namespace, name } => Derivation::Uuid5 {
                namespace: *namespace,
                name: template(name, columns)?,
            },
            ValueSpec::Template(t) => Derivation::Template(template(t, columns)?),
        })
    }
}

/// A value of a spec, read and resolved against the source's `columns` at once (for a
/// spec whose columns are known before it runs: `generate.rs`).
pub(super) fn derivation(spec: &Dynamic, columns: &[String]) -> Result<Derivation, String> {
    ValueSpec::read(spec)?.resolve(columns)
}

/// An `insert_derived` spec read from the script's map into plain data.
#[derive(Debug, Clone)]
pub(super) struct InsertDerived {
    /// The script's query (without the `ORDER BY` that `key` adds).
    pub source: String,
    key: Option<String>,
    /// The table the rows go into.
    pub into: String,
    columns: Vec<String>,
    values: Vec<ValueSpec>,
    params: Vec<Value>,
    chunk: usize,
}

/// Why an `insert_derived` failed.
#[derive(Debug)]
pub(super) enum DeriveFault {
    /// The spec names what the source does not return: the script's own mistake.
    Script(String),
    /// The database failed.
    Db(DbError),
}

impl std::fmt::Display for DeriveFault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeriveFault::Script(message) => f.write_str(message),
            DeriveFault::Db(e) => write!(f, "{e}"),
        }
    }
}

impl InsertDerived {
    /// Reads `spec` (see the module documentation); the errors name what is wrong in it.
    pub(super) fn read(spec: &Map) -> Result<InsertDerived, String> {
        let get_str = |k: &str| spec.get(k).and_then(|v| v.clone().into_string().ok());
        let source = get_str("source").ok_or("insert_derived needs `source` (a query)")?;
        let into = get_str("into").ok_or("insert_derived needs `into` (a table)")?;
        let columns = spec
            .get("columns")
            .and_then(|v| v.clone().try_cast::<Array>())
            .ok_or("insert_derived needs `columns` (the target columns)")?;
        let columns = strings(&columns, "columns")?;
        let values = spec
            .get("values")
            .and_then(|v| v.clone().try_cast::<Array>())
            .ok_or("insert_derived needs `values` (one per target column)")?;
        if values.len() != columns.len() {
            return Err(format!(
                "insert_derived has {} values for {} columns",
                values.len(),
                columns.len()
            ));
        }
        let values = values
            .iter()
            .map(ValueSpec::read)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("insert_derived: {e}"))?;
        let params = match spec
            .get("params")
            .and_then(|v| v.clone().try_cast::<Array>())
        {
            Some(p) => super::values::to_params(&p)?,
            None => vec![],
        };
        let chunk = spec
            .get("chunk")
            .and_then(|v| v.as_int().ok())
            .unwrap_or(50_000)
            .max(1);
        Ok(InsertDerived {
            source,
            key: get_str("key"),
            into,
            columns,
            values,
            params,
            chunk: chunk as usize,
        })
    }

    /// Runs the query on `conn` and inserts the rows derived from it; returns how many.
    pub(super) fn run(&self, conn: &mut dyn Connection) -> Result<u64, DeriveFault> {
        let source = match &self.key {
            // Rows in key order: inserts into a table keyed the same way append.
            Some(key) => {
                let qk = conn.quote_ident(key);
                format!(
                    "SELECT * FROM ({}) AS ferry_src ORDER BY ferry_src.{qk}",
                    self.source
                )
            }
            None => self.source.clone(),
        };
        let mut deriver = Deriver {
            values: &self.values,
            plan: Vec::new(),
            name: String::new(),
            script_error: None,
        };
        let total = conn.insert_derived(
            &source,
            &self.params,
            &self.into,
            &self.columns,
            self.chunk,
            &mut deriver,
        );
        if let Some(message) = deriver.script_error {
            return Err(DeriveFault::Script(message));
        }
        total.map_err(DeriveFault::Db)
    }
}

impl Db {
    /// See the module documentation.
    pub fn insert_derived(&mut self, spec: Map) -> Res<i64> {
        let spec = InsertDerived::read(&spec).map_err(script_failure)?;
        self.check_insert_derived(&spec)?;
        self.insert_derived_checked(&spec)
    }

    /// Refuses a spec whose query or target a script may not use (see
    /// [`crate::sql_guard`]), before the database sees it.
    pub(super) fn check_insert_derived(&self, spec: &InsertDerived) -> Res<()> {
        self.guard(&spec.source)?;
        crate::sql_guard::check_table(&spec.into).map_err(|r| script_failure(r.to_string()))
    }

    /// Runs a spec [`Db::check_insert_derived`] passed, on the script's connection.
    pub(super) fn insert_derived_checked(&self, spec: &InsertDerived) -> Res<i64> {
        let mut s = self.session()?;
        s.before_statement(true)
            .map_err(|r| super::error::refused(&mut s, r))?;
        let total = match spec.run(s.conn()) {
            Ok(total) => total,
            Err(DeriveFault::Script(message)) => return Err(script_failure(message)),
            Err(DeriveFault::Db(e)) => return Err(host_failure(&mut s, e)),
        };
        s.after_statement(&format!("insert derived rows into {}", spec.into), total);
        Ok(total as i64)
    }
}

/// Appends the values of `plan` for one source row to `out` (`name`: scratch space).
pub(super) fn derive_row(
    plan: &[Derivation],
    row: &[Value],
    name: &mut String,
    out: &mut Vec<Value>,
) {
    for d in plan {
        out.push(match d {
            Derivation::Copy(i) => row[*i].clone(),
            Derivation::Constant(v) => v.clone(),
            Derivation::Uuid4 => Value::Uuid(uuid::Uuid::new_v4()),
            Derivation::Uuid5 {
                namespace,
                name: pieces,
            } => {
                render(pieces, row, name);
                Value::Uuid(uuid::Uuid::new_v5(namespace, name.as_bytes()))
            }
            Derivation::Template(pieces) => {
                render(pieces, row, name);
                Value::Text(name.clone())
            }
        });
    }
}

/// The script's `values`, resolved against the source's columns once they are known.
struct Deriver<'a> {
    values: &'a [ValueSpec],
    plan: Vec<Derivation>,
    /// Scratch space for rendering templates.
    name: String,
    /// A mistake in the spec found once the source's columns are known.
    script_error: Option<String>,
}

impl RowDeriver for Deriver<'_> {
    fn columns(&mut self, names: &[String]) -> Result<(), DbError> {
        match self.values.iter().map(|v| v.resolve(names)).collect() {
            Ok(plan) => {
                self.plan = plan;
                Ok(())
            }
            Err(e) => {
                let message = format!("insert_derived: {e}");
                self.script_error = Some(message.clone());
                Err(DbError::other(message))
            }
        }
    }

    fn derive(&mut self, row: &[Value], out: &mut Vec<Value>) -> Result<(), DbError> {
        derive_row(&self.plan, row, &mut self.name, out);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_name_columns() {
        let cols = vec!["id".to_string(), "run".to_string()];
        let t = template("run={run},id={id}", &cols).unwrap();
        let mut out = String::new();
        render(
            &t,
            &[Value::Int(7), Value::Text("HSC/raw/all".into())],
            &mut out,
        );
        assert_eq!(out, "run=HSC/raw/all,id=7");
        assert!(template("x={nope}", &cols).unwrap_err().contains("nope"));
        assert!(template("x={run", &cols).unwrap_err().contains("unclosed"));
    }
}
