//! The SQLite backend (rusqlite, bundled SQLite).

use super::{DbError, DbUrl};

/// An open SQLite repository file.
pub struct SqliteConnection {}

impl SqliteConnection {
    pub fn open(_url: &DbUrl) -> Result<Self, DbError> {
        Err(DbError::Other("the SQLite backend is not built yet".into()))
    }
}
