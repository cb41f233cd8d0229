//! The reference workload of `WORKLOAD.md` around the library: the checker of the v2
//! (UUID dataset ids) rules the int → UUID migration must satisfy, the binaries
//! `ferry-sample` and `ferry-bench`, and the reference, fault and benchmark tests.
//!
//! The v1 registry and its generator live in the library (`ferry test` starts plugin
//! tests from them) and are re-exported here, so that the binaries and tests name one
//! crate. Everything here reaches the database only through
//! [`ferry::backend::Connection`], which it reaches through the library's `internals`
//! feature (not a stable API). Not published.

#![warn(missing_docs)]

pub mod check;
pub mod keys;

pub use check::{check_v2, raw_dataset_uuid, Snapshot, RAW_UUID_NAMESPACE};
pub use ferry::workload::{
    create_v1_without_ferry, fill_v1, generate, schema, v1_attributes, v1_indexes, v1_tables,
    FillReport, Scale,
};
pub use keys::check_keys_and_sequences;
