//! Progress and log output for people (plain lines or a bar) and machines (JSON lines).

use super::args::ProgressMode;
use ferry::observer::{Event, Level, Observer};
use indicatif::{ProgressBar, ProgressStyle};
use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Writes events to stderr in the chosen form.
pub struct Progress {
    mode: ProgressMode,
    bar: RefCell<Option<ProgressBar>>,
    /// When each running step started, by name: parallel table steps overlap, so each
    /// step's time is measured from its own start.
    step_started: RefCell<BTreeMap<String, Instant>>,
}

impl Progress {
    pub fn new(mode: ProgressMode) -> Progress {
        let mode = match mode {
            ProgressMode::Auto if std::io::stderr().is_terminal() => ProgressMode::Auto,
            ProgressMode::Auto => ProgressMode::Plain,
            other => other,
        };
        Progress {
            mode,
            bar: RefCell::new(None),
            step_started: RefCell::new(BTreeMap::new()),
        }
    }

    fn started(&self, step: &str) {
        self.step_started
            .borrow_mut()
            .insert(step.to_string(), Instant::now());
    }

    /// Seconds since `step` started (0 if its start was not seen).
    fn seconds_since_start(&self, step: &str) -> f64 {
        self.step_started
            .borrow()
            .get(step)
            .map(|s| s.elapsed().as_secs_f64())
            .unwrap_or(0.0)
    }

    /// Seconds `step` ran, now that it finished (0 if its start was not seen).
    fn finished(&self, step: &str) -> f64 {
        self.step_started
            .borrow_mut()
            .remove(step)
            .map_or(0.0, |s| s.elapsed().as_secs_f64())
    }

    fn line(&self, text: &str) {
        match self.bar.borrow().as_ref() {
            Some(bar) => bar.println(text),
            None => eprintln!("{text}"),
        }
    }

    fn finish_bar(&self) {
        if let Some(bar) = self.bar.borrow_mut().take() {
            bar.finish_and_clear();
        }
    }
}

impl Observer for Progress {
    fn event(&self, event: &Event) {
        match self.mode {
            ProgressMode::None => {}
            ProgressMode::Json => {
                let mut value = serde_json::to_value(event).unwrap_or_default();
                if let Event::Progress {
                    step, done, total, ..
                } = event
                {
                    let secs = self.seconds_since_start(step).max(1e-9);
                    let rate = *done as f64 / secs;
                    value["rate"] = serde_json::json!(rate);
                    if let Some(t) = total {
                        value["eta_seconds"] =
                            serde_json::json!((t.saturating_sub(*done)) as f64 / rate.max(1e-9));
                    }
                }
                match event {
                    Event::StepStarted { step, .. } => self.started(step),
                    Event::StepFinished { step, .. } => {
                        self.finished(step);
                    }
                    _ => {}
                }
                let mut out = std::io::stderr().lock();
                let _ = writeln!(out, "{value}");
            }
            ProgressMode::Plain | ProgressMode::Auto => match event {
                Event::RevisionStarted {
                    revision,
                    direction,
                } => self.line(&format!("{direction} {revision} ...")),
                Event::RevisionFinished {
                    revision,
                    outcome,
                    duration_ms,
                    rows,
                    ..
                } => {
                    self.finish_bar();
                    self.line(&format!(
                        "{revision}: {outcome} in {:.2}s ({rows} rows)",
                        *duration_ms as f64 / 1000.0
                    ))
                }
                Event::StepStarted { step, total, .. } => {
                    self.started(step);
                    self.line(&format!("  step {step:?}"));
                    if self.mode == ProgressMode::Auto {
                        if let Some(t) = total {
                            let bar = ProgressBar::new(*t);
                            bar.set_style(
                                ProgressStyle::with_template(
                                    "  {bar:40} {pos}/{len} {per_sec} eta {eta}",
                                )
                                .unwrap_or_else(|_| ProgressStyle::default_bar()),
                            );
                            *self.bar.borrow_mut() = Some(bar);
                        }
                    }
                }
                Event::StepSkipped { step, .. } => {
                    self.line(&format!("  step {step:?} already done, skipped"))
                }
                Event::StepFinished { step, rows, .. } => {
                    self.finish_bar();
                    let secs = self.finished(step);
                    self.line(&format!("  step {step:?} done in {secs:.2}s ({rows} rows)"))
                }
                Event::Progress {
                    step, done, total, ..
                } => {
                    if let Some(bar) = self.bar.borrow().as_ref() {
                        bar.set_position(*done);
                        return;
                    }
                    let of = total.map(|t| format!("/{t}")).unwrap_or_default();
                    self.line(&format!("  step {step:?}: {done}{of}"));
                }
                Event::Log { level, message, .. } => {
                    let tag = match level {
                        Level::Debug => "debug",
                        Level::Info => "info",
                        Level::Warn => "warning",
                        Level::Error => "error",
                    };
                    self.line(&format!("  [{tag}] {message}"))
                }
                Event::LockWaiting { holder } => {
                    self.line(&format!("waiting for the migration lock held by {holder}"))
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    /// Two steps that overlap (parallel table steps): each one's time runs from its own
    /// start, not from the start of the step that began last.
    #[test]
    fn overlapping_steps_are_timed_from_their_own_start() {
        let progress = Progress::new(ProgressMode::None);
        progress.started("rewrite dataset");
        std::thread::sleep(Duration::from_millis(120));
        progress.started("rewrite file_datastore_records");
        let first = progress.finished("rewrite dataset");
        assert!(first >= 0.12, "rewrite dataset: {first} s");
        std::thread::sleep(Duration::from_millis(30));
        let second = progress.finished("rewrite file_datastore_records");
        assert!(second >= 0.03, "rewrite file_datastore_records: {second} s");
        assert_eq!(progress.finished("never started"), 0.0);
    }
}
