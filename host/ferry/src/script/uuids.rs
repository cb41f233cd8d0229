//! The `uuid::` capability: v4, v5, parsing, and both text forms used in the field.

use super::values::ScriptUuid;
use rhai::{Engine, EvalAltResult, Module, NativeCallContext};

type Res<T> = Result<T, Box<EvalAltResult>>;

fn parse(text: &str) -> Res<ScriptUuid> {
    uuid::Uuid::parse_str(text.trim())
        .map(ScriptUuid)
        .map_err(|e| super::error::script_failure(format!("not a UUID: {text:?} ({e})")))
}

/// Registers the `Uuid` type and the `uuid::` namespace.
pub fn register(engine: &mut Engine) {
    engine.register_type_with_name::<ScriptUuid>("Uuid");
    engine.register_fn("to_string", |u: &mut ScriptUuid| {
        u.0.hyphenated().to_string()
    });
    engine.register_fn("to_debug", |u: &mut ScriptUuid| {
        format!("uuid({})", u.0.hyphenated())
    });
    engine.register_get("hex", |u: &mut ScriptUuid| u.0.simple().to_string());
    engine.register_get("canonical", |u: &mut ScriptUuid| {
        u.0.hyphenated().to_string()
    });
    engine.register_get("version", |u: &mut ScriptUuid| u.0.get_version_num() as i64);
    engine.register_fn("==", |a: ScriptUuid, b: ScriptUuid| a == b);
    engine.register_fn("!=", |a: ScriptUuid, b: ScriptUuid| a != b);
    let mut m = Module::new();
    m.set_native_fn("v4", || Ok(ScriptUuid(uuid::Uuid::new_v4())));
    m.set_native_fn("v5", |ns: ScriptUuid, name: &str| {
        Ok(ScriptUuid(uuid::Uuid::new_v5(&ns.0, name.as_bytes())))
    });
    m.set_native_fn("v5", |ctx: NativeCallContext, ns: &str, name: &str| {
        let ns = super::error::at(&ctx, || parse(ns))?;
        Ok(ScriptUuid(uuid::Uuid::new_v5(&ns.0, name.as_bytes())))
    });
    m.set_native_fn("parse", |ctx: NativeCallContext, text: &str| {
        super::error::at(&ctx, || parse(text))
    });
    // A UUID column reads back as a Uuid on PostgreSQL and as 32 hex characters on
    // SQLite; `uuid::parse(value)` accepts both, so scripts stay portable.
    m.set_native_fn("parse", |u: ScriptUuid| Ok(u));
    m.set_native_fn("hex", |u: ScriptUuid| Ok(u.0.simple().to_string()));
    m.set_native_fn("canonical", |u: ScriptUuid| {
        Ok(u.0.hyphenated().to_string())
    });
    engine.register_static_module("uuid", m.into());
}

#[cfg(test)]
mod tests {
    #[test]
    fn random_uuids_are_version_4_and_distinct() {
        let a = uuid::Uuid::new_v4();
        let b = uuid::Uuid::new_v4();
        assert_eq!(a.get_version_num(), 4);
        assert_eq!(a.get_variant(), uuid::Variant::RFC4122);
        assert_ne!(a, b);
    }
}
