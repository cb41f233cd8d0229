//! A script's metadata, read from its top-level constants without running any of its code.
//!
//! Revision files declare `REVISION`, `TREE`, `PARENTS`, `VERSION`, `DEPENDS_ON`,
//! `MESSAGE` (required) and optionally `HOOKS` (hooks the revision calls),
//! `ONLINE_SAFE` (bool, default false), `DIGEST` (schema digest expected after
//! upgrading: one string, or a map from backend to string, see [`DeclaredDigest`]),
//! `ALEMBIC` (the Alembic revision ids of daf_butler_migrate that this
//! revision's state corresponds to; see the `alembic` module), `BEFORE` (revisions of
//! other trees to run before; see the `graph` module), `OPEN_TO_PLUGINS` (bool, a tree's
//! root revision: other roots may add revisions to the tree), `STATEMENT_TIMEOUT_SECONDS`
//! (the longest one SQL statement of the revision may run), `DEFAULTS` (an object map:
//! the revision's configuration defaults, see [`Defaults`]). Hook files (under a
//! `hooks/` folder) declare `HOOK` and optionally
//! `KEY` (for hooks provided once per key, e.g. per instrument).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use rhai::{ASTFlags, Dynamic, Stmt};

pub(crate) use crate::analysis::parse_engine;
pub use crate::analysis::{checksum, ScriptFile, MAX_SCRIPT_BYTES};

/// Where in a file a field (or an error) is: 1-based line and column.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

/// The metadata of one revision file.
#[derive(Debug, Clone, PartialEq)]
pub struct RevisionMeta {
    pub id: String,
    pub tree: String,
    pub parents: Vec<String>,
    pub version: String,
    pub depends_on: Vec<String>,
    pub message: String,
    pub hooks: Vec<String>,
    pub online_safe: bool,
    pub expected_digest: Option<DeclaredDigest>,
    /// `ALEMBIC`: daf_butler_migrate's revision ids for this revision's state (the first
    /// is the one Ferry writes into `alembic_version`); empty when none corresponds.
    pub alembic: Vec<String>,
    /// Whether the file defines `fn downgrade(db)`.
    pub has_downgrade: bool,
    /// Whether the file defines `fn upgrade(db)`.
    pub has_upgrade: bool,
    /// The file and the root it was found under.
    pub path: PathBuf,
    pub root: PathBuf,
    /// sha256 of the file bytes, lowercase hex (the checksum of [`Self::script`]).
    pub checksum: String,
    /// The file as read once by discovery: the tree the runner runs and `ferry lint`
    /// walks, compiled from the bytes whose checksum this is.
    pub script: ScriptFile,
    /// `DEFAULTS`: the revision's configuration defaults (below `ferry.toml` and `--set`).
    pub defaults: Defaults,
    /// Position of the `REVISION` constant (for messages about the revision as a whole),
    /// and of `PARENTS` / `DEPENDS_ON` (for unknown references).
    pub revision_pos: Position,
    pub parents_pos: Position,
    pub depends_on_pos: Position,
    /// `BEFORE`: revisions of other trees this revision must run before (each gets an
    /// edge to this revision in the graph, as if it named this one in `DEPENDS_ON`).
    pub before: Vec<String>,
    pub before_pos: Position,
    /// `OPEN_TO_PLUGINS` (a tree's root revision): revisions from other roots may join
    /// the tree. Without it a tree belongs to the root holding its root revision.
    pub open_to_plugins: bool,
    /// `STATEMENT_TIMEOUT_SECONDS`: the longest one SQL statement of this revision may
    /// run, over `limits.statement_timeout_seconds`.
    pub statement_timeout_seconds: Option<u64>,
    pub statement_timeout_pos: Position,
}

/// A revision's `DEFAULTS` (`const DEFAULTS = #{ "tree.key": value, ... };`): the
/// configuration values `config::get` falls back to while the revision runs. Read and
/// type-checked at discovery, like every metadata constant.
#[derive(Debug, Clone, Default)]
pub struct Defaults(pub BTreeMap<String, Dynamic>);

impl PartialEq for Defaults {
    /// Same keys holding values of the same type that print the same (`Dynamic` has no
    /// equality of its own; the values are literals).
    fn eq(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self.0.iter().zip(&other.0).all(|((ka, va), (kb, vb))| {
                ka == kb && va.type_name() == vb.type_name() && va.to_string() == vb.to_string()
            })
    }
}

/// A revision's `DIGEST`: the schema digest expected after it.
///
/// The digest of one logical schema differs between backends (types are normalised
/// within a backend only, see [`crate::digest`]), so a revision that runs on both gives
/// one per backend: `const DIGEST = #{ sqlite: "…", postgres: "…" };`. A backend the map
/// does not name is not checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeclaredDigest {
    /// `const DIGEST = "…";`: compared on whichever backend runs the revision.
    Any(String),
    /// `const DIGEST = #{ sqlite: "…", postgres: "…" };`, keyed by dialect name.
    PerBackend(BTreeMap<String, String>),
}

/// The backends a per-backend `DIGEST` may name (the names `db.dialect` gives scripts).
pub const DIGEST_BACKENDS: &[&str] = &["sqlite", "postgres"];

