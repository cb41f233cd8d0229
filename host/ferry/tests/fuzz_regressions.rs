//! Replays the fuzz inputs kept in `host/ferry/fuzz/` through the very checks the fuzz
//! targets run (`host/ferry/fuzz/src/checks.rs`), in the normal `cargo test`: every crash
//! input the fuzzers found (`regressions/`), the hand-written seeds, and, for the
//! metadata reader, every script of the repository.

#[allow(dead_code)] // each test uses one of the checks
#[path = "../fuzz/src/checks.rs"]
mod checks;

use std::path::{Path, PathBuf};

fn fuzz_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

fn files_in(dir: &Path, out: &mut Vec<PathBuf>, only_rhai: bool) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries {
        let path = e.expect("directory entry").path();
        if path.is_dir() {
            files_in(&path, out, only_rhai);
        } else if !only_rhai || path.extension().is_some_and(|x| x == "rhai") {
            out.push(path);
        }
    }
}

fn replay(inputs: &[PathBuf], check: fn(&[u8])) {
    for path in inputs {
        let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let outcome = std::panic::catch_unwind(|| check(&bytes));
        assert!(outcome.is_ok(), "{} fails its check", path.display());
    }
}

#[test]
fn metadata_inputs_pass() {
    let mut crashes = Vec::new();
    files_in(
        &fuzz_dir().join("regressions/metadata"),
        &mut crashes,
        false,
    );
    assert!(
        !crashes.is_empty(),
        "the metadata fuzzer's findings are kept"
    );
    let mut scripts = Vec::new();
    let repo = fuzz_dir().join("../../..");
    for dir in ["scripts", "plugins", "stdlib", "tests/fixtures"] {
        files_in(&repo.join(dir), &mut scripts, true);
    }
    assert!(scripts.len() > 100, "only {} scripts found", scripts.len());
    replay(&crashes, checks::metadata);
    replay(&scripts, checks::metadata);
}

#[test]
fn target_inputs_pass() {
    let mut inputs = Vec::new();
    files_in(&fuzz_dir().join("regressions/target"), &mut inputs, false);
    files_in(&fuzz_dir().join("seeds/target"), &mut inputs, false);
    assert!(inputs.len() >= 7, "only {} target inputs", inputs.len());
    replay(&inputs, checks::target);
}

/// The first finding: Rhai ends a `//` comment at a lone carriage return and counts a
/// line there, so positions may lie past the last '\n'-separated line.
#[test]
fn lone_carriage_return_counts_as_a_line() {
    let source = "// comment\r]";
    let errors = ferry::metadata::revision_from_source(
        Path::new("fuzz/input.rhai"),
        Path::new("fuzz"),
        source,
    )
    .expect_err("not a revision");
    assert!(
        errors[0].to_string().starts_with("fuzz/input.rhai:2:"),
        "{}",
        errors[0]
    );
    checks::metadata(source.as_bytes());
}
