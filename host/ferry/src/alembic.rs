//! daf_butler_migrate's record beside Ferry's: the `alembic_version` table.
//!
//! A repository that daf_butler_migrate (Alembic) manages holds one row per tree head in
//! `alembic_version` (column `version_num`), each a 12-hex-digit Alembic revision id.
//! A Ferry revision whose state corresponds to one of that tool's revisions declares
//! the id(s) in `const ALEMBIC = [...]` (read as metadata, never run). With those:
//!
//! - `ferry adopt` maps every row to a Ferry revision and refuses when the rows and what
//!   the probes read from `butler_attributes` disagree ([`check_adopted`]);
//! - every upgrade, downgrade and stamp of a repository that has the table rewrites the
//!   row of the tree it moves, in the transaction that records the move in Ferry's
//!   ledger ([`Follow`]), so the table always holds the rows daf_butler_migrate would
//!   have at those revisions and a site can go back to that tool at any point.
//!
//! Ferry never creates the table: a repository without it stays without it. Rows that
//! no Ferry revision declares (a tree Ferry does not have) are left as they are.
//!
//! The row Ferry writes for a tree at revision R is R's first `ALEMBIC` id, or, when R
//! declares none (a repair of Ferry's own), that of its nearest ancestor on the tree.

use crate::backend::{Connection, DbError, Value};
use crate::graph::Graph;
use crate::metadata::RevisionMeta;
use crate::plan::Direction;
use std::collections::{BTreeMap, BTreeSet};

/// The table daf_butler_migrate keeps its revisions in.
pub const TABLE: &str = "alembic_version";

/// The Alembic id that stands for revision `id`'s state: its own first `ALEMBIC` id, or
/// its nearest ancestor's along `PARENTS` within the tree (`None`: none declares one).
pub fn standing_for<'g>(graph: &'g Graph, id: &str) -> Option<&'g str> {
    standing_revision(graph, id).and_then(|m| m.alembic.first().map(String::as_str))
}

/// The revision whose `ALEMBIC` ids stand for `id`'s state: `id` itself, or its nearest
/// ancestor within the tree that declares some.
fn standing_revision<'g>(graph: &'g Graph, id: &str) -> Option<&'g RevisionMeta> {
    let mut seen = BTreeSet::new();
    let mut next = graph.get(id);
    while let Some(m) = next {
        if !seen.insert(m.id.as_str()) {
            return None;
        }
        if !m.alembic.is_empty() {
            return Some(m);
        }
        next = m
            .parents
            .iter()
            .filter_map(|p| graph.get(p))
            .find(|p| p.tree == m.tree);
    }
    None
}

/// Every Alembic id a revision of `tree` declares.
pub fn tree_ids(graph: &Graph, tree: &str) -> Vec<String> {
    let ids: BTreeSet<&str> = graph
        .revisions()
        .iter()
        .filter(|m| m.tree == tree)
        .flat_map(|m| m.alembic.iter().map(String::as_str))
        .collect();
    ids.into_iter().map(String::from).collect()
}

/// What running one revision does to `alembic_version`: the rows of its tree to take
/// out (every id the tree's revisions declare) and the row to put in after an upgrade
/// and after a downgrade (`None`: none).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Follow {
    pub known: Vec<String>,
    pub upgraded: Option<String>,
    pub downgraded: Option<String>,
}

impl Follow {
    /// The change for running `id` (`None` when its tree's revisions declare no
    /// Alembic id at all: nothing to keep).
    pub fn of(graph: &Graph, id: &str) -> Option<Follow> {
        let m = graph.get(id)?;
        let known = tree_ids(graph, &m.tree);
        if known.is_empty() {
            return None;
        }
        let downgraded = m
            .parents
            .iter()
            .filter(|p| graph.get(p).is_some_and(|p| p.tree == m.tree))
            .find_map(|p| standing_for(graph, p));
        Some(Follow {
            known,
            upgraded: standing_for(graph, id).map(String::from),
            downgraded: downgraded.map(String::from),
        })
    }

    /// The change of every revision of the graph whose tree declares Alembic ids.
    pub fn of_graph(graph: &Graph) -> BTreeMap<String, Follow> {
        graph
            .revisions()
            .iter()
            .filter_map(|m| Some((m.id.clone(), Follow::of(graph, &m.id)?)))
            .collect()
    }

    /// The row to put in after running in `direction`.
    pub fn after(&self, direction: Direction) -> Option<&String> {
        match direction {
            Direction::Upgrade => self.upgraded.as_ref(),
            Direction::Downgrade => self.downgraded.as_ref(),
        }
    }

