//! `ferry verify`: a thin layer over [`Migrator::verify`].

use super::args::Global;
use super::render::{script_error, table};
use super::{json, EXIT_FAILED, EXIT_NOT_CURRENT};
use ferry::Access;
use ferry::{changed_hint, Error, Migrator, TreeState, TreeVerdict, Verification, VerifyOptions};

pub fn run(
    m: &Migrator,
    g: &Global,
    auto_migrate: bool,
    adopt: bool,
    supports: &[String],
    targets: &[String],
) -> Result<i32, Error> {
    let mut options = VerifyOptions::default()
        .auto_migrate(auto_migrate)
        .adopt(adopt)
        .targets(targets.to_vec());
    for s in supports {
        let (tree, version) = s
            .split_once('=')
            .filter(|(t, v)| !t.trim().is_empty() && !v.trim().is_empty())
            .ok_or_else(|| {
                Error::Refused(format!("--supports {s:?} must look like TREE=VERSION"))
            })?;
        options = options.supports(tree.trim(), version.trim());
    }
    let (v, failure) = match m.verify(&options) {
        Ok(v) => (v, None),
        // The auto-migration failed: show the state it left (classified again, without
        // migrating), with the failed run's report, then the failure.
        Err(Error::Failed { report }) => {
            let after = m.verify(&options.clone().auto_migrate(false))?;
            let failure = report.failed.clone();
            let v = Verification {
                migrated: Some(*report),
                ..after
            };
            (v, failure)
        }
        Err(e) => return Err(e),
    };
    if g.json {
        println!("{}", json(&v));
    } else {
        print!("{}", render(&v));
    }
    if let Some(e) = failure {
        eprintln!("{}", script_error(&e));
        return Ok(EXIT_FAILED);
    }
    Ok(if v.writable() { 0 } else { EXIT_NOT_CURRENT })
}

fn render(v: &Verification) -> String {
    let mut out = String::new();
    for d in &v.databases {
        let what = if !d.exists {
            "does not exist".to_string()
        } else if d.ledger {
            format!("{} table(s), Ferry ledger", d.tables)
        } else {
            format!("{} table(s), no Ferry ledger", d.tables)
        };
        out.push_str(&format!("database {}: {} ({what})\n", d.name, d.database));
    }
    let dash = |s: String| if s.is_empty() { "-".into() } else { s };
    let rows: Vec<Vec<String>> = v
        .trees
        .iter()
        .map(|t| {
            vec![
                t.tree.clone(),
                t.database.clone(),
                t.state.as_str().to_string(),
                t.version.clone().unwrap_or_else(|| "-".into()),
                dash(t.current.join(", ")),
                dash(t.heads.join(", ")),
                t.access.access.as_str().to_string(),
            ]
        })
        .collect();
    out.push_str(&table(
        &[
            "TREE", "DATABASE", "STATE", "VERSION", "CURRENT", "HEAD", "ACCESS",
        ],
        &rows,
    ));
    for t in &v.trees {
        out.push_str(&format!("  {}: {}", t.tree, t.detail));
        for hint in hints(t) {
            out.push_str(&format!("; {hint}"));
        }
        out.push('\n');
    }
    if let Some(r) = &v.migrated {
        let done: Vec<&str> = r.completed.iter().map(|c| c.revision.as_str()).collect();
        out.push_str(&format!(
            "auto-migrate ran {} revision(s){}{}\n",
            done.len(),
            if done.is_empty() { "" } else { ": " },
            done.join(", ")
        ));
    }
    if let Some(why) = &v.plan_error {
        out.push_str(&format!("no plan can be made: {why}\n"));
    }
    if let Some(why) = &v.not_migrated {
        out.push_str(&format!("{why}\n"));
    }
    if !v.plan.is_empty() {
        out.push_str(&format!("plan: {}\n", v.plan.join(", ")));
    }
    let verdict = match v.access.access {
        Access::Write => "the code may read and write this repository",
        Access::Read => "the code may only read this repository",
        Access::Refuse => "the code must not use this repository",
    };
    out.push_str(&format!("verdict: {verdict}\n"));
    if v.access.access != Access::Write {
        for reason in v.access.reason.split("; ") {
            out.push_str(&format!("  {reason}\n"));
        }
    }
    out
}

/// The commands that act on a tree in its state: the library says what must happen,
/// the command line which command does it.
fn hints(t: &TreeVerdict) -> Vec<String> {
    let mut hints = Vec::new();
    match t.state {
        TreeState::NoDatabase | TreeState::Empty => {
            hints.push("`ferry verify --auto-migrate` or `ferry upgrade` does".into())
        }
        TreeState::Unfinished => hints.push("`ferry upgrade` resumes it".into()),
        TreeState::UnversionedRecognised => hints.push(
            match t.recognised.as_ref().and_then(|r| r.revision.as_ref()) {
                Some(_) => "`ferry adopt` records it".into(),
                None => "`ferry adopt`, then `ferry upgrade`".into(),
            },
        ),
        _ => {}
    }
    if !t.changed.is_empty() {
        hints.push(changed_hint(&t.changed));
    }
    hints
}
