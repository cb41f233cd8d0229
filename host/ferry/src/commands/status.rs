//! Where the repository is: each tree's state, read from the ledger of the database
//! the tree lives in.

use super::{changed_scripts, ChangedScript, Error, Project};
use crate::backend::{self, Connection, LockHolder};
use crate::databases::Databases;
use crate::graph::Graph;
use crate::ledger::{self, RevisionRecord, RevisionState};
use crate::target;
use std::collections::{BTreeMap, BTreeSet};

/// One tree's state.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TreeStatus {
    /// The tree's name.
    pub tree: String,
    /// The database the tree lives in, when trees live in several (`None`: one database).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Applied revisions of the tree without applied children in it (usually one).
    pub current: Vec<String>,
    /// The tree's human version after its current revision.
    pub version: Option<String>,
    /// The tree's heads (its newest revisions).
    pub heads: Vec<String>,
    /// Revisions of the tree not yet applied, in order.
    pub pending: Vec<String>,
    /// Revisions of the tree that started but did not finish.
    pub unfinished: Vec<Unfinished>,
}

/// A revision left mid-way: failed at a step, or interrupted (killed) while running.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Unfinished {
    /// The revision.
    pub revision: String,
    /// Its recorded state.
    pub state: RevisionState,
    /// The step it failed at, if it failed.
    pub failed_step: Option<String>,
    /// The error it failed with, if any.
    pub error: Option<String>,
    /// Steps already committed (a rerun skips them).
    pub steps_done: Vec<String>,
    /// A batched step part-way through: its name and committed batches.
    pub batches_done: Vec<(String, i64)>,
    /// Recorded `running` while no migrator holds the lock: the run that started it
    /// ended without recording an outcome (killed, crashed, its connection lost).
    pub interrupted: bool,
}

/// One database of a repository whose trees live in several.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DatabaseStatus {
    /// The database's name (`main` for the one given by the URL).
    pub name: String,
    /// Its URL, as shown (without a password).
    pub database: String,
    /// Whether it holds Ferry's ledger tables.
    pub ledger: bool,
    /// The trees that live in it.
    pub trees: Vec<String>,
}

/// What `status` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Status {
    /// The main database.
    pub database: String,
    /// Whether a ledger exists (in any database).
    pub ledger: bool,
    /// One entry per tree.
    pub trees: Vec<TreeStatus>,
    /// The recorded lock holder, if a migrator holds the lock now.
    pub locked_by: Option<LockHolder>,
    /// Applied revisions whose script file, `lib/` modules or hook files changed since
    /// (revision ids).
    pub changed: Vec<String>,
    /// The same revisions with the files that changed.
    pub changed_files: Vec<ChangedScript>,
    /// Revisions the database records that no script defines.
    pub unknown: Vec<String>,
    /// Every database, when trees live in several (empty: one database).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub databases: Vec<DatabaseStatus>,
    /// Ledger records found in another database than the one their tree is placed in.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub misplaced: Vec<Misplaced>,
    /// The statement timeout an upgrade would run with, in seconds (a revision's
    /// `STATEMENT_TIMEOUT_SECONDS` or a step's `timeout_seconds` may override it).
    pub statement_timeout_seconds: Option<u64>,
}

impl Status {
    /// Whether every tree is at its heads, nothing is unfinished and nothing changed.
    pub fn at_heads(&self) -> bool {
        self.unknown.is_empty()
            && self.changed.is_empty()
            && self.misplaced.is_empty()
            && self
                .trees
                .iter()
                .all(|t| t.pending.is_empty() && t.unfinished.is_empty())
    }
}

/// A tree whose ledger records are in another database than the configured one.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Misplaced {
    /// The tree.
    pub tree: String,
    /// Where the records are.
    pub recorded_in: String,
    /// Where the configuration places the tree.
    pub placed_in: String,
}

impl std::fmt::Display for Misplaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "tree {} is recorded in database {} but placed in database {}",
            self.tree, self.recorded_in, self.placed_in
        )
    }
}

