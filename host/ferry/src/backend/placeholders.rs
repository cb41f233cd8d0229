//! Rewrites `?` placeholders to PostgreSQL's `$n`.
//!
//! A `?` is a placeholder everywhere except inside:
//! - single-quoted string literals (`'it''s ?'`), including `E'…'` strings with
//!   backslash escapes (`E'\' ?'`);
//! - dollar-quoted strings (`$$ ? $$`, `$tag$ ? $tag$`);
//! - double-quoted identifiers (`"what?"`);
//! - `--` line comments and `/* … */` block comments (which nest in PostgreSQL).
//!
//! Consequence for scripts: PostgreSQL's jsonb operators `?`, `?|` and `?&` cannot be
//! written in Ferry SQL, since their `?` is taken for a placeholder. Use the equivalent
//! functions instead: `jsonb_exists(doc, key)`, `jsonb_exists_any(doc, keys)` and
//! `jsonb_exists_all(doc, keys)`.

/// Rewrites each `?` outside string literals, quoted identifiers and comments to `$1`, `$2`, ...
/// and returns the new text and the number of placeholders.
pub fn rewrite_placeholders(sql: &str) -> (String, usize) {
    replace_placeholders(sql, |n, out| {
        out.push('$');
        out.push_str(&n.to_string());
        Ok::<(), std::convert::Infallible>(())
    })
    .unwrap_or_else(|never| match never {})
}

/// Replaces each placeholder `?` (as [`rewrite_placeholders`] finds them) by what
/// `write(n, out)` appends for the `n`th one (from 1); returns the new text and the
/// number of placeholders, or the first error of `write`.
pub fn replace_placeholders<E>(
    sql: &str,
    mut write: impl FnMut(usize, &mut String) -> Result<(), E>,
) -> Result<(String, usize), E> {
    let bytes = sql.as_bytes();
    let mut out = String::with_capacity(sql.len() + 8);
    let mut count = 0;
    let mut i = 0;
    // `copied` is the start of the text not yet copied to `out`.
    let mut copied = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'?' => {
                out.push_str(&sql[copied..i]);
                count += 1;
                write(count, &mut out)?;
                i += 1;
                copied = i;
            }
            b'\'' => {
                let escapes = i > 0
                    && matches!(bytes[i - 1], b'e' | b'E')
                    && (i < 2 || !is_ident_byte(bytes[i - 2]));
                i = skip_quoted(bytes, i, b'\'', escapes);
            }
            b'"' => i = skip_quoted(bytes, i, b'"', false),
            b'-' if bytes.get(i + 1) == Some(&b'-') => {
                i = bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(bytes.len(), |p| i + p + 1);
            }
            b'/' if bytes.get(i + 1) == Some(&b'*') => i = skip_block_comment(bytes, i),
            b'$' if i == 0 || !is_ident_byte(bytes[i - 1]) => {
                i = match dollar_tag(bytes, i) {
                    Some(tag) => skip_dollar_quoted(bytes, i, tag),
                    None => i + 1,
                };
            }
            _ => i += 1,
        }
    }
    out.push_str(&sql[copied..]);
    Ok((out, count))
}

