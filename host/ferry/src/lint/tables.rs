//! The missing-`DEPENDS_ON` check: a revision whose statements touch a table that
//! another revision creates, where neither comes before the other in the graph. The
//! graph then allows either order, and an empty repository may run the revision before
//! its table exists (`no such table`). A warning, because table names are read from
//! SQL literals and `schema::` calls ([`super::sql`]), not from what runs.
//!
//! A revision that descends from an adopt-only root (a root with no `fn upgrade`,
//! standing for a repository another tool created: [`crate::lineage`]) is not checked
//! either: its tables exist before any of its revisions runs.
//!
//! A table no revision creates (it exists before any revision, like the tables of a
//! repository `adopt`ed from daf_butler) is not checked: the graph says nothing of it.
//!
//! Nor is a use inside `if db.table_exists("T") { … }` of that same table: the revision
//! has said it runs in either order (docs/PLUGINS.md's example plugin does this).

use super::scripts::{Kind, ScriptSet};
use super::sql::tables_in;
use super::{Problem, Severity};
use crate::graph::Graph;
use rhai::{ASTNode, Expr, Stmt, AST};
use std::collections::{BTreeMap, BTreeSet};

/// `db` methods whose first argument is a table name.
const TABLE_METHODS: [&str; 2] = ["bulk_insert", "insert_derived"];

/// What one revision's syntax tree says of tables: those it touches (with where) and
/// those it creates.
#[derive(Default)]
struct Use {
    touched: Vec<(String, rhai::Position)>,
    created: BTreeSet<String>,
}

/// The line and column of a position, for ordering.
fn key(p: rhai::Position) -> (usize, usize) {
    (p.line().unwrap_or(0), p.position().unwrap_or(0))
}

/// The body of an `if db.table_exists("T") { … }`: the table (lower case) and the
/// body's span, from its opening to its closing brace, as (line, column).
struct GuardedBody {
    table: String,
    from: (usize, usize),
    to: (usize, usize),
}

/// The guarded body an `if` statement opens, if it is `if db.table_exists("T") { … }`.
fn guarded_body(flow: &rhai::FlowControl) -> Option<GuardedBody> {
    // `db.table_exists("T")` is a dot expression whose right side is the call.
    let call = match &flow.expr {
        Expr::Dot(dot, _, _) => &dot.rhs,
        other => other,
    };
    let Expr::MethodCall(call, _) = call else {
        return None;
    };
    if call.name != "table_exists" {
        return None;
    }
    let Some(Expr::StringConstant(table, _)) = call.args.first() else {
        return None;
    };
    Some(GuardedBody {
        table: table.to_lowercase(),
        from: key(flow.body.position()),
        to: key(flow.body.end_position()),
    })
}

fn uses(ast: &AST) -> Use {
    let mut out = Use::default();
    // One walk collects the guarded bodies and every use; the uses inside a body
    // guarded for their own table are dropped afterwards.
    let mut guarded = Vec::new();
    let mut touches: Vec<(String, rhai::Position)> = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Stmt(Stmt::If(flow, _))) => guarded.extend(guarded_body(flow)),
            Some(ASTNode::Expr(Expr::StringConstant(s, pos))) => {
                if let Some(t) = tables_in(s) {
                    out.created.extend(t.created);
                    touches.extend(t.touched.into_iter().map(|name| (name, *pos)));
                }
            }
            Some(ASTNode::Expr(Expr::FnCall(call, pos)))
            | Some(ASTNode::Stmt(Stmt::FnCall(call, pos)))
                if call.namespace.to_string() == "schema" =>
            {
                if let Some(Expr::StringConstant(table, _)) = call.args.first() {
                    if call.name == "create_table" {
                        out.created.insert(table.to_lowercase());
                    } else {
                        touches.push((table.to_lowercase(), *pos));
                    }
                }
            }
            Some(ASTNode::Expr(Expr::MethodCall(call, pos)))
                if TABLE_METHODS.contains(&call.name.as_str()) =>
            {
                if let Some(Expr::StringConstant(table, _)) = call.args.first() {
                    touches.push((table.to_lowercase(), *pos));
                }
            }
            _ => {}
        }
        true
    });
    let is_guarded = |name: &str, pos: rhai::Position| {
        let at = key(pos);
        guarded
            .iter()
            .any(|g: &GuardedBody| g.table == name && g.from <= at && at <= g.to)
    };
    // The first use in the file (the walk visits functions in no particular order).
    for (name, pos) in touches {
        if is_guarded(&name, pos) {
            continue;
        }
        match out.touched.iter_mut().find(|(n, _)| *n == name) {
            Some((_, first)) if key(pos) < key(*first) => *first = pos,
            Some(_) => {}
            None => out.touched.push((name, pos)),
        }
    }
    out
}

pub fn check(set: &ScriptSet, graph: &Graph) -> Vec<Problem> {
    let mut by_revision: Vec<(&str, &std::path::Path, Use)> = Vec::new();
    for s in &set.scripts {
        if let (Kind::Revision { id, .. }, Some(ast)) = (&s.kind, &s.ast) {
            by_revision.push((id, &s.path, uses(ast)));
        }
    }
    let mut creators: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    for (id, _, u) in &by_revision {
        for t in &u.created {
            creators.entry(t.as_str()).or_default().push(id);
        }
    }
    let mut problems = Vec::new();
    for (id, path, u) in &by_revision {
        // Tables another revision creates: only then are the ancestors worth computing
        // (for a long linear tree they are most of the graph).
        let foreign: Vec<(&String, &rhai::Position, &Vec<&str>)> = u
            .touched
            .iter()
            .filter(|(table, _)| !u.created.contains(table))
            .filter_map(|(table, pos)| {
                creators
                    .get(table.as_str())
                    .filter(|makers| makers.iter().any(|m| m != id))
                    .map(|makers| (table, pos, makers))
            })
            .collect();
        if foreign.is_empty() {
            continue;
        }
        let before = graph.ancestors(id);
        let adopted = before
            .iter()
            .filter_map(|a| graph.get(a))
            .any(|m| m.parents.is_empty() && !m.has_upgrade);
        if adopted {
            continue;
        }
        let after = graph.descendants(id);
        for (table, pos, makers) in foreign {
            let ordered = makers
                .iter()
                .any(|m| m == id || before.contains(m) || after.contains(m));
            if ordered {
                continue;
            }
            let maker = makers[0];
            let file = graph
                .get(maker)
                .map(|m| format!(" ({})", m.path.display()))
                .unwrap_or_default();
            problems.push(Problem::at(
                *path,
                *pos,
                Severity::Warning,
                format!(
                    "table `{table}` is created by revision {maker}{file}, which revision {id} \
                     does not follow: add \"{maker}\" (or a revision after it) to DEPENDS_ON, or \
                     an empty repository may run {id} before the table exists (table names are \
                     read from SQL literals: a heuristic)"
                ),
            ));
        }
    }
    problems
}
