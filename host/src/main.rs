//! The `ferry` binary.

// See lib.rs: errors carry the file, line and source line an operator needs.
#![allow(clippy::result_large_err)]

mod cli;

use clap::Parser;

fn main() {
    // FERRY_LOG=debug shows every statement the backends run, with its duration.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("FERRY_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let parsed = cli::args::Cli::try_parse();
    let code = match parsed {
        Ok(c) => cli::main(c),
        Err(e) => {
            let _ = e.print();
            // clap exits 0 for --help/--version and 2 for bad usage, as DESIGN.md wants.
            if e.use_stderr() {
                cli::EXIT_USAGE
            } else {
                0
            }
        }
    };
    std::process::exit(code);
}
