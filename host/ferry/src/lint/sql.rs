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
enum Token {
    Word(String),
    Quoted(String),
    Other,
}

fn tokens(sql: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '\'' => {
                for d in chars.by_ref() {
                    if d == '\'' {
                        break;
                    }
                }
                out.push(Token::Other);
            }
            '"' | '`' => {
                let mut s = String::new();
                for d in chars.by_ref() {
                    if d == c {
                        break;
                    }
                    s.push(d);
                }
                // "schema"."table": keep only the table.
                if chars.peek() == Some(&'.') {
                    chars.next();
                    continue;
                }
                out.push(Token::Quoted(s));
            }
            '-' if chars.peek() == Some(&'-') => {
                for d in chars.by_ref() {
                    if d == '\n' {
                        break;
                    }
                }
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut s = String::from(c);
                while let Some(&d) = chars.peek() {
                    if d.is_alphanumeric() || d == '_' || d == '$' || d == '.' {
                        s.push(d);
                        chars.next();
                    } else {
                        break;
                    }
                }
                let table = s.rsplit('.').next().unwrap_or(&s).to_string();
                out.push(Token::Word(table));
            }
            _ => out.push(Token::Other),
        }
    }
    out
}

/// The tables of `sql`, or `None` when the text does not start like a SQL statement.
pub fn tables_in(sql: &str) -> Option<Tables> {
    let toks = tokens(sql);
    let upper = |t: &Token| match t {
        Token::Word(w) => w.to_ascii_uppercase(),
        _ => String::new(),
    };
    let first = toks.first().map(upper)?;
    if !STATEMENTS.contains(&first.as_str()) {
        return None;
    }
    let mut found = Tables::default();
    for (i, t) in toks.iter().enumerate() {
        let kw = upper(t);
        if !matches!(
            kw.as_str(),
            "INTO" | "UPDATE" | "FROM" | "JOIN" | "TABLE" | "TRUNCATE"
        ) {
            continue;
        }
        let creates = kw == "TABLE" && i > 0 && upper(&toks[i - 1]) == "CREATE";
        let mut j = i + 1;
        while j < toks.len() && SKIPPED.contains(&upper(&toks[j]).as_str()) {
            j += 1;
        }
        let name = match toks.get(j) {
            Some(Token::Word(w)) if !NOT_A_TABLE.contains(&w.to_ascii_uppercase().as_str()) => {
                w.to_ascii_lowercase()
            }
            Some(Token::Quoted(q)) => q.clone(),
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
        assert_eq!(
            tables_in("select the rows from x"),
            Some(Tables {
                touched: vec!["x".into()],
                created: vec![],
            })
        );
    }
}
