//! Text for people: tables, and error reports with the script's source line.

use ferry::format_utc;
use ferry::HistoryEntry;
use ferry::ScriptError;
use ferry::Status;
use miette::{Diagnostic, NamedSource, SourceSpan};

/// A table with left-aligned columns.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.len()).collect();
    for r in rows {
        for (i, c) in r.iter().enumerate() {
            widths[i] = widths[i].max(c.chars().count());
        }
    }
    // Each cell padded to its column's width, two spaces apart, the line's end trimmed
    // (written in place: a plan of thousands of revisions has tens of thousands).
    let line = |out: &mut String, cells: &mut dyn Iterator<Item = &str>| {
        let start = out.len();
        for (i, c) in cells.enumerate() {
            if i > 0 {
                out.push_str("  ");
            }
            out.push_str(c);
            let pad = widths[i].saturating_sub(c.chars().count());
            out.extend(std::iter::repeat_n(' ', pad));
        }
        let kept = out[start..].trim_end().len();
        out.truncate(start + kept);
        out.push('\n');
    };
    let mut out = String::new();
    line(&mut out, &mut header.iter().copied());
    for r in rows {
        line(&mut out, &mut r.iter().map(String::as_str));
    }
    out
}

pub fn status(s: &Status) -> String {
    let mut out = format!("database: {}\n", s.database);
    if !s.ledger {
        out.push_str("no Ferry ledger yet: nothing applied\n");
    }
    for d in &s.databases {
        out.push_str(&format!(
            "database {}: {}{} (trees: {})\n",
            d.name,
            d.database,
            if d.ledger { "" } else { ", no ledger yet" },
            if d.trees.is_empty() {
                "-".into()
            } else {
                d.trees.join(", ")
            }
        ));
    }
    let several = !s.databases.is_empty();
    let rows: Vec<Vec<String>> = s
        .trees
        .iter()
        .map(|t| {
            let mut row = vec![
                t.tree.clone(),
                if t.current.is_empty() {
                    "-".into()
                } else {
                    t.current.join(", ")
                },
                t.version.clone().unwrap_or_else(|| "-".into()),
                t.heads.join(", "),
                t.pending.len().to_string(),
            ];
            if several {
                row.insert(1, t.database.clone().unwrap_or_default());
            }
            row
        })
        .collect();
    let mut header = vec!["TREE", "CURRENT", "VERSION", "HEAD", "PENDING"];
    if several {
        header.insert(1, "DATABASE");
    }
    out.push_str(&table(&header, &rows));
    for t in &s.trees {
        for u in &t.unfinished {
            if u.interrupted {
                out.push_str(&format!(
                    "\nunfinished: {} was interrupted: recorded running, but no migrator holds \
                     the lock (the run was killed, crashed or lost its connection)",
                    u.revision
                ));
            } else {
                out.push_str(&format!(
                    "\nunfinished: {} is {}",
                    u.revision,
                    u.state.as_str()
                ));
            }
            if let Some(step) = &u.failed_step {
                out.push_str(&format!(" at step {step:?}"));
            }
            if !u.steps_done.is_empty() {
                out.push_str(&format!("\n  steps committed: {}", u.steps_done.join(", ")));
            }
            for (step, batches) in &u.batches_done {
                out.push_str(&format!(
                    "\n  step {step:?} interrupted after {batches} committed batch(es)"
                ));
            }
            if let Some(e) = &u.error {
                out.push_str(&format!("\n  error: {e}"));
            }
            out.push_str("\n  `ferry upgrade` resumes it from there.\n");
        }
    }
    if let Some(h) = &s.locked_by {
        out.push_str(&format!("\nlocked by {h}\n"));
    }
    if let Some(t) = s.statement_timeout_seconds {
        out.push_str(&format!(
            "\nstatement timeout: {t} s (limits.statement_timeout_seconds)\n"
        ));
    }
    if !s.changed.is_empty() {
        out.push_str(&format!(
            "\nchanged since applied: {}\n",
            s.changed.join(", ")
        ));
        for c in &s.changed_files {
            out.push_str(&format!("  {c}\n"));
        }
        out.push_str(&format!("  {}\n", ferry::changed_hint(&s.changed_files)));
    }
    if !s.unknown.is_empty() {
        out.push_str(&format!(
            "\napplied but unknown to these scripts: {}\n",
            s.unknown.join(", ")
        ));
    }
    for m in &s.misplaced {
        out.push_str(&format!(
            "\nmisplaced: {m}\n  copy its tables there, then `ferry move-trees {}` (docs/EMBEDDING.md)\n",
            m.tree
        ));
    }
    out
}

