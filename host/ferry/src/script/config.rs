//! The `config::` capability: layered values (tree defaults < `ferry.toml` < `--set`)
//! with typed getters.

use super::error::at;
use super::error::script_failure;
use super::session::SharedSession;
use rhai::{Dynamic, EvalAltResult, Module, NativeCallContext};

type Res<T> = Result<T, Box<EvalAltResult>>;

/// Converts a TOML value to a script value.
pub fn toml_to_dynamic(v: &toml::Value) -> Dynamic {
    match v {
        toml::Value::String(s) => s.clone().into(),
        toml::Value::Integer(i) => (*i).into(),
        toml::Value::Float(f) => (*f).into(),
        toml::Value::Boolean(b) => (*b).into(),
        toml::Value::Datetime(d) => d.to_string().into(),
        toml::Value::Array(a) => Dynamic::from_array(a.iter().map(toml_to_dynamic).collect()),
        toml::Value::Table(t) => Dynamic::from_map(
            t.iter()
                .map(|(k, v)| (k.as_str().into(), toml_to_dynamic(v)))
                .collect(),
        ),
    }
}

fn lookup(session: &SharedSession, key: &str) -> Option<Dynamic> {
    let s = session.try_borrow().ok()?;
    s.config
        .get(key)
        .map(toml_to_dynamic)
        .or_else(|| s.defaults.get(key).cloned())
}

fn missing(session: &SharedSession, key: &str) -> Box<EvalAltResult> {
    let revision = session
        .try_borrow()
        .map(|s| s.revision_id())
        .unwrap_or_default();
    script_failure(format!(
        "configuration key {key:?} is required by revision {revision} but is not set \
         (set it in ferry.toml or with --set {key}=VALUE)"
    ))
}

fn typed<T: Clone + 'static>(
    session: &SharedSession,
    key: &str,
    v: Dynamic,
    type_name: &str,
) -> Res<T> {
    let found = v.type_name().to_string();
    v.try_cast::<T>().ok_or_else(|| {
        let revision = session.try_borrow().map(|s| s.revision_id()).unwrap_or_default();
        script_failure(format!(
            "configuration key {key:?} (asked for by revision {revision}) must be {type_name}, found {found}"
        ))
    })
}

pub fn module(session: SharedSession) -> Module {
    let mut m = Module::new();
    let s = session.clone();
    m.set_native_fn("get", move |ctx: NativeCallContext, key: &str| {
        at(&ctx, || lookup(&s, key).ok_or_else(|| missing(&s, key)))
    });
    let s = session.clone();
    m.set_native_fn(
        "get",
        move |ctx: NativeCallContext, key: &str, default: Dynamic| {
            at(&ctx, || Ok(lookup(&s, key).unwrap_or(default)))
        },
    );
    let s = session.clone();
    m.set_native_fn("has", move |ctx: NativeCallContext, key: &str| {
        at(&ctx, || Ok(lookup(&s, key).is_some()))
    });
    let s = session.clone();
    m.set_native_fn("get_int", move |ctx: NativeCallContext, key: &str| {
        at(&ctx, || {
            let v = lookup(&s, key).ok_or_else(|| missing(&s, key))?;
            typed::<i64>(&s, key, v, "an integer")
        })
    });
    let s = session.clone();
    m.set_native_fn(
        "get_int",
        move |ctx: NativeCallContext, key: &str, default: i64| {
            at(&ctx, || match lookup(&s, key) {
                Some(v) => typed::<i64>(&s, key, v, "an integer"),
                None => Ok(default),
            })
        },
    );
    let s = session.clone();
    m.set_native_fn("get_string", move |ctx: NativeCallContext, key: &str| {
        at(&ctx, || {
            let v = lookup(&s, key).ok_or_else(|| missing(&s, key))?;
            typed::<rhai::ImmutableString>(&s, key, v, "a string")
        })
    });
    let s = session.clone();
    m.set_native_fn(
        "get_string",
        move |ctx: NativeCallContext, key: &str, default: &str| {
            at(&ctx, || match lookup(&s, key) {
                Some(v) => typed::<rhai::ImmutableString>(&s, key, v, "a string"),
                None => Ok(default.into()),
            })
        },
    );
    let s = session.clone();
    m.set_native_fn("get_bool", move |ctx: NativeCallContext, key: &str| {
        at(&ctx, || {
            let v = lookup(&s, key).ok_or_else(|| missing(&s, key))?;
            typed::<bool>(&s, key, v, "a boolean")
        })
    });
    let s = session;
    m.set_native_fn(
        "get_bool",
        move |ctx: NativeCallContext, key: &str, default: bool| {
            at(&ctx, || match lookup(&s, key) {
                Some(v) => typed::<bool>(&s, key, v, "a boolean"),
                None => Ok(default),
            })
        },
    );
    m
}
