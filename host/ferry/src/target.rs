//! Resolving targets (`heads`, `TREE@head`, `base`, partial ids, `+N`, `-N`, ...).
//!
//! The vocabulary, as in Alembic, with `applied` the revisions the repository records:
//!
//! - `heads`: every head of every tree ([`Target::Heads`]).
//! - `head`: the single head of the graph; an error when there are several.
//! - `TREE@head`: the single head of TREE; an error naming the heads when there are several.
//! - `base`: nothing applied ([`Target::Base`]; a downgrade target).
//! - `TREE@base`: nothing of TREE applied, nor anything of any tree that depends on it
//!   ([`Target::TreeBase`]).
//! - a full id, or a prefix of exactly one id.
//! - `+N`: the first N pending revisions in the graph's global topological order. That
//!   prefix is closed under ancestors, so upgrading to it applies exactly N revisions.
//! - `-N`: the last N applied revisions in the global topological order, to be undone
//!   ([`Target::Undo`]); any applied revision needing them comes later in that order,
//!   so it is among them.
//! - `TREE@+N`: from the tree's current head (its applied revision without applied
//!   children in the tree; its roots when nothing of it is applied), N steps forward
//!   along children. An error when a step meets a branch (several children / roots).
//! - `TREE@-N`: from the tree's current head, N steps back along parents; reaching
//!   past the tree's root in the last step means `TREE@base`. An error at a merge.

use std::collections::BTreeSet;
use std::fmt;

use crate::graph::{close_names, Graph};

/// Where to take the repository.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// Every head of every tree applied.
    Heads,
    /// Nothing applied.
    Base,
    /// Nothing of this tree applied, nor anything (of any tree) that depends on it.
    TreeBase(String),
    /// Be at these revisions: upgrading applies them and all their ancestors;
    /// downgrading undoes every applied revision that descends from them.
    Revisions(BTreeSet<String>),
    /// Undo exactly these applied revisions (and anything applied needing them);
    /// produced by `-N`.
    Undo(BTreeSet<String>),
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = |s: &BTreeSet<String>| s.iter().cloned().collect::<Vec<_>>().join(", ");
        match self {
            Target::Heads => write!(f, "heads"),
            Target::Base => write!(f, "base"),
            Target::TreeBase(tree) => write!(f, "{tree}@base"),
            Target::Revisions(ids) => write!(f, "{}", list(ids)),
            Target::Undo(ids) => write!(f, "undo {}", list(ids)),
        }
    }
}

/// Why a target could not be resolved. Messages list the candidates.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TargetError {
    /// The text is not a target at all (the text).
    #[error("cannot read target `{0}`: expected heads, head, base, TREE@head, TREE@base, a revision id, +N, -N, TREE@+N or TREE@-N")]
    Invalid(String),
    /// No revision has this id, nor an id starting with it.
    #[error("unknown revision {id}{}", hint(.close))]
    UnknownRevision {
        /// The id as written.
        id: String,
        /// Known revision ids close to it ("did you mean"), at most five.
        close: Vec<String>,
    },
    /// A prefix matches several revision ids.
    #[error("revision prefix {prefix} is ambiguous: it matches {}", .candidates.join(", "))]
    AmbiguousId {
        /// The prefix.
        prefix: String,
        /// The ids it matches.
        candidates: Vec<String>,
    },
    /// `TREE@...` names a tree that no script defines.
    #[error("unknown tree {tree} (trees: {})", .trees.join(", "))]
    UnknownTree {
        /// The tree as written.
        tree: String,
        /// The trees the scripts define.
        trees: Vec<String>,
    },
    /// `TREE@head` for a tree with several heads.
    #[error("{tree}@head is ambiguous: the tree has {} heads: {}", .heads.len(), .heads.join(", "))]
    AmbiguousTreeHead {
        /// The tree.
        tree: String,
        /// Its heads.
        heads: Vec<String>,
    },
    /// `head` while there are several heads (several trees, or a tree that branched).
    #[error("head is ambiguous: there are {} heads: {}; use heads or TREE@head", .heads.len(), .heads.join(", "))]
    AmbiguousHead {
        /// Every head.
        heads: Vec<String>,
    },
    /// `TREE@+N` or `TREE@-N` while the tree has several applied heads to count from.
    #[error("{target} is ambiguous: tree {tree} has {} applied heads: {}; name a revision instead", .heads.len(), .heads.join(", "))]
    AmbiguousCurrent {
        /// The target as written.
        target: String,
        /// The tree.
        tree: String,
        /// Its applied heads.
        heads: Vec<String>,
    },
    /// A step of `TREE@+N` or `TREE@-N` reaches a branch or a merge: more than one
    /// revision could come next.
    #[error("{target} is ambiguous: {from} has {} {what}: {}; name a revision instead", .candidates.len(), .candidates.join(", "))]
    AmbiguousStep {
        /// The target as written.
        target: String,
        /// The revision (or `tree NAME`) the step starts from.
        from: String,
        /// `next revisions` or `parents`: what `candidates` are.
        what: &'static str,
        /// The revisions that could come next.
        candidates: Vec<String>,
    },
    /// `+N`, `-N`, `TREE@+N` or `TREE@-N` counts past the last pending or the first
    /// applied revision.
    #[error("{target} goes beyond the graph: only {available} {what}")]
    NotEnough {
        /// The target as written.
        target: String,
        /// How many revisions there are to count.
        available: usize,
        /// What was counted (`revision(s) pending`, `revision(s) applied`, ...).
        what: &'static str,
    },
}