impl DeclaredDigest {
    /// The digest declared for the backend `dialect` (`sqlite`, `postgres`), if any.
    pub fn for_dialect(&self, dialect: &str) -> Option<&str> {
        match self {
            DeclaredDigest::Any(d) => Some(d),
            DeclaredDigest::PerBackend(map) => map.get(dialect).map(String::as_str),
        }
    }
}

impl std::fmt::Display for DeclaredDigest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeclaredDigest::Any(d) => f.write_str(d),
            DeclaredDigest::PerBackend(map) => {
                let parts: Vec<String> = map.iter().map(|(k, v)| format!("{k}: {v}")).collect();
                f.write_str(&parts.join(", "))
            }
        }
    }
}

/// The metadata of one hook implementation file.
#[derive(Debug, Clone, PartialEq)]
pub struct HookMeta {
    pub name: String,
    pub key: Option<String>,
    pub path: PathBuf,
    pub root: PathBuf,
    pub pos: Position,
    /// The file as read once by discovery (what `hooks::run` runs).
    pub script: ScriptFile,
}

/// A module file under a `lib/` folder, importable by scripts of the same root (or a
/// probe under `probes/`).
#[derive(Debug, Clone, PartialEq)]
pub struct ModuleFile {
    pub path: PathBuf,
    pub root: PathBuf,
    /// The file as read once by discovery, or why it could not be read or compiled (a
    /// module is not run until imported, so its faults are `ferry lint`'s to report).
    pub script: Result<ScriptFile, MetadataError>,
}

/// A fault in one script's metadata. Every message starts with `file:line:`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum MetadataError {
    /// The file cannot be read.
    #[error("{}: cannot read the file: {message}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// The file is not UTF-8.
    #[error("{}:{line}:{column}: the file is not UTF-8 (byte 0x{byte:02X} cannot start or continue a character); save it as UTF-8", path.display())]
    NotUtf8 {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the first bad byte.
        line: usize,
        /// Its 1-based column.
        column: usize,
        /// The byte.
        byte: u8,
    },
    /// The file is not valid Rhai.
    #[error("{}:{line}:{column}: syntax error: {message}", path.display())]
    Syntax {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// The 1-based column.
        column: usize,
        /// Rhai's message.
        message: String,
    },
    /// A required constant (`REVISION`, `TREE`, `HOOK`, ...) is not declared.
    #[error("{}:1: {field} is not declared (expected `const {field} = ...;` at the top level)", path.display())]
    Missing {
        /// The file.
        path: PathBuf,
        /// The constant.
        field: &'static str,
    },
    /// A constant has the wrong type (a number where a string belongs, ...).
    #[error("{}:{line}: {field} must be {expected}, found {found}", path.display())]
    WrongType {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the constant.
        line: usize,
        /// The constant.
        field: &'static str,
        /// The type it must have.
        expected: &'static str,
        /// What it holds.
        found: String,
    },
    /// A constant is computed, not written out (metadata is read without running the
    /// script).
    #[error("{}:{line}: {field} is not a literal: metadata constants are read without running the script, so they must be written out (no function calls, operators or variables)", path.display())]
    NotLiteral {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the constant.
        line: usize,
        /// The constant.
        field: &'static str,
    },
    /// A constant that may not be empty is.
    #[error("{}:{line}: {field} is empty", path.display())]
    Empty {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the constant.
        line: usize,
        /// The constant.
        field: &'static str,
    },
    /// A constant is declared twice.
    #[error("{}:{line}: {field} is declared twice (first at line {first_line})", path.display())]
    Duplicate {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the second declaration.
        line: usize,
        /// The 1-based line of the first.
        first_line: usize,
        /// The constant.
        field: &'static str,
    },
    /// A function the file must define (a probe's `fn run`) is missing.
    #[error("{}:1: the file does not define `fn {function}`", path.display())]
    MissingFunction {
        /// The file.
        path: PathBuf,
        /// The function's name.
        function: &'static str,
    },
    /// A value the ledger or the terminal cannot hold as it is (a control character,
    /// too long, a repeated entry).
    #[error("{}:{line}: {field} {why}", path.display())]
    Invalid {
        /// The file.
        path: PathBuf,
        /// The 1-based line of the constant.
        line: usize,
        /// The constant.
        field: &'static str,
        /// What is wrong with the value.
        why: String,
    },
    /// `lib/` modules that import each other in a circle (importing would never end).
    #[error("{}:{line}: import cycle: {cycle}", path.display())]
    ImportCycle {
        /// The module the cycle was found from.
        path: PathBuf,
        /// The 1-based line of its `import`.
        line: usize,
        /// The files of the cycle, joined by ` -> `, `path` first and last.
        cycle: String,
    },
    /// The file is larger, or defines more functions, than a script file may.
    #[error("{}:1: {why}", path.display())]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Which limit it passes.
        why: String,
    },
}

impl MetadataError {
    /// The file at fault.
    pub fn path(&self) -> &Path {
        match self {
            Self::Io { path, .. }
            | Self::NotUtf8 { path, .. }
            | Self::Syntax { path, .. }
            | Self::Missing { path, .. }
            | Self::WrongType { path, .. }
            | Self::NotLiteral { path, .. }
            | Self::Empty { path, .. }
            | Self::Duplicate { path, .. }
            | Self::MissingFunction { path, .. }
            | Self::Invalid { path, .. }
            | Self::ImportCycle { path, .. }
            | Self::TooLarge { path, .. } => path,
        }
    }
}

