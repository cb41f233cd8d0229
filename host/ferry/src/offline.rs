//! `upgrade --sql` and `ferry plan`: what a script does, read from its syntax tree
//! without running it.
//!
//! A revision's statements depend on what the database holds if it calls anything that
//! reads the database (`db.query`, `query_row`, `query_value`, `each`, `batches`,
//! `insert_derived`, introspection such as `db.tables` or `db.columns`), the
//! `attributes::` or `hooks::` capabilities (whose statements depend on existing rows or
//! on a plugin), `db.bulk_insert`, or a function of an imported module (which Ferry does
//! not inspect). `upgrade --sql` names such revisions in its script's header: the values
//! they read are written into the script (see [`crate::offline_sql`]), which is then
//! good for that database as it was, and for no other.

use rhai::{ASTNode, Expr, FnCallExpr, Stmt, AST};
use std::collections::BTreeSet;

/// Methods of `db` whose result or statements depend on the data.
const READS: [&str; 14] = [
    "query",
    "query_row",
    "query_value",
    "each",
    "batches",
    "insert_derived",
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
/// `db.step(…)` / `db.batches(…)` call, or `(computed)` where the name is not a literal
/// (e.g. a step per dynamic table), and for `schema::rewrite_tables(…, #{ steps: true })`
/// `(computed)` (a step per table) followed by its swap step. Read from the syntax tree,
/// without running anything.
pub fn declared_steps(ast: &AST) -> Vec<String> {
    // Only `fn upgrade(db)`: a downgrade's steps are not part of an upgrade plan. (Built
    // by hand: `clone_functions_only_filtered` copies every function into an empty module.)
    let mut only_upgrade = rhai::Module::new();
    for def in ast.iter_fn_def() {
        if def.name == "upgrade" && def.params.len() == 1 {
            only_upgrade.set_script_fn(def.clone());
        }
    }
    let upgrade = AST::new(Vec::<Stmt>::new(), only_upgrade);
    let mut steps: Vec<String> = Vec::new();
    let mut push = |name: String| {
        if !steps.contains(&name) || name == COMPUTED && steps.last() != Some(&name) {
            steps.push(name);
        }
    };
    upgrade.walk(&mut |path: &[ASTNode]| {
        match path.last() {
            Some(ASTNode::Expr(Expr::MethodCall(call, _)))
                if matches!(call.name.as_str(), "step" | "batches") =>
            {
                push(match call.args.first() {
                    Some(Expr::StringConstant(s, _)) => s.to_string(),
                    _ => COMPUTED.to_string(),
                });
            }
            Some(ASTNode::Expr(Expr::FnCall(call, _)) | ASTNode::Stmt(Stmt::FnCall(call, _)))
                if makes_rewrite_steps(call) =>
            {
                push(COMPUTED.to_string());
                push(crate::script::rewrite_steps::SWAP_STEP.to_string());
            }
            _ => {}
        }
        true
    });
    steps
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
