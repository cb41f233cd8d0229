//! Recording revisions as applied without running them: `stamp`, and `adopt`, which
//! stamps each tree at the revision its probe names on a repository that another tool
//! created.
//!
//! Unlike Alembic's stamp, Ferry checks the schema first: when the last revision to be
//! recorded declares a `DIGEST`, the repository's schema digest must match it, or
//! nothing is recorded (`--force` records anyway, and the history says so).
//!
//! A probe is a file under a `probes/` folder of a root:
//!
//! ```rhai
//! const TREE = "datasets";
//! fn probe(db) {
//!     let m = attributes::manager("datasets");
//!     if m == () { return (); }              // this tree is not in the repository
//!     if m.version == "1.0.0" { return "datasets-int-1.0.0"; }
//!     throw `unknown datasets manager ${m.class} ${m.version}`;
//! }
//! ```
//!
//! It runs read-only: inside a transaction that is rolled back.

use crate::backend::Connection;
use crate::checkpoint::{self, with_transaction};
use crate::digest;
use crate::graph::Graph;
use crate::ledger::{self, Actor, How, RevisionKey};
use crate::metadata::{ModuleFile, RevisionMeta};
use crate::migrator::{Error, Project};
use crate::script::{Limits, Mode, ModulePaths, ScriptHost, Session};
use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// How revisions came to be recorded: written to `ferry_revisions.how` and to the
/// history row's note.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StampKind {
    Stamp,
    StampForce,
    Adopt,
}

impl StampKind {
    /// How the ledger records a revision stamped this way.
    pub fn how(self) -> How {
        match self {
            StampKind::Stamp => How::Stamp,
            StampKind::StampForce => How::StampForce,
            StampKind::Adopt => How::Adopt,
        }
    }
}

/// What a stamp recorded.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct StampReport {
    /// Revisions recorded as applied now, in order.
    pub stamped: Vec<String>,
    /// Requested revisions that were already applied.
    pub already: Vec<String>,
    /// The schema digest checked (or ignored with --force).
    pub digest: String,
}

/// The revisions to record for `requested`: each with its unapplied ancestors, in order.
pub fn stamp_set<'g>(
    graph: &'g Graph,
    applied: &BTreeSet<String>,
    requested: &[String],
) -> Vec<&'g RevisionMeta> {
    let needed = graph.ancestors_inclusive(requested.iter().map(String::as_str));
    graph
        .topo_sort(needed.into_iter().filter(|id| !applied.contains(*id)))
        .into_iter()
        .filter_map(|id| graph.get(id))
        .collect()
}

/// Checks the digest against every revision in `last` that declares one.
pub fn check_digest(
    conn: &mut dyn Connection,
    last: &[&RevisionMeta],
) -> Result<digest::SchemaDigest, Error> {
    let now = digest::digest(conn)?;
    for m in last {
        if let Some(expected) = m.expected_digest.as_ref().and_then(|d| now.declared(d)) {
            if !now.matches(expected) {
                return Err(Error::DigestMismatch {
                    revision: m.id.clone(),
                    expected: expected.to_string(),
                    found: now.sha256.clone(),
                });
            }
        }
    }
    Ok(now)
}

/// The last revision of each tree in `set` (the one whose schema the repository should
/// have after the stamp).
pub fn last_per_tree<'a>(set: &[&'a RevisionMeta]) -> Vec<&'a RevisionMeta> {
    let mut last: BTreeMap<&str, &RevisionMeta> = BTreeMap::new();
    for m in set {
        last.insert(m.tree.as_str(), m);
    }
    last.into_values().collect()
}

/// Records `revisions` as applied in one transaction (the caller holds the lock), and
/// keeps daf_butler_migrate's `alembic_version`, where the repository has one, at the
/// rows of those revisions (`follows`: see the `alembic` module).
pub fn record(
    conn: &mut dyn Connection,
    revisions: &[&RevisionMeta],
    kind: StampKind,
    follows: &BTreeMap<String, crate::alembic::Follow>,
) -> Result<(), Error> {
    let actor = Actor::current();
    let now = ledger::now_ms();
    let written = with_transaction(conn, |conn| -> Result<(), crate::backend::DbError> {
        for m in revisions {
            let key = RevisionKey {
                revision: &m.id,
                tree: &m.tree,
                version: &m.version,
                checksum: &m.checksum,
            };
            checkpoint::record_stamp(conn, &key, &actor, kind.how(), now)?;
            if let Some(follow) = follows.get(&m.id) {
                follow.apply(conn, crate::plan::Direction::Upgrade)?;
            }
        }
        Ok(())
    });
    Ok(written?)
}