const REVISION_FIELDS: &[&str] = &[
    "REVISION",
    "TREE",
    "PARENTS",
    "VERSION",
    "DEPENDS_ON",
    "MESSAGE",
    "HOOKS",
    "ONLINE_SAFE",
    "DIGEST",
    "ALEMBIC",
    "BEFORE",
    "OPEN_TO_PLUGINS",
    "STATEMENT_TIMEOUT_SECONDS",
    "DEFAULTS",
];
const HOOK_FIELDS: &[&str] = &["HOOK", "KEY"];

/// The most functions one script file may define.
pub const MAX_FUNCTIONS: usize = 1000;

/// The longest REVISION, TREE, VERSION, PARENTS or DEPENDS_ON entry, and hook name
/// (the ledger's columns hold 255 characters; a downgrade's step owner adds a suffix).
pub const MAX_ID_CHARS: usize = 200;

/// The longest `ALEMBIC` entry (`alembic_version.version_num` is a VARCHAR(32)).
pub const MAX_ALEMBIC_CHARS: usize = 32;

/// The longest MESSAGE.
pub const MAX_MESSAGE_CHARS: usize = 1000;

/// Why `value` cannot serve as an identifier or a one-line text of at most `max`
/// characters, if it cannot.
pub fn unprintable(value: &str, max: usize) -> Option<String> {
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Some(format!(
            "holds a control character ({}); write it on one line, without control characters",
            c.escape_default()
        ));
    }
    let n = value.chars().count();
    if n > max {
        return Some(format!(
            "is {n} characters long, more than the {max} allowed"
        ));
    }
    None
}

/// The compiled file: its top-level metadata constants and its functions.
struct Parsed {
    /// Field name -> (literal value or `None` when not a literal, position).
    consts: HashMap<&'static str, (Option<Dynamic>, Position)>,
    /// (name, number of parameters) of every script-defined function.
    functions: Vec<(String, usize)>,
}

