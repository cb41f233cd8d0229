//! Panics, caught: a process-wide hook remembers where a panic happened (instead of
//! Rust's default message), so that the script host can turn a panic inside a call
//! into a script into a failed revision that names the place, and the binary can end
//! with a plain report instead of an abort.

use std::sync::Mutex;

/// The last panic's description (the hook runs on the panicking thread; the report may
/// be made on another).
static LAST: Mutex<Option<String>> = Mutex::new(None);

/// The name of the thread that runs a command (main.rs spawns it); its panics are
/// remembered instead of printed, and reported once with where they happened.
pub const COMMAND_THREAD: &str = "ferry";

/// Installs the hook (once per process; later calls do nothing).
pub fn install() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            // Only the command's own thread reports its panics itself (see main.rs);
            // any other thread's panic is also printed as Rust would.
            if std::thread::current().name() != Some(COMMAND_THREAD) {
                previous(info);
            }
            let what = info
                .payload()
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| info.payload().downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown cause".into());
            let at = info
                .location()
                .map(|l| format!("{}:{}", l.file(), l.line()))
                .unwrap_or_else(|| "an unknown place".into());
            if let Ok(mut l) = LAST.lock() {
                *l = Some(format!("{what} (at {at})"));
            }
        }));
    });
}

/// What the last panic was and where, taken (so it is reported once).
pub fn take_last() -> Option<String> {
    LAST.lock().ok().and_then(|mut l| l.take())
}

/// Describes a caught panic: the hook's record, else the payload.
pub fn describe(payload: &(dyn std::any::Any + Send)) -> String {
    take_last().unwrap_or_else(|| {
        payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown cause".into())
    })
}
