//! Layered configuration: tree defaults (a revision's `DEFAULTS`) < the repository
//! config file (`ferry.toml`, or `--config FILE`) < `--set KEY=VALUE`.
//!
//! Nested TOML tables flatten to dotted keys: `[datasets] batch_size = 5` is
//! `datasets.batch_size`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Why the configuration (`ferry.toml`, `--set`) cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("cannot read config file {path}: {message}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The config file is not valid TOML.
    #[error("config file {path} is not valid TOML: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A `--set` argument is not `KEY=VALUE`.
    #[error("--set {0:?} must look like KEY=VALUE")]
    Set(String),
    /// A value has the wrong type.
    #[error("configuration key {key} must be {expected}, found {found}")]
    Type {
        /// The key.
        key: String,
        /// The type it must have.
        expected: &'static str,
        /// What it has.
        found: String,
    },
    #[error("unknown configuration key {key} (did you mean {closest}?)")]
    /// A limit key no limit has.
    UnknownLimit {
        /// The key.
        key: String,
        /// The closest known key.
        closest: &'static str,
    },
    /// A [`ConfigError::Type`] with where the value came from (`--set`, or the file).
    #[error("{origin}: {error}")]
    From {
        /// Where the value came from.
        origin: String,
        /// What is wrong with it.
        error: Box<ConfigError>,
    },
}

/// Checks the values `load` knows the type of (the sandbox limits) as each layer is
/// read, so that an error says which file or `--set` holds the bad value.
fn check_known(config: &ConfigMap, origin: impl FnOnce() -> String) -> Result<(), ConfigError> {
    match limits(config).and_then(|_| jobs(config)) {
        Ok(_) => Ok(()),
        Err(e) => Err(ConfigError::From {
            origin: origin(),
            error: Box::new(e),
        }),
    }
}

/// Flattened configuration, dotted key → value.
pub type ConfigMap = BTreeMap<String, toml::Value>;

fn flatten(prefix: &str, table: &toml::Table, out: &mut ConfigMap) {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        match v {
            toml::Value::Table(t) => flatten(&key, t, out),
            other => {
                out.insert(key, other.clone());
            }
        }
    }
}

/// The largest config file Ferry reads (a config file is a few lines; this refuses
/// `/dev/zero` and other endless or huge inputs before reading them).
pub const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// Reads a config file into dotted keys; only a regular file of at most
/// [`MAX_CONFIG_BYTES`] is read.
pub fn read_file(path: &Path) -> Result<ConfigMap, ConfigError> {
    let read_error = |message: String| ConfigError::Read {
        path: path.into(),
        message,
    };
    let file = std::fs::File::open(path).map_err(|e| read_error(e.to_string()))?;
    let meta = file.metadata().map_err(|e| read_error(e.to_string()))?;
    if !meta.is_file() {
        return Err(read_error(
            "not a regular file (a config file is a TOML file on disk)".into(),
        ));
    }
    if meta.len() > MAX_CONFIG_BYTES {
        return Err(read_error(format!(
            "{} bytes, more than the {MAX_CONFIG_BYTES} bytes a config file may have",
            meta.len()
        )));
    }
    let mut text = String::new();
    std::io::Read::read_to_string(
        &mut std::io::Read::take(file, MAX_CONFIG_BYTES + 1),
        &mut text,
    )
    .map_err(|e| read_error(e.to_string()))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        return Err(read_error(format!(
            "more than the {MAX_CONFIG_BYTES} bytes a config file may have"
        )));
    }
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Parse {
            path: path.into(),
            message: e.to_string(),
        })?;
    let mut out = ConfigMap::new();
    flatten("", &table, &mut out);
    Ok(out)
}

/// Parses `KEY=VALUE`; VALUE is read as a TOML value (`5`, `true`, `"x"`), else as a string.
pub fn parse_set(text: &str) -> Result<(String, toml::Value), ConfigError> {
    let (k, v) = text
        .split_once('=')
        .ok_or_else(|| ConfigError::Set(text.into()))?;
    let k = k.trim();
    if k.is_empty() {
        return Err(ConfigError::Set(text.into()));
    }
    let value = format!("v = {v}")
        .parse::<toml::Table>()
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(v.to_string()));
    Ok((k.to_string(), value))
}

