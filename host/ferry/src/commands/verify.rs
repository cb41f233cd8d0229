//! `verify`: at an application's start-up, what state is each tree of the repository
//! in, may this code read or write it, and (with `auto_migrate`) bring it up to date.
//!
//! Galaxy's start-up verifier knows new, empty, current, behind and legacy databases,
//! and guesses where it cannot know. Ferry reads the ledger of each tree's database;
//! where there is none, it asks the tree's probe (or compares the schema digest with
//! the `DIGEST` its revisions declare), and says "unknown" rather than guess.

use super::classify::{auto_migrate_blocker, classify, needs_recognition, DbLook, Snapshot};
use super::status::{unfinished_by_tree, Ledgers, Unfinished};
use super::UpgradeOptions;
use super::{changed_scripts, upgrade_plan, ChangedScript, Error, Migrator, Project};
use crate::backend::Connection;
use crate::compat::{Access, Decision};
use crate::databases::Databases;
use crate::digest;
use crate::ledger::RevisionRecord;
use crate::metadata::ModuleFile;
use crate::runner::Report;
use std::collections::BTreeMap;

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
    pub(crate) fn migratable(self) -> bool {
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
    /// Applied revisions of this tree whose files changed since they ran (an upgrade
    /// refuses until they are accepted).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub changed: Vec<ChangedScript>,
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
    /// Why no plan to the targets could be made (a target that does not resolve, a
    /// `BEFORE` that names an applied revision…); `None` when it could, or when records
    /// are misplaced (see `trees`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub plan_error: Option<String>,
    /// The decision for the whole repository: the most restrictive of its trees'.
    pub access: Decision,
    /// What `auto_migrate` ran, if it ran and succeeded (a failed auto-migration is
    /// an [`Error::Failed`] from [`Migrator::verify`]).
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

impl Migrator {
    /// Classifies every tree of the repository, decides what this code may do with it,
    /// and with `auto_migrate` upgrades (or creates) it when that is safe, then
    /// classifies again. Nothing is changed without `auto_migrate`. With
    /// `auto_migrate`, a plan that cannot be made (a bad target) is an error, and so
    /// is a migration that fails ([`Error::Failed`], with what completed): verify again
    /// without `auto_migrate` to see the state it left.
    pub fn verify(&self, options: &VerifyOptions) -> Result<Verification, Error> {
        let (project, dbs) = self.setup()?;
        let (first, plan_error) = classify(
            &project.graph,
            &dbs,
            self.snapshot(&project, &dbs, options)?,
            options,
        );
        if !options.auto_migrate {
            return Ok(first);
        }
        let blocked = auto_migrate_blocker(&first, &project.graph, options, dbs.several());
        if let Some(reason) = blocked {
            return Ok(Verification {
                not_migrated: Some(reason),
                ..first
            });
        }
        if let Some(e) = plan_error {
            return Err(e);
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
        let (after, _) = classify(
            &project.graph,
            &dbs,
            self.snapshot(&project, &dbs, options)?,
            options,
        );
        Ok(Verification {
            migrated: Some(report),
            ..after
        })
    }

    /// Reads what [`classify`] needs: each database's look and ledger, the unfinished
    /// revisions, the plan, the changed scripts, and the recognition of each tree that
    /// has tables but no ledger.
    fn snapshot(
        &self,
        project: &Project,
        dbs: &Databases,
        options: &VerifyOptions,
    ) -> Result<Snapshot, Error> {
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
        // A database that does not exist counts as an empty ledger.
        let mut records: Vec<BTreeMap<String, RevisionRecord>> = Vec::new();
        for c in conns.iter_mut() {
            records.push(match c {
                Some(c) => crate::ledger::revisions(c.as_mut())?,
                None => BTreeMap::new(),
            });
        }
        let ledgers = Ledgers { records };
        // Steps are read only when every database is there to read them from.
        let unfinished = if conns.iter().all(Option::is_some) {
            let mut open: Vec<Box<dyn Connection>> = conns.into_iter().flatten().collect();
            unfinished_by_tree(&ledgers, Some(&mut open))?
        } else {
            unfinished_by_tree(&ledgers, None)?
        };
        let plan = if ledgers.misplaced(dbs, graph).is_empty() {
            upgrade_plan(project, &ledgers.applied(), &options.targets, false).map(|p| p.revisions)
        } else {
            Ok(Vec::new())
        };
        let changed = changed_scripts(project, &ledgers.all());
        let mut recognitions = BTreeMap::new();
        let mut recogniser = Recogniser::new(self, project, dbs);
        for tree in graph.trees() {
            let db = dbs.of_tree(tree);
            if needs_recognition(tree, db, &looks, &ledgers) {
                recognitions.insert(tree.to_string(), recogniser.recognise(tree, db)?);
            }
        }
        Ok(Snapshot {
            looks,
            ledgers,
            unfinished,
            plan,
            changed,
            recognitions,
        })
    }
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
