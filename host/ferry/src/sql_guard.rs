//! The statement guard: SQL a script may not send, refused before the database sees it.
//!
//! A revision runs inside transactions, a session and a lock that Ferry owns; the ledger
//! (`ferry_meta`, `ferry_revisions`, `ferry_steps`, `ferry_history`, `ferry_lock`,
//! `ferry_sources`) records what ran. A statement that ends or opens a transaction,
//! changes the session (search path, role, timeouts), touches the migration lock,
//! reaches files outside the repository or writes to the ledger would break those
//! promises, so [`check`] refuses it with the reason. The script API calls it on every
//! SQL text a script hands over (`db.execute`, `db.query…`, `db.each`,
//! `db.insert_derived`'s source).
//!
//! The guard reads SQL the way the database does: comments (nested where they nest),
//! quoted strings and identifiers, dollar quoting, and several statements in one text.
//! Where databases differ in these, it follows the connection's
//! [`SqlSyntax`](crate::backend::SqlSyntax), which each backend declares. What it cannot
//! read safely (an unterminated string or comment, Unicode-escaped `U&` names, a NUL
//! byte) is refused. It is a static check: PL/pgSQL that builds SQL at run time
//! (`EXECUTE 'COM' || 'MIT'`) can evade it, which is why the backends also
//! contain what gets through (SQLite's authorizer, PostgreSQL's checks of the session
//! and the lock before every commit) and why migrations should run as a role that is
//! not a superuser (docs/OPERATIONS.md).
//!
//! Why a tokenizer of its own rather than a full parser such as `sqlparser`: the guard
//! must see statements exactly as the server splits them, including what a grammar
//! does not cover (PL/pgSQL bodies, SQLite trigger bodies, every dialect's extensions);
//! a parser that rejects such SQL would refuse valid migrations, one that misreads it
//! would let things through. Lexing (comments, quotes, dollar quotes) is what decides
//! where a statement starts, and the rules then only need each statement's leading
//! words, its function calls and the names it touches.

use crate::backend::{ColumnDef, SchemaChange, SqlSyntax, TableRewrite};

/// SQLite pragmas a script may send: they only read. Those marked `true` take an
/// argument in parentheses (`PRAGMA table_info(t)`); the others must be sent without
/// `=` or an argument (a bare query of the current value).
pub const READ_ONLY_PRAGMAS: &[(&str, bool)] = &[
    ("table_info", true),
    ("table_xinfo", true),
    ("table_list", true),
    ("index_list", true),
    ("index_info", true),
    ("index_xinfo", true),
    ("foreign_key_list", true),
    ("foreign_key_check", true),
    ("integrity_check", true),
    ("quick_check", true),
    ("collation_list", false),
    ("compile_options", false),
    ("database_list", false),
    ("function_list", false),
    ("module_list", false),
    ("pragma_list", false),
    ("data_version", false),
    ("encoding", false),
    ("foreign_keys", false),
    ("freelist_count", false),
    ("journal_mode", false),
    ("page_count", false),
    ("page_size", false),
    ("schema_version", false),
    ("user_version", false),
    ("application_id", false),
];

/// Functions a script may not call: the migration lock, other sessions, the server's
/// files and programs, session settings, extensions.
const DENIED_FUNCTIONS: &[&str] = &[
    "set_config",
    "pg_advisory_unlock_all",
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_read_file",
    "pg_read_binary_file",
    "pg_stat_file",
    "pg_file_write",
    "pg_file_rename",
    "pg_file_unlink",
    "pg_file_sync",
    "pg_logdir_ls",
    "pg_reload_conf",
    "pg_rotate_logfile",
    "lo_import",
    "lo_export",
    "load_extension",
    "readfile",
    "writefile",
    "edit",
    "fts3_tokenizer",
];

/// Prefixes of denied function families.
const DENIED_PREFIXES: &[&str] = &[
    "pg_advisory_",
    "pg_try_advisory_",
    "pg_ls_",
    "pg_read_",
    "pg_file_",
    "dblink",
];

/// Extensions that reach files, programs or other servers.
const DENIED_EXTENSIONS: &[&str] = &[
    "file_fdw",
    "postgres_fdw",
    "dblink",
    "adminpack",
    "plpython3u",
    "plpythonu",
    "plperlu",
    "pltclu",
];

/// Languages whose functions run outside PostgreSQL's sandbox.
const DENIED_LANGUAGES: &[&str] = &[
    "c",
    "internal",
    "plpython3u",
    "plpythonu",
    "plperlu",
    "pltclu",
    "plsh",
];

