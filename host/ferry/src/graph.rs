//! The revision graph over all roots.
//!
//! Edges: a revision's `PARENTS` (same tree only), its `DEPENDS_ON` (any tree) and its
//! `BEFORE` (another tree: the named revision then needs this one, exactly as if it had
//! named it in `DEPENDS_ON`, so cycles, plan order, downgrade order and targets treat
//! both alike). A tree belongs to the root (`scripts/`, a plugin directory) holding its
//! root revision: a revision from another root may join it only when that root revision
//! declares `OPEN_TO_PLUGINS = true`. Several
//! roots and several heads per tree are allowed, as in Alembic; merges are revisions with
//! several parents. The graph keeps revisions in one deterministic topological order
//! (ties broken by tree, then id) and index maps, so every query is linear at worst.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, BinaryHeap, HashMap};
use std::fmt;
use std::path::PathBuf;

use crate::metadata::RevisionMeta;

/// A place in a script file, printed as `path:line`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Location {
    /// The script file.
    pub path: PathBuf,
    /// The 1-based line of the declaration (`REVISION`, `PARENTS`, ...).
    pub line: usize,
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.line)
    }
}

/// A fault in the revision graph; [`GraphError::Several`] holds every fault found.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    /// Two script files declare the same `REVISION`.
    #[error("{second}: revision {id} is declared twice: first in {first}")]
    DuplicateRevision {
        /// The revision id.
        id: String,
        /// The first declaration.
        first: Location,
        /// The second one.
        second: Location,
    },
    /// A revision's `PARENTS` names a revision no script declares.
    #[error("{at}: revision {id} has unknown parent {parent}{}", hint(.close))]
    UnknownParent {
        /// The revision.
        id: String,
        /// The unknown parent.
        parent: String,
        /// Its `PARENTS`.
        at: Location,
        /// Known revision ids close to `parent` ("did you mean"), at most five.
        close: Vec<String>,
    },
    /// A revision's `DEPENDS_ON` names a revision no script declares.
    #[error("{at}: revision {id} depends on unknown revision {dependency}{}", hint(.close))]
    UnknownDependency {
        /// The revision.
        id: String,
        /// The unknown dependency.
        dependency: String,
        /// Its `DEPENDS_ON`.
        at: Location,
        /// Known revision ids close to `dependency`, at most five.
        close: Vec<String>,
    },
    /// A revision's parent is in another tree (links across trees are `DEPENDS_ON`).
    #[error("{at}: revision {id} has parent {parent} in another tree ({parent_tree}); a parent must be in the same tree, use DEPENDS_ON for links across trees")]
    ParentInOtherTree {
        /// The revision.
        id: String,
        /// The parent.
        parent: String,
        /// The parent's tree.
        parent_tree: String,
        /// The revision's `PARENTS`.
        at: Location,
    },
    /// A revision's `BEFORE` names a revision no script declares.
    #[error("{at}: revision {id} asks to run before unknown revision {target}{}", hint(.close))]
    UnknownBefore {
        /// The revision.
        id: String,
        /// The unknown revision it names.
        target: String,
        /// Its `BEFORE`.
        at: Location,
        /// Known revision ids close to `target`, at most five.
        close: Vec<String>,
    },
    /// A revision's `BEFORE` names a revision of its own tree (`PARENTS` orders those).
    #[error("{at}: revision {id} asks to run before {target} of its own tree; order revisions of one tree with PARENTS (BEFORE is for another tree's revision)")]
    BeforeInSameTree {
        /// The revision.
        id: String,
        /// The revision of the same tree it names.
        target: String,
        /// Its `BEFORE`.
        at: Location,
    },
    /// A revision joins a tree whose root revision lives in another root.
    #[error("{0}")]
    TreeOwned(Box<TreeOwned>),
    /// `cycle` lists revisions each of which names the next as a parent or dependency
    /// (or is named by it in `BEFORE`);
    /// the first is repeated at the end.
    #[error("cycle in the revision graph: {} (in {})", .cycle.join(" -> "), join(.files))]
    Cycle {
        /// The revision ids of the cycle, the first repeated at the end.
        cycle: Vec<String>,
        /// Where each revision of the cycle is declared (its `REVISION`), sorted.
        files: Vec<Location>,
    },
    /// Several faults, each one of the other variants.
    #[error("{} faults in the revision graph:\n{}", .0.len(), .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Several(Vec<GraphError>),
}