/// The ledger records of every database, by database index.
pub struct Ledgers {
    pub records: Vec<BTreeMap<String, RevisionRecord>>,
}

impl Ledgers {
    /// Reads every database's ledger (in [`Databases::list`] order).
    pub fn read(conns: &mut [Box<dyn Connection>]) -> Result<Ledgers, Error> {
        let records = conns
            .iter_mut()
            .map(|c| ledger::revisions(c.as_mut()))
            .collect::<Result<_, _>>()?;
        Ok(Ledgers { records })
    }

    /// Every record of every database.
    pub fn all(&self) -> BTreeMap<String, RevisionRecord> {
        self.records
            .iter()
            .flat_map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())))
            .collect()
    }

    /// The applied revisions of every database.
    pub fn applied(&self) -> BTreeSet<String> {
        self.records.iter().flat_map(ledger::applied).collect()
    }

    /// Trees of the graph recorded in another database than the one they are placed in.
    pub fn misplaced(&self, dbs: &Databases, graph: &Graph) -> Vec<Misplaced> {
        let mut out: Vec<Misplaced> = Vec::new();
        for (i, records) in self.records.iter().enumerate() {
            for r in records.values() {
                let placed = dbs.of_tree(&r.tree);
                let known = graph.has_tree(&r.tree) || placed != 0;
                if known && placed != i {
                    let m = Misplaced {
                        tree: r.tree.clone(),
                        recorded_in: dbs.list()[i].name.clone(),
                        placed_in: dbs.list()[placed].name.clone(),
                    };
                    if !out.contains(&m) {
                        out.push(m);
                    }
                }
            }
        }
        out
    }

    /// Refuses to plan while records are misplaced: a revision would run in one
    /// database while its tree's earlier revisions are recorded in another.
    pub fn refuse_misplaced(&self, dbs: &Databases, graph: &Graph) -> Result<(), Error> {
        let misplaced = self.misplaced(dbs, graph);
        if misplaced.is_empty() {
            return Ok(());
        }
        Err(Error::Refused(format!(
            "{}; nothing was run. Move the tree (`ferry move-trees`, see docs/EMBEDDING.md) \
             or fix the [databases] configuration",
            misplaced
                .iter()
                .map(|m| m.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )))
    }
}

/// Whether a migrator holds the lock of this database now: the ledger's record, if the
/// backend's lock (the truth) is held. The backend is asked without taking its lock
/// ([`backend::Locking::lock_state`]), so `status` neither disturbs a holder nor makes
/// a migrator starting meanwhile find the lock taken.
fn live_lock_holder(
    conn: &mut dyn Connection,
    has_ledger: bool,
) -> Result<Option<LockHolder>, Error> {
    let recorded = if has_ledger {
        ledger::lock_holder(conn)?
    } else {
        None
    };
    // The record may be stale (a killed holder): the backend's lock is the truth.
    match recorded {
        Some(h) => match conn.lock_state()? {
            backend::LockState::Free => Ok(None),
            backend::LockState::Held(_) => Ok(Some(h)),
        },
        None => Ok(None),
    }
}

/// Each tree's revisions left unfinished (failed or interrupted), database by database
/// in list order, from the ledgers' records; with their committed steps and batches when
/// `conns` (one per database, in list order) is given to read them from.
pub(super) fn unfinished_by_tree(
    ledgers: &Ledgers,
    mut conns: Option<&mut [Box<dyn Connection>]>,
) -> Result<BTreeMap<String, Vec<Unfinished>>, Error> {
    let mut out: BTreeMap<String, Vec<Unfinished>> = BTreeMap::new();
    for (i, db_records) in ledgers.records.iter().enumerate() {
        for r in db_records
            .values()
            .filter(|r| r.state != RevisionState::Applied)
        {
            let steps = match conns.as_deref_mut() {
                Some(conns) => ledger::steps(conns[i].as_mut(), &r.revision)?,
                None => Vec::new(),
            };
            out.entry(r.tree.clone()).or_default().push(Unfinished {
                revision: r.revision.clone(),
                state: r.state,
                failed_step: r.failed_step.clone(),
                error: r.error.clone(),
                steps_done: steps
                    .iter()
                    .filter(|s| s.done)
                    .map(|s| s.step.clone())
                    .collect(),
                batches_done: steps
                    .iter()
                    .filter(|s| !s.done)
                    .map(|s| (s.step.clone(), s.batches))
                    .collect(),
                // Known only once the lock has been probed (`status_over`).
                interrupted: false,
            });
        }
    }
    Ok(out)
}

