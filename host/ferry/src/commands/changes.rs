//! Applied revisions whose files changed since they ran: which files (the revision's
//! own, a `lib/` module, a hook file), the diff against the text the ledger kept, and
//! `accept`, which records the files as they are now after a review, with who and why
//! in the history (as Flyway's `repair` and Liquibase's `clear-checksums` do, but for
//! one revision at a time and never silently).

use super::status::Ledgers;
use super::{Error, Migrator, Project};
use crate::checkpoint::{self, with_transaction};
use crate::ledger::{self, Actor, RevisionKey, RevisionRecord, RevisionState, SourceRecord};
use crate::metadata::RevisionMeta;
use crate::revision_sources::{self, RevisionSources, SourceKind};
use crate::target;
use std::collections::BTreeMap;

/// One file of an applied revision that is not as it was when the revision ran.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct FileChange {
    /// The file's label (its root's folder name and its path inside the root).
    pub path: String,
    /// `revision`, `module` or `hook`.
    pub kind: String,
    /// `edited`, `now used` (the revision uses it and did not then) or `no longer used`.
    pub change: String,
}

/// An applied revision that changed, and how.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ChangedScript {
    /// The revision whose script changed.
    pub revision: String,
    /// Its files that changed.
    pub files: Vec<FileChange>,
}

impl std::fmt::Display for ChangedScript {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let files: Vec<String> = self
            .files
            .iter()
            .map(|c| format!("{} ({})", c.path, c.change))
            .collect();
        write!(f, "{}: {}", self.revision, files.join(", "))
    }
}

/// What to run next about changed revisions, for messages.
pub fn changed_hint(changed: &[ChangedScript]) -> String {
    let first = changed
        .first()
        .map(|c| c.revision.as_str())
        .unwrap_or("REV");
    format!(
        "see what changed: `ferry show {first}`; after review, record the files as they are now: \
         `ferry accept {first} --reason TEXT`"
    )
}

/// How `record` differs from the files `m` runs now (empty: unchanged).
fn file_changes(record: &RevisionRecord, m: &RevisionMeta, project: &Project) -> Vec<FileChange> {
    let mut out = Vec::new();
    let recorded_own = record
        .sources
        .iter()
        .find(|s| s.kind == SourceKind::Revision.as_str());
    if record.checksum != m.checksum {
        out.push(FileChange {
            path: recorded_own
                .map(|s| s.path.clone())
                .unwrap_or_else(|| revision_sources::label(&m.path, &m.root)),
            kind: SourceKind::Revision.as_str().into(),
            change: "edited".into(),
        });
    }
    // A record without a dependency digest was applied before Ferry recorded them (or
    // stamped): only its own file can be compared.
    let Some(recorded_deps) = &record.deps_checksum else {
        return out;
    };
    let now = revision_sources::of_revision(m, &project.hooks);
    if &now.deps_checksum() == recorded_deps {
        return out;
    }
    let recorded: BTreeMap<&str, &SourceRecord> = record
        .sources
        .iter()
        .filter(|s| s.kind != SourceKind::Revision.as_str())
        .map(|s| (s.path.as_str(), s))
        .collect();
    let before = out.len();
    for f in now.files.iter().filter(|f| f.kind != SourceKind::Revision) {
        let change = match recorded.get(f.label.as_str()) {
            Some(r) if r.checksum == f.checksum => continue,
            Some(_) => "edited",
            None => "now used",
        };
        out.push(FileChange {
            path: f.label.clone(),
            kind: f.kind.as_str().into(),
            change: change.into(),
        });
    }
    for (path, r) in &recorded {
        if !now.files.iter().any(|f| f.label == *path) {
            out.push(FileChange {
                path: path.to_string(),
                kind: r.kind.clone(),
                change: "no longer used".into(),
            });
        }
    }
    if out.len() == before {
        // The digest differs but no recorded file does: the rows were not kept.
        out.push(FileChange {
            path: "(lib/ modules or hook files)".into(),
            kind: "module".into(),
            change: "edited".into(),
        });
    }
    out
}

