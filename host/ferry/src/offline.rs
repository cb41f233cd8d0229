//! `upgrade --sql` and `ferry plan`: what a script does, read from its syntax tree
//! without running it.
//!
//! A revision's statements depend on what the database holds if it calls anything that
//! reads the database (`db.query`, `query_row`, `query_value`, `each`, `batches`,
//! `insert_derived`, `step_beside`, introspection such as `db.tables` or `db.columns`), the
//! `attributes::` or `hooks::` capabilities (whose statements depend on existing rows or
//! on a plugin), `db.bulk_insert`, or a function of an imported module (which Ferry does
//! not inspect). `upgrade --sql` names such revisions in its script's header: the values
//! they read are written into the script (see [`crate::offline_sql`]), which is then
//! good for that database as it was, and for no other.

use rhai::{ASTNode, Expr, FnCallExpr, Stmt, AST};
use std::collections::BTreeSet;

/// Methods of `db` whose result or statements depend on the data.
const READS: [&str; 15] = [
    "query",
    "query_row",
    "query_value",
    "each",
    "batches",
    "insert_derived",
    "step_beside",
    "bulk_insert",
    "tables",
    "table_exists",
    "columns",
    "primary_key",
    "foreign_keys",
    "unique_constraints",
    "indexes",
];

/// How `ferry plan` shows a step whose name is built at run time.
const COMPUTED: &str = "(computed)";

/// Namespaces whose functions neither read the database nor hide code.
const SAFE_NAMESPACES: [&str; 4] = ["schema", "log", "config", "uuid"];

/// The calls in `ast` that make its statements depend on the data (empty: none).
pub fn data_dependent_calls(ast: &AST) -> Vec<String> {
    let mut found = BTreeSet::new();
    let mut note = |call: &FnCallExpr, method: bool| {
        let ns = call.namespace.to_string();
        if method {
            if READS.contains(&call.name.as_str()) {
                found.insert(format!("db.{}", call.name));
            }
        } else if !ns.is_empty() && !SAFE_NAMESPACES.contains(&ns.as_str()) {
            found.insert(format!("{ns}::{}", call.name));
        } else if ns.is_empty() && READS.contains(&call.name.as_str()) {
            found.insert(call.name.to_string());
        }
    };
    ast.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Expr(Expr::MethodCall(call, _))) => note(call, true),
            Some(ASTNode::Expr(Expr::FnCall(call, _))) => note(call, false),
            Some(ASTNode::Stmt(Stmt::FnCall(call, _))) => note(call, false),
            _ => {}
        }
        true
    });
    found.into_iter().collect()
}

/// Whether a call makes steps of its own: `schema::rewrite_tables(rewrites, options)`
/// unless its options are a literal `#{ steps: false }` (see `script::rewrite_steps`).
fn makes_rewrite_steps(call: &FnCallExpr) -> bool {
    if call.namespace.to_string() != "schema" || call.name != "rewrite_tables" {
        return false;
    }
    match call.args.get(1) {
        None => false,
        Some(Expr::Map(map, _)) => !map.0.iter().any(|(key, value)| {
            key.name == "steps" && matches!(value, Expr::BoolConstant(false, _))
        }),
        Some(_) => true,
    }
}

/// The steps a revision declares, in the order they appear: the first argument of each
/// `db.step(…)` / `db.batches(…)` / `db.step_beside(…)` call, or `(computed)` where the
/// name is not a literal (e.g. a step per dynamic table), and for
/// `schema::rewrite_tables(…, #{ steps: true })` `(computed)` (a step per table) followed
/// by its swap step. The steps of a `db.step_beside` body come before its own step (the
/// order they run in when they run one after another). Read from the syntax tree,
/// without running anything.
pub fn declared_steps(ast: &AST) -> Vec<String> {
    let mut steps: Vec<String> = Vec::new();
    // Only `fn upgrade(db)`: a downgrade's steps are not part of an upgrade plan.
    steps_of(ast, "upgrade", Some(1), &mut steps);
    steps
}

/// The name a step call gives its step: its first argument when it is a literal, else
/// `(computed)`.
fn step_name(call: &FnCallExpr) -> String {
    match call.args.first() {
        Some(Expr::StringConstant(s, _)) => s.to_string(),
        _ => COMPUTED.to_string(),
    }
}

/// What a walk of a function's body finds, in order.
enum Found {
    /// A step's name.
    Step(String),
    /// The function (a closure's) that is the body of a `db.step_beside`.
    BesideBody(String),
}

