//! A script's metadata, read from its top-level constants without running any of its code.
//!
//! Revision files declare `REVISION`, `TREE`, `PARENTS`, `VERSION`, `DEPENDS_ON`,
//! `MESSAGE` (required) and optionally `HOOKS` (hooks the revision calls),
//! `ONLINE_SAFE` (bool, default false), `DIGEST` (schema digest expected after
//! upgrading). Hook files (under a `hooks/` folder) declare `HOOK` and optionally
//! `KEY` (for hooks provided once per key, e.g. per instrument).

use std::path::PathBuf;

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
    pub expected_digest: Option<String>,
    /// Whether the file defines `fn downgrade(db)`.
    pub has_downgrade: bool,
    /// Whether the file defines `fn upgrade(db)`.
    pub has_upgrade: bool,
    /// The file and the root it was found under.
    pub path: PathBuf,
    pub root: PathBuf,
    /// sha256 of the file bytes, lowercase hex.
    pub checksum: String,
    /// Position of the `REVISION` constant (for messages about the revision as a whole),
    /// and of `PARENTS` / `DEPENDS_ON` (for unknown references).
    pub revision_pos: Position,
    pub parents_pos: Position,
    pub depends_on_pos: Position,
}

/// The metadata of one hook implementation file.
#[derive(Debug, Clone, PartialEq)]
pub struct HookMeta {
    pub name: String,
    pub key: Option<String>,
    pub path: PathBuf,
    pub root: PathBuf,
    pub pos: Position,
}
