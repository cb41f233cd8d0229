//! `ferry-sample`: creates a v1 sample repository of the reference workload and fills
//! it at scale N, printing timings.
//!
//! By default the v1 schema is created by Ferry itself (an upgrade to the root
//! revisions of the reference trees under `--scripts`, default `./scripts` and
//! `./plugins/*`), then the dataset types' dynamic tables are created as the
//! application would, and the data is filled in. `--without-ferry` creates the same
//! schema as another tool would, leaving no trace of Ferry (for `ferry adopt`).

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use ferry::backend::{self, DbUrl};
use ferry_workload as workload;

#[derive(Parser)]
#[command(
    version,
    about = "Create and fill a v1 sample repository of the reference workload"
)]
struct Args {
    /// Database URL: `sqlite:PATH`, `postgres://…` or `postgresql://…` (`?schema=NAME`).
    #[arg(long, env = "FERRY_DB")]
    db: String,
    /// Number of datasets (at least 9).
    #[arg(long)]
    n: u64,
    /// Seed of the generator (the same seed gives the same rows).
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Create the v1 schema as another tool would, with no trace of Ferry.
    #[arg(long)]
    without_ferry: bool,
    /// Script roots (repeatable; default ./scripts and ./plugins/*).
    #[arg(long = "scripts", value_name = "DIR")]
    scripts: Vec<std::path::PathBuf>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("ferry-sample: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    let url = DbUrl::parse(&args.db).map_err(|e| e.to_string())?;
    let start = Instant::now();
    if !args.without_ferry {
        let mut migrator = ferry::migrator::Migrator::new(&args.db).map_err(|e| e.to_string())?;
        if !args.scripts.is_empty() {
            migrator = migrator.with_roots(args.scripts.clone());
        }
        let targets: Vec<String> = workload::schema::V1_REVISIONS
            .iter()
            .map(|s| s.to_string())
            .collect();
        // A failed revision is an error whose message is the script's failure.
        let _report = migrator
            .upgrade(&targets, &Default::default())
            .map_err(|e| e.to_string())?;
    }
    let mut conn = backend::connect(&url).map_err(|e| e.to_string())?;
    if args.without_ferry {
        workload::create_v1_without_ferry(conn.as_mut()).map_err(|e| e.to_string())?;
    } else {
        workload::schema::create_missing_tables(conn.as_mut()).map_err(|e| e.to_string())?;
    }
    println!(
        "{}: v1 schema created in {:.2?}",
        conn.describe(),
        start.elapsed()
    );
    let report = workload::fill_v1(conn.as_mut(), args.n, args.seed).map_err(|e| e.to_string())?;
    for (table, rows) in &report.rows {
        println!("  {table:<28} {rows:>12}");
    }
    println!(
        "filled N = {} (seed {}): {} rows in {:.2?}, {:.0} rows/s",
        args.n,
        args.seed,
        report.total_rows(),
        report.elapsed,
        report.rows_per_second()
    );
    Ok(())
}
