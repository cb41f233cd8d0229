//! Shared by the fault tests (`faults_*.rs`): the reference repository on a fresh
//! database, the real `ferry` binary run against it and killed at a chosen moment, and
//! the checks that a repository is usable and that its ledger agrees with its schema.
//!
//! A test file that uses it declares `mod common; mod reference_support; mod
//! fault_support;` (this module builds on both).

#![allow(dead_code)] // each test file uses a different part of the helper

pub mod invariants;
pub mod process;
pub mod reference;
pub mod settings;
pub mod tables;
