//! The PostgreSQL backend (tokio-postgres, deadpool-postgres).

use super::{DbError, DbUrl};

/// An open PostgreSQL connection, every table in one namespace.
pub struct PgConnection {}

impl PgConnection {
    pub fn open(_url: &DbUrl) -> Result<Self, DbError> {
        Err(DbError::Other(
            "the PostgreSQL backend is not built yet".into(),
        ))
    }
}
