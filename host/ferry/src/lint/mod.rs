//! `ferry lint`: static checks of the script roots and the configuration, before
//! anything runs. `plan`, `upgrade` (also `--dry-run` and `--sql`) run them first and
//! refuse to start on an error, before they open the repository.
//!
//! Every script (revisions, hooks, `lib/` modules, `stdlib/`) is read as the syntax
//! tree discovery compiled (see [`crate::analysis`]; `stdlib/` modules are compiled
//! here, with the same parser); nothing is executed. The checks:
//!
//! * syntax errors in `lib/` and `stdlib/` modules (`scripts.rs`; revisions and hooks
//!   are compiled by discovery already);
//! * calls of functions that no script, imported module or Ferry's API defines, calls
//!   into a namespace that is neither an import nor a capability, methods the `db`
//!   handle does not have, and imports that do not resolve (`calls.rs`);
//! * `hooks::run` of a hook the revision does not declare in `HOOKS`, and hook files
//!   whose hook no revision declares (`hooks.rs`);
//! * configuration keys (`--set`, `ferry.toml`) that no script and no host setting
//!   knows (`config_keys.rs`);
//! * a revision whose SQL touches a table that another revision creates, when that
//!   revision is not among its ancestors: a missing `DEPENDS_ON` (a warning: the table
//!   names are read from SQL literals, a heuristic; `tables.rs`).
//!
//! Every problem is reported at once, as `path:line:column: error|warning: message`.

mod calls;
mod config_keys;
mod hooks;
mod scripts;
mod sql;
mod tables;

pub use config_keys::ConfigSources;

use crate::config::ConfigMap;
use crate::discovery::Discovered;
use crate::graph::Graph;
use crate::script::ModulePaths;
use std::fmt;
use std::path::PathBuf;

/// How bad a problem is: errors stop `plan` and `upgrade`; warnings are printed only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Stops `plan` and `upgrade`.
    Error,
    /// Printed only.
    Warning,
}

/// One problem found by the checks.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The file at fault (or where a configuration value came from, e.g. `--set K=V`).
    pub path: PathBuf,
    /// 1-based line and column; 0 when not known.
    pub line: usize,
    /// 1-based column; 0 when not known.
    pub column: usize,
    /// How bad it is.
    pub severity: Severity,
    /// What is wrong, and what to do.
    pub message: String,
}

impl Problem {
    fn at(
        path: impl Into<PathBuf>,
        pos: rhai::Position,
        severity: Severity,
        message: String,
    ) -> Self {
        Problem {
            path: path.into(),
            line: pos.line().unwrap_or(0),
            column: pos.position().unwrap_or(0),
            severity,
            message,
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.path.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
            if self.column > 0 {
                write!(f, ":{}", self.column)?;
            }
        }
        let severity = match self.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        write!(f, ": {severity}: {}", self.message)
    }
}

/// What the checks read: the discovered scripts, their graph, where imports resolve,
/// and the configuration with where each value came from.
pub struct Inputs<'a> {
    pub found: &'a Discovered,
    pub graph: &'a Graph,
    pub paths: &'a ModulePaths,
    pub config: &'a ConfigMap,
    pub sources: &'a ConfigSources,
}

/// Runs every check; problems sorted by file and position, errors and warnings mixed.
pub fn check(inputs: &Inputs) -> Vec<Problem> {
    // The trees discovery compiled (as written: no constant folding); the engine that
    // runs scripts only tells which functions exist.
    let host = crate::script::detached_host(inputs.paths.clone());
    let set = scripts::ScriptSet::collect(inputs.found, inputs.paths);
    let mut problems = set.syntax_errors();
    let api = calls::Api::of_engine(host.engine());
    problems.extend(calls::check(&set, &api));
    problems.extend(hooks::check(&set, inputs.found));
    problems.extend(config_keys::check(&set, inputs.config, inputs.sources));
    problems.extend(tables::check(&set, inputs.graph));
    problems.sort_by(|a, b| {
        (&a.path, a.line, a.column, &a.message).cmp(&(&b.path, b.line, b.column, &b.message))
    });
    problems.dedup();
    problems
}

/// The candidate closest to `word` by edit distance, if it is close enough to be a
/// plausible misspelling (at most a third of the word's length, and at least 1 edit).
pub(crate) fn closest<'a>(
    word: &str,
    candidates: impl IntoIterator<Item = &'a str>,
) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != word)
        .map(|c| (crate::config::edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, c)| c)
}

/// `"; did you mean `x`?"` when a close candidate exists, else nothing.
pub(crate) fn suggestion<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> String {
    closest(word, candidates)
        .map(|c| format!("; did you mean `{c}`?"))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggestions_are_near_misses_only() {
        assert_eq!(
            closest("populate_amplifer", ["populate_amplifier", "dataset_uuid"]),
            Some("populate_amplifier")
        );
        assert_eq!(closest("frobnicate", ["populate_amplifier"]), None);
        assert_eq!(closest("x", ["x"]), None);
    }

    #[test]
    fn problems_print_as_file_line_column() {
        let p = Problem {
            path: "a/b.rhai".into(),
            line: 3,
            column: 7,
            severity: Severity::Error,
            message: "m".into(),
        };
        assert_eq!(p.to_string(), "a/b.rhai:3:7: error: m");
        let p = Problem {
            path: "--set a=1".into(),
            line: 0,
            column: 0,
            severity: Severity::Warning,
            message: "m".into(),
        };
        assert_eq!(p.to_string(), "--set a=1: warning: m");
    }
}