/// Collects the top-level constants named in `fields` from the file's tree (nothing is
/// run). Constants with other names are the script's own business and are ignored.
fn parse(file: &ScriptFile, fields: &[&'static str]) -> Result<Parsed, Vec<MetadataError>> {
    let path = file.path();
    let ast = file.ast();
    let mut consts = HashMap::new();
    let mut errors = Vec::new();
    for stmt in ast.statements() {
        let Stmt::Var(var, flags, stmt_pos) = stmt else {
            continue;
        };
        if !flags.contains(ASTFlags::CONSTANT) {
            continue;
        }
        let (ident, expr, _) = var.as_ref();
        let Some(field) = fields.iter().copied().find(|f| *f == ident.name.as_str()) else {
            continue;
        };
        let pos = to_position(*stmt_pos);
        if let Some((_, first)) = consts.get(field) {
            let first: &Position = first;
            errors.push(MetadataError::Duplicate {
                path: path.to_path_buf(),
                line: pos.line,
                first_line: first.line,
                field,
            });
            continue;
        }
        consts.insert(field, (expr.get_literal_value(None), pos));
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let functions: Vec<(String, usize)> = ast
        .iter_functions()
        .map(|f| (f.name.to_string(), f.params.len()))
        .collect();
    if functions.len() > MAX_FUNCTIONS {
        return Err(vec![MetadataError::TooLarge {
            path: path.to_path_buf(),
            why: format!(
                "the file defines {} functions, more than the {MAX_FUNCTIONS} a script file may",
                functions.len()
            ),
        }]);
    }
    Ok(Parsed { consts, functions })
}

use crate::analysis::to_position;

/// A readable name for a value's type, for "found ..." in messages.
fn type_name(value: &Dynamic) -> String {
    if value.is_string() {
        "string".into()
    } else if value.is_array() {
        "array".into()
    } else if value.is_int() {
        "integer".into()
    } else if value.is_bool() {
        "bool".into()
    } else if value.is_unit() {
        "()".into()
    } else if value.is_float() {
        "float".into()
    } else if value.is_map() {
        "object map".into()
    } else {
        value.type_name().to_string()
    }
}

/// Reads fields one by one, collecting every fault rather than stopping at the first.
struct Reader<'a> {
    path: &'a Path,
    parsed: Parsed,
    errors: Vec<MetadataError>,
}

impl Reader<'_> {
    fn pos(&self, field: &str) -> Position {
        self.parsed
            .consts
            .get(field)
            .map(|(_, p)| *p)
            .unwrap_or(Position { line: 1, column: 1 })
    }

    /// The literal value of `field`, `None` (after recording an error) when it is not a
    /// literal, and `Some(None)` when it is not declared.
    fn literal(&mut self, field: &'static str) -> Option<Option<(Dynamic, Position)>> {
        match self.parsed.consts.get(field) {
            None => Some(None),
            Some((Some(v), pos)) => Some(Some((v.clone(), *pos))),
            Some((None, pos)) => {
                self.errors.push(MetadataError::NotLiteral {
                    path: self.path.to_path_buf(),
                    line: pos.line,
                    field,
                });
                None
            }
        }
    }

    fn missing(&mut self, field: &'static str) {
        self.errors.push(MetadataError::Missing {
            path: self.path.to_path_buf(),
            field,
        });
    }

    fn wrong_type(
        &mut self,
        field: &'static str,
        line: usize,
        expected: &'static str,
        found: String,
    ) {
        self.errors.push(MetadataError::WrongType {
            path: self.path.to_path_buf(),
            line,
            field,
            expected,
            found,
        });
    }

    /// An optional string field.
    fn opt_string(&mut self, field: &'static str, non_empty: bool) -> Option<String> {
        let (value, pos) = self.literal(field)??;
        match value.clone().into_immutable_string() {
            Ok(s) if non_empty && s.trim().is_empty() => {
                self.errors.push(MetadataError::Empty {
                    path: self.path.to_path_buf(),
                    line: pos.line,
                    field,
                });
                None
            }
            Ok(s) => Some(s.to_string()),
            Err(_) => {
                self.wrong_type(field, pos.line, "a string", type_name(&value));
                None
            }
        }
    }

    /// A required string field.
    fn string(&mut self, field: &'static str, non_empty: bool) -> Option<String> {
        if !self.parsed.consts.contains_key(field) {
            self.missing(field);
            return None;
        }
        self.opt_string(field, non_empty)
    }

    /// An array-of-strings field; `required` decides whether absence is an error
    /// (otherwise it is an empty list).
    fn strings(&mut self, field: &'static str, required: bool) -> Option<Vec<String>> {
        let Some((value, pos)) = self.literal(field)? else {
            if required {
                self.missing(field);
                return None;
            }
            return Some(Vec::new());
        };
        const EXPECTED: &str = "an array of strings";
        if !value.is_array() {
            self.wrong_type(field, pos.line, EXPECTED, type_name(&value));
            return None;
        }
        let items = value.into_array().unwrap_or_default();
        let mut out = Vec::with_capacity(items.len());
        for item in items {
            match item.clone().into_immutable_string() {
                Ok(s) if s.trim().is_empty() => {
                    self.wrong_type(field, pos.line, EXPECTED, "an empty string in it".into());
                    return None;
                }
                Ok(s) => out.push(s.to_string()),
                Err(_) => {
                    let found = format!("an array holding {}", type_name(&item));
                    self.wrong_type(field, pos.line, EXPECTED, found);
                    return None;
                }
            }
        }
        Some(out)
    }

    /// `DIGEST`: a string, or a map from backend name to string.
    fn digest(&mut self) -> Option<DeclaredDigest> {
        const FIELD: &str = "DIGEST";
        let (value, pos) = self.literal(FIELD)??;
        if !value.is_map() {
            return self.opt_string(FIELD, true).map(DeclaredDigest::Any);
        }
        const EXPECTED: &str = "a string, or a map from backend (sqlite, postgres) to string";
        let mut out = BTreeMap::new();
        for (backend, digest) in value.cast::<rhai::Map>() {
            if !DIGEST_BACKENDS.contains(&backend.as_str()) {
                self.errors.push(MetadataError::Invalid {
                    path: self.path.to_path_buf(),
                    line: pos.line,
                    field: FIELD,
                    why: format!(
                        "names the backend {:?}, which is none of {}",
                        truncated(&backend),
                        DIGEST_BACKENDS.join(", ")
                    ),
                });
                return None;
            }
            match digest.clone().into_immutable_string() {
                Ok(s) if !s.trim().is_empty() => {
                    out.insert(backend.to_string(), s.to_string());
                }
                _ => {
                    let found = format!("{backend}: {}", type_name(&digest));
                    self.wrong_type(FIELD, pos.line, EXPECTED, found);
                    return None;
                }
            }
        }
        if out.is_empty() {
            self.errors.push(MetadataError::Empty {
                path: self.path.to_path_buf(),
                line: pos.line,
                field: FIELD,
            });
            return None;
        }
        Some(DeclaredDigest::PerBackend(out))
    }

    /// `DEFAULTS`: an object map (any literal values); absent is empty.
    fn defaults(&mut self) -> Option<Defaults> {
        const FIELD: &str = "DEFAULTS";
        let Some((value, pos)) = self.literal(FIELD)? else {
            return Some(Defaults::default());
        };
        let found = type_name(&value);
        match value.try_cast::<rhai::Map>() {
            Some(map) => Some(Defaults(
                map.into_iter().map(|(k, v)| (k.to_string(), v)).collect(),
            )),
            None => {
                self.wrong_type(FIELD, pos.line, "an object map", found);
                None
            }
        }
    }

    fn opt_bool(&mut self, field: &'static str) -> Option<bool> {
        let (value, pos) = self.literal(field)??;
        match value.as_bool() {
            Ok(b) => Some(b),
            Err(_) => {
                self.wrong_type(field, pos.line, "a bool", type_name(&value));
                None
            }
        }
    }

    /// An optional whole number of seconds, at least 1 and at most
    /// [`crate::config::MAX_SECONDS`].
    fn opt_seconds(&mut self, field: &'static str) -> Option<u64> {
        let (value, pos) = self.literal(field)??;
        let max = crate::config::MAX_SECONDS;
        match value.as_int() {
            Ok(n) if n >= 1 && (n as u64) <= max => Some(n as u64),
            Ok(n) => {
                self.errors.push(MetadataError::Invalid {
                    path: self.path.to_path_buf(),
                    line: pos.line,
                    field,
                    why: format!("is {n}; it must be between 1 and {max} seconds"),
                });
                None
            }
            Err(_) => {
                self.wrong_type(
                    field,
                    pos.line,
                    "a whole number of seconds",
                    type_name(&value),
                );
                None
            }
        }
    }

    /// Records an error for each value that is not printable or too long.
    fn check_printable(&mut self, field: &'static str, values: &[&String], max: usize) {
        for v in values {
            if let Some(why) = unprintable(v, max) {
                let line = self.pos(field).line;
                self.errors.push(MetadataError::Invalid {
                    path: self.path.to_path_buf(),
                    line,
                    field,
                    why: format!("{:?} {why}", truncated(v)),
                });
            }
        }
    }

    /// Records an error when a list names the same revision twice.
    fn check_unique(&mut self, field: &'static str, values: &[String]) {
        for (i, v) in values.iter().enumerate() {
            if values[..i].contains(v) {
                let line = self.pos(field).line;
                self.errors.push(MetadataError::Invalid {
                    path: self.path.to_path_buf(),
                    line,
                    field,
                    why: format!("names {:?} twice", truncated(v)),
                });
                return;
            }
        }
    }

    fn has_function(&self, name: &str, arity: Option<usize>) -> bool {
        self.parsed
            .functions
            .iter()
            .any(|(n, a)| n == name && arity.is_none_or(|arity| *a == arity))
    }
}

