//! The start-up classification of `verify`, as a pure function: from a [`Snapshot`]
//! of what the databases hold (read by [`crate::migrator::Migrator::verify`]) to a
//! [`Verification`]. No database is touched here, so every state can be tested
//! without one. Its messages say what the state is and what must happen, never which
//! command does it: the command line adds its own hints.

use super::status::{Ledgers, Misplaced, Unfinished};
use super::verify::{
    DatabaseVerdict, Recognition, TreeState, TreeVerdict, Verification, VerifyOptions,
};
use super::{ChangedScript, Error};
use crate::compat::{self, Access, Decision};
use crate::databases::Databases;
use crate::graph::Graph;
use crate::ledger::RevisionRecord;
use std::collections::{BTreeMap, BTreeSet};

/// What one database looks like before any tree is classified.
#[derive(Debug, Clone)]
pub(crate) struct DbLook {
    pub(crate) exists: bool,
    /// Whether Ferry's ledger tables exist.
    pub(crate) ledger: bool,
    /// Tables other than Ferry's own.
    pub(crate) tables: Vec<String>,
    /// The database as messages name it.
    pub(crate) described: String,
}

/// Everything `verify` read, one entry per database in [`Databases::list`] order where
/// it is per database.
pub(crate) struct Snapshot {
    pub(crate) looks: Vec<DbLook>,
    /// Each database's ledger (empty for one that does not exist).
    pub(crate) ledgers: Ledgers,
    /// The revisions left mid-way, by tree.
    pub(crate) unfinished: BTreeMap<String, Vec<Unfinished>>,
    /// The upgrade plan to the targets (empty while records are misplaced), or why
    /// none can be made.
    pub(crate) plan: Result<Vec<String>, Error>,
    /// Applied revisions whose files changed since they ran.
    pub(crate) changed: Vec<ChangedScript>,
    /// For each tree with no ledger record in a database that has tables: what its
    /// probe (or the schema digest) says, or why nothing recognises it. See
    /// [`needs_recognition`].
    pub(crate) recognitions: BTreeMap<String, Result<Recognition, String>>,
}

/// Whether `tree` (in database `db`) is classified by recognition: its database
/// exists and holds tables, but no ledger record of it (in any database).
pub(crate) fn needs_recognition(
    tree: &str,
    db: usize,
    looks: &[DbLook],
    ledgers: &Ledgers,
) -> bool {
    let look = &looks[db];
    look.exists
        && !look.tables.is_empty()
        && ledgers.records[db].is_empty()
        && !ledgers
            .records
            .iter()
            .any(|records| records.values().any(|r| r.tree == tree))
}

