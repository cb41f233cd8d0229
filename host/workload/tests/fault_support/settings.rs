//! The knobs of the fault tests, read from the environment so that a larger run is a
//! command, not an edit: `FERRY_KILL_SEED`, `FERRY_KILLS`, `FERRY_KILL_N`,
//! `FERRY_KILL_BATCH`, `FERRY_CONCURRENT`. Defaults keep `cargo test` quick.

use rand::rngs::Xoshiro256PlusPlus;
use rand::{Rng, SeedableRng};
use std::time::Duration;

/// Reads a non-negative integer from the environment, or `default` when unset/empty.
/// A value that is set but not a number stops the test with the variable named.
pub fn env_u64(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) if !v.trim().is_empty() => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a non-negative integer")),
        _ => default,
    }
}

/// The kill harness's settings.
#[derive(Debug, Clone, Copy)]
pub struct KillSettings {
    /// Seeds every random choice of the run (`FERRY_KILL_SEED`; default: from the clock).
    pub seed: u64,
    /// Kills to deliver per backend, at least (`FERRY_KILLS`, default 20).
    pub kills: usize,
    /// Datasets in the reference repository (`FERRY_KILL_N`, default 8000).
    pub n: u64,
    /// `datasets.uuid_batch_size` (`FERRY_KILL_BATCH`, default 200: 40 batches at 8000).
    pub batch: u64,
}

impl KillSettings {
    pub fn from_env() -> KillSettings {
        let clock_seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(1);
        KillSettings {
            seed: env_u64("FERRY_KILL_SEED", clock_seed),
            kills: env_u64("FERRY_KILLS", 20) as usize,
            n: env_u64("FERRY_KILL_N", 8000).max(9),
            batch: env_u64("FERRY_KILL_BATCH", 200).max(1),
        }
    }

    /// The line that lets anyone rerun exactly this configuration.
    pub fn rerun_line(&self, backend: &str) -> String {
        format!(
            "[{backend}] kill harness: FERRY_KILL_SEED={} FERRY_KILLS={} FERRY_KILL_N={} FERRY_KILL_BATCH={}",
            self.seed, self.kills, self.n, self.batch
        )
    }
}

/// The seeded source of every random choice a fault test makes.
pub struct Dice(Xoshiro256PlusPlus);

impl Dice {
    pub fn new(seed: u64) -> Dice {
        Dice(Xoshiro256PlusPlus::seed_from_u64(seed))
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.0.next_u64() % n.max(1)
    }

    /// True with probability `percent` / 100.
    pub fn percent(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    /// A duration in `[0, max)`, in microseconds.
    pub fn duration_below(&mut self, max: Duration) -> Duration {
        Duration::from_micros(self.below(max.as_micros().max(1) as u64))
    }
}