pub fn history(entries: &[HistoryEntry]) -> String {
    let rows: Vec<Vec<String>> = entries
        .iter()
        .map(|e| {
            vec![
                format_utc(e.started_at),
                e.revision.clone(),
                e.direction.clone(),
                e.outcome.clone(),
                format!("{:.2}s", e.duration_ms as f64 / 1000.0),
                e.rows.to_string(),
                format!("{}@{}", e.username, e.host),
                e.error
                    .clone()
                    .or_else(|| e.note.clone())
                    .unwrap_or_default(),
            ]
        })
        .collect();
    table(
        &[
            "STARTED",
            "REVISION",
            "DIRECTION",
            "OUTCOME",
            "TIME",
            "ROWS",
            "BY",
            "ERROR",
        ],
        &rows,
    )
}

#[derive(Debug, thiserror::Error, Diagnostic)]
#[error("{kind}: {message}")]
#[diagnostic(help("{help}"))]
struct ScriptDiagnostic {
    kind: String,
    message: String,
    help: String,
    #[source_code]
    src: NamedSource<String>,
    #[label("here")]
    span: SourceSpan,
}

/// Renders a script failure with the offending source line, as miette draws it.
/// A diagnostic rendered by miette's usual handler, with line wrapping off.
struct Unwrapped<'a>(&'a ScriptDiagnostic);

impl std::fmt::Debug for Unwrapped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use miette::ReportHandler;
        miette::MietteHandlerOpts::new()
            .wrap_lines(false)
            .build()
            .debug(self.0, f)
    }
}

pub fn script_error(e: &ScriptError) -> String {
    let mut help = format!("revision {}", e.revision);
    if let Some(step) = &e.step {
        help.push_str(&format!(", step {step:?}"));
    }
    help.push_str(&format!(", {}", e.file.display()));
    if e.line > 0 {
        help.push_str(&format!(":{}:{}", e.line, e.column));
    }
    let text = std::fs::read_to_string(&e.file).ok();
    match text {
        Some(text) if e.line > 0 => {
            let offset: usize = text
                .split_inclusive('\n')
                .take(e.line - 1)
                .map(str::len)
                .sum::<usize>()
                + e.column.saturating_sub(1);
            let offset = offset.min(text.len());
            let d = ScriptDiagnostic {
                kind: e.kind.to_string(),
                message: e.message.clone(),
                help,
                src: NamedSource::new(e.file.display().to_string(), text),
                span: (offset, 1).into(),
            };
            // Unwrapped: a wrapped message splits names ("core-" / "9") and paths
            // across lines, which no operator can grep for.
            format!("{:?}", Unwrapped(&d))
        }
        _ => e.to_string(),
    }
}

fn yes_no(b: bool, yes: &str, no: &str) -> String {
    if b { yes } else { no }.to_string()
}

