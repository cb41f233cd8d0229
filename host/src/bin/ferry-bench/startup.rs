//! The start-up benchmark.

use crate::Env;

pub fn run(_env: &Env, _revisions: usize, _plan: usize, _runs: usize) -> Result<(), String> {
    Err("startup: not written yet".into())
}
