//! `ferry test PLUGIN_DIR`: runs [`ferry::plugin_test`] and prints each phase as it ends.

use super::args::Global;
use super::{render, EXIT_FAILED, EXIT_USAGE};
use ferry::{PhaseOutcome, PhaseReport, PluginTestOptions};
use std::path::{Path, PathBuf};

/// The roots the other commands would use: `--scripts`, else `FERRY_PATH`, else
/// `./scripts` and `./plugins/*`.
fn roots(g: &Global, cwd: &Path) -> Vec<PathBuf> {
    if !g.scripts.is_empty() {
        return g.scripts.clone();
    }
    if let Ok(path) = std::env::var("FERRY_PATH") {
        return path
            .split(':')
            .filter(|p| !p.is_empty())
            .map(PathBuf::from)
            .collect();
    }
    ferry::default_roots(cwd)
}

pub fn run(g: &Global, plugin: &Path, postgres: Option<&str>) -> i32 {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    let settings = ferry::config::load(g.config.as_deref(), &cwd, &g.set)
        .and_then(|c| ferry::config::limits(&c).map(|l| (c, l)));
    let (config, limits) = match settings {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: {e}");
            return EXIT_USAGE;
        }
    };
    let stdlib = g
        .stdlib
        .clone()
        .or_else(|| Some(cwd.join("stdlib")).filter(|d| d.is_dir()));
    let options = PluginTestOptions {
        plugin: plugin.to_path_buf(),
        roots: roots(g, &cwd),
        stdlib,
        config,
        limits,
        postgres: postgres.map(str::to_string),
    };
    let names: Vec<String> = options
        .roots
        .iter()
        .map(|r| r.strip_prefix(&cwd).unwrap_or(r).display().to_string())
        .collect();
    println!(
        "ferry test {}, with the roots {}",
        plugin.display(),
        names.join(", ")
    );
    let mut backends_failed: Vec<&str> = Vec::new();
    let mut backends_run: Vec<&str> = Vec::new();
    let mut print = |r: &PhaseReport| {
        if !backends_run.contains(&r.backend) {
            backends_run.push(r.backend);
        }
        match &r.outcome {
            PhaseOutcome::Passed(what) => println!("[{}] {}: ok, {what}", r.backend, r.phase),
            PhaseOutcome::Script(e) => {
                backends_failed.push(r.backend);
                println!("[{}] {}: FAILED", r.backend, r.phase);
                eprintln!("{}", render::script_error(e));
            }
            PhaseOutcome::Failed(why) => {
                backends_failed.push(r.backend);
                println!("[{}] {}: FAILED", r.backend, r.phase);
                eprintln!("{why}");
            }
        }
    };
    match ferry::run_plugin_test(&options, &mut print) {
        Ok(true) => {
            let ran = backends_run.join(" and ");
            let skipped = if postgres.is_none() {
                " (PostgreSQL not tested: pass --postgres URL)"
            } else {
                ""
            };
            println!("passed on {ran}{skipped}");
            0
        }
        Ok(false) => {
            println!("failed on {}", backends_failed.join(" and "));
            EXIT_FAILED
        }
        Err(e) => {
            let hint = match &e {
                ferry::PluginTestError::Migrator(e) => render::error_hint(e),
                _ => String::new(),
            };
            eprintln!("error: {e}{hint}");
            match e {
                ferry::PluginTestError::Migrator(e) => e.exit_code(),
                _ => EXIT_USAGE,
            }
        }
    }
}
