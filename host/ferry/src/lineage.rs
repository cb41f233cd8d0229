//! Lineages: the separate histories that one tree may hold, and which of them a
//! repository is on.
//!
//! A tree's revisions fall into lineages: the sets connected through `PARENTS`. Most
//! trees have one. The default roots hold two kinds of repository side by side under
//! daf_butler's tree names: the synthetic WORKLOAD.md registry, whose roots create their
//! tables (`fn upgrade`), and repositories created by the real daf_butler, whose roots
//! record a state that only daf_butler creates and so define no `fn upgrade`: they are
//! *adopt-only*, reached by `ferry adopt` (or `stamp`), never run.
//!
//! A lineage is *dormant* for a repository, and its revisions are neither pending nor
//! planned by `upgrade` to the heads, when
//! - it is adopt-only and none of its revisions is applied, or
//! - it is runnable, none of its revisions is applied, and the tree has an applied
//!   adopt-only lineage (the repository was adopted as the other kind).
//!
//! Every revision that needs a dormant one (a child, or a `DEPENDS_ON` from any tree) is
//! dormant as well, unless it is applied. A graph without adopt-only roots has no
//! dormant revision, so nothing changes for it.

use std::collections::{BTreeMap, BTreeSet};

use crate::graph::Graph;

/// The revisions that are dormant for a repository with `applied` revisions.
pub fn dormant<'g>(graph: &'g Graph, applied: &BTreeSet<String>) -> BTreeSet<&'g str> {
    let mut seeds: Vec<&str> = Vec::new();
    for tree in graph.trees() {
        let lineages = lineages(graph, tree);
        let is_applied = |l: &Vec<&str>| l.iter().any(|id| applied.contains(*id));
        let adopt_only = |l: &Vec<&str>| {
            l.iter().any(|id| {
                graph
                    .get(id)
                    .is_some_and(|m| m.parents.is_empty() && !m.has_upgrade)
            })
        };
        let adopted = lineages.iter().any(|l| adopt_only(l) && is_applied(l));
        for l in &lineages {
            let asleep = !is_applied(l) && (adopt_only(l) || adopted);
            if asleep {
                seeds.extend(l.iter().copied());
            }
        }
    }
    if seeds.is_empty() {
        return BTreeSet::new();
    }
    graph
        .descendants_inclusive(seeds)
        .into_iter()
        .filter(|id| !applied.contains(*id))
        .collect()
}

/// The lineages of one tree: its revisions grouped by connection through parents.
fn lineages<'g>(graph: &'g Graph, tree: &str) -> Vec<Vec<&'g str>> {
    let revisions = graph.tree_revisions(tree);
    let mut group: BTreeMap<&str, usize> = BTreeMap::new();
    let mut groups: Vec<Vec<&str>> = Vec::new();
    // Topological order: a revision's parents come first, so it joins (and merges) the
    // groups of its parents, or starts a new one at a root.
    for m in revisions {
        let parent_groups: BTreeSet<usize> = m
            .parents
            .iter()
            .filter_map(|p| group.get(p.as_str()).copied())
            .collect();
        let target = match parent_groups.iter().next() {
            None => {
                groups.push(Vec::new());
                groups.len() - 1
            }
            Some(&first) => {
                for &other in parent_groups.iter().skip(1) {
                    let moved = std::mem::take(&mut groups[other]);
                    for id in &moved {
                        group.insert(id, first);
                    }
                    groups[first].extend(moved);
                }
                first
            }
        };
        group.insert(m.id.as_str(), target);
        groups[target].push(m.id.as_str());
    }
    groups.retain(|g| !g.is_empty());
    groups
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::tests::meta;

    fn adopt_only(id: &str, tree: &str) -> crate::metadata::RevisionMeta {
        let mut m = meta(id, tree, &[], &[]);
        m.has_upgrade = false;
        m
    }

    fn graph() -> Graph {
        Graph::build(vec![
            meta("syn-0", "cfg", &[], &[]),
            meta("syn-1", "cfg", &["syn-0"], &[]),
            adopt_only("real-0", "cfg"),
            meta("real-1", "cfg", &["real-0"], &[]),
            meta("plugin-1", "plugin", &[], &["syn-0"]),
            meta("other-1", "other", &[], &[]),
        ])
        .expect("valid graph")
    }

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_fresh_repository_sleeps_only_on_adopt_only_lineages() {
        let g = graph();
        let d = dormant(&g, &set(&[]));
        assert_eq!(d, ["real-0", "real-1"].into_iter().collect());
    }

    #[test]
    fn an_adopted_repository_sleeps_on_the_runnable_lineage_and_what_needs_it() {
        let g = graph();
        let d = dormant(&g, &set(&["real-0"]));
        assert_eq!(d, ["plugin-1", "syn-0", "syn-1"].into_iter().collect());
    }

    #[test]
    fn a_repository_on_the_runnable_lineage_keeps_it_awake() {
        let g = graph();
        let d = dormant(&g, &set(&["syn-0"]));
        assert_eq!(d, ["real-0", "real-1"].into_iter().collect());
    }

    #[test]
    fn without_adopt_only_roots_nothing_is_dormant() {
        let g = Graph::build(vec![
            meta("a-1", "a", &[], &[]),
            meta("b-1", "a", &[], &[]),
            meta("b-2", "a", &["b-1"], &[]),
        ])
        .expect("valid graph");
        assert!(dormant(&g, &set(&["a-1"])).is_empty());
        assert!(dormant(&g, &set(&[])).is_empty());
    }

    #[test]
    fn merged_lineages_are_one() {
        let g = Graph::build(vec![
            adopt_only("r", "t"),
            meta("s", "t", &[], &[]),
            meta("m", "t", &["r", "s"], &[]),
        ])
        .expect("valid graph");
        // One lineage with an adopt-only root: asleep until something of it is applied.
        assert_eq!(dormant(&g, &set(&[])).len(), 3);
        assert!(dormant(&g, &set(&["r"])).is_empty());
    }
}
