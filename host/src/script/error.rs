//! Errors of a script run, told apart by who failed: the script's own `throw`, a
//! script mistake found by the engine, a sandbox limit, or the host (database).

use super::session::Session;
use crate::backend::DbError;
use rhai::{EvalAltResult, Position};
use std::fmt;
use std::path::{Path, PathBuf};

/// Who failed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// The script threw (`throw "..."`).
    Thrown,
    /// The script did something the engine rejects (unknown function, wrong type, ...).
    Script,
    /// A sandbox limit stopped the script (operations, time, recursion, sizes).
    Limit,
    /// The database (or another host service) failed.
    Host,
    /// The file does not compile.
    Syntax,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::Thrown => "the script threw an error",
            FailureKind::Script => "script error",
            FailureKind::Limit => "the script hit a sandbox limit",
            FailureKind::Host => "database failure",
            FailureKind::Syntax => "syntax error",
        })
    }
}

/// A failure inside a script, with where it happened.
#[derive(Debug, Clone, thiserror::Error, serde::Serialize)]
pub struct ScriptError {
    pub kind: FailureKind,
    pub message: String,
    pub revision: String,
    pub step: Option<String>,
    pub file: PathBuf,
    /// 1-based; 0 when unknown.
    pub line: usize,
    pub column: usize,
    /// The offending source line, when the file could be read.
    pub source_line: Option<String>,
}

impl fmt::Display for ScriptError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)?;
        write!(f, "\n  revision {}", self.revision)?;
        if let Some(step) = &self.step {
            write!(f, ", step {step:?}")?;
        }
        write!(f, "\n  at {}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}:{}", self.line, self.column)?;
        }
        if let Some(src) = &self.source_line {
            write!(f, "\n  | {}", src.trim_end())?;
        }
        Ok(())
    }
}

impl ScriptError {
    /// One line for the ledger's error column: kind, message and position.
    pub fn ledger_text(&self) -> String {
        let mut s = format!("{}: {}", self.kind, self.message);
        if self.line > 0 {
            s.push_str(&format!(
                " (at {}:{}:{})",
                self.file.display(),
                self.line,
                self.column
            ));
        }
        if let Some(step) = &self.step {
            s.push_str(&format!(" [step {step}]"));
        }
        s
    }
}

/// Turns a host failure into the error the script sees, remembering the host error.
pub fn host_failure(session: &mut Session, e: DbError) -> Box<EvalAltResult> {
    let message = session.record_host_error(e);
    Box::new(EvalAltResult::ErrorRuntime(message.into(), Position::NONE))
}

/// A script used the API wrongly (bad argument, nesting, ...).
pub fn script_failure(message: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorSystem(
        "script error".into(),
        message.into().into(),
    ))
}

/// Reads line `line` (1-based) of a file, if it can.
pub fn source_line(path: &Path, line: usize) -> Option<String> {
    if line == 0 {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    text.lines().nth(line - 1).map(|l| l.to_string())
}

/// Classifies an engine error into a [`ScriptError`].
pub fn classify(
    err: &EvalAltResult,
    host_error: Option<DbError>,
    revision: &str,
    step: Option<String>,
    default_file: &Path,
) -> ScriptError {
    // Innermost error and the file it happened in (a function of an imported module
    // carries its own source).
    let mut current = err;
    let mut file: PathBuf = default_file.to_path_buf();
    let mut pos = err.position();
    while let EvalAltResult::ErrorInFunctionCall(_, source, inner, p)
    | EvalAltResult::ErrorInModule(source, inner, p) = current
    {
        if !source.is_empty() {
            file = PathBuf::from(source);
        }
        if !p.is_none() {
            pos = *p;
        }
        current = inner;
        if !current.position().is_none() {
            pos = current.position();
        }
    }
    let (kind, message) = match (current, host_error) {
        (_, Some(h)) => (FailureKind::Host, h.to_string()),
        (EvalAltResult::ErrorRuntime(v, _), None) => (FailureKind::Thrown, v.to_string()),
        (EvalAltResult::ErrorSystem(_, e), None) => (FailureKind::Script, e.to_string()),
        (
            EvalAltResult::ErrorTooManyOperations(_)
            | EvalAltResult::ErrorStackOverflow(_)
            | EvalAltResult::ErrorDataTooLarge(..)
            | EvalAltResult::ErrorTooManyModules(_)
            | EvalAltResult::ErrorTooManyVariables(_)
            | EvalAltResult::ErrorTerminated(..),
            None,
        ) => (FailureKind::Limit, limit_message(current)),
        (EvalAltResult::ErrorParsing(..), None) => (FailureKind::Syntax, current.to_string()),
        (other, None) => (FailureKind::Script, strip_position(&other.to_string())),
    };
    let line = pos.line().unwrap_or(0);
    let column = pos.position().unwrap_or(0);
    ScriptError {
        kind,
        message,
        revision: revision.to_string(),
        step,
        source_line: source_line(&file, line),
        file,
        line,
        column,
    }
}

fn limit_message(e: &EvalAltResult) -> String {
    match e {
        EvalAltResult::ErrorTooManyOperations(_) => {
            "too many operations: the script ran past its operation limit (a runaway loop?); \
             raise limits.max_operations if the work is genuine"
                .into()
        }
        EvalAltResult::ErrorStackOverflow(_) => {
            "too many nested calls (runaway recursion?); the call depth limit is limits.max_call_depth".into()
        }
        EvalAltResult::ErrorTerminated(v, _) => format!("stopped: {v}"),
        other => strip_position(&other.to_string()),
    }
}

fn strip_position(s: &str) -> String {
    match s.rfind(" (line ") {
        Some(i) if s.ends_with(')') => s[..i].to_string(),
        _ => s.to_string(),
    }
}
