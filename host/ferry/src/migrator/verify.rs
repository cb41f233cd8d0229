//! `verify`: at an application's start-up, what state is each tree of the repository
//! in, may this code read or write it, and (with `auto_migrate`) bring it up to date.
//!
//! Galaxy's start-up verifier knows new, empty, current, behind and legacy databases,
//! and guesses where it cannot know. Ferry reads the ledger of each tree's database;
//! where there is none, it asks the tree's probe (or compares the schema digest with
//! the `DIGEST` its revisions declare), and says "unknown" rather than guess.

use super::status::{unfinished_by_tree, Ledgers, Unfinished};
use super::{upgrade_plan, Error, Migrator, Project, UpgradeOptions};
use crate::backend::Connection;
use crate::compat::{self, Access, Decision};
use crate::databases::Databases;
use crate::digest;
use crate::ledger::RevisionRecord;
use crate::metadata::ModuleFile;
use crate::runner::Report;
use std::collections::{BTreeMap, BTreeSet};

/// What `verify` should do, and what the application supports.
#[derive(Debug, Clone, Default)]
pub struct VerifyOptions {
    /// Upgrade when behind; create the database and run every revision when there is
    /// none or it is empty (as Galaxy's `database_auto_migrate`). Never touches a tree
    /// that is ahead, unfinished, misplaced or unknown.
    pub auto_migrate: bool,
    /// With `auto_migrate`: adopt an unversioned repository whose every tree is
    /// recognised (one database only), then upgrade it.
    pub adopt: bool,
    /// Upgrade targets for `auto_migrate` (default: every head).
    pub targets: Vec<String>,
    /// Tree → the versions this code supports (see `compat`).
    pub supported: BTreeMap<String, Vec<String>>,
}

impl VerifyOptions {
    /// Upgrades the trees the code is ahead of, when the database allows it.
    pub fn auto_migrate(mut self, on: bool) -> Self {
        self.auto_migrate = on;
        self
    }

    /// Adopts an unmanaged repository whose schema is recognised.
    pub fn adopt(mut self, on: bool) -> Self {
        self.adopt = on;
        self
    }

    /// This code supports `version` of `tree` (may be called more than once per tree).
    pub fn supports(mut self, tree: &str, version: &str) -> Self {
        self.supported
            .entry(tree.to_string())
            .or_default()
            .push(version.to_string());
        self
    }

    /// The targets to verify against (default: the heads).
    pub fn targets(mut self, targets: Vec<String>) -> Self {
        self.targets = targets;
        self
    }
}

/// The state of one tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TreeState {
    /// The tree's database does not exist (no SQLite file, no PostgreSQL schema).
    NoDatabase,
    /// The database exists but holds no tables and no ledger records: a new repository.
    Empty,
    /// At its heads.
    Current,
    /// Revisions are pending; `pending` is the plan that would bring it to its heads.
    Behind,
    /// The ledger records revisions of the tree that these scripts do not define.
    Ahead,
    /// No ledger, but a probe (or the schema digest) names the revision it is at.
    UnversionedRecognised,
    /// No ledger, tables exist, and nothing recognises them.
    UnversionedUnknown,
    /// A revision was left mid-way: failed at a step, or interrupted (killed).
    Unfinished,
    /// The ledger records for this tree are in another database than it is placed in.
    Misplaced,
}

impl TreeState {
    /// The lower-case name of the state.
    pub fn as_str(self) -> &'static str {
        match self {
            TreeState::NoDatabase => "no database",
            TreeState::Empty => "empty",
            TreeState::Current => "current",
            TreeState::Behind => "behind",
            TreeState::Ahead => "ahead",
            TreeState::UnversionedRecognised => "unversioned, recognised",
            TreeState::UnversionedUnknown => "unversioned, unknown",
            TreeState::Unfinished => "unfinished",
            TreeState::Misplaced => "misplaced",
        }
    }

    /// States `auto_migrate` may act on.
    fn migratable(self) -> bool {
        matches!(
            self,
            TreeState::NoDatabase | TreeState::Empty | TreeState::Current | TreeState::Behind
        )
    }
}

