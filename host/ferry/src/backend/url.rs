//! Database URLs: `sqlite:PATH`, `postgres://…` / `postgresql://…` with `?schema=NAME`.
//!
//! - `sqlite:PATH` and `sqlite://PATH` name a file relative to the working directory;
//!   `sqlite:///abs/path` names `/abs/path`.
//! - `postgres://…` and `postgresql://…` are kept as they are, minus Ferry's own
//!   `schema` parameter (default `public`); the TLS and password keys are read when
//!   connecting (`postgres/connect.rs`), the others go to the driver.
//!
//! Error messages never show a password: `postgres://u:secret@h/db` is shown as
//! `postgres://u:***@h/db`.

use std::path::PathBuf;

/// A parsed database URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DbUrl {
    Sqlite {
        path: PathBuf,
    },
    /// `conninfo` is the URL without Ferry's own `schema` parameter, as the driver takes it.
    Postgres {
        conninfo: String,
        schema: String,
    },
}

/// Why a database URL cannot be used. The URLs it holds never show a password
/// (`postgres://u:***@h/db`).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    /// The URL is neither `sqlite:` nor `postgres://` / `postgresql://` (the URL).
    #[error("unsupported database URL {0:?}: use sqlite:PATH, postgres://… or postgresql://…")]
    Scheme(String),
    /// The scheme is known but the rest is not valid (an empty path, an in-memory
    /// SQLite database, no host, a bad `schema` parameter, ...).
    #[error("bad database URL {url:?}: {reason}")]
    Malformed {
        /// The URL.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// The schema used when a PostgreSQL URL names none.
pub const DEFAULT_SCHEMA: &str = "public";

impl DbUrl {
    pub fn parse(text: &str) -> Result<DbUrl, UrlError> {
        let malformed = |reason: &str| UrlError::Malformed {
            url: mask_password(text),
            reason: reason.to_string(),
        };
        if let Some(rest) = text.strip_prefix("sqlite:") {
            let path = match rest.strip_prefix("//") {
                // `sqlite:///abs` keeps the third slash: `/abs`.
                Some(after) => after,
                None => rest,
            };
            if path.is_empty() {
                return Err(malformed("the SQLite file path is empty"));
            }
            // SQLite reads these as a database in memory (or a temporary file) that
            // vanishes when Ferry exits: an upgrade into it would be lost.
            if path == ":memory:"
                || path.starts_with("file::memory:")
                || path.contains("mode=memory")
            {
                return Err(malformed(
                    "an in-memory or temporary SQLite database vanishes when ferry exits; \
                     name a database file",
                ));
            }
            return Ok(DbUrl::Sqlite {
                path: PathBuf::from(path),
            });
        }
        if text.starts_with("postgres://") || text.starts_with("postgresql://") {
            let (base, query) = match text.split_once('?') {
                Some((base, query)) => (base, Some(query)),
                None => (text, None),
            };
            let authority = base.split_once("://").map(|(_, a)| a).unwrap_or("");
            if authority.is_empty() {
                return Err(malformed("no host or database is given"));
            }
            let mut schema: Option<String> = None;
            let mut kept: Vec<&str> = Vec::new();
            for param in query.unwrap_or("").split('&').filter(|p| !p.is_empty()) {
                match param.split_once('=') {
                    Some(("schema", value)) => {
                        if schema.is_some() {
                            return Err(malformed("the schema parameter is given twice"));
                        }
                        if !is_plain_identifier(value) {
                            return Err(malformed(&format!(
                                "schema {value:?} is not a plain identifier \
                                 (letters, digits, `_` and `$`, not starting with a digit, at most 63 bytes)"
                            )));
                        }
                        schema = Some(value.to_string());
                    }
                    None if param == "schema" => {
                        return Err(malformed("the schema parameter has no value"));
                    }
                    _ => kept.push(param),
                }
            }
            let conninfo = if kept.is_empty() {
                base.to_string()
            } else {
                format!("{base}?{}", kept.join("&"))
            };
            return Ok(DbUrl::Postgres {
                conninfo,
                schema: schema.unwrap_or_else(|| DEFAULT_SCHEMA.to_string()),
            });
        }
        Err(UrlError::Scheme(mask_password(text)))
    }

    /// The URL as it may be shown to a person (password masked).
    pub fn display(&self) -> String {
        match self {
            DbUrl::Sqlite { path } => format!("sqlite:{}", path.display()),
            DbUrl::Postgres { conninfo, schema } => {
                format!("{} (schema {schema})", mask_password(conninfo))
            }
        }
    }
}

/// Whether `name` is an unquoted-style SQL identifier.
fn is_plain_identifier(name: &str) -> bool {
    let mut chars = name.chars();
    match chars.next() {
        Some(c) if c.is_ascii_alphabetic() || c == '_' => {}
        _ => return false,
    }
    name.len() <= 63 && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '$')
}

