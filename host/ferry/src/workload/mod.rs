//! The reference workload of `WORKLOAD.md`: a butler-like registry (v1, integer
//! dataset ids) and a deterministic generator of its data at scale N.
//!
//! Used by `ferry test` (a plugin test may start from the sample registry) and, through
//! the `internals` feature, by the `ferry-workload` crate (`ferry-sample`, the v2
//! checker, the benchmarks and their tests). Everything here
//! reaches the database only through [`crate::backend::Connection`].

#![warn(missing_docs)]

pub mod generate;
pub mod schema;

pub use generate::fill_v1;
// The rest is for ferry-workload's binaries and tests.
#[cfg(feature = "internals")]
pub use generate::{FillReport, Scale};
#[cfg(feature = "internals")]
pub use schema::{create_v1_without_ferry, v1_attributes, v1_indexes, v1_tables};