/// Appends to `steps` the steps that function `name` of `ast` (with `arity` parameters,
/// when given) declares, with those of the `db.step_beside` bodies it passes.
fn steps_of(ast: &AST, name: &str, arity: Option<usize>, steps: &mut Vec<String>) {
    // Built by hand: `clone_functions_only_filtered` copies every function into an
    // empty module.
    let mut only = rhai::Module::new();
    for def in ast.iter_fn_def() {
        if def.name == name && arity.is_none_or(|n| def.params.len() == n) {
            only.set_script_fn(def.clone());
        }
    }
    let function = AST::new(Vec::<Stmt>::new(), only);
    let mut found: Vec<Found> = Vec::new();
    function.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Expr(Expr::MethodCall(call, _)))
                if matches!(call.name.as_str(), "step" | "batches") =>
            {
                found.push(Found::Step(step_name(call)));
            }
            Some(ASTNode::Expr(Expr::FnCall(call, _)) | ASTNode::Stmt(Stmt::FnCall(call, _)))
                if makes_rewrite_steps(call) =>
            {
                found.push(Found::Step(COMPUTED.to_string()));
                found.push(Found::Step(
                    crate::script::rewrite_steps::SWAP_STEP.to_string(),
                ));
            }
            // Its body's steps (the closure among its arguments), then its own.
            Some(ASTNode::Expr(Expr::MethodCall(call, _))) if call.name == "step_beside" => {
                for arg in &call.args {
                    let mut no_path = Vec::new();
                    arg.walk(&mut no_path, &mut |p: &[ASTNode]| {
                        if let Some(ASTNode::Expr(Expr::DynamicConstant(value, _))) = p.last() {
                            if let Some(f) = value.read_lock::<rhai::FnPtr>() {
                                found.push(Found::BesideBody(f.fn_name().to_string()));
                            }
                        }
                        true
                    });
                }
                found.push(Found::Step(step_name(call)));
            }
            _ => {}
        }
        true
    });
    for f in found {
        match f {
            Found::Step(name) => {
                if !steps.contains(&name) || name == COMPUTED && steps.last() != Some(&name) {
                    steps.push(name);
                }
            }
            // A closure's function takes the variables it captures as parameters too.
            Found::BesideBody(body) => steps_of(ast, &body, None, steps),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_read_in_order_with_computed_names_marked() {
        let src = r#"fn downgrade(db) { db.step("undo", |db| {}); }
        fn upgrade(db) {
            db.step("create", |db| {});
            for t in ["a", "b"] { db.step(`index ${t}`, |db| {}); }
            db.batches("copy", #{}, |db, b| {});
        }"#;
        let ast = rhai::Engine::new().compile(src).unwrap();
        assert_eq!(declared_steps(&ast), ["create", "(computed)", "copy"]);
    }

    #[test]
    fn a_step_beside_comes_after_the_steps_of_its_body() {
        let src = r#"fn upgrade(db) {
            db.step("create", |db| {});
            let size = 10;
            db.step_beside("removed", #{ insert_derived: #{} }, |db| {
                db.batches("map", #{ size: size }, |db, b| {});
                db.step("after map", |db| {});
            });
            db.step_beside("alone", #{ insert_derived: #{} }, |db| {});
            db.step("key", |db| {});
        }"#;
        let ast = crate::analysis::parse_engine().compile(src).unwrap();
        assert_eq!(
            declared_steps(&ast),
            ["create", "map", "after map", "removed", "alone", "key"]
        );
    }

    #[test]
    fn a_rewrite_in_steps_shows_its_table_steps_and_its_swap() {
        let src = r#"fn upgrade(db) {
            db.step("map", |db| {});
            schema::rewrite_tables(rewrites, #{ steps: true });
            db.step("record", |db| {});
        }
        fn other(db) { schema::rewrite_tables(rewrites, #{ steps: false }); schema::rewrite_tables(r); }"#;
        let mut engine = rhai::Engine::new_raw();
        engine.set_max_expr_depths(256, 256);
        let ast = engine.compile(src).unwrap();
        assert_eq!(
            declared_steps(&ast),
            ["map", "(computed)", "swap rewritten tables", "record"]
        );
        let one_transaction = r#"fn upgrade(db) {
            db.step("rewrite", #{ foreign_keys: "at_commit" }, |db| {
                schema::rewrite_tables(r, #{ steps: false });
                schema::rewrite_tables(r);
            });
        }"#;
        let ast = engine.compile(one_transaction).unwrap();
        assert_eq!(declared_steps(&ast), ["rewrite"]);
    }

    fn calls(src: &str) -> Vec<String> {
        let ast = rhai::Engine::new().compile(src).expect("compiles");
        data_dependent_calls(&ast)
    }

    #[test]
    fn finds_reads_in_functions() {
        assert!(calls("fn upgrade(db) { db.execute(\"CREATE TABLE t (id INT)\"); }").is_empty());
        assert_eq!(
            calls("fn upgrade(db) { let n = db.query_value(\"SELECT 1\"); }"),
            ["db.query_value"]
        );
        assert_eq!(
            calls("fn upgrade(db) { attributes::set(\"a\", \"b\"); log::info(\"x\"); }"),
            ["attributes::set"]
        );
        assert_eq!(
            calls("import \"ferry/tables\" as t; fn upgrade(db) { t::copy(db); }"),
            ["t::copy"]
        );
    }
}