/// Every tree of `graph` and of the ledgers, as `snapshot` shows it; also the planning
/// error, if the plan could not be made (the verification says so too, as text).
pub(crate) fn classify(
    graph: &Graph,
    dbs: &Databases,
    snapshot: Snapshot,
    options: &VerifyOptions,
) -> (Verification, Option<Error>) {
    let Snapshot {
        looks,
        ledgers,
        unfinished: mut unfinished_by_tree,
        plan,
        changed,
        mut recognitions,
    } = snapshot;
    let misplaced = ledgers.misplaced(dbs, graph);
    let all = ledgers.all();
    let applied = ledgers.applied();
    let dormant = crate::lineage::dormant(graph, &applied);
    let (plan, plan_error) = match plan {
        Ok(plan) => (plan, None),
        Err(e) => (Vec::new(), Some(e)),
    };
    let mut trees: BTreeSet<String> = graph.trees().iter().map(|s| s.to_string()).collect();
    trees.extend(all.values().map(|r| r.tree.clone()));
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
        let unknown: Vec<&RevisionRecord> = all
            .values()
            .filter(|r| r.tree == tree && !graph.contains(&r.revision))
            .collect();
        let unfinished: Vec<Unfinished> = unfinished_by_tree.remove(&tree).unwrap_or_default();
        let mut recognised = None;
        let mut version = current
            .first()
            .and_then(|id| all.get(id))
            .map(|r| r.version.clone());
        let (state, mut detail) = if !look.exists {
            (
                TreeState::NoDatabase,
                format!(
                    "database {} does not exist: create it and run every revision",
                    look.described
                ),
            )
        } else if let Some(m) = misplaced.iter().find(|m| m.tree == tree) {
            (TreeState::Misplaced, misplaced_detail(m))
        } else if let Some(u) = unfinished.first() {
            (
                TreeState::Unfinished,
                format!(
                    "revision {} is {}{}: fix the cause and resume the upgrade",
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
                "a new database: run every revision".to_string(),
            )
        } else {
            let found = recognitions.remove(&tree).unwrap_or_else(|| {
                Err(format!(
                    "no Ferry ledger, and tree {tree} was not looked at (an internal error)"
                ))
            });
            match found {
                Ok(r) => {
                    version = r
                        .revision
                        .as_ref()
                        .and_then(|id| graph.get(id))
                        .map(|m| m.version.clone());
                    let detail = match &r.revision {
                        Some(id) => format!(
                            "no Ferry ledger; {} recognises revision {id}: adopting records it",
                            r.by
                        ),
                        None => format!(
                            "no Ferry ledger; {}: not applied yet, adopting leaves it to the upgrade",
                            r.by
                        ),
                    };
                    recognised = Some(r);
                    (TreeState::UnversionedRecognised, detail)
                }
                Err(why) => (TreeState::UnversionedUnknown, why),
            }
        };
        let changed_here: Vec<ChangedScript> = changed
            .iter()
            .filter(|c| graph.get(&c.revision).is_some_and(|m| m.tree == tree))
            .cloned()
            .collect();
        if !changed_here.is_empty() {
            // An upgrade (and auto_migrate) refuses until the edit is reviewed.
            detail.push_str(&format!(
                "; applied files changed since they ran: {}; review and accept them",
                changed_here
                    .iter()
                    .map(|c| c.to_string())
                    .collect::<Vec<_>>()
                    .join("; "),
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
            changed: changed_here,
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
    let verification = Verification {
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
        plan_error: plan_error.as_ref().map(|e| e.to_string()),
        access,
        migrated: None,
        not_migrated: None,
    };
    (verification, plan_error)
}

fn misplaced_detail(m: &Misplaced) -> String {
    format!("{m}: move it or fix the [databases] configuration")
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
pub(crate) fn auto_migrate_blocker(
    v: &Verification,
    graph: &Graph,
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
        if let Some(m) = graph.get(id) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::DbUrl;
    use crate::graph::tests::meta;
    use crate::ledger::RevisionState;
    use crate::source::Source;

    /// Tree `app`: app-1 (1.0.0) then app-2 (1.1.0).
    fn graph() -> Graph {
        let mut one = meta("app-1", "app", &[], &[]);
        one.version = "1.0.0".into();
        let mut two = meta("app-2", "app", &["app-1"], &[]);
        two.version = "1.1.0".into();
        Graph::build(vec![one, two]).unwrap()
    }

    fn dbs() -> Databases {
        // A URL only: nothing is opened.
        Databases::single(Source::Url(
            DbUrl::parse("sqlite:/nowhere/repo.sqlite").unwrap(),
        ))
    }

    fn record(revision: &str, version: &str, state: RevisionState) -> RevisionRecord {
        RevisionRecord {
            revision: revision.into(),
            tree: "app".into(),
            version: version.into(),
            state,
            checksum: String::new(),
            failed_step: (state == RevisionState::Failed).then(|| "fill".into()),
            error: None,
            how: "upgrade".into(),
            updated_at: 1,
            deps_checksum: None,
            sources: vec![],
        }
    }

    /// A database that exists with `tables` and a ledger holding `records`.
    fn snapshot(tables: &[&str], records: Vec<RevisionRecord>) -> Snapshot {
        let ledger = !records.is_empty();
        Snapshot {
            looks: vec![DbLook {
                exists: true,
                ledger,
                tables: tables.iter().map(|t| t.to_string()).collect(),
                described: "repo.sqlite".into(),
            }],
            ledgers: Ledgers {
                records: vec![records
                    .into_iter()
                    .map(|r| (r.revision.clone(), r))
                    .collect()],
            },
            unfinished: BTreeMap::new(),
            plan: Ok(vec![]),
            changed: vec![],
            recognitions: BTreeMap::new(),
        }
    }

    fn classify_app(snapshot: Snapshot, options: &VerifyOptions) -> (Verification, TreeVerdict) {
        let (v, error) = classify(&graph(), &dbs(), snapshot, options);
        assert!(error.is_none(), "{error:?}");
        let app = v.tree("app").expect("tree app is classified").clone();
        (v, app)
    }

    #[test]
    fn a_database_that_does_not_exist_is_refused_until_created() {
        let mut s = snapshot(&[], vec![]);
        s.looks[0].exists = false;
        s.plan = Ok(vec!["app-1".into(), "app-2".into()]);
        let (v, app) = classify_app(s, &VerifyOptions::default());
        assert_eq!(app.state, TreeState::NoDatabase);
        assert!(
            app.detail.contains("repo.sqlite does not exist"),
            "{}",
            app.detail
        );
        assert_eq!(v.plan, ["app-1", "app-2"]);
        assert_eq!(v.access.access, Access::Refuse);
        assert!(app.state.migratable());
    }

    #[test]
    fn an_empty_database_is_new() {
        let (_, app) = classify_app(snapshot(&[], vec![]), &VerifyOptions::default());
        assert_eq!(app.state, TreeState::Empty);
        assert_eq!(app.pending, ["app-1", "app-2"]);
        assert_eq!(app.version, None);
    }

    #[test]
    fn current_behind_and_ahead_follow_the_ledger() {
        let applied = |ids: &[(&str, &str)]| {
            ids.iter()
                .map(|(id, v)| record(id, v, RevisionState::Applied))
                .collect::<Vec<_>>()
        };
        let (v, app) = classify_app(
            snapshot(
                &["item"],
                applied(&[("app-1", "1.0.0"), ("app-2", "1.1.0")]),
            ),
            &VerifyOptions::default(),
        );
        assert_eq!(app.state, TreeState::Current);
        assert_eq!(app.version.as_deref(), Some("1.1.0"));
        assert!(v.writable());

        let (v, app) = classify_app(
            snapshot(&["item"], applied(&[("app-1", "1.0.0")])),
            &VerifyOptions::default(),
        );
        assert_eq!(app.state, TreeState::Behind);
        assert_eq!(app.pending, ["app-2"]);
        assert_eq!(app.current, ["app-1"]);
        assert_eq!(v.access.access, Access::Refuse);
        // Code that supports 1.0.0 may write a database at 1.0.0.
        let (v, _) = classify_app(
            snapshot(&["item"], applied(&[("app-1", "1.0.0")])),
            &VerifyOptions::default().supports("app", "1.0.0"),
        );
        assert!(v.writable(), "{:?}", v.access);

        let ahead = applied(&[("app-1", "1.0.0"), ("app-2", "1.1.0"), ("app-3", "1.2.0")]);
        let (v, app) = classify_app(snapshot(&["item"], ahead), &VerifyOptions::default());
        assert_eq!(app.state, TreeState::Ahead);
        assert_eq!(app.unknown, ["app-3"]);
        assert_eq!(app.version.as_deref(), Some("1.2.0"));
        assert_eq!(v.access.access, Access::Refuse);
        assert!(
            v.access.reason.contains("state the versions"),
            "{}",
            v.access.reason
        );
    }

    #[test]
    fn an_unfinished_revision_names_its_step() {
        let mut s = snapshot(
            &["item"],
            vec![
                record("app-1", "1.0.0", RevisionState::Applied),
                record("app-2", "1.1.0", RevisionState::Failed),
            ],
        );
        s.unfinished.insert(
            "app".into(),
            vec![Unfinished {
                revision: "app-2".into(),
                state: RevisionState::Failed,
                failed_step: Some("fill".into()),
                error: Some("boom".into()),
                steps_done: vec![],
                batches_done: vec![],
                interrupted: false,
            }],
        );
        let (v, app) = classify_app(s, &VerifyOptions::default());
        assert_eq!(app.state, TreeState::Unfinished);
        assert!(
            app.detail.contains("app-2 is failed at step \"fill\""),
            "{}",
            app.detail
        );
        assert!(!app.state.migratable());
        assert_eq!(v.access.access, Access::Refuse);
    }

    #[test]
    fn unversioned_trees_are_what_their_recognition_says() {
        let recognised = |revision: Option<&str>| {
            let mut s = snapshot(&["item"], vec![]);
            s.recognitions.insert(
                "app".into(),
                Ok(Recognition {
                    revision: revision.map(String::from),
                    by: "probe probes/app.rhai".into(),
                }),
            );
            s
        };
        let (_, app) = classify_app(recognised(Some("app-1")), &VerifyOptions::default());
        assert_eq!(app.state, TreeState::UnversionedRecognised);
        assert_eq!(app.version.as_deref(), Some("1.0.0"));
        assert!(
            app.detail.contains("recognises revision app-1"),
            "{}",
            app.detail
        );
        // "Not there" from every tree of a database with tables: not one of ours.
        let (_, app) = classify_app(recognised(None), &VerifyOptions::default());
        assert_eq!(app.state, TreeState::UnversionedUnknown);
        assert!(app.detail.contains("item"), "{}", app.detail);
        let mut s = snapshot(&["item"], vec![]);
        s.recognitions
            .insert("app".into(), Err("the probe failed".into()));
        let (_, app) = classify_app(s, &VerifyOptions::default());
        assert_eq!(app.state, TreeState::UnversionedUnknown);
        assert_eq!(app.detail, "the probe failed");
    }

    #[test]
    fn a_planning_error_is_kept_not_swallowed() {
        let mut s = snapshot(
            &["item"],
            vec![record("app-1", "1.0.0", RevisionState::Applied)],
        );
        s.plan = Err(Error::Refused("no revision named nowhere".into()));
        let (v, error) = classify(&graph(), &dbs(), s, &VerifyOptions::default());
        assert!(matches!(error, Some(Error::Refused(_))), "{error:?}");
        assert!(v.plan.is_empty());
        assert_eq!(v.plan_error.as_deref(), Some("no revision named nowhere"));
    }

    #[test]
    fn messages_name_no_command() {
        let mut states = vec![snapshot(&[], vec![]), snapshot(&["item"], vec![])];
        states[0].looks[0].exists = false;
        states[1].recognitions.insert(
            "app".into(),
            Ok(Recognition {
                revision: Some("app-1".into()),
                by: "schema digest".into(),
            }),
        );
        for s in states {
            let (v, app) = classify_app(s, &VerifyOptions::default());
            assert!(!app.detail.contains('`'), "{}", app.detail);
            assert!(!app.detail.contains("ferry "), "{}", app.detail);
            assert!(!v.access.reason.contains('`'), "{}", v.access.reason);
        }
    }

    #[test]
    fn recognition_is_needed_only_without_any_record_of_the_tree() {
        let s = snapshot(&["item"], vec![]);
        assert!(needs_recognition("app", 0, &s.looks, &s.ledgers));
        let s = snapshot(&[], vec![]);
        assert!(!needs_recognition("app", 0, &s.looks, &s.ledgers));
        let s = snapshot(
            &["item"],
            vec![record("app-1", "1.0.0", RevisionState::Applied)],
        );
        assert!(!needs_recognition("app", 0, &s.looks, &s.ledgers));
    }
}
