//! Table names in a SQL text, read the way a reviewer skims it: the name after
//! `INTO`, `UPDATE`, `FROM`, `JOIN` and `TABLE`. A heuristic for the missing-
//! `DEPENDS_ON` check, not a SQL parser: subqueries, CTE names and the second table
//! of `FROM a, b` are not told apart or found, which is why that check only warns.

/// The tables a statement reads or writes, and those it creates (`CREATE TABLE`).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tables {
    pub touched: Vec<String>,
    pub created: Vec<String>,
}

/// Words that start a statement: a literal that starts otherwise is not taken for SQL.
const STATEMENTS: [&str; 10] = [
    "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "ALTER", "DROP", "WITH", "REPLACE",
    "TRUNCATE",
];

/// Words between a keyword and its table name.
const SKIPPED: [&str; 5] = ["IF", "NOT", "EXISTS", "ONLY", "TABLE"];

/// Words after a keyword that show no table name follows.
const NOT_A_TABLE: [&str; 4] = ["SELECT", "SET", "LATERAL", "VALUES"];

#[derive(Debug, PartialEq)]
enum Token<'a> {
    /// A name, without what a `.` qualifies it with (`main.instrument` is `instrument`).
    Word(&'a str),
    /// The text between double quotes or backticks.
    Quoted(&'a str),
    Other,
}

/// The tokens of a SQL text, read lazily (most literals a script holds are not SQL, and
/// their first token says so), as slices of the text.
struct Tokens<'a> {
    sql: &'a str,
    chars: std::iter::Peekable<std::str::CharIndices<'a>>,
}

impl<'a> Tokens<'a> {
    fn new(sql: &'a str) -> Self {
        Tokens {
            sql,
            chars: sql.char_indices().peekable(),
        }
    }

    /// The byte offset of the next character (the text's end when none is left).
    fn offset(&mut self) -> usize {
        self.chars.peek().map_or(self.sql.len(), |&(i, _)| i)
    }
}

impl<'a> Iterator for Tokens<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        while let Some((start, c)) = self.chars.next() {
            match c {
                c if c.is_whitespace() => {}
                '\'' => {
                    for (_, d) in self.chars.by_ref() {
                        if d == '\'' {
                            break;
                        }
                    }
                    return Some(Token::Other);
                }
                '"' | '`' => {
                    let from = start + c.len_utf8();
                    let mut to = self.sql.len();
                    for (i, d) in self.chars.by_ref() {
                        if d == c {
                            to = i;
                            break;
                        }
                    }
                    // "schema"."table": keep only the table.
                    if self.chars.peek().map(|&(_, d)| d) == Some('.') {
                        self.chars.next();
                        continue;
                    }
                    return Some(Token::Quoted(&self.sql[from..to]));
                }
                '-' if self.chars.peek().map(|&(_, d)| d) == Some('-') => {
                    for (_, d) in self.chars.by_ref() {
                        if d == '\n' {
                            break;
                        }
                    }
                }
                c if c.is_alphanumeric() || c == '_' => {
                    while let Some(&(_, d)) = self.chars.peek() {
                        if d.is_alphanumeric() || d == '_' || d == '$' || d == '.' {
                            self.chars.next();
                        } else {
                            break;
                        }
                    }
                    let word = &self.sql[start..self.offset()];
                    let table = word.rsplit('.').next().unwrap_or(word);
                    return Some(Token::Word(table));
                }
                _ => return Some(Token::Other),
            }
        }
        None
    }
}

/// Whether `t` is the word `keyword` (upper case ASCII), in any case.
fn is(t: &Token, keyword: &str) -> bool {
    matches!(t, Token::Word(w) if w.eq_ignore_ascii_case(keyword))
}