/// Applied revisions whose own file, `lib/` modules or hook files changed since.
pub fn changed_scripts(
    project: &Project,
    records: &BTreeMap<String, RevisionRecord>,
) -> Vec<ChangedScript> {
    records
        .values()
        .filter(|r| r.state == RevisionState::Applied)
        .filter_map(|r| {
            let m = project.graph.get(&r.revision)?;
            let files = file_changes(r, m, project);
            (!files.is_empty()).then(|| ChangedScript {
                revision: r.revision.clone(),
                files,
            })
        })
        .collect()
}

/// A unified diff of one file: the text that ran against the file now.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SourceDiff {
    /// The file's label (its root's folder name and its path inside the root).
    pub path: String,
    /// How it changed, as in [`FileChange::change`].
    pub change: String,
    /// The diff, or why none can be shown (the text was not kept).
    pub diff: String,
}

/// The diffs of the changed files of `m`, from the texts `recorded` keeps.
pub fn diffs(
    changes: &[FileChange],
    recorded: &[SourceRecord],
    now: &RevisionSources,
) -> Vec<SourceDiff> {
    changes
        .iter()
        .map(|c| {
            let old = recorded.iter().find(|r| r.path == c.path);
            let new = now.files.iter().find(|f| f.label == c.path);
            let diff = match (
                old.map(|o| o.text.as_deref()),
                new.map(|n| n.text.as_deref()),
            ) {
                (Some(None), _) | (_, Some(None)) => {
                    "(no diff: the text was larger than the ledger keeps, or not UTF-8)".into()
                }
                (None, _) if c.kind == SourceKind::Revision.as_str() => {
                    "(no diff: the revision was applied before Ferry kept the text it ran \
                     (ledger version 1), or it was stamped)"
                        .into()
                }
                (old, new) => similar::udiff::unified_diff(
                    similar::Algorithm::Myers,
                    old.flatten().unwrap_or(""),
                    new.flatten().unwrap_or(""),
                    3,
                    Some((&format!("applied/{}", c.path), &format!("now/{}", c.path))),
                ),
            };
            SourceDiff {
                path: c.path.clone(),
                change: c.change.clone(),
                diff,
            }
        })
        .collect()
}

/// What `accept` recorded.
#[derive(Debug, Clone, serde::Serialize)]
pub struct AcceptReport {
    /// The revision accepted.
    pub revision: String,
    /// The files that differed from the record (empty: nothing had changed).
    pub files: Vec<FileChange>,
    /// Who accepted it.
    pub by: String,
    /// Why.
    pub reason: String,
}

