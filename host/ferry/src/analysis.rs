//! Reading a script file, once: its bytes are read, hashed and compiled from the same
//! buffer, with the one parser configuration every reader shares.
//!
//! A [`ScriptFile`] is what the rest of Ferry knows of a file: the sha256 of its bytes
//! (the checksum the ledger records), its text (recorded with an applied revision), and
//! the syntax tree compiled from that text. Discovery reads every revision, hook,
//! probe and `lib/` module into one; the metadata reader, `ferry lint`, the checksums of
//! what a revision runs and the runner all use that form, so that the tree that runs is
//! the one compiled from the bytes that were hashed, and no stage reads or compiles the
//! file again. A file edited after discovery is not seen until the next discovery: the
//! plan, the checks and the run all describe the version discovered.
//!
//! Commands that neither run nor check scripts (`status`, `show`) need only the
//! metadata: discovery then drops each tree once the metadata and the imports are read
//! from it ([`ScriptFile::drop_tree`]), since keeping a thousand trees costs more
//! memory (and time spent growing and freeing the heap) than the command's own work. A
//! tree asked for after that is compiled again from the kept text, the bytes that were
//! hashed, once per file for all its copies.

use std::cell::{Cell, OnceCell, RefCell};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use rhai::{ASTNode, Engine, Expr, OptimizationLevel, Stmt, AST};
use sha2::{Digest, Sha256};

use crate::metadata::{MetadataError, Position};

/// The largest script file Ferry reads (revision, hook or module): larger files would
/// take seconds to compile at every `status`.
pub const MAX_SCRIPT_BYTES: u64 = 1024 * 1024;

/// One script file as read: checksum, text and syntax tree, from one read of its bytes.
///
/// Cloning shares the text, the tree and the imports. Two are equal when they are the
/// same file with the same bytes (the tree is a function of the bytes).
#[derive(Clone)]
pub struct ScriptFile {
    path: PathBuf,
    checksum: String,
    text: Rc<str>,
    /// The tree compiled from `text`; empty after [`ScriptFile::drop_tree`] until asked
    /// for again. Shared by the clones, so that they compile it at most once.
    ast: Rc<OnceCell<Rc<AST>>>,
    /// The file's literal imports, read from the tree on first use (or before the tree
    /// is dropped).
    imports: Rc<OnceCell<Vec<Import>>>,
}

impl PartialEq for ScriptFile {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path && self.checksum == other.checksum
    }
}

impl std::fmt::Debug for ScriptFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScriptFile")
            .field("path", &self.path)
            .field("checksum", &self.checksum)
            .finish_non_exhaustive()
    }
}

/// An `import "name"` of a script: the name as written and where the statement is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub name: String,
    pub pos: Position,
}

impl ScriptFile {
    /// Reads the file at `path` once: at most [`MAX_SCRIPT_BYTES`], UTF-8, hashed and
    /// compiled from the bytes read.
    pub fn read(path: &Path) -> Result<ScriptFile, MetadataError> {
        let bytes = read_bytes(path)?;
        let text = String::from_utf8(bytes)
            .map_err(|e| not_utf8(path, e.as_bytes(), e.utf8_error().valid_up_to()))?;
        ScriptFile::from_source(path, &text)
    }

    /// Compiles `source` as the text of the file `path` (which names it in messages and
    /// in run-time errors; nothing is read from it).
    pub fn from_source(path: &Path, source: &str) -> Result<ScriptFile, MetadataError> {
        let ast = compile(path, source)?;
        Ok(ScriptFile {
            path: path.to_path_buf(),
            checksum: checksum(source.as_bytes()),
            text: source.into(),
            ast: Rc::new(OnceCell::from(Rc::new(ast))),
            imports: Rc::new(OnceCell::new()),
        })
    }

    /// The same file without its syntax tree (its imports read first): for commands
    /// that need only what discovery read from the tree. [`ScriptFile::ast`] compiles
    /// the kept text again if the tree is asked for after all.
    pub fn drop_tree(self) -> ScriptFile {
        self.imports();
        ScriptFile {
            ast: Rc::new(OnceCell::new()),
            ..self
        }
    }

