//! Database URLs: `sqlite:PATH`, `postgres://…` / `postgresql://…` with `?schema=NAME`.

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

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum UrlError {
    #[error("unsupported database URL {0:?}: use sqlite:PATH, postgres://… or postgresql://…")]
    Scheme(String),
    #[error("bad database URL {url:?}: {reason}")]
    Malformed { url: String, reason: String },
}

impl DbUrl {
    pub fn parse(_text: &str) -> Result<DbUrl, UrlError> {
        todo!("helper C writes this")
    }
}