/// Replaces every `password = value` of a libpq key/value connection string
/// (`host=h password='se cret' dbname=d`; the value plain or single-quoted, with `\'`
/// escapes) with `password=***`.
fn mask_keyword_password(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("password") {
        let (before, after) = rest.split_at(i);
        out.push_str(before);
        let after_key = &after["password".len()..];
        let trimmed = after_key.trim_start();
        // Only a keyword on its own (not `mypassword=`) followed by `=`.
        let standalone = before
            .chars()
            .last()
            .is_none_or(|c| c.is_whitespace() || c == '?' || c == '&');
        let Some(value) = trimmed.strip_prefix('=').filter(|_| standalone) else {
            out.push_str("password");
            rest = after_key;
            continue;
        };
        let value = value.trim_start();
        let end = if let Some(quoted) = value.strip_prefix('\'') {
            let mut escaped = false;
            let close = quoted.char_indices().find(|(_, c)| {
                let done = *c == '\'' && !escaped;
                escaped = *c == '\\' && !escaped;
                done
            });
            close.map_or(value.len(), |(j, _)| j + 2)
        } else {
            value
                .find(|c: char| c.is_whitespace() || c == '&')
                .unwrap_or(value.len())
        };
        out.push_str("password=***");
        rest = &value[end..];
    }
    out.push_str(rest);
    out
}

