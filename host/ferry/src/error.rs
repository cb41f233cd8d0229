//! Every error Ferry returns, and the parts they carry, by name.
//!
//! [`Error`], what every [`Migrator`](crate::Migrator) method returns, wraps
//! the failure of the stage that failed: a bad URL ([`UrlError`]), a script's broken
//! metadata ([`DiscoveryError`], [`MetadataError`]), an invalid revision graph
//! ([`GraphError`]), a target or a plan that cannot be made ([`TargetError`],
//! [`PlanError`]), the database ([`DbError`], whose [`DbErrorKind`] says what happened
//! whichever database reported it), Ferry's own tables ([`LedgerError`]), the migration
//! lock ([`LockError`]) or the run ([`RunError`]). This module names them all, so that an
//! application can match a failure to its kind:
//!
//! ```no_run
//! use ferry::error::{DbErrorKind, UrlError};
//! use ferry::{Error, Migrator};
//!
//! let status = Migrator::builder()
//!     .url("sqlite:registry.sqlite")
//!     .roots(["scripts"])
//!     .build()
//!     .and_then(|migrator| migrator.status());
//! match status {
//!     Ok(status) => println!("{} tree(s)", status.trees.len()),
//!     Err(Error::Db(e)) if e.kind() == DbErrorKind::MissingDatabase => {
//!         eprintln!("no repository there yet: {e}")
//!     }
//!     Err(Error::Url(UrlError::Scheme(url))) => eprintln!("not a database URL: {url}"),
//!     Err(e) => eprintln!("{e}"),
//! }
//! ```
//!
//! The error types sit here rather than at the crate root, where the types an
//! application works with ([`Migrator`](crate::Migrator), [`Status`](crate::Status),
//! [`Report`](crate::Report), ...) stay few enough to read at a glance; their names follow
//! the stages that raise them (docs/ARCHITECTURE.md). The root's own errors
//! ([`Error`], [`ScriptError`], [`PluginTestError`]) and the configuration's
//! ([`ConfigError`]) are listed here too, so this page is the whole list.
//!
//! [`Error`], the stages' error enums and [`DbErrorKind`] are `#[non_exhaustive]`: a later
//! Ferry may add a kind, so a `match` on them needs a `_` arm.

#[doc(no_inline)]
pub use crate::config::ConfigError;
#[doc(no_inline)]
pub use crate::migrator::Error;
#[doc(no_inline)]
pub use crate::plugin_test::PluginTestError;
#[doc(no_inline)]
pub use crate::script::{FailureKind, ScriptError};

pub use crate::backend::{DbError, DbErrorKind, UrlError};
pub use crate::databases::DatabasesError;
pub use crate::discovery::DiscoveryError;
pub use crate::graph::{GraphError, Location, TreeOwned};
pub use crate::ledger::LedgerError;
pub use crate::lock::LockError;
pub use crate::metadata::MetadataError;
pub use crate::offline_sql::RenderError;
pub use crate::plan::{LateBefore, PlanError};
pub use crate::plugin_test::spec::SpecError;
pub use crate::runner::RunError;
pub use crate::target::TargetError;