/// How an unversioned tree was recognised.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Recognition {
    /// The revision it is at (`None`: the probe says the tree is not in the repository).
    pub revision: Option<String>,
    /// `probe FILE` or `schema digest`.
    pub by: String,
}

/// One tree's verdict.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TreeVerdict {
    /// The tree's name.
    pub tree: String,
    /// The database it lives in (`main` unless placed elsewhere).
    pub database: String,
    /// Where the database stands against the code.
    pub state: TreeState,
    /// The revisions the database is at.
    pub current: Vec<String>,
    /// The tree's version in the database (from the ledger, or the recognised revision).
    pub version: Option<String>,
    /// The tree's heads in the code.
    pub heads: Vec<String>,
    /// The revisions of this tree an upgrade to its heads would run, in order.
    pub pending: Vec<String>,
    /// Revisions the ledger records for this tree that no script defines (ahead).
    pub unknown: Vec<String>,
    /// The revision an unmanaged schema was recognised as, if any.
    pub recognised: Option<Recognition>,
    /// Revisions left mid-way.
    pub unfinished: Vec<Unfinished>,
    /// What the code may do with this tree, and why.
    pub access: Decision,
    /// One line on the state and what to do about it.
    pub detail: String,
}

/// One database's verdict.
#[derive(Debug, Clone, serde::Serialize)]
pub struct DatabaseVerdict {
    /// The database's name.
    pub name: String,
    /// Its URL, as shown (without a password).
    pub database: String,
    /// Whether the database exists.
    pub exists: bool,
    /// Whether it holds Ferry's ledger tables.
    pub ledger: bool,
    /// Tables other than Ferry's own.
    pub tables: usize,
}

/// What `verify` found (after `auto_migrate`, if it ran).
#[derive(Debug, Clone, serde::Serialize)]
pub struct Verification {
    /// One entry per database.
    pub databases: Vec<DatabaseVerdict>,
    /// One entry per tree.
    pub trees: Vec<TreeVerdict>,
    /// The revisions an upgrade to the targets (default: heads) would run now, in
    /// order, across trees and databases (empty when nothing is pending or no plan can
    /// be made; see `trees` for why).
    pub plan: Vec<String>,
    /// The decision for the whole repository: the most restrictive of its trees'.
    pub access: Decision,
    /// What `auto_migrate` ran, if it ran.
    pub migrated: Option<Report>,
    /// Why `auto_migrate` did nothing although it was asked (`None`: it ran, or
    /// there was nothing to do, or it was not asked).
    pub not_migrated: Option<String>,
}

impl Verification {
    /// Whether the code may read and write the repository.
    pub fn writable(&self) -> bool {
        self.access.access == Access::Write
    }

    /// Whether the code may at least read it.
    pub fn readable(&self) -> bool {
        self.access.access >= Access::Read
    }

    /// The verdict for `tree`, if the code knows it.
    pub fn tree(&self, tree: &str) -> Option<&TreeVerdict> {
        self.trees.iter().find(|t| t.tree == tree)
    }
}

/// What one database looks like before any tree is classified.
struct DbLook {
    exists: bool,
    ledger: bool,
    tables: Vec<String>,
    described: String,
}

impl Migrator {
    /// Classifies every tree of the repository, decides what this code may do with it,
    /// and with `auto_migrate` upgrades (or creates) it when that is safe, then
    /// classifies again. Nothing is changed without `auto_migrate`.
    pub fn verify(&self, options: &VerifyOptions) -> Result<Verification, Error> {
        let (project, dbs) = self.setup()?;
        let first = self.classify(&project, &dbs, options)?;
        if !options.auto_migrate {
            return Ok(first);
        }
        let blocked = auto_migrate_blocker(&first, &project, options, dbs.several());
        if let Some(reason) = blocked {
            return Ok(Verification {
                not_migrated: Some(reason),
                ..first
            });
        }
        let adopt = first
            .trees
            .iter()
            .any(|t| t.state == TreeState::UnversionedRecognised);
        let create = first
            .trees
            .iter()
            .any(|t| matches!(t.state, TreeState::NoDatabase | TreeState::Empty));
        if first.plan.is_empty() && !adopt && !create {
            return Ok(first);
        }
        for (d, look) in dbs.list().iter().zip(&first.databases) {
            if !look.exists {
                d.source.create()?;
            }
        }
        if adopt {
            self.adopt()?;
        }
        let report = self.upgrade(&options.targets, &UpgradeOptions::default())?;
        let after = self.classify(&project, &dbs, options)?;
        Ok(Verification {
            migrated: Some(report),
            ..after
        })
    }