    /// Applies the change, when the repository has the table (inside the caller's
    /// transaction).
    pub fn apply(&self, conn: &mut dyn Connection, direction: Direction) -> Result<(), DbError> {
        if !exists(conn)? {
            return Ok(());
        }
        let after = self.after(direction);
        let table = qualified(conn);
        let present = rows(conn)?;
        for id in present.iter().filter(|r| self.known.contains(r)) {
            if Some(id) != after {
                conn.execute(
                    &format!("DELETE FROM {table} WHERE version_num = ?"),
                    &[Value::Text(id.clone())],
                )?;
            }
        }
        if let Some(after) = after {
            if !present.contains(after) {
                conn.execute(
                    &format!("INSERT INTO {table} (version_num) VALUES (?)"),
                    &[Value::Text(after.clone())],
                )?;
            }
        }
        Ok(())
    }
}

/// The table's name, schema-qualified where the connection has a namespace.
fn qualified(conn: &dyn Connection) -> String {
    match conn.namespace() {
        Some(ns) => format!("{}.{}", conn.quote_ident(ns), conn.quote_ident(TABLE)),
        None => conn.quote_ident(TABLE),
    }
}

/// Whether the repository has daf_butler_migrate's table.
pub fn exists(conn: &mut dyn Connection) -> Result<bool, DbError> {
    conn.table_exists(TABLE)
}

/// The table's rows, sorted.
pub fn rows(conn: &mut dyn Connection) -> Result<Vec<String>, DbError> {
    let table = qualified(conn);
    let got = conn.query(&format!("SELECT version_num FROM {table}"), &[])?;
    let mut out: Vec<String> = got
        .rows
        .into_iter()
        .filter_map(|r| match r.into_iter().next() {
            Some(Value::Text(s)) => Some(s),
            _ => None,
        })
        .collect();
    out.sort();
    Ok(out)
}

/// One tree as the probes read it from the repository: the probe's file and the
/// revision it names (`None`: the tree is not in the repository).
pub struct Probed<'a> {
    pub tree: &'a str,
    pub file: &'a str,
    pub revision: Option<&'a str>,
}

