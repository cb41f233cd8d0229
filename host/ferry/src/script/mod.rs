//! The script API: a sandboxed Rhai engine with one capability module per concern.
//!
//! * `db` (the argument of `upgrade` / `downgrade`): statements, queries, streaming,
//!   bulk insert, introspection, steps and batches ([`db`], [`introspect`]).
//! * `schema::` portable DDL ([`schema`]), `uuid::` ([`uuids`]), `config::`
//!   ([`config`]), `attributes::` ([`attributes`]), `hooks::` ([`hooks`]),
//!   `log::` ([`log`]).
//!
//! What a script cannot reach is simply not registered: the engine is built from
//! `Engine::new_raw()` with the language packages only (no time package), `eval` is
//! disabled, `import` resolves only inside `stdlib/` and the importing root's `lib/`,
//! and operation, time, depth and size limits stop runaway scripts.

pub mod attributes;
pub mod config;
pub mod db;
mod derive;
pub mod error;
mod generate;
mod guard;
pub mod hooks;
pub mod introspect;
pub mod log;
mod parallel_steps;
mod resolver;
pub mod rewrite_steps;
pub mod schema;
pub mod session;
#[cfg(any(test, feature = "internals"))]
mod signatures;
mod step_beside;
pub mod uuids;
pub mod values;

pub use error::{FailureKind, ScriptError};
pub use session::{Mode, RevisionCtx, Session, SharedSession};

use rhai::packages::{
    BasicArrayPackage, BasicBlobPackage, BasicMapPackage, BasicMathPackage, BitFieldPackage,
    CorePackage, LogicPackage, MoreStringPackage, Package,
};
use rhai::{CallFnOptions, Dynamic, Engine, Scope, AST};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// The statement timeout when none is configured: long enough for an index build on a
/// large table, short enough that an endless statement (a recursive CTE without an end)
/// stops within the hour instead of holding the lock for ever.
pub const DEFAULT_STATEMENT_TIMEOUT: Duration = Duration::from_secs(600);

/// Sandbox limits (configurable under `limits.*`).
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Rhai operations per call into a script.
    pub max_operations: u64,
    /// Wall-clock time per call into a script.
    pub max_duration: Duration,
    /// Deepest nesting of function calls.
    pub max_call_depth: usize,
    /// Longest string, in bytes.
    pub max_string_size: usize,
    /// Largest array.
    pub max_array_size: usize,
    /// Largest object map.
    pub max_map_size: usize,
    /// Longest any single SQL statement may run.
    pub statement_timeout: Option<Duration>,
    /// Bytes of print/debug/log output per run; beyond it output is dropped.
    pub max_output_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_operations: 500_000_000,
            max_duration: Duration::from_secs(6 * 3600),
            max_call_depth: 64,
            max_string_size: 16 * 1024 * 1024,
            max_array_size: 2_000_000,
            max_map_size: 100_000,
            statement_timeout: Some(DEFAULT_STATEMENT_TIMEOUT),
            max_output_bytes: 64 * 1024 * 1024,
        }
    }
}

/// Where scripts may import modules from.
#[derive(Debug, Clone, Default)]
pub struct ModulePaths {
    pub stdlib: Option<PathBuf>,
    pub roots: Vec<PathBuf>,
}

/// The editor definitions file (`docs/ferry.d.rhai`): every function and type a script
/// can reach, as Rhai's `metadata` feature describes them, with Ferry's own functions
/// given names, real types and a line of documentation (the `signatures` module); `Err` lists
/// the functions that have none and the entries that match nothing.
#[cfg(any(test, feature = "internals"))]
pub fn definitions() -> Result<String, Vec<String>> {
    let host = detached_host(ModulePaths::default());
    let text = signatures::apply(&host.definitions())?;
    Ok(format!(
        "// Ferry's script API for editors. Generated; do not edit. Regenerate with\n\
         // FERRY_BLESS=1 cargo test --test script_definitions\n{text}"
    ))
}

