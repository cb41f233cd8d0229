//! Errors of a script run, told apart by who failed: the script's own `throw`, a
//! script mistake found by the engine, a sandbox limit, or the host (database).

use super::session::{Refused, Session};
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
    /// What kind of failure it is.
    pub kind: FailureKind,
    /// What went wrong.
    pub message: String,
    /// The revision that failed.
    pub revision: String,
    /// (`step`, `file` and `source_line` are boxed to keep `Result<_, ScriptError>` small.)
    pub step: Option<Box<str>>,
    /// The script file.
    pub file: Box<Path>,
    /// 1-based; 0 when unknown.
    pub line: usize,
    /// 1-based column; 0 when unknown.
    pub column: usize,
    /// The offending source line, when the file could be read.
    pub source_line: Option<Box<str>>,
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

/// Turns a statement's refusal into the error the script sees: a broken rule of steps
/// is the script's fault, anything else the host's.
pub fn refused(session: &mut Session, r: Refused) -> Box<EvalAltResult> {
    match r {
        Refused::Misuse(m) => script_failure(m.to_string()),
        Refused::Db(e) => host_failure(session, e),
    }
}

/// The value of an error raised because a script used the API wrongly. It travels as
/// a runtime error (so that the engine records the script position of the call, which
/// `ErrorSystem` cannot carry) and is told apart from a script's own `throw` by its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScriptFault(pub String);

impl fmt::Display for ScriptFault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A script used the API wrongly (bad argument, nesting, a missing configuration key, ...).
pub fn script_failure(message: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        rhai::Dynamic::from(ScriptFault(message.into())),
        Position::NONE,
    ))
}

/// Gives an error raised by a namespaced function (`config::get`, `schema::add_index`)
/// the script position of the call: Rhai fills it in for methods (`db.execute`) but not
/// for functions called through a namespace.
pub fn at<T>(
    ctx: &rhai::NativeCallContext,
    f: impl FnOnce() -> Result<T, Box<EvalAltResult>>,
) -> Result<T, Box<EvalAltResult>> {
    f().map_err(|mut e| {
        if e.position().is_none() {
            e.set_position(ctx.call_position());
        }
        e
    })
}

/// Registers [`ScriptFault`] so that a script that catches one can print it.
pub fn register(engine: &mut rhai::Engine) {
    engine.register_type_with_name::<ScriptFault>("ScriptFault");
    engine.register_fn("to_string", |f: &mut ScriptFault| f.0.clone());
    engine.register_fn("to_debug", |f: &mut ScriptFault| f.0.clone());
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
        (EvalAltResult::ErrorRuntime(v, _), None) => match v.read_lock::<ScriptFault>() {
            Some(fault) => (FailureKind::Script, fault.0.clone()),
            None => (FailureKind::Thrown, v.to_string()),
        },
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
        // A closure passed to db.each that captures `db` shares it with the call itself.
        (EvalAltResult::ErrorDataRace(what, _), None) if what.contains("'each'") => (
            FailureKind::Script,
            "db cannot be used inside the callback of db.each (the result is still being \
             read); collect what you need and write after the loop, or use db.batches"
                .into(),
        ),
        (other, None) => (FailureKind::Script, strip_position(&other.to_string())),
    };
    let line = pos.line().unwrap_or(0);
    let column = pos.position().unwrap_or(0);
    ScriptError {
        kind,
        message,
        revision: revision.to_string(),
        step: step.map(String::into_boxed_str),
        source_line: source_line(&file, line).map(String::into_boxed_str),
        file: file.into_boxed_path(),
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
