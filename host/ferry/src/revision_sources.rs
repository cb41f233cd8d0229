//! What a revision runs: its own file, every `lib/` module it imports (transitively),
//! and every provider file of the hooks it declares (`HOOKS`), with their checksums.
//!
//! The ledger records these at apply time (`ferry_sources`, and a digest of the
//! dependencies in `ferry_revisions.deps_checksum`), so that an edit of any of them
//! after the revision was applied is detected, named by path, and shown as a diff.
//!
//! Imports are found in each file's syntax tree (see [`crate::analysis`]: the revision
//! and hook files as discovery read them, modules compiled once per content), as
//! `import "name"` statements, including those inside functions; they resolve
//! as the sandbox resolves them: the importing file's own root's `lib/`. Modules of
//! `stdlib/` are not counted: they ship with Ferry and change only with it, and a Ferry
//! upgrade must not make every applied revision "changed".

use crate::analysis::ScriptFile;
use crate::metadata::{checksum, RevisionMeta};
use crate::script::hooks::HookSet;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The largest file whose text the ledger keeps (for `ferry show`'s diff); a larger
/// file is recorded by checksum only.
pub const MAX_STORED_BYTES: usize = 256 * 1024;

/// What a source file is to the revision.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SourceKind {
    /// The revision's own file.
    Revision,
    /// A `lib/` module it imports, directly or through other modules or hooks.
    Module,
    /// A provider of a hook it declares.
    Hook,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Revision => "revision",
            SourceKind::Module => "module",
            SourceKind::Hook => "hook",
        }
    }

    #[cfg(any(test, feature = "internals"))]
    pub fn parse(s: &str) -> Option<SourceKind> {
        match s {
            "revision" => Some(SourceKind::Revision),
            "module" => Some(SourceKind::Module),
            "hook" => Some(SourceKind::Hook),
            _ => None,
        }
    }
}

/// One file a revision runs, as it is on disk now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceFile {
    /// The file's name in the ledger and in messages: its root's folder name and its
    /// path inside the root (`obs_test/hooks/amplifiers.rhai`), the same on every
    /// machine that checks out the same roots.
    pub label: String,
    pub path: PathBuf,
    pub kind: SourceKind,
    /// sha256 of the bytes, lowercase hex (empty: the file cannot be read now).
    pub checksum: String,
    /// The text, when it is UTF-8 and at most [`MAX_STORED_BYTES`] long.
    pub text: Option<String>,
}

/// Every file a revision runs, its own first, then the others sorted by label.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RevisionSources {
    pub files: Vec<SourceFile>,
}

impl RevisionSources {
    /// sha256 over the labels and checksums of the dependencies (every file but the
    /// revision's own, whose checksum the ledger keeps apart): one value that changes
    /// when any module or hook file is edited, added or removed.
    pub fn deps_checksum(&self) -> String {
        let mut text = String::new();
        for f in self.files.iter().filter(|f| f.kind != SourceKind::Revision) {
            text.push_str(&format!("{} {} {}\n", f.kind.as_str(), f.label, f.checksum));
        }
        checksum(text.as_bytes())
    }
}

/// `path`'s label: the root's folder name and the path inside the root.
pub fn label(path: &Path, root: &Path) -> String {
    let inside = path.strip_prefix(root).unwrap_or(path);
    let root_name = root
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let inside = inside
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect::<Vec<_>>()
        .join("/");
    if root_name.is_empty() {
        inside
    } else {
        format!("{root_name}/{inside}")
    }
}

/// A file as read once (its bytes are the ones hashed and compiled).
fn of_file(file: &ScriptFile, root: &Path, kind: SourceKind) -> SourceFile {
    let text = file.text();
    SourceFile {
        label: label(file.path(), root),
        path: file.path().to_path_buf(),
        kind,
        checksum: file.checksum().to_string(),
        text: (text.len() <= MAX_STORED_BYTES).then(|| text.to_string()),
    }
}

/// A module file as it is on disk now, and its tree when it reads and compiles.
fn read_module(path: &Path, root: &Path) -> (SourceFile, Option<ScriptFile>) {
    match crate::analysis::module(path) {
        Ok(file) => (of_file(&file, root, SourceKind::Module), Some(file)),
        // Not UTF-8, too large or not compiling: recorded by the checksum of its bytes.
        Err(_) => (read(path, root, SourceKind::Module), None),
    }
}

fn read(path: &Path, root: &Path, kind: SourceKind) -> SourceFile {
    let bytes = std::fs::read(path).ok();
    let checksum = bytes.as_deref().map(checksum).unwrap_or_default();
    let text = bytes
        .filter(|b| b.len() <= MAX_STORED_BYTES)
        .and_then(|b| String::from_utf8(b).ok());
    SourceFile {
        label: label(path, root),
        path: path.to_path_buf(),
        kind,
        checksum,
        text,
    }
}

/// The names a script imports (`import "name"`, anywhere in the file), in order.
fn imported_names(file: &ScriptFile) -> Vec<String> {
    file.imports().into_iter().map(|i| i.name).collect()
}