impl Migrator {
    /// Records the files of applied revision `rev` as they are now (its checksum, the
    /// digest of its modules and hooks, and their text), under the lock, with a history
    /// row naming who accepted and why. Refused without a reason, and for a revision
    /// that is not applied; nothing runs.
    pub fn accept(&self, rev: &str, reason: &str, by: Option<&str>) -> Result<AcceptReport, Error> {
        let reason = reason.trim();
        if reason.is_empty() {
            return Err(Error::Refused(
                "accept needs --reason TEXT: why the changed files may stand for what ran \
                 (it is written into the history); nothing was recorded"
                    .into(),
            ));
        }
        let (project, dbs) = self.setup()?;
        let id = target::resolve_id(&project.graph, rev)?.to_string();
        let m = project.graph.get(&id).expect("resolved ids exist");
        let mut actor = Actor::current();
        if let Some(by) = by.map(str::trim).filter(|b| !b.is_empty()) {
            actor.username = by.to_string();
        }
        let db = dbs.of_tree(&m.tree);
        self.locked_all(&dbs, |conns| {
            let ledgers = Ledgers::read(conns)?;
            ledgers.refuse_misplaced(&dbs, &project.graph)?;
            let records = ledgers.all();
            let record = match records.get(&id) {
                Some(r) if r.state == RevisionState::Applied => r,
                Some(r) => {
                    return Err(Error::Refused(format!(
                        "revision {id} is {}, not applied: accept records the files of an \
                         applied revision; `ferry upgrade` runs (or resumes) it with the files \
                         as they are; nothing was recorded",
                        r.state.as_str()
                    )))
                }
                None => {
                    return Err(Error::Refused(format!(
                        "revision {id} is not applied: there is nothing to accept; nothing was \
                         recorded"
                    )))
                }
            };
            let files = file_changes(record, m, &project);
            let sources = revision_sources::of_revision(m, &project.hooks);
            let conn = conns[db].as_mut();
            ledger::ensure(conn)?;
            let key = RevisionKey {
                revision: &m.id,
                tree: &m.tree,
                version: &m.version,
                checksum: &m.checksum,
            };
            let listed: Vec<String> = files
                .iter()
                .map(|f| format!("{} ({})", f.path, f.change))
                .collect();
            let note = format!(
                "accepted by {}: {reason}; files: {}",
                actor.username,
                if listed.is_empty() {
                    "none had changed".to_string()
                } else {
                    listed.join(", ")
                }
            );
            let now = ledger::now_ms();
            let written = with_transaction(conn, |conn| {
                checkpoint::record_acceptance(conn, &key, &actor, &sources, now, &note)
            });
            written?;
            Ok(AcceptReport {
                revision: id.clone(),
                files,
                by: actor.username.clone(),
                reason: reason.to_string(),
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revision_sources::SourceFile;

    fn change(path: &str, kind: SourceKind) -> FileChange {
        FileChange {
            path: path.into(),
            kind: kind.as_str().into(),
            change: "edited".into(),
        }
    }

    fn kept(path: &str, kind: SourceKind, text: Option<&str>) -> SourceRecord {
        SourceRecord {
            path: path.into(),
            kind: kind.as_str().into(),
            checksum: String::new(),
            text: text.map(String::from),
        }
    }

    fn now(path: &str, kind: SourceKind, text: Option<&str>) -> RevisionSources {
        RevisionSources {
            files: vec![SourceFile {
                label: path.into(),
                path: path.into(),
                kind,
                checksum: String::new(),
                text: text.map(String::from),
            }],
        }
    }

    #[test]
    fn a_kept_text_is_diffed_against_the_file_now() {
        let path = "obs_test/lib/tst_names.rhai";
        let d = diffs(
            &[change(path, SourceKind::Module)],
            &[kept(
                path,
                SourceKind::Module,
                Some("fn a() { 1 }\nfn b() { 2 }\n"),
            )],
            &now(
                path,
                SourceKind::Module,
                Some("fn a() { 1 }\nfn b() { 3 }\n"),
            ),
        );
        assert_eq!(
            d[0].diff,
            "--- applied/obs_test/lib/tst_names.rhai\n+++ now/obs_test/lib/tst_names.rhai\n\
             @@ -1,2 +1,2 @@\n fn a() { 1 }\n-fn b() { 2 }\n+fn b() { 3 }\n"
        );
    }

    #[test]
    fn a_text_too_large_to_keep_or_never_kept_says_so() {
        let path = "scripts/t/001.rhai";
        let large = diffs(
            &[change(path, SourceKind::Revision)],
            &[kept(path, SourceKind::Revision, None)],
            &now(path, SourceKind::Revision, Some("x")),
        );
        assert!(
            large[0].diff.contains("larger than the ledger keeps"),
            "{}",
            large[0].diff
        );
        let old_ledger = diffs(
            &[change(path, SourceKind::Revision)],
            &[],
            &now(path, SourceKind::Revision, Some("x")),
        );
        assert!(
            old_ledger[0]
                .diff
                .contains("applied before Ferry kept the text"),
            "{}",
            old_ledger[0].diff
        );
    }
}
