//! The `ferry` binary as a process under test: started with `--progress json`, its
//! events read as they come, SIGKILLed at a chosen moment (after a delay, or right
//! after its n-th progress event, so that kills land at batch and step boundaries as
//! well as anywhere in between), or waited for.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// When to kill the process.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum KillAt {
    /// Let it finish.
    Never,
    /// This long after it was started.
    After(Duration),
    /// Once its `nth` progress event (1-based) has been read, after `then` more.
    AfterEvent { nth: usize, then: Duration },
}

/// How one run ended.
#[derive(Debug)]
pub struct Outcome {
    pub pid: u32,
    /// SIGKILL ended it (it was still running when the signal was sent).
    pub killed: bool,
    /// The exit code, if it exited on its own.
    pub code: Option<i32>,
    /// Its progress events, parsed, in order.
    pub events: Vec<serde_json::Value>,
    pub stdout: String,
    /// The lines of stderr that are not progress events.
    pub stderr: String,
    /// From start to exit.
    pub elapsed: Duration,
}

impl Outcome {
    /// Where the kill landed, from the last event the process wrote (stderr is
    /// unbuffered, so that is the last thing it did that shows): `start-up`,
    /// `REV: started, before any step`, `REV / STEP`, `REV: after STEP`, `after REV`.
    pub fn kill_site(&self) -> String {
        let Some(last) = self.events.last() else {
            return "start-up (before the first revision)".into();
        };
        let s = |k: &str| last[k].as_str().unwrap_or("?").to_string();
        match s("event").as_str() {
            "revision_started" => format!("{}: started, before any step", s("revision")),
            "step_started" | "progress" | "log" if last.get("step").is_some() => {
                format!("{} / {}", s("revision"), s("step"))
            }
            "log" => format!("{}: in a step", s("revision")),
            "step_finished" | "step_skipped" => format!("{}: after {}", s("revision"), s("step")),
            "revision_finished" => format!("after {}", s("revision")),
            other => format!("after event {other}"),
        }
    }

    /// A description for assertion messages.
    pub fn describe(&self) -> String {
        format!(
            "killed: {}, exit code {:?}, {} events\n--- stdout ---\n{}--- stderr ---\n{}",
            self.killed,
            self.code,
            self.events.len(),
            self.stdout,
            self.stderr
        )
    }
}

