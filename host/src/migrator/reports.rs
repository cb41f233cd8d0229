//! What `show` and `plan` report about revisions.

use super::Project;
use crate::ledger::RevisionRecord;
use crate::metadata::RevisionMeta;
use crate::plan::Direction;

#[derive(Debug, Clone, serde::Serialize)]
pub struct HookUse {
    pub hook: String,
    /// `KEY` (or `null` for an unkeyed hook) and the file providing it.
    pub providers: Vec<HookProvider>,
}

/// One file that provides a hook.
#[derive(Debug, Clone, serde::Serialize)]
pub struct HookProvider {
    pub key: Option<String>,
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
    pub revision: String,
    pub tree: String,
    pub version: String,
    pub message: String,
    pub file: String,
    pub checksum: String,
    pub parents: Vec<String>,
    pub children: Vec<String>,
    pub depends_on: Vec<String>,
    pub hooks: Vec<HookUse>,
    pub online_safe: bool,
    pub downgradable: bool,
    pub expected_digest: Option<String>,
    pub head: bool,
    /// `pending` when the ledger has no record, else the record's state.
    pub state: String,
    /// The ledger record, when there is one.
    pub record: Option<RevisionRecord>,
    /// Whether the applied script's checksum differs from the file's now.
    pub changed: bool,
}

/// One revision of a plan, as `plan` reports it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlanEntry {
    pub revision: String,
    pub tree: String,
    /// The database it runs in, when trees live in several (`None`: one database).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    pub version: String,
    pub message: String,
    pub file: String,
    pub hooks: Vec<HookUse>,
    /// Whether it may run while the repository is in use (`ONLINE_SAFE`).
    pub online_safe: bool,
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
    pub direction: Direction,
    pub revisions: Vec<PlanEntry>,
    /// Hook problems that would stop the run (missing or doubly provided hooks).
    pub problems: Vec<String>,
}

pub(super) fn state_text(record: Option<&RevisionRecord>) -> String {
    record
        .map(|r| r.state.as_str().to_string())
        .unwrap_or_else(|| "pending".into())
}
