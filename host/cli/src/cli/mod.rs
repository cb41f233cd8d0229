//! The `ferry` command line: a thin layer over the library's root API ([`ferry::Migrator`]).

pub mod args;
mod plugin_test;
pub mod progress;
pub mod render;
mod verify;

use args::{Cli, Command, Global};
use ferry::Report;
use ferry::{Error, Migrator, UpgradeOptions};
use std::path::PathBuf;
use std::rc::Rc;
use std::time::Duration;

/// Exit codes (DESIGN.md).
pub const EXIT_FAILED: i32 = 1;
pub const EXIT_USAGE: i32 = 2;
pub const EXIT_NOT_CURRENT: i32 = 3;

fn migrator(g: &Global) -> Result<Migrator, Error> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    // `--jobs N` is the command-line form of the `jobs` key, above the file and `--set`.
    let mut sets = g.set.clone();
    sets.extend(g.jobs.map(|n| format!("{}={n}", ferry::config::JOBS_KEY)));
    let config = ferry::config::load(g.config.as_deref(), &cwd, &sets)?;
    let limits = ferry::config::limits(&config)?;
    let default_file = cwd.join("ferry.toml");
    let sources = ferry::ConfigSources {
        file: g
            .config
            .clone()
            .or_else(|| default_file.is_file().then_some(default_file)),
        sets: g.set.clone(),
    };
    let mut m = Migrator::new(&g.db)?
        .with_limits(limits)
        .with_config(config)
        .with_config_sources(sources)
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

/// The report of a run, whether it succeeded or failed ([`Error::Failed`] keeps what
/// completed): [`report`] prints both alike and picks the exit code from it.
fn ran(result: Result<Report, Error>) -> Result<Report, Error> {
    match result {
        Err(Error::Failed { report }) => Ok(*report),
        other => other,
    }
}

fn report(r: &Report, g: &Global, dry_run: bool) -> i32 {
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
                "{} {}: {} in {:.2}s, {} rows",
                c.direction.as_str(),
                c.revision,
                if dry_run { "rehearsed" } else { "done" },
                c.duration_ms as f64 / 1000.0,
                c.rows
            );
        }
        if dry_run && r.failed.is_none() {
            println!("dry run: this was a rehearsal; nothing was changed in the repository");
        }
    }
    match &r.failed {
        Some(e) if dry_run => {
            eprintln!("{}", render::script_error(e));
            if !r.not_run.is_empty() {
                eprintln!("not rehearsed: {}", r.not_run.join(", "));
            }
            eprintln!("dry run: the rehearsal failed here; nothing was changed in the repository");
            EXIT_FAILED
        }
        Some(e) => {
            eprintln!("{}", render::script_error(e));
            if !r.not_run.is_empty() {
                eprintln!("not run: {}", r.not_run.join(", "));
            }
            eprintln!(
                "`ferry status` shows where it stopped; fix the cause and run `ferry upgrade` \
                 again to resume"
            );
            EXIT_FAILED
        }
        None => 0,
    }
}

/// The commands that only read the repository: they open SQLite read-only and create
/// nothing (`Migrator::connect_read_only`).
fn reads_only(command: &Command) -> bool {
    matches!(
        command,
        Command::Status
            | Command::History { .. }
            | Command::Show { .. }
            | Command::Plan { .. }
            | Command::Graph
            | Command::Digest { .. }
            | Command::Check
    )
}

/// Says which SQLite files of the repository do not exist, so that a mistyped path is
/// not mistaken for a new, empty repository.
fn note_missing_files(m: &Migrator) {
    let Ok(files) = m.database_files() else {
        return;
    };
    for path in &files {
        let missing = |p: &&PathBuf| !p.exists() && p.parent().is_none_or(|d| d.is_dir());
        if let Some(path) = Some(path).filter(missing) {
            eprintln!(
                "note: the SQLite file {} does not exist: read as an empty repository, \
                 nothing created (`ferry upgrade` creates a new repository)",
                path.display()
            );
        }
    }
}

/// Warns on stderr when a PostgreSQL connection is a superuser's (nothing is said when
/// the check itself fails: the command that follows reports the connection's trouble).
fn warn_superuser(m: &Migrator) {
    for who in m.superusers().unwrap_or_default() {
        eprintln!(
            "warning: connected as superuser {who}: a script running as a superuser can \
             reach the server's files and programs, which Ferry cannot fully prevent; run \
             migrations as a dedicated role that owns the repository's schema (see \
             docs/OPERATIONS.md, \"A role for migrations\")"
        );
    }
}