/// A script host over an in-memory SQLite database, for reading scripts without a
/// repository: the editor definitions and `ferry lint` (which compiles every script
/// with the very engine that runs them, so that both agree on syntax and on which
/// functions exist).
pub(crate) fn detached_host(paths: ModulePaths) -> ScriptHost {
    let conn = crate::backend::sqlite::SqliteConnection::open_path(Path::new(":memory:"))
        .expect("an in-memory SQLite database");
    let session = Session::new(
        Box::new(conn),
        Rc::new(crate::observer::Silent),
        crate::ledger::Actor::current(),
    );
    ScriptHost::new(
        Rc::new(std::cell::RefCell::new(session)),
        Limits::default(),
        paths,
        hooks::HookSet::default(),
    )
}

/// Points an error that carries no position at the function it came out of.
///
/// Rhai drops the position of its own "system" errors (the sandbox limits, a parse
/// error raised at run time) when they leave a function called from Rust, so all that
/// is known is the function: name the line where its body starts and say so.
fn locate_in_function(err: &mut ScriptError, ast: &AST, name: &str) {
    if err.file.as_ref() != Path::new(ast.source().unwrap_or_default()) {
        return; // it came from another file (a module or a hook)
    }
    let Some(start) = ast
        .iter_fn_def()
        .find(|f| f.name == name && f.params.len() == 1)
        .map(|f| f.body.start_position())
    else {
        return;
    };
    let Some(mut line) = start.line() else {
        return;
    };
    err.line = line;
    err.column = start.position().unwrap_or(1);
    // A runaway loop is the usual cause of the operation and time limits: the file's
    // loops are the places to look, and when there is only one it is the place.
    let loops = if err.kind == FailureKind::Limit && is_runaway(&err.message) {
        loop_positions(ast)
    } else {
        Vec::new()
    };
    err.message = match loops.as_slice() {
        [only] => {
            line = only.line().unwrap_or(line);
            err.line = line;
            err.column = only.position().unwrap_or(1);
            format!(
                "{} (in the loop here, the only loop of this file: Rhai does not report the exact line of this error)",
                err.message
            )
        }
        [] => format!(
            "{} (somewhere in fn {name}, whose body starts here: Rhai does not report the exact line of this error)",
            err.message
        ),
        several => format!(
            "{} (somewhere in fn {name}, whose body starts here; the file's loops start at lines {}: Rhai does not report the exact line of this error)",
            err.message,
            several
                .iter()
                .filter_map(|p| p.line())
                .map(|l| l.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    err.source_line = std::fs::read_to_string(&err.file)
        .ok()
        .and_then(|t| t.lines().nth(line - 1).map(Into::into));
}

/// Whether a limit error is one a runaway loop runs into (operations, wall clock).
fn is_runaway(message: &str) -> bool {
    message.contains("limits.max_operations") || message.contains("limits.max_seconds")
}

/// Where the file's loops (`loop`, `while`, `do`, `for`) start, in file order.
fn loop_positions(ast: &AST) -> Vec<rhai::Position> {
    let mut out = Vec::new();
    ast.walk(&mut |path: &[rhai::ASTNode]| {
        if let Some(rhai::ASTNode::Stmt(
            rhai::Stmt::While(_, pos) | rhai::Stmt::Do(_, _, pos) | rhai::Stmt::For(_, pos),
        )) = path.last()
        {
            out.push(*pos);
        }
        true
    });
    out.sort_by_key(|p| (p.line(), p.position()));
    out.dedup();
    out
}

/// A sandboxed engine bound to one session.
pub struct ScriptHost {
    engine: Engine,
    session: SharedSession,
    deadline: Rc<Cell<Option<Instant>>>,
    limits: Limits,
}

impl ScriptHost {
    pub fn new(
        session: SharedSession,
        limits: Limits,
        paths: ModulePaths,
        hooks: hooks::HookSet,
    ) -> ScriptHost {
        let mut engine = Engine::new_raw();
        engine.register_global_module(CorePackage::new().as_shared_module());
        engine.register_global_module(LogicPackage::new().as_shared_module());
        engine.register_global_module(BitFieldPackage::new().as_shared_module());
        engine.register_global_module(BasicMathPackage::new().as_shared_module());
        engine.register_global_module(BasicArrayPackage::new().as_shared_module());
        engine.register_global_module(BasicBlobPackage::new().as_shared_module());
        engine.register_global_module(BasicMapPackage::new().as_shared_module());
        engine.register_global_module(MoreStringPackage::new().as_shared_module());
        engine.disable_symbol("eval");
        // The core package's `sleep` would block the migration without using any
        // operations (so no limit could stop it): scripts have no clock.
        engine.register_fn(
            "sleep",
            |_: rhai::INT| -> Result<(), Box<rhai::EvalAltResult>> {
                Err(error::script_failure(
                    "sleep is not available in Ferry scripts",
                ))
            },
        );
        engine.register_fn(
            "sleep",
            |_: rhai::FLOAT| -> Result<(), Box<rhai::EvalAltResult>> {
                Err(error::script_failure(
                    "sleep is not available in Ferry scripts",
                ))
            },
        );
        engine.set_max_operations(limits.max_operations);
        engine.set_max_call_levels(limits.max_call_depth);
        engine.set_max_expr_depths(256, 256);
        engine.set_max_string_size(limits.max_string_size);
        engine.set_max_array_size(limits.max_array_size);
        engine.set_max_map_size(limits.max_map_size);
        engine.set_max_modules(256);
        session.borrow().output_left.set(limits.max_output_bytes);
        let deadline: Rc<Cell<Option<Instant>>> = Rc::new(Cell::new(None));
        let d = deadline.clone();
        let max = limits.max_duration;
        engine.on_progress(move |_ops| match d.get() {
            Some(t) if Instant::now() > t => Some(Dynamic::from(format!(
                "the script ran longer than its time limit of {}s (limits.max_seconds)",
                max.as_secs()
            ))),
            _ => None,
        });
        let s = session.clone();
        engine.on_print(move |text| log::emit(&s, crate::observer::Level::Info, text));
        let s = session.clone();
        engine.on_debug(move |text, _, _| log::emit(&s, crate::observer::Level::Debug, text));
        engine.set_module_resolver(resolver::SandboxResolver::new(paths));
        // Rhai has no array join; SQL building needs one constantly.
        engine.register_fn(
            "join",
            |a: rhai::Array, sep: &str| -> Result<String, Box<rhai::EvalAltResult>> {
                if a.iter().any(|d| {
                    guard::nesting_depth(d, guard::MAX_FORMAT_DEPTH) >= guard::MAX_FORMAT_DEPTH
                }) {
                    return Err(guard::too_deep());
                }
                Ok(a.iter()
                    .map(|d| d.to_string())
                    .collect::<Vec<_>>()
                    .join(sep))
            },
        );
        guard::register(&mut engine);
        error::register(&mut engine);
        db::register(&mut engine);
        uuids::register(&mut engine);
        engine.register_static_module("schema", schema::module(session.clone()).into());
        engine.register_static_module("config", config::module(session.clone()).into());
        engine.register_static_module("attributes", attributes::module(session.clone()).into());
        engine.register_static_module("log", log::module(session.clone()).into());
        engine.register_static_module("hooks", hooks::module(session.clone(), hooks).into());
        ScriptHost {
            engine,
            session,
            deadline,
            limits,
        }
    }

    pub fn session(&self) -> &SharedSession {
        &self.session
    }

    #[cfg(any(test, feature = "internals"))]
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The engine, for reading scripts without running them (`ferry lint`).
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Compiles a script file; its source is the path, so errors inside name it.
    pub fn compile(&self, path: &Path, revision: &str) -> Result<AST, ScriptError> {
        let text = std::fs::read_to_string(path).map_err(|e| ScriptError {
            kind: FailureKind::Syntax,
            message: format!("cannot read the script: {e}"),
            revision: revision.into(),
            step: None,
            file: path.into(),
            line: 0,
            column: 0,
            source_line: None,
        })?;
        let mut ast = self.engine.compile(&text).map_err(|e| {
            let pos = e.position();
            let line = pos.line().unwrap_or(0);
            ScriptError {
                kind: FailureKind::Syntax,
                message: e.err_type().to_string(),
                revision: revision.into(),
                step: None,
                file: path.into(),
                line,
                column: pos.position().unwrap_or(0),
                source_line: text.lines().nth(line.saturating_sub(1)).map(Into::into),
            }
        })?;
        ast.set_source(path.to_string_lossy().to_string());
        Ok(ast)
    }

    /// Calls `name(db, extra...)` in a compiled script under the sandbox limits.
    pub fn call(
        &self,
        ast: &AST,
        name: &str,
        revision: &str,
        file: &Path,
    ) -> Result<Dynamic, ScriptError> {
        self.deadline
            .set(Some(Instant::now() + self.limits.max_duration));
        {
            let mut s = self.session.borrow_mut();
            s.host_error = None;
        }
        let mut scope = Scope::new();
        let db = db::Db(self.session.clone());
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            self.engine.call_fn_with_options::<Dynamic>(
                CallFnOptions::new().eval_ast(true).rewind_scope(true),
                &mut scope,
                ast,
                name,
                (db,),
            )
        }));
        self.deadline.set(None);
        // A panic inside the call (Ferry's own fault, whatever the script did) fails
        // the revision like any other error, naming where Ferry failed.
        let result = match result {
            Ok(r) => r,
            Err(payload) => {
                let mut err = ScriptError {
                    kind: FailureKind::Host,
                    message: format!(
                        "Ferry itself failed while running fn {name}: {}",
                        crate::crash::describe(payload.as_ref())
                    ),
                    revision: revision.into(),
                    step: self
                        .session
                        .try_borrow()
                        .ok()
                        .and_then(|s| s.steps.current().map(Box::from)),
                    file: file.into(),
                    line: 0,
                    column: 0,
                    source_line: None,
                };
                locate_in_function(&mut err, ast, name);
                return Err(err);
            }
        };
        // A database error the script caught still fails the revision.
        let result = match result {
            Ok(_) if self.session.borrow().poisoned => {
                Err(Box::new(rhai::EvalAltResult::ErrorRuntime(
                    "the script caught a database error and went on".into(),
                    rhai::Position::NONE,
                )))
            }
            other => other,
        };
        let exited = guard::take_exit();
        result.map_err(|e| {
            let mut s = self.session.borrow_mut();
            let host = s.host_error.take();
            let step = s.steps.failed_or_current().map(str::to_string);
            let mut err = error::classify(&e, host, revision, step, file);
            if let Some((source, pos)) = exited {
                // exit() is the script's mistake, at the line that called it.
                err.kind = FailureKind::Script;
                err.message = guard::EXIT_MESSAGE.into();
                if let Some(src) = source.filter(|s| !s.is_empty()) {
                    err.file = Path::new(&src).into();
                }
                err.line = pos.line().unwrap_or(0);
                err.column = pos.position().unwrap_or(0);
                err.source_line =
                    error::source_line(&err.file, err.line).map(String::into_boxed_str);
            }
            if err.line == 0 {
                locate_in_function(&mut err, ast, name);
            }
            err
        })
    }

    /// Rhai definitions of everything a script can call, for editors (`docs/ferry.d.rhai`).
    #[cfg(any(test, feature = "internals"))]
    pub fn definitions(&self) -> String {
        self.engine.definitions().single_file()
    }

    /// Whether a compiled script defines `name` with `arity` parameters.
    pub fn defines(ast: &AST, name: &str, arity: usize) -> bool {
        ast.iter_functions()
            .any(|f| f.name == name && f.params.len() == arity)
    }
}
