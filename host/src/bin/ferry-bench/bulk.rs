//! The bulk-insert benchmark (issue 3).

use crate::{Backend, Env};

pub fn run(_env: &Env, _backends: &[Backend], _rows: u64) -> Result<(), String> {
    Err("bulk-insert: not written yet".into())
}