impl GraphError {
    /// The single faults, flattening [`GraphError::Several`].
    pub fn faults(&self) -> Vec<&GraphError> {
        match self {
            Self::Several(all) => all.iter().flat_map(|e| e.faults()).collect(),
            one => vec![one],
        }
    }
}

fn hint(close: &[String]) -> String {
    if close.is_empty() {
        String::new()
    } else {
        format!(" (did you mean {}?)", close.join(", "))
    }
}

fn join(files: &[Location]) -> String {
    files
        .iter()
        .map(|f| f.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Edit distance between two strings (for "did you mean" hints).
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Up to five names among `names` close to `wanted` (by edit distance or containment).
pub(crate) fn close_names<'a>(wanted: &str, names: impl Iterator<Item = &'a str>) -> Vec<String> {
    let limit = (wanted.chars().count() / 3).max(1);
    let mut scored: Vec<(usize, &str)> = names
        .filter_map(|n| {
            let d = edit_distance(wanted, n);
            let related = n.contains(wanted) || wanted.contains(n);
            (d <= limit || related).then_some((d, n))
        })
        .collect();
    scored.sort();
    scored
        .into_iter()
        .take(5)
        .map(|(_, n)| n.to_string())
        .collect()
}

/// A revision that joins a tree owned by another root ([`GraphError::TreeOwned`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: revision {id} (root {root}) joins tree {tree}, which belongs to root {owner} (its root revision {owner_revision} is {owner_at}); a root owns its trees: give the revision a tree of its own (and DEPENDS_ON or BEFORE for the order), or the tree's root revision must declare `const OPEN_TO_PLUGINS = true;`", root = .root.display(), owner = .owner.display())]
pub struct TreeOwned {
    /// The revision that joins the tree.
    pub id: String,
    /// The tree.
    pub tree: String,
    /// Where the revision is declared (its `REVISION`).
    pub at: Location,
    /// The script root the revision is in.
    pub root: PathBuf,
    /// The script root that owns the tree (holds its root revision).
    pub owner: PathBuf,
    /// The tree's root revision.
    pub owner_revision: String,
    /// Where the root revision is declared.
    pub owner_at: Location,
}

/// The validated revision graph.
#[derive(Debug, Clone)]
pub struct Graph {
    /// Revisions in topological order; every index below refers to this order.
    revs: Vec<RevisionMeta>,
    index: HashMap<String, usize>,
    parents: Vec<Vec<usize>>,
    deps: Vec<Vec<usize>>,
    children: Vec<Vec<usize>>,
    dependents: Vec<Vec<usize>>,
    /// Tree -> its revisions in topological order.
    trees: BTreeMap<String, Vec<usize>>,
}

impl Graph {
    /// Builds and validates the graph, reporting every fault found (duplicates, unknown
    /// parents or dependencies, parents in another tree, cycles).
    pub fn build(revisions: Vec<RevisionMeta>) -> Result<Graph, GraphError> {
        let mut errors = Vec::new();
        let mut index: HashMap<String, usize> = HashMap::with_capacity(revisions.len());
        let mut revs: Vec<RevisionMeta> = Vec::with_capacity(revisions.len());
        for r in revisions {
            if let Some(&first) = index.get(&r.id) {
                let first: &RevisionMeta = &revs[first];
                errors.push(GraphError::DuplicateRevision {
                    id: r.id.clone(),
                    first: Location {
                        path: first.path.clone(),
                        line: first.revision_pos.line,
                    },
                    second: Location {
                        path: r.path.clone(),
                        line: r.revision_pos.line,
                    },
                });
                continue;
            }
            index.insert(r.id.clone(), revs.len());
            revs.push(r);
        }
        let n = revs.len();
        let mut parents = vec![Vec::new(); n];
        let mut deps = vec![Vec::new(); n];
        for (i, r) in revs.iter().enumerate() {
            let at_parents = Location {
                path: r.path.clone(),
                line: r.parents_pos.line,
            };
            for p in &r.parents {
                match index.get(p) {
                    Some(&j) if revs[j].tree != r.tree => {
                        errors.push(GraphError::ParentInOtherTree {
                            id: r.id.clone(),
                            parent: p.clone(),
                            parent_tree: revs[j].tree.clone(),
                            at: at_parents.clone(),
                        })
                    }
                    Some(&j) => parents[i].push(j),
                    None => errors.push(GraphError::UnknownParent {
                        id: r.id.clone(),
                        parent: p.clone(),
                        at: at_parents.clone(),
                        close: close_names(p, index.keys().map(String::as_str)),
                    }),
                }
            }
            for d in &r.depends_on {
                match index.get(d) {
                    Some(&j) => deps[i].push(j),
                    None => errors.push(GraphError::UnknownDependency {
                        id: r.id.clone(),
                        dependency: d.clone(),
                        at: Location {
                            path: r.path.clone(),
                            line: r.depends_on_pos.line,
                        },
                        close: close_names(d, index.keys().map(String::as_str)),
                    }),
                }
            }
        }

        for (i, r) in revs.iter().enumerate() {
            let at = Location {
                path: r.path.clone(),
                line: r.before_pos.line,
            };
            for b in &r.before {
                match index.get(b) {
                    Some(&j) if revs[j].tree == r.tree => {
                        errors.push(GraphError::BeforeInSameTree {
                            id: r.id.clone(),
                            target: b.clone(),
                            at: at.clone(),
                        })
                    }
                    // `b` now needs `r`: the same edge as `b` naming `r` in DEPENDS_ON.
                    Some(&j) => deps[j].push(i),
                    None => errors.push(GraphError::UnknownBefore {
                        id: r.id.clone(),
                        target: b.clone(),
                        at: at.clone(),
                        close: close_names(b, index.keys().map(String::as_str)),
                    }),
                }
            }
        }
        errors.extend(tree_ownership(&revs));

        // Kahn's algorithm; the heap yields the smallest (tree, id) among ready revisions.
        let mut successors = vec![Vec::new(); n];
        let mut indegree = vec![0usize; n];
        for i in 0..n {
            for &p in parents[i].iter().chain(&deps[i]) {
                successors[p].push(i);
                indegree[i] += 1;
            }
        }
        let key = |i: usize| Reverse((revs[i].tree.as_str(), revs[i].id.as_str(), i));
        let mut ready: BinaryHeap<_> = (0..n).filter(|&i| indegree[i] == 0).map(key).collect();
        let mut order = Vec::with_capacity(n);
        while let Some(Reverse((_, _, i))) = ready.pop() {
            order.push(i);
            for &s in &successors[i] {
                indegree[s] -= 1;
                if indegree[s] == 0 {
                    ready.push(key(s));
                }
            }
        }
        if order.len() < n {
            errors.extend(find_cycles(&revs, &parents, &deps, &indegree));
        }
        if !errors.is_empty() {
            return Err(if errors.len() == 1 {
                errors.remove(0)
            } else {
                GraphError::Several(errors)
            });
        }

        // Renumber everything in topological order.
        let mut position = vec![0usize; n];
        for (pos, &i) in order.iter().enumerate() {
            position[i] = pos;
        }
        let remap = |edges: Vec<Vec<usize>>| -> Vec<Vec<usize>> {
            let mut out = vec![Vec::new(); n];
            for (i, list) in edges.into_iter().enumerate() {
                let mut list: Vec<usize> = list.into_iter().map(|j| position[j]).collect();
                list.sort_unstable();
                list.dedup();
                out[position[i]] = list;
            }
            out
        };
        let parents = remap(parents);
        let deps = remap(deps);
        let mut slots: Vec<Option<RevisionMeta>> = revs.into_iter().map(Some).collect();
        let revs: Vec<RevisionMeta> = order.iter().filter_map(|&i| slots[i].take()).collect();
        let index = revs
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        let mut children = vec![Vec::new(); n];
        let mut dependents = vec![Vec::new(); n];
        let mut trees: BTreeMap<String, Vec<usize>> = BTreeMap::new();
        for i in 0..n {
            for &p in &parents[i] {
                children[p].push(i);
            }
            for &d in &deps[i] {
                dependents[d].push(i);
            }
            trees.entry(revs[i].tree.clone()).or_default().push(i);
        }
        Ok(Graph {
            revs,
            index,
            parents,
            deps,
            children,
            dependents,
            trees,
        })
    }

    #[cfg(any(test, feature = "internals"))]
    /// The number of revisions.
    pub fn len(&self) -> usize {
        self.revs.len()
    }

    #[cfg(any(test, feature = "internals"))]
    /// Whether the graph has no revision.
    pub fn is_empty(&self) -> bool {
        self.revs.is_empty()
    }

    /// The revision with this exact id.
    pub fn get(&self, id: &str) -> Option<&RevisionMeta> {
        self.index.get(id).map(|&i| &self.revs[i])
    }

    /// Whether a revision with this exact id exists.
    pub fn contains(&self, id: &str) -> bool {
        self.index.contains_key(id)
    }

    /// The position of a revision in [`Graph::revisions`].
    pub fn position(&self, id: &str) -> Option<usize> {
        self.index.get(id).copied()
    }

    /// Every revision in topological order (ties broken by tree, then id).
    pub fn revisions(&self) -> &[RevisionMeta] {
        &self.revs
    }

    /// The trees, sorted by name.
    pub fn trees(&self) -> Vec<&str> {
        self.trees.keys().map(String::as_str).collect()
    }

    /// Whether a tree of this name exists.
    pub fn has_tree(&self, tree: &str) -> bool {
        self.trees.contains_key(tree)
    }

    /// The revisions of one tree in topological order (empty for an unknown tree).
    pub fn tree_revisions(&self, tree: &str) -> Vec<&RevisionMeta> {
        self.tree_indices(tree)
            .iter()
            .map(|&i| &self.revs[i])
            .collect()
    }

    pub(crate) fn tree_indices(&self, tree: &str) -> &[usize] {
        self.trees.get(tree).map(Vec::as_slice).unwrap_or(&[])
    }

    /// The heads of one tree (revisions no other revision of the tree names as a parent),
    /// sorted by id.
    pub fn heads(&self, tree: &str) -> Vec<&str> {
        let mut heads: Vec<&str> = self
            .tree_indices(tree)
            .iter()
            .filter(|&&i| self.children[i].is_empty())
            .map(|&i| self.revs[i].id.as_str())
            .collect();
        heads.sort_unstable();
        heads
    }

    /// The heads of every tree, by tree then id.
    pub fn all_heads(&self) -> Vec<&str> {
        self.trees.keys().flat_map(|t| self.heads(t)).collect()
    }

    /// The ids that name `id` as a parent, in topological order.
    pub fn children(&self, id: &str) -> Vec<&str> {
        self.ids(self.index.get(id).map(|&i| self.children[i].as_slice()))
    }

    /// The revisions whose `BEFORE` names `id` (in topological order).
    pub fn asked_before(&self, id: &str) -> Vec<&str> {
        self.revs
            .iter()
            .filter(|r| r.before.iter().any(|b| b == id))
            .map(|r| r.id.as_str())
            .collect()
    }

    /// The parents of `id` (in topological order).
    pub fn parents(&self, id: &str) -> Vec<&str> {
        self.ids(self.index.get(id).map(|&i| self.parents[i].as_slice()))
    }

    fn ids(&self, indices: Option<&[usize]>) -> Vec<&str> {
        indices
            .unwrap_or(&[])
            .iter()
            .map(|&i| self.revs[i].id.as_str())
            .collect()
    }

    /// Every revision `id` needs, transitively over parents and dependencies, excluding
    /// `id` itself (empty for an unknown id).
    pub fn ancestors(&self, id: &str) -> BTreeSet<&str> {
        let mut set = self.ancestors_inclusive([id]);
        set.remove(id);
        set
    }

    /// Every revision that needs `id`, transitively over children and dependents,
    /// excluding `id` itself (empty for an unknown id).
    pub fn descendants(&self, id: &str) -> BTreeSet<&str> {
        let mut set = self.descendants_inclusive([id]);
        set.remove(id);
        set
    }

    /// The given revisions and all their ancestors (unknown ids are skipped).
    pub fn ancestors_inclusive<'s>(
        &self,
        ids: impl IntoIterator<Item = &'s str>,
    ) -> BTreeSet<&str> {
        let starts = ids.into_iter().filter_map(|id| self.index.get(id).copied());
        self.to_ids(self.closure(starts, true))
    }

    /// The given revisions and all their descendants (unknown ids are skipped).
    pub fn descendants_inclusive<'s>(
        &self,
        ids: impl IntoIterator<Item = &'s str>,
    ) -> BTreeSet<&str> {
        let starts = ids.into_iter().filter_map(|id| self.index.get(id).copied());
        self.to_ids(self.closure(starts, false))
    }

    fn to_ids(&self, marks: Vec<bool>) -> BTreeSet<&str> {
        marks
            .iter()
            .enumerate()
            .filter(|(_, &m)| m)
            .map(|(i, _)| self.revs[i].id.as_str())
            .collect()
    }

    /// Marks the starts and everything reachable upwards (parents, dependencies) or
    /// downwards (children, dependents).
    pub(crate) fn closure(&self, starts: impl IntoIterator<Item = usize>, up: bool) -> Vec<bool> {
        let mut seen = vec![false; self.revs.len()];
        let mut stack: Vec<usize> = Vec::new();
        for s in starts {
            if !seen[s] {
                seen[s] = true;
                stack.push(s);
            }
        }
        while let Some(i) = stack.pop() {
            let (a, b) = if up {
                (&self.parents[i], &self.deps[i])
            } else {
                (&self.children[i], &self.dependents[i])
            };
            for &j in a.iter().chain(b) {
                if !seen[j] {
                    seen[j] = true;
                    stack.push(j);
                }
            }
        }
        seen
    }

    /// The known ids among `ids`, in topological order (unknown ids are dropped).
    pub fn topo_sort<S: AsRef<str>>(&self, ids: impl IntoIterator<Item = S>) -> Vec<&str> {
        let mut positions: Vec<usize> = ids
            .into_iter()
            .filter_map(|id| self.index.get(id.as_ref()).copied())
            .collect();
        positions.sort_unstable();
        positions.dedup();
        positions
            .into_iter()
            .map(|i| self.revs[i].id.as_str())
            .collect()
    }
}

