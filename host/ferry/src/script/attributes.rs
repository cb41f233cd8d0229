//! The `attributes::` capability: the application's own key/value metadata table
//! (default `butler_attributes(name, value)`, configurable with `attributes.table`),
//! with helpers that record a manager's class and version the way daf_butler does:
//! `config:registry.managers.<component>` → class, `version:<class>` → version.

use super::error::at;
use super::error::{host_failure, script_failure};
use super::session::{Session, SharedSession};
use crate::backend::Value;
use rhai::{Dynamic, EvalAltResult, Map, Module, NativeCallContext};

type Res<T> = Result<T, Box<EvalAltResult>>;

fn table(s: &Session) -> String {
    s.config
        .get("attributes.table")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_else(|| "butler_attributes".into())
}

fn with<T>(
    session: &SharedSession,
    writes: bool,
    f: impl FnOnce(&mut Session, &str) -> Result<T, crate::backend::DbError>,
) -> Res<T> {
    let mut s = session
        .try_borrow_mut()
        .map_err(|_| script_failure("attributes cannot be used inside the callback of db.each"))?;
    let t = table(&s);
    s.before_statement(writes)
        .map_err(|r| super::error::refused(&mut s, r))?;
    let r = f(&mut s, &t);
    r.map_err(|e| host_failure(&mut s, e))
}

fn get(s: &mut Session, t: &str, name: &str) -> Result<Option<String>, crate::backend::DbError> {
    let q = s.conn().quote_ident(t);
    let rows = s.conn().query(
        &format!("SELECT value FROM {q} WHERE name = ?"),
        &[Value::Text(name.into())],
    )?;
    Ok(rows
        .rows
        .into_iter()
        .next()
        .and_then(|r| r.into_iter().next())
        .and_then(|v| match v {
            Value::Text(t) => Some(t),
            Value::Null => None,
            other => Some(other.to_string()),
        }))
}

fn set(s: &mut Session, t: &str, name: &str, value: &str) -> Result<(), crate::backend::DbError> {
    let q = s.conn().quote_ident(t);
    let n = s.conn().execute(
        &format!("UPDATE {q} SET value = ? WHERE name = ?"),
        &[Value::Text(value.into()), Value::Text(name.into())],
    )?;
    if n == 0 {
        s.conn().execute(
            &format!("INSERT INTO {q} (name, value) VALUES (?, ?)"),
            &[Value::Text(name.into()), Value::Text(value.into())],
        )?;
    }
    s.after_statement(&format!("set attribute {name}"), 1);
    Ok(())
}

fn delete(s: &mut Session, t: &str, name: &str) -> Result<u64, crate::backend::DbError> {
    let q = s.conn().quote_ident(t);
    let n = s.conn().execute(
        &format!("DELETE FROM {q} WHERE name = ?"),
        &[Value::Text(name.into())],
    )?;
    s.after_statement(&format!("delete attribute {name}"), n);
    Ok(n)
}

pub fn module(session: SharedSession) -> Module {
    let mut m = Module::new();
    let ss = session.clone();
    m.set_native_fn("get", move |ctx: NativeCallContext, name: &str| {
        at(&ctx, || {
            Ok(with(&ss, false, |s, t| get(s, t, name))?
                .map(Dynamic::from)
                .unwrap_or(Dynamic::UNIT))
        })
    });
    let ss = session.clone();
    m.set_native_fn(
        "set",
        move |ctx: NativeCallContext, name: &str, value: &str| {
            at(&ctx, || with(&ss, true, |s, t| set(s, t, name, value)))
        },
    );
    let ss = session.clone();
    m.set_native_fn("delete", move |ctx: NativeCallContext, name: &str| {
        at(&ctx, || {
            Ok(with(&ss, true, |s, t| delete(s, t, name))? as i64)
        })
    });
    let ss = session.clone();
    m.set_native_fn("all", move |ctx: NativeCallContext| {
        at(&ctx, || {
            with(&ss, false, |s, t| {
                let q = s.conn().quote_ident(t);
                let rows = s
                    .conn()
                    .query(&format!("SELECT name, value FROM {q} ORDER BY name"), &[])?;
                Ok(rows
                    .rows
                    .into_iter()
                    .map(|r| {
                        let mut it = r.into_iter();
                        let k = it
                            .next()
                            .map(|v| match v {
                                Value::Text(t) => t,
                                o => o.to_string(),
                            })
                            .unwrap_or_default();
                        let v = it
                            .next()
                            .map(super::values::to_dynamic)
                            .unwrap_or(Dynamic::UNIT);
                        (k.into(), v)
                    })
                    .collect::<Map>())
            })
        })
    });
    let ss = session.clone();
    m.set_native_fn("manager", move |ctx: NativeCallContext, component: &str| {
        at(&ctx, || {
            with(&ss, false, |s, t| {
                let class = get(s, t, &format!("config:registry.managers.{component}"))?;
                let mut out = Map::new();
                if let Some(class) = class {
                    let version = get(s, t, &format!("version:{class}"))?;
                    out.insert("class".into(), class.into());
                    out.insert(
                        "version".into(),
                        version.map(Dynamic::from).unwrap_or(Dynamic::UNIT),
                    );
                }
                Ok(if out.is_empty() {
                    Dynamic::UNIT
                } else {
                    Dynamic::from_map(out)
                })
            })
        })
    });
    let ss = session;
    m.set_native_fn(
        "set_manager",
        move |ctx: NativeCallContext, component: &str, class: &str, version: &str| {
            at(&ctx, || {
                with(&ss, true, |s, t| {
                    let key = format!("config:registry.managers.{component}");
                    if let Some(old) = get(s, t, &key)? {
                        if old != class {
                            delete(s, t, &format!("version:{old}"))?;
                        }
                    }
                    set(s, t, &key, class)?;
                    set(s, t, &format!("version:{class}"), version)
                })
            })
        },
    );
    m
}
