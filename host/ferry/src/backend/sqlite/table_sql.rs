//! Reads the constraint clauses of a stored `CREATE TABLE` statement.
//!
//! SQLite's pragmas report a table's keys but not the names they were declared
//! with; those names live only in the statement text kept in `sqlite_master`.
//! This is a small tokenizer and a parser for the parts of that text Ferry needs:
//! column names, `AUTOINCREMENT`, and named or unnamed `PRIMARY KEY`, `UNIQUE` and
//! `FOREIGN KEY` / `REFERENCES` clauses, at table or column level.

/// One lexical token of SQLite SQL.
#[derive(Debug, Clone, PartialEq)]
enum Token {
    /// A bare word: a keyword or an unquoted identifier.
    Word(String),
    /// A quoted identifier (`"x"`, `` `x` ``, `[x]`), unquoted.
    Quoted(String),
    /// A string literal, unquoted.
    Str(String),
    /// Any other single character (punctuation, operators) or a number.
    Other(String),
}

impl Token {
    fn is_keyword(&self, keyword: &str) -> bool {
        matches!(self, Token::Word(w) if w.eq_ignore_ascii_case(keyword))
    }

    fn is_punct(&self, c: char) -> bool {
        matches!(self, Token::Other(s) if s.len() == 1 && s.starts_with(c))
    }

    /// The identifier this token names, if it can name one.
    fn ident(&self) -> Option<String> {
        match self {
            Token::Word(w) | Token::Quoted(w) | Token::Str(w) => Some(w.clone()),
            Token::Other(_) => None,
        }
    }
}

fn tokenize(sql: &str) -> Vec<Token> {
    let chars: Vec<char> = sql.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if c.is_whitespace() {
            i += 1;
        } else if c == '-' && chars.get(i + 1) == Some(&'-') {
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
        } else if c == '/' && chars.get(i + 1) == Some(&'*') {
            i += 2;
            while i < chars.len() && !(chars[i] == '*' && chars.get(i + 1) == Some(&'/')) {
                i += 1;
            }
            i += 2;
        } else if c == '"' || c == '`' || c == '\'' || c == '[' {
            let close = if c == '[' { ']' } else { c };
            let mut text = String::new();
            i += 1;
            while i < chars.len() {
                if chars[i] == close {
                    // A doubled quote stands for itself (not inside brackets).
                    if close != ']' && chars.get(i + 1) == Some(&close) {
                        text.push(close);
                        i += 2;
                        continue;
                    }
                    break;
                }
                text.push(chars[i]);
                i += 1;
            }
            i += 1;
            tokens.push(if c == '\'' {
                Token::Str(text)
            } else {
                Token::Quoted(text)
            });
        } else if c.is_alphanumeric() || c == '_' || c == '$' {
            let start = i;
            while i < chars.len()
                && (chars[i].is_alphanumeric() || chars[i] == '_' || chars[i] == '$')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            if c.is_ascii_digit() {
                tokens.push(Token::Other(word));
            } else {
                tokens.push(Token::Word(word));
            }
        } else {
            tokens.push(Token::Other(c.to_string()));
            i += 1;
        }
    }
    tokens
}

/// What kind of key a parsed constraint declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConstraintKind {
    PrimaryKey,
    Unique,
    ForeignKey { referenced_table: String },
}

/// A key declared in the statement, at table level or on one column.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedConstraint {
    pub name: Option<String>,
    pub kind: ConstraintKind,
    pub columns: Vec<String>,
}

/// A `CHECK` constraint, declared at table level or on a column.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckClause {
    /// Its `CONSTRAINT` name, if it has one.
    pub name: Option<String>,
    /// The parenthesised expression's tokens, parentheses included.
    expr: Vec<Token>,
}

impl CheckClause {
    /// Whether the expression names `column` (as a bare or quoted identifier).
    pub fn mentions(&self, column: &str) -> bool {
        self.expr.iter().any(|t| match t {
            Token::Word(w) | Token::Quoted(w) => w.eq_ignore_ascii_case(column),
            _ => false,
        })
    }

    /// The clause as table-level SQL: `CONSTRAINT "name" CHECK (...)`.
    pub fn sql(&self) -> String {
        let mut out = String::new();
        if let Some(name) = &self.name {
            out.push_str(&format!("CONSTRAINT \"{}\" ", name.replace('"', "\"\"")));
        }
        out.push_str("CHECK ");
        let mut previous: Option<&Token> = None;
        for t in &self.expr {
            let text = match t {
                Token::Word(w) | Token::Other(w) => w.clone(),
                Token::Quoted(q) => format!("\"{}\"", q.replace('"', "\"\"")),
                Token::Str(s) => format!("'{}'", s.replace('\'', "''")),
            };
            // Punctuation stays glued (`<=`, `1.5`, `t.x`); words are spaced.
            let glued = |t: &Token| matches!(t, Token::Other(o) if !o.starts_with(|c: char| c.is_ascii_digit()));
            if let Some(p) = previous {
                let dot = p.is_punct('.') || t.is_punct('.');
                let tight = p.is_punct('(') || t.is_punct(')') || t.is_punct(',');
                if !(dot || tight || (glued(p) && glued(t))) {
                    out.push(' ');
                }
            }
            out.push_str(&text);
            previous = Some(t);
        }
        out
    }
}

