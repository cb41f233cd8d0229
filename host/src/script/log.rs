//! The `log::` capability: log lines and progress, routed to the host's observer.

use super::session::SharedSession;
use crate::observer::{Event, Level};
use rhai::Module;

/// Sends one log line (also used for `print` and `debug`).
pub fn emit(session: &SharedSession, level: Level, message: &str) {
    // The session may be busy (inside db.each); the observer is shared, so log anyway.
    let (revision, observer) = match session.try_borrow() {
        Ok(s) => (s.revision_id(), s.observer.clone()),
        Err(_) => return,
    };
    observer.event(&Event::Log {
        revision,
        level,
        message: message.to_string(),
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
