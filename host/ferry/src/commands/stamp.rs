//! Recording revisions without running them: `stamp`, and `adopt` (see [`crate::stamp`]).

use super::status::Ledgers;
use super::{Error, Migrator};
use crate::digest;
use crate::ledger;
use crate::metadata::RevisionMeta;
use crate::target;
use std::collections::{BTreeMap, BTreeSet};

/// What `adopt` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AdoptReport {
    /// What each tree's probe recognised.
    pub probes: Vec<crate::stamp::ProbeResult>,
    /// The revisions recorded.
    pub stamp: crate::stamp::StampReport,
}

impl Migrator {
    /// Records `revisions` (and their unapplied ancestors) as applied without running
    /// them, after checking the schema digest against the `DIGEST` of the last revision
    /// of each tree, when declared; `force` records anyway ("stamp --force").
    pub fn stamp(
        &self,
        revisions: &[String],
        force: bool,
    ) -> Result<crate::stamp::StampReport, Error> {
        use crate::stamp;
        let (project, dbs) = self.setup()?;
        let ids: Vec<String> = revisions
            .iter()
            .map(|r| target::resolve_id(&project.graph, r).map(String::from))
            .collect::<Result<_, _>>()?;
        self.locked_all(&dbs, |conns| {
            let ledgers = Ledgers::read(conns)?;
            ledgers.refuse_misplaced(&dbs, &project.graph)?;
            let applied = ledgers.applied();
            let set = stamp::stamp_set(&project.graph, &applied, &ids);
            let mut parts: Vec<Vec<&RevisionMeta>> = vec![Vec::new(); conns.len()];
            for m in &set {
                parts[dbs.of_tree(&m.tree)].push(m);
            }
            // Every database's digest is checked before anything is recorded anywhere.
            let mut digests = Vec::new();
            for (conn, part) in conns.iter_mut().zip(&parts) {
                let last = stamp::last_per_tree(part);
                digests.push(if force {
                    digest::digest(conn.as_mut())?
                } else {
                    stamp::check_digest(conn.as_mut(), &last)?
                });
            }
            let follows = crate::alembic::Follow::of_graph(&project.graph);
            let kind = if force {
                stamp::StampKind::StampForce
            } else {
                stamp::StampKind::Stamp
            };
            for (conn, part) in conns.iter_mut().zip(&parts) {
                if !part.is_empty() || !dbs.several() {
                    ledger::ensure(conn.as_mut())?;
                    stamp::record(conn.as_mut(), part, kind, &follows)?;
                }
            }
            Ok(stamp::StampReport {
                stamped: set.iter().map(|m| m.id.clone()).collect(),
                already: ids
                    .iter()
                    .filter(|id| applied.contains(*id))
                    .cloned()
                    .collect(),
                digest: digests.swap_remove(0).sha256,
            })
        })
    }

    /// Adopts a repository another tool created: runs every tree's probe read-only and
    /// stamps each tree at the revision it names, refusing on any inconsistency.
    pub fn adopt(&self) -> Result<AdoptReport, Error> {
        use crate::stamp;
        let (project, dbs) = self.setup()?;
        if dbs.several() {
            return Err(Error::Refused(
                "adopt works on one database; with trees in several databases, adopt the \
                 repository while it is combined, then move trees (docs/EMBEDDING.md)"
                    .into(),
            ));
        }
        let mut conn = self.connect()?;
        if ledger::exists(conn.as_mut())? {
            let records = ledger::revisions(conn.as_mut())?;
            return Err(Error::Refused(format!(
                "this repository already has a Ferry ledger ({} revision record(s)); adopt is \
                 only for repositories that Ferry never touched (see `ferry status`)",
                records.len()
            )));
        }
        if project.probes.is_empty() {
            return Err(Error::Refused(
                "no probe scripts (probes/*.rhai) under the script roots: nothing can \
                 recognise this repository"
                    .into(),
            ));
        }
        let (probes, mut conn) = stamp::run_probes(
            conn,
            &project,
            &project.probes,
            self.limits.clone(),
            self.module_paths(),
        )?;
        let mut by_tree: BTreeMap<&str, &stamp::ProbeResult> = BTreeMap::new();
        for p in &probes {
            if let Some(other) = by_tree.insert(p.tree.as_str(), p) {
                return Err(Error::Refused(format!(
                    "two probes for tree {:?}: {} and {}",
                    p.tree, other.file, p.file
                )));
            }
        }
        let named: Vec<String> = probes.iter().filter_map(|p| p.revision.clone()).collect();
        if named.is_empty() {
            let tables: Vec<String> = conn
                .tables("%")?
                .into_iter()
                .filter(|t| !t.starts_with("ferry_"))
                .collect();
            return Err(Error::Refused(if tables.is_empty() {
                "the repository is empty: there is nothing to adopt; run `ferry upgrade` to \
                 create it"
                    .into()
            } else {
                format!(
                    "no probe recognised this repository, yet it has {} table(s) ({}…); it \
                     was not created by a version these scripts know",
                    tables.len(),
                    tables
                        .iter()
                        .take(5)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }));
        }
        if crate::alembic::exists(conn.as_mut())? {
            let rows = crate::alembic::rows(conn.as_mut())?;
            let probed: Vec<crate::alembic::Probed<'_>> = probes
                .iter()
                .map(|p| crate::alembic::Probed {
                    tree: &p.tree,
                    file: &p.file,
                    revision: p.revision.as_deref(),
                })
                .collect();
            crate::alembic::check_adopted(&project.graph, &probed, &rows)
                .map_err(|why| Error::Refused(format!("{why}; nothing was recorded")))?;
        }
        let stamped = self.locked(conn.as_mut(), |conn| {
            if ledger::revisions(conn)?.values().any(|_| true) {
                return Err(Error::Refused(
                    "another migrator wrote a ledger meanwhile; nothing was recorded".into(),
                ));
            }
            let set = stamp::stamp_set(&project.graph, &BTreeSet::new(), &named);
            // A dependency may pull in a revision of a tree beyond what its probe said.
            for m in &set {
                if let Some(p) = by_tree.get(m.tree.as_str()) {
                    let ok = match &p.revision {
                        Some(r) => r == &m.id || project.graph.ancestors(r).contains(m.id.as_str()),
                        None => false,
                    };
                    if !ok {
                        return Err(Error::Refused(format!(
                            "inconsistent probes: {} needs {} of tree {:?}, but that tree's \
                             probe ({}) says {}",
                            named.join(", "),
                            m.id,
                            m.tree,
                            p.file,
                            p.revision.as_deref().unwrap_or("not present")
                        )));
                    }
                }
            }
            let named_metas: Vec<&RevisionMeta> = named
                .iter()
                .filter_map(|id| project.graph.get(id))
                .collect();
            let digest = stamp::check_digest(conn, &named_metas)?;
            ledger::ensure(conn)?;
            let follows = crate::alembic::Follow::of_graph(&project.graph);
            stamp::record(conn, &set, stamp::StampKind::Adopt, &follows)?;
            Ok(stamp::StampReport {
                stamped: set.iter().map(|m| m.id.clone()).collect(),
                already: vec![],
                digest: digest.sha256,
            })
        })?;
        Ok(AdoptReport {
            probes,
            stamp: stamped,
        })
    }
}
