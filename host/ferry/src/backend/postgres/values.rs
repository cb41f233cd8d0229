//! Converting Ferry's [`Value`] to and from PostgreSQL's binary wire format.
//!
//! Parameters adapt to the type the server inferred for each `$n`:
//!
//! | server type                          | accepted values                                  |
//! |--------------------------------------|--------------------------------------------------|
//! | `smallint`, `integer`, `bigint`      | Int (range-checked), Bool                        |
//! | `real`, `double precision`           | Float, Int                                       |
//! | `boolean`                            | Bool, Int 0/1                                    |
//! | `text`, `varchar`, `char(n)`, `name`, unknown | Text; Int, Float, Bool, Uuid are formatted |
//! | `uuid`                               | Uuid; Text in 32-hex or dashed form              |
//! | `bytea`                              | Bytes                                            |
//! | `timestamp`, `timestamptz`           | Text `YYYY-MM-DD[T ]HH:MM:SS[.frac][Z]`, read as UTC |
//!
//! Any other type (`numeric`, `json`, arrays, ...) is refused with an error that
//! advises a cast in the SQL, e.g. `CAST(? AS NUMERIC)` with a Text value.
//!
//! Rows read back as Int (`smallint`, `integer`, `bigint`), Float (`real`,
//! `double precision`), Bool, Text (`text`, `varchar`, `char(n)`, `name`), Uuid,
//! Bytes (`bytea`) and Text for timestamps (RFC 3339 UTC with microseconds,
//! `2024-01-02T03:04:05.000000Z`). Other column types are an error naming the column
//! and advising a cast (`CAST(col AS TEXT)`).

use std::error::Error;
use std::time::SystemTime;

use bytes::BytesMut;
use postgres_types::{to_sql_checked, FromSql, IsNull, ToSql, Type};

use crate::backend::Value;

type BoxError = Box<dyn Error + Sync + Send>;

/// A [`Value`] bound as a statement parameter.
#[derive(Debug)]
pub(crate) struct Param<'a>(pub &'a Value);