/// Every file `revision` runs: its own and the providers of the hooks it declares (in
/// every root) as discovery read them, and the `lib/` modules these import as they are
/// on disk now.
pub fn of_revision(revision: &RevisionMeta, hooks: &HookSet) -> RevisionSources {
    let own = of_file(&revision.script, &revision.root, SourceKind::Revision);
    let mut found: BTreeMap<PathBuf, SourceFile> = BTreeMap::new();
    // (the file, the root it imports from)
    let mut queue: Vec<(ScriptFile, PathBuf)> =
        vec![(revision.script.clone(), revision.root.clone())];
    for (hook_id, providers) in &hooks.providers {
        if !revision.hooks.contains(&hook_id.0) {
            continue;
        }
        for h in providers {
            if found.contains_key(&h.path) {
                continue;
            }
            let f = of_file(&h.script, &h.root, SourceKind::Hook);
            queue.push((h.script.clone(), h.root.clone()));
            found.insert(h.path.clone(), f);
        }
    }
    // Follow imports; a module already found is not read again (which also ends
    // import cycles).
    while let Some((file, root)) = queue.pop() {
        for name in imported_names(&file) {
            let file_name = if name.ends_with(".rhai") {
                name
            } else {
                format!("{name}.rhai")
            };
            let module = root.join("lib").join(file_name);
            if !module.is_file() || found.contains_key(&module) {
                continue;
            }
            let (f, script) = read_module(&module, &root);
            if let Some(script) = script {
                queue.push((script, root.clone()));
            }
            found.insert(module, f);
        }
    }
    let mut others: Vec<SourceFile> = found.into_values().collect();
    others.sort_by(|a, b| a.label.cmp(&b.label));
    let mut files = vec![own];
    files.extend(others);
    RevisionSources { files }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn imports_are_found_in_functions_and_followed_through_modules() {
        let file = ScriptFile::from_source(
            Path::new("x.rhai"),
            "import \"a\" as a;\nfn upgrade(db) { import \"b\" as b; b::f(); }\n// import \"c\"\n",
        )
        .unwrap();
        let names = imported_names(&file);
        assert_eq!(names, ["a", "b"]);
    }

    #[test]
    fn a_file_over_the_cap_is_recorded_by_checksum_only() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("lib/big.rhai");
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        let big = format!("// {}\n", "x".repeat(MAX_STORED_BYTES));
        fs::write(&path, &big).unwrap();
        let f = read(&path, dir.path(), SourceKind::Module);
        assert_eq!(f.text, None);
        assert_eq!(f.checksum, checksum(big.as_bytes()));
        fs::write(&path, "fn small() { 1 }").unwrap();
        let f = read(&path, dir.path(), SourceKind::Module);
        assert_eq!(f.text.as_deref(), Some("fn small() { 1 }"));
    }

    #[test]
    fn sources_cover_hooks_and_transitive_modules() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("obs_test");
        fs::create_dir_all(root.join("lib")).unwrap();
        fs::create_dir_all(root.join("hooks")).unwrap();
        fs::write(
            root.join("001_a.rhai"),
            "const REVISION = \"a-1\"; const TREE = \"a\"; const PARENTS = []; const VERSION = \"1\";\n\
             const DEPENDS_ON = []; const MESSAGE = \"m\"; const HOOKS = [\"h\"];\n\
             import \"util\" as u;\nfn upgrade(db) {}\n",
        )
        .unwrap();
        fs::write(
            root.join("lib/util.rhai"),
            "import \"deep\" as d;\nfn f() { 1 }",
        )
        .unwrap();
        fs::write(
            root.join("lib/deep.rhai"),
            "import \"util\" as u;\nfn g() { 2 }",
        )
        .unwrap();
        fs::write(root.join("lib/unused.rhai"), "fn h() { 3 }").unwrap();
        fs::write(
            root.join("hooks/h.rhai"),
            "const HOOK = \"h\"; import \"hooklib\" as k; fn run(db) {}",
        )
        .unwrap();
        fs::write(root.join("lib/hooklib.rhai"), "fn k() { 4 }").unwrap();
        fs::write(
            root.join("hooks/other.rhai"),
            "const HOOK = \"other\"; fn run(db) {}",
        )
        .unwrap();
        let meta = crate::metadata::read_revision(&root.join("001_a.rhai"), &root).unwrap();
        let hooks = vec![
            crate::metadata::read_hook(&root.join("hooks/h.rhai"), &root).unwrap(),
            crate::metadata::read_hook(&root.join("hooks/other.rhai"), &root).unwrap(),
        ];
        let sources = of_revision(&meta, &HookSet::new(&hooks));
        let labels: Vec<(&str, SourceKind)> = sources
            .files
            .iter()
            .map(|f| (f.label.as_str(), f.kind))
            .collect();
        assert_eq!(
            labels,
            [
                ("obs_test/001_a.rhai", SourceKind::Revision),
                ("obs_test/hooks/h.rhai", SourceKind::Hook),
                ("obs_test/lib/deep.rhai", SourceKind::Module),
                ("obs_test/lib/hooklib.rhai", SourceKind::Module),
                ("obs_test/lib/util.rhai", SourceKind::Module),
            ]
        );
        let before = sources.deps_checksum();
        fs::write(root.join("lib/unused.rhai"), "fn h() { 30 }").unwrap();
        let same = of_revision(&meta, &HookSet::new(&hooks));
        assert_eq!(
            same.deps_checksum(),
            before,
            "an unused module is not a dependency"
        );
        fs::write(root.join("lib/deep.rhai"), "fn g() { 20 }").unwrap();
        let after = of_revision(&meta, &HookSet::new(&hooks));
        assert_ne!(after.deps_checksum(), before);
    }
}