fn hint(close: &[String]) -> String {
    if close.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", close.join(", "))
    }
}

fn one(id: &str) -> Target {
    Target::Revisions(BTreeSet::from([id.to_string()]))
}

/// Parses `+N` / `-N` (N ≥ 1) into (forward, N).
fn relative(text: &str) -> Option<(bool, usize)> {
    let (forward, digits) = match text.as_bytes().first()? {
        b'+' => (true, &text[1..]),
        b'-' => (false, &text[1..]),
        _ => return None,
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: usize = digits.parse().ok()?;
    (n > 0).then_some((forward, n))
}

/// Resolves one target string against the graph and the applied revisions.
pub fn resolve_target(
    graph: &Graph,
    applied: &BTreeSet<String>,
    text: &str,
) -> Result<Target, TargetError> {
    let text = text.trim();
    match text {
        "heads" => return Ok(Target::Heads),
        "base" => return Ok(Target::Base),
        "head" => {
            let heads = graph.all_heads();
            return match heads.as_slice() {
                [h] => Ok(one(h)),
                _ => Err(TargetError::AmbiguousHead {
                    heads: heads.iter().map(|s| s.to_string()).collect(),
                }),
            };
        }
        _ => {}
    }
    if let Some((forward, n)) = relative(text) {
        return global_relative(graph, applied, text, forward, n);
    }
    if let Some((tree, rest)) = text.split_once('@') {
        if !graph.has_tree(tree) {
            return Err(TargetError::UnknownTree {
                tree: tree.to_string(),
                trees: graph.trees().iter().map(|s| s.to_string()).collect(),
            });
        }
        return match rest {
            "head" => {
                let dormant = crate::lineage::dormant(graph, applied);
                let mut heads = graph.heads(tree);
                // A tree holding a lineage the repository is not on (crate::lineage):
                // its head is the one of the live lineage.
                if heads.iter().any(|h| !dormant.contains(h)) {
                    heads.retain(|h| !dormant.contains(h));
                }
                match heads.as_slice() {
                    [h] => Ok(one(h)),
                    _ => Err(TargetError::AmbiguousTreeHead {
                        tree: tree.to_string(),
                        heads: heads.iter().map(|s| s.to_string()).collect(),
                    }),
                }
            }
            "base" => Ok(Target::TreeBase(tree.to_string())),
            _ => match relative(rest) {
                Some((forward, n)) => tree_relative(graph, applied, text, tree, forward, n),
                None => Err(TargetError::Invalid(text.to_string())),
            },
        };
    }
    if text.is_empty() || text.starts_with(['+', '-']) || text.chars().any(char::is_whitespace) {
        return Err(TargetError::Invalid(text.to_string()));
    }
    resolve_id(graph, text).map(one)
}

/// Resolves a full id or a unique prefix of one to the full id.
pub fn resolve_id<'g>(graph: &'g Graph, text: &str) -> Result<&'g str, TargetError> {
    if let Some(r) = graph.get(text) {
        return Ok(r.id.as_str());
    }
    let mut candidates: Vec<&str> = graph
        .revisions()
        .iter()
        .map(|r| r.id.as_str())
        .filter(|id| id.starts_with(text))
        .collect();
    candidates.sort_unstable();
    match candidates.as_slice() {
        [id] => Ok(id),
        [] => Err(TargetError::UnknownRevision {
            id: text.to_string(),
            close: close_names(text, graph.revisions().iter().map(|r| r.id.as_str())),
        }),
        _ => Err(TargetError::AmbiguousId {
            prefix: text.to_string(),
            candidates: candidates.iter().map(|s| s.to_string()).collect(),
        }),
    }
}