/// Revisions that join a tree owned by another root. A tree's owner is the root of its
/// first root revision (`PARENTS = []`) in discovery order, which walks the roots in
/// the order given (`scripts/` before `plugins/*` by default).
fn tree_ownership(revs: &[RevisionMeta]) -> Vec<GraphError> {
    let mut owners: HashMap<&str, &RevisionMeta> = HashMap::new();
    for r in revs.iter().filter(|r| r.parents.is_empty()) {
        owners.entry(r.tree.as_str()).or_insert(r);
    }
    let open = |tree: &str, owner: &RevisionMeta| {
        revs.iter().any(|r| {
            r.tree == tree && r.parents.is_empty() && r.root == owner.root && r.open_to_plugins
        })
    };
    let mut errors = Vec::new();
    for r in revs {
        let Some(owner) = owners.get(r.tree.as_str()) else {
            continue; // a tree without a root revision: its cycle is reported instead
        };
        if r.root == owner.root || open(&r.tree, owner) {
            continue;
        }
        errors.push(GraphError::TreeOwned(Box::new(TreeOwned {
            id: r.id.clone(),
            tree: r.tree.clone(),
            at: Location {
                path: r.path.clone(),
                line: r.revision_pos.line,
            },
            root: r.root.clone(),
            owner: owner.root.clone(),
            owner_revision: owner.id.clone(),
            owner_at: Location {
                path: owner.path.clone(),
                line: owner.revision_pos.line,
            },
        })));
    }
    errors
}