/// The first 60 characters of `v` (for messages about values that may be huge).
fn truncated(v: &str) -> String {
    if v.chars().count() > 60 {
        format!("{}...", v.chars().take(60).collect::<String>())
    } else {
        v.to_string()
    }
}

/// Reads the metadata of the revision file at `path`, found under `root`.
/// Returns every fault found in the file, not only the first.
pub fn read_revision(path: &Path, root: &Path) -> Result<RevisionMeta, Vec<MetadataError>> {
    let file = ScriptFile::read(path).map_err(|e| vec![e])?;
    revision_of_file(root, file)
}

/// Reads the metadata of a revision from its source text (`path` names it in messages).
#[cfg(any(test, feature = "internals"))]
pub fn revision_from_source(
    path: &Path,
    root: &Path,
    source: &str,
) -> Result<RevisionMeta, Vec<MetadataError>> {
    let file = ScriptFile::from_source(path, source).map_err(|e| vec![e])?;
    revision_of_file(root, file)
}

/// The metadata of a revision read from its file (found under `root`).
pub fn revision_of_file(root: &Path, file: ScriptFile) -> Result<RevisionMeta, Vec<MetadataError>> {
    let path = file.path().to_path_buf();
    let path = path.as_path();
    let parsed = parse(&file, REVISION_FIELDS)?;
    let mut r = Reader {
        path,
        parsed,
        errors: Vec::new(),
    };
    let id = r.string("REVISION", true);
    let tree = r.string("TREE", true);
    let parents = r.strings("PARENTS", true);
    let version = r.string("VERSION", true);
    let depends_on = r.strings("DEPENDS_ON", true);
    let message = r.string("MESSAGE", false);
    let hooks = r.strings("HOOKS", false);
    let online_safe = r.opt_bool("ONLINE_SAFE");
    let expected_digest = r.digest();
    let alembic = r.strings("ALEMBIC", false);
    let before = r.strings("BEFORE", false);
    let open_to_plugins = r.opt_bool("OPEN_TO_PLUGINS");
    let statement_timeout_seconds = r.opt_seconds("STATEMENT_TIMEOUT_SECONDS");
    let defaults = r.defaults();
    let has_upgrade = r.has_function("upgrade", Some(1));
    let has_downgrade = r.has_function("downgrade", Some(1));
    let (revision_pos, parents_pos, depends_on_pos) =
        (r.pos("REVISION"), r.pos("PARENTS"), r.pos("DEPENDS_ON"));
    let (before_pos, statement_timeout_pos) = (r.pos("BEFORE"), r.pos("STATEMENT_TIMEOUT_SECONDS"));
    for (field, values, max) in [
        ("REVISION", id.iter().collect::<Vec<_>>(), MAX_ID_CHARS),
        ("TREE", tree.iter().collect(), MAX_ID_CHARS),
        ("VERSION", version.iter().collect(), MAX_ID_CHARS),
        ("PARENTS", parents.iter().flatten().collect(), MAX_ID_CHARS),
        (
            "DEPENDS_ON",
            depends_on.iter().flatten().collect(),
            MAX_ID_CHARS,
        ),
        ("HOOKS", hooks.iter().flatten().collect(), MAX_ID_CHARS),
        ("BEFORE", before.iter().flatten().collect(), MAX_ID_CHARS),
        (
            "ALEMBIC",
            alembic.iter().flatten().collect(),
            MAX_ALEMBIC_CHARS,
        ),
        ("MESSAGE", message.iter().collect(), MAX_MESSAGE_CHARS),
    ] {
        r.check_printable(field, &values, max);
    }
    for (field, values) in [
        ("PARENTS", &parents),
        ("DEPENDS_ON", &depends_on),
        ("ALEMBIC", &alembic),
        ("BEFORE", &before),
    ] {
        r.check_unique(field, values.as_deref().unwrap_or_default());
    }
    if !r.errors.is_empty() {
        return Err(r.errors);
    }
    match (
        id, tree, parents, version, depends_on, message, hooks, alembic, before,
    ) {
        (
            Some(id),
            Some(tree),
            Some(parents),
            Some(version),
            Some(depends_on),
            Some(message),
            Some(hooks),
            Some(alembic),
            Some(before),
        ) => Ok(RevisionMeta {
            id,
            tree,
            parents,
            version,
            depends_on,
            message,
            hooks,
            online_safe: online_safe.unwrap_or(false),
            expected_digest,
            alembic,
            has_downgrade,
            has_upgrade,
            path: path.to_path_buf(),
            root: root.to_path_buf(),
            checksum: file.checksum().to_string(),
            script: file,
            defaults: defaults.unwrap_or_default(),
            revision_pos,
            parents_pos,
            depends_on_pos,
            before,
            before_pos,
            open_to_plugins: open_to_plugins.unwrap_or(false),
            statement_timeout_seconds,
            statement_timeout_pos,
        }),
        // Every `None` above recorded an error, so this is unreachable in practice.
        _ => Err(vec![MetadataError::Missing {
            path: path.to_path_buf(),
            field: "REVISION",
        }]),
    }
}

