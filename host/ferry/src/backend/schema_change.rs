//! Portable schema changes that each backend turns into its own DDL.
//!
//! Column types are written portably by scripts and mapped by the backend:
//! `BIGINT`, `INTEGER`, `SMALLINT`, `BOOLEAN`, `TEXT`, `VARCHAR(n)`, `CHAR(n)`,
//! `TIMESTAMP`, `DOUBLE`, `BLOB`, and `UUID` (native `uuid` on PostgreSQL,
//! `CHAR(32)` lowercase hex on SQLite). Unknown types pass through unchanged.

/// One column of a table definition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnDef {
    pub name: String,
    /// Portable type, see the module documentation.
    pub data_type: String,
    pub nullable: bool,
    /// A default as a SQL expression (`0`, `'x'`, `CURRENT_TIMESTAMP`).
    pub default: Option<String>,
    /// An auto-increment integer key (`BIGSERIAL`-like on PostgreSQL,
    /// `INTEGER PRIMARY KEY AUTOINCREMENT` on SQLite; must then be the sole primary key).
    pub auto_increment: bool,
}

/// A foreign key as a table definition or `AddForeignKey` states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForeignKeyDef {
    pub name: String,
    pub columns: Vec<String>,
    pub referenced_table: String,
    pub referenced_columns: Vec<String>,
    /// `NO ACTION` when `None`; otherwise `CASCADE`, `SET NULL`, `RESTRICT`.
    pub on_delete: Option<String>,
}

/// An index as `AddIndex` states it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexDef {
    pub name: String,
    pub table: String,
    pub columns: Vec<String>,
    pub unique: bool,
    /// PostgreSQL: `CREATE INDEX CONCURRENTLY` (must run outside a transaction).
    /// Ignored on SQLite.
    pub concurrently: bool,
    /// Do nothing when an index of that name already exists.
    pub if_not_exists: bool,
}

/// A whole table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableDef {
    pub name: String,
    pub columns: Vec<ColumnDef>,
    /// Primary key `(name, columns)`; name defaults to `{table}_pkey` when empty.
    pub primary_key: Option<(String, Vec<String>)>,
    /// Unique constraints `(name, columns)`.
    pub unique: Vec<(String, Vec<String>)>,
    pub foreign_keys: Vec<ForeignKeyDef>,
}

/// A portable schema change. Names of constraints and indexes are always given,
/// so that a migration can keep them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SchemaChange {
    CreateTable(TableDef),
    DropTable {
        table: String,
        if_exists: bool,
    },
    RenameTable {
        table: String,
        new_name: String,
    },
    AddColumn {
        table: String,
        column: ColumnDef,
    },
    DropColumn {
        table: String,
        column: String,
    },
    RenameColumn {
        table: String,
        column: String,
        new_name: String,
    },
    /// Changes a column's type. `using` is a SQL expression over the old column
    /// (by its name) that converts each value; `None` converts with a cast.
    AlterColumnType {
        table: String,
        column: String,
        data_type: String,
        using: Option<String>,
    },
    SetNullable {
        table: String,
        column: String,
        nullable: bool,
    },
    AddIndex(IndexDef),
    DropIndex {
        table: String,
        name: String,
        if_exists: bool,
        concurrently: bool,
    },
    AddUnique {
        table: String,
        name: String,
        columns: Vec<String>,
    },
    AddForeignKey {
        table: String,
        key: ForeignKeyDef,
    },
    AddPrimaryKey {
        table: String,
        name: String,
        columns: Vec<String>,
    },
    /// Drops a unique, foreign key or primary key constraint by name.
    DropConstraint {
        table: String,
        name: String,
    },
    /// SQLite only: replaces the stored `CREATE TABLE` text of `table` with `sql`
    /// without copying a row, for changes that leave every stored row valid as it is
    /// (a declared type of the same affinity, a CHECK constraint loosened, renamed or
    /// removed). The backend refuses a text that would not describe the same stored
    /// table (another name, other columns or column order, another affinity, primary
    /// key, rowid or unique constraints), and checks the table's rows against the new
    /// text (`PRAGMA integrity_check`) before the transaction may commit. PostgreSQL
    /// changes such things in place with `ALTER TABLE` and refuses this change.
    ReplaceTableDefinition {
        table: String,
        sql: String,
    },
    /// Rewrites a set of tables through a join, changing the type and value of some
    /// columns, and keeps every row count, constraint and index name, in one go: each
    /// table is prepared as by [`SchemaChange::PrepareRewrite`] (parents first, see
    /// [`crate::backend::rewrite_plan::ordered`]), then all are swapped in as by
    /// [`SchemaChange::SwapRewritten`], so a parent key and the children that reference
    /// it can change type together (int → UUID). Needs a transaction begun by
    /// [`crate::backend::Sql::begin_checking_foreign_keys_at_commit`] on SQLite.
    RewriteTables(Vec<TableRewrite>),
    /// One table of a rewrite done step by step: builds the table's new version under
    /// its staged name ([`crate::backend::rewrite_plan::staged_name`]) next to the
    /// table, which stays as it is. The copy has every row (through the join; the change
    /// fails if the count would differ), the primary key and unique constraints (on
    /// PostgreSQL under staged names, since index names are unique per schema) and the
    /// foreign keys, those into tables of `set` pointing at their staged copies (so
    /// parents must be prepared first); on PostgreSQL also the plain indexes (staged
    /// names) and statistics. A copy left by an earlier attempt is dropped first, and so
    /// is every table named in `discard` (other stale copies, children first).
    PrepareRewrite {
        rewrite: TableRewrite,
        set: Vec<String>,
        discard: Vec<String>,
    },
    /// Swaps the prepared copies of `tables` (parents first) in: checks that each table
    /// still holds as many rows as its copy, drops the old tables (children first),
    /// renames each copy to its table's name (foreign keys among the copies follow),
    /// gives indexes and constraints their final names (PostgreSQL renames them; SQLite,
    /// which cannot rename an index, builds the plain indexes here), and restores foreign
    /// keys from other tables into the set. Needs a transaction begun by
    /// [`crate::backend::Sql::begin_checking_foreign_keys_at_commit`] on SQLite.
    /// `copied` holds the rows each copy was made with, as its step recorded them
    /// ([`crate::backend::Ddl::rows_copied`]); a copy of a table not in it is counted.
    SwapRewritten {
        tables: Vec<String>,
        copied: std::collections::BTreeMap<String, u64>,
    },
}

/// One table of [`SchemaChange::RewriteTables`]: `SELECT … FROM table AS t {join}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableRewrite {
    pub table: String,
    /// SQL that follows `FROM "table" AS t`, e.g. `JOIN map m ON m.old_id = t.id`.
    /// Every row of the table must match exactly once: the rewrite fails if the
    /// row count would change.
    pub join: String,
    pub columns: Vec<ColumnRewrite>,
}

/// A column whose type and value change in a [`TableRewrite`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnRewrite {
    pub column: String,
    /// Portable type of the new column.
    pub data_type: String,
    /// SQL expression for the new value (may use `t.` and the join's aliases).
    pub value: String,
}
