//! `ferry downgrade` through the real binary on both backends: `fn downgrade(db)` runs
//! back to a revision, `TREE@-N` and `base`; a plan that crosses a revision without
//! `fn downgrade` is refused before anything runs, naming it.

mod common;

use common::*;
use std::path::PathBuf;

fn shop() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/operators/shop/scripts")
        .canonicalize()
        .expect("shop fixture")
}

fn index_names(db: &TestDb, table: &str) -> Vec<String> {
    let mut conn = db.connect();
    conn.indexes(table)
        .expect("indexes")
        .into_iter()
        .map(|i| i.name)
        .collect()
}

fn current(db: &TestDb, tree: &str) -> serde_json::Value {
    let status = db
        .ferry()
        .scripts(shop())
        .run(["status", "--json"])
        .success();
    let v = status.json();
    let t = v["trees"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tree"] == tree)
        .unwrap_or_else(|| panic!("no tree {tree} in {v}"))
        .clone();
    t["current"].clone()
}

#[test]
fn downgrade_runs_fn_downgrade_back_to_the_target() {
    for_each_backend("downgrade_runs", |db| {
        db.ferry()
            .scripts(shop())
            .run(["upgrade", "shop@head"])
            .success();
        assert!(index_names(db, "item").contains(&"item_name".to_string()));

        db.ferry()
            .scripts(shop())
            .run(["downgrade", "shop-1"])
            .success();
        assert!(!index_names(db, "item").contains(&"item_name".to_string()));
        assert_eq!(current(db, "shop"), serde_json::json!(["shop-1"]));
        assert_eq!(
            db.history().last().unwrap(),
            &("shop-2".into(), "downgrade".into(), "applied".into())
        );

        db.ferry()
            .scripts(shop())
            .run(["downgrade", "shop@-1"])
            .success();
        assert!(!db.has_table("item"), "shop-1's downgrade drops item");
        assert_eq!(current(db, "shop"), serde_json::json!([]));

        // Up again: the tree's history goes on from base.
        db.ferry()
            .scripts(shop())
            .run(["upgrade", "shop@head"])
            .success();
        assert_eq!(current(db, "shop"), serde_json::json!(["shop-2"]));
    });
}

#[test]
fn downgrade_past_a_revision_without_fn_downgrade_runs_nothing() {
    for_each_backend("downgrade_refused", |db| {
        db.ferry()
            .scripts(shop())
            .run(["upgrade", "shop@head"])
            .success();
        // audit-1 applies, then fails its declared digest check (exit 1): it is
        // recorded applied, and it has no fn downgrade.
        db.ferry()
            .scripts(shop())
            .run(["upgrade", "audit-1"])
            .code(1);
        let history = db.history();
        let digest = db.ferry().scripts(shop()).run(["digest"]).success().stdout;

        db.ferry()
            .scripts(shop())
            .run(["downgrade", "base"])
            .code(2)
            .stderr_has("cannot be downgraded")
            .stderr_has("audit-1")
            .stderr_has("audit-1.rhai")
            .stderr_has("nothing was run");

        assert_eq!(db.history(), history, "nothing recorded");
        assert_eq!(
            db.ferry().scripts(shop()).run(["digest"]).success().stdout,
            digest,
            "schema unchanged"
        );
        assert!(index_names(db, "item").contains(&"item_name".to_string()));
        assert_eq!(current(db, "shop"), serde_json::json!(["shop-2"]));

        // A target that does not cross audit-1 still works: shop-2 goes...
        db.ferry()
            .scripts(shop())
            .run(["downgrade", "shop@-1"])
            .success();
        assert_eq!(current(db, "shop"), serde_json::json!(["shop-1"]));
        // ...but shop-1 cannot: audit-1 depends on it and would have to go first.
        db.ferry()
            .scripts(shop())
            .run(["downgrade", "shop@-1"])
            .code(2)
            .stderr_has("audit-1");
        assert!(db.has_table("item"));
    });
}
