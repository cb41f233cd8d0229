//! The `ferry` command line: a thin layer over [`ferry::migrator`].

pub mod args;
pub mod progress;
pub mod render;

use args::{Cli, Command, Global};
use ferry::migrator::{Error, Migrator, UpgradeOptions};
use ferry::runner::Report;
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

/// Exit codes (DESIGN.md).
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_NOT_CURRENT: i32 = 3;

fn migrator(g: &Global) -> Result<Migrator, Error> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let config = ferry::config::load(g.config.as_deref(), &cwd, &g.set)?;
    let mut m = Migrator::new(&g.db)?
        .with_config(config)
        .with_lock_timeout(Duration::from_secs_f64(g.lock_timeout.max(0.0)))
        .with_observer(Rc::new(progress::Progress::new(g.progress)));
    if !g.scripts.is_empty() {
        m = m.with_roots(g.scripts.clone());
    } else if let Ok(path) = std::env::var("FERRY_PATH") {
        let roots: Vec<PathBuf> = path
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();
        m = m.with_roots(roots);
    }
    if g.stdlib.is_some() {
        m = m.with_stdlib(g.stdlib.clone());
    }
    Ok(m)
}

fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

fn report(r: &Report, g: &Global) -> i32 {
    if g.json {
        println!("{}", json(r));
    } else {
        for s in &r.statements {
            println!(
                "[{}{}] {} -- {} row(s)",
                s.revision,
                s.step
                    .as_ref()
                    .map(|s| format!(" / {s}"))
                    .unwrap_or_default(),
                s.sql.split_whitespace().collect::<Vec<_>>().join(" "),
                s.rows
            );
        }
        if r.completed.is_empty() && r.failed.is_none() {
            println!("nothing to do");
        }
        for c in &r.completed {
            println!(
                "{} {}: done in {:.2}s, {} rows",
                c.direction.as_str(),
                c.revision,
                c.duration_ms as f64 / 1000.0,
                c.rows
            );
        }
        if !r.statements.is_empty() {
            println!("dry run: everything above was rolled back; the repository is unchanged");
        }
    }
    match &r.failed {
        Some(e) => {
            eprintln!("{}", render::script_error(e));
            if !r.not_run.is_empty() {
                eprintln!("not run: {}", r.not_run.join(", "));
            }
            eprintln!(
                "the failure is recorded; fix the cause and run `ferry upgrade` again to resume"
            );
            EXIT_FAILED
        }
        None => 0,
    }
}

fn run(cli: &Cli) -> Result<i32, Error> {
    let g = &cli.global;
    let m = migrator(g)?;
    match &cli.command {
        Command::Status => {
            let s = m.status()?;
            if g.json {
                println!("{}", json(&s));
            } else {
                print!("{}", render::status(&s));
            }
            Ok(0)
        }
        Command::History { limit } => {
            let h = m.history(*limit)?;
            if g.json {
                println!("{}", json(&h));
            } else {
                print!("{}", render::history(&h));
            }
            Ok(0)
        }
        Command::Heads => {
            let p = m.load()?;
            let heads: Vec<(String, Vec<String>)> = p
                .graph
                .trees()
                .into_iter()
                .map(|t| {
                    (
                        t.to_string(),
                        p.graph.heads(t).into_iter().map(String::from).collect(),
                    )
                })
                .collect();
            if g.json {
                let map: serde_json::Map<String, serde_json::Value> = heads
                    .into_iter()
                    .map(|(t, h)| (t, serde_json::json!(h)))
                    .collect();
                println!("{}", json(&map));
            } else {
                for (t, h) in heads {
                    println!("{t}: {}", h.join(", "));
                }
            }
            Ok(0)
        }
        Command::Upgrade {
            targets,
            dry_run,
            allow_changed,
        } => {
            let r = m.upgrade(
                targets,
                &UpgradeOptions {
                    dry_run: *dry_run,
                    allow_changed: *allow_changed,
                },
            )?;
            Ok(report(&r, g))
        }
        Command::Downgrade { target, dry_run } => {
            let r = m.downgrade(
                target,
                &UpgradeOptions {
                    dry_run: *dry_run,
                    allow_changed: true,
                },
            )?;
            Ok(report(&r, g))
        }
        Command::Check => {
            let s = m.status()?;
            if s.at_heads() {
                println!("at heads");
                Ok(0)
            } else {
                print!("{}", render::status(&s));
                println!("not at heads");
                Ok(EXIT_NOT_CURRENT)
            }
        }
    }
}

/// Runs the command line and returns the process exit code.
pub fn main(cli: Cli) -> i32 {
    match run(&cli) {
        Ok(code) => code,
        Err(Error::Preflight(e)) => {
            eprintln!("{}", render::script_error(&e));
            eprintln!("nothing was run");
            EXIT_USAGE
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
