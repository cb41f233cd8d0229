//! A small application that embeds Ferry: at start-up it verifies its repository,
//! refuses to start when the database is not one this code can write, and migrates
//! it first when the operator allowed that (`--auto-migrate`).
//!
//! ```sh
//! cargo run --example inventory_service -- --db sqlite:inventory.sqlite \
//!     --scripts tests/fixtures/embed/base --auto-migrate
//! ```
//!
//! The code is written for version 1.1 of the `app` tree and 1.0 of `install`
//! (tests/fixtures/embed/base). `host/ferry/tests/example_app.rs` runs [`start`] against
//! every repository state, so this example cannot rot.

use ferry::Access;
use ferry::{Migrator, Verification, VerifyOptions};
use std::path::PathBuf;
use std::process::ExitCode;

/// The tree versions this code was written for.
pub const SUPPORTED: [(&str, &str); 2] = [("app", "1.1.0"), ("install", "1.0.0")];

/// How the service was told to start.
pub struct Settings {
    pub db: String,
    pub scripts: Vec<PathBuf>,
    pub auto_migrate: bool,
}

/// A running service: its database and whether it may write.
pub struct Service {
    pub verification: Verification,
    pub read_only: bool,
}

/// Why the service did not start.
#[derive(Debug)]
pub enum Refusal {
    /// The repository is not usable by this code; the reasons say why.
    Incompatible(String),
    /// Ferry itself failed (bad URL, unreachable database, locked, …).
    Ferry(ferry::Error),
}

/// Verifies the repository (migrating it if allowed) and decides whether to start.
pub fn start(settings: &Settings) -> Result<Service, Refusal> {
    let migrator = Migrator::builder()
        .url(&settings.db)
        .roots(&settings.scripts)
        .stdlib(None)
        .build()
        .map_err(Refusal::Ferry)?;
    let mut options = VerifyOptions::default().auto_migrate(settings.auto_migrate);
    for (tree, version) in SUPPORTED {
        options = options.supports(tree, version);
    }
    let verification = migrator
        .verify(&options)
        .map_err(|e| match e.script_failure() {
            // What completed stays applied; the failed revision waits for a person.
            Some(failed) => Refusal::Incompatible(format!("the migration failed: {failed}")),
            None => Refusal::Ferry(e),
        })?;
    match verification.access.access {
        Access::Write => Ok(Service {
            verification,
            read_only: false,
        }),
        Access::Read => Ok(Service {
            verification,
            read_only: true,
        }),
        Access::Refuse => {
            let mut why = verification.access.reason.clone();
            if let Some(not) = &verification.not_migrated {
                why = format!("{why}\n{not}");
            } else if !settings.auto_migrate && !verification.plan.is_empty() {
                why = format!("{why}\n(start with --auto-migrate to upgrade it)");
            }
            Err(Refusal::Incompatible(why))
        }
    }
}

fn settings_from_args() -> Result<Settings, String> {
    let mut settings = Settings {
        db: "sqlite:inventory.sqlite".into(),
        scripts: Vec::new(),
        auto_migrate: false,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--db" => settings.db = args.next().ok_or("--db needs a URL")?,
            "--scripts" => settings
                .scripts
                .push(args.next().ok_or("--scripts needs a folder")?.into()),
            "--auto-migrate" => settings.auto_migrate = true,
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if settings.scripts.is_empty() {
        settings.scripts.push("scripts".into());
    }
    Ok(settings)
}

fn main() -> ExitCode {
    let settings = match settings_from_args() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("inventory_service: {e}");
            return ExitCode::from(2);
        }
    };
    match start(&settings) {
        Ok(service) => {
            if let Some(r) = &service.verification.migrated {
                println!("migrated: {} revision(s)", r.completed.len());
            }
            let mode = if service.read_only {
                "read-only"
            } else {
                "read-write"
            };
            println!("inventory service started ({mode})");
            ExitCode::SUCCESS
        }
        Err(Refusal::Incompatible(why)) => {
            eprintln!("inventory service refuses to start:\n{why}");
            ExitCode::from(3)
        }
        Err(Refusal::Ferry(e)) => {
            eprintln!("inventory service cannot check its database: {e}");
            ExitCode::from(e.exit_code() as u8)
        }
    }
}