fn global_relative(
    graph: &Graph,
    applied: &BTreeSet<String>,
    text: &str,
    forward: bool,
    n: usize,
) -> Result<Target, TargetError> {
    let revs = graph.revisions().iter().map(|r| r.id.as_str());
    let chosen: Vec<&str> = if forward {
        revs.filter(|id| !applied.contains(*id)).take(n).collect()
    } else {
        let known: Vec<&str> = revs.filter(|id| applied.contains(*id)).collect();
        known[known.len().saturating_sub(n)..].to_vec()
    };
    if chosen.len() < n {
        return Err(TargetError::NotEnough {
            target: text.to_string(),
            available: chosen.len(),
            what: if forward {
                "revision(s) pending"
            } else {
                "revision(s) applied"
            },
        });
    }
    let set = chosen.into_iter().map(String::from).collect();
    Ok(if forward {
        Target::Revisions(set)
    } else {
        Target::Undo(set)
    })
}

/// The tree's applied revisions that no applied revision of the tree names as a parent.
pub fn current_heads<'g>(graph: &'g Graph, applied: &BTreeSet<String>, tree: &str) -> Vec<&'g str> {
    let mut heads: Vec<&str> = graph
        .tree_revisions(tree)
        .into_iter()
        .map(|r| r.id.as_str())
        .filter(|id| applied.contains(*id))
        .filter(|id| !graph.children(id).iter().any(|c| applied.contains(*c)))
        .collect();
    heads.sort_unstable();
    heads
}

