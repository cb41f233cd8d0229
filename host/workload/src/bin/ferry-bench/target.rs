//! Fresh databases and directories for one benchmark run, removed afterwards, and the
//! `ferry` binary and project checkout the benchmarks drive.

use std::path::{Path, PathBuf};

use ferry::backend::{self, Connection, DbUrl};

use crate::{Backend, Env};

/// A scratch directory, removed on drop unless `--keep`.
pub struct Scratch {
    pub path: PathBuf,
    keep: bool,
}

impl Scratch {
    pub fn new(env: &Env, label: &str) -> Result<Scratch, String> {
        let path = env.work_dir.join(format!(
            "ferry-bench-{label}-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        Ok(Scratch {
            path,
            keep: env.keep,
        })
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}

/// A fresh PostgreSQL schema `speed_bench_<pid>_<label>`, dropped on drop unless `--keep`.
pub struct PgSchema {
    pub name: String,
    pub url: String,
    admin_url: String,
    keep: bool,
}

impl PgSchema {
    pub fn new(env: &Env, label: &str) -> Result<PgSchema, String> {
        let name = format!("speed_bench_{}_{label}", std::process::id());
        let mut admin = connect(&env.pg_url)?;
        admin
            .execute_batch(&format!(
                "DROP SCHEMA IF EXISTS \"{name}\" CASCADE; CREATE SCHEMA \"{name}\""
            ))
            .map_err(|e| e.to_string())?;
        let sep = if env.pg_url.contains('?') { '&' } else { '?' };
        Ok(PgSchema {
            url: format!("{}{sep}schema={name}", env.pg_url),
            name,
            admin_url: env.pg_url.clone(),
            keep: env.keep,
        })
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if self.keep {
            eprintln!("kept schema {}", self.name);
            return;
        }
        if let Ok(mut admin) = connect(&self.admin_url) {
            let _ =
                admin.execute_batch(&format!("DROP SCHEMA IF EXISTS \"{}\" CASCADE", self.name));
        }
    }
}

/// One benchmark database: a SQLite file in a scratch directory or a PostgreSQL schema.
pub enum Database {
    Sqlite { path: PathBuf },
    Postgres(PgSchema),
}

impl Database {
    pub fn url(&self) -> String {
        match self {
            Database::Sqlite { path } => format!("sqlite:{}", path.display()),
            Database::Postgres(s) => s.url.clone(),
        }
    }

    /// A fresh, empty database of `backend` named `label`.
    pub fn fresh(
        env: &Env,
        backend: Backend,
        scratch: &Scratch,
        label: &str,
    ) -> Result<Database, String> {
        Ok(match backend {
            Backend::Sqlite => Database::Sqlite {
                path: scratch.path.join(format!("{label}.sqlite")),
            },
            Backend::Postgres => Database::Postgres(PgSchema::new(env, label)?),
        })
    }
}

pub fn connect(url: &str) -> Result<Box<dyn Connection>, String> {
    let parsed = DbUrl::parse(url).map_err(|e| e.to_string())?;
    backend::connect(&parsed).map_err(|e| e.to_string())
}

/// The project checkout holding `scripts/`, `plugins/` and `stdlib/`.
pub fn repo(env: &Env) -> Result<PathBuf, String> {
    let candidates = env
        .repo
        .clone()
        .into_iter()
        .chain(std::env::current_dir().ok())
        .chain(Some(Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")));
    for dir in candidates {
        if dir.join("scripts").is_dir() && dir.join("plugins").is_dir() {
            return dir
                .canonicalize()
                .map_err(|e| format!("{}: {e}", dir.display()));
        }
    }
    Err("cannot find the project checkout (scripts/ and plugins/): pass --repo DIR".into())
}

/// The `ferry` binary: `--ferry`, else the one next to this benchmark.
pub fn ferry_binary(env: &Env) -> Result<PathBuf, String> {
    if let Some(p) = &env.ferry {
        return Ok(p.clone());
    }
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = exe.with_file_name(format!("ferry{}", std::env::consts::EXE_SUFFIX));
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "no ferry binary at {}: build it (cargo build --release) or pass --ferry PATH",
            path.display()
        ))
    }
}

/// This benchmark's own binary (to run the native migration as a child process).
pub fn bench_binary() -> Result<PathBuf, String> {
    std::env::current_exe().map_err(|e| e.to_string())
}