/// One probe's answer.
#[derive(Debug, Clone, serde::Serialize)]
pub struct ProbeResult {
    /// The tree the probe recognises.
    pub tree: String,
    /// The probe script.
    pub file: String,
    /// The revision the probe names; `None` when the tree is absent from the repository.
    pub revision: Option<String>,
}

/// Runs every probe read-only (in a transaction that is rolled back) and returns the
/// answers; a probe that throws, names an unknown revision or a revision of another
/// tree is an error naming the probe.
pub fn run_probes(
    conn: Box<dyn Connection>,
    project: &Project,
    probes: &[ModuleFile],
    limits: Limits,
    paths: ModulePaths,
) -> Result<(Vec<ProbeResult>, Box<dyn Connection>), Error> {
    let session = Session::new(conn, Rc::new(crate::observer::Silent), Actor::current())
        .in_mode(Mode::DryRun);
    let session = Rc::new(RefCell::new(session));
    let host = ScriptHost::new(session.clone(), limits, paths, project.hooks.clone());
    let mut results = Vec::new();
    let mut failure = None;
    for probe in probes {
        match run_probe(&host, &project.graph, probe) {
            Ok(r) => results.push(r),
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
        session.borrow_mut().abort_transaction();
    }
    session.borrow_mut().abort_transaction();
    drop(host);
    let conn = Rc::try_unwrap(session)
        .ok()
        .expect("the probe engine is gone")
        .into_inner()
        .into_connection();
    match failure {
        Some(e) => {
            drop(conn);
            Err(e)
        }
        None => Ok((results, conn)),
    }
}

/// The tree a probe's `const TREE` names.
pub(crate) fn declared_tree(ast: &rhai::AST) -> Option<String> {
    ast.iter_literal_variables(true, false)
        .find(|(n, _, _)| *n == "TREE")
        .and_then(|(_, _, v)| v.into_string().ok())
}

fn run_probe(host: &ScriptHost, graph: &Graph, probe: &ModuleFile) -> Result<ProbeResult, Error> {
    let file = probe.path.display().to_string();
    let name = format!("probe {file}");
    // The tree discovery compiled; a probe that did not read or compile is compiled
    // here again only for the host's report of why.
    let ast = match &probe.script {
        Ok(script) => script.ast_for(host.engine()),
        Err(_) => host
            .compile(&probe.path, &name)
            .map_err(|e| Error::Preflight(Box::new(e)))?,
    };
    let tree = declared_tree(&ast)
        .ok_or_else(|| Error::Refused(format!("probe {file} declares no const TREE")))?;
    if !graph.has_tree(&tree) {
        return Err(Error::Refused(format!(
            "probe {file} is for tree {tree:?}, which no script defines"
        )));
    }
    if !ScriptHost::defines(&ast, "probe", 1) {
        return Err(Error::Refused(format!(
            "probe {file} defines no fn probe(db)"
        )));
    }
    let answer = host
        .call(&ast, "probe", &name, &probe.path)
        .map_err(|e| Error::Preflight(Box::new(e)))?;
    let revision = if answer.is_unit() {
        None
    } else {
        let id = answer.into_string().map_err(|t| {
            Error::Refused(format!(
                "probe {file} returned a {t}; it must return a revision id or ()"
            ))
        })?;
        match graph.get(&id) {
            None => {
                return Err(Error::Refused(format!(
                    "probe {file} names revision {id:?}, which no script defines"
                )))
            }
            Some(m) if m.tree != tree => {
                return Err(Error::Refused(format!(
                    "probe {file} of tree {tree:?} names {id:?}, a revision of tree {:?}",
                    m.tree
                )))
            }
            Some(_) => Some(id),
        }
    };
    Ok(ProbeResult {
        tree,
        file,
        revision,
    })
}
