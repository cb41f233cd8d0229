//! The ordered revisions that take the repository from its state to a target.
//!
//! An upgrade applies every pending revision the targets need (the targets and their
//! ancestors over parents and `DEPENDS_ON`) in topological order. A downgrade undoes,
//! in reverse topological order, every applied revision that must go for the target to
//! be the newest applied state. A revision's `BEFORE` is an edge of the graph like
//! `DEPENDS_ON` (see `graph`); an upgrade that would run such a revision after the
//! revision it names is refused unless the caller allows it ([`late_before`]).

use std::collections::BTreeSet;

use crate::graph::Graph;
use crate::target::Target;

/// Which way a plan runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Revisions run their `upgrade`, oldest first.
    Upgrade,
    /// Revisions run their `downgrade`, newest first.
    Downgrade,
}

impl Direction {
    /// The name of the script function that runs in this direction.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Upgrade => "upgrade",
            Direction::Downgrade => "downgrade",
        }
    }
}

/// The revisions to run, in execution order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub direction: Direction,
    pub revisions: Vec<String>,
}

impl Plan {
    #[cfg(any(test, feature = "internals"))]
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.revisions.is_empty()
    }
}

/// Why no plan could be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PlanError {
    /// The ledger records applied revisions that no script declares (the ids).
    #[error("the repository records revision(s) the scripts do not know: {} (the repository is ahead of the code, or scripts are missing from the roots)", .0.join(", "))]
    UnknownApplied(Vec<String>),
    /// The target names revisions that no script declares (the ids).
    #[error("unknown revision(s) in the target: {}", .0.join(", "))]
    UnknownTarget(Vec<String>),
    /// The target names a tree that no script defines (`TREE@base`).
    #[error("unknown tree {0} in the target")]
    UnknownTree(String),
    /// The target cannot be reached in this direction (`base` for an upgrade, `heads`
    /// for a downgrade).
    #[error("{target} is not a target for {direction}")]
    WrongDirection {
        /// The target as written.
        target: String,
        /// `upgrade` or `downgrade`.
        direction: &'static str,
    },
    /// A downgrade names revisions that are not applied (the ids).
    #[error("cannot downgrade to {}: not applied (use upgrade)", .0.join(", "))]
    NotApplied(Vec<String>),
    /// Planned revisions whose `BEFORE` names a revision that is already applied.
    #[error("{}\n  nothing was run. A revision that asks to run BEFORE another cannot run before it any more; \
             run it late only if it copes with running after (docs/OPERATIONS.md, \"A BEFORE revision arrives late\"): \
             `ferry upgrade --allow-late` runs it and notes `allow-late` in the history",
             .0.iter().map(|l| l.to_string()).collect::<Vec<_>>().join("\n"))]
    LateBefore(Vec<LateBefore>),
}

/// A pending revision whose `BEFORE` names an applied revision (an instrument plugin
/// installed after the core revision it wanted to precede had run).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LateBefore {
    /// The pending revision.
    pub revision: String,
    /// `file:line` of its `BEFORE`.
    pub at: String,
    /// The applied revisions its `BEFORE` names.
    pub applied: Vec<String>,
}

impl std::fmt::Display for LateBefore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: revision {} asks to run BEFORE {}, already applied",
            self.at,
            self.revision,
            self.applied.join(", ")
        )
    }
}

/// The planned revisions that arrive late: their `BEFORE` names an applied revision.
pub fn late_before(graph: &Graph, applied: &BTreeSet<String>, plan: &Plan) -> Vec<LateBefore> {
    if plan.direction != Direction::Upgrade {
        return Vec::new();
    }
    plan.revisions
        .iter()
        .filter_map(|id| graph.get(id))
        .filter_map(|m| {
            let late: Vec<String> = m
                .before
                .iter()
                .filter(|b| applied.contains(*b))
                .cloned()
                .collect();
            (!late.is_empty()).then(|| LateBefore {
                revision: m.id.clone(),
                at: format!("{}:{}", m.path.display(), m.before_pos.line),
                applied: late,
            })
        })
        .collect()
}

fn check_applied(graph: &Graph, applied: &BTreeSet<String>) -> Result<(), PlanError> {
    let unknown: Vec<String> = applied
        .iter()
        .filter(|id| !graph.contains(id))
        .cloned()
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(PlanError::UnknownApplied(unknown))
    }
}