    fn classify(
        &self,
        project: &Project,
        dbs: &Databases,
        options: &VerifyOptions,
    ) -> Result<Verification, Error> {
        let graph = &project.graph;
        let mut looks = Vec::new();
        let mut conns: Vec<Option<Box<dyn Connection>>> = Vec::new();
        for d in dbs.list() {
            let Some(mut conn) = d.source.open_existing()? else {
                looks.push(DbLook {
                    exists: false,
                    ledger: false,
                    tables: vec![],
                    described: d
                        .source
                        .url()
                        .map(|u| u.display())
                        .unwrap_or_else(|| d.name.clone()),
                });
                conns.push(None);
                continue;
            };
            let tables: Vec<String> = conn
                .tables("%")?
                .into_iter()
                .filter(|t| !t.starts_with("ferry_"))
                .collect();
            looks.push(DbLook {
                exists: true,
                ledger: crate::ledger::exists(conn.as_mut())?,
                tables,
                described: conn.describe(),
            });
            conns.push(Some(conn));
        }
        // Status of the databases that exist (a missing one counts as an empty ledger).
        let mut records: Vec<BTreeMap<String, RevisionRecord>> = Vec::new();
        for c in conns.iter_mut() {
            records.push(match c {
                Some(c) => crate::ledger::revisions(c.as_mut())?,
                None => BTreeMap::new(),
            });
        }
        let ledgers = Ledgers { records };
        let misplaced = ledgers.misplaced(dbs, graph);
        let all = ledgers.all();
        let applied = ledgers.applied();
        let dormant = crate::lineage::dormant(graph, &applied);
        // Steps are read only when every database is there to read them from.
        let unfinished_by_tree = if conns.iter().all(Option::is_some) {
            let mut open: Vec<Box<dyn Connection>> = conns.into_iter().flatten().collect();
            unfinished_by_tree(&ledgers, Some(&mut open))?
        } else {
            unfinished_by_tree(&ledgers, None)?
        };
        let plan = if misplaced.is_empty() {
            upgrade_plan(project, &applied, &options.targets, false)
                .map(|p| p.revisions)
                .unwrap_or_default()
        } else {
            Vec::new()
        };
        let mut trees: BTreeSet<String> = graph.trees().iter().map(|s| s.to_string()).collect();
        trees.extend(all.values().map(|r| r.tree.clone()));
        let changed = super::changed_scripts(project, &all);
        let mut recogniser = Recogniser::new(self, project, dbs);
        let mut verdicts = Vec::new();
        for tree in trees {
            let db = dbs.of_tree(&tree);
            let look = &looks[db];
            let heads: Vec<String> = graph
                .heads(&tree)
                .into_iter()
                .filter(|h| !dormant.contains(h))
                .map(String::from)
                .collect();
            let current: Vec<String> = crate::target::current_heads(graph, &applied, &tree)
                .into_iter()
                .map(String::from)
                .collect();
            let pending: Vec<String> = graph
                .tree_revisions(&tree)
                .into_iter()
                .filter(|r| !applied.contains(&r.id) && !dormant.contains(r.id.as_str()))
                .map(|r| r.id.clone())
                .collect();
            let mine: Vec<&RevisionRecord> = all.values().filter(|r| r.tree == tree).collect();
            let unknown: Vec<&RevisionRecord> = mine
                .iter()
                .copied()
                .filter(|r| !graph.contains(&r.revision))
                .collect();
            let unfinished: Vec<Unfinished> =
                unfinished_by_tree.get(&tree).cloned().unwrap_or_default();
            let mut recognised = None;
            let mut version = current
                .first()
                .and_then(|id| all.get(id))
                .map(|r| r.version.clone());
            let (state, detail) = if !look.exists {
                (
                    TreeState::NoDatabase,
                    format!(
                        "database {} does not exist: create it and run every revision \
                         (auto_migrate, or `ferry upgrade`)",
                        look.described
                    ),
                )
            } else if let Some(m) = misplaced.iter().find(|m| m.tree == tree) {
                (
                    TreeState::Misplaced,
                    format!("{m}: move it or fix the [databases] configuration"),
                )
            } else if let Some(u) = unfinished.first() {
                (
                    TreeState::Unfinished,
                    format!(
                        "revision {} is {}{}: fix the cause and run `ferry upgrade` to resume",
                        u.revision,
                        u.state.as_str(),
                        u.failed_step
                            .as_ref()
                            .map(|s| format!(" at step {s:?}"))
                            .unwrap_or_default()
                    ),
                )
            } else if !unknown.is_empty() {
                let newest = unknown
                    .iter()
                    .max_by_key(|r| r.updated_at)
                    .expect("unknown is not empty");
                version = Some(newest.version.clone());
                (
                    TreeState::Ahead,
                    format!(
                        "the database records {} which these scripts do not define: newer \
                         code migrated it",
                        unknown
                            .iter()
                            .map(|r| r.revision.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                )
            } else if !current.is_empty() || !ledgers.records[db].is_empty() {
                if pending.is_empty() {
                    (TreeState::Current, "at its heads".to_string())
                } else {
                    (
                        TreeState::Behind,
                        format!(
                            "{} revision(s) pending: {}",
                            pending.len(),
                            pending.join(", ")
                        ),
                    )
                }
            } else if look.tables.is_empty() {
                (
                    TreeState::Empty,
                    "a new database: run every revision (auto_migrate, or `ferry upgrade`)"
                        .to_string(),
                )
            } else {
                match recogniser.recognise(&tree, db)? {
                    Ok(r) => {
                        version = r
                            .revision
                            .as_ref()
                            .and_then(|id| graph.get(id))
                            .map(|m| m.version.clone());
                        let detail = match &r.revision {
                            Some(id) => format!(
                                "no Ferry ledger; {} recognises revision {id}: `ferry adopt` records it",
                                r.by
                            ),
                            None => format!(
                                "no Ferry ledger; {}: not applied yet, `ferry adopt` leaves it to `ferry upgrade`",
                                r.by
                            ),
                        };
                        recognised = Some(r);
                        (TreeState::UnversionedRecognised, detail)
                    }
                    Err(why) => (TreeState::UnversionedUnknown, why),
                }
            };
            let mut detail = detail;
            let changed_here: Vec<_> = changed
                .iter()
                .filter(|c| graph.get(&c.revision).is_some_and(|m| m.tree == tree))
                .cloned()
                .collect();
            if !changed_here.is_empty() {
                // An upgrade (and auto_migrate) refuses until the edit is reviewed.
                detail.push_str(&format!(
                    "; applied files changed since they ran: {}; {}",
                    changed_here
                        .iter()
                        .map(|c| c.to_string())
                        .collect::<Vec<_>>()
                        .join("; "),
                    super::changed_hint(&changed_here)
                ));
            }
            let access = decide(&tree, state, version.as_deref(), &detail, options);
            verdicts.push(TreeVerdict {
                database: dbs.list()[db].name.clone(),
                tree,
                state,
                current,
                version,
                heads,
                pending,
                unknown: unknown.iter().map(|r| r.revision.clone()).collect(),
                recognised,
                unfinished,
                access,
                detail,
            });
        }
        // A database none of whose unversioned trees is recognised at a revision is not
        // one of ours: "the probe says the tree is absent" means nothing there.
        for (db, look) in looks.iter().enumerate() {
            let unversioned = |t: &&mut TreeVerdict| {
                t.state == TreeState::UnversionedRecognised && dbs.of_tree(&t.tree) == db
            };
            let none_named = verdicts
                .iter_mut()
                .filter(unversioned)
                .all(|t| t.recognised.as_ref().is_some_and(|r| r.revision.is_none()));
            if !none_named {
                continue;
            }
            for t in verdicts.iter_mut().filter(unversioned) {
                t.state = TreeState::UnversionedUnknown;
                t.recognised = None;
                t.detail = format!(
                    "no Ferry ledger, and no probe recognises the {} table(s) in database {} \
                     ({}): it was not made by these scripts",
                    look.tables.len(),
                    dbs.list()[db].name,
                    look.tables
                        .iter()
                        .take(5)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                );
                t.access = decide(&t.tree, t.state, None, &t.detail, options);
            }
        }
        let access = overall(&verdicts);
        Ok(Verification {
            databases: dbs
                .list()
                .iter()
                .zip(looks)
                .map(|(d, l)| DatabaseVerdict {
                    name: d.name.clone(),
                    database: l.described,
                    exists: l.exists,
                    ledger: l.ledger,
                    tables: l.tables.len(),
                })
                .collect(),
            trees: verdicts,
            plan,
            access,
            migrated: None,
            not_migrated: None,
        })
    }
}

/// What this code may do with one tree in `state` at `version`.
fn decide(
    tree: &str,
    state: TreeState,
    version: Option<&str>,
    detail: &str,
    options: &VerifyOptions,
) -> Decision {
    let refuse = |why: String| Decision::new(Access::Refuse, format!("{tree}: {why}"));
    let supported = options.supported.get(tree);
    match (state, supported, version) {
        (TreeState::Current | TreeState::Behind | TreeState::Ahead, Some(s), Some(v)) => {
            compat::decide_any(tree, s, v)
        }
        (TreeState::Current, None, _) => Decision::new(Access::Write, format!("{tree}: current")),
        (TreeState::Ahead, None, _) => refuse(format!(
            "{detail}; state the versions this code supports to allow reading"
        )),
        _ => refuse(detail.to_string()),
    }
}

/// The most restrictive decision over the trees, with every reason at that level.
fn overall(trees: &[TreeVerdict]) -> Decision {
    let Some(level) = trees.iter().map(|t| t.access.access).min() else {
        return Decision::new(Access::Write, "no trees");
    };
    let reasons: Vec<&str> = trees
        .iter()
        .filter(|t| t.access.access == level)
        .map(|t| t.access.reason.as_str())
        .collect();
    Decision::new(level, reasons.join("; "))
}

/// Why `auto_migrate` must not act, if it must not.
fn auto_migrate_blocker(
    v: &Verification,
    project: &Project,
    options: &VerifyOptions,
    several: bool,
) -> Option<String> {
    let stuck: Vec<String> = v
        .trees
        .iter()
        .filter(|t| {
            let adoptable =
                options.adopt && !several && t.state == TreeState::UnversionedRecognised;
            !(t.state.migratable() || adoptable)
        })
        .map(|t| format!("tree {} is {} ({})", t.tree, t.state.as_str(), t.detail))
        .collect();
    if !stuck.is_empty() {
        return Some(format!("auto-migrate did nothing: {}", stuck.join("; ")));
    }
    // The upgrade must leave every tree at a version this code supports.
    let mut after: BTreeMap<&str, &str> = BTreeMap::new();
    for t in &v.trees {
        if let Some(version) = &t.version {
            after.insert(t.tree.as_str(), version.as_str());
        }
    }
    for id in &v.plan {
        if let Some(m) = project.graph.get(id) {
            after.insert(m.tree.as_str(), m.version.as_str());
        }
    }
    for (tree, supported) in &options.supported {
        if let Some(version) = after.get(tree.as_str()) {
            let d = compat::decide_any(tree, supported, version);
            if d.access != Access::Write {
                return Some(format!(
                    "auto-migrate did nothing: the upgrade would leave {tree} at {version}, \
                     which this code cannot write ({})",
                    d.reason
                ));
            }
        }
    }
    None
}

/// Recognises unversioned trees by their probe, else by the schema digest.
struct Recogniser<'a> {
    migrator: &'a Migrator,
    project: &'a Project,
    dbs: &'a Databases,
    /// Probe files by the tree their `TREE` constant names: read and compiled when a
    /// tree first needs recognising (most start-ups find every ledger and need none).
    probes: Option<BTreeMap<String, Vec<&'a ModuleFile>>>,
    digests: BTreeMap<usize, digest::SchemaDigest>,
}

impl<'a> Recogniser<'a> {
    fn new(migrator: &'a Migrator, project: &'a Project, dbs: &'a Databases) -> Self {
        Recogniser {
            migrator,
            project,
            dbs,
            probes: None,
            digests: BTreeMap::new(),
        }
    }