/// Builds the layered configuration: the file (explicit, or `./ferry.toml` if it
/// exists), then each `--set`.
pub fn load(file: Option<&Path>, cwd: &Path, sets: &[String]) -> Result<ConfigMap, ConfigError> {
    let default = cwd.join("ferry.toml");
    let path = file.or_else(|| default.is_file().then_some(default.as_path()));
    let mut out = match path {
        Some(f) => {
            let read = read_file(f)?;
            check_known(&read, || format!("config file {}", f.display()))?;
            read
        }
        None => ConfigMap::new(),
    };
    for s in sets {
        let (k, v) = parse_set(s)?;
        let one = ConfigMap::from([(k.clone(), v.clone())]);
        check_known(&one, || format!("--set {s}"))?;
        out.insert(k, v);
    }
    Ok(out)
}

/// Every `limits.*` key, with the largest value it accepts (beyond which a limit is
/// meaningless or would overflow the clock).
pub const LIMIT_KEYS: [(&str, u64); 8] = [
    ("limits.max_operations", 1 << 53),
    ("limits.max_seconds", MAX_SECONDS),
    ("limits.max_call_depth", 1000),
    ("limits.max_string_size", 1 << 32),
    ("limits.max_array_size", 1 << 32),
    ("limits.max_map_size", 1 << 32),
    ("limits.statement_timeout_seconds", MAX_SECONDS),
    ("limits.max_output_bytes", 1 << 40),
];

/// The longest time limit: 24 days (PostgreSQL's statement_timeout holds at most
/// 2^31 - 1 milliseconds, a little under 25 days).
pub const MAX_SECONDS: u64 = 24 * 24 * 3600;

fn positive(config: &ConfigMap, key: &str) -> Result<Option<u64>, ConfigError> {
    let max = LIMIT_KEYS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, m)| *m)
        .unwrap_or(u64::MAX);
    let out_of_range = |found: String| ConfigError::Type {
        key: key.to_string(),
        expected: if max == u64::MAX {
            "a positive number"
        } else {
            "a positive number within its range"
        },
        found: format!("{found} (the largest accepted is {max})"),
    };
    match config.get(key) {
        None => Ok(None),
        Some(toml::Value::Integer(i)) if *i > 0 && (*i as u64) <= max => Ok(Some(*i as u64)),
        Some(toml::Value::Integer(i)) if *i > 0 => Err(out_of_range(i.to_string())),
        Some(toml::Value::Float(f)) if f.is_finite() && *f > 0.0 && f.ceil() <= max as f64 => {
            Ok(Some(f.ceil() as u64))
        }
        Some(toml::Value::Float(f)) if *f > 0.0 => Err(out_of_range(f.to_string())),
        Some(other) => Err(ConfigError::Type {
            key: key.to_string(),
            expected: "a positive number",
            found: other.to_string(),
        }),
    }
}

/// Refuses a `limits.*` key Ferry does not know (a misspelt limit would otherwise be
/// ignored without a word), naming the closest known key.
fn unknown_limit(config: &ConfigMap) -> Result<(), ConfigError> {
    for key in config.keys().filter(|k| k.starts_with("limits.")) {
        if LIMIT_KEYS.iter().any(|(k, _)| k == key) {
            continue;
        }
        let closest = LIMIT_KEYS
            .iter()
            .map(|(k, _)| (edit_distance(key, k), *k))
            .min()
            .map(|(_, k)| k)
            .unwrap_or("limits.max_seconds");
        return Err(ConfigError::UnknownLimit {
            key: key.clone(),
            closest,
        });
    }
    Ok(())
}

/// Levenshtein distance, for "did you mean".
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut row = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            row.push((prev[j] + cost).min(prev[j + 1] + 1).min(row[j] + 1));
        }
        prev = row;
    }
    prev[b.len()]
}

/// The configuration key of how many steps may run at the same time (`--jobs`).
pub const JOBS_KEY: &str = "jobs";

/// The most steps `jobs` may ask to run at the same time.
pub const MAX_JOBS: u64 = 64;

/// `jobs`: how many steps that may run concurrently (the table steps of
/// `schema::rewrite_tables(…, #{ steps: true })`) run at the same time, each on its own
/// connection of a pool (PostgreSQL; SQLite runs steps one at a time). `None` when
/// unset: the backend's default (`backend::Connection::default_jobs`).
pub fn jobs(config: &ConfigMap) -> Result<Option<usize>, ConfigError> {
    match config.get(JOBS_KEY) {
        None => Ok(None),
        Some(toml::Value::Integer(i)) if *i >= 1 && (*i as u64) <= MAX_JOBS => {
            Ok(Some(*i as usize))
        }
        Some(other) => Err(ConfigError::Type {
            key: JOBS_KEY.to_string(),
            expected: "a whole number from 1 to 64",
            found: other.to_string(),
        }),
    }
}