fn is_ident_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Skips a quoted run starting at `start` (the opening quote); a doubled quote is an
/// escaped quote, and with `backslash` so is `\` followed by any byte. Returns the
/// index after the closing quote (or the end of the text).
fn skip_quoted(bytes: &[u8], start: usize, quote: u8, backslash: bool) -> usize {
    let mut i = start + 1;
    while i < bytes.len() {
        let b = bytes[i];
        if backslash && b == b'\\' {
            i += 2;
        } else if b == quote {
            if bytes.get(i + 1) == Some(&quote) {
                i += 2;
            } else {
                return i + 1;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// Skips a (nested) block comment starting at `start` (`/*`).
fn skip_block_comment(bytes: &[u8], start: usize) -> usize {
    let mut depth = 0usize;
    let mut i = start;
    while i < bytes.len() {
        if bytes[i] == b'/' && bytes.get(i + 1) == Some(&b'*') {
            depth += 1;
            i += 2;
        } else if bytes[i] == b'*' && bytes.get(i + 1) == Some(&b'/') {
            depth -= 1;
            i += 2;
            if depth == 0 {
                return i;
            }
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// The tag `$…$` starting at `start`, if this `$` opens a dollar quote
/// (`$$` or `$ident$`; `$1` is a parameter, not a tag).
fn dollar_tag(bytes: &[u8], start: usize) -> Option<&[u8]> {
    let mut i = start + 1;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'$' {
            return Some(&bytes[start..=i]);
        }
        let ok = if i == start + 1 {
            b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
        } else {
            is_ident_byte(b)
        };
        if !ok {
            return None;
        }
        i += 1;
    }
    None
}

fn skip_dollar_quoted(bytes: &[u8], start: usize, tag: &[u8]) -> usize {
    let body = start + tag.len();
    bytes[body..]
        .windows(tag.len())
        .position(|w| w == tag)
        .map_or(bytes.len(), |p| body + p + tag.len())
}

#[cfg(test)]
mod tests {
    use super::rewrite_placeholders as rw;

    fn check(sql: &str, expected: &str, n: usize) {
        assert_eq!(rw(sql), (expected.to_string(), n), "rewriting {sql:?}");
    }

    #[test]
    fn plain_placeholders_are_numbered() {
        check("SELECT 1", "SELECT 1", 0);
        check("SELECT ?", "SELECT $1", 1);
        check(
            "INSERT INTO t VALUES (?, ?,?)",
            "INSERT INTO t VALUES ($1, $2,$3)",
            3,
        );
        check("?", "$1", 1);
        check("a=?AND b=?", "a=$1AND b=$2", 2);
    }

    #[test]
    fn string_literals_are_kept() {
        check("SELECT '?', ?", "SELECT '?', $1", 1);
        check("SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1", 1);
        check("SELECT '', ?", "SELECT '', $1", 1);
        check("SELECT 'a\\', ?", "SELECT 'a\\', $1", 1);
    }

    #[test]
    fn escape_strings_honour_backslashes() {
        check("SELECT E'\\' ?', ?", "SELECT E'\\' ?', $1", 1);
        check("SELECT e'\\\\', ?", "SELECT e'\\\\', $1", 1);
        // An identifier ending in `e` followed by a quote is not an E string.
        check("SELECT somee'\\', ?", "SELECT somee'\\', $1", 1);
    }

    #[test]
    fn dollar_quotes_are_kept() {
        check("SELECT $$ ? ' $$, ?", "SELECT $$ ? ' $$, $1", 1);
        check(
            "SELECT $fn$ ? $$ ? $fn$, ?",
            "SELECT $fn$ ? $$ ? $fn$, $1",
            1,
        );
        check(
            "DO $x$ BEGIN PERFORM '?'; END $x$",
            "DO $x$ BEGIN PERFORM '?'; END $x$",
            0,
        );
        // `$1` is not a tag; an identifier with `$` is not a tag either.
        check("SELECT $1, ?", "SELECT $1, $1", 1);
        check("SELECT a$b$, ?", "SELECT a$b$, $1", 1);
    }

    #[test]
    fn quoted_identifiers_are_kept() {
        check(
            "SELECT \"what?\" FROM t WHERE x = ?",
            "SELECT \"what?\" FROM t WHERE x = $1",
            1,
        );
        check("SELECT \"a\"\"?\", ?", "SELECT \"a\"\"?\", $1", 1);
    }

    #[test]
    fn comments_are_kept() {
        check("SELECT ? -- why?\n, ?", "SELECT $1 -- why?\n, $2", 2);
        check("SELECT ? -- why?", "SELECT $1 -- why?", 1);
        check("SELECT /* ? */ ?", "SELECT /* ? */ $1", 1);
        check(
            "SELECT /* a /* ? */ ? */ ?",
            "SELECT /* a /* ? */ ? */ $1",
            1,
        );
        check("SELECT 1 - ?", "SELECT 1 - $1", 1);
        check("SELECT 4 / ?", "SELECT 4 / $1", 1);
    }

    #[test]
    fn unterminated_runs_swallow_the_rest() {
        check("SELECT '?", "SELECT '?", 0);
        check("SELECT /* ?", "SELECT /* ?", 0);
        check("SELECT $$ ?", "SELECT $$ ?", 0);
    }

    #[test]
    fn jsonb_operators_are_placeholders() {
        // Documented: `?`, `?|`, `?&` cannot be used; scripts use jsonb_exists*().
        check("SELECT doc ?| ?", "SELECT doc $1| $2", 2);
    }

    #[test]
    fn non_ascii_text_is_kept() {
        check("SELECT 'é?', ?, \"ü\"", "SELECT 'é?', $1, \"ü\"", 1);
    }
}
