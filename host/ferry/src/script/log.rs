//! The `log::` capability: log lines and progress, routed to the host's observer.

use super::session::SharedSession;
use crate::observer::{Event, Level};
use rhai::Module;

/// Sends one log line (also used for `print` and `debug`).
pub fn emit(session: &SharedSession, level: Level, message: &str) {
    // The session may be busy (inside db.each); the observer is shared, so log anyway.
    let Ok(s) = session.try_borrow() else {
        return;
    };
    // Output is capped per run (limits.max_output_bytes): a loop that prints would
    // otherwise write gigabytes. Past the cap, one notice, then nothing.
    let size = message.len() as u64;
    let remaining = s.output_left.get();
    if remaining == 0 {
        return;
    }
    let (level, message) = if size < remaining {
        s.output_left.set(remaining - size);
        (level, message.to_string())
    } else {
        s.output_left.set(0);
        (
            Level::Warn,
            "output limit reached (limits.max_output_bytes): further print, debug and log \
             output of this run is dropped"
                .to_string(),
        )
    };
    let (revision, observer) = (s.revision_id(), s.observer.clone());
    drop(s);
    observer.event(&Event::Log {
        revision,
        level,
        message,
    });
}

pub fn module(session: SharedSession) -> Module {
    let mut m = Module::new();
    // `debug` is a keyword in Rhai (`log::debug` does not parse): scripts log at debug
    // level with the built-in `debug(text)`, which the engine routes here too.
    for (name, level) in [
        ("verbose", Level::Debug),
        ("info", Level::Info),
        ("warn", Level::Warn),
        ("error", Level::Error),
    ] {
        let s = session.clone();
        m.set_native_fn(name, move |msg: &str| {
            emit(&s, level, msg);
            Ok(())
        });
    }
    let s = session.clone();
    m.set_native_fn("progress", move |step: &str, done: i64, total: i64| {
        if let Ok(s) = s.try_borrow() {
            s.emit(Event::Progress {
                revision: s.revision_id(),
                step: step.to_string(),
                done: done.max(0) as u64,
                total: (total > 0).then_some(total as u64),
            });
        }
        Ok(())
    });
    m
}
