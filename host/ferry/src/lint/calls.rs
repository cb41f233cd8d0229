//! Calls of functions nobody defines, calls into unknown namespaces, and imports that
//! do not resolve.
//!
//! A plain call `f(x)` is known when the script defines `f`, when Ferry's engine has a
//! function `f` (the host API and Rhai's packages, as `Engine::collect_fn_metadata`
//! lists them), when `f` is one of Rhai's built-in keywords, or when `f` is a variable
//! or parameter of the script (which may hold a function pointer). `m::f(x)` is known
//! when `m` is an import whose module defines a public `f`, or a capability (`schema`,
//! `config`, ...) that has `f`. A method call on a parameter named `db` (the handle
//! `upgrade`, `downgrade`, hooks and step bodies receive), `db.m(...)`, is known when
//! the engine has a function `m` whose first parameter is the handle's type or any
//! value, or when the script defines `m`. Other method calls (`s.trim()`) are not
//! checked: what they are called on is known only at run time.

use super::scripts::{Import, Script, ScriptSet};
use super::{suggestion, Problem, Severity};
use crate::script::db::Db;
use rhai::{ASTNode, Expr, Stmt, AST};
use std::any::TypeId;
use std::collections::{BTreeMap, BTreeSet};

/// Rhai's keywords that are called like functions but are not registered functions.
const BUILT_IN: [&str; 10] = [
    "print",
    "debug",
    "type_of",
    "eval",
    "Fn",
    "call",
    "curry",
    "is_shared",
    "is_def_var",
    "is_def_fn",
];

/// The functions of Ferry's engine, by namespace ("" for the global one).
pub struct Api {
    functions: BTreeMap<String, BTreeSet<String>>,
    /// The methods of the `db` handle: global functions whose first parameter is
    /// [`Db`], by name.
    db_methods: BTreeSet<String>,
    /// Global functions whose first parameter is any value (also callable as a method).
    any_methods: BTreeSet<String>,
}

impl Api {
    pub fn of_engine(engine: &rhai::Engine) -> Api {
        let mut functions: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
        // Names only (`gen_fn_signatures` would format every parameter type too).
        let names = engine.collect_fn_metadata(
            None,
            |f| Some((f.namespace.to_string(), f.metadata.name.to_string())),
            true,
        );
        for (ns, name) in names {
            functions.entry(ns).or_default().insert(name);
        }
        let firsts = engine.collect_fn_metadata(
            None,
            |f| {
                let first = *f.metadata.param_types.first()?;
                f.namespace
                    .is_empty()
                    .then(|| (first, f.metadata.name.to_string()))
            },
            true,
        );
        let mut db_methods = BTreeSet::new();
        let mut any_methods = BTreeSet::new();
        for (first, name) in firsts {
            if first == TypeId::of::<Db>() {
                db_methods.insert(name);
            } else if first == TypeId::of::<rhai::Dynamic>() {
                any_methods.insert(name);
            }
        }
        Api {
            functions,
            db_methods,
            any_methods,
        }
    }

    fn global(&self) -> impl Iterator<Item = &str> {
        self.functions
            .get("")
            .into_iter()
            .flatten()
            .map(String::as_str)
    }

    fn namespaces(&self) -> impl Iterator<Item = &str> {
        self.functions
            .keys()
            .filter(|k| !k.is_empty())
            .map(String::as_str)
    }
}

fn is_identifier(name: &str) -> bool {
    name.chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_')
}

/// The names a script binds as variables or parameters.
fn variables(ast: &AST) -> BTreeSet<String> {
    let mut names: BTreeSet<String> = ast
        .iter_fn_def()
        .flat_map(|f| f.params.iter().map(|p| p.to_string()))
        .collect();
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Stmt(Stmt::Var(x, ..))) => {
                names.insert(x.0.name.to_string());
            }
            Some(ASTNode::Stmt(Stmt::For(x, ..))) => {
                names.insert(x.0.name.to_string());
                if let Some(i) = &x.1 {
                    names.insert(i.name.to_string());
                }
            }
            _ => {}
        }
        true
    });
    names
}

