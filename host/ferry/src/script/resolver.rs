//! `import` inside the sandbox: only `stdlib/` and the importing root's own `lib/`.

use super::ModulePaths;
use rhai::{Engine, EvalAltResult, Module, ModuleResolver, Position, Scope, Shared};
use std::cell::RefCell;
use std::collections::HashMap;
use std::path::{Component, Path, PathBuf};

pub struct SandboxResolver {
    paths: ModulePaths,
    cache: RefCell<HashMap<PathBuf, Shared<Module>>>,
    /// The modules being evaluated now, outermost first: an import of one of them is
    /// a cycle (which would otherwise recurse until the stack overflows).
    loading: RefCell<Vec<PathBuf>>,
}

impl SandboxResolver {
    pub fn new(paths: ModulePaths) -> Self {
        SandboxResolver {
            paths,
            cache: RefCell::new(HashMap::new()),
            loading: RefCell::new(Vec::new()),
        }
    }

    /// The directories an import from `source` may read, most specific first.
    fn allowed_dirs(&self, source: Option<&str>) -> Vec<PathBuf> {
        let mut dirs = Vec::new();
        if let Some(src) = source {
            let src = canonical(Path::new(src));
            // The longest root that contains the importing file is its own root.
            if let Some(root) = self
                .paths
                .roots
                .iter()
                .map(|r| canonical(r))
                .filter(|r| src.starts_with(r))
                .max_by_key(|r| r.as_os_str().len())
            {
                dirs.push(root.join("lib"));
            }
        }
        if let Some(std) = &self.paths.stdlib {
            dirs.push(canonical(std));
        }
        dirs
    }
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_path_buf())
}

fn refuse(path: &str, why: &str, pos: Position) -> Box<EvalAltResult> {
    // A script fault (not `ErrorModuleNotFound`, whose text Rhai reduces to the path),
    // so that the operator sees why the import was refused.
    let mut e = super::error::script_failure(format!("import {path:?} refused: {why}"));
    e.set_position(pos);
    e
}

impl ModuleResolver for SandboxResolver {
    fn resolve(
        &self,
        engine: &Engine,
        source: Option<&str>,
        path: &str,
        pos: Position,
    ) -> Result<Shared<Module>, Box<EvalAltResult>> {
        let rel = Path::new(path);
        if path.is_empty()
            || path.contains('\\')
            || rel.components().any(|c| !matches!(c, Component::Normal(_)))
        {
            return Err(refuse(
                path,
                "imports name a module inside stdlib/ or the plugin's lib/, without '..' or an absolute path",
                pos,
            ));
        }
        let file_name = if path.ends_with(".rhai") {
            path.to_string()
        } else {
            format!("{path}.rhai")
        };
        let dirs = self.allowed_dirs(source);
        for dir in &dirs {
            let candidate = canonical(&dir.join(&file_name));
            // A symlink may not lead out of the allowed folder.
            if !candidate.starts_with(dir) || !candidate.is_file() {
                continue;
            }
            if let Some(m) = self.cache.borrow().get(&candidate) {
                return Ok(m.clone());
            }
            if let Some(i) = self.loading.borrow().iter().position(|p| *p == candidate) {
                let cycle: Vec<String> = self.loading.borrow()[i..]
                    .iter()
                    .chain(std::iter::once(&candidate))
                    .map(|p| p.display().to_string())
                    .collect();
                return Err(refuse(
                    path,
                    &format!("import cycle: {}", cycle.join(" -> ")),
                    pos,
                ));
            }
            let size = std::fs::metadata(&candidate).map(|m| m.len()).unwrap_or(0);
            if size > crate::metadata::MAX_SCRIPT_BYTES {
                return Err(refuse(
                    path,
                    &format!(
                        "{} has {size} bytes, more than the {} a script file may have",
                        candidate.display(),
                        crate::metadata::MAX_SCRIPT_BYTES
                    ),
                    pos,
                ));
            }
            // Read and compiled once per content (see `crate::analysis::module`), with
            // the one parser configuration; run as this engine would have compiled it.
            let ast = match crate::analysis::module(&candidate) {
                Ok(file) => file.ast_for(engine),
                Err(crate::metadata::MetadataError::Syntax { .. }) => {
                    // Rhai's own parse error, with its type, for the report.
                    let text = std::fs::read_to_string(&candidate).unwrap_or_default();
                    let e = match engine.compile(&text) {
                        Err(e) => EvalAltResult::ErrorParsing(e.err_type().clone(), e.position()),
                        Ok(_) => EvalAltResult::ErrorRuntime(
                            format!("{} does not compile", candidate.display()).into(),
                            pos,
                        ),
                    };
                    return Err(Box::new(EvalAltResult::ErrorInModule(
                        candidate.to_string_lossy().to_string(),
                        Box::new(e),
                        pos,
                    )));
                }
                Err(crate::metadata::MetadataError::Io { message, .. }) => {
                    return Err(refuse(
                        path,
                        &format!("cannot read {}: {message}", candidate.display()),
                        pos,
                    ));
                }
                Err(other) => {
                    return Err(refuse(path, &format!("cannot read {other}"), pos));
                }
            };
            self.loading.borrow_mut().push(candidate.clone());
            let module = Module::eval_ast_as_new(Scope::new(), &ast, engine);
            self.loading.borrow_mut().pop();
            let module = module.map_err(|e| {
                Box::new(EvalAltResult::ErrorInModule(
                    candidate.to_string_lossy().to_string(),
                    e,
                    pos,
                ))
            })?;
            let shared: Shared<Module> = module.into();
            self.cache.borrow_mut().insert(candidate, shared.clone());
            return Ok(shared);
        }
        let looked: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
        Err(refuse(
            path,
            &format!("not found in {}", looked.join(", ")),
            pos,
        ))
    }
}