/// Finds the cycles among the revisions Kahn's algorithm could not order (those with a
/// remaining indegree). Each such revision has a remaining parent or dependency, so
/// walking upwards from it always ends in a cycle.
fn find_cycles(
    revs: &[RevisionMeta],
    parents: &[Vec<usize>],
    deps: &[Vec<usize>],
    indegree: &[usize],
) -> Vec<GraphError> {
    let mut remaining: Vec<usize> = (0..revs.len()).filter(|&i| indegree[i] > 0).collect();
    remaining.sort_by(|&a, &b| revs[a].id.cmp(&revs[b].id));
    let mut visited = vec![false; revs.len()];
    let mut errors = Vec::new();
    for start in remaining {
        if visited[start] {
            continue;
        }
        let mut path = Vec::new();
        let mut on_path = HashMap::new();
        let mut i = start;
        loop {
            if let Some(&at) = on_path.get(&i) {
                let cycle_idx = &path[at..];
                let mut cycle: Vec<String> = cycle_idx
                    .iter()
                    .map(|&c: &usize| revs[c].id.clone())
                    .collect();
                cycle.push(revs[i].id.clone());
                let mut files: Vec<Location> = cycle_idx
                    .iter()
                    .map(|&c| Location {
                        path: revs[c].path.clone(),
                        line: revs[c].revision_pos.line,
                    })
                    .collect();
                files.sort();
                errors.push(GraphError::Cycle { cycle, files });
                break;
            }
            if visited[i] {
                break; // joins a walk already reported
            }
            visited[i] = true;
            on_path.insert(i, path.len());
            path.push(i);
            let next = parents[i]
                .iter()
                .chain(&deps[i])
                .copied()
                .filter(|&j| indegree[j] > 0)
                .min_by(|&a, &b| revs[a].id.cmp(&revs[b].id));
            match next {
                Some(j) => i = j,
                None => break,
            }
        }
    }
    errors
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::metadata::Position;

    /// A revision for tests: `parents` and `deps` as comma-separated ids.
    pub(crate) fn meta(id: &str, tree: &str, parents: &[&str], deps: &[&str]) -> RevisionMeta {
        RevisionMeta {
            id: id.into(),
            tree: tree.into(),
            parents: parents.iter().map(|s| s.to_string()).collect(),
            version: "1".into(),
            depends_on: deps.iter().map(|s| s.to_string()).collect(),
            message: format!("revision {id}"),
            hooks: vec![],
            online_safe: false,
            expected_digest: None,
            alembic: vec![],
            has_downgrade: true,
            has_upgrade: true,
            path: PathBuf::from(format!("{tree}/{id}.rhai")),
            root: PathBuf::from(tree),
            checksum: String::new(),
            script: crate::analysis::ScriptFile::from_source(
                &PathBuf::from(format!("{tree}/{id}.rhai")),
                "fn upgrade(db) {}\nfn downgrade(db) {}",
            )
            .expect("compiles"),
            defaults: Default::default(),
            revision_pos: Position { line: 1, column: 1 },
            parents_pos: Position { line: 3, column: 1 },
            depends_on_pos: Position { line: 5, column: 1 },
            before: vec![],
            before_pos: Position { line: 6, column: 1 },
            open_to_plugins: false,
            statement_timeout_seconds: None,
            statement_timeout_pos: Position { line: 1, column: 1 },
        }
    }

    /// a-1 -> a-2 -> {a-3, a-4} -> a-5 (merge); b-1 -> b-2 (depends on a-2).
    pub(crate) fn sample() -> Graph {
        Graph::build(vec![
            meta("a-5", "a", &["a-3", "a-4"], &[]),
            meta("b-2", "b", &["b-1"], &["a-2"]),
            meta("a-1", "a", &[], &[]),
            meta("a-2", "a", &["a-1"], &[]),
            meta("a-3", "a", &["a-2"], &[]),
            meta("a-4", "a", &["a-2"], &[]),
            meta("b-1", "b", &[], &[]),
        ])
        .expect("valid graph")
    }

    #[test]
    fn topological_order_is_deterministic() {
        let g = sample();
        let ids: Vec<_> = g.revisions().iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["a-1", "a-2", "a-3", "a-4", "a-5", "b-1", "b-2"]);
        assert_eq!(g.trees(), ["a", "b"]);
        assert_eq!(g.heads("a"), ["a-5"]);
        assert_eq!(g.all_heads(), ["a-5", "b-2"]);
        assert_eq!(g.children("a-2"), ["a-3", "a-4"]);
        assert_eq!(g.parents("a-5"), ["a-3", "a-4"]);
        let tree_b: Vec<_> = g
            .tree_revisions("b")
            .iter()
            .map(|r| r.id.as_str())
            .collect();
        assert_eq!(tree_b, ["b-1", "b-2"]);
        assert_eq!(g.get("b-2").map(|r| r.tree.as_str()), Some("b"));
    }

    #[test]
    fn ancestors_and_descendants_follow_dependencies() {
        let g = sample();
        let anc: Vec<_> = g.ancestors("b-2").into_iter().collect();
        assert_eq!(anc, ["a-1", "a-2", "b-1"]);
        let desc: Vec<_> = g.descendants("a-2").into_iter().collect();
        assert_eq!(desc, ["a-3", "a-4", "a-5", "b-2"]);
        assert!(g.ancestors("nope").is_empty());
        assert_eq!(
            g.topo_sort(["b-2", "a-1", "x", "a-5"]),
            ["a-1", "a-5", "b-2"]
        );
    }

    #[test]
    fn several_heads_and_roots_are_allowed() {
        let g = Graph::build(vec![
            meta("a-1", "a", &[], &[]),
            meta("a-2", "a", &["a-1"], &[]),
            meta("a-3", "a", &["a-1"], &[]),
            meta("a-0", "a", &[], &[]),
        ])
        .expect("valid");
        assert_eq!(g.heads("a"), ["a-0", "a-2", "a-3"]);
    }

    #[test]
    fn reports_every_fault() {
        let err = Graph::build(vec![
            meta("a-1", "a", &[], &[]),
            meta("a-1", "a", &[], &[]),
            meta("a-2", "a", &["a-l"], &["zz-9"]),
            meta("b-1", "b", &["a-1"], &[]),
        ])
        .unwrap_err();
        let faults = err.faults();
        assert_eq!(faults.len(), 4, "{err}");
        let text = err.to_string();
        assert!(text.contains("revision a-1 is declared twice"), "{text}");
        assert!(
            text.contains(
                "a/a-2.rhai:3: revision a-2 has unknown parent a-l (did you mean a-1, a-2?)"
            ),
            "{text}"
        );
        assert!(
            text.contains("a/a-2.rhai:5: revision a-2 depends on unknown revision zz-9"),
            "{text}"
        );
        assert!(text.contains("parent a-1 in another tree (a)"), "{text}");
    }

    #[test]
    fn cycles_are_printed() {
        let err = Graph::build(vec![
            meta("a-1", "a", &["a-3"], &[]),
            meta("a-2", "a", &["a-1"], &[]),
            meta("a-3", "a", &["a-2"], &[]),
            meta("a-4", "a", &["a-3"], &[]),
            meta("b-1", "b", &[], &["b-1"]),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("cycle in the revision graph: a-1 -> a-3 -> a-2 -> a-1"),
            "{text}"
        );
        assert!(text.contains("b-1 -> b-1"), "{text}");
        assert_eq!(err.faults().len(), 2, "{text}");
    }

    #[test]
    fn ten_thousand_revisions_build_fast() {
        let mut revs = Vec::new();
        for t in 0..10 {
            for i in 0..1000 {
                let id = format!("t{t}-{i}");
                let parent = format!("t{t}-{}", i.max(1) - 1);
                let parents: Vec<&str> = if i == 0 {
                    vec![]
                } else {
                    vec![parent.as_str()]
                };
                let dep = format!("t{}-{i}", t.max(1) - 1);
                let deps: Vec<&str> = if t == 0 { vec![] } else { vec![dep.as_str()] };
                revs.push(meta(&id, &format!("t{t}"), &parents, &deps));
            }
        }
        let start = std::time::Instant::now();
        let g = Graph::build(revs).expect("valid");
        assert_eq!(g.len(), 10_000);
        assert_eq!(g.ancestors("t9-999").len(), 9_999);
        // Generous for debug builds; release is far below a second.
        assert!(start.elapsed().as_secs() < 5);
    }

    fn before(mut m: RevisionMeta, targets: &[&str]) -> RevisionMeta {
        m.before = targets.iter().map(|s| s.to_string()).collect();
        m
    }

    #[test]
    fn before_orders_like_a_dependency_of_the_named_revision() {
        // "z" sorts after "c": without BEFORE, c-1 would come first.
        let g = Graph::build(vec![
            meta("c-1", "c", &[], &[]),
            before(meta("z-1", "z", &[], &[]), &["c-1"]),
        ])
        .expect("valid");
        let ids: Vec<_> = g.revisions().iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["z-1", "c-1"]);
        assert_eq!(g.ancestors("c-1").into_iter().collect::<Vec<_>>(), ["z-1"]);
        assert_eq!(
            g.descendants("z-1").into_iter().collect::<Vec<_>>(),
            ["c-1"]
        );
        assert_eq!(g.asked_before("c-1"), ["z-1"]);
    }

    #[test]
    fn before_faults_are_reported() {
        let err = Graph::build(vec![
            meta("c-1", "c", &[], &[]),
            meta("c-2", "c", &["c-1"], &[]),
            before(meta("z-1", "z", &[], &["c-1"]), &["c-1"]),
            before(meta("z-2", "z", &["z-1"], &[]), &["c-3", "z-1"]),
        ])
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("cycle in the revision graph: c-1 -> z-1 -> c-1"),
            "{text}"
        );
        assert!(
            text.contains("z/z-2.rhai:6: revision z-2 asks to run before unknown revision c-3 (did you mean c-1, c-2?)"),
            "{text}"
        );
        assert!(
            text.contains("z-2 asks to run before z-1 of its own tree"),
            "{text}"
        );
    }

    #[test]
    fn a_tree_belongs_to_the_root_of_its_root_revision() {
        let mut plugin = meta("c-2", "c", &["c-1"], &[]);
        plugin.root = PathBuf::from("plugins/p");
        let err = Graph::build(vec![meta("c-1", "c", &[], &[]), plugin.clone()]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("c/c-2.rhai:1: revision c-2 (root plugins/p) joins tree c, which belongs to root c (its root revision c-1 is c/c-1.rhai:1)"),
            "{text}"
        );
        let mut open = meta("c-1", "c", &[], &[]);
        open.open_to_plugins = true;
        Graph::build(vec![open, plugin]).expect("an open tree takes revisions of other roots");
    }
}
