//! Progress and log events, sent by the runner and by scripts to whoever embeds Ferry.

/// The severity of a script's log line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// Something worth telling the operator or the embedding application.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    RevisionStarted {
        revision: String,
        direction: String,
    },
    RevisionFinished {
        revision: String,
        direction: String,
        outcome: String,
        duration_ms: i64,
        rows: u64,
    },
    StepStarted {
        revision: String,
        step: String,
        total: Option<u64>,
    },
    StepSkipped {
        revision: String,
        step: String,
    },
    StepFinished {
        revision: String,
        step: String,
        rows: u64,
    },
    /// Progress inside a step: `done` of `total` units (rows or batches).
    Progress {
        revision: String,
        step: String,
        done: u64,
        total: Option<u64>,
    },
    Log {
        revision: String,
        level: Level,
        message: String,
    },
    LockWaiting {
        holder: String,
    },
}

/// Receives events. Implementations must be cheap: they run on the migration's thread.
pub trait Observer {
    fn event(&self, event: &Event);
}

/// An observer that drops everything.
pub struct Silent;

impl Observer for Silent {
    fn event(&self, _event: &Event) {}
}