fn hooks_text(hooks: &[ferry::HookUse]) -> String {
    hooks
        .iter()
        .map(|h| {
            if h.providers.is_empty() {
                format!("{} (NOT PROVIDED)", h.hook)
            } else {
                let files: Vec<String> = h
                    .providers
                    .iter()
                    .map(|p| match &p.key {
                        Some(k) => format!("{k}: {}", p.file),
                        None => p.file.clone(),
                    })
                    .collect();
                format!("{} <- {}", h.hook, files.join(", "))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

pub fn show(i: &ferry::RevisionInfo) -> String {
    let list = |v: &[String]| {
        if v.is_empty() {
            "-".to_string()
        } else {
            v.join(", ")
        }
    };
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{k:<15} {v}\n"));
    line("revision", i.revision.clone());
    line("tree", i.tree.clone());
    line("version", i.version.clone());
    line("message", i.message.clone());
    line("file", i.file.clone());
    line("checksum", i.checksum.clone());
    line("parents", list(&i.parents));
    line("children", list(&i.children));
    line("depends on", list(&i.depends_on));
    line("before", list(&i.before));
    line("after (BEFORE)", list(&i.after));
    line(
        "hooks",
        if i.hooks.is_empty() {
            "-".into()
        } else {
            hooks_text(&i.hooks)
        },
    );
    line(
        "online-safe",
        yes_no(i.online_safe, "yes", "no: needs the repository idle"),
    );
    line("downgradable", yes_no(i.downgradable, "yes", "no"));
    line(
        "digest",
        i.expected_digest.clone().unwrap_or_else(|| "-".into()),
    );
    line("head", yes_no(i.head, "yes", "no"));
    let mut state = i.state.clone();
    if let Some(r) = &i.record {
        state.push_str(&format!(" ({}, {})", r.how, format_utc(r.updated_at)));
        if let Some(step) = &r.failed_step {
            state.push_str(&format!(", failed at step {step:?}"));
        }
    }
    line("state", state);
    if let Some(e) = i.record.as_ref().and_then(|r| r.error.clone()) {
        line("error", e);
    }
    if i.changed {
        line(
            "CHANGED",
            "files differ from what ran when it was applied:".into(),
        );
        for c in &i.changes {
            out.push_str(&format!("  {} {} ({})\n", c.kind, c.path, c.change));
        }
        for d in &i.diffs {
            out.push('\n');
            out.push_str(&d.diff);
            if !d.diff.ends_with('\n') {
                out.push('\n');
            }
        }
        out.push_str(&format!(
            "\nafter review: ferry accept {} --reason TEXT\n",
            i.revision
        ));
    }
    out
}

pub fn accepted(r: &ferry::AcceptReport) -> String {
    let mut out = String::new();
    if r.files.is_empty() {
        out.push_str(&format!(
            "{}: no file had changed; recorded again, by {}: {}\n",
            r.revision, r.by, r.reason
        ));
    } else {
        out.push_str(&format!(
            "{}: accepted by {}: {}\n",
            r.revision, r.by, r.reason
        ));
        for c in &r.files {
            out.push_str(&format!("  {} {} ({})\n", c.kind, c.path, c.change));
        }
    }
    out.push_str("recorded in the history (`ferry history`)\n");
    out
}

pub fn plan(p: &ferry::PlanReport) -> String {
    if p.revisions.is_empty() {
        return "nothing to do: every target is applied\n".into();
    }
    let rows: Vec<Vec<String>> = p
        .revisions
        .iter()
        .enumerate()
        .map(|(n, e)| {
            let mut state = e.state.clone();
            if !e.steps_done.is_empty() {
                state.push_str(&format!(" (resumes after {})", e.steps_done.join(", ")));
            }
            let tree = match &e.database {
                Some(d) => format!("{} ({d})", e.tree),
                None => e.tree.clone(),
            };
            vec![
                (n + 1).to_string(),
                e.revision.clone(),
                tree,
                e.version.clone(),
                yes_no(e.online_safe, "online-safe", "needs idle"),
                yes_no(e.downgradable, "yes", "NO"),
                state,
                if e.hooks.is_empty() {
                    "-".into()
                } else {
                    hooks_text(&e.hooks)
                },
            ]
        })
        .collect();
    let mut out = table(
        &[
            "#",
            "REVISION",
            "TREE",
            "VERSION",
            "ONLINE",
            "DOWNGRADE",
            "STATE",
            "HOOKS",
        ],
        &rows,
    );
    for e in p.revisions.iter().filter(|e| !e.steps.is_empty()) {
        out.push_str(&format!("\n{} steps: {}", e.revision, e.steps.join(" → ")));
    }
    if p.revisions.iter().any(|e| !e.steps.is_empty()) {
        out.push('\n');
    }
    let idle = p.revisions.iter().filter(|e| !e.online_safe).count();
    if idle > 0 {
        out.push_str(&format!(
            "\n{idle} revision(s) need the repository to be idle (no other users) while they run\n"
        ));
    }
    for problem in &p.problems {
        out.push_str(&format!("problem: {problem}\n"));
    }
    out
}

pub fn moved(r: &ferry::MoveReport) -> String {
    let mut out = format!(
        "moved tree(s) {} from database {} to database {}: {} revision record(s), {} history row(s)\n",
        r.trees.join(", "),
        r.from,
        r.to,
        r.revisions.len(),
        r.history_rows
    );
    for (table, rows) in &r.tables {
        out.push_str(&format!("  table {table}: {rows} row(s) in {}\n", r.to));
    }
    if !r.left_in_source.is_empty() {
        out.push_str(&format!(
            "still in database {}: {} (drop them once the application runs on {})\n",
            r.from,
            r.left_in_source.join(", "),
            r.to
        ));
    }
    out
}

/// What the command line adds to a library error's message: the command or option
/// that acts on it (the library's messages name none). Appended as is.
pub fn error_hint(e: &ferry::Error) -> String {
    use ferry::Error;
    match e {
        Error::Changed(changed) => format!(
            "\n  {}\n  or rerun with --allow-changed to run anyway (recorded in the history)",
            ferry::changed_hint(changed)
        ),
        Error::DigestAfterUpgrade { .. } => {
            "\n  (run `ferry digest --verbose` to see the schema as Ferry reads it)".into()
        }
        Error::DigestMismatch { .. } => {
            "; check the repository, or pass --force to record anyway".into()
        }
        Error::Lint(_) => " (`ferry lint` lists every problem)".into(),
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::table;

    #[test]
    fn tables_pad_by_characters_and_trim_line_ends() {
        let rows = [
            vec!["é".to_string(), String::new()],
            vec!["xyz".to_string(), "1".to_string()],
        ];
        assert_eq!(table(&["a", "bb"], &rows), "a    bb\né\nxyz  1\n");
        assert_eq!(table(&["a"], &[]), "a\n");
    }
}