fn check_known(graph: &Graph, ids: &BTreeSet<String>) -> Result<(), PlanError> {
    let unknown: Vec<String> = ids
        .iter()
        .filter(|id| !graph.contains(id))
        .cloned()
        .collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(PlanError::UnknownTarget(unknown))
    }
}

/// The pending revisions needed to reach every target, in topological order.
/// An empty `targets` means nothing to do; pass [`Target::Heads`] for "everything".
pub fn plan_upgrade(
    graph: &Graph,
    applied: &BTreeSet<String>,
    targets: &[Target],
) -> Result<Plan, PlanError> {
    check_applied(graph, applied)?;
    let mut wanted: Vec<&str> = Vec::new();
    for target in targets {
        match target {
            Target::Heads => {
                // Heads of lineages the repository is not on stay out (crate::lineage).
                let dormant = crate::lineage::dormant(graph, applied);
                wanted.extend(
                    graph
                        .all_heads()
                        .into_iter()
                        .filter(|h| !dormant.contains(h)),
                )
            }
            Target::Revisions(ids) => {
                check_known(graph, ids)?;
                wanted.extend(ids.iter().map(String::as_str));
            }
            Target::Base | Target::TreeBase(_) | Target::Undo(_) => {
                return Err(PlanError::WrongDirection {
                    target: target.to_string(),
                    direction: "upgrade",
                })
            }
        }
    }
    let needed = graph.ancestors_inclusive(wanted);
    let pending = needed.into_iter().filter(|id| !applied.contains(*id));
    Ok(Plan {
        direction: Direction::Upgrade,
        revisions: graph
            .topo_sort(pending)
            .into_iter()
            .map(String::from)
            .collect(),
    })
}