/// The sandbox limits, from `limits.*` keys over the defaults:
/// `limits.max_operations`, `limits.max_seconds` (wall clock per call into a script),
/// `limits.max_call_depth`, `limits.max_string_size`, `limits.max_array_size`,
/// `limits.max_map_size`, `limits.statement_timeout_seconds` (defaults to 600 s, or
/// `limits.max_seconds` when that is shorter, so no single statement outlives the
/// script's own limit),
/// `limits.max_output_bytes` (print/debug/log output per run). Each must be
/// a positive number no larger than its entry in [`LIMIT_KEYS`]; an unknown `limits.*`
/// key is refused.
pub fn limits(config: &ConfigMap) -> Result<crate::script::Limits, ConfigError> {
    unknown_limit(config)?;
    let mut l = crate::script::Limits::default();
    if let Some(v) = positive(config, "limits.max_operations")? {
        l.max_operations = v;
    }
    if let Some(v) = positive(config, "limits.max_seconds")? {
        l.max_duration = std::time::Duration::from_secs(v);
    }
    if let Some(v) = positive(config, "limits.max_call_depth")? {
        l.max_call_depth = v as usize;
    }
    if let Some(v) = positive(config, "limits.max_string_size")? {
        l.max_string_size = v as usize;
    }
    if let Some(v) = positive(config, "limits.max_array_size")? {
        l.max_array_size = v as usize;
    }
    if let Some(v) = positive(config, "limits.max_map_size")? {
        l.max_map_size = v as usize;
    }
    if let Some(v) = positive(config, "limits.max_output_bytes")? {
        l.max_output_bytes = v;
    }
    l.statement_timeout = Some(
        match positive(config, "limits.statement_timeout_seconds")? {
            Some(v) => std::time::Duration::from_secs(v),
            None => crate::script::DEFAULT_STATEMENT_TIMEOUT.min(l.max_duration),
        },
    );
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_come_from_the_configuration() {
        let mut c = ConfigMap::new();
        c.insert("limits.max_operations".into(), toml::Value::Integer(1000));
        c.insert("limits.max_seconds".into(), toml::Value::Integer(3));
        let l = limits(&c).unwrap();
        assert_eq!(l.max_operations, 1000);
        assert_eq!(l.max_duration, std::time::Duration::from_secs(3));
        assert_eq!(l.statement_timeout, Some(std::time::Duration::from_secs(3)));
        c.insert(
            "limits.max_call_depth".into(),
            toml::Value::String("deep".into()),
        );
        let err = limits(&c).unwrap_err().to_string();
        assert!(
            err.contains("limits.max_call_depth") && err.contains("positive"),
            "{err}"
        );
    }

    #[test]
    fn set_values_are_typed() {
        assert_eq!(parse_set("a.b=5").unwrap().1, toml::Value::Integer(5));
        assert_eq!(parse_set("a=true").unwrap().1, toml::Value::Boolean(true));
        assert_eq!(
            parse_set("a=hello world").unwrap().1,
            toml::Value::String("hello world".into())
        );
        assert!(parse_set("novalue").is_err());
    }

    #[test]
    fn files_flatten_and_sets_override() {
        let dir = std::env::temp_dir().join(format!("ferry-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("ferry.toml"),
            "[datasets]\nbatch_size = 7\nname = \"x\"\n",
        )
        .unwrap();
        let c = load(None, &dir, &["datasets.name=y".into()]).unwrap();
        assert_eq!(c["datasets.batch_size"], toml::Value::Integer(7));
        assert_eq!(c["datasets.name"], toml::Value::String("y".into()));
        std::fs::write(
            dir.join("limits.toml"),
            "[limits]\nmax_seconds = \"soon\"\n",
        )
        .unwrap();
        let err = load(Some(&dir.join("limits.toml")), &dir, &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains("limits.toml: configuration key limits.max_seconds"),
            "{err}"
        );
        let err = load(None, &dir, &["limits.max_call_depth=-1".into()]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "--set limits.max_call_depth=-1: configuration key limits.max_call_depth must be a positive number, found -1"
        );
        std::fs::write(dir.join("bad.toml"), "[x\n").unwrap();
        let err = load(Some(&dir.join("bad.toml")), &dir, &[]).unwrap_err();
        assert!(err.to_string().contains("bad.toml"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