/// Whether `db` names the script API's handle in this script: a parameter of some
/// function or closure, never bound by `let` or `for`.
fn db_is_the_handle(ast: &AST) -> bool {
    let parameter = ast
        .iter_fn_def()
        .any(|f| f.params.iter().any(|p| p.as_str() == "db"));
    let mut bound = false;
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Stmt(Stmt::Var(x, ..))) => bound |= x.0.name == "db",
            Some(ASTNode::Stmt(Stmt::For(x, ..))) => {
                bound |= x.0.name == "db" || x.1.as_ref().is_some_and(|i| i.name == "db");
            }
            _ => {}
        }
        !bound
    });
    parameter && !bound
}

/// The first method called on the variable `db`, in `db.m(...)`, `db.m(...).more` or
/// `db.m(...)[i]` (Rhai nests a chain to the right: `db` then the rest).
fn db_method(expr: &Expr) -> Option<(&rhai::FnCallExpr, rhai::Position)> {
    let Expr::Dot(x, ..) = expr else {
        return None;
    };
    match &x.lhs {
        Expr::Variable(v, ..) if v.1 == "db" && v.2.is_empty() => {}
        _ => return None,
    }
    let first = match &x.rhs {
        Expr::Dot(y, ..) | Expr::Index(y, ..) => &y.lhs,
        other => other,
    };
    match first {
        Expr::MethodCall(call, pos) => Some((call, *pos)),
        _ => None,
    }
}

/// The public functions a module file defines.
fn module_functions(module: &Script) -> Option<BTreeSet<String>> {
    let ast = module.ast.as_ref()?;
    Some(
        ast.iter_fn_def()
            .filter(|f| f.access != rhai::FnAccess::Private)
            .map(|f| f.name.to_string())
            .collect(),
    )
}

pub fn check(set: &ScriptSet, api: &Api) -> Vec<Problem> {
    let mut problems = Vec::new();
    for script in &set.scripts {
        if let Some(ast) = &script.ast {
            check_script(set, api, script, ast, &mut problems);
        }
    }
    problems
}

