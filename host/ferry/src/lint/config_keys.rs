//! Configuration keys that nothing reads: a misspelt `--set` or `ferry.toml` key would
//! otherwise be ignored without a word, and the script fall back to its default.
//!
//! A key is known when it is a host setting (`limits.*`, checked by
//! [`crate::config::limits`]; `databases.*`, checked by [`crate::databases`];
//! [`HOST_KEYS`]) or when
//! some script mentions it as a string literal or a map key (`config::get("a.b")`,
//! `DEFAULTS = #{ "a.b": 1 }`, or a literal handed to a helper that calls `config::`).
//! A key a script builds at run time (`config::get(`${tree}.size`)`) is not seen: set
//! such keys in a `DEFAULTS` map so that lint knows them.

use super::scripts::ScriptSet;
use super::{suggestion, Problem, Severity};
use crate::config::ConfigMap;
use rhai::{ASTNode, Expr};
use std::collections::BTreeSet;
use std::path::PathBuf;

/// Keys the host itself reads, besides `limits.*` and `databases.*`.
pub const HOST_KEYS: [&str; 2] = [
    // The attributes table's name (script/attributes.rs).
    "attributes.table",
    // How many steps run at once on PostgreSQL (`--jobs`, config.rs).
    crate::config::JOBS_KEY,
];

/// Where the configuration came from, so that a problem names the file or the `--set`.
#[derive(Debug, Clone, Default)]
pub struct ConfigSources {
    /// The config file that was read, if any.
    pub file: Option<PathBuf>,
    /// The `--set KEY=VALUE` arguments, as given.
    pub sets: Vec<String>,
}

/// Every string literal and map key of every script.
fn literals(set: &ScriptSet) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for ast in set.scripts.iter().filter_map(|s| s.ast.as_ref()) {
        ast.walk(&mut |path: &[ASTNode]| {
            match path.last() {
                Some(ASTNode::Expr(Expr::StringConstant(s, _))) => {
                    out.insert(s.to_string());
                }
                Some(ASTNode::Expr(Expr::Map(m, _))) => {
                    out.extend(m.0.iter().map(|(k, _)| k.name.to_string()));
                }
                _ => {}
            }
            true
        });
    }
    out
}

/// The line of `key` in a TOML file: the first line that assigns its last segment
/// (1-based; 0 when not found, e.g. for a key written as a dotted name).
fn line_in_file(file: &std::path::Path, key: &str) -> usize {
    let Ok(text) = std::fs::read_to_string(file) else {
        return 0;
    };
    let last = key.rsplit('.').next().unwrap_or(key);
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            let name = l.split('=').next().unwrap_or("").trim().trim_matches('"');
            l.contains('=') && (name == last || name == key)
        })
        .map(|i| i + 1)
        .unwrap_or(0)
}

pub fn check(set: &ScriptSet, config: &ConfigMap, sources: &ConfigSources) -> Vec<Problem> {
    let unknown: Vec<&String> = config
        .keys()
        .filter(|k| !k.starts_with("limits.") && !k.starts_with("databases."))
        .filter(|k| !HOST_KEYS.contains(&k.as_str()))
        .collect();
    if unknown.is_empty() {
        return Vec::new();
    }
    let known = literals(set);
    let mut candidates: Vec<&str> = known
        .iter()
        .map(String::as_str)
        .filter(|k| !k.is_empty() && !k.contains(char::is_whitespace))
        .collect();
    candidates.extend(crate::config::LIMIT_KEYS.iter().map(|(k, _)| *k));
    candidates.extend(HOST_KEYS);
    let mut problems = Vec::new();
    for key in unknown.into_iter().filter(|k| !known.contains(*k)) {
        let message = format!(
            "unknown configuration key {key}: no script reads it and Ferry has no such setting{}",
            suggestion(key, candidates.iter().copied())
        );
        let from_set = sources.sets.iter().rev().find(|s| {
            crate::config::parse_set(s)
                .map(|(k, _)| k == *key)
                .unwrap_or(false)
        });
        let (path, line) = match (from_set, &sources.file) {
            (Some(s), _) => (PathBuf::from(format!("--set {s}")), 0),
            (None, Some(f)) => (f.clone(), line_in_file(f, key)),
            (None, None) => (PathBuf::from("configuration"), 0),
        };
        problems.push(Problem {
            path,
            line,
            column: usize::from(line > 0),
            severity: Severity::Error,
            message,
        });
    }
    problems
}