fn run(cli: &Cli) -> Result<i32, Error> {
    let g = &cli.global;
    let m = migrator(g)?;
    if reads_only(&cli.command) {
        note_missing_files(&m);
    }
    if matches!(cli.command, Command::Status | Command::Upgrade { .. }) {
        warn_superuser(&m);
    }
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
        Command::Lint => {
            let problems = m.lint()?;
            let errors = problems
                .iter()
                .filter(|p| p.severity == ferry::Severity::Error)
                .count();
            if g.json {
                println!("{}", json(&problems));
            } else {
                for p in &problems {
                    println!("{p}");
                }
                println!("{errors} error(s), {} warning(s)", problems.len() - errors);
            }
            Ok(if errors > 0 { EXIT_USAGE } else { 0 })
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
            let heads = m.heads()?;
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
            targets, sql: true, ..
        } => match m.upgrade_sql(targets) {
            Err(Error::Failed { report }) => {
                if let Some(e) = &report.failed {
                    eprintln!("{}", render::script_error(e));
                }
                eprintln!(
                    "upgrade --sql: the dry run failed here, so no script was written; \
                         nothing was changed in the repository"
                );
                Ok(EXIT_FAILED)
            }
            Err(e) => Err(e),
            Ok(script) => {
                if g.json {
                    println!("{}", json(&script));
                } else {
                    print!("{}", script.sql);
                }
                Ok(0)
            }
        },
        Command::Upgrade {
            targets,
            dry_run,
            allow_changed,
            allow_late,
            ..
        } => {
            let r = m.upgrade(
                targets,
                &UpgradeOptions {
                    dry_run: *dry_run,
                    allow_changed: *allow_changed,
                    allow_late: *allow_late,
                    note: None,
                },
            );
            Ok(report(&ran(r)?, g, *dry_run))
        }
        Command::Show { revision } => {
            let info = m.show(revision)?;
            if g.json {
                println!("{}", json(&info));
            } else {
                print!("{}", render::show(&info));
            }
            Ok(0)
        }
        Command::Plan { targets } => {
            let p = m.plan_report(targets)?;
            if g.json {
                println!("{}", json(&p));
            } else {
                print!("{}", render::plan(&p));
            }
            // The process ends with this command: the migrator holds the syntax tree of
            // every script, and freeing thousands of them one by one would take longer
            // than printing the plan (it holds no connection or lock; the OS reclaims
            // the memory at exit).
            std::mem::forget(m);
            Ok(if p.problems.is_empty() { 0 } else { EXIT_USAGE })
        }
        Command::Graph => {
            // The graph needs no database; applied revisions are marked when one is reachable.
            if g.json {
                println!("{}", json(&m.tree_graph_texts()?));
            } else {
                print!("{}", m.graph_text()?);
            }
            Ok(0)
        }
        Command::Digest { verbose, database } => {
            let d = match database {
                Some(name) => m.digest_of(name)?,
                None => m.digest()?,
            };
            if g.json {
                println!("{}", json(&d));
            } else {
                if *verbose {
                    print!("{}", d.text);
                }
                println!("{}", d.sha256);
            }
            Ok(0)
        }
        Command::Stamp { revisions, force } => {
            let r = m.stamp(revisions, *force)?;
            if g.json {
                println!("{}", json(&r));
            } else {
                if r.stamped.is_empty() {
                    println!("nothing to stamp: already applied");
                }
                for id in &r.stamped {
                    println!(
                        "stamped {id} as applied{}",
                        if *force { " (--force)" } else { "" }
                    );
                }
                println!("schema digest {}", r.digest);
            }
            Ok(0)
        }
        Command::Adopt => {
            let r = m.adopt()?;
            if g.json {
                println!("{}", json(&r));
            } else {
                for p in &r.probes {
                    println!(
                        "probe {}: {}",
                        p.tree,
                        p.revision.as_deref().unwrap_or("not present")
                    );
                }
                for id in &r.stamp.stamped {
                    println!("stamped {id} as applied (adopt)");
                }
                println!("schema digest {}", r.stamp.digest);
            }
            Ok(0)
        }
        Command::Accept {
            revision,
            reason,
            by,
        } => {
            let r = m.accept(revision, reason.as_deref().unwrap_or(""), by.as_deref())?;
            if g.json {
                println!("{}", json(&r));
            } else {
                print!("{}", render::accepted(&r));
            }
            Ok(0)
        }
        Command::Unlock => {
            let r = m.unlock()?;
            if g.json {
                println!("{}", json(&r));
            } else {
                match &r.cleared {
                    Some(h) => println!(
                        "cleared the stale lock record of {h}: the lock is free (its holder is gone)"
                    ),
                    None => println!("no lock recorded and none held: nothing to do"),
                }
            }
            Ok(0)
        }
        Command::Reset { revision, steps } => {
            let r = m.reset(revision, steps)?;
            if g.json {
                println!("{}", json(&r));
            } else {
                println!(
                    "forgot committed step(s) of {}: {}",
                    r.revision,
                    r.forgotten.join(", ")
                );
                if !r.kept.is_empty() {
                    println!("still committed: {}", r.kept.join(", "));
                }
                println!("the next `ferry upgrade` runs the forgotten steps again");
            }
            Ok(0)
        }
        Command::New {
            tree,
            message,
            new_tree,
        } => {
            let r = m.new_revision(tree, message, *new_tree)?;
            if g.json {
                println!("{}", json(&r));
            } else {
                println!(
                    "wrote {} (revision {}, parents [{}])",
                    r.file.display(),
                    r.revision,
                    r.parents.join(", ")
                );
            }
            Ok(0)
        }
        Command::Downgrade { target, dry_run } => {
            let r = m.downgrade(
                target,
                &UpgradeOptions {
                    dry_run: *dry_run,
                    allow_changed: true,
                    allow_late: false,
                    note: None,
                },
            );
            Ok(report(&ran(r)?, g, *dry_run))
        }
        Command::Verify {
            auto_migrate,
            adopt,
            supports,
            targets,
        } => verify::run(&m, g, *auto_migrate, *adopt, supports, targets),
        Command::MoveTrees { trees, tables } => {
            let r = m.move_trees(trees, tables)?;
            if g.json {
                println!("{}", json(&r));
            } else {
                print!("{}", render::moved(&r));
            }
            Ok(0)
        }
        Command::Test { plugin, postgres } => Ok(plugin_test::run(g, plugin, postgres.as_deref())),
        Command::Check => {
            let s = m.status()?;
            if g.json {
                println!("{}", json(&s));
                return Ok(if s.at_heads() { 0 } else { EXIT_NOT_CURRENT });
            }
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
        // Each problem line says "error:" itself.
        Err(e @ Error::Lint(_)) => {
            eprintln!("{e}{}", render::error_hint(&e));
            e.exit_code()
        }
        Err(e) => {
            eprintln!("error: {e}{}", render::error_hint(&e));
            e.exit_code()
        }
    }
}
