//! Calls of functions nobody defines, calls into unknown namespaces, and imports that
//! do not resolve.
//!
//! A plain call `f(x)` is known when the script defines `f`, when Ferry's engine has a
//! function `f` (the host API and Rhai's packages, as `Engine::collect_fn_metadata`
//! lists them), when `f` is one of Rhai's built-in keywords, or when `f` is a variable
//! or parameter of the script (which may hold a function pointer). `m::f(x)` is known
//! when `m` is an import whose module defines a public `f`, or a capability (`schema`,
//! `config`, ...) that has `f`. Method calls (`db.query(...)`, `s.trim()`) are not
//! checked: what they are called on is known only at run time.

use super::scripts::{Import, Script, ScriptSet};
use super::{suggestion, Problem, Severity};
use rhai::{ASTNode, Expr, Stmt, AST};
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
        Api { functions }
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
