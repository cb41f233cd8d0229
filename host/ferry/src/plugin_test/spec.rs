//! `ferry-test.toml`: what `ferry test PLUGIN_DIR` starts from and what it expects.
//!
//! ```toml
//! [start]                 # the fixture repository; omit it for an empty repository
//! sample = 200            # the WORKLOAD.md sample registry with N datasets (seed: `seed`)
//! # sql = "fixture.sql"   # or: SQL run on an empty database (path relative to the plugin)
//!
//! [[expect]]
//! name = "TST has four detectors"
//! sql = "SELECT COUNT(*) FROM detector WHERE instrument = 'TST'"
//! rows = [[4]]
//! after = "upgrade"       # or "downgrade" (after the plugin's trees are undone)
//! ```
//!
//! Every fault names the file and the line it is on.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::backend::Value;

/// The file name `ferry test` reads in the plugin's folder.
pub const SPEC_FILE: &str = "ferry-test.toml";

/// A plugin's test declaration, read and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct TestSpec {
    /// The file it was read from (for messages).
    pub path: PathBuf,
    pub start: Start,
    pub expectations: Vec<Expectation>,
}

/// The state of the fixture repository before the first upgrade.
#[derive(Debug, Clone, PartialEq)]
pub enum Start {
    /// No tables at all: the upgrade creates the repository.
    Empty,
    /// The WORKLOAD.md sample registry (as `ferry-sample --n N --seed SEED` makes it).
    Sample { n: u64, seed: u64 },
    /// A SQL file run on an empty database (it must run on every backend tested).
    Sql(PathBuf),
}

/// When an expectation is checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum After {
    /// After each upgrade to the heads (the first and the one after the downgrade).
    Upgrade,
    /// After the plugin's trees are downgraded to their base.
    Downgrade,
}

/// A query and the rows it must return, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct Expectation {
    pub name: String,
    pub sql: String,
    pub rows: Vec<Vec<toml::Value>>,
    pub after: After,
    /// The line of its `[[expect]]` table in the spec file.
    pub line: usize,
}

