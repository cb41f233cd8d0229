//! Moving trees from one database to another (combined → separate): the ledger part.
//!
//! The tables move with the database's own tools (they know sequences, identities,
//! grants and storage, which a generic copy would lose); Ferry then checks that every
//! named table is in the target with the rows the source has, and moves the trees'
//! ledger records and history, under both databases' locks. The copy into the target
//! commits before the source forgets anything, so a failure between the two leaves the
//! records in both, never in neither; running the command again finishes the move.

use super::status::Ledgers;
use super::{Error, Migrator};
use crate::backend::Connection;
use crate::checkpoint::{self, with_transaction};
use crate::ledger::{self, Actor, RevisionKey, RevisionState};
use crate::plan::Direction;
use std::collections::BTreeSet;

/// What `move_trees` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct MoveReport {
    /// The trees moved.
    pub trees: Vec<String>,
    /// The database the trees were recorded in, and the one they are placed in now.
    pub from: String,
    /// The database the trees are placed in now.
    pub to: String,
    /// Revision records moved.
    pub revisions: Vec<String>,
    /// History rows moved.
    pub history_rows: usize,
    /// Each named table and its row count in the target.
    pub tables: Vec<(String, i64)>,
    /// Named tables still present in the source database (drop them once satisfied).
    pub left_in_source: Vec<String>,
}

fn count(conn: &mut dyn Connection, table: &str) -> Result<i64, Error> {
    let sql = format!("SELECT COUNT(*) FROM {}", conn.quote_ident(table));
    let rows = conn.query(&sql, &[])?;
    Ok(match rows.rows.first().and_then(|r| r.first()) {
        Some(crate::backend::Value::Int(n)) => *n,
        Some(other) => other.to_string().parse().unwrap_or(-1),
        None => -1,
    })
}

impl Migrator {
    /// Moves the ledger records and history of `trees` from the database that records
    /// them to the database the configuration now places them in, after checking that
    /// every table in `tables` is in the target with as many rows as the source has.
    pub fn move_trees(&self, trees: &[String], tables: &[String]) -> Result<MoveReport, Error> {
        let (project, dbs) = self.setup()?;
        let refuse = |m: String| Err(Error::Refused(format!("{m}; nothing was moved")));
        for t in trees {
            if !project.graph.has_tree(t) {
                return refuse(format!("no script defines tree {t:?}"));
            }
        }
        self.locked_all(&dbs, |conns| {
            let ledgers = Ledgers::read(conns)?;
            let to = dbs.of_tree(&trees[0]);
            let mut from = None;
            for t in trees {
                if dbs.of_tree(t) != to {
                    return refuse(format!(
                        "trees {} and {t} are placed in different databases: move them one \
                         database at a time",
                        trees[0]
                    ));
                }
                let recorded: BTreeSet<usize> = ledgers
                    .records
                    .iter()
                    .enumerate()
                    .filter(|(i, r)| *i != to && r.values().any(|r| &r.tree == t))
                    .map(|(i, _)| i)
                    .collect();
                match (recorded.len(), from) {
                    (0, _) => {
                        return refuse(format!(
                            "tree {t} has no records outside database {}, where it is placed: \
                             place it in its new database in [databases] first",
                            dbs.list()[to].name
                        ))
                    }
                    (1, None) => from = recorded.first().copied(),
                    (1, Some(f)) if recorded.first() == Some(&f) => {}
                    _ => return refuse(format!("tree {t} is recorded in several databases")),
                }
            }
            let from = from.expect("every tree has records elsewhere");
            let moving = |tree: &str| trees.iter().any(|t| t == tree);
            let records: Vec<_> = ledgers.records[from]
                .values()
                .filter(|r| moving(&r.tree))
                .cloned()
                .collect();
            if let Some(r) = records.iter().find(|r| r.state != RevisionState::Applied) {
                return refuse(format!(
                    "revision {} is {}: finish it (`ferry upgrade`) before moving its tree",
                    r.revision,
                    r.state.as_str()
                ));
            }
            // A downgrade that stopped part-way leaves its revision `applied` with its
            // committed steps recorded under the downgrade's own key, which the move does
            // not copy: in the new database a rerun would repeat those steps.
            for r in &records {
                let steps = ledger::steps(
                    conns[from].as_mut(),
                    &checkpoint::ledger_owner(&r.revision, Direction::Downgrade),
                )?;
                if !steps.is_empty() {
                    return refuse(format!(
                        "revision {} has a downgrade that stopped part-way ({} step(s) \
                         recorded): finish it (`ferry downgrade` resumes it) before \
                         moving its tree",
                        r.revision,
                        steps.len()
                    ));
                }
            }
            let already: Vec<_> = ledgers.records[to]
                .values()
                .filter(|r| moving(&r.tree))
                .cloned()
                .collect();
            if !already.is_empty() && already != records {
                return refuse(format!(
                    "database {} already records other revisions of these trees",
                    dbs.list()[to].name
                ));
            }
            let mut checked = Vec::new();
            let mut left_in_source = Vec::new();
            for table in tables {
                if !conns[to].table_exists(table)? {
                    return refuse(format!(
                        "table {table} is not in database {}: copy the trees' tables there \
                         first (docs/EMBEDDING.md)",
                        dbs.list()[to].name
                    ));
                }
                let there = count(conns[to].as_mut(), table)?;
                if conns[from].table_exists(table)? {
                    let here = count(conns[from].as_mut(), table)?;
                    if here != there {
                        return refuse(format!(
                            "table {table} has {here} row(s) in database {} but {there} in {}",
                            dbs.list()[from].name,
                            dbs.list()[to].name
                        ));
                    }
                    left_in_source.push(table.clone());
                }
                checked.push((table.clone(), there));
            }
            let mut history: Vec<_> = ledger::history(conns[from].as_mut(), 0)?
                .into_iter()
                .filter(|h| moving(&h.tree))
                .collect();
            history.reverse();
            if already.is_empty() {
                let mut sources = Vec::new();
                for r in &records {
                    sources.push(ledger::sources_with_text(
                        conns[from].as_mut(),
                        &r.revision,
                    )?);
                }
                let target = conns[to].as_mut();
                ledger::ensure(target)?;
                let copied =
                    with_transaction(target, |target| -> Result<(), crate::backend::DbError> {
                        checkpoint::copy_tree_records(target, &records, &sources, &history)?;
                        let note = format!("moved from database {}", dbs.list()[from].name);
                        let now = ledger::now_ms();
                        let applied = ledgers.applied();
                        let actor = Actor::current();
                        for tree in trees {
                            let current =
                                crate::target::current_heads(&project.graph, &applied, tree);
                            for id in current {
                                let m = project.graph.get(id).expect("current revisions exist");
                                let key = RevisionKey {
                                    revision: &m.id,
                                    tree: &m.tree,
                                    version: &m.version,
                                    checksum: &m.checksum,
                                };
                                checkpoint::record_move(target, &key, &actor, now, &note)?;
                            }
                        }
                        Ok(())
                    });
                copied?;
            }
            let source = conns[from].as_mut();
            let forgot = with_transaction(source, |source| {
                trees
                    .iter()
                    .try_for_each(|t| checkpoint::forget_tree(source, t))
            });
            forgot?;
            Ok(MoveReport {
                trees: trees.to_vec(),
                from: dbs.list()[from].name.clone(),
                to: dbs.list()[to].name.clone(),
                revisions: records.iter().map(|r| r.revision.clone()).collect(),
                history_rows: history.len(),
                tables: checked,
                left_in_source,
            })
        })
    }
}
