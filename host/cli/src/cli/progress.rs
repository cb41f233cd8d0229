//! Progress and log output for people (plain lines or a bar) and machines (JSON lines).

use super::args::ProgressMode;
use ferry::observer::{Event, Level, Observer};
use indicatif::{ProgressBar, ProgressStyle};
use std::cell::RefCell;
use std::io::{IsTerminal, Write};
use std::time::Instant;

/// Writes events to stderr in the chosen form.
pub struct Progress {
    mode: ProgressMode,
    bar: RefCell<Option<ProgressBar>>,
    step_started: RefCell<Option<Instant>>,
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
            step_started: RefCell::new(None),
        }
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
                if let (Event::Progress { done, total, .. }, Some(start)) =
                    (event, *self.step_started.borrow())
                {
                    let secs = start.elapsed().as_secs_f64().max(1e-9);
                    let rate = *done as f64 / secs;
                    value["rate"] = serde_json::json!(rate);
                    if let Some(t) = total {
                        value["eta_seconds"] =
                            serde_json::json!((t.saturating_sub(*done)) as f64 / rate.max(1e-9));
                    }
                }
                if let Event::StepStarted { .. } = event {
                    *self.step_started.borrow_mut() = Some(Instant::now());
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
                    *self.step_started.borrow_mut() = Some(Instant::now());
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
                    let secs = self
                        .step_started
                        .borrow()
                        .map(|s| s.elapsed().as_secs_f64())
                        .unwrap_or(0.0);
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
