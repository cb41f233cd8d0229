//! Builds a revision graph and an applied set from the input, then resolves a target.
#![no_main]

use libfuzzer_sys::fuzz_target;

// Each target uses one of the checks.
#[allow(dead_code)]
#[path = "../src/checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::target(data));
