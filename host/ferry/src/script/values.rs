//! Conversions between Rhai values and database values.

use crate::backend::{Rows, Value};
use rhai::{Array, Blob, Dynamic, ImmutableString, Map};

/// A UUID as scripts hold it: binds as the backend's native UUID form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ScriptUuid(pub uuid::Uuid);

/// Converts a script value to a bindable value, or says which type cannot be bound.
pub fn to_value(d: &Dynamic) -> Result<Value, String> {
    if d.is_unit() {
        return Ok(Value::Null);
    }
    if let Some(i) = d.clone().try_cast::<i64>() {
        return Ok(Value::Int(i));
    }
    if let Some(f) = d.clone().try_cast::<f64>() {
        return Ok(Value::Float(f));
    }
    if let Some(b) = d.clone().try_cast::<bool>() {
        return Ok(Value::Bool(b));
    }
    if d.is_string() {
        return Ok(Value::Text(d.clone().into_string().unwrap_or_default()));
    }
    if let Some(c) = d.clone().try_cast::<char>() {
        return Ok(Value::Text(c.to_string()));
    }
    if let Some(b) = d.clone().try_cast::<Blob>() {
        return Ok(Value::Bytes(b));
    }
    if let Some(u) = d.clone().try_cast::<ScriptUuid>() {
        return Ok(Value::Uuid(u.0));
    }
    Err(format!(
        "a value of type {} cannot be bound to a statement",
        d.type_name()
    ))
}

/// Converts an array of script values to statement parameters.
pub fn to_params(params: &Array) -> Result<Vec<Value>, String> {
    params
        .iter()
        .enumerate()
        .map(|(i, d)| to_value(d).map_err(|e| format!("parameter {}: {e}", i + 1)))
        .collect()
}

/// Converts a database value to a script value (UUIDs become `Uuid` values).
pub fn to_dynamic(v: Value) -> Dynamic {
    match v {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(b),
        Value::Int(i) => Dynamic::from_int(i),
        Value::Float(f) => Dynamic::from_float(f),
        Value::Text(s) => Dynamic::from(ImmutableString::from(s)),
        Value::Bytes(b) => Dynamic::from_blob(b),
        Value::Uuid(u) => Dynamic::from(ScriptUuid(u)),
    }
}

/// One row as a map from column name to value.
pub fn row_map(columns: &[String], row: Vec<Value>) -> Map {
    columns
        .iter()
        .zip(row)
        .map(|(c, v)| (c.as_str().into(), to_dynamic(v)))
        .collect()
}

/// All rows as an array of maps.
pub fn rows_array(rows: Rows) -> Array {
    let Rows { columns, rows } = rows;
    rows.into_iter()
        .map(|r| Dynamic::from_map(row_map(&columns, r)))
        .collect()
}

/// Reads an array of strings (column lists and the like).
pub fn strings(a: &Array, what: &str) -> Result<Vec<String>, String> {
    a.iter()
        .map(|d| {
            d.clone().into_string().map_err(|t| {
                format!("{what} must be an array of strings, found an element of type {t}")
            })
        })
        .collect()
}
