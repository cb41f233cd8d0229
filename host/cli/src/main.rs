//! The `ferry` binary.

// See lib.rs: errors carry the file, line and source line an operator needs.
#![allow(clippy::result_large_err)]

mod cli;

use clap::Parser;

/// The stack of the thread that runs the command: deep enough that a script at its
/// nesting limits (calls, expressions, values) cannot exhaust it.
const STACK_BYTES: usize = 256 * 1024 * 1024;

/// The exit code of a panic that reached `main` (EX_SOFTWARE of sysexits.h).
const EXIT_INTERNAL: i32 = 70;

fn main() {
    ferry::crash::install();
    let run = std::thread::Builder::new()
        .name(ferry::crash::COMMAND_THREAD.into())
        .stack_size(STACK_BYTES)
        .spawn(|| std::panic::catch_unwind(run))
        .expect("a thread for the command");
    let code = match run.join() {
        Ok(Ok(code)) => code,
        Ok(Err(payload)) | Err(payload) => {
            let what = ferry::crash::describe(payload.as_ref());
            if what.contains("Broken pipe") || what.contains("failed printing to stdout") {
                // The reader of our output went away (`ferry ... | head -1`): whatever
                // ran is recorded in the ledger already; end quietly, as `cat` does.
                141
            } else {
                eprintln!(
                    "ferry: internal error: {what}\n  (this is a bug in Ferry; `ferry status` \
                     shows what the ledger holds)"
                );
                EXIT_INTERNAL
            }
        }
    };
    std::process::exit(code);
}

fn run() -> i32 {
    // FERRY_LOG=debug shows every statement the backends run, with its duration.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_env("FERRY_LOG"))
        .with_writer(std::io::stderr)
        .init();
    let parsed = cli::args::Cli::try_parse();
    match parsed {
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
    }
}