/// The tokens from `tokens[at]` (an opening parenthesis) to its matching close.
fn parenthesised(tokens: &[Token], at: usize) -> Vec<Token> {
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(at) {
        if t.is_punct('(') {
            depth += 1;
        } else if t.is_punct(')') {
            depth = depth.saturating_sub(1);
            if depth == 0 {
                return tokens[at..=i].to_vec();
            }
        }
    }
    tokens[at.min(tokens.len())..].to_vec()
}

/// What Ferry reads from a stored `CREATE TABLE` statement.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedTable {
    /// Columns declared `AUTOINCREMENT`.
    pub autoincrement: Vec<String>,
    pub constraints: Vec<ParsedConstraint>,
    /// Every `CHECK` constraint, in declaration order.
    pub checks: Vec<CheckClause>,
}

impl ParsedTable {
    /// The declared name of the first constraint of `kind` on exactly `columns`.
    pub fn name_of(&self, kind: &ConstraintKind, columns: &[String]) -> Option<String> {
        self.constraints
            .iter()
            .find(|c| &c.kind == kind && same_columns(&c.columns, columns))
            .and_then(|c| c.name.clone())
    }
}

fn same_columns(a: &[String], b: &[String]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.eq_ignore_ascii_case(y))
}

/// Parses the body of a `CREATE TABLE` statement; unknown clauses are skipped.
pub fn parse_create_table(sql: &str) -> ParsedTable {
    let tokens = tokenize(sql);
    let mut parsed = ParsedTable::default();
    let Some(open) = tokens.iter().position(|t| t.is_punct('(')) else {
        return parsed;
    };
    for item in split_top_level(&tokens[open + 1..]) {
        parse_item(item, &mut parsed);
    }
    parsed
}

/// Splits the tokens after an opening parenthesis at top-level commas, up to the
/// matching closing parenthesis.
fn split_top_level(tokens: &[Token]) -> Vec<&[Token]> {
    let mut items = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, t) in tokens.iter().enumerate() {
        if t.is_punct('(') {
            depth += 1;
        } else if t.is_punct(')') {
            if depth == 0 {
                items.push(&tokens[start..i]);
                return items;
            }
            depth -= 1;
        } else if t.is_punct(',') && depth == 0 {
            items.push(&tokens[start..i]);
            start = i + 1;
        }
    }
    items.push(&tokens[start..]);
    items
}

/// The names in a parenthesised list starting at `tokens[at]` (each element's
/// first token; `COLLATE`/`ASC` after it are ignored), and the index after it.
fn column_list(tokens: &[Token], at: usize) -> (Vec<String>, usize) {
    if !tokens.get(at).is_some_and(|t| t.is_punct('(')) {
        return (Vec::new(), at);
    }
    let elements = split_top_level(&tokens[at + 1..]);
    let consumed: usize = elements.iter().map(|e| e.len() + 1).sum();
    let names = elements
        .iter()
        .filter_map(|e| e.first().and_then(Token::ident))
        .collect();
    (names, at + 1 + consumed)
}

fn parse_item(item: &[Token], parsed: &mut ParsedTable) {
    let (name, rest) = match item {
        [first, name, rest @ ..] if first.is_keyword("CONSTRAINT") => (name.ident(), rest),
        _ => (None, item),
    };
    let Some(first) = rest.first() else { return };
    if first.is_keyword("PRIMARY") || first.is_keyword("UNIQUE") {
        let kind = if first.is_keyword("PRIMARY") {
            ConstraintKind::PrimaryKey
        } else {
            ConstraintKind::Unique
        };
        let at = rest
            .iter()
            .position(|t| t.is_punct('('))
            .unwrap_or(rest.len());
        let (columns, _) = column_list(rest, at);
        parsed.constraints.push(ParsedConstraint {
            name,
            kind,
            columns,
        });
    } else if first.is_keyword("FOREIGN") {
        let at = rest
            .iter()
            .position(|t| t.is_punct('('))
            .unwrap_or(rest.len());
        let (columns, after) = column_list(rest, at);
        if let Some(referenced_table) = references_target(rest, after) {
            let kind = ConstraintKind::ForeignKey { referenced_table };
            parsed.constraints.push(ParsedConstraint {
                name,
                kind,
                columns,
            });
        }
    } else if first.is_keyword("CHECK") {
        parsed.checks.push(CheckClause {
            name,
            expr: parenthesised(rest, 1),
        });
    } else if name.is_none() {
        parse_column(item, parsed);
    }
}

