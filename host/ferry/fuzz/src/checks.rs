//! What the fuzz targets check, shared with `host/ferry/tests/fuzz_regressions.rs` (which
//! includes this file with `#[path]`), so a saved input replays through the very same
//! function in the normal `cargo test`.
//!
//! Both functions panic on a violated property; any other outcome, an `Err` included,
//! is a pass. Inputs are never written anywhere and no database is opened.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use ferry::graph::Graph;
use ferry::metadata::{self, MetadataError, Position, RevisionMeta};
use ferry::plan::{plan_downgrade, plan_upgrade};
use ferry::target::{resolve_target, Target};

const FILE: &str = "fuzz/input.rhai";

/// The metadata reader on arbitrary bytes, as a revision file and as a hook file.
///
/// Properties: no panic; a revision it accepts has non-empty id and tree, the sha256 of
/// the bytes and positions inside the file; every error names the file (its message
/// starts with `fuzz/input.rhai:`) and, where it gives a line, one inside the file.
pub fn metadata(data: &[u8]) {
    let Ok(source) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new(FILE);
    let root = Path::new("fuzz");
    // Lines end at '\n'; Rhai also ends a `//` comment at a lone '\r' and counts a
    // line there (an old-Mac line ending; the first fuzz finding), so a lone '\r'
    // may start a line too. A position may sit on the last line, at the end of input.
    let lone_cr = source
        .as_bytes()
        .windows(2)
        .filter(|w| w[0] == b'\r' && w[1] != b'\n')
        .count()
        + usize::from(source.ends_with('\r'));
    let last_line = source.split('\n').count() + lone_cr;
    let line_ok = |line: usize| (1..=last_line).contains(&line);
    match metadata::revision_from_source(path, root, source) {
        Ok(m) => {
            assert!(!m.id.trim().is_empty(), "accepted an empty REVISION");
            assert!(!m.tree.trim().is_empty(), "accepted an empty TREE");
            assert_eq!(m.checksum, metadata::checksum(data));
            for p in [m.revision_pos, m.parents_pos, m.depends_on_pos] {
                assert!(line_ok(p.line), "position {p:?} outside the file");
            }
            assert!(m.parents.iter().all(|p| !p.trim().is_empty()));
            assert!(m.depends_on.iter().all(|d| !d.trim().is_empty()));
        }
        Err(errors) => check_errors(&errors, path, &line_ok),
    }
    match metadata::hook_from_source(path, root, source) {
        Ok(h) => {
            assert!(!h.name.trim().is_empty(), "accepted an empty HOOK");
            assert!(line_ok(h.pos.line), "position {:?} outside the file", h.pos);
        }
        Err(errors) => check_errors(&errors, path, &line_ok),
    }
}

fn check_errors(errors: &[MetadataError], path: &Path, line_ok: &dyn Fn(usize) -> bool) {
    assert!(!errors.is_empty(), "an Err without any error");
    for e in errors {
        let text = e.to_string();
        assert_eq!(e.path(), path, "{text}");
        assert!(text.starts_with(&format!("{FILE}:")), "{text}");
        // `file:LINE:` (or `file:LINE:COLUMN:`) where the message gives a line.
        let rest = &text[FILE.len() + 1..];
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        if let Ok(line) = digits.parse::<usize>() {
            assert!(line_ok(line), "line {line} outside the file: {text}");
        }
    }
}