    fn probes_of(&mut self, tree: &str) -> Option<Vec<&'a ModuleFile>> {
        let project = self.project;
        let probes = self.probes.get_or_insert_with(|| {
            let mut probes: BTreeMap<String, Vec<&ModuleFile>> = BTreeMap::new();
            for p in &project.probes {
                if let Some(tree) = probe_tree(p) {
                    probes.entry(tree).or_default().push(p);
                }
            }
            probes
        });
        probes.get(tree).cloned()
    }

    /// `Ok(Ok(recognition))`, or `Ok(Err(why it is unknown))`.
    fn recognise(&mut self, tree: &str, db: usize) -> Result<Result<Recognition, String>, Error> {
        let source = &self.dbs.list()[db].source;
        if let Some(probes) = self.probes_of(tree) {
            if probes.len() > 1 {
                return Ok(Err(format!(
                    "two probes for tree {tree}: {}",
                    probes
                        .iter()
                        .map(|p| p.path.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            let probe = probes[0];
            let ran = crate::stamp::run_probes(
                source.open()?,
                self.project,
                std::slice::from_ref(probe),
                self.migrator.limits.clone(),
                self.migrator.module_paths(),
            );
            return Ok(match ran {
                Ok((results, _conn)) => Ok(Recognition {
                    revision: results.into_iter().next().and_then(|r| r.revision),
                    by: format!("probe {}", probe.path.display()),
                }),
                Err(e) => Err(format!(
                    "no Ferry ledger, and the probe {} does not recognise it: {}",
                    probe.path.display(),
                    first_line(&e.to_string())
                )),
            });
        }
        let revisions = self.project.graph.tree_revisions(tree);
        if revisions.iter().all(|m| m.expected_digest.is_none()) {
            // Nothing could ever recognise this tree (a plugin's data tree, say): as
            // `ferry adopt` does, take it as not yet applied, to be upgraded. The check
            // below that some tree of the database is recognised at a revision still
            // keeps a stranger's database from passing for ours.
            return Ok(Ok(Recognition {
                revision: None,
                by: format!("tree {tree} has no probe and no revision with a DIGEST"),
            }));
        }
        if let std::collections::btree_map::Entry::Vacant(e) = self.digests.entry(db) {
            e.insert(digest::digest(source.open()?.as_mut())?);
        }
        let now = &self.digests[&db];
        let matching = revisions.into_iter().rfind(|m| {
            m.expected_digest
                .as_ref()
                .and_then(|d| now.declared(d))
                .is_some_and(|e| now.matches(e))
        });
        Ok(match matching {
            Some(m) => Ok(Recognition {
                revision: Some(m.id.clone()),
                by: "schema digest".into(),
            }),
            None => Err(format!(
                "no Ferry ledger, tables exist, and neither a probe nor a revision's DIGEST \
                 recognises them (schema digest {})",
                now.sha256
            )),
        })
    }
}

fn first_line(text: &str) -> &str {
    text.lines().next().unwrap_or(text)
}

/// The tree a probe file declares (`const TREE = "…"`), read without running it.
fn probe_tree(probe: &ModuleFile) -> Option<String> {
    let text = std::fs::read_to_string(&probe.path).ok()?;
    let ast = crate::metadata::parse_engine().compile(&text).ok()?;
    crate::stamp::declared_tree(&ast)
}