/// The table named after the first `REFERENCES` at or after `from`.
fn references_target(tokens: &[Token], from: usize) -> Option<String> {
    let at = (from..tokens.len()).find(|&i| tokens[i].is_keyword("REFERENCES"))?;
    tokens.get(at + 1).and_then(Token::ident)
}

fn parse_column(item: &[Token], parsed: &mut ParsedTable) {
    let Some(column) = item.first().and_then(Token::ident) else {
        return;
    };
    let mut pending_name: Option<String> = None;
    let mut depth = 0usize;
    let mut i = 1;
    while i < item.len() {
        let t = &item[i];
        if t.is_punct('(') {
            depth += 1;
        } else if t.is_punct(')') {
            depth = depth.saturating_sub(1);
        } else if depth == 0 {
            let kind = if t.is_keyword("CONSTRAINT") {
                pending_name = item.get(i + 1).and_then(Token::ident);
                i += 2;
                continue;
            } else if t.is_keyword("CHECK") {
                let expr = parenthesised(item, i + 1);
                i += 1 + expr.len();
                parsed.checks.push(CheckClause {
                    name: pending_name.take(),
                    expr,
                });
                continue;
            } else if t.is_keyword("PRIMARY") {
                Some(ConstraintKind::PrimaryKey)
            } else if t.is_keyword("UNIQUE") {
                Some(ConstraintKind::Unique)
            } else if t.is_keyword("REFERENCES") {
                item.get(i + 1)
                    .and_then(Token::ident)
                    .map(|referenced_table| ConstraintKind::ForeignKey { referenced_table })
            } else {
                if t.is_keyword("AUTOINCREMENT") {
                    parsed.autoincrement.push(column.clone());
                }
                if t.is_keyword("NOT") || t.is_keyword("NULL") || t.is_keyword("DEFAULT") {
                    pending_name = None;
                }
                None
            };
            if let Some(kind) = kind {
                let name = pending_name.take();
                parsed.constraints.push(ParsedConstraint {
                    name,
                    kind,
                    columns: vec![column.clone()],
                });
            }
        }
        i += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_named_and_unnamed_keys_with_quotes() {
        let sql = r#"CREATE TABLE "a ""b" (
            "id" INTEGER NOT NULL CONSTRAINT "a_pkey" PRIMARY KEY AUTOINCREMENT,
            [x,y] TEXT DEFAULT 'a,(b' UNIQUE, -- comment, with (
            z BIGINT REFERENCES other,
            CONSTRAINT "u ""q" UNIQUE ("x,y", z),
            CONSTRAINT fk1 FOREIGN KEY (z) REFERENCES "ot""h" ("k") ON DELETE CASCADE,
            CHECK (z > 0)
        )"#;
        let p = parse_create_table(sql);
        assert_eq!(p.autoincrement, vec!["id".to_string()]);
        let pk = ConstraintKind::PrimaryKey;
        assert_eq!(p.name_of(&pk, &["id".into()]), Some("a_pkey".into()));
        assert_eq!(
            p.name_of(&ConstraintKind::Unique, &["x,y".into(), "z".into()]),
            Some("u \"q".into())
        );
        let fk = ConstraintKind::ForeignKey {
            referenced_table: "ot\"h".into(),
        };
        assert_eq!(p.name_of(&fk, &["z".into()]), Some("fk1".into()));
        assert_eq!(p.constraints.len(), 5);
        let checks: Vec<String> = p.checks.iter().map(CheckClause::sql).collect();
        assert_eq!(checks, ["CHECK (z > 0)"]);
    }

    #[test]
    fn reads_check_clauses_back_as_sql() {
        let sql = r#"CREATE TABLE t (
            a VARCHAR(8) CONSTRAINT t_a_pos CHECK (length(a)<=8 AND length(a) >= 1) NOT NULL,
            "b c" REAL CHECK ("b c" >= -1.5 OR "b c" IN ('x''y', 2)),
            CONSTRAINT t_len_a CHECK (length(t.a) <= 8)
        )"#;
        let p = parse_create_table(sql);
        let checks: Vec<String> = p.checks.iter().map(CheckClause::sql).collect();
        assert_eq!(
            checks,
            [
                r#"CONSTRAINT "t_a_pos" CHECK (length (a)<= 8 AND length (a)>= 1)"#,
                r#"CHECK ("b c" >=- 1.5 OR "b c" IN ('x''y', 2))"#,
                r#"CONSTRAINT "t_len_a" CHECK (length (t.a)<= 8)"#,
            ]
        );
        assert!(p.checks[1].mentions("b c") && !p.checks[1].mentions("a"));
        // Each reads back the same.
        for c in &p.checks {
            let again = parse_create_table(&format!("CREATE TABLE u (x, {})", c.sql()));
            assert_eq!(again.checks.as_slice(), std::slice::from_ref(c));
        }
    }
}
