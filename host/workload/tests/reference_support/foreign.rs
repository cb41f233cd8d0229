//! Registry v1 made without Ferry: `tests/fixtures/foreign_v1/make_v1.sh` runs
//! hand-written DDL and data SQL (as SQLAlchemy emits them for daf_butler) through the
//! real `sqlite3` / `psql` clients. Then `ferry adopt` stamps it from its
//! `butler_attributes`, as an operator does before the first upgrade.

use super::{connect, migrator, repo_root};
use ferry::backend::Connection;
use std::path::PathBuf;
use std::process::Command;

/// Which generator made a v1 repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Ferry's root revisions and `ferry_workload::fill_v1`.
    Ferry,
    /// `tests/fixtures/foreign_v1` through `sqlite3` / `psql`, then `ferry adopt`.
    Foreign,
}

impl Source {
    pub fn name(self) -> &'static str {
        match self {
            Source::Ferry => "ferry",
            Source::Foreign => "foreign",
        }
    }
}

/// The script that makes a foreign v1 repository.
pub fn make_script() -> PathBuf {
    repo_root().join("tests/fixtures/foreign_v1/make_v1.sh")
}

/// The command that fills the database of `url` (a `sqlite:` file that does not exist
/// yet, or a `postgres…?schema=NAME` URL whose schema exists and is empty) with registry
/// v1 at scale `n`.
pub fn make_command(url: &str, n: u64) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(make_script());
    if let Some(path) = url.strip_prefix("sqlite:") {
        cmd.args(["sqlite", path]);
    } else {
        let (base, query) = url.split_once('?').expect("a PostgreSQL URL with ?schema=");
        let schema = query
            .split('&')
            .find_map(|kv| kv.strip_prefix("schema="))
            .expect("a PostgreSQL URL with ?schema=");
        let others: Vec<&str> = query
            .split('&')
            .filter(|kv| !kv.starts_with("schema="))
            .collect();
        let base = if others.is_empty() {
            base.to_string()
        } else {
            format!("{base}?{}", others.join("&"))
        };
        cmd.args(["postgres", &base, schema]);
    }
    cmd.arg(n.to_string());
    cmd
}

/// Makes registry v1 at scale `n` without Ferry (see [`make_command`]); nothing of Ferry
/// is in it afterwards.
pub fn create_v1_unadopted(url: &str, n: u64) {
    let out = make_command(url, n).output().expect("run make_v1.sh");
    assert!(
        out.status.success(),
        "make_v1.sh failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes registry v1 at scale `n` without Ferry, then adopts it with the reference
/// probes; returns a connection to it.
pub fn create_v1(url: &str, n: u64) -> Box<dyn Connection> {
    create_v1_unadopted(url, n);
    let report = migrator(url)
        .adopt()
        .expect("ferry adopt of the foreign repository");
    drop(report);
    connect(url)
}

/// Registry v1 at scale `n` from `source` (`seed` is used by Ferry's generator only).
pub fn create_v1_from(source: Source, url: &str, n: u64, seed: u64) -> Box<dyn Connection> {
    match source {
        Source::Ferry => super::create_v1(url, n, seed),
        Source::Foreign => create_v1(url, n),
    }
}