fn refuse(value: &Value, ty: &Type) -> BoxError {
    let kind = match value {
        Value::Null => "NULL",
        Value::Bool(_) => "a boolean",
        Value::Int(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Text(_) => "a text",
        Value::Bytes(_) => "a byte string",
        Value::Uuid(_) => "a UUID",
    };
    format!(
        "cannot bind {kind} value to a parameter of type {ty}; \
         write the parameter as CAST(? AS {}) and pass a text value",
        ty.name().to_uppercase()
    )
    .into()
}

fn int_in_range<T: TryFrom<i64>>(v: i64, ty: &Type) -> Result<T, BoxError> {
    T::try_from(v).map_err(|_| format!("integer {v} is out of range for type {ty}").into())
}

/// Parses a UUID in 32-hex or dashed form.
pub(crate) fn parse_uuid(text: &str) -> Result<uuid::Uuid, BoxError> {
    uuid::Uuid::try_parse(text.trim()).map_err(|e| format!("{text:?} is not a UUID: {e}").into())
}

/// Parses a UTC timestamp as Ferry writes and reads them.
pub(crate) fn parse_timestamp(text: &str) -> Result<SystemTime, BoxError> {
    humantime::parse_rfc3339_weak(text.trim()).map_err(|e| {
        format!(
            "{text:?} is not a UTC timestamp (YYYY-MM-DD HH:MM:SS[.frac][Z]): {e}; \
             for other forms write CAST(? AS TEXT)::timestamptz in the SQL"
        )
        .into()
    })
}

/// Formats a timestamp the way rows report it.
pub(crate) fn format_timestamp(t: SystemTime) -> String {
    humantime::format_rfc3339_micros(t).to_string()
}

impl ToSql for Param<'_> {
    fn to_sql(&self, ty: &Type, out: &mut BytesMut) -> Result<IsNull, BoxError> {
        let value = self.0;
        if let Value::Null = value {
            return Ok(IsNull::Yes);
        }
        match *ty {
            Type::INT2 | Type::INT4 | Type::INT8 => {
                let v = match value {
                    Value::Int(v) => *v,
                    Value::Bool(b) => i64::from(*b),
                    _ => return Err(refuse(value, ty)),
                };
                match *ty {
                    Type::INT2 => int_in_range::<i16>(v, ty)?.to_sql(ty, out),
                    Type::INT4 => int_in_range::<i32>(v, ty)?.to_sql(ty, out),
                    _ => v.to_sql(ty, out),
                }
            }
            Type::FLOAT4 | Type::FLOAT8 => {
                let v = match value {
                    Value::Float(v) => *v,
                    Value::Int(v) => *v as f64,
                    _ => return Err(refuse(value, ty)),
                };
                if *ty == Type::FLOAT4 {
                    (v as f32).to_sql(ty, out)
                } else {
                    v.to_sql(ty, out)
                }
            }
            Type::BOOL => match value {
                Value::Bool(b) => b.to_sql(ty, out),
                Value::Int(0) => false.to_sql(ty, out),
                Value::Int(1) => true.to_sql(ty, out),
                _ => Err(refuse(value, ty)),
            },
            Type::TEXT | Type::VARCHAR | Type::BPCHAR | Type::NAME | Type::UNKNOWN => match value {
                Value::Text(s) => s.as_str().to_sql(ty, out),
                Value::Int(v) => v.to_string().as_str().to_sql(ty, out),
                Value::Float(v) => v.to_string().as_str().to_sql(ty, out),
                Value::Bool(v) => v.to_string().as_str().to_sql(ty, out),
                Value::Uuid(u) => u.as_hyphenated().to_string().as_str().to_sql(ty, out),
                _ => Err(refuse(value, ty)),
            },
            Type::UUID => match value {
                Value::Uuid(u) => u.to_sql(ty, out),
                Value::Text(s) => parse_uuid(s)?.to_sql(ty, out),
                _ => Err(refuse(value, ty)),
            },
            Type::BYTEA => match value {
                Value::Bytes(b) => b.as_slice().to_sql(ty, out),
                _ => Err(refuse(value, ty)),
            },
            Type::TIMESTAMP | Type::TIMESTAMPTZ => match value {
                Value::Text(s) => parse_timestamp(s)?.to_sql(ty, out),
                _ => Err(refuse(value, ty)),
            },
            _ => Err(refuse(value, ty)),
        }
    }

    fn accepts(_ty: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// The column types rows can be read from.
pub(crate) fn readable(ty: &Type) -> bool {
    matches!(
        *ty,
        Type::INT2
            | Type::INT4
            | Type::INT8
            | Type::FLOAT4
            | Type::FLOAT8
            | Type::BOOL
            | Type::TEXT
            | Type::VARCHAR
            | Type::BPCHAR
            | Type::NAME
            | Type::UNKNOWN
            | Type::UUID
            | Type::BYTEA
            | Type::TIMESTAMP
            | Type::TIMESTAMPTZ
    )
}

/// The error for a column of a type rows cannot be read from.
pub(crate) fn unreadable(column: &str, ty: &Type) -> String {
    format!(
        "column {column:?} has type {ty}, which Ferry cannot read; \
         cast it in the query, e.g. CAST({column} AS TEXT) or CAST({column} AS DOUBLE PRECISION)"
    )
}

impl<'a> FromSql<'a> for Value {
    fn from_sql(ty: &Type, raw: &'a [u8]) -> Result<Value, BoxError> {
        Ok(match *ty {
            Type::INT2 => Value::Int(i16::from_sql(ty, raw)?.into()),
            Type::INT4 => Value::Int(i32::from_sql(ty, raw)?.into()),
            Type::INT8 => Value::Int(i64::from_sql(ty, raw)?),
            Type::FLOAT4 => Value::Float(f32::from_sql(ty, raw)?.into()),
            Type::FLOAT8 => Value::Float(f64::from_sql(ty, raw)?),
            Type::BOOL => Value::Bool(bool::from_sql(ty, raw)?),
            Type::UUID => Value::Uuid(uuid::Uuid::from_sql(ty, raw)?),
            Type::BYTEA => Value::Bytes(raw.to_vec()),
            Type::TIMESTAMP | Type::TIMESTAMPTZ => {
                Value::Text(format_timestamp(SystemTime::from_sql(ty, raw)?))
            }
            _ if readable(ty) => Value::Text(String::from_utf8(raw.to_vec())?),
            _ => return Err(format!("cannot read a value of type {ty}").into()),
        })
    }

    fn from_sql_null(_ty: &Type) -> Result<Value, BoxError> {
        Ok(Value::Null)
    }

    fn accepts(ty: &Type) -> bool {
        readable(ty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bind(value: Value, ty: &Type) -> Result<Vec<u8>, String> {
        let mut out = BytesMut::new();
        match Param(&value).to_sql(ty, &mut out) {
            Ok(IsNull::Yes) => Ok(Vec::new()),
            Ok(IsNull::No) => Ok(out.to_vec()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn integers_are_range_checked() {
        assert_eq!(bind(Value::Int(1), &Type::INT2).unwrap(), vec![0, 1]);
        assert!(bind(Value::Int(70_000), &Type::INT2)
            .unwrap_err()
            .contains("out of range"));
        assert!(bind(Value::Int(i64::MAX), &Type::INT4).is_err());
        assert_eq!(bind(Value::Int(-1), &Type::INT8).unwrap(), vec![0xff; 8]);
    }

    #[test]
    fn uuids_bind_from_text_in_both_forms() {
        let u = uuid::Uuid::new_v4();
        let expected = u.as_bytes().to_vec();
        assert_eq!(bind(Value::Uuid(u), &Type::UUID).unwrap(), expected);
        assert_eq!(
            bind(Value::Text(u.simple().to_string()), &Type::UUID).unwrap(),
            expected
        );
        assert_eq!(
            bind(Value::Text(u.hyphenated().to_string()), &Type::UUID).unwrap(),
            expected
        );
        assert!(bind(Value::Text("nope".into()), &Type::UUID)
            .unwrap_err()
            .contains("not a UUID"));
    }

    #[test]
    fn numeric_is_refused_with_advice() {
        let err = bind(Value::Float(1.5), &Type::NUMERIC).unwrap_err();
        assert!(err.contains("CAST(? AS NUMERIC)"), "{err}");
    }

    #[test]
    fn timestamps_round_trip_through_text() {
        let t = parse_timestamp("2024-01-02 03:04:05.25").unwrap();
        assert_eq!(format_timestamp(t), "2024-01-02T03:04:05.250000Z");
        assert!(parse_timestamp("yesterday").is_err());
    }
}