/// Settings whose names alone make a function body suspect (see [`body_refusal`]).
const SESSION_SETTINGS: &[&str] = &[
    "search_path",
    "statement_timeout",
    "lock_timeout",
    "idle_in_transaction_session_timeout",
    "idle_session_timeout",
    "transaction_timeout",
    "client_connection_check_interval",
    "session_authorization",
    "session_replication_role",
    "standard_conforming_strings",
    "default_transaction_read_only",
    "transaction_read_only",
];

/// Words that make a statement naming a ledger table a write to the ledger.
const WRITE_WORDS: &[&str] = &[
    "insert", "update", "delete", "merge", "replace", "upsert", "truncate", "drop", "alter",
    "create", "grant", "revoke", "copy", "comment", "reindex", "cluster", "vacuum", "lock",
    "rename", "security",
];

/// Whether `name` (any case) is one of Ferry's ledger tables. Other `ferry_`-prefixed
/// tables (a script's own maps, `ferry_new_*` copies) are a script's to use.
pub fn is_ledger_table(name: &str) -> bool {
    let name = name.to_lowercase();
    crate::ledger::table_names().contains(&name.as_str())
}

/// Why a statement is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    /// The statement at fault (the first 200 characters of it).
    pub statement: String,
    pub reason: String,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "statement refused: {}\n  in statement: {}",
            self.reason, self.statement
        )
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    /// An identifier or keyword, lower-cased; `quoted` when written in quotes.
    Word {
        text: String,
        quoted: bool,
    },
    /// A string literal's content; `dollar` when dollar-quoted.
    Str {
        text: String,
        dollar: bool,
    },
    Punct(char),
    Number,
}

impl Tok {
    fn word(&self) -> Option<&str> {
        match self {
            Tok::Word { text, .. } => Some(text),
            _ => None,
        }
    }
    fn is_bare(&self, w: &str) -> bool {
        matches!(self, Tok::Word { text, quoted: false } if text == w)
    }
}

fn is_ident_char(c: char, syntax: &SqlSyntax) -> bool {
    c.is_alphanumeric() || c == '_' || (c == '$' && syntax.dollar_in_names) || !c.is_ascii()
}

