//! Every script the checks read, as discovery read it (no file is read or compiled
//! again, except `stdlib/` modules, which discovery does not walk), and how an `import`
//! resolves.

use super::{Problem, Severity};
use crate::analysis::ScriptFile;
use crate::discovery::Discovered;
use crate::metadata::MetadataError;
use crate::script::ModulePaths;
use rhai::AST;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};
use std::rc::Rc;

/// What a script file is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// A revision, with its id and the hooks its `HOOKS` declares.
    Revision {
        id: String,
        hooks: Vec<String>,
    },
    Hook,
    /// A module under a root's `lib/` or under `stdlib/`.
    Module,
}

/// One compiled script (`ast` is `None` when it does not compile).
pub struct Script {
    pub path: PathBuf,
    /// The root it was found under (`None` for `stdlib/`).
    pub root: Option<PathBuf>,
    pub kind: Kind,
    pub ast: Option<Rc<AST>>,
}

/// Every script under the roots and `stdlib/`.
pub struct ScriptSet {
    pub scripts: Vec<Script>,
    paths: ModulePaths,
    by_path: HashMap<PathBuf, usize>,
    syntax: Vec<Problem>,
}

/// Where an `import` leads.
pub enum Import<'a> {
    /// A module file the checks compiled (its `ast` is `None` if it does not compile).
    Found(&'a Script),
    /// No such module: the folders looked in.
    Missing(Vec<PathBuf>),
    /// The path is not one the sandbox accepts (reported at run time as such).
    Refused,
}

/// The problem of a module that could not be read or compiled.
fn unreadable(path: &Path, e: &MetadataError) -> Problem {
    let (line, column, message) = match e {
        MetadataError::Syntax {
            line,
            column,
            message,
            ..
        } => (*line, *column, format!("syntax error: {message}")),
        MetadataError::Io { message, .. } => (0, 0, format!("cannot read the script: {message}")),
        other => {
            // The message starts with the path (and the line), which the problem names.
            let text = other.to_string();
            let prefix = format!("{}:", path.display());
            let rest = text.strip_prefix(&prefix).unwrap_or(&text);
            let (line, rest) = match rest.split_once(": ") {
                Some((n, rest)) if n.split(':').all(|p| p.parse::<usize>().is_ok()) => (
                    n.split(':')
                        .next()
                        .and_then(|n| n.parse().ok())
                        .unwrap_or(0),
                    rest,
                ),
                _ => (0, rest.trim_start()),
            };
            (line, 0, rest.to_string())
        }
    };
    Problem {
        path: path.into(),
        line,
        column,
        severity: Severity::Error,
        message,
    }
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

/// The `.rhai` files under `dir`, sorted.
fn rhai_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = walkdir::WalkDir::new(dir)
        .follow_links(true)
        .into_iter()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_file())
        .map(|e| e.into_path())
        .filter(|p| p.extension().is_some_and(|x| x == "rhai"))
        .collect();
    files.sort();
    files
}

impl ScriptSet {
    /// The scripts of `found`, and the `stdlib/` modules of `paths` (read here).
    pub fn collect(found: &Discovered, paths: &ModulePaths) -> ScriptSet {
        let mut set = ScriptSet {
            scripts: Vec::new(),
            paths: paths.clone(),
            by_path: HashMap::new(),
            syntax: Vec::new(),
        };
        for r in &found.revisions {
            let kind = Kind::Revision {
                id: r.id.clone(),
                hooks: r.hooks.clone(),
            };
            set.add(&r.path, Some(&r.root), kind, Ok(&r.script));
        }
        for h in &found.hooks {
            set.add(&h.path, Some(&h.root), Kind::Hook, Ok(&h.script));
        }
        for m in &found.modules {
            set.add(&m.path, Some(&m.root), Kind::Module, m.script.as_ref());
        }
        if let Some(std) = paths.stdlib.as_ref().filter(|d| d.is_dir()) {
            for path in rhai_files(std) {
                if set.by_path.contains_key(&canonical(&path)) {
                    continue; // a stdlib folder that is also under a root
                }
                let file = crate::analysis::module(&path);
                set.add(&path, None, Kind::Module, file.as_ref());
            }
        }
        set
    }

    fn add(
        &mut self,
        path: &Path,
        root: Option<&Path>,
        kind: Kind,
        file: Result<&ScriptFile, &MetadataError>,
    ) {
        let key = canonical(path);
        if self.by_path.contains_key(&key) {
            return; // a stdlib folder that is also under a root
        }
        // Revisions and hooks that do not compile stop discovery, which reports them;
        // modules are run by nobody before the import that runs them.
        let ast = match file {
            Ok(file) => Some(file.shared_ast()),
            Err(e) => {
                self.syntax.push(unreadable(path, e));
                None
            }
        };
        self.by_path.insert(key, self.scripts.len());
        self.scripts.push(Script {
            path: path.into(),
            root: root.map(Into::into),
            kind,
            ast,
        });
    }

    /// Modules that could not be read or compiled.
    pub fn syntax_errors(&self) -> Vec<Problem> {
        self.syntax.clone()
    }

    /// Resolves `import "path"` from `from` as the sandbox's resolver does: the
    /// importing root's `lib/`, then `stdlib/`.
    pub fn resolve(&self, from: &Script, path: &str) -> Import<'_> {
        let rel = Path::new(path);
        if path.is_empty()
            || path.contains('\\')
            || rel.components().any(|c| !matches!(c, Component::Normal(_)))
        {
            return Import::Refused;
        }
        let file_name = if path.ends_with(".rhai") {
            path.to_string()
        } else {
            format!("{path}.rhai")
        };
        let mut dirs = Vec::new();
        if let Some(root) = &from.root {
            dirs.push(root.join("lib"));
        }
        if let Some(std) = &self.paths.stdlib {
            dirs.push(std.clone());
        }
        for dir in &dirs {
            let candidate = dir.join(&file_name);
            if candidate.is_file() {
                if let Some(&i) = self.by_path.get(&canonical(&candidate)) {
                    return Import::Found(&self.scripts[i]);
                }
            }
        }
        Import::Missing(dirs)
    }

    /// The module names an import from `from` could name (for suggestions).
    pub fn importable(&self, from: &Script) -> Vec<String> {
        let mut dirs = Vec::new();
        if let Some(root) = &from.root {
            dirs.push(root.join("lib"));
        }
        if let Some(std) = &self.paths.stdlib {
            dirs.push(std.clone());
        }
        let mut names = Vec::new();
        for dir in dirs.iter().filter(|d| d.is_dir()) {
            for f in rhai_files(dir) {
                if let Ok(rel) = f.strip_prefix(dir) {
                    let name = rel.to_string_lossy().trim_end_matches(".rhai").to_string();
                    names.push(name);
                }
            }
        }
        names
    }
}
