//! How a database writes SQL, as far as the statement guard (`sql_guard`) must know.
//!
//! The guard refuses SQL a script may not send before the database sees it, so it must
//! split a text into statements exactly as the server will, and what a comment, a
//! string or a name is differs between databases. Each backend describes its own
//! database with a [`SqlSyntax`] ([`Connection::sql_syntax`](super::Connection::sql_syntax)),
//! and the guard reads the description rather than asking which database it is.

/// The lexical rules and the session policy of one database's SQL that the statement
/// guard depends on. A field is `true` where the database has the feature: a feature the
/// guard did not know of would let it misread where a string, a comment or a statement
/// ends, and so miss a statement inside it (or find one that is not there).
#[derive(Debug)]
pub struct SqlSyntax {
    /// `$` continues a name (`a$b` is one name). Where this is `false` the guard reads
    /// `a$b` as two names with a `$` between them.
    pub dollar_in_names: bool,
    /// `$tag$ … $tag$` quotes a string (a function body, usually) in which nothing is
    /// SQL, and `$1` is a parameter. Without them `;` inside `$$ … $$` would end a
    /// statement.
    pub dollar_quotes: bool,
    /// `/* … */` comments nest: `/* a /* b */ c */` is one comment. Where they do not
    /// nest, the first `*/` ends it and `c */` is SQL.
    pub nested_comments: bool,
    /// `E'…'` strings read a backslash as an escape, so `E'\''` is one quote and the
    /// string goes on; in other strings a backslash is an ordinary character.
    pub escape_strings: bool,
    /// `U&'…'` and `U&"…"` spell characters by their code points (`d\0061ta`). The guard
    /// cannot compare such names with the ones it looks for, so it refuses them.
    pub unicode_escapes: bool,
    /// `` `name` `` and `[name]` quote names as `"name"` does (SQLite, after MySQL and
    /// SQL Server): `[ferry_history]` is the ledger table.
    pub backtick_and_bracket_names: bool,
    /// `CREATE TRIGGER … BEGIN …; …; END` is one statement: the `;`s of its body do not
    /// end it (SQLite's trigger bodies are inline SQL, not a quoted function).
    pub inline_trigger_bodies: bool,
    /// The settings a script may change with `SET` / `SET LOCAL` / `RESET`: knobs that
    /// cannot affect the search path, the role, the timeouts and the checks Ferry's
    /// session relies on. Empty where a script may change none.
    pub settable: &'static [&'static str],
}
