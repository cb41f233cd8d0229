//! Runs every ```rhai example of docs/SCRIPTING.md as a revision (the doc's stated
//! convention: each block is a revision without its metadata header), on SQLite and,
//! when `FERRY_TEST_PG_URL` is set, on PostgreSQL. The docs cannot drift from the code.

#[path = "../../cli/tests/common/mod.rs"]
mod common;
mod script_support;
use script_support::{repo, Backend};

const HSC_HOOK: &str = r#"const HOOK = "populate_amplifier";
const KEY = "HSC";
fn run(db, args) {
    let rows = [];
    for d in db.query("SELECT id FROM detector WHERE instrument = ? ORDER BY id", [args.instrument]) {
        for amp in ["A", "B", "C", "D"] { rows.push([args.instrument, d.id, amp]); }
    }
    db.bulk_insert("amplifier", ["instrument", "detector", "name"], rows)
}"#;

/// The ```rhai blocks of the document, with the line each starts on.
fn examples() -> Vec<(usize, String)> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/SCRIPTING.md");
    let text = std::fs::read_to_string(path).expect("docs/SCRIPTING.md");
    let mut out = Vec::new();
    let mut current: Option<(usize, String)> = None;
    for (i, line) in text.lines().enumerate() {
        match &mut current {
            None if line.trim_end() == "```rhai" => current = Some((i + 2, String::new())),
            Some(_) if line.trim_end() == "```" => out.push(current.take().unwrap()),
            Some((_, body)) => {
                body.push_str(line);
                body.push('\n');
            }
            None => {}
        }
    }
    assert!(current.is_none(), "unterminated ```rhai block");
    out
}

fn run_all(backend: Backend) {
    let examples = examples();
    assert!(
        examples.len() >= 18,
        "found only {} examples",
        examples.len()
    );
    for (line, body) in examples {
        let Some(r) = repo(backend, "docs") else {
            return;
        };
        r.write("plugins/obs_subaru/hooks/amp.rhai", HSC_HOOK);
        let header = script_support::header("example", &[], &[]);
        let header = if body.contains("const HOOKS") {
            header
                .lines()
                .filter(|l| !l.starts_with("const HOOKS"))
                .map(|l| format!("{l}\n"))
                .collect()
        } else {
            header
        };
        r.write("scripts/t/example.rhai", &format!("{header}{body}"));
        // Examples may import the project's own stdlib/ modules.
        let stdlib = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../stdlib");
        match r
            .migrator()
            .with_stdlib(Some(stdlib))
            .upgrade(&[], &ferry::migrator::UpgradeOptions::default())
        {
            Ok(_) => {}
            Err(e @ ferry::migrator::Error::Failed { .. }) => {
                panic!("docs/SCRIPTING.md:{line}: the example failed on {backend:?}:\n{e}\n{body}")
            }
            Err(e) => panic!("docs/SCRIPTING.md:{line}: the example does not run: {e}\n{body}"),
        }
    }
}

#[test]
fn scripting_examples_run_on_sqlite() {
    run_all(Backend::Sqlite);
}

#[test]
fn scripting_examples_run_on_postgres() {
    run_all(Backend::Postgres);
}
