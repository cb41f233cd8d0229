//! Progress and log events, sent by the runner and by scripts to whoever embeds Ferry.

#![warn(missing_docs)]

/// The severity of a script's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// `log::debug`.
    Debug,
    /// `log::info`.
    Info,
    /// `log::warn`.
    Warn,
    /// `log::error`.
    Error,
}

/// Something worth telling the operator or the embedding application. Every variant
/// names the revision it belongs to by id; `step` is a step's name as the script gave it.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A revision's `fn upgrade` or `fn downgrade` starts.
    RevisionStarted {
        /// The revision id.
        revision: String,
        /// `upgrade` or `downgrade`.
        direction: String,
    },
    /// A revision ended, applied or not.
    RevisionFinished {
        /// The revision id.
        revision: String,
        /// `upgrade` or `downgrade`.
        direction: String,
        /// `applied` or `failed`.
        outcome: String,
        /// Wall time of the run.
        duration_ms: i64,
        /// Rows the run's statements reported.
        rows: u64,
    },
    /// A step starts (a committed one is skipped instead).
    StepStarted {
        /// The revision id.
        revision: String,
        /// The step's name.
        step: String,
        /// Units of work the step declared, if it did.
        total: Option<u64>,
    },
    /// A step that committed in an earlier run is skipped.
    StepSkipped {
        /// The revision id.
        revision: String,
        /// The step's name.
        step: String,
    },
    /// A step committed with its record.
    StepFinished {
        /// The revision id.
        revision: String,
        /// The step's name.
        step: String,
        /// Rows the step's statements reported.
        rows: u64,
    },
    /// Progress inside a step: `done` of `total` units (rows or batches).
    Progress {
        /// The revision id.
        revision: String,
        /// The step's name.
        step: String,
        /// Units done so far.
        done: u64,
        /// Units in all, when known.
        total: Option<u64>,
    },
    /// A script's `log::*` line.
    Log {
        /// The revision id.
        revision: String,
        /// Its severity.
        level: Level,
        /// The text.
        message: String,
    },
    /// The migration lock is held by another migrator; Ferry waits.
    LockWaiting {
        /// Who holds it, as the lock record names it (or `another migrator`).
        holder: String,
    },
}

/// Receives events. Implementations must be cheap: they run on the migration's thread.
pub trait Observer {
    /// Called for each event, in order.
    fn event(&self, event: &Event);
}

/// An observer that drops everything.
pub struct Silent;

impl Observer for Silent {
    fn event(&self, _event: &Event) {}
}