/// Computes [`Status`] over one open connection per database (in list order).
pub fn status_over(
    project: &Project,
    dbs: &Databases,
    conns: &mut [Box<dyn Connection>],
) -> Result<Status, Error> {
    let mut has_ledger = Vec::new();
    for c in conns.iter_mut() {
        has_ledger.push(ledger::exists(c.as_mut())?);
    }
    let ledgers = Ledgers::read(conns)?;
    let records = ledgers.all();
    let applied = ledgers.applied();
    let several = dbs.several();
    let graph = &project.graph;
    let dormant = crate::lineage::dormant(graph, &applied);
    let mut unfinished = unfinished_by_tree(&ledgers, Some(&mut *conns))?;
    let mut trees = Vec::new();
    let mut tree_names: BTreeSet<String> = graph.trees().iter().map(|s| s.to_string()).collect();
    tree_names.extend(records.values().map(|r| r.tree.clone()));
    for tree in tree_names {
        let current: Vec<String> = if graph.has_tree(&tree) {
            target::current_heads(graph, &applied, &tree)
                .into_iter()
                .map(String::from)
                .collect()
        } else {
            records
                .values()
                .filter(|r| r.tree == tree && r.state == RevisionState::Applied)
                .map(|r| r.revision.clone())
                .collect()
        };
        let version = current
            .first()
            .and_then(|id| records.get(id).map(|r| r.version.clone()));
        let pending: Vec<String> = graph
            .tree_revisions(&tree)
            .into_iter()
            .filter(|r| !applied.contains(&r.id) && !dormant.contains(r.id.as_str()))
            .map(|r| r.id.clone())
            .collect();
        trees.push(TreeStatus {
            // The heads of the lineage the repository is on (crate::lineage).
            heads: graph
                .heads(&tree)
                .into_iter()
                .filter(|h| !dormant.contains(h))
                .map(String::from)
                .collect(),
            unfinished: unfinished.remove(&tree).unwrap_or_default(),
            database: several.then(|| dbs.list()[dbs.of_tree(&tree)].name.clone()),
            tree,
            current,
            version,
            pending,
        });
    }
    let mut locked_by = None;
    for (i, c) in conns.iter_mut().enumerate() {
        if locked_by.is_none() {
            locked_by = live_lock_holder(c.as_mut(), has_ledger[i])?;
        }
    }
    let changed_files = changed_scripts(project, &records);
    // A revision recorded `running` with nobody holding the lock is not running: its
    // run was killed or lost its connection before it could record an outcome.
    if locked_by.is_none() {
        for t in &mut trees {
            for u in &mut t.unfinished {
                u.interrupted = u.state == RevisionState::Running;
            }
        }
    }
    let unknown = records
        .keys()
        .filter(|id| !graph.contains(id))
        .cloned()
        .collect();
    let databases = if several {
        dbs.list()
            .iter()
            .enumerate()
            .map(|(i, d)| DatabaseStatus {
                name: d.name.clone(),
                database: conns[i].describe(),
                ledger: has_ledger[i],
                trees: trees
                    .iter()
                    .filter(|t| dbs.of_tree(&t.tree) == i)
                    .map(|t| t.tree.clone())
                    .collect(),
            })
            .collect()
    } else {
        Vec::new()
    };
    Ok(Status {
        database: conns[0].describe(),
        ledger: has_ledger.iter().any(|b| *b),
        trees,
        locked_by,
        changed: changed_files.iter().map(|c| c.revision.clone()).collect(),
        changed_files,
        unknown,
        databases,
        misplaced: ledgers.misplaced(dbs, graph),
        statement_timeout_seconds: None,
    })
}
