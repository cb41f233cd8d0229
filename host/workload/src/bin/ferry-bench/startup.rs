//! The start-up benchmark: `ferry status` over a synthetic forest of 1,000 revisions in
//! 10 trees (target under 50 ms of process wall time), and `ferry plan` over 10,000
//! (target under 1 s), each timed over several runs as a process, median and minimum.
//!
//! The forests are linear trees whose every tenth revision also depends on the same
//! revision of the previous tree (cross-tree `DEPENDS_ON`), written into a scratch
//! directory; the database is an empty SQLite file, so every revision is pending.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process;
use crate::report::{self, Table};
use crate::target::{self, Scratch};
use crate::Env;

const TREES: usize = 10;

/// Writes `revisions` revisions in `TREES` trees under `root`.
fn write_forest(root: &Path, revisions: usize) -> Result<(), String> {
    for t in 0..TREES {
        let in_tree = revisions / TREES + usize::from(t < revisions % TREES);
        let dir = root.join(format!("tree{t:02}"));
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        for i in 0..in_tree {
            let parents = if i == 0 {
                "[]".to_string()
            } else {
                format!("[\"t{t:02}-{:05}\"]", i - 1)
            };
            let depends = if t > 0 && i % 10 == 9 && i < revisions / TREES {
                format!("[\"t{:02}-{i:05}\"]", t - 1)
            } else {
                "[]".to_string()
            };
            let text = format!(
                "// Synthetic revision {i} of tree {t}.\n\
                 const REVISION = \"t{t:02}-{i:05}\";\n\
                 const TREE = \"tree{t:02}\";\n\
                 const PARENTS = {parents};\n\
                 const VERSION = \"{i}.0.0\";\n\
                 const DEPENDS_ON = {depends};\n\
                 const MESSAGE = \"revision {i} of tree {t}\";\n\n\
                 fn upgrade(db) {{\n    db.execute(\"CREATE TABLE t{t:02}_{i:05} (id BIGINT)\");\n}}\n\n\
                 fn downgrade(db) {{\n    db.execute(\"DROP TABLE t{t:02}_{i:05}\");\n}}\n"
            );
            std::fs::write(dir.join(format!("t{t:02}-{i:05}.rhai")), text)
                .map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// Wall times of `runs` runs of `ferry ARGS` (after one untimed warm-up run).
fn time_runs(
    ferry: &Path,
    cwd: &Path,
    args: &[String],
    runs: usize,
) -> Result<Vec<Duration>, String> {
    let mut times = Vec::new();
    for i in 0..=runs {
        let mut cmd = Command::new(ferry);
        cmd.current_dir(cwd).args(args);
        let m = process::run(cmd)?.success(&format!("ferry {}", args.join(" ")))?;
        if i > 0 {
            times.push(m.wall);
        }
    }
    times.sort();
    Ok(times)
}

pub fn run(env: &Env, revisions: usize, plan_revisions: usize, runs: usize) -> Result<(), String> {
    println!("\n== start-up benchmark; {}", report::machine());
    let ferry = target::ferry_binary(env)?;
    let scratch = Scratch::new(env, "startup")?;
    let db = format!("sqlite:{}", scratch.path.join("empty.sqlite").display());
    let mut table = Table::new(
        format!("process wall time, {runs} runs each (after a warm-up run)"),
        &[
            "command",
            "revisions",
            "median ms",
            "min ms",
            "max ms",
            "target",
        ],
    );
    let mut problems = Vec::new();
    for (command, count, target_ms) in [
        ("status", revisions, 50.0),
        ("plan", plan_revisions, 1000.0),
    ] {
        let forest = scratch.path.join(format!("forest_{count}"));
        write_forest(&forest, count)?;
        let args = vec![
            "--db".to_string(),
            db.clone(),
            "--scripts".to_string(),
            forest.display().to_string(),
            command.to_string(),
        ];
        let times = time_runs(&ferry, &scratch.path, &args, runs.max(1))?;
        let ms = |d: &Duration| d.as_secs_f64() * 1000.0;
        let median = ms(&times[times.len() / 2]);
        table.row(vec![
            format!("ferry {command}"),
            count.to_string(),
            format!("{median:.1}"),
            format!("{:.1}", ms(&times[0])),
            format!("{:.1}", ms(&times[times.len() - 1])),
            format!("< {} ms", target_ms),
        ]);
        if count == 0 {
            problems.push("empty forest".to_string());
        }
    }
    table.print();
    println!("(finished with {})", report::load());
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("; "))
    }
}
