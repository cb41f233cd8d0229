//! `ferry-sample`: creates a v1 sample repository of the reference workload and fills
//! it at scale N, printing timings.
//!
//! For now the v1 schema is always created without Ferry (as another tool would);
//! creating it through Ferry's own root revisions comes with the runner.

use std::process::ExitCode;
use std::time::Instant;

use clap::Parser;
use ferry::backend::{self, DbUrl};
use ferry::workload;

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
    let mut conn = backend::connect(&url).map_err(|e| e.to_string())?;
    if !args.without_ferry {
        eprintln!(
            "note: creating v1 through Ferry's root revisions is not available yet; \
             creating it without Ferry"
        );
    }
    let start = Instant::now();
    workload::create_v1_without_ferry(conn.as_mut()).map_err(|e| e.to_string())?;
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
