//! `ferry test PLUGIN_DIR`: runs [`ferry::plugin_test`] and prints each phase as it ends,
//! or with `--json` the whole run as one document when it ends.

use super::args::Global;
use super::{render, EXIT_FAILED, EXIT_USAGE};
use ferry::{PhaseOutcome, PhaseReport, PluginTestOptions};
use serde::Serialize;
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
    if g.json {
        return run_json(&options, names);
    }
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
        Err(e) => refused(e),
    }
}

/// Why the test could not start, on stderr; exit 2 (or the migrator's own code).
fn refused(e: ferry::PluginTestError) -> i32 {
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

/// `ferry test --json`: the whole run as one JSON document on stdout (docs/PLUGINS.md,
/// "Testing a plugin"), printed when it ends; the exit code is the text form's.
#[derive(Serialize)]
struct TestJson {
    /// The plugin's folder name.
    name: String,
    /// The plugin's folder as given.
    plugin: PathBuf,
    /// The other roots.
    roots: Vec<String>,
    passed: bool,
    /// One entry per backend run, in order.
    backends: Vec<BackendJson>,
}

#[derive(Serialize)]
struct BackendJson {
    backend: &'static str,
    passed: bool,
    /// The schema digest after the first upgrade, when it was reached.
    digest: Option<String>,
    phases: Vec<PhaseJson>,
}

#[derive(Serialize)]
struct PhaseJson {
    phase: String,
    /// `passed`, `failed` or `script_error`.
    outcome: &'static str,
    /// What a passed phase did, or why a failed one failed.
    detail: Option<String>,
    /// A failed revision: its kind, message, revision, step, file, line, column.
    error: Option<ferry::ScriptError>,
    digest: Option<String>,
}

fn run_json(options: &PluginTestOptions, roots: Vec<String>) -> i32 {
    let mut backends: Vec<BackendJson> = Vec::new();
    let mut collect = |r: &PhaseReport| {
        if backends.last().map(|b| b.backend) != Some(r.backend) {
            backends.push(BackendJson {
                backend: r.backend,
                passed: true,
                digest: None,
                phases: Vec::new(),
            });
        }
        let backend = backends.last_mut().expect("pushed above");
        let (outcome, detail, error) = match &r.outcome {
            PhaseOutcome::Passed(what) => ("passed", Some(what.clone()), None),
            PhaseOutcome::Failed(why) => ("failed", Some(why.clone()), None),
            PhaseOutcome::Script(e) => ("script_error", None, Some((**e).clone())),
        };
        backend.passed &= outcome == "passed";
        if r.phase == "upgrade" {
            backend.digest.clone_from(&r.digest);
        }
        backend.phases.push(PhaseJson {
            phase: r.phase.clone(),
            outcome,
            detail,
            error,
            digest: r.digest.clone(),
        });
    };
    match ferry::run_plugin_test(options, &mut collect) {
        Ok(passed) => {
            let report = TestJson {
                name: options
                    .plugin
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                plugin: options.plugin.clone(),
                roots,
                passed,
                backends,
            };
            println!("{}", super::json(&report));
            if passed {
                0
            } else {
                EXIT_FAILED
            }
        }
        Err(e) => refused(e),
    }
}