/// Reads the metadata of the hook file at `path`, found under `root`.
pub fn read_hook(path: &Path, root: &Path) -> Result<HookMeta, Vec<MetadataError>> {
    let file = ScriptFile::read(path).map_err(|e| vec![e])?;
    hook_of_file(root, file)
}

/// Reads the metadata of a hook from its source text (`path` names it in messages).
#[cfg(any(test, feature = "internals"))]
pub fn hook_from_source(
    path: &Path,
    root: &Path,
    source: &str,
) -> Result<HookMeta, Vec<MetadataError>> {
    let file = ScriptFile::from_source(path, source).map_err(|e| vec![e])?;
    hook_of_file(root, file)
}

/// The metadata of a hook read from its file (found under `root`).
pub fn hook_of_file(root: &Path, file: ScriptFile) -> Result<HookMeta, Vec<MetadataError>> {
    let path = file.path().to_path_buf();
    let path = path.as_path();
    let parsed = parse(&file, HOOK_FIELDS)?;
    let mut r = Reader {
        path,
        parsed,
        errors: Vec::new(),
    };
    let name = r.string("HOOK", true);
    let key = r.opt_string("KEY", true);
    let pos = r.pos("HOOK");
    if !r.has_function("run", None) {
        r.errors.push(MetadataError::MissingFunction {
            path: path.to_path_buf(),
            function: "run",
        });
    }
    match name {
        Some(name) if r.errors.is_empty() => Ok(HookMeta {
            name,
            key,
            path: path.to_path_buf(),
            root: root.to_path_buf(),
            pos,
            script: file,
        }),
        _ => Err(r.errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
const REVISION = "alpha-2";
const TREE = "alpha";
const PARENTS = ["alpha-1"];
const VERSION = "2.0.0";
const DEPENDS_ON = [];
const MESSAGE = "Add a name column";
const HOOKS = ["populate_names"];
const ONLINE_SAFE = true;
const DIGEST = "abc123";
import "helpers" as h;
fn upgrade(db) { db.execute("ALTER TABLE t1 ADD COLUMN name VARCHAR(64)", []); }
fn downgrade(db) { db.execute("ALTER TABLE t1 DROP COLUMN name", []); }
"#;

    #[test]
    fn alembic_ids_are_read_without_running_the_script() {
        let with = GOOD.replace(
            "const DIGEST",
            "const ALEMBIC = [\"352c30854bb0\", \"1fae088c80b6\"];\nconst DIGEST",
        );
        let m = rev(&with).expect("valid");
        assert_eq!(m.alembic, ["352c30854bb0", "1fae088c80b6"]);
        assert!(rev(GOOD).expect("valid").alembic.is_empty());
        let long = GOOD.replace(
            "const DIGEST",
            &format!("const ALEMBIC = [\"{}\"];\nconst DIGEST", "a".repeat(33)),
        );
        let e = messages(&rev(&long).unwrap_err());
        assert!(
            e.contains("ALEMBIC") && e.contains("more than the 32"),
            "{e}"
        );
        let twice = GOOD.replace(
            "const DIGEST",
            "const ALEMBIC = [\"aa\", \"aa\"];\nconst DIGEST",
        );
        let e = messages(&rev(&twice).unwrap_err());
        assert!(e.contains("ALEMBIC names \"aa\" twice"), "{e}");
        let wrong = GOOD.replace("const DIGEST", "const ALEMBIC = \"aa\";\nconst DIGEST");
        let e = messages(&rev(&wrong).unwrap_err());
        assert!(e.contains("ALEMBIC must be an array of strings"), "{e}");
    }

    #[test]
    fn reads_ordering_ownership_and_timeout_fields() {
        let src = GOOD.replace(
            "const DIGEST",
            "const BEFORE = [\"beta-1\"];\nconst OPEN_TO_PLUGINS = true;\n\
             const STATEMENT_TIMEOUT_SECONDS = 7200;\nconst DIGEST",
        );
        let m = rev(&src).expect("valid");
        assert_eq!(m.before, ["beta-1"]);
        assert_eq!(m.before_pos.line, 10);
        assert!(m.open_to_plugins);
        assert_eq!(m.statement_timeout_seconds, Some(7200));
        let plain = rev(GOOD).expect("valid");
        assert!(plain.before.is_empty() && !plain.open_to_plugins);
        assert_eq!(plain.statement_timeout_seconds, None);
        for (bad, why) in [
            (
                "0",
                "STATEMENT_TIMEOUT_SECONDS is 0; it must be between 1 and",
            ),
            (
                "\"600\"",
                "STATEMENT_TIMEOUT_SECONDS must be a whole number of seconds",
            ),
        ] {
            let src = GOOD.replace(
                "const DIGEST",
                &format!("const STATEMENT_TIMEOUT_SECONDS = {bad};\nconst DIGEST"),
            );
            let e = messages(&rev(&src).unwrap_err());
            assert!(e.contains(why), "{e}");
        }
        let twice = GOOD.replace(
            "const DIGEST",
            "const BEFORE = [\"b\", \"b\"];\nconst DIGEST",
        );
        let e = messages(&rev(&twice).unwrap_err());
        assert!(e.contains("BEFORE names \"b\" twice"), "{e}");
    }

    fn rev(source: &str) -> Result<RevisionMeta, Vec<MetadataError>> {
        revision_from_source(Path::new("scripts/x.rhai"), Path::new("scripts"), source)
    }

    fn messages(errors: &[MetadataError]) -> String {
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn reads_every_field_without_resolving_imports() {
        let m = rev(GOOD).expect("valid");
        assert_eq!(m.id, "alpha-2");
        assert_eq!(m.tree, "alpha");
        assert_eq!(m.parents, vec!["alpha-1"]);
        assert_eq!(m.version, "2.0.0");
        assert!(m.depends_on.is_empty());
        assert_eq!(m.message, "Add a name column");
        assert_eq!(m.hooks, vec!["populate_names"]);
        assert!(m.online_safe);
        assert_eq!(
            m.expected_digest,
            Some(DeclaredDigest::Any("abc123".into()))
        );
        assert!(m.has_upgrade && m.has_downgrade);
        assert_eq!(m.revision_pos.line, 2);
        assert_eq!(m.parents_pos.line, 4);
        assert_eq!(m.depends_on_pos.line, 6);
        assert_eq!(m.checksum, checksum(GOOD.as_bytes()));
        assert_eq!(m.checksum.len(), 64);
    }

    #[test]
    fn digest_may_be_given_per_backend() {
        let per = GOOD.replace(
            "const DIGEST = \"abc123\";",
            "const DIGEST = #{ sqlite: \"aaaa1111\", postgres: \"bbbb2222\" };",
        );
        let d = rev(&per).expect("valid").expected_digest.expect("declared");
        assert_eq!(d.for_dialect("sqlite"), Some("aaaa1111"));
        assert_eq!(d.for_dialect("postgres"), Some("bbbb2222"));
        let one = GOOD.replace(
            "const DIGEST = \"abc123\";",
            "const DIGEST = #{ postgres: \"bbbb2222\" };",
        );
        let d = rev(&one).expect("valid").expected_digest.expect("declared");
        assert_eq!(
            d.for_dialect("sqlite"),
            None,
            "a backend not named is not checked"
        );
        assert_eq!(
            DeclaredDigest::Any("c".into()).for_dialect("sqlite"),
            Some("c")
        );
        for (bad, says) in [
            (
                "#{ pg: \"bbbb2222\" }",
                "names the backend \"pg\", which is none of sqlite, postgres",
            ),
            ("#{ sqlite: 3 }", "must be a string, or a map from backend"),
            ("#{}", "DIGEST is empty"),
            (
                "#{ sqlite: \"\" }",
                "must be a string, or a map from backend",
            ),
        ] {
            let src = GOOD.replace("\"abc123\"", bad);
            let text = messages(&rev(&src).unwrap_err());
            assert!(text.contains(says), "{bad}: {text}");
            assert!(text.contains(":10:"), "names the DIGEST line: {text}");
        }
    }

    #[test]
    fn defaults_are_read_and_type_checked() {
        let with = GOOD.replace(
            "const DIGEST",
            "const DEFAULTS = #{ \"alpha.batch\": 1000, \"alpha.mode\": \"fast\" };\nconst DIGEST",
        );
        let m = rev(&with).expect("valid");
        let keys: Vec<&str> = m.defaults.0.keys().map(String::as_str).collect();
        assert_eq!(keys, ["alpha.batch", "alpha.mode"]);
        assert_eq!(m.defaults.0["alpha.batch"].as_int(), Ok(1000));
        assert!(rev(GOOD).expect("valid").defaults.0.is_empty());
        for (bad, says) in [
            ("[1, 2]", ":10: DEFAULTS must be an object map, found array"),
            ("\"x\"", ":10: DEFAULTS must be an object map, found string"),
            ("make()", ":10: DEFAULTS is not a literal"),
        ] {
            let src = GOOD.replace(
                "const DIGEST",
                &format!("const DEFAULTS = {bad};\nconst DIGEST"),
            );
            let text = messages(&rev(&src).unwrap_err());
            assert!(text.starts_with("scripts/x.rhai"), "{text}");
            assert!(text.contains(says), "{bad}: {text}");
        }
    }

    #[test]
    fn optional_fields_default() {
        let src = r#"const REVISION = "a-1"; const TREE = "a"; const PARENTS = [];
const VERSION = "1"; const DEPENDS_ON = []; const MESSAGE = "m";
fn upgrade(db) {}"#;
        let m = rev(src).expect("valid");
        assert!(m.hooks.is_empty());
        assert!(!m.online_safe);
        assert_eq!(m.expected_digest, None);
        assert!(m.has_upgrade);
        assert!(!m.has_downgrade);
    }

    #[test]
    fn checksum_is_sha256_hex() {
        assert_eq!(
            checksum(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        let errs = rev("const REVISION = \"a\";\nfn upgrade(db) { db.execute( }").unwrap_err();
        assert_eq!(errs.len(), 1);
        match &errs[0] {
            MetadataError::Syntax { line, column, .. } => {
                assert_eq!(*line, 2);
                assert!(*column > 1);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(errs[0].to_string().starts_with("scripts/x.rhai:2:"));
    }

    #[test]
    fn a_file_that_is_not_utf8_is_located() {
        let bytes = b"const REVISION = \"a-1\";\n// caf\xe9\nfn upgrade(db) {}\n";
        let err = crate::analysis::not_utf8(Path::new("scripts/x.rhai"), bytes, 30);
        assert_eq!(
            err.to_string(),
            "scripts/x.rhai:2:7: the file is not UTF-8 (byte 0xE9 cannot start or continue a character); save it as UTF-8"
        );
    }

    #[test]
    fn every_missing_field_is_reported() {
        let errs = rev("const REVISION = \"a-1\";\nfn upgrade(db) {}").unwrap_err();
        let text = messages(&errs);
        for field in ["TREE", "PARENTS", "VERSION", "DEPENDS_ON", "MESSAGE"] {
            assert!(text.contains(&format!("{field} is not declared")), "{text}");
        }
        assert_eq!(errs.len(), 5);
    }

    #[test]
    fn wrong_type_names_the_field_and_line() {
        let src = GOOD.replace(
            r#"const PARENTS = ["alpha-1"];"#,
            r#"const PARENTS = "alpha-1";"#,
        );
        let text = messages(&rev(&src).unwrap_err());
        assert_eq!(
            text,
            "scripts/x.rhai:4: PARENTS must be an array of strings, found string"
        );
        let src = GOOD.replace("ONLINE_SAFE = true", "ONLINE_SAFE = 1");
        let text = messages(&rev(&src).unwrap_err());
        assert!(
            text.contains("ONLINE_SAFE must be a bool, found integer"),
            "{text}"
        );
        let src = GOOD.replace(r#"["populate_names"]"#, "[1]");
        let text = messages(&rev(&src).unwrap_err());
        assert!(text.contains("HOOKS must be an array of strings, found an array holding integer"));
    }

    #[test]
    fn computed_constant_is_not_a_literal() {
        let src = GOOD.replace(
            r#"const VERSION = "2.0.0";"#,
            r#"const VERSION = make_version();"#,
        );
        let text = messages(&rev(&src).unwrap_err());
        assert!(text.contains(":5: VERSION is not a literal"), "{text}");
        let src = GOOD.replace(
            r#"const VERSION = "2.0.0";"#,
            r#"const VERSION = "2" + ".0";"#,
        );
        assert!(messages(&rev(&src).unwrap_err()).contains("VERSION is not a literal"));
    }

    #[test]
    fn empty_revision_and_tree_are_rejected() {
        let src = GOOD
            .replace(r#""alpha-2""#, r#""""#)
            .replace(r#"TREE = "alpha""#, r#"TREE = " ""#);
        let text = messages(&rev(&src).unwrap_err());
        assert!(text.contains(":2: REVISION is empty"), "{text}");
        assert!(text.contains(":3: TREE is empty"), "{text}");
    }

    #[test]
    fn duplicate_constant_is_rejected() {
        let src = format!("{GOOD}\nconst TREE = \"beta\";\n");
        let text = messages(&rev(&src).unwrap_err());
        assert!(
            text.contains("TREE is declared twice (first at line 3)"),
            "{text}"
        );
    }

    #[test]
    fn nested_and_other_constants_are_ignored() {
        let src =
            format!("{GOOD}\nconst BATCH = 1000;\nfn f() {{ const REVISION = \"other\"; }}\n");
        assert_eq!(rev(&src).expect("valid").id, "alpha-2");
    }

    #[test]
    fn hook_files() {
        let path = Path::new("plugins/p/hooks/h.rhai");
        let root = Path::new("plugins/p");
        let h = hook_from_source(
            path,
            root,
            "const HOOK = \"dataset_uuid\";\nconst KEY = \"HSC\";\nfn run(db, row) { 1 }",
        )
        .expect("valid");
        assert_eq!(h.name, "dataset_uuid");
        assert_eq!(h.key.as_deref(), Some("HSC"));
        assert_eq!(h.pos.line, 1);
        let h = hook_from_source(path, root, "const HOOK = \"x\"; fn run() {}").expect("valid");
        assert_eq!(h.key, None);
        let text = messages(&hook_from_source(path, root, "const KEY = 3;").unwrap_err());
        assert!(text.contains("HOOK is not declared"), "{text}");
        assert!(
            text.contains("KEY must be a string, found integer"),
            "{text}"
        );
        assert!(text.contains("does not define `fn run`"), "{text}");
    }
}
