//! Finding script files under the roots.
//!
//! Every `*.rhai` file under a root is a revision, except files under a `lib/` folder
//! (modules that scripts `import`) and files under a `hooks/` folder (hook
//! implementations) and files under a `probes/` folder (scripts that recognise a
//! repository created by another tool, for `ferry adopt`). Roots are walked in sorted order so that discovery is deterministic.

use std::path::{Component, Path, PathBuf};

use walkdir::WalkDir;

use crate::analysis::ScriptFile;
use crate::metadata::{self, HookMeta, MetadataError, ModuleFile, RevisionMeta};

/// Everything found under the roots.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Discovered {
    pub revisions: Vec<RevisionMeta>,
    pub hooks: Vec<HookMeta>,
    pub modules: Vec<ModuleFile>,
    /// Probe scripts (`probes/*.rhai`), for `ferry adopt`.
    pub probes: Vec<ModuleFile>,
}

/// Why discovery failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// A script root does not exist (the root).
    #[error("script root {} does not exist", .0.display())]
    MissingRoot(PathBuf),
    /// A script root is not a directory (the root).
    #[error("script root {} is not a directory", .0.display())]
    NotADirectory(PathBuf),
    /// A directory or file under a root cannot be read.
    #[error("cannot walk {}: {message}", path.display())]
    Walk {
        /// The directory or file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// Every broken file, not only the first.
    #[error("{} script file(s) have broken metadata:\n{}", count_files(.0), join_lines(.0))]
    Metadata(Vec<MetadataError>),
}

fn count_files(errors: &[MetadataError]) -> usize {
    let mut files: Vec<&Path> = errors.iter().map(|e| e.path()).collect();
    files.sort();
    files.dedup();
    files.len()
}

fn join_lines(errors: &[MetadataError]) -> String {
    errors
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The roots used when none are given: `cwd/scripts` and every directory under
/// `cwd/plugins/`, sorted, keeping only those that exist (the caller decides what an
/// empty list means).
pub fn default_roots(cwd: &Path) -> Vec<PathBuf> {
    let mut roots = Vec::new();
    let scripts = cwd.join("scripts");
    if scripts.is_dir() {
        roots.push(scripts);
    }
    if let Ok(entries) = std::fs::read_dir(cwd.join("plugins")) {
        let mut plugins: Vec<PathBuf> = entries
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect();
        plugins.sort();
        roots.extend(plugins);
    }
    roots
}

/// What a script file is, from the folders between its root and itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Revision,
    Hook,
    Module,
    Probe,
}

fn kind_of(relative: &Path) -> Kind {
    let folders = relative
        .parent()
        .map(|p| p.components())
        .into_iter()
        .flatten();
    for c in folders {
        if let Component::Normal(name) = c {
            if name == "lib" {
                return Kind::Module;
            }
            if name == "hooks" {
                return Kind::Hook;
            }
            if name == "probes" {
                return Kind::Probe;
            }
        }
    }
    Kind::Revision
}

/// What discovery keeps of the syntax trees of revisions and hooks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trees {
    /// Every tree, for commands that check or run scripts.
    Keep,
    /// None: for commands that need only the metadata and the imports (`status`,
    /// `show`); see [`crate::analysis::ScriptFile::drop_tree`].
    Drop,
}

/// Walks every root and reads every script once (see [`crate::analysis`]), with the
/// metadata of revisions and hooks, keeping their syntax trees. A root that does not
/// exist is an error naming it; metadata faults of all files are collected and returned
/// together.
#[cfg(any(test, feature = "internals"))]
pub fn discover(roots: &[PathBuf]) -> Result<Discovered, DiscoveryError> {
    discover_with(roots, Trees::Keep)
}

/// [`discover`], keeping the syntax trees of revisions and hooks or not (`lib/`
/// modules are kept by [`crate::analysis::module`] anyway; probes are few).
pub fn discover_with(roots: &[PathBuf], trees: Trees) -> Result<Discovered, DiscoveryError> {
    for root in roots {
        if !root.exists() {
            return Err(DiscoveryError::MissingRoot(root.clone()));
        }
        if !root.is_dir() {
            return Err(DiscoveryError::NotADirectory(root.clone()));
        }
    }
    let mut found = Discovered::default();
    let mut errors = Vec::new();
    for root in roots {
        let walker = WalkDir::new(root).sort_by_file_name().follow_links(true);
        for entry in walker {
            let entry = entry.map_err(|e| DiscoveryError::Walk {
                path: e.path().unwrap_or(root).to_path_buf(),
                message: e.to_string(),
            })?;
            let path = entry.path();
            if !entry.file_type().is_file() || path.extension().is_none_or(|e| e != "rhai") {
                continue;
            }
            let relative = path.strip_prefix(root).unwrap_or(path);
            match kind_of(relative) {
                Kind::Module => found.modules.push(ModuleFile {
                    path: path.to_path_buf(),
                    root: root.clone(),
                    script: crate::analysis::module(path),
                }),
                Kind::Probe => found.probes.push(ModuleFile {
                    path: path.to_path_buf(),
                    root: root.clone(),
                    script: ScriptFile::read(path),
                }),
                Kind::Hook => match metadata::read_hook(path, root) {
                    Ok(mut h) => {
                        if trees == Trees::Drop {
                            h.script = h.script.drop_tree();
                        }
                        found.hooks.push(h)
                    }
                    Err(e) => errors.extend(e),
                },
                Kind::Revision => match metadata::read_revision(path, root) {
                    Ok(mut r) => {
                        if trees == Trees::Drop {
                            r.script = r.script.drop_tree();
                        }
                        found.revisions.push(r)
                    }
                    Err(e) => errors.extend(e),
                },
            }
        }
    }
    errors.extend(import_cycles(&found.modules));
    if errors.is_empty() {
        Ok(found)
    } else {
        Err(DiscoveryError::Metadata(errors))
    }
}

