//! A text drawing of the revision graph, one tree at a time, newest first, in the
//! style of `git log --graph`: `*` is a revision, `|` a lane, `\` a lane that opens at
//! a merge (one lane per parent), `/` two lanes that join at a branch point.
//!
//! ```text
//! gamma
//! *   gamma-merge  3.0.0  Merge the branches  (head)
//! |\
//! | * gamma-right  2.0.0-right  Create gamma_c (right branch)
//! * | gamma-left  2.0.0-left  Create gamma_b (left branch)
//! |/
//! * gamma-1  1.0.0  Create gamma_a
//! ```

use crate::graph::Graph;
use std::collections::BTreeSet;

fn lanes_line(n: usize, mark: impl Fn(usize) -> char) -> String {
    (0..n)
        .map(|i| mark(i).to_string())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Draws one tree; `applied` marks revisions applied in a repository (may be empty).
pub fn draw_tree(graph: &Graph, tree: &str, applied: &BTreeSet<String>) -> String {
    let mut out = format!("{tree}\n");
    let heads: BTreeSet<&str> = graph.heads(tree).into_iter().collect();
    let mut lanes: Vec<String> = Vec::new();
    for rev in graph.tree_revisions(tree).into_iter().rev() {
        let cols: Vec<usize> = lanes
            .iter()
            .enumerate()
            .filter(|(_, l)| **l == rev.id)
            .map(|(i, _)| i)
            .collect();
        let col = match cols.first() {
            Some(&c) => {
                if cols.len() > 1 {
                    // Branch point: the other lanes that wait for this revision join it.
                    let joined: BTreeSet<usize> = cols[1..].iter().copied().collect();
                    out.push_str(&lanes_line(lanes.len(), |i| {
                        if joined.contains(&i) {
                            '/'
                        } else {
                            '|'
                        }
                    }));
                    out.push('\n');
                    let mut i = 0;
                    lanes.retain(|_| {
                        let keep = !joined.contains(&i);
                        i += 1;
                        keep
                    });
                }
                c
            }
            None => {
                lanes.push(rev.id.clone());
                lanes.len() - 1
            }
        };
        let mut label = format!("{}  {}  {}", rev.id, rev.version, rev.message);
        let mut notes = Vec::new();
        if heads.contains(rev.id.as_str()) {
            notes.push("head".to_string());
        }
        if applied.contains(&rev.id) {
            notes.push("applied".to_string());
        }
        if !rev.depends_on.is_empty() {
            notes.push(format!("needs {}", rev.depends_on.join(", ")));
        }
        if !rev.before.is_empty() {
            notes.push(format!("before {}", rev.before.join(", ")));
        }
        let runs_after = graph.asked_before(&rev.id);
        if !runs_after.is_empty() {
            notes.push(format!("after {} (their BEFORE)", runs_after.join(", ")));
        }
        if !notes.is_empty() {
            label.push_str(&format!("  ({})", notes.join("; ")));
        }
        let parents: Vec<String> = graph
            .parents(&rev.id)
            .into_iter()
            .filter(|p| graph.get(p).is_some_and(|m| m.tree == tree))
            .map(String::from)
            .collect();
        let row = lanes_line(lanes.len(), |i| if i == col { '*' } else { '|' });
        let pad = if parents.len() > 1 { "   " } else { " " };
        out.push_str(&format!("{row}{pad}{label}\n"));
        match parents.split_first() {
            None => {
                lanes.remove(col);
            }
            Some((first, rest)) => {
                lanes[col] = first.clone();
                for (k, p) in rest.iter().enumerate() {
                    lanes.insert(col + 1 + k, p.clone());
                }
                if !rest.is_empty() {
                    let opened = col + 1..=col + rest.len();
                    out.push_str(&lanes_line(lanes.len(), |i| {
                        if opened.contains(&i) {
                            '\\'
                        } else {
                            '|'
                        }
                    }));
                    out.push('\n');
                }
            }
        }
    }
    out
}

/// Draws every tree, separated by blank lines.
pub fn draw(graph: &Graph, applied: &BTreeSet<String>) -> String {
    graph
        .trees()
        .into_iter()
        .map(|t| draw_tree(graph, t, applied))
        .collect::<Vec<_>>()
        .join("\n")
}