    /// Whether the syntax tree is held (not dropped, or compiled again since).
    #[cfg(test)]
    pub fn has_tree(&self) -> bool {
        self.ast.get().is_some()
    }

    /// The same file named by another path (another spelling of it): messages and
    /// run-time errors name the path asked for.
    fn with_path(self, path: &Path) -> ScriptFile {
        if self.path == path {
            return self;
        }
        let mut ast = self.ast().clone();
        ast.set_source(path.to_string_lossy().to_string());
        ScriptFile {
            path: path.to_path_buf(),
            ast: Rc::new(OnceCell::from(Rc::new(ast))),
            ..self
        }
    }

    /// The file this was read from.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// sha256 of the file's bytes, lowercase hex.
    pub fn checksum(&self) -> &str {
        &self.checksum
    }

    /// The file's text, as hashed and compiled.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The syntax tree as written (no optimisation; its source is the file's path).
    /// After [`ScriptFile::drop_tree`], compiled again from the kept text (the bytes
    /// that were hashed), once for this file and its clones.
    pub fn ast(&self) -> &AST {
        self.tree()
    }

    /// The syntax tree, shared.
    pub fn shared_ast(&self) -> Rc<AST> {
        self.tree().clone()
    }

    fn tree(&self) -> &Rc<AST> {
        self.ast.get_or_init(|| {
            // The same text compiled with the same engine when the file was read, so it
            // cannot fail now.
            let ast = compile(&self.path, &self.text)
                .unwrap_or_else(|e| panic!("a text that compiled once compiles again: {e}"));
            Rc::new(ast)
        })
    }

    /// The tree to run on `engine`: optimised at the engine's own level, as the engine
    /// would have compiled it, from the same tree (so from the same bytes).
    pub fn ast_for(&self, engine: &Engine) -> AST {
        let level = engine.optimization_level();
        if level == OptimizationLevel::None {
            return self.ast().clone();
        }
        let mut ast = engine.optimize_ast(&rhai::Scope::new(), self.ast().clone(), level);
        ast.set_source(self.path.to_string_lossy().to_string());
        ast
    }

    /// Every `import "name"` of the file with a literal name, in file order (at the top
    /// level and inside functions).
    pub fn imports(&self) -> Vec<Import> {
        self.imports.get_or_init(|| imports_of(self.ast())).clone()
    }

    /// Whether the file defines `name` with `arity` parameters.
    #[cfg(test)]
    pub fn defines(&self, name: &str, arity: usize) -> bool {
        self.ast()
            .iter_functions()
            .any(|f| f.name == name && f.params.len() == arity)
    }

    /// The steps the file declares (`db.step` / `db.batches`), in order (see
    /// [`crate::offline::declared_steps`]).
    pub fn declared_steps(&self) -> Vec<String> {
        crate::offline::declared_steps(self.ast())
    }
}

/// Every `import "name"` of `ast` with a literal name, in file order.
fn imports_of(ast: &AST) -> Vec<Import> {
    let mut out = Vec::new();
    ast.walk(&mut |path: &[ASTNode]| {
        if let Some(ASTNode::Stmt(Stmt::Import(x, pos))) = path.last() {
            if let Expr::StringConstant(name, _) = &x.0 {
                out.push(Import {
                    name: name.to_string(),
                    pos: to_position(*pos),
                });
            }
        }
        true
    });
    out.sort_by_key(|i| (i.pos.line, i.pos.column));
    out
}

/// The engine that reads scripts without running them (headers, probes' `TREE`, imports,
/// declared steps, `ferry lint`): every file is compiled with this one configuration, so
/// that a file one reader accepts the others accept too, and the runner runs the tree it
/// compiled (see [`ScriptFile::ast_for`]).
pub(crate) fn parse_engine() -> Engine {
    // A raw engine registers no packages; compiling never resolves `import`s (they are
    // resolved when the script runs), and no optimisation may fold or drop constants.
    let mut engine = Engine::new_raw();
    engine.set_optimization_level(OptimizationLevel::None);
    // Scripts nest maps in arrays in calls (table definitions) and loops in conditions
    // in functions (probes); debug builds of Rhai default to a depth of 16 inside
    // functions, far too little for that. The script host sets the same depths.
    engine.set_max_expr_depths(256, 256);
    // The script host disables `eval` (a script must not build code at run time); a
    // disabled symbol is a syntax error, so the parser must know it too.
    engine.disable_symbol("eval");
    engine
}