/// Replaces the password of `scheme://user:password@host…`, of a `password=` query
/// parameter and of a key/value connection string's `password` with `***`.
pub fn mask_password(url: &str) -> String {
    if !url.contains("://") {
        return mask_keyword_password(url);
    }
    let mut out = match url.split_once("://") {
        Some((scheme, rest)) => {
            let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
            let (authority, tail) = rest.split_at(authority_end);
            match authority.rsplit_once('@') {
                Some((userinfo, host)) => match userinfo.split_once(':') {
                    Some((user, _password)) => format!("{scheme}://{user}:***@{host}{tail}"),
                    None => url.to_string(),
                },
                None => url.to_string(),
            }
        }
        None => url.to_string(),
    };
    if let Some((base, query)) = out.clone().split_once('?') {
        let params: Vec<String> = query
            .split('&')
            .map(|p| match p.split_once('=') {
                Some(("password", _)) => "password=***".to_string(),
                _ => p.to_string(),
            })
            .collect();
        out = format!("{base}?{}", params.join("&"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pg(conninfo: &str, schema: &str) -> DbUrl {
        DbUrl::Postgres {
            conninfo: conninfo.into(),
            schema: schema.into(),
        }
    }

    #[test]
    fn sqlite_forms() {
        let file = |p: &str| DbUrl::Sqlite {
            path: PathBuf::from(p),
        };
        assert_eq!(DbUrl::parse("sqlite:repo.db"), Ok(file("repo.db")));
        assert_eq!(DbUrl::parse("sqlite:dir/repo.db"), Ok(file("dir/repo.db")));
        assert_eq!(
            DbUrl::parse("sqlite:/abs/repo.db"),
            Ok(file("/abs/repo.db"))
        );
        assert_eq!(
            DbUrl::parse("sqlite://rel/repo.db"),
            Ok(file("rel/repo.db"))
        );
        assert_eq!(
            DbUrl::parse("sqlite:///abs/repo.db"),
            Ok(file("/abs/repo.db"))
        );
    }

    #[test]
    fn passwords_are_masked_in_every_form() {
        for (text, shown) in [
            (
                "host=h password=supersecret dbname=d",
                "host=h password=*** dbname=d",
            ),
            (
                "host=h password = 'se cr\\'et' dbname=d",
                "host=h password=*** dbname=d",
            ),
            ("password=supersecret", "password=***"),
            ("host=h mypassword=x", "host=h mypassword=x"),
            (
                "postgres://u:supersecret@h/db?password=other",
                "postgres://u:***@h/db?password=***",
            ),
        ] {
            assert_eq!(mask_password(text), shown, "{text}");
        }
        let err = DbUrl::parse("host=h password=supersecret")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("supersecret"), "{err}");
    }

    #[test]
    fn sqlite_in_memory_is_rejected() {
        for text in [
            "sqlite::memory:",
            "sqlite:file::memory:?cache=shared",
            "sqlite:file:x?mode=memory",
        ] {
            let err = DbUrl::parse(text).unwrap_err().to_string();
            assert!(err.contains("vanishes when ferry exits"), "{text}: {err}");
        }
    }

    #[test]
    fn sqlite_empty_path_is_rejected() {
        for text in ["sqlite:", "sqlite://"] {
            assert!(
                matches!(DbUrl::parse(text), Err(UrlError::Malformed { .. })),
                "{text}"
            );
        }
    }

    #[test]
    fn postgres_default_schema() {
        assert_eq!(
            DbUrl::parse("postgres://u@h:5432/db"),
            Ok(pg("postgres://u@h:5432/db", "public"))
        );
        assert_eq!(
            DbUrl::parse("postgresql://h/db"),
            Ok(pg("postgresql://h/db", "public"))
        );
    }

    #[test]
    fn postgres_schema_is_removed_and_other_params_kept() {
        assert_eq!(
            DbUrl::parse("postgres://h/db?schema=repo_1"),
            Ok(pg("postgres://h/db", "repo_1"))
        );
        assert_eq!(
            DbUrl::parse("postgres://h/db?sslmode=disable&schema=s&connect_timeout=5"),
            Ok(pg("postgres://h/db?sslmode=disable&connect_timeout=5", "s"))
        );
    }

    #[test]
    fn invalid_schema_names_are_rejected() {
        for bad in [
            "schema=",
            "schema",
            "schema=1abc",
            "schema=a-b",
            "schema=a%20b",
            "schema=x&schema=y",
        ] {
            let text = format!("postgres://h/db?{bad}");
            assert!(
                matches!(DbUrl::parse(&text), Err(UrlError::Malformed { .. })),
                "{text} should be rejected"
            );
        }
        let long = "a".repeat(64);
        assert!(DbUrl::parse(&format!("postgres://h/db?schema={long}")).is_err());
    }

    #[test]
    fn other_schemes_are_rejected() {
        for text in [
            "mysql://h/db",
            "repo.db",
            "",
            "postgres:/h/db",
            "postgres://",
        ] {
            assert!(DbUrl::parse(text).is_err(), "{text} should be rejected");
        }
        assert!(matches!(
            DbUrl::parse("mysql://h/db"),
            Err(UrlError::Scheme(_))
        ));
    }

    #[test]
    fn errors_mask_passwords() {
        let err = DbUrl::parse("postgres://u:secret@h/db?schema=1x").unwrap_err();
        let message = err.to_string();
        assert!(!message.contains("secret"), "{message}");
        assert!(message.contains("postgres://u:***@h/db"), "{message}");
        let err = DbUrl::parse("mysql://u:secret@h/db").unwrap_err();
        assert!(!err.to_string().contains("secret"));
        assert_eq!(
            mask_password("postgres://h/db?password=secret&x=1"),
            "postgres://h/db?password=***&x=1"
        );
        assert_eq!(mask_password("postgres://u@h/db"), "postgres://u@h/db");
    }
}
