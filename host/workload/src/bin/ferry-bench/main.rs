//! `ferry-bench`: the benchmarks of docs/BENCHMARKS.md.
//!
//! - `migration`: the int → UUID migration of WORKLOAD.md, scripted (the real `ferry`
//!   binary running `scripts/` and `plugins/`) against a hand-written native Rust
//!   implementation through the same drivers, each in its own process for its own peak
//!   memory; both end states checked against every v2 rule.
//! - `bulk-insert`: rows inserted from a Rhai script through the script API against the
//!   same insert written natively.
//! - `startup`: `ferry status` and `ferry plan` over synthetic forests of revisions.
//! - `all`: everything at one size.
//!
//! Timings are printed, never asserted; an end state that breaks a rule makes the
//! benchmark exit 1 (CI relies on that).

mod bulk;
mod migration;
mod native;
mod process;
mod report;
mod startup;
mod target;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser)]
#[command(
    name = "ferry-bench",
    version,
    about = "Ferry's benchmarks (docs/BENCHMARKS.md)"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Which generator makes the migration benchmark's registry v1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Source {
    /// `ferry-sample`: Ferry's root revisions and `ferry_workload::fill_v1`.
    Ferry,
    /// `tests/fixtures/foreign_v1/make_v1.sh` (SQL through `sqlite3` / `psql`, no Ferry
    /// code), then `ferry adopt`.
    Foreign,
}

/// The databases a benchmark runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

/// Where the benchmarks find their databases and the `ferry` binary.
#[derive(Debug, Args, Clone)]
pub struct Env {
    /// PostgreSQL server (each run works in fresh schemas named speed_bench_*, dropped
    /// afterwards).
    #[arg(
        long,
        env = "FERRY_BENCH_PG_URL",
        default_value = "postgresql://postgres@127.0.0.1:5432/test"
    )]
    pub pg_url: String,
    /// Directory for SQLite files and synthetic forests (a fresh subdirectory is made and
    /// removed).
    #[arg(long, env = "FERRY_BENCH_DIR", default_value_os_t = std::env::temp_dir())]
    pub work_dir: PathBuf,
    /// The `ferry` binary (default: next to this one).
    #[arg(long)]
    pub ferry: Option<PathBuf>,
    /// The project checkout holding scripts/, plugins/ and stdlib/ (default: the one this
    /// binary was built from).
    #[arg(long)]
    pub repo: Option<PathBuf>,
    /// Keep the databases and directories instead of removing them.
    #[arg(long)]
    pub keep: bool,
}

#[derive(Subcommand)]
enum Command {
    /// The int → UUID migration: scripted (ferry upgrade) vs native, per backend.
    Migration {
        #[arg(long, value_enum, num_args = 1.., default_values_t = [Backend::Sqlite, Backend::Postgres])]
        backend: Vec<Backend>,
        /// Number of datasets.
        #[arg(long, default_value_t = 100_000)]
        n: u64,
        /// Generator seed.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Skip the comparison of batch checkpoints with one checkpoint per step.
        #[arg(long)]
        no_checkpoint_cost: bool,
        /// Who makes registry v1: Ferry's generator, or SQL written as SQLAlchemy emits
        /// it run through the real clients (`foreign`; the seed is not used).
        #[arg(long, value_enum, default_value_t = Source::Ferry)]
        source: Source,
        #[command(flatten)]
        env: Env,
    },
    /// Bulk insert of ROWS rows driven by a Rhai script vs the same insert natively.
    BulkInsert {
        #[arg(long, value_enum, num_args = 1.., default_values_t = [Backend::Sqlite, Backend::Postgres])]
        backend: Vec<Backend>,
        #[arg(long, default_value_t = 1_000_000)]
        rows: u64,
        #[command(flatten)]
        env: Env,
    },
    /// Start-up: `ferry status` over 1,000 revisions, planning over 10,000.
    Startup {
        /// Revisions of the status forest (in 10 trees).
        #[arg(long, default_value_t = 1_000)]
        revisions: usize,
        /// Revisions of the planning forest (in 10 trees).
        #[arg(long, default_value_t = 10_000)]
        plan_revisions: usize,
        /// Timed runs of each command.
        #[arg(long, default_value_t = 15)]
        runs: usize,
        #[command(flatten)]
        env: Env,
    },
    /// Every benchmark at one size: migration at N, bulk insert of ROWS, start-up.
    All {
        #[arg(long, value_enum, num_args = 1.., default_values_t = [Backend::Sqlite, Backend::Postgres])]
        backend: Vec<Backend>,
        #[arg(long, default_value_t = 100_000)]
        n: u64,
        /// Rows of the bulk insert (default: N).
        #[arg(long)]
        rows: Option<u64>,
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Timed runs of each start-up command.
        #[arg(long, default_value_t = 15)]
        runs: usize,
        #[command(flatten)]
        env: Env,
    },
    /// (internal) Runs the native migration on one database; the parent times it.
    #[command(hide = true)]
    Native {
        #[arg(long, value_enum)]
        backend: Backend,
        #[arg(long)]
        db: String,
        /// The pure-SQL bound instead: one SQL script the server runs (PostgreSQL).
        #[arg(long)]
        sql_script: bool,
    },
    /// (internal) Runs the native bulk insert on one database; the parent times it.
    #[command(hide = true)]
    NativeBulk {
        #[arg(long, value_enum)]
        backend: Backend,
        #[arg(long)]
        db: String,
        #[arg(long)]
        rows: u64,
    },
    /// (internal) Runs a command and writes its exit code and peak RSS to a file.
    #[command(hide = true)]
    Measure {
        #[arg(long)]
        report: PathBuf,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<std::ffi::OsString>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Migration {
            backend,
            n,
            seed,
            no_checkpoint_cost,
            source,
            env,
        } => migration::run(&env, &backend, n, seed, !no_checkpoint_cost, source),
        Command::BulkInsert { backend, rows, env } => bulk::run(&env, &backend, rows),
        Command::Startup {
            revisions,
            plan_revisions,
            runs,
            env,
        } => startup::run(&env, revisions, plan_revisions, runs),
        Command::All {
            backend,
            n,
            rows,
            seed,
            runs,
            env,
        } => all(&env, &backend, n, rows.unwrap_or(n), seed, runs),
        Command::Native {
            backend,
            db,
            sql_script,
        } => native::run(backend, &db, sql_script),
        Command::NativeBulk { backend, db, rows } => native::bulk::run(backend, &db, rows),
        Command::Measure { report, command } => process::measure(&report, &command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ferry-bench: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs every benchmark, then reports every failure (a broken end state is one).
fn all(
    env: &Env,
    backends: &[Backend],
    n: u64,
    rows: u64,
    seed: u64,
    runs: usize,
) -> Result<(), String> {
    let failures: Vec<String> = [
        migration::run(env, backends, n, seed, true, Source::Ferry),
        bulk::run(env, backends, rows),
        startup::run(env, 1_000, 10_000, runs),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect();
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}
