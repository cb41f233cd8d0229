//! The reference workload of `WORKLOAD.md`: a butler-like registry (v1, integer
//! dataset ids), a deterministic generator of its data at scale N, and a checker of the
//! v2 (UUID dataset ids) rules the int → UUID migration must satisfy.
//!
//! Used by `ferry-sample`, the integration tests and the benchmarks. Everything here
//! reaches the database only through [`crate::backend::Connection`].

#![warn(missing_docs)]

pub mod check;
pub mod generate;
pub mod keys;
pub mod schema;

pub use check::{check_v2, raw_dataset_uuid, Snapshot, RAW_UUID_NAMESPACE};
pub use generate::{fill_v1, FillReport, Scale};
pub use keys::check_keys_and_sequences;
pub use schema::{create_v1_without_ferry, v1_attributes, v1_indexes, v1_tables};