fn tree_relative(
    graph: &Graph,
    applied: &BTreeSet<String>,
    text: &str,
    tree: &str,
    forward: bool,
    n: usize,
) -> Result<Target, TargetError> {
    let heads = current_heads(graph, applied, tree);
    let ambiguous_current = || TargetError::AmbiguousCurrent {
        target: text.to_string(),
        tree: tree.to_string(),
        heads: heads.iter().map(|s| s.to_string()).collect(),
    };
    let not_enough = |available: usize, what| TargetError::NotEnough {
        target: text.to_string(),
        available,
        what,
    };
    if heads.len() > 1 {
        return Err(ambiguous_current());
    }
    let step = |from: &str, candidates: Vec<&str>, what| match candidates.as_slice() {
        [one] => Ok(Some(one.to_string())),
        [] => Ok(None),
        _ => Err(TargetError::AmbiguousStep {
            target: text.to_string(),
            from: from.to_string(),
            what,
            candidates: candidates.iter().map(|s| s.to_string()).collect(),
        }),
    };
    if forward {
        let mut at: Option<String> = heads.first().map(|s| s.to_string());
        for taken in 0..n {
            let (from, next) = match &at {
                Some(id) => (id.clone(), graph.children(id)),
                None => {
                    let roots = graph
                        .tree_revisions(tree)
                        .into_iter()
                        .filter(|r| r.parents.is_empty())
                        .map(|r| r.id.as_str())
                        .collect();
                    (format!("tree {tree}"), roots)
                }
            };
            match step(&from, next, "next revisions")? {
                Some(id) => at = Some(id),
                None => return Err(not_enough(taken, "revision(s) ahead in the tree")),
            }
        }
        Ok(at.map(|id| one(&id)).unwrap_or(Target::Heads))
    } else {
        let Some(head) = heads.first() else {
            return Err(not_enough(0, "revision(s) of the tree applied"));
        };
        let mut at = head.to_string();
        for taken in 0..n {
            match step(&at, graph.parents(&at), "parents")? {
                Some(id) => at = id,
                None if taken + 1 == n => return Ok(Target::TreeBase(tree.to_string())),
                None => return Err(not_enough(taken + 1, "revision(s) of the tree to undo")),
            }
        }
        Ok(one(&at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::tests::{meta, sample};

    fn set(ids: &[&str]) -> BTreeSet<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    fn resolve(applied: &[&str], text: &str) -> Result<Target, TargetError> {
        resolve_target(&sample(), &set(applied), text)
    }

    #[test]
    fn names() {
        assert_eq!(resolve(&[], "heads"), Ok(Target::Heads));
        assert_eq!(resolve(&[], "base"), Ok(Target::Base));
        assert_eq!(resolve(&[], "a@base"), Ok(Target::TreeBase("a".into())));
        assert_eq!(resolve(&[], "a@head"), Ok(Target::Revisions(set(&["a-5"]))));
        assert_eq!(resolve(&[], "b-1"), Ok(Target::Revisions(set(&["b-1"]))));
        assert_eq!(
            resolve(&[], "b-"),
            Err(TargetError::AmbiguousId {
                prefix: "b-".into(),
                candidates: vec!["b-1".into(), "b-2".into()],
            })
        );
        assert_eq!(resolve(&[], "a-5").map(|t| t.to_string()), Ok("a-5".into()));
        let err = resolve(&[], "a-9").unwrap_err().to_string();
        assert!(
            err.starts_with("unknown revision a-9 (did you mean a-1"),
            "{err}"
        );
        let err = resolve(&[], "c@head").unwrap_err().to_string();
        assert_eq!(err, "unknown tree c (trees: a, b)");
        let err = resolve(&[], "head").unwrap_err().to_string();
        assert!(err.contains("there are 2 heads: a-5, b-2"), "{err}");
        assert!(matches!(
            resolve(&[], "a@sideways"),
            Err(TargetError::Invalid(_))
        ));
        assert!(matches!(
            resolve(&[], "+0"),
            Err(TargetError::Invalid(_)) | Err(TargetError::UnknownRevision { .. })
        ));
    }

    #[test]
    fn tree_head_with_two_heads_is_ambiguous() {
        let g = Graph::build(vec![
            meta("x-1", "x", &[], &[]),
            meta("x-2", "x", &["x-1"], &[]),
            meta("x-3", "x", &["x-1"], &[]),
        ])
        .expect("valid");
        let err = resolve_target(&g, &set(&[]), "x@head").unwrap_err();
        assert_eq!(
            err.to_string(),
            "x@head is ambiguous: the tree has 2 heads: x-2, x-3"
        );
        let err = resolve_target(&g, &set(&["x-1"]), "x@+1").unwrap_err();
        assert!(
            err.to_string()
                .contains("x-1 has 2 next revisions: x-2, x-3"),
            "{err}"
        );
    }

    #[test]
    fn global_relative() {
        assert_eq!(
            resolve(&["a-1"], "+2"),
            Ok(Target::Revisions(set(&["a-2", "a-3"])))
        );
        assert_eq!(
            resolve(&["a-1", "a-2", "b-1"], "-2"),
            Ok(Target::Undo(set(&["a-2", "b-1"])))
        );
        let err = resolve(&["a-1"], "-2").unwrap_err().to_string();
        assert_eq!(err, "-2 goes beyond the graph: only 1 revision(s) applied");
        assert!(resolve(&[], "+8").is_err());
    }

    #[test]
    fn tree_relative() {
        assert_eq!(resolve(&[], "a@+2"), Ok(Target::Revisions(set(&["a-2"]))));
        assert_eq!(
            resolve(&["a-1"], "a@+1"),
            Ok(Target::Revisions(set(&["a-2"])))
        );
        let err = resolve(&["a-1"], "a@+2").unwrap_err().to_string();
        assert!(err.contains("a-2 has 2 next revisions: a-3, a-4"), "{err}");
        assert_eq!(
            resolve(&["a-1", "a-2"], "a@-1"),
            Ok(Target::Revisions(set(&["a-1"])))
        );
        assert_eq!(
            resolve(&["a-1", "a-2"], "a@-2"),
            Ok(Target::TreeBase("a".into()))
        );
        assert!(resolve(&["a-1", "a-2"], "a@-3").is_err());
        let err = resolve(&["a-1", "a-2", "a-3", "a-4"], "a@-1")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("tree a has 2 applied heads: a-3, a-4"),
            "{err}"
        );
        let err = resolve(&["a-1", "a-2", "a-3", "a-4", "a-5"], "a@-1")
            .unwrap_err()
            .to_string();
        assert!(err.contains("a-5 has 2 parents: a-3, a-4"), "{err}");
        assert_eq!(
            current_heads(&sample(), &set(&["a-1", "a-2", "b-1"]), "a"),
            ["a-2"]
        );
    }
}