fn check_script(set: &ScriptSet, api: &Api, script: &Script, ast: &AST, out: &mut Vec<Problem>) {
    let error = |pos: rhai::Position, message: String| {
        Problem::at(&script.path, pos, Severity::Error, message)
    };
    // Imports first: their aliases are the namespaces the calls may use.
    let mut aliases: BTreeMap<String, Option<BTreeSet<String>>> = BTreeMap::new();
    let mut alias_files: BTreeMap<String, String> = BTreeMap::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(Stmt::Import(x, pos))) = path.last() {
            let alias = x.1.name.to_string();
            let Expr::StringConstant(target, _) = &x.0 else {
                aliases.insert(alias, None); // computed at run time
                return true;
            };
            match set.resolve(script, target) {
                Import::Found(module) => {
                    alias_files.insert(alias.clone(), module.path.display().to_string());
                    aliases.insert(alias, module_functions(module));
                }
                Import::Refused => {
                    aliases.insert(alias, None);
                }
                Import::Missing(dirs) => {
                    let looked: Vec<String> =
                        dirs.iter().map(|d| d.display().to_string()).collect();
                    let names = set.importable(script);
                    out.push(error(
                        *pos,
                        format!(
                            "import {target:?} does not resolve: no {target}.rhai in {}{}",
                            if looked.is_empty() {
                                "any module folder".to_string()
                            } else {
                                looked.join(" or ")
                            },
                            suggestion(target, names.iter().map(String::as_str))
                        ),
                    ));
                    aliases.insert(alias, None);
                }
            }
        }
        true
    });
    let defined: BTreeSet<String> = ast.iter_fn_def().map(|f| f.name.to_string()).collect();
    let variables = variables(ast);
    if db_is_the_handle(ast) {
        ast.walk(&mut |path: &[ASTNode]| {
            let Some(ASTNode::Expr(expr)) = path.last() else {
                return true;
            };
            let Some((call, pos)) = db_method(expr) else {
                return true;
            };
            let name = call.name.as_str();
            let known = api.db_methods.contains(name)
                || api.any_methods.contains(name)
                || defined.contains(name)
                || BUILT_IN.contains(&name);
            if !known {
                let candidates = api.db_methods.iter().map(String::as_str);
                out.push(error(
                    pos,
                    format!(
                        "`db` has no method `{name}` (the database handle's methods are in \
                         docs/SCRIPTING.md){}",
                        suggestion(name, candidates)
                    ),
                ));
            }
            true
        });
    }
    ast.walk(&mut |path: &[ASTNode]| {
        let (call, pos) = match path.last() {
            Some(ASTNode::Expr(Expr::FnCall(call, pos))) => (call, *pos),
            Some(ASTNode::Stmt(Stmt::FnCall(call, pos))) => (call, *pos),
            _ => return true,
        };
        let name = call.name.as_str();
        if call.is_operator_call() || !is_identifier(name) {
            return true;
        }
        let ns = call.namespace.to_string();
        if ns.is_empty() {
            let known = BUILT_IN.contains(&name)
                || defined.contains(name)
                || variables.contains(name)
                || api.functions.get("").is_some_and(|f| f.contains(name));
            if !known {
                let candidates = defined.iter().map(String::as_str).chain(api.global());
                out.push(error(
                    pos,
                    format!(
                        "function `{name}` is not defined by this script, an imported module or Ferry's API{}",
                        suggestion(name, candidates)
                    ),
                ));
            }
        } else if ns == "global" || ns.contains("::") {
            // global::f calls a function of the script itself; nested modules are not
            // followed.
        } else if let Some(module) = aliases.get(&ns) {
            if let Some(functions) = module.as_ref().filter(|f| !f.contains(name)) {
                out.push(error(
                    pos,
                    format!(
                        "module `{ns}` ({}) has no public function `{name}`{}",
                        alias_files.get(&ns).map(String::as_str).unwrap_or("?"),
                        suggestion(name, functions.iter().map(String::as_str))
                    ),
                ));
            }
        } else if let Some(functions) = api.functions.get(&ns) {
            if !functions.contains(name) {
                out.push(error(
                    pos,
                    format!(
                        "`{ns}::` has no function `{name}`{}",
                        suggestion(name, functions.iter().map(String::as_str))
                    ),
                ));
            }
        } else {
            let candidates = aliases.keys().map(String::as_str).chain(api.namespaces());
            out.push(error(
                pos,
                format!(
                    "`{ns}::{name}`: `{ns}` is neither a module this script imports nor a Ferry capability ({}){}",
                    api.namespaces().collect::<Vec<_>>().join(", "),
                    suggestion(&ns, candidates)
                ),
            ));
        }
        true
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compile(script: &str) -> AST {
        rhai::Engine::new_raw().compile(script).expect("compiles")
    }

    /// The methods [`db_method`] finds in `script`, with their columns.
    fn db_methods(script: &str) -> Vec<(String, usize)> {
        let ast = compile(script);
        let mut found = Vec::new();
        ast.walk(&mut |path: &[ASTNode]| {
            if let Some(ASTNode::Expr(expr)) = path.last() {
                if let Some((call, pos)) = db_method(expr) {
                    found.push((call.name.to_string(), pos.position().unwrap_or(0)));
                }
            }
            true
        });
        found
    }

    #[test]
    fn the_first_method_of_a_db_chain_is_found_where_it_is_written() {
        let script = "fn f(db) {\n\
                      db.a(1);\n\
                      db.b(2).len();\n\
                      db.c(3)[0];\n\
                      let p = db.dialect;\n\
                      x.e();\n\
                      }";
        assert_eq!(
            db_methods(script),
            [
                ("a".to_string(), 4),
                ("b".to_string(), 4),
                ("c".to_string(), 4)
            ]
        );
    }

    #[test]
    fn db_is_the_handle_only_as_a_parameter_never_rebound() {
        assert!(db_is_the_handle(&compile("fn f(db) { db.a() }")));
        assert!(db_is_the_handle(&compile("fn f() { g(|db| db.a()) }")));
        assert!(!db_is_the_handle(&compile("fn f(x) { x.a() }")));
        assert!(!db_is_the_handle(&compile("fn f(db) { let db = 1; }")));
        assert!(!db_is_the_handle(&compile(
            "fn f(db) { for db in [1] { db.a() } }"
        )));
    }
}