/// Checks daf_butler_migrate's rows against the revisions the probes named from
/// `butler_attributes`: every row must be an id some Ferry revision declares, at most
/// one per tree, and each tree's row must be the one standing for its probed revision
/// (a tree without an id of its own needs no row). The error names both records.
pub fn check_adopted(graph: &Graph, probed: &[Probed<'_>], rows: &[String]) -> Result<(), String> {
    let mut declared: BTreeMap<&str, &str> = BTreeMap::new();
    for m in graph.revisions() {
        for a in &m.alembic {
            declared.entry(a.as_str()).or_insert(m.id.as_str());
        }
    }
    let mut by_tree: BTreeMap<&str, (&str, &str)> = BTreeMap::new();
    for row in rows {
        let Some(&rev) = declared.get(row.as_str()) else {
            return Err(format!(
                "{TABLE} holds revision {row}, which no Ferry revision declares (ALEMBIC): \
                 Ferry cannot tell which state of which tree it records"
            ));
        };
        let tree = graph.get(rev).map(|m| m.tree.as_str()).unwrap_or_default();
        if let Some((other, _)) = by_tree.insert(tree, (row.as_str(), rev)) {
            return Err(format!(
                "{TABLE} holds two revisions of tree {tree:?}: {other} and {row}"
            ));
        }
    }
    for p in probed {
        let standing = p.revision.and_then(|r| standing_revision(graph, r));
        let expected = standing.and_then(|m| m.alembic.first().map(String::as_str));
        let found = by_tree.remove(p.tree);
        let agrees = match (standing, found) {
            (None, None) => true,
            (Some(m), Some((row, _))) => m.alembic.iter().any(|a| a == row),
            _ => false,
        };
        if !agrees {
            let alembic = match found {
                Some((row, rev)) => format!("{TABLE} holds {row} (Ferry revision {rev})"),
                None => format!("{TABLE} has no row for it"),
            };
            let butler = match (p.revision, expected) {
                (Some(r), Some(e)) => format!("{r} (daf_butler_migrate {e})"),
                (Some(r), None) => format!("{r} (no daf_butler_migrate revision)"),
                (None, _) => "not present".to_string(),
            };
            return Err(format!(
                "{TABLE} and butler_attributes disagree about tree {:?}: {alembic}, but \
                 butler_attributes says {butler} (probe {})",
                p.tree, p.file
            ));
        }
    }
    if let Some((tree, (row, rev))) = by_tree.into_iter().next() {
        return Err(format!(
            "{TABLE} holds {row} (Ferry revision {rev} of tree {tree:?}), but \
             butler_attributes has no such tree (no probe recognised it)"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::tests::meta;

    fn graph() -> Graph {
        let mut a0 = meta("u-0", "cfg", &[], &[]);
        a0.alembic = vec!["aaa0".into()];
        let mut a1 = meta("u-1", "cfg", &["u-0"], &[]);
        a1.alembic = vec!["aaa1".into(), "aaa1old".into()];
        let fix = meta("u-1-fix", "cfg", &["u-1"], &[]);
        let mut d = meta("d-1", "ds", &[], &[]);
        d.alembic = vec!["ddd1".into()];
        let plain = meta("p-1", "plain", &[], &[]);
        Graph::build(vec![a0, a1, fix, d, plain]).expect("valid graph")
    }

    #[test]
    fn a_revision_without_ids_stands_for_its_nearest_ancestor() {
        let g = graph();
        assert_eq!(standing_for(&g, "u-1"), Some("aaa1"));
        assert_eq!(standing_for(&g, "u-1-fix"), Some("aaa1"));
        assert_eq!(standing_for(&g, "p-1"), None);
    }

    #[test]
    fn moves_replace_the_row_of_their_tree_only() {
        let g = graph();
        let f = Follow::of(&g, "u-1").unwrap();
        assert_eq!(
            f.after(Direction::Upgrade).map(String::as_str),
            Some("aaa1")
        );
        assert_eq!(
            f.after(Direction::Downgrade).map(String::as_str),
            Some("aaa0")
        );
        assert_eq!(f.known, ["aaa0", "aaa1", "aaa1old"]);
        let fix = Follow::of(&g, "u-1-fix").unwrap();
        assert_eq!(
            fix.after(Direction::Downgrade).map(String::as_str),
            Some("aaa1")
        );
        let root = Follow::of(&g, "u-0").unwrap();
        assert_eq!(root.after(Direction::Downgrade), None);
        assert!(Follow::of(&g, "p-1").is_none());
        assert_eq!(Follow::of_graph(&g).len(), 4);
    }

    fn probed<'a>(cfg: Option<&'a str>, ds: Option<&'a str>) -> Vec<Probed<'a>> {
        vec![
            Probed {
                tree: "cfg",
                file: "probes/cfg.rhai",
                revision: cfg,
            },
            Probed {
                tree: "ds",
                file: "probes/ds.rhai",
                revision: ds,
            },
            Probed {
                tree: "plain",
                file: "probes/plain.rhai",
                revision: Some("p-1"),
            },
        ]
    }

    fn rows(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn agreeing_records_are_taken() {
        let g = graph();
        check_adopted(
            &g,
            &probed(Some("u-1"), Some("d-1")),
            &rows(&["aaa1", "ddd1"]),
        )
        .expect("agree");
        check_adopted(
            &g,
            &probed(Some("u-1"), Some("d-1")),
            &rows(&["aaa1old", "ddd1"]),
        )
        .expect("an older id of the same state agrees");
        check_adopted(&g, &probed(Some("u-1-fix"), None), &rows(&["aaa1"]))
            .expect("a repair stands for its ancestor");
    }

    #[test]
    fn disagreements_name_both_records() {
        let g = graph();
        let e = check_adopted(
            &g,
            &probed(Some("u-0"), Some("d-1")),
            &rows(&["aaa1", "ddd1"]),
        )
        .unwrap_err();
        assert!(
            e.contains("aaa1 (Ferry revision u-1)")
                && e.contains("butler_attributes says u-0 (daf_butler_migrate aaa0)")
                && e.contains("probes/cfg.rhai"),
            "{e}"
        );
        let e = check_adopted(&g, &probed(Some("u-1"), Some("d-1")), &rows(&["aaa1"])).unwrap_err();
        assert!(e.contains("no row for it") && e.contains("\"ds\""), "{e}");
        let e =
            check_adopted(&g, &probed(Some("u-1"), None), &rows(&["aaa1", "ddd1"])).unwrap_err();
        assert!(e.contains("ddd1") && e.contains("not present"), "{e}");
        let e = check_adopted(
            &g,
            &probed(Some("u-1"), Some("d-1")),
            &rows(&["aaa1", "ddd1", "beef"]),
        )
        .unwrap_err();
        assert!(e.contains("beef, which no Ferry revision declares"), "{e}");
        let e = check_adopted(
            &g,
            &probed(Some("u-1"), Some("d-1")),
            &rows(&["aaa0", "aaa1", "ddd1"]),
        )
        .unwrap_err();
        assert!(e.contains("two revisions of tree \"cfg\""), "{e}");
    }
}