/// Reads a module (a `lib/` or `stdlib/` file, which many revisions and hooks import):
/// its bytes are read and hashed each time, so that an edit is always seen, but bytes
/// already compiled on this thread are not compiled again.
pub fn module(path: &Path) -> Result<ScriptFile, MetadataError> {
    let bytes = read_bytes(path)?;
    let sum = checksum(&bytes);
    // Discovery names a module as walked, the resolver by its canonical path.
    let key = (
        path.canonicalize().unwrap_or_else(|_| path.to_path_buf()),
        sum,
    );
    if let Some(file) = MODULES.with(|m| m.borrow().get(&key).cloned()) {
        return Ok(file.with_path(path));
    }
    let text = String::from_utf8(bytes)
        .map_err(|e| not_utf8(path, e.as_bytes(), e.utf8_error().valid_up_to()))?;
    let file = ScriptFile::from_source(path, &text)?;
    MODULES.with(|m| m.borrow_mut().insert(key, file.clone()));
    Ok(file)
}

thread_local! {
    /// Modules compiled on this thread, by path and checksum (see [`module`]).
    static MODULES: RefCell<HashMap<(PathBuf, String), ScriptFile>> = RefCell::new(HashMap::new());
    /// How many times this thread compiled a script file (see [`parses_on_this_thread`]).
    static PARSES: Cell<u64> = const { Cell::new(0) };
    /// The one parse engine of this thread (building one registers its keywords).
    static ENGINE: Engine = parse_engine();
}

/// How many script texts this thread has compiled with the parse engine: a test reads
/// it before and after a command to see that every file is compiled once.
#[cfg(any(test, feature = "internals"))]
pub fn parses_on_this_thread() -> u64 {
    PARSES.with(Cell::get)
}

/// Compiles `source` (the text of `path`) with the parse engine; the tree's source is
/// the path.
fn compile(path: &Path, source: &str) -> Result<AST, MetadataError> {
    PARSES.with(|n| n.set(n.get() + 1));
    let mut ast = ENGINE.with(|engine| engine.compile(source)).map_err(|e| {
        let pos = e.position();
        MetadataError::Syntax {
            path: path.to_path_buf(),
            line: pos.line().unwrap_or(1),
            column: pos.position().unwrap_or(1),
            message: e.err_type().to_string(),
        }
    })?;
    ast.set_source(path.to_string_lossy().to_string());
    Ok(ast)
}

pub(crate) fn to_position(pos: rhai::Position) -> Position {
    Position {
        line: pos.line().unwrap_or(1),
        column: pos.position().unwrap_or(1),
    }
}

/// The bytes of `path`, refusing files over [`MAX_SCRIPT_BYTES`] before reading them.
fn read_bytes(path: &Path) -> Result<Vec<u8>, MetadataError> {
    let io = |message: String| MetadataError::Io {
        path: path.to_path_buf(),
        message,
    };
    let size = std::fs::metadata(path)
        .map_err(|e| io(e.to_string()))?
        .len();
    if size > MAX_SCRIPT_BYTES {
        return Err(MetadataError::TooLarge {
            path: path.to_path_buf(),
            why: format!(
                "the file has {size} bytes, more than the {MAX_SCRIPT_BYTES} a script file may \
                 have (split it, or move data out of the script)"
            ),
        });
    }
    std::fs::read(path).map_err(|e| io(e.to_string()))
}

/// The error for a file whose bytes stop being UTF-8 at `valid` (line and column of
/// the offending byte, so that an editor can find it).
pub(crate) fn not_utf8(path: &Path, bytes: &[u8], valid: usize) -> MetadataError {
    let before = &bytes[..valid];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    // Columns count characters, as Rhai's do; everything before `valid` is UTF-8.
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    MetadataError::NotUtf8 {
        path: path.to_path_buf(),
        line: before.iter().filter(|&&b| b == b'\n').count() + 1,
        column,
        byte: bytes.get(valid).copied().unwrap_or_default(),
    }
}