/// Splits `sql` into tokens the way a database with `syntax` reads it; `Err` for what
/// cannot be read.
fn lex(sql: &str, syntax: &SqlSyntax) -> Result<Vec<(Tok, usize)>, String> {
    let chars: Vec<char> = sql.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    let n = chars.len();
    while i < n {
        let c = chars[i];
        let start = i;
        if c == '\0' {
            return Err("a NUL character in SQL text".into());
        }
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < n && chars[i] != '\n' {
                i += 1;
            }
            continue;
        }
        if c == '/' && chars.get(i + 1) == Some(&'*') {
            let mut depth = 1;
            i += 2;
            while depth > 0 {
                if i + 1 >= n {
                    return Err("an unterminated /* comment".into());
                }
                if chars[i] == '*' && chars[i + 1] == '/' {
                    depth -= 1;
                    i += 2;
                } else if syntax.nested_comments && chars[i] == '/' && chars[i + 1] == '*' {
                    depth += 1;
                    i += 2;
                } else {
                    i += 1;
                }
            }
            continue;
        }
        if c == '\'' {
            // E'…': backslash escapes.
            let escapes = syntax.escape_strings
                && matches!(out.last(), Some((Tok::Word { text, quoted: false }, at))
                    if text == "e" && at + 1 == i);
            if escapes {
                out.pop();
            }
            let mut text = String::new();
            i += 1;
            loop {
                if i >= n {
                    return Err("an unterminated string literal".into());
                }
                let ch = chars[i];
                if escapes && ch == '\\' {
                    if let Some(next) = chars.get(i + 1) {
                        text.push(*next);
                    }
                    i += 2;
                    continue;
                }
                if ch == '\'' {
                    if chars.get(i + 1) == Some(&'\'') {
                        text.push('\'');
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                text.push(ch);
                i += 1;
            }
            out.push((
                Tok::Str {
                    text,
                    dollar: false,
                },
                start,
            ));
            continue;
        }
        let close = match c {
            '"' => Some('"'),
            '`' if syntax.backtick_and_bracket_names => Some('`'),
            '[' if syntax.backtick_and_bracket_names => Some(']'),
            _ => None,
        };
        if let Some(close) = close {
            let mut text = String::new();
            i += 1;
            loop {
                if i >= n {
                    return Err("an unterminated quoted name".into());
                }
                if chars[i] == close {
                    if close != ']' && chars.get(i + 1) == Some(&close) {
                        text.push(close);
                        i += 2;
                        continue;
                    }
                    i += 1;
                    break;
                }
                text.push(chars[i]);
                i += 1;
            }
            out.push((
                Tok::Word {
                    text: text.to_lowercase(),
                    quoted: true,
                },
                start,
            ));
            continue;
        }
        if c == '$' && syntax.dollar_quotes {
            // $tag$ … $tag$ (a `$` inside a name was consumed with the name).
            let mut j = i + 1;
            while j < n && (chars[j].is_alphanumeric() || chars[j] == '_' || !chars[j].is_ascii()) {
                j += 1;
            }
            let tag_ok =
                j < n && chars[j] == '$' && !chars.get(i + 1).is_some_and(|d| d.is_ascii_digit());
            if tag_ok {
                let tag: String = chars[i..=j].iter().collect();
                let body_start = j + 1;
                let rest: String = chars[body_start..].iter().collect();
                let Some(end) = rest.find(&tag) else {
                    return Err(format!("an unterminated {tag} quoted string"));
                };
                let text = rest[..end].to_string();
                i = body_start + rest[..end].chars().count() + tag.chars().count();
                out.push((Tok::Str { text, dollar: true }, start));
                continue;
            }
            // $1: a parameter.
            i += 1;
            while i < n && chars[i].is_ascii_digit() {
                i += 1;
            }
            out.push((Tok::Number, start));
            continue;
        }
        if c.is_ascii_digit() {
            while i < n && (is_ident_char(chars[i], syntax) || chars[i] == '.') {
                i += 1;
            }
            out.push((Tok::Number, start));
            continue;
        }
        if is_ident_char(c, syntax) {
            while i < n && is_ident_char(chars[i], syntax) {
                i += 1;
            }
            let text: String = chars[start..i].iter().collect::<String>().to_lowercase();
            if syntax.unicode_escapes
                && text == "u"
                && chars.get(i) == Some(&'&')
                && matches!(chars.get(i + 1), Some('\'') | Some('"'))
            {
                return Err("a Unicode-escaped (U&) string or name".into());
            }
            out.push((
                Tok::Word {
                    text,
                    quoted: false,
                },
                start,
            ));
            continue;
        }
        out.push((Tok::Punct(c), start));
        i += 1;
    }
    Ok(out)
}

/// Splits tokens into statements at `;` outside parentheses (and, where trigger bodies
/// are inline, outside the `BEGIN … END` body of `CREATE TRIGGER`).
fn statements(tokens: Vec<(Tok, usize)>, syntax: &SqlSyntax) -> Vec<Vec<(Tok, usize)>> {
    let mut out = Vec::new();
    let mut current: Vec<(Tok, usize)> = Vec::new();
    let mut depth = 0i32;
    for (tok, at) in tokens {
        match tok {
            Tok::Punct('(') => depth += 1,
            Tok::Punct(')') => depth -= 1,
            Tok::Punct(';') if depth <= 0 => {
                let in_trigger_body = syntax.inline_trigger_bodies
                    && is_create_trigger(&current)
                    && current.iter().any(|(t, _)| t.is_bare("begin"))
                    && !current.last().is_some_and(|(t, _)| t.is_bare("end"));
                if !in_trigger_body {
                    if !current.is_empty() {
                        out.push(std::mem::take(&mut current));
                    }
                    depth = 0;
                    continue;
                }
            }
            _ => {}
        }
        current.push((tok, at));
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

fn is_create_trigger(tokens: &[(Tok, usize)]) -> bool {
    tokens.first().is_some_and(|(t, _)| t.is_bare("create"))
        && tokens.iter().take(4).any(|(t, _)| t.is_bare("trigger"))
}

/// Refuses `sql` if any statement in it is one a script may not send, reading it as a
/// database with `syntax` does (the connection's
/// [`sql_syntax`](crate::backend::Connection::sql_syntax)).
pub fn check(sql: &str, syntax: &SqlSyntax) -> Result<(), Refused> {
    let excerpt = |s: &str| -> String {
        let s = s.trim();
        match s.char_indices().nth(200) {
            Some((i, _)) => format!("{}…", &s[..i]),
            None => s.to_string(),
        }
    };
    let tokens = lex(sql, syntax).map_err(|why| Refused {
        statement: excerpt(sql),
        reason: format!("{why}: Ferry cannot tell what it would run"),
    })?;
    let mut bounds: Vec<(usize, usize)> = Vec::new();
    let stmts = statements(tokens, syntax);
    for (k, s) in stmts.iter().enumerate() {
        let from = s.first().map_or(0, |t| t.1);
        let to = stmts
            .get(k + 1)
            .and_then(|n| n.first())
            .map_or(sql.len(), |t| t.1);
        bounds.push((from, to));
    }
    for (s, (from, to)) in stmts.iter().zip(bounds) {
        let text = sql
            .char_indices()
            .skip(from)
            .take(to - from)
            .map(|(_, c)| c)
            .collect::<String>();
        if let Some(reason) = statement_refusal(s, syntax) {
            return Err(Refused {
                statement: excerpt(text.trim().trim_end_matches(';')),
                reason,
            });
        }
    }
    Ok(())
}

/// Refuses a portable schema change (`schema::…`) that names a ledger table, or whose
/// SQL fragments (defaults, types, `using`, a rewrite's join and values) hold a
/// statement a script may not send.
pub fn check_schema_change(change: &SchemaChange, syntax: &SqlSyntax) -> Result<(), Refused> {
    let mut tables: Vec<&str> = Vec::new();
    let mut fragments: Vec<&str> = Vec::new();
    let columns = |cs: &[ColumnDef]| -> Vec<String> {
        cs.iter()
            .flat_map(|c| c.default.iter().cloned().chain([c.data_type.clone()]))
            .collect()
    };
    let mut owned: Vec<String> = Vec::new();
    let rewrite = |r: &TableRewrite| -> Vec<String> {
        let mut v = vec![r.join.clone()];
        for c in &r.columns {
            v.push(c.value.clone());
            v.push(c.data_type.clone());
        }
        v
    };
    match change {
        SchemaChange::CreateTable(t) => {
            tables.push(&t.name);
            owned.extend(columns(&t.columns));
            for k in &t.foreign_keys {
                tables.push(&k.referenced_table);
                owned.extend(k.on_delete.clone());
            }
        }
        SchemaChange::DropTable { table, .. }
        | SchemaChange::DropColumn { table, .. }
        | SchemaChange::RenameColumn { table, .. }
        | SchemaChange::SetNullable { table, .. }
        | SchemaChange::DropIndex { table, .. }
        | SchemaChange::AddUnique { table, .. }
        | SchemaChange::AddPrimaryKey { table, .. }
        | SchemaChange::DropConstraint { table, .. }
        | SchemaChange::ReplaceTableDefinition { table, .. } => tables.push(table),
        SchemaChange::RenameTable { table, new_name } => {
            tables.push(table);
            tables.push(new_name);
        }
        SchemaChange::AddColumn { table, column } => {
            tables.push(table);
            owned.extend(columns(std::slice::from_ref(column)));
        }
        SchemaChange::AlterColumnType {
            table,
            data_type,
            using,
            ..
        } => {
            tables.push(table);
            fragments.push(data_type);
            fragments.extend(using.as_deref());
        }
        SchemaChange::AddIndex(i) => tables.push(&i.table),
        SchemaChange::AddForeignKey { table, key } => {
            tables.push(table);
            tables.push(&key.referenced_table);
            owned.extend(key.on_delete.clone());
        }
        SchemaChange::RewriteTables(rs) => {
            for r in rs {
                tables.push(&r.table);
                owned.extend(rewrite(r));
            }
        }
        SchemaChange::PrepareRewrite {
            rewrite: r,
            set,
            discard,
        } => {
            tables.push(&r.table);
            owned.extend(rewrite(r));
            tables.extend(set.iter().map(String::as_str));
            tables.extend(discard.iter().map(String::as_str));
        }
        SchemaChange::SwapRewritten { tables: ts, .. } => {
            tables.extend(ts.iter().map(String::as_str))
        }
    }
    if let Some(t) = tables.iter().find(|t| is_ledger_table(t)) {
        return Err(Refused {
            statement: format!("{change:?}"),
            reason: format!(
                "{t} is Ferry's own ledger: a script may read the ledger tables but not \
                 change them"
            ),
        });
    }
    for f in fragments
        .iter()
        .copied()
        .chain(owned.iter().map(String::as_str))
    {
        check(f, syntax)?;
    }
    Ok(())
}

/// Refuses a table a script names for writing (`db.bulk_insert`, `insert_derived`'s
/// `into`) when it is one of Ferry's own.
pub fn check_table(table: &str) -> Result<(), Refused> {
    if is_ledger_table(table) {
        return Err(Refused {
            statement: format!("insert into {table}"),
            reason: format!(
                "{table} is Ferry's own ledger: a script may read the ledger tables but not \
                 write them"
            ),
        });
    }
    Ok(())
}

fn statement_refusal(s: &[(Tok, usize)], syntax: &SqlSyntax) -> Option<String> {
    let toks: Vec<&Tok> = s.iter().map(|(t, _)| t).collect();
    let words: Vec<&str> = toks.iter().filter_map(|t| t.word()).collect();
    let first = toks
        .iter()
        .find(|t| !matches!(t, Tok::Punct('(')))
        .and_then(|t| match t {
            Tok::Word {
                text,
                quoted: false,
            } => Some(text.as_str()),
            _ => None,
        })
        .unwrap_or("");
    let second = words.get(1).copied().unwrap_or("");

    // Transaction control.
    let transaction = match first {
        "begin" | "commit" | "end" | "rollback" | "savepoint" | "release" | "abort" => true,
        "start" => second == "transaction",
        "prepare" => second == "transaction",
        _ => false,
    };
    if transaction {
        return Some(format!(
            "{} is transaction control: Ferry runs each revision and each step in a \
             transaction of its own and commits it with the ledger record (use db.step for \
             units of work that commit on their own)",
            first.to_uppercase()
        ));
    }
    // Session state.
    if first == "set" || first == "reset" {
        if let Some(reason) = set_refusal(first, &words, syntax) {
            return Some(reason);
        }
    }
    if first == "discard" {
        return Some(
            "DISCARD resets the session Ferry set up (search path, timeouts, prepared \
             statements)"
                .into(),
        );
    }
    if first == "load" {
        return Some("LOAD loads a shared library into the server".into());
    }
    let third = words.get(2).copied().unwrap_or("");
    let schema_wide = match first {
        "drop" => {
            matches!(second, "schema" | "owned" | "database")
                || (second == "if" && third == "exists" && words.get(3) == Some(&"schema"))
        }
        "alter" => matches!(second, "schema" | "database" | "role" | "user"),
        "reassign" => second == "owned",
        _ => false,
    };
    if schema_wide {
        return Some(format!(
            "{} {} acts on the whole schema, database or role, the ledger included: a script \
             changes its own tables",
            first.to_uppercase(),
            second.to_uppercase()
        ));
    }
    // Foreign data, extensions and languages that reach outside the database.
    let object = words
        .iter()
        .skip(1)
        .find(|w| !matches!(**w, "or" | "replace" | "trusted" | "procedural"))
        .copied()
        .unwrap_or("");
    let foreign = match first {
        "create" | "alter" => {
            matches!(object, "foreign" | "server" | "language")
                || (object == "user" && words.contains(&"mapping"))
        }
        "import" => second == "foreign",
        _ => false,
    };
    if foreign {
        return Some(
            "foreign servers, foreign tables, user mappings and languages reach files, \
             programs or servers outside the repository"
                .into(),
        );
    }
    if first == "create" && second == "extension" {
        if let Some(ext) = words.iter().skip(2).find(|w| DENIED_EXTENSIONS.contains(w)) {
            return Some(format!(
                "extension {ext} reaches files, programs or servers outside the repository"
            ));
        }
    }
    if first == "create" || first == "alter" {
        for (k, w) in words.iter().enumerate() {
            if *w == "language" {
                if let Some(lang) = words.get(k + 1).filter(|l| DENIED_LANGUAGES.contains(l)) {
                    return Some(format!(
                        "functions in language {lang} run outside the database's sandbox"
                    ));
                }
            }
        }
    }
    if first == "alter" && second == "system" {
        return Some("ALTER SYSTEM changes the server's configuration".into());
    }
    // Files outside the repository.
    if first == "attach" || first == "detach" {
        return Some(format!(
            "{} opens another database file: a script works on the repository only",
            first.to_uppercase()
        ));
    }
    if first == "vacuum" && words.contains(&"into") {
        return Some("VACUUM INTO writes a copy of the database to a file".into());
    }
    if first == "copy"
        && (words.contains(&"program") || toks.iter().any(|t| matches!(t, Tok::Str { .. })))
    {
        return Some(
            "COPY … PROGRAM or COPY to/from a file runs programs or reaches files on the \
             database server (use db.bulk_insert to load rows)"
                .into(),
        );
    }
    if first == "pragma" {
        if let Some(reason) = pragma_refusal(&toks) {
            return Some(reason);
        }
    }
    // Functions: called, or named where a function can be bound (`CREATE OPERATOR …
    // FUNCTION = pg_read_file`, a cast, an aggregate). The SQLite names, which could be
    // a column's (`edit`), only when called.
    for (k, t) in toks.iter().enumerate() {
        if let Some(w) = t.word() {
            let called = matches!(toks.get(k + 1), Some(Tok::Punct('(')));
            let server_name = w.starts_with("pg_")
                || w.starts_with("lo_")
                || w.starts_with("dblink")
                || w == "set_config";
            if called || server_name {
                if let Some(reason) = function_refusal(w) {
                    return Some(reason);
                }
            }
        }
    }
    if let Some(reason) = ledger_refusal(&toks) {
        return Some(reason);
    }
    // Bodies of functions, procedures and DO blocks run later, out of sight: read them.
    let routine = first == "do"
        || (first == "create"
            && words
                .iter()
                .take(6)
                .any(|w| matches!(*w, "function" | "procedure" | "rule" | "trigger")));
    for t in &toks {
        if let Tok::Str { text, dollar } = t {
            if *dollar || routine {
                if let Some(reason) = body_refusal(text) {
                    return Some(reason);
                }
            }
        }
    }
    None
}

fn set_refusal(first: &str, words: &[&str], syntax: &SqlSyntax) -> Option<String> {
    let mut rest = &words[1..];
    if first == "set" && rest.first() == Some(&"constraints") {
        return None;
    }
    if matches!(rest.first(), Some(&"local") | Some(&"session")) {
        rest = &rest[1..];
    }
    let name = rest.first().copied().unwrap_or("");
    if syntax.settable.contains(&name) {
        return None;
    }
    let what = match name {
        "" => String::new(),
        "session" => " SESSION AUTHORIZATION".into(),
        other => format!(" {other}"),
    };
    Some(format!(
        "{}{what} changes the session Ferry set up (the search path that keeps the \
         repository apart from others on the server, the role, the timeouts and checks \
         that stop a runaway or orphaned migration); settings a script may change: {}",
        first.to_uppercase(),
        if syntax.settable.is_empty() {
            "none".to_string()
        } else {
            syntax.settable.join(", ")
        }
    ))
}

fn pragma_refusal(toks: &[&Tok]) -> Option<String> {
    // PRAGMA [schema.]name [= value | (argument)]
    let mut rest = &toks[1..];
    if matches!(rest.get(1), Some(Tok::Punct('.'))) {
        match rest.first().and_then(|t| t.word()) {
            Some("main") | Some("temp") => rest = &rest[2..],
            _ => return Some("PRAGMA on another schema than main".into()),
        }
    }
    let name = rest.first().and_then(|t| t.word()).unwrap_or("");
    let argument = match rest.get(1) {
        None => None,
        Some(Tok::Punct('(')) => Some(true),
        Some(_) => Some(false),
    };
    let allowed = READ_ONLY_PRAGMAS
        .iter()
        .find(|(p, _)| *p == name)
        .is_some_and(|(_, takes_argument)| match argument {
            None => true,
            Some(true) => *takes_argument,
            Some(false) => false,
        });
    if allowed {
        return None;
    }
    Some(format!(
        "PRAGMA {name} is not one of the read-only pragmas a script may send ({}): other \
         pragmas change how the database keeps its promises (journal_mode = OFF, \
         foreign_keys, writable_schema …)",
        READ_ONLY_PRAGMAS
            .iter()
            .map(|(p, _)| *p)
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn function_refusal(name: &str) -> Option<String> {
    let denied =
        DENIED_FUNCTIONS.contains(&name) || DENIED_PREFIXES.iter().any(|p| name.starts_with(p));
    if !denied {
        return None;
    }
    let why = if name.contains("advisory") {
        "the advisory locks include Ferry's migration lock"
    } else if name == "set_config" {
        "it changes the session Ferry set up"
    } else if name.contains("backend") {
        "it reaches other sessions on the server"
    } else {
        "it reaches files, programs or libraries outside the repository"
    };
    Some(format!("{name}() may not be called from a script: {why}"))
}

fn ledger_refusal(toks: &[&Tok]) -> Option<String> {
    let ledger = toks
        .iter()
        .filter_map(|t| t.word())
        .find(|w| is_ledger_table(w))?;
    let writes = toks.iter().enumerate().any(|(k, t)| match t.word() {
        Some("replace") => !matches!(toks.get(k + 1), Some(Tok::Punct('('))),
        Some(w) => WRITE_WORDS.contains(&w),
        None => false,
    });
    writes.then(|| {
        format!(
            "{ledger} is Ferry's own ledger: a script may read the ledger tables but not \
             write them, change them or put triggers or rules on them"
        )
    })
}

/// Checks the text of a function body, DO block or dollar-quoted string word by word
/// (it may be PL/pgSQL, which the statement rules cannot read).
fn body_refusal(text: &str) -> Option<String> {
    let words: Vec<String> = text
        .split(|c: char| !(c.is_alphanumeric() || c == '_' || c == '$'))
        .filter(|w| !w.is_empty())
        .map(|w| w.to_lowercase())
        .collect();
    for (k, w) in words.iter().enumerate() {
        if let Some(reason) = function_refusal(w) {
            return Some(format!("in a function body: {reason}"));
        }
        let next = words.get(k + 1).map(String::as_str).unwrap_or("");
        if matches!(w.as_str(), "commit" | "rollback" | "savepoint")
            || (w == "set" && matches!(next, "role" | "session"))
            || SESSION_SETTINGS.contains(&w.as_str())
            || w == "program"
        {
            return Some(format!(
                "a function body or DO block that uses {w}: transaction control and session \
                 settings are Ferry's"
            ));
        }
    }
    if let Some(ledger) = words.iter().find(|w| is_ledger_table(w)) {
        if words.iter().any(|w| WRITE_WORDS.contains(&w.as_str())) {
            return Some(format!(
                "a function body or DO block that writes {ledger}, Ferry's own ledger"
            ));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::postgres::SQL_SYNTAX as POSTGRES;
    use crate::backend::sqlite::SQL_SYNTAX as SQLITE;

    fn refused(sql: &str, d: &SqlSyntax) -> bool {
        check(sql, d).is_err()
    }

    #[test]
    fn ordinary_statements_pass() {
        for d in [&SQLITE, &POSTGRES] {
            for sql in [
                "SELECT * FROM dataset WHERE name = 'commit; begin'",
                "INSERT INTO t (a) VALUES (?)",
                "CREATE TABLE t (id INTEGER PRIMARY KEY, note TEXT DEFAULT 'x')",
                "SELECT revision, state FROM ferry_revisions",
                "INSERT INTO ferry_run_map (old_id) SELECT id FROM run",
                "DROP TABLE ferry_new_run",
                "UPDATE t SET a = replace(a, 'x', 'y') -- ROLLBACK",
                "/* COMMIT */ DELETE FROM t",
                "PRAGMA table_info(t)",
                "PRAGMA foreign_keys",
                "SELECT count(*) FROM t; SELECT 1",
            ] {
                assert!(check(sql, d).is_ok(), "{sql} on {d:?}: {:?}", check(sql, d));
            }
        }
        assert!(check("SET LOCAL work_mem = '256MB'", &POSTGRES).is_ok());
        assert!(check("SET CONSTRAINTS ALL DEFERRED", &POSTGRES).is_ok());
        assert!(check("CREATE EXTENSION IF NOT EXISTS pg_trgm", &POSTGRES).is_ok());
        assert!(check(
            "CREATE TABLE t (FOREIGN KEY (a) REFERENCES u (a), a int)",
            &POSTGRES
        )
        .is_ok());
        assert!(check(
            "CREATE FUNCTION f(a int) RETURNS int AS $$ SELECT a + 1 $$ LANGUAGE sql",
            &POSTGRES
        )
        .is_ok());
        assert!(check("ALTER TABLE t ALTER c SET DEFAULT 'x'", &POSTGRES).is_ok());
        assert!(check("SELECT edit, readfile FROM notes", &SQLITE).is_ok());
        assert!(check(
            "CREATE TRIGGER tr AFTER INSERT ON t BEGIN UPDATE u SET n = n + 1; END",
            &SQLITE
        )
        .is_ok());
    }

    #[test]
    fn transaction_control_is_refused_however_written() {
        for d in [&SQLITE, &POSTGRES] {
            for sql in [
                "COMMIT",
                "  commit;",
                "END",
                "ROLLBACK",
                "BEGIN",
                "SAVEPOINT a",
                "RELEASE a",
                "SELECT 1; COMMIT",
                "SELECT 1 -- x\n; COMMIT",
                "/* a */ COMMIT /* b */",
            ] {
                assert!(refused(sql, d), "{sql} on {d:?}");
            }
        }
        assert!(refused("START TRANSACTION", &POSTGRES));
        assert!(refused("/* a /* b */ c */ COMMIT", &POSTGRES));
        assert!(refused("SELECT $x$ ; $x$; ABORT", &POSTGRES));
        // A backslash escapes only in E'…' strings.
        assert!(check("SELECT E'\\'; COMMIT; --'", &POSTGRES).is_ok());
        assert!(refused("SELECT 'a\\'; COMMIT; --'", &POSTGRES));
        assert!(refused("SELECT 'unterminated", &SQLITE));
        assert!(refused("SELECT $a$ never closed", &POSTGRES));
        assert!(refused("SELECT U&\"d\\0061ta\"", &POSTGRES));
    }

    #[test]
    fn session_lock_and_file_reaching_statements_are_refused() {
        let pg = &POSTGRES;
        for sql in [
            "SET search_path TO other",
            "set session search_path = other",
            "SET LOCAL statement_timeout = 0",
            "SET client_connection_check_interval = 0",
            "SET ROLE postgres",
            "SET SESSION AUTHORIZATION postgres",
            "RESET ALL",
            "DISCARD ALL",
            "SELECT set_config('search_path', 'other', false)",
            "SELECT pg_advisory_unlock_all()",
            "CREATE OPERATOR @@@ (FUNCTION = pg_read_file, LEFTARG = text)",
            "DROP SCHEMA repo CASCADE",
            "CREATE EXTENSION IF NOT EXISTS file_fdw",
            "CREATE SERVER files FOREIGN DATA WRAPPER file_fdw",
            "CREATE FOREIGN TABLE f (x text) SERVER files OPTIONS (program 'id')",
            "CREATE FUNCTION rf(text) RETURNS text AS 'pg_read_file_v2' LANGUAGE internal",
            "CREATE OR REPLACE FUNCTION f() RETURNS int AS 'x.so', 'f' LANGUAGE C",
            "CREATE FUNCTION f() RETURNS int AS $$ import os $$ LANGUAGE plpython3u",
            "CREATE OR REPLACE TRUSTED LANGUAGE plsh",
            "CREATE USER MAPPING FOR current_user SERVER s",
            "IMPORT FOREIGN SCHEMA x FROM SERVER s INTO y",
            "drop owned by current_user",
            "ALTER SCHEMA repo RENAME TO other",
            "SELECT pg_catalog.pg_advisory_unlock_all ()",
            "SELECT \"pg_advisory_unlock_all\"()",
            "SELECT pg_read_file('/etc/passwd')",
            "SELECT lo_export(1, '/tmp/x')",
            "COPY t TO '/tmp/x'",
            "COPY t TO PROGRAM 'touch /tmp/x'",
            "DO $$ BEGIN PERFORM pg_advisory_unlock_all(); END $$",
            "DO $$ BEGIN EXECUTE 'SET search_path TO x'; END $$",
            "CREATE FUNCTION f() RETURNS void AS 'DELETE FROM ferry_history' LANGUAGE sql",
        ] {
            assert!(refused(sql, pg), "{sql}");
        }
        let lite = &SQLITE;
        for sql in [
            "ATTACH DATABASE '/tmp/x.db' AS x",
            "attach '/tmp/x.db' as x",
            "DETACH x",
            "VACUUM INTO '/tmp/copy.db'",
            "PRAGMA journal_mode = OFF",
            "PRAGMA main.journal_mode=off",
            "PRAGMA writable_schema = 1",
            "PRAGMA foreign_keys = OFF",
            "SELECT load_extension('x')",
        ] {
            assert!(refused(sql, lite), "{sql}");
        }
    }

    #[test]
    fn writes_to_the_ledger_are_refused() {
        for d in [&SQLITE, &POSTGRES] {
            for sql in [
                "INSERT INTO ferry_revisions VALUES ('x')",
                "UPDATE \"ferry_revisions\" SET state = 'applied'",
                "DELETE FROM main.FERRY_HISTORY",
                "DROP TABLE ferry_steps",
                "CREATE TRIGGER t AFTER UPDATE ON ferry_revisions BEGIN SELECT 1; END",
                "WITH x AS (DELETE FROM ferry_history RETURNING 1) SELECT * FROM x",
                "SELECT 1; DELETE FROM ferry_lock",
            ] {
                assert!(refused(sql, d), "{sql} on {d:?}");
            }
        }
        assert!(refused("DELETE FROM [ferry_history]", &SQLITE));
        assert!(refused(
            "CREATE RULE r AS ON UPDATE TO ferry_revisions DO INSTEAD NOTHING",
            &POSTGRES
        ));
    }

    #[test]
    fn a_refused_set_lists_the_settings_the_database_lets_a_script_change() {
        let e = check("SET search_path TO other", &POSTGRES).unwrap_err();
        assert!(
            e.reason.ends_with(
                "settings a script may change: work_mem, maintenance_work_mem, temp_buffers, \
                 synchronous_commit, max_parallel_workers_per_gather, \
                 max_parallel_maintenance_workers, random_page_cost, seq_page_cost, \
                 effective_cache_size, effective_io_concurrency, jit"
            ),
            "{}",
            e.reason
        );
        let e = check("SET work_mem = 1", &SQLITE).unwrap_err();
        assert!(
            e.reason
                .starts_with("SET work_mem changes the session Ferry set up")
                && e.reason.ends_with("settings a script may change: none"),
            "{}",
            e.reason
        );
    }

    #[test]
    fn the_refusal_names_the_statement() {
        let e = check("SELECT 1; SAVEPOINT s; SELECT 2", &SQLITE).unwrap_err();
        assert_eq!(e.statement, "SAVEPOINT s");
        assert!(e.to_string().contains("SAVEPOINT is transaction control"));
    }
}