/// The tables of `sql`, or `None` when the text does not start like a SQL statement.
pub fn tables_in(sql: &str) -> Option<Tables> {
    let mut tokens = Tokens::new(sql);
    let first = tokens.next()?;
    if !STATEMENTS.iter().any(|s| is(&first, s)) {
        return None;
    }
    let toks: Vec<Token> = std::iter::once(first).chain(tokens).collect();
    let mut found = Tables::default();
    for (i, t) in toks.iter().enumerate() {
        if !["INTO", "UPDATE", "FROM", "JOIN", "TABLE", "TRUNCATE"]
            .iter()
            .any(|k| is(t, k))
        {
            continue;
        }
        let creates = is(t, "TABLE") && i > 0 && is(&toks[i - 1], "CREATE");
        let mut j = i + 1;
        while j < toks.len() && SKIPPED.iter().any(|k| is(&toks[j], k)) {
            j += 1;
        }
        let name = match toks.get(j) {
            Some(w @ Token::Word(word)) if !NOT_A_TABLE.iter().any(|k| is(w, k)) => {
                word.to_ascii_lowercase()
            }
            Some(Token::Quoted(q)) => q.to_string(),
            _ => continue,
        };
        if creates {
            found.created.push(name);
        } else if !found.touched.contains(&name) {
            found.touched.push(name);
        }
    }
    Some(found)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_of_common_statements() {
        let t = tables_in("INSERT INTO instrument (name) VALUES ('TST')").unwrap();
        assert_eq!(t.touched, ["instrument"]);
        let t = tables_in("CREATE TABLE IF NOT EXISTS \"tst_filter\" (id INTEGER)").unwrap();
        assert_eq!(t.created, ["tst_filter"]);
        assert!(t.touched.is_empty());
        let t = tables_in(
            "UPDATE detector SET x = 1 FROM main.Instrument i JOIN exposure e ON 1 -- FROM c",
        )
        .unwrap();
        assert_eq!(t.touched, ["detector", "instrument", "exposure"]);
        let t = tables_in("INSERT INTO a SELECT * FROM (SELECT 1) ON CONFLICT DO UPDATE SET x = 1")
            .unwrap();
        assert_eq!(t.touched, ["a"]);
        assert_eq!(tables_in("instrument"), None);
        assert_eq!(tables_in(""), None);
        assert_eq!(tables_in("'SELECT' FROM x"), None);
        // Comments before the statement, quoted schemas, backticks, and a quote left
        // open (read to the end).
        let t = tables_in("-- note\nINSERT INTO \"main\".\"Det\" SELECT 1 FROM `ex` JOIN \"open")
            .unwrap();
        assert_eq!(t.touched, ["Det", "ex", "open"]);
        let t = tables_in("delete from Main.Déjà where x = '--' -- from y\n").unwrap();
        assert_eq!(t.touched, ["déjà"]);
        assert_eq!(
            tables_in("select the rows from x"),
            Some(Tables {
                touched: vec!["x".into()],
                created: vec![],
            })
        );
    }

    #[test]
    fn tokens_are_slices_of_the_text() {
        use Token::*;
        let toks: Vec<Token> =
            Tokens::new("main.Det \"s\".\"T x\" 'it''s' -- from c\n`q` - 1 \"open").collect();
        assert_eq!(
            toks,
            [
                Word("Det"),
                Quoted("T x"),
                Other,
                Other,
                Quoted("q"),
                Other,
                Word("1"),
                Quoted("open")
            ]
        );
        assert_eq!(Tokens::new(" \n-- only a comment").next(), None);
    }

    #[test]
    fn literals_and_comments_hide_their_words() {
        // '' inside a literal closes and reopens it: neither half is read as names.
        let t =
            tables_in("UPDATE t SET note = 'it''s FROM y' WHERE id IN (SELECT id FROM z)").unwrap();
        assert_eq!(t.touched, ["t", "z"]);
        // A literal left open runs to the end of the text.
        let t = tables_in("INSERT INTO a VALUES ('x FROM b)").unwrap();
        assert_eq!(t.touched, ["a"]);
        // A single '-' is an operator, not a comment.
        let t = tables_in("UPDATE t SET x = x - 1 FROM u -- JOIN v").unwrap();
        assert_eq!(t.touched, ["t", "u"]);
        // Quoted names keep their case and spaces; bare names are lower-cased.
        let t = tables_in("CREATE TABLE \"My Table\" AS SELECT * FROM Other_Table").unwrap();
        assert_eq!(t.created, ["My Table"]);
        assert_eq!(t.touched, ["other_table"]);
        // Keywords in any case, the first word decides whether the text is SQL.
        assert!(tables_in("  sElEcT 1").is_some());
        assert_eq!(tables_in("-- SELECT\nnot sql FROM x"), None);
        assert_eq!(tables_in("\"SELECT\" FROM x"), None);
    }
}
