//! Hooks: a revision that runs a hook its `HOOKS` does not declare (refused at run
//! time, after earlier revisions committed), and a hook file whose hook no revision
//! declares: an error when its name is a near miss of a declared hook (a misspelt
//! `HOOK` is never called, silently), a warning otherwise (a plugin may provide hooks
//! for core revisions that are not among these roots).

use super::scripts::{Kind, ScriptSet};
use super::{closest, suggestion, Problem, Severity};
use crate::discovery::Discovered;
use rhai::{ASTNode, Expr, Stmt};
use std::collections::BTreeSet;

pub fn check(set: &ScriptSet, found: &Discovered) -> Vec<Problem> {
    let mut problems = Vec::new();
    for script in &set.scripts {
        let (Kind::Revision { id, hooks }, Some(ast)) = (&script.kind, &script.ast) else {
            continue;
        };
        ast.walk(&mut |path: &[ASTNode]| {
            let (call, pos) = match path.last() {
                Some(ASTNode::Expr(Expr::FnCall(call, pos))) => (call, *pos),
                Some(ASTNode::Stmt(Stmt::FnCall(call, pos))) => (call, *pos),
                _ => return true,
            };
            if call.namespace.to_string() != "hooks" || call.name != "run" {
                return true;
            }
            if let Some(Expr::StringConstant(name, _)) = call.args.first() {
                if !hooks.iter().any(|h| h == name.as_str()) {
                    problems.push(Problem::at(
                        &script.path,
                        pos,
                        Severity::Error,
                        format!(
                            "hooks::run({name:?}) runs a hook that revision {id} does not declare: add {name:?} to its HOOKS constant{}",
                            suggestion(name, hooks.iter().map(String::as_str))
                        ),
                    ));
                }
            }
            true
        });
    }
    let declared: BTreeSet<&str> = found
        .revisions
        .iter()
        .flat_map(|r| r.hooks.iter().map(String::as_str))
        .collect();
    for h in &found.hooks {
        if !declared.contains(h.name.as_str()) {
            let near = closest(&h.name, declared.iter().copied());
            problems.push(Problem {
                path: h.path.clone(),
                line: h.pos.line,
                column: h.pos.column,
                severity: if near.is_some() {
                    Severity::Error
                } else {
                    Severity::Warning
                },
                message: format!(
                    "this file provides hook {:?}, which no revision declares in HOOKS, so nothing would ever run it{}",
                    h.name,
                    suggestion(&h.name, declared.iter().copied())
                ),
            });
        }
    }
    problems
}
