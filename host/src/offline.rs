//! `upgrade --sql`: which revisions can be printed as SQL without a database.
//!
//! A revision's statements can be printed ahead of time only if they do not depend on
//! what the database holds. Ferry decides that by walking the script's syntax tree
//! (without running it): a revision is refused, by name, if it calls anything that reads
//! the database (`db.query`, `query_row`, `query_value`, `each`, `batches`,
//! `insert_derived`, introspection such as `db.tables` or `db.columns`), the
//! `attributes::` or `hooks::` capabilities (whose statements depend on existing rows or
//! on a plugin), `db.bulk_insert` (which has no SQL text), or a function of an imported
//! module (which Ferry does not inspect). The statements of the other revisions are
//! those a dry run carries out (see `Migrator::upgrade_sql`).

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

/// The steps a revision declares, in the order they appear: the first argument of each
/// `db.step(…)` / `db.batches(…)` call, or `(computed)` where the name is not a literal
/// (e.g. a step per dynamic table). Read from the syntax tree, without running anything.
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
    upgrade.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Expr(Expr::MethodCall(call, _))) = path.last() {
            if matches!(call.name.as_str(), "step" | "batches") {
                let name = match call.args.first() {
                    Some(Expr::StringConstant(s, _)) => s.to_string(),
                    _ => "(computed)".to_string(),
                };
                if !steps.contains(&name) || name == "(computed)" && steps.last() != Some(&name) {
                    steps.push(name);
                }
            }
        }
        true
    });
    steps
}

/// The steps of a revision file, or nothing if it cannot be read or compiled (the
/// metadata reader has already reported such files).
pub fn steps_of_file(path: &std::path::Path) -> Vec<String> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return vec![];
    };
    let mut engine = rhai::Engine::new_raw();
    engine.set_max_expr_depths(256, 256);
    engine
        .compile(&text)
        .map(|ast| declared_steps(&ast))
        .unwrap_or_default()
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
