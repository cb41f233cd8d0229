//! The `ferry` binary.

mod cli;

use clap::Parser;

fn main() {
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