/// `lib/` modules that import themselves, directly or through others: each cycle once,
/// at the import line of its first module, naming every file on the way round.
fn import_cycles(modules: &[metadata::ModuleFile]) -> Vec<MetadataError> {
    use std::collections::{BTreeMap, BTreeSet};
    // module file -> (line, imported module file) within the same root's lib/.
    let mut edges: BTreeMap<PathBuf, Vec<(usize, PathBuf)>> = BTreeMap::new();
    for m in modules {
        let lib = m.root.join("lib");
        if !m.path.starts_with(&lib) {
            continue;
        }
        let imports = m
            .script
            .as_ref()
            .map(ScriptFile::imports)
            .unwrap_or_default();
        let targets = imports
            .into_iter()
            .map(|i| (i.pos.line, i.name))
            .filter_map(|(line, name)| {
                let file = if name.ends_with(".rhai") {
                    name
                } else {
                    format!("{name}.rhai")
                };
                let target = lib.join(file);
                target.is_file().then_some((line, target))
            })
            .collect();
        edges.insert(m.path.clone(), targets);
    }
    let mut errors = Vec::new();
    let mut reported: BTreeSet<BTreeSet<PathBuf>> = BTreeSet::new();
    for start in edges.keys() {
        // Depth-first search from `start` for a path back to it (modules are few).
        let mut stack: Vec<(PathBuf, Vec<(usize, PathBuf)>)> = vec![(start.clone(), Vec::new())];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for (line, next) in edges.get(&node).into_iter().flatten() {
                let mut on = path.clone();
                on.push((*line, next.clone()));
                if next == start {
                    let members: BTreeSet<PathBuf> = on.iter().map(|(_, p)| p.clone()).collect();
                    if reported.insert(members) {
                        let names: Vec<String> = std::iter::once(start.display().to_string())
                            .chain(on.iter().map(|(_, p)| p.display().to_string()))
                            .collect();
                        errors.push(MetadataError::ImportCycle {
                            path: start.clone(),
                            line: on[0].0,
                            cycle: names.join(" -> "),
                        });
                    }
                } else if seen.insert(next.clone()) {
                    stack.push((next.clone(), on));
                }
            }
        }
    }
    errors
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn revision(id: &str, parents: &str) -> String {
        format!(
            "const REVISION = \"{id}\";\nconst TREE = \"t\";\nconst PARENTS = [{parents}];\n\
             const VERSION = \"1\";\nconst DEPENDS_ON = [];\nconst MESSAGE = \"m\";\n\
             fn upgrade(db) {{ db.execute(\"SELECT 1\", []); }}\n"
        )
    }

    #[test]
    fn classifies_files_and_sorts() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("scripts");
        fs::create_dir_all(root.join("t/lib")).unwrap();
        fs::create_dir_all(root.join("hooks")).unwrap();
        fs::write(root.join("t/b.rhai"), revision("t-2", "\"t-1\"")).unwrap();
        fs::write(root.join("t/a.rhai"), revision("t-1", "")).unwrap();
        fs::write(root.join("t/notes.txt"), "not a script").unwrap();
        fs::write(root.join("t/lib/util.rhai"), "fn helper() { 1 }").unwrap();
        fs::write(root.join("hooks/h.rhai"), "const HOOK = \"h\"; fn run() {}").unwrap();
        let d = discover(std::slice::from_ref(&root)).expect("discovered");
        let ids: Vec<_> = d.revisions.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["t-1", "t-2"]);
        assert_eq!(d.hooks.len(), 1);
        assert_eq!(d.hooks[0].name, "h");
        assert_eq!(d.modules.len(), 1);
        assert_eq!(d.modules[0].path, root.join("t/lib/util.rhai"));
        assert_eq!(d.modules[0].root, root);
        assert_eq!(d.revisions[0].root, root);
    }

    #[test]
    fn missing_root_is_named() {
        let err = discover(&[PathBuf::from("/no/such/root")]).unwrap_err();
        assert_eq!(err.to_string(), "script root /no/such/root does not exist");
    }

    #[test]
    fn collects_errors_of_every_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().to_path_buf();
        fs::write(root.join("a.rhai"), "const REVISION = ;").unwrap();
        fs::write(root.join("b.rhai"), "const REVISION = \"b\";").unwrap();
        let err = discover(std::slice::from_ref(&root)).unwrap_err();
        let text = err.to_string();
        assert!(text.contains("a.rhai:1:"), "{text}");
        assert!(text.contains("b.rhai:1: TREE is not declared"), "{text}");
        assert!(text.starts_with("2 script file(s)"), "{text}");
    }

    #[test]
    fn default_roots_lists_existing_ones() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(default_roots(dir.path()).is_empty());
        fs::create_dir_all(dir.path().join("plugins/obs_b")).unwrap();
        fs::create_dir_all(dir.path().join("plugins/obs_a")).unwrap();
        fs::write(dir.path().join("plugins/README"), "").unwrap();
        fs::create_dir_all(dir.path().join("scripts")).unwrap();
        let roots = default_roots(dir.path());
        assert_eq!(
            roots,
            vec![
                dir.path().join("scripts"),
                dir.path().join("plugins/obs_a"),
                dir.path().join("plugins/obs_b"),
            ]
        );
    }
}
