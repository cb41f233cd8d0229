//! The `hooks::` capability: a core revision calls extension points by name; plugins
//! provide them as files under a `hooks/` folder (`const HOOK = "name";`, optionally
//! `const KEY = "HSC";` for hooks provided once per key, and `fn run(db, args)`).

use super::db::Db;
use super::error::{at, script_failure};
use super::session::SharedSession;
use crate::metadata::HookMeta;
use rhai::{CallFnOptions, Dynamic, EvalAltResult, Module, NativeCallContext, Scope, AST};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::rc::Rc;

type Res<T> = Result<T, Box<EvalAltResult>>;

/// A hook's identity: its name and, for hooks provided once per key, the key.
pub type HookId = (String, Option<String>);

/// The hook implementations found by discovery, by `(name, key)`.
#[derive(Debug, Clone, Default)]
pub struct HookSet {
    pub providers: BTreeMap<HookId, Vec<HookMeta>>,
}

impl HookSet {
    pub fn new(hooks: &[HookMeta]) -> HookSet {
        let mut providers: BTreeMap<(String, Option<String>), Vec<HookMeta>> = BTreeMap::new();
        for h in hooks {
            providers
                .entry((h.name.clone(), h.key.clone()))
                .or_default()
                .push(h.clone());
        }
        HookSet { providers }
    }

    /// Every key provided for a keyed hook.
    pub fn keys(&self, name: &str) -> Vec<String> {
        self.providers
            .keys()
            .filter(|(n, k)| n == name && k.is_some())
            .filter_map(|(_, k)| k.clone())
            .collect()
    }

    /// Whether some plugin provides `name` (with any key, or none).
    pub fn provided(&self, name: &str) -> bool {
        self.providers.keys().any(|(n, _)| n == name)
    }

    /// Hooks provided more than once for the same key (an error at planning time).
    pub fn duplicates(&self) -> Vec<(&HookId, &Vec<HookMeta>)> {
        self.providers.iter().filter(|(_, v)| v.len() > 1).collect()
    }

    /// The provider of `name` for `key`, as discovery read it.
    fn provider(&self, name: &str, key: Option<&str>) -> Option<&HookMeta> {
        self.providers
            .get(&(name.to_string(), key.map(str::to_string)))
            .and_then(|v| v.first())
    }
}

/// How many hook calls may be nested inside each other (a hook that calls itself
/// through `hooks::run` would otherwise recurse until the process's stack overflows).
pub const MAX_HOOK_DEPTH: usize = 16;

struct Hooks {
    set: HookSet,
    /// The hooks being run now, outermost first.
    running: RefCell<Vec<String>>,
    compiled: RefCell<HashMap<PathBuf, Rc<AST>>>,
    session: SharedSession,
}

impl Hooks {
    fn call(
        &self,
        ctx: &NativeCallContext,
        name: &str,
        key: Option<&str>,
        args: Dynamic,
    ) -> Res<Dynamic> {
        let declared = {
            let s = self
                .session
                .try_borrow()
                .map_err(|_| script_failure("hooks cannot be called inside db.each"))?;
            s.revision
                .as_ref()
                .map(|r| r.hooks.iter().any(|h| h == name))
        };
        if declared == Some(false) {
            return Err(script_failure(format!(
                "hook {name:?} is called but not declared: add it to the revision's HOOKS constant"
            )));
        }
        let provider = self.set.provider(name, key).ok_or_else(|| {
            let provided = self.set.keys(name);
            script_failure(match key {
                Some(k) => format!(
                    "no plugin provides hook {name:?} for {k:?} (provided for: {})",
                    if provided.is_empty() {
                        "none".to_string()
                    } else {
                        provided.join(", ")
                    }
                ),
                None => format!("no plugin provides hook {name:?}"),
            })
        })?;
        let path = provider.path.clone();
        let ast = self.compiled.borrow().get(&path).cloned();
        let ast = match ast {
            Some(a) => a,
            None => {
                // The tree discovery compiled from the bytes it hashed.
                let ast = Rc::new(provider.script.ast_for(ctx.engine()));
                self.compiled.borrow_mut().insert(path.clone(), ast.clone());
                ast
            }
        };
        if self.running.borrow().len() >= MAX_HOOK_DEPTH {
            return Err(script_failure(format!(
                "hooks nest more than {MAX_HOOK_DEPTH} deep ({} -> {name}): a hook that \
                 calls itself through hooks::run never ends",
                self.running.borrow().join(" -> ")
            )));
        }
        self.running.borrow_mut().push(name.to_string());
        let db = Db(self.session.clone());
        let result = ctx
            .engine()
            .call_fn_with_options::<Dynamic>(
                // Evaluating the hook file's top level defines its constants (global::NAME).
                CallFnOptions::new().eval_ast(true),
                &mut Scope::new(),
                &ast,
                "run",
                (db, args),
            )
            .map_err(|e| {
                Box::new(EvalAltResult::ErrorInFunctionCall(
                    format!("hook {name}"),
                    path.to_string_lossy().to_string(),
                    e,
                    ctx.call_position(),
                ))
            });
        self.running.borrow_mut().pop();
        result
    }
}

pub fn module(session: SharedSession, set: HookSet) -> Module {
    let hooks = Rc::new(Hooks {
        set,
        running: RefCell::new(Vec::new()),
        compiled: RefCell::new(HashMap::new()),
        session,
    });
    let mut m = Module::new();
    let h = hooks.clone();
    m.set_native_fn(
        "run",
        move |ctx: NativeCallContext, name: &str, args: Dynamic| {
            at(&ctx, || h.call(&ctx, name, None, args))
        },
    );
    let h = hooks.clone();
    m.set_native_fn(
        "run",
        move |ctx: NativeCallContext, name: &str, key: &str, args: Dynamic| {
            at(&ctx, || h.call(&ctx, name, Some(key), args))
        },
    );
    let h = hooks.clone();
    m.set_native_fn("has", move |name: &str, key: &str| {
        Ok(h.set.provider(name, Some(key)).is_some())
    });
    let h = hooks.clone();
    m.set_native_fn("has", move |name: &str| Ok(h.set.provided(name)));
    let h = hooks;
    m.set_native_fn("keys", move |name: &str| {
        Ok(h.set
            .keys(name)
            .into_iter()
            .map(Dynamic::from)
            .collect::<rhai::Array>())
    });
    m
}
