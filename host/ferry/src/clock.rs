//! Wall-clock helpers for the ledger and the lock (the host's clock, never the script's).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Seconds since the Unix epoch, now.
pub fn now_unix() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// Formats seconds since the Unix epoch as RFC 3339 UTC (`2026-11-22T02:35:31Z`).
pub fn format_utc(unix_seconds: i64) -> String {
    let t = UNIX_EPOCH + Duration::from_secs(unix_seconds.max(0) as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}