/// A fault in the spec file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}:{line}: {message}", path.display())]
pub struct SpecError {
    /// The spec file (`PLUGIN_DIR/ferry-test.toml`).
    pub path: PathBuf,
    /// The 1-based line at fault (0 when the file cannot be read at all).
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSpec {
    start: Option<toml::Spanned<RawStart>>,
    #[serde(default)]
    expect: Vec<toml::Spanned<RawExpectation>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStart {
    sample: Option<u64>,
    seed: Option<u64>,
    sql: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpectation {
    name: String,
    sql: String,
    rows: Vec<Vec<toml::Value>>,
    #[serde(default = "upgrade")]
    after: After,
}

fn upgrade() -> After {
    After::Upgrade
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text[..offset.min(text.len())].matches('\n').count() + 1
}

/// Reads `PLUGIN_DIR/ferry-test.toml`.
pub fn read(plugin: &Path) -> Result<TestSpec, SpecError> {
    let path = plugin.join(SPEC_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| SpecError {
        path: path.clone(),
        line: 0,
        message: format!(
            "cannot read the plugin's test declaration: {e} (docs/PLUGINS.md, \"Testing a plugin\", says what it holds)"
        ),
    })?;
    parse(&path, plugin, &text)
}

/// Parses the text of a spec file found at `path` in the folder `plugin`.
pub fn parse(path: &Path, plugin: &Path, text: &str) -> Result<TestSpec, SpecError> {
    let fault = |offset: usize, message: String| SpecError {
        path: path.to_path_buf(),
        line: line_of(text, offset),
        message,
    };
    let raw: RawSpec = toml::from_str(text).map_err(|e| {
        let offset = e.span().map(|s| s.start).unwrap_or(0);
        fault(offset, e.message().trim().to_string())
    })?;
    let start = match raw.start {
        None => Start::Empty,
        Some(s) => {
            let offset = s.span().start;
            match s.into_inner() {
                RawStart {
                    sample: Some(_),
                    sql: Some(_),
                    ..
                } => {
                    return Err(fault(
                        offset,
                        "[start] gives both `sample` and `sql`: choose one starting state".into(),
                    ))
                }
                RawStart {
                    sample: Some(n),
                    seed,
                    ..
                } => Start::Sample {
                    n,
                    seed: seed.unwrap_or(1),
                },
                RawStart {
                    sql: Some(file),
                    seed: None,
                    ..
                } => {
                    let full = plugin.join(&file);
                    if !full.is_file() {
                        return Err(fault(
                            offset,
                            format!("[start] sql names {}, which is not a file", full.display()),
                        ));
                    }
                    Start::Sql(full)
                }
                RawStart { sql: Some(_), .. } => {
                    return Err(fault(
                        offset,
                        "[start] `seed` goes with `sample` only".into(),
                    ))
                }
                RawStart { .. } => Start::Empty,
            }
        }
    };
    let mut expectations = Vec::new();
    for e in raw.expect {
        let line = line_of(text, e.span().start);
        let e = e.into_inner();
        if e.sql.trim().is_empty() {
            return Err(SpecError {
                path: path.to_path_buf(),
                line,
                message: format!("expectation {:?} has an empty `sql`", e.name),
            });
        }
        if let Some(bad) = e.rows.iter().flatten().find(|v| comparable(v).is_none()) {
            return Err(SpecError {
                path: path.to_path_buf(),
                line,
                message: format!(
                    "expectation {:?}: rows may hold integers, floats, strings and booleans, not {}",
                    e.name,
                    bad.type_str()
                ),
            });
        }
        expectations.push(Expectation {
            name: e.name,
            sql: e.sql,
            rows: e.rows,
            after: e.after,
            line,
        });
    }
    if expectations.is_empty() {
        return Err(SpecError {
            path: path.to_path_buf(),
            line: 1,
            message: "no [[expect]] table: a plugin test must check something the plugin does"
                .into(),
        });
    }
    Ok(TestSpec {
        path: path.to_path_buf(),
        start,
        expectations,
    })
}

/// The kinds of TOML value an expectation may hold, as one comparable form.
enum Comparable<'a> {
    Int(i64),
    Float(f64),
    Text(&'a str),
    Bool(bool),
}

fn comparable(v: &toml::Value) -> Option<Comparable<'_>> {
    match v {
        toml::Value::Integer(i) => Some(Comparable::Int(*i)),
        toml::Value::Float(f) => Some(Comparable::Float(*f)),
        toml::Value::String(s) => Some(Comparable::Text(s)),
        toml::Value::Boolean(b) => Some(Comparable::Bool(*b)),
        _ => None,
    }
}

/// Whether a value read from the database is the expected one. SQLite has no boolean
/// type (a boolean column reads back as 0 or 1), so `true`/`false` also match 1/0, and
/// a UUID matches its 32-digit or hyphenated text.
pub fn value_matches(expected: &toml::Value, found: &Value) -> bool {
    match (comparable(expected), found) {
        (Some(Comparable::Int(e)), Value::Int(f)) => e == *f,
        (Some(Comparable::Int(e)), Value::Bool(f)) => e == i64::from(*f),
        (Some(Comparable::Float(e)), Value::Float(f)) => e == *f,
        (Some(Comparable::Float(e)), Value::Int(f)) => e == *f as f64,
        (Some(Comparable::Text(e)), Value::Text(f)) => e == f,
        (Some(Comparable::Text(e)), Value::Uuid(u)) => {
            uuid::Uuid::parse_str(e).is_ok_and(|x| x == *u)
        }
        (Some(Comparable::Bool(e)), Value::Bool(f)) => e == *f,
        (Some(Comparable::Bool(e)), Value::Int(f)) => i64::from(e) == *f,
        _ => false,
    }
}

/// Whether `found` are exactly the expected rows, in order.
pub fn rows_match(expected: &[Vec<toml::Value>], found: &[Vec<Value>]) -> bool {
    expected.len() == found.len()
        && expected
            .iter()
            .zip(found)
            .all(|(e, f)| e.len() == f.len() && e.iter().zip(f).all(|(e, f)| value_matches(e, f)))
}

/// Rows read from the database, written as an expectation would write them.
pub fn rows_text(rows: &[Vec<Value>]) -> String {
    let rows: Vec<String> = rows
        .iter()
        .map(|r| {
            let cells: Vec<String> = r
                .iter()
                .map(|v| match v {
                    Value::Text(s) => format!("{s:?}"),
                    Value::Uuid(u) => format!("\"{u}\""),
                    Value::Null => "NULL".into(),
                    other => other.to_string(),
                })
                .collect();
            format!("[{}]", cells.join(", "))
        })
        .collect();
    format!("[{}]", rows.join(", "))
}

/// Expected rows, written as in the spec file.
pub fn expected_text(rows: &[Vec<toml::Value>]) -> String {
    let rows: Vec<String> = rows
        .iter()
        .map(|r| {
            let cells: Vec<String> = r.iter().map(|v| v.to_string()).collect();
            format!("[{}]", cells.join(", "))
        })
        .collect();
    format!("[{}]", rows.join(", "))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> Result<TestSpec, SpecError> {
        parse(Path::new("p/ferry-test.toml"), Path::new("p"), text)
    }

    #[test]
    fn reads_start_and_expectations_with_their_lines() {
        let s = spec(
            "[start]\nsample = 50\n\n[[expect]]\nname = \"a\"\nsql = \"SELECT 1\"\nrows = [[1]]\n\n[[expect]]\nname = \"b\"\nsql = \"SELECT 'x', 2.5, true\"\nrows = [[\"x\", 2.5, true]]\nafter = \"downgrade\"\n",
        )
        .expect("valid");
        assert_eq!(s.start, Start::Sample { n: 50, seed: 1 });
        assert_eq!(s.expectations.len(), 2);
        assert_eq!(s.expectations[0].line, 4);
        assert_eq!(s.expectations[1].line, 9);
        assert_eq!(s.expectations[1].after, After::Downgrade);
        assert!(rows_match(
            &s.expectations[1].rows,
            &[vec![
                Value::Text("x".into()),
                Value::Float(2.5),
                Value::Int(1)
            ]]
        ));
        assert!(!rows_match(&s.expectations[0].rows, &[vec![Value::Int(2)]]));
        assert!(!rows_match(&s.expectations[0].rows, &[]));
    }

    #[test]
    fn faults_name_the_line() {
        for (text, line, says) in [
            ("[[expect]]\nname = \"a\"\nsql = \"SELECT 1\"\nrows = [[1]]\nafter = \"later\"\n", 5, "unknown variant"),
            ("[[expect]]\nname = \"a\"\nsq = \"SELECT 1\"\n", 3, "unknown field"),
            ("[start]\nsample = 5\nsql = \"f.sql\"\n[[expect]]\nname = \"a\"\nsql = \"S\"\nrows = []\n", 1, "both"),
            ("[start]\nsql = \"missing.sql\"\n[[expect]]\nname = \"a\"\nsql = \"S\"\nrows = []\n", 1, "not a file"),
            ("[[expect]]\nname = \"a\"\nsql = \"S\"\nrows = [[{ x = 1 }]]\n", 1, "not table"),
            ("[start]\n", 1, "no [[expect]]"),
        ] {
            let e = spec(text).unwrap_err();
            assert_eq!(e.line, line, "{text}: {e}");
            assert!(e.to_string().contains(says), "{text}: {e}");
            assert!(e.to_string().starts_with("p/ferry-test.toml:"), "{e}");
        }
    }
}
