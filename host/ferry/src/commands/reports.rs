//! What `show` and `plan` report about revisions.

#![warn(missing_docs)]

use super::Project;
use crate::ledger::RevisionRecord;
use crate::metadata::RevisionMeta;
use crate::plan::Direction;

/// A hook a revision declares, and who provides it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HookUse {
    /// The hook's name.
    pub hook: String,
    /// `KEY` (or `null` for an unkeyed hook) and the file providing it.
    pub providers: Vec<HookProvider>,
}

/// One file that provides a hook.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HookProvider {
    /// The key it provides the hook for (`None`: an unkeyed hook).
    pub key: Option<String>,
    /// The plugin file.
    pub file: String,
}

impl Project {
    /// Which files provide each hook `rev` declares.
    pub fn hook_uses(&self, rev: &RevisionMeta) -> Vec<HookUse> {
        rev.hooks
            .iter()
            .map(|hook| HookUse {
                hook: hook.clone(),
                providers: self
                    .hooks
                    .providers
                    .iter()
                    .filter(|((name, _), _)| name == hook)
                    .flat_map(|((_, key), metas)| {
                        metas.iter().map(move |m| HookProvider {
                            key: key.clone(),
                            file: m.path.display().to_string(),
                        })
                    })
                    .collect(),
            })
            .collect()
    }
}

/// What `show REV` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RevisionInfo {
    /// The revision id (`REVISION`).
    pub revision: String,
    /// Its tree (`TREE`).
    pub tree: String,
    /// The tree's version after it (`VERSION`).
    pub version: String,
    /// `MESSAGE`.
    pub message: String,
    /// The script file.
    pub file: String,
    /// sha256 of the file's bytes.
    pub checksum: String,
    /// `PARENTS`.
    pub parents: Vec<String>,
    /// The revisions whose parents name it.
    pub children: Vec<String>,
    /// `DEPENDS_ON`.
    pub depends_on: Vec<String>,
    /// `BEFORE`: revisions of other trees this one runs before.
    pub before: Vec<String>,
    /// The revisions whose `BEFORE` names this one (they run before it).
    pub after: Vec<String>,
    /// The hooks it declares, with their providers.
    pub hooks: Vec<HookUse>,
    /// `ONLINE_SAFE`.
    pub online_safe: bool,
    /// Whether it has `fn downgrade`.
    pub downgradable: bool,
    /// `DIGEST`, the schema digest expected after it.
    pub expected_digest: Option<String>,
    /// Whether it is a head of its tree.
    pub head: bool,
    /// `pending` when the ledger has no record, else the record's state.
    pub state: String,
    /// The ledger record, when there is one.
    pub record: Option<RevisionRecord>,
    /// Whether any file the applied revision ran (its own, a `lib/` module, a hook
    /// file) differs from the file now.
    pub changed: bool,
    /// Which files differ, and how.
    pub changes: Vec<super::FileChange>,
    /// A unified diff per changed file (the text that ran against the file now).
    pub diffs: Vec<super::SourceDiff>,
}

/// One revision of a plan, as `plan` reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanEntry {
    /// The revision id.
    pub revision: String,
    /// Its tree.
    pub tree: String,
    /// The database it runs in, when trees live in several (`None`: one database).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// The tree's version after it.
    pub version: String,
    /// `MESSAGE`.
    pub message: String,
    /// The script file.
    pub file: String,
    /// The hooks it declares, with their providers.
    pub hooks: Vec<HookUse>,
    /// Whether it may run while the repository is in use (`ONLINE_SAFE`).
    pub online_safe: bool,
    /// Whether it has `fn downgrade`.
    pub downgradable: bool,
    /// The steps it declares (`(computed)` for names built at run time); empty for a
    /// revision that runs as one transaction.
    pub steps: Vec<String>,
    /// Steps an earlier run of it already committed (a rerun skips them).
    pub steps_done: Vec<String>,
    /// `pending`, or the state of an unfinished earlier run (`failed`, `running`).
    pub state: String,
}

/// What `plan` reports.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanReport {
    /// Upgrade or downgrade.
    pub direction: Direction,
    /// The revisions in the order they would run.
    pub revisions: Vec<PlanEntry>,
    /// Hook problems that would stop the run (missing or doubly provided hooks).
    pub problems: Vec<String>,
}

pub(super) fn state_text(record: Option<&RevisionRecord>) -> String {
    record
        .map(|r| r.state.as_str().to_string())
        .unwrap_or_else(|| "pending".into())
}