/// Whether `text` (a report miette rendered) says `needle`, however it wrapped the lines.
pub fn says(text: &str, needle: &str) -> bool {
    let flat = |s: &str| -> String {
        s.replace(['│', '×'], " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
    };
    flat(text).contains(&flat(needle))
}

/// A started `ferry` process whose stderr is read line by line.
pub struct Running {
    child: Child,
    started: Instant,
    lines: mpsc::Receiver<String>,
    stderr_reader: JoinHandle<()>,
    stdout_reader: JoinHandle<String>,
    events: Vec<serde_json::Value>,
    other: String,
    kill_sent: bool,
}

impl Running {
    /// Starts `cmd` (which should include `--progress json`).
    pub fn start(mut cmd: Command) -> Running {
        let started = Instant::now();
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn ferry");
        let (lines_tx, lines) = mpsc::channel::<String>();
        let stderr = child.stderr.take().expect("stderr piped");
        let stderr_reader = std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut stdout = child.stdout.take().expect("stdout piped");
        let stdout_reader = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = stdout.read_to_string(&mut s);
            s
        });
        Running {
            child,
            started,
            lines,
            stderr_reader,
            stdout_reader,
            events: Vec::new(),
            other: String::new(),
            kill_sent: false,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn events(&self) -> &[serde_json::Value] {
        &self.events
    }

    fn exited(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_some()
    }

    /// Reads what stderr has for up to `wait`.
    fn read_for(&mut self, wait: Duration) {
        match self.lines.recv_timeout(wait) {
            Ok(line) => {
                self.push(line);
                while let Ok(line) = self.lines.try_recv() {
                    self.push(line);
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(wait),
        }
    }

    fn push(&mut self, line: String) {
        match serde_json::from_str::<serde_json::Value>(&line) {
            Ok(v) if v.get("event").is_some() => self.events.push(v),
            _ => {
                self.other.push_str(&line);
                self.other.push('\n');
            }
        }
    }

    /// Waits (up to `limit`) for an event that `wanted` accepts and returns it; panics,
    /// showing the output, if the process ends first or the time runs out.
    pub fn wait_for_event(
        &mut self,
        limit: Duration,
        wanted: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let since = Instant::now();
        let mut looked = 0;
        loop {
            if let Some(e) = self.events[looked..].iter().find(|e| wanted(e)) {
                return e.clone();
            }
            looked = self.events.len();
            if self.exited() {
                // What the process wrote before it ended may still be in the pipe: read
                // it all before deciding the event never came.
                self.read_for(Duration::from_millis(200));
                if let Some(e) = self.events[looked..].iter().find(|e| wanted(e)) {
                    return e.clone();
                }
            }
            if self.exited() || since.elapsed() > limit {
                if !self.exited() {
                    self.kill();
                }
                panic!(
                    "the awaited event did not come; events: {:?}\nstderr: {}",
                    self.events, self.other
                );
            }
            self.read_for(Duration::from_millis(1));
        }
    }

    /// Sends SIGKILL.
    pub fn kill(&mut self) {
        // SAFETY: kill(2) on the pid of our own unreaped child; the pid cannot be reused.
        let rc = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGKILL) };
        assert_eq!(rc, 0, "kill {}", self.child.id());
        self.kill_sent = true;
    }

    /// Kills the process at `at` (unless it ends first), then waits for it.
    pub fn kill_at(mut self, at: KillAt) -> Outcome {
        let mut nth_seen: Option<Instant> = None;
        while !self.exited() {
            let due = match at {
                KillAt::Never => false,
                KillAt::After(d) => self.started.elapsed() >= d,
                KillAt::AfterEvent { nth, then } => match nth_seen {
                    Some(seen) => seen.elapsed() >= then,
                    None if self.events.len() >= nth => {
                        nth_seen = Some(Instant::now());
                        then.is_zero()
                    }
                    None => false,
                },
            };
            if due {
                self.kill();
                break;
            }
            self.read_for(Duration::from_micros(500));
        }
        self.finish()
    }

    /// Waits for the process to end and collects everything it wrote.
    pub fn finish(self) -> Outcome {
        let Running {
            mut child,
            started,
            lines,
            stderr_reader,
            stdout_reader,
            mut events,
            mut other,
            kill_sent,
        } = self;
        let status = child.wait().expect("wait for ferry");
        let elapsed = started.elapsed();
        stderr_reader.join().expect("stderr reader");
        let stdout = stdout_reader.join().expect("stdout reader");
        let mut rest = Running::collect(lines);
        events.append(&mut rest.0);
        other.push_str(&rest.1);
        Outcome {
            pid: child.id(),
            killed: kill_sent && status.signal() == Some(libc::SIGKILL),
            code: status.code(),
            events,
            stdout,
            stderr: other,
            elapsed,
        }
    }

    fn collect(lines: mpsc::Receiver<String>) -> (Vec<serde_json::Value>, String) {
        let mut events = Vec::new();
        let mut other = String::new();
        for line in lines.try_iter() {
            match serde_json::from_str::<serde_json::Value>(&line) {
                Ok(v) if v.get("event").is_some() => events.push(v),
                _ => {
                    other.push_str(&line);
                    other.push('\n');
                }
            }
        }
        (events, other)
    }
}

/// Runs `cmd` (which must include `--progress json`) and kills it at `at`.
pub fn run(cmd: Command, at: KillAt) -> Outcome {
    Running::start(cmd).kill_at(at)
}

/// Waits until the server has ended the session of the killed `ferry` process `pid`
/// (PostgreSQL notices a dead client only when it next reads from it, or at its
/// `client_connection_check_interval`; until then the session keeps its locks).
/// Returns how long that took, or `None` if it is still there after `limit`. Immediate
/// on SQLite, which has no server.
pub fn server_session_gone(
    conn: &mut dyn ferry::backend::Connection,
    pid: u32,
    limit: Duration,
) -> Option<Duration> {
    if conn.dialect() != ferry::backend::Dialect::Postgres {
        return Some(Duration::ZERO);
    }
    let started = Instant::now();
    loop {
        if server_session(conn, pid).is_none() {
            return Some(started.elapsed());
        }
        if started.elapsed() >= limit {
            return None;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The server process id of the PostgreSQL session of `ferry` process `pid`, if it has
/// one (`ferry HOST PID` is the application name every Ferry session sets).
pub fn server_session(conn: &mut dyn ferry::backend::Connection, pid: u32) -> Option<i64> {
    let rows = conn
        .query(
            "SELECT pid::int8 FROM pg_stat_activity WHERE application_name LIKE ?",
            &[ferry::backend::Value::Text(format!("ferry % {pid}"))],
        )
        .expect("read pg_stat_activity");
    rows.rows.first().and_then(|r| match r[0] {
        ferry::backend::Value::Int(p) => Some(p),
        _ => None,
    })
}