/// The applied revisions to undo to reach `target`, in reverse topological order:
/// `base` undoes everything; `TREE@base` the tree and every applied revision of any
/// tree that depends on it; revisions undo every applied descendant of them (the
/// revisions themselves stay applied); `-N` ([`Target::Undo`]) undoes those revisions
/// and every applied revision that needs them.
pub fn plan_downgrade(
    graph: &Graph,
    applied: &BTreeSet<String>,
    target: &Target,
) -> Result<Plan, PlanError> {
    check_applied(graph, applied)?;
    let undo: BTreeSet<&str> = match target {
        Target::Base => applied.iter().map(String::as_str).collect(),
        Target::TreeBase(tree) => {
            if !graph.has_tree(tree) {
                return Err(PlanError::UnknownTree(tree.clone()));
            }
            let revs = graph.tree_revisions(tree);
            graph.descendants_inclusive(revs.iter().map(|r| r.id.as_str()))
        }
        Target::Revisions(ids) => {
            check_known(graph, ids)?;
            let missing: Vec<String> = ids
                .iter()
                .filter(|id| !applied.contains(*id))
                .cloned()
                .collect();
            if !missing.is_empty() {
                return Err(PlanError::NotApplied(missing));
            }
            // Going back to X undoes what was built on X: X's children and everything
            // that needs them. A revision of another tree that depends on X itself stays,
            // since X stays (as Alembic does since 0.8.7).
            let children: Vec<&str> = ids.iter().flat_map(|id| graph.children(id)).collect();
            let mut all = graph.descendants_inclusive(children);
            for id in ids {
                all.remove(id.as_str());
            }
            all
        }
        Target::Undo(ids) => {
            check_known(graph, ids)?;
            graph.descendants_inclusive(ids.iter().map(String::as_str))
        }
        Target::Heads => {
            return Err(PlanError::WrongDirection {
                target: target.to_string(),
                direction: "downgrade",
            })
        }
    };
    let mut order: Vec<String> = graph
        .topo_sort(undo.into_iter().filter(|id| applied.contains(*id)))
        .into_iter()
        .map(String::from)
        .collect();
    order.reverse();
    Ok(Plan {
        direction: Direction::Downgrade,
        revisions: order,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::tests::{meta, sample};
    use crate::target::resolve_target;

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn up(applied: &[&str], targets: &[&str]) -> Result<Vec<String>, String> {
        let g = sample();
        let applied = set(applied);
        let targets: Vec<Target> = targets
            .iter()
            .map(|t| resolve_target(&g, &applied, t).map_err(|e| e.to_string()))
            .collect::<Result<_, _>>()?;
        plan_upgrade(&g, &applied, &targets)
            .map(|p| p.revisions)
            .map_err(|e| e.to_string())
    }

    fn down(applied: &[&str], target: &str) -> Result<Vec<String>, String> {
        let g = sample();
        let applied = set(applied);
        let target = resolve_target(&g, &applied, target).map_err(|e| e.to_string())?;
        plan_downgrade(&g, &applied, &target)
            .map(|p| p.revisions)
            .map_err(|e| e.to_string())
    }

    const ALL: &[&str] = &["a-1", "a-2", "a-3", "a-4", "a-5", "b-1", "b-2"];

    #[test]
    fn upgrades() {
        assert_eq!(up(&[], &["heads"]).unwrap(), ALL);
        assert_eq!(up(&["a-1", "a-2"], &["b@head"]).unwrap(), ["b-1", "b-2"]);
        assert_eq!(up(&[], &["b-2"]).unwrap(), ["a-1", "a-2", "b-1", "b-2"]);
        assert_eq!(
            up(&[], &["a-3", "b-1"]).unwrap(),
            ["a-1", "a-2", "a-3", "b-1"]
        );
        assert_eq!(up(&["a-1"], &["+2"]).unwrap(), ["a-2", "a-3"]);
        assert!(up(ALL, &["heads"]).unwrap().is_empty());
        assert!(up(&[], &["base"])
            .unwrap_err()
            .contains("base is not a target for upgrade"));
    }

    #[test]
    fn downgrades() {
        assert_eq!(
            down(ALL, "base").unwrap(),
            ["b-2", "b-1", "a-5", "a-4", "a-3", "a-2", "a-1"]
        );
        // b-2 depends on a-2, which stays: b-2 stays too. Going below a-2 takes it.
        assert_eq!(down(ALL, "a-2").unwrap(), ["a-5", "a-4", "a-3"]);
        assert_eq!(
            down(ALL, "a-1").unwrap(),
            ["b-2", "a-5", "a-4", "a-3", "a-2"]
        );
        assert_eq!(
            down(ALL, "a@base").unwrap(),
            ["b-2", "a-5", "a-4", "a-3", "a-2", "a-1"]
        );
        assert_eq!(down(ALL, "b@base").unwrap(), ["b-2", "b-1"]);
        assert_eq!(down(ALL, "-2").unwrap(), ["b-2", "b-1"]);
        assert_eq!(down(&["a-1", "a-2", "b-1"], "a@-1").unwrap(), ["a-2"]);
        assert!(down(&["a-1"], "a-2").unwrap_err().contains("not applied"));
        assert!(down(ALL, "heads")
            .unwrap_err()
            .contains("heads is not a target for downgrade"));
    }

    #[test]
    fn unknown_applied_is_reported() {
        let err = up(&["a-1", "zz-7", "zz-8"], &["heads"]).unwrap_err();
        assert!(err.contains("do not know: zz-7, zz-8"), "{err}");
        let err = down(&["zz-7"], "base").unwrap_err();
        assert!(err.contains("zz-7"), "{err}");
    }

    #[test]
    fn ten_thousand_revisions_plan_fast() {
        let mut revs = Vec::new();
        for t in 0..10 {
            for i in 0..1000 {
                let parent = format!("t{t}-{}", i.max(1) - 1);
                let parents: Vec<&str> = if i == 0 {
                    vec![]
                } else {
                    vec![parent.as_str()]
                };
                let dep = format!("t{}-{i}", t.max(1) - 1);
                let deps: Vec<&str> = if t == 0 || i % 10 != 0 {
                    vec![]
                } else {
                    vec![dep.as_str()]
                };
                revs.push(meta(
                    &format!("t{t}-{i}"),
                    &format!("t{t}"),
                    &parents,
                    &deps,
                ));
            }
        }
        let start = std::time::Instant::now();
        let g = Graph::build(revs).expect("valid");
        let none = BTreeSet::new();
        let plan = plan_upgrade(&g, &none, &[Target::Heads]).expect("plan");
        assert_eq!(plan.revisions.len(), 10_000);
        let all: BTreeSet<String> = plan.revisions.iter().cloned().collect();
        let back = plan_downgrade(&g, &all, &Target::Base).expect("plan");
        assert_eq!(back.revisions.len(), 10_000);
        assert!(start.elapsed().as_secs() < 5);
    }
}