/// sha256 of `bytes`, lowercase hex.
pub fn checksum(bytes: &[u8]) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digest = Sha256::digest(bytes);
    let mut out = String::with_capacity(64);
    for b in digest {
        out.push(char::from(HEX[usize::from(b >> 4)]));
        out.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_read_gives_checksum_text_and_tree_of_the_same_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.rhai");
        let text = "import \"util\" as u;\nfn upgrade(db) {\n    import \"deep\" as d;\n    db.step(\"one\", |db| {});\n}\n";
        std::fs::write(&path, text).unwrap();
        let before = parses_on_this_thread();
        let file = ScriptFile::read(&path).expect("reads");
        assert_eq!(parses_on_this_thread() - before, 1);
        assert_eq!(file.checksum(), checksum(text.as_bytes()));
        assert_eq!(file.text(), text);
        assert_eq!(file.ast().source(), Some(path.to_string_lossy().as_ref()));
        let imports = file.imports();
        let imports: Vec<(usize, &str)> = imports
            .iter()
            .map(|i| (i.pos.line, i.name.as_str()))
            .collect();
        assert_eq!(imports, [(1, "util"), (3, "deep")]);
        assert!(file.defines("upgrade", 1) && !file.defines("downgrade", 1));
        assert_eq!(file.declared_steps(), ["one"]);
        // Editing the file afterwards changes nothing of what was read.
        std::fs::write(&path, "fn upgrade(db) { 2 }").unwrap();
        assert_eq!(file.text(), text);
        assert_eq!(
            parses_on_this_thread() - before,
            1,
            "the accessors parse nothing"
        );
    }

    /// Discovery, `ferry lint`, the checksums of what a revision runs and its declared
    /// steps share one compilation of each file.
    #[test]
    fn discovery_lint_and_checksums_compile_each_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("scripts");
        let stdlib = dir.path().join("stdlib");
        let write = |rel: &Path, text: &str| {
            std::fs::create_dir_all(rel.parent().unwrap()).unwrap();
            std::fs::write(rel, text).unwrap();
        };
        write(&stdlib.join("shared.rhai"), "fn twice(x) { x * 2 }");
        write(
            &root.join("lib/util.rhai"),
            "import \"shared\" as s;\nfn size() { s::twice(2) }",
        );
        write(
            &root.join("hooks/h.rhai"),
            "const HOOK = \"h\";\nimport \"util\" as u;\nfn run(db, args) { 1 }",
        );
        let header = |id: &str, parents: &str| {
            format!(
                "const REVISION = \"{id}\";\nconst TREE = \"t\";\nconst PARENTS = [{parents}];\n\
                 const VERSION = \"1\";\nconst DEPENDS_ON = [];\nconst MESSAGE = \"m\";\n\
                 const HOOKS = [\"h\"];\nconst DEFAULTS = #{{ \"t.n\": 1 }};\n"
            )
        };
        write(
            &root.join("t/a.rhai"),
            &format!(
                "{}import \"util\" as u;\nfn upgrade(db) {{ db.step(\"s\", |db| {{ hooks::run(\"h\", u::size()); }}); }}",
                header("t-1", "")
            ),
        );
        write(
            &root.join("t/b.rhai"),
            &format!(
                "{}fn upgrade(db) {{ config::get(\"t.n\"); }}",
                header("t-2", "\"t-1\"")
            ),
        );
        let files = 5;
        let before = parses_on_this_thread();
        let found = crate::discovery::discover(std::slice::from_ref(&root)).expect("discovered");
        let graph = crate::graph::Graph::build(found.revisions.clone()).expect("graph");
        let paths = crate::script::ModulePaths {
            stdlib: Some(stdlib),
            roots: vec![root.clone()],
        };
        let problems = crate::lint::check(&crate::lint::Inputs {
            found: &found,
            graph: &graph,
            paths: &paths,
            config: &Default::default(),
            sources: &Default::default(),
        });
        assert!(problems.is_empty(), "{problems:?}");
        let hooks = crate::script::hooks::HookSet::new(&found.hooks);
        for r in &found.revisions {
            let sources = crate::revision_sources::of_revision(r, &hooks);
            assert_eq!(sources.files.len(), 3, "own file, hook, lib/ module");
            assert_eq!(sources.files[0].checksum, r.checksum);
            let _ = r.script.declared_steps();
        }
        assert_eq!(parses_on_this_thread() - before, files);
    }

    /// `status` and `show` discover without keeping trees: the metadata and the
    /// checksums of what each revision runs come from the one compilation of each
    /// file; a tree asked for afterwards is compiled again from the kept text, once for
    /// all copies of the file.
    #[test]
    fn a_discovery_that_drops_the_trees_still_compiles_each_file_once() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("scripts");
        let write = |rel: &Path, text: &str| {
            std::fs::create_dir_all(rel.parent().unwrap()).unwrap();
            std::fs::write(rel, text).unwrap();
        };
        write(&root.join("lib/util.rhai"), "fn size() { 2 }");
        write(
            &root.join("hooks/h.rhai"),
            "const HOOK = \"h\";\nimport \"util\" as u;\nfn run(db, args) { 1 }",
        );
        let text = "const REVISION = \"t-1\";\nconst TREE = \"t\";\nconst PARENTS = [];\n\
                    const VERSION = \"1\";\nconst DEPENDS_ON = [];\nconst MESSAGE = \"m\";\n\
                    const HOOKS = [\"h\"];\nfn upgrade(db) {\n    import \"util\" as u;\n    \
                    db.step(\"s\", |db| {});\n}\n";
        write(&root.join("t/a.rhai"), text);
        let files = 3;
        let before = parses_on_this_thread();
        let found = crate::discovery::discover_with(
            std::slice::from_ref(&root),
            crate::discovery::Trees::Drop,
        )
        .expect("discovered");
        assert_eq!(parses_on_this_thread() - before, files);
        let rev = &found.revisions[0];
        assert!(!rev.script.has_tree() && !found.hooks[0].script.has_tree());
        assert!(
            rev.has_upgrade,
            "the metadata was read from the tree before it was dropped"
        );
        assert_eq!(rev.script.checksum(), checksum(text.as_bytes()));
        let hooks = crate::script::hooks::HookSet::new(&found.hooks);
        let sources = crate::revision_sources::of_revision(rev, &hooks);
        assert_eq!(sources.files.len(), 3, "own file, hook, lib/ module");
        assert_eq!(
            parses_on_this_thread() - before,
            files,
            "the imports were kept; the module is compiled once per content"
        );
        // A command that needs the tree after all compiles the kept text once.
        let copy = rev.script.clone();
        assert_eq!(copy.declared_steps(), ["s"]);
        assert_eq!(rev.script.declared_steps(), ["s"]);
        assert!(rev.script.has_tree());
        assert_eq!(
            rev.script.ast().source(),
            Some(rev.path.to_string_lossy().as_ref())
        );
        assert_eq!(parses_on_this_thread() - before, files + 1);
    }

    #[test]
    fn checksums_are_lowercase_hex_sha256() {
        assert_eq!(
            checksum(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            checksum(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // The ledger compares against checksums written before the hex was spelled out
        // by hand: the same text as formatting each byte with `{:02x}`, for digests that
        // hold every nibble.
        for n in 0..64 {
            let bytes: Vec<u8> = (0..n).map(|i| (i * 37 % 256) as u8).collect();
            let formatted: String = Sha256::digest(&bytes)
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect();
            assert_eq!(checksum(&bytes), formatted, "{n} bytes");
        }
    }

    #[test]
    fn eval_is_a_syntax_error_for_every_reader() {
        let err = ScriptFile::from_source(Path::new("x.rhai"), "fn upgrade(db) {\n eval(\"1\"); }")
            .unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("x.rhai:2:"), "{text}");
        assert!(text.contains("eval"), "{text}");
    }

    #[test]
    fn the_run_tree_is_optimised_from_the_parsed_one() {
        let file = ScriptFile::from_source(Path::new("x.rhai"), "fn f() { 1 + 2 }").unwrap();
        let mut engine = Engine::new();
        engine.set_optimization_level(OptimizationLevel::Simple);
        let ast = file.ast_for(&engine);
        assert_eq!(ast.source(), Some("x.rhai"));
        assert_eq!(
            engine
                .call_fn::<i64>(&mut rhai::Scope::new(), &ast, "f", ())
                .unwrap(),
            3
        );
    }
}
