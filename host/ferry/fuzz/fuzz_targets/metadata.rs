//! Reads arbitrary bytes as a revision file and as a hook file (without running them).
#![no_main]

use libfuzzer_sys::fuzz_target;

// Each target uses one of the checks.
#[allow(dead_code)]
#[path = "../src/checks.rs"]
mod checks;

fuzz_target!(|data: &[u8]| checks::metadata(data));
