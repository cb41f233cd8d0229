//! Every fixture tree under `tests/fixtures/trees/` through discovery, the graph,
//! targets and plans, using the public API only.

use std::collections::BTreeSet;
use std::path::PathBuf;

use ferry::discovery::{default_roots, discover, Discovered};
use ferry::graph::Graph;
use ferry::plan::{plan_downgrade, plan_upgrade, Direction};
use ferry::target::{resolve_target, Target};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/fixtures/trees")
        .join(name)
}

fn discovered(name: &str) -> Discovered {
    let roots = default_roots(&fixture(name));
    assert!(!roots.is_empty(), "fixture {name} has no roots");
    discover(&roots).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn graph(name: &str) -> Graph {
    Graph::build(discovered(name).revisions).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// The error text of a broken fixture, from whichever stage rejects it.
fn failure(name: &str) -> String {
    let roots = default_roots(&fixture(name));
    match discover(&roots) {
        Err(e) => e.to_string(),
        Ok(d) => match Graph::build(d.revisions) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("{name} should be rejected"),
        },
    }
}

fn ids(revs: &[String]) -> Vec<&str> {
    revs.iter().map(String::as_str).collect()
}

fn none() -> BTreeSet<String> {
    BTreeSet::new()
}

#[test]
fn linear() {
    let g = graph("linear");
    assert_eq!(g.trees(), ["alpha"]);
    assert_eq!(g.heads("alpha"), ["alpha-3"]);
    let plan = plan_upgrade(&g, &none(), &[Target::Heads]).expect("plan");
    assert_eq!(plan.direction, Direction::Upgrade);
    assert_eq!(ids(&plan.revisions), ["alpha-1", "alpha-2", "alpha-3"]);
    let r = g.get("alpha-3").expect("alpha-3");
    assert!(r.has_upgrade && r.has_downgrade);
    assert_eq!(r.version, "1.2.0");
    assert!(r.path.ends_with("scripts/alpha/003_seed.rhai"));
    assert_eq!(r.checksum.len(), 64);
}

#[test]
fn cross_tree() {
    let g = graph("cross_tree");
    assert_eq!(g.trees(), ["alpha", "beta"]);
    let applied = none();
    let t = resolve_target(&g, &applied, "beta@head").expect("target");
    let plan = plan_upgrade(&g, &applied, &[t]).expect("plan");
    assert_eq!(
        ids(&plan.revisions),
        ["alpha-1", "alpha-2", "beta-1", "beta-2"]
    );
    let all: BTreeSet<String> = g.revisions().iter().map(|r| r.id.clone()).collect();
    let back = plan_downgrade(&g, &all, &Target::TreeBase("alpha".into())).expect("plan");
    assert_eq!(back.direction, Direction::Downgrade);
    assert_eq!(
        ids(&back.revisions),
        ["beta-2", "beta-1", "alpha-3", "alpha-2", "alpha-1"]
    );
}

#[test]
fn merge() {
    let g = graph("merge");
    assert_eq!(g.heads("gamma"), ["gamma-2"]);
    assert_eq!(g.parents("gamma-2"), ["gamma-left", "gamma-right"]);
    let plan = plan_upgrade(&g, &none(), &[Target::Heads]).expect("plan");
    assert_eq!(
        ids(&plan.revisions),
        ["gamma-1", "gamma-left", "gamma-right", "gamma-2"]
    );
}

#[test]
fn plugin() {
    let root = fixture("plugin");
    let roots = default_roots(&root);
    assert_eq!(roots, [root.join("scripts"), root.join("plugins/obs_test")]);
    let d = discovered("plugin");
    assert_eq!(d.hooks.len(), 1);
    assert_eq!(d.hooks[0].name, "dataset_uuid");
    assert_eq!(d.hooks[0].key.as_deref(), Some("OBS_TEST"));
    assert_eq!(d.modules.len(), 1);
    assert!(d.modules[0].path.ends_with("lib/names.rhai"));
    let g = Graph::build(d.revisions).expect("graph");
    assert_eq!(g.trees(), ["datasets", "obs_test"]);
    assert_eq!(
        g.get("datasets-2").map(|r| r.hooks.clone()),
        Some(vec!["dataset_uuid".to_string()])
    );
    let plan = plan_upgrade(&g, &none(), &[Target::Heads]).expect("plan");
    assert_eq!(
        ids(&plan.revisions),
        ["datasets-1", "datasets-2", "obs_test-1"]
    );
    let t = resolve_target(&g, &none(), "obs_test@head").expect("target");
    let plan = plan_upgrade(&g, &none(), &[t]).expect("plan");
    assert_eq!(ids(&plan.revisions), ["datasets-1", "obs_test-1"]);
}

#[test]
fn broken_duplicate() {
    let text = failure("broken_duplicate");
    assert!(text.contains("001_create_again.rhai"), "{text}");
    assert!(text.contains("001_create.rhai"), "{text}");
    assert!(
        text.contains("revision alpha-1 is declared twice"),
        "{text}"
    );
}

#[test]
fn broken_unknown_parent() {
    let text = failure("broken_unknown_parent");
    assert!(text.contains("002_orphan.rhai:4"), "{text}");
    assert!(text.contains("unknown parent alpha-0"), "{text}");
}

#[test]
fn broken_unknown_dep() {
    let text = failure("broken_unknown_dep");
    assert!(text.contains("beta/001_create.rhai:6"), "{text}");
    assert!(
        text.contains("depends on unknown revision alpha-9 (did you mean alpha-1?)"),
        "{text}"
    );
}

#[test]
fn broken_cycle() {
    let text = failure("broken_cycle");
    assert!(
        text.contains("cycle in the revision graph: alpha-1 -> alpha-3 -> alpha-2 -> alpha-1"),
        "{text}"
    );
    assert!(text.contains("001_a.rhai"), "{text}");
}

#[test]
fn broken_syntax() {
    let text = failure("broken_syntax");
    assert!(text.contains("002_broken.rhai:10:"), "{text}");
    assert!(text.contains("syntax error"), "{text}");
}

#[test]
fn broken_missing_field() {
    let text = failure("broken_missing_field");
    assert!(
        text.contains("001_create.rhai:1: MESSAGE is not declared"),
        "{text}"
    );
}

#[test]
fn broken_mistyped_field() {
    let text = failure("broken_mistyped_field");
    assert!(
        text.contains("001_create.rhai:4: PARENTS must be an array of strings, found string"),
        "{text}"
    );
}

#[test]
fn broken_two_heads() {
    let g = graph("broken_two_heads");
    assert_eq!(g.heads("alpha"), ["alpha-left", "alpha-right"]);
    let err = resolve_target(&g, &none(), "alpha@head")
        .unwrap_err()
        .to_string();
    assert_eq!(
        err,
        "alpha@head is ambiguous: the tree has 2 heads: alpha-left, alpha-right"
    );
    // `heads` still works: both branches are applied.
    let plan = plan_upgrade(&g, &none(), &[Target::Heads]).expect("plan");
    assert_eq!(
        ids(&plan.revisions),
        ["alpha-1", "alpha-left", "alpha-right"]
    );
}

/// `failing/` and `fixed/` are the same tree (same ids, same first script); only
/// alpha-2's script differs. `slow/` is a plain linear tree. foundation.rs runs them.
#[test]
fn failing_fixed_and_slow() {
    let failing = graph("failing");
    let fixed = graph("fixed");
    let plan = |g: &Graph| plan_upgrade(g, &none(), &[Target::Heads]).expect("plan");
    assert_eq!(ids(&plan(&failing).revisions), ["alpha-1", "alpha-2"]);
    assert_eq!(ids(&plan(&fixed).revisions), ["alpha-1", "alpha-2"]);
    let checksum = |g: &Graph, id: &str| g.get(id).expect(id).checksum.clone();
    assert_eq!(checksum(&failing, "alpha-1"), checksum(&fixed, "alpha-1"));
    assert_ne!(checksum(&failing, "alpha-2"), checksum(&fixed, "alpha-2"));
    let slow = graph("slow");
    assert_eq!(ids(&plan(&slow).revisions), ["bulk-1", "bulk-2", "bulk-3"]);
}

/// `sql_values/` is a two-revision tree; offline_sql_round_trip.rs runs it.
#[test]
fn sql_values_tree() {
    let g = graph("sql_values");
    let plan = plan_upgrade(&g, &none(), &[Target::Heads]).expect("plan");
    assert_eq!(ids(&plan.revisions), ["values-1", "values-2"]);
}

/// `rewrite_steps/` is a two-revision tree; rewrite_steps.rs runs it.
#[test]
fn rewrite_steps_tree() {
    let g = graph("rewrite_steps");
    let plan = plan_upgrade(&g, &none(), &[Target::Heads]).expect("plan");
    assert_eq!(ids(&plan.revisions), ["registry-1", "registry-2"]);
}

#[test]
fn every_fixture_folder_is_tested() {
    let tested = [
        "before", // host/cli/tests/plugin_ordering.rs
        "broken_cycle",
        "broken_duplicate",
        "broken_missing_field",
        "broken_mistyped_field",
        "broken_syntax",
        "broken_two_heads",
        "broken_unknown_dep",
        "broken_unknown_parent",
        "cross_tree",
        "downgrade_steps", // host/cli/tests/downgrade_resume.rs
        "endless",         // host/cli/tests/statement_timeout.rs
        "failing",
        "fixed",
        "linear",
        "merge",
        "parallel_steps", // host/cli/tests/parallel_steps.rs
        "plugin",
        "rewrite_steps",
        "slow",
        "sql_values",
        "step_beside", // host/cli/tests/step_beside.rs
    ];
    let mut found: Vec<String> = std::fs::read_dir(fixture(""))
        .expect("fixtures")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    assert_eq!(found, tested);
}