/// Target resolution over a graph described by the input.
///
/// The input is text, one item a line: the target first, then the applied revisions
/// (separated by spaces), then one revision a line, `ID TREE PARENTS DEPS` with
/// comma-separated lists (`-` for none). Lines with fewer fields are skipped.
///
/// Properties: no panic, resolving twice gives the same answer, a resolved target
/// names only revisions and trees of the graph (`-N` only applied ones, `+N` exactly N
/// pending ones), and the upgrade and downgrade plans to it are consistent: an
/// upgrade runs pending revisions once each, after everything they need; a downgrade
/// undoes applied revisions once each, after every applied revision that needs them.
pub fn target(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let mut lines = text.split('\n');
    let target_text = lines.next().unwrap_or_default().to_string();
    let applied: BTreeSet<String> = lines
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .map(String::from)
        .collect();
    let revisions: Vec<RevisionMeta> = lines.enumerate().filter_map(revision).collect();
    let graph = match Graph::build(revisions) {
        Ok(g) => g,
        Err(e) => {
            assert!(!e.faults().is_empty());
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let first = resolve_target(&graph, &applied, &target_text);
    assert_eq!(first, resolve_target(&graph, &applied, &target_text));
    let Ok(target) = first else {
        return;
    };
    let known_applied = applied.iter().any(|id| graph.contains(id));
    match &target {
        Target::Heads | Target::Base => {}
        Target::TreeBase(tree) => assert!(graph.has_tree(tree), "{target}"),
        Target::Revisions(ids) => {
            assert!(!ids.is_empty());
            assert!(ids.iter().all(|id| graph.contains(id)), "{target}");
            if let Some(n) = relative(target_text.trim(), '+') {
                assert_eq!(ids.len(), n, "{target}");
                assert!(ids.iter().all(|id| !applied.contains(id)), "{target}");
            }
        }
        Target::Undo(ids) => {
            assert!(known_applied);
            assert!(ids
                .iter()
                .all(|id| graph.contains(id) && applied.contains(id)));
            if let Some(n) = relative(target_text.trim(), '-') {
                assert_eq!(ids.len(), n, "{target}");
            }
        }
    }
    if let Ok(plan) = plan_upgrade(&graph, &applied, std::slice::from_ref(&target)) {
        let mut done: BTreeSet<&str> = applied.iter().map(String::as_str).collect();
        for id in &plan.revisions {
            let r = graph.get(id).expect("planned revisions exist");
            assert!(!applied.contains(id), "upgrade plans applied {id}");
            for needed in r.parents.iter().chain(&r.depends_on) {
                assert!(
                    done.contains(needed.as_str()),
                    "{id} planned before {needed}"
                );
            }
            assert!(done.insert(id), "{id} planned twice");
        }
    }
    if let Ok(plan) = plan_downgrade(&graph, &applied, &target) {
        let mut undone: BTreeSet<&str> = BTreeSet::new();
        for id in &plan.revisions {
            assert!(applied.contains(id), "downgrade plans unapplied {id}");
            for later in graph.descendants(id) {
                if applied.contains(later) {
                    assert!(undone.contains(later), "{id} undone before {later}");
                }
            }
            assert!(undone.insert(id), "{id} undone twice");
        }
    }
}

/// `N` of `+N` / `-N` as the resolver reads it.
fn relative(text: &str, sign: char) -> Option<usize> {
    let digits = text.strip_prefix(sign)?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| *n > 0)
}

/// One `ID TREE PARENTS DEPS` line as a revision (line numbers for positions).
fn revision((n, line): (usize, &str)) -> Option<RevisionMeta> {
    let mut fields = line.split_whitespace();
    let (id, tree) = (fields.next()?, fields.next()?);
    let list = |f: Option<&str>| -> Vec<String> {
        f.filter(|f| *f != "-")
            .map(|f| {
                f.split(',')
                    .filter(|s| !s.is_empty())
                    .map(String::from)
                    .collect()
            })
            .unwrap_or_default()
    };
    let parents = list(fields.next());
    let depends_on = list(fields.next());
    let line = n + 3;
    let pos = Position { line, column: 1 };
    Some(RevisionMeta {
        id: id.into(),
        tree: tree.into(),
        parents,
        version: "1".into(),
        depends_on,
        message: String::new(),
        hooks: Vec::new(),
        online_safe: false,
        expected_digest: None,
        alembic: vec![],
        has_downgrade: true,
        has_upgrade: true,
        path: PathBuf::from(format!("fuzz/{tree}/{id}.rhai")),
        root: PathBuf::from("fuzz"),
        checksum: String::new(),
        // The graph never reads the script; an empty one compiles in no time.
        script: ferry::analysis::ScriptFile::from_source(
            &PathBuf::from(format!("fuzz/{tree}/{id}.rhai")),
            "",
        )
        .ok()?,
        defaults: Default::default(),
        revision_pos: pos,
        parents_pos: pos,
        depends_on_pos: pos,
        before: vec![],
        before_pos: pos,
        open_to_plugins: false,
        statement_timeout_seconds: None,
        statement_timeout_pos: pos,
    })
}
