//! Runs a child process and measures it from outside: wall time, and its own peak
//! resident memory from `wait4`'s `ru_maxrss`.
//!
//! Linux carries `ru_maxrss` across `exec`: a child forked from a big process starts
//! with the parent's resident size as its high-water mark. So the benchmark (which holds
//! large snapshots) does not fork the measured program itself: it starts a fresh copy of
//! itself (`ferry-bench measure`, a few MB resident) that spawns the program, reaps it
//! with `wait4` and writes the exit code and peak RSS to a file. The figure is then the
//! program's own peak (at least the launcher's few MB).

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// What a finished child did.
#[derive(Debug, Clone)]
pub struct Measured {
    pub wall: Duration,
    /// Peak resident set size in bytes.
    pub peak_rss: u64,
    /// CPU time of the process itself (user + system), not of a database server.
    pub cpu: Duration,
    /// Bytes the process wrote to storage (`ru_oublock`; page-cache writes it caused).
    pub written: u64,
    pub exit_code: i32,
    pub stdout: String,
    /// Each stderr line with the time it arrived, counted from the start.
    pub stderr: Vec<(Duration, String)>,
}

impl Measured {
    pub fn stderr_text(&self) -> String {
        self.stderr
            .iter()
            .map(|(_, l)| l.as_str())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Fails with the command's output when it did not exit 0.
    pub fn success(self, what: &str) -> Result<Measured, String> {
        if self.exit_code == 0 {
            Ok(self)
        } else {
            Err(format!(
                "{what} exited {}:\n{}\n{}",
                self.exit_code,
                self.stdout,
                self.stderr_text()
            ))
        }
    }
}

/// Runs `command` to its end through the `measure` launcher.
pub fn run(command: Command) -> Result<Measured, String> {
    let shown = format!("{command:?}");
    let report = std::env::temp_dir().join(format!(
        "ferry-bench-rusage-{}-{}",
        std::process::id(),
        uuid::Uuid::new_v4().simple()
    ));
    let mut launcher = Command::new(crate::target::bench_binary()?);
    launcher
        .arg("measure")
        .arg("--report")
        .arg(&report)
        .arg("--");
    launcher.arg(command.get_program()).args(command.get_args());
    if let Some(dir) = command.get_current_dir() {
        launcher.current_dir(dir);
    }
    for (key, value) in command.get_envs() {
        match value {
            Some(v) => launcher.env(key, v),
            None => launcher.env_remove(key),
        };
    }
    let mut measured = spawn(launcher, &shown)?;
    let text = std::fs::read_to_string(&report)
        .map_err(|e| format!("{shown}: no report from the launcher ({e})"))?;
    let _ = std::fs::remove_file(&report);
    let fields: Vec<i64> = text
        .split_whitespace()
        .map(|f| f.parse::<i64>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("{shown}: unreadable launcher report {text:?}"))?;
    let [code, rss, cpu_us, written] = fields[..] else {
        return Err(format!("{shown}: unreadable launcher report {text:?}"));
    };
    measured.exit_code = code as i32;
    measured.peak_rss = rss.max(0) as u64;
    measured.cpu = Duration::from_micros(cpu_us.max(0) as u64);
    measured.written = written.max(0) as u64;
    Ok(measured)
}

/// `ferry-bench measure --report FILE -- PROGRAM ARGS...`: runs the program with this
/// process's stdio, then writes `EXIT_CODE PEAK_RSS_BYTES CPU_MICROSECONDS WRITTEN_BYTES`
/// to FILE.
pub fn measure(report: &std::path::Path, command: &[std::ffi::OsString]) -> Result<(), String> {
    let (program, args) = command
        .split_first()
        .ok_or_else(|| "measure: no command".to_string())?;
    let child = Command::new(program)
        .args(args)
        .spawn()
        .map_err(|e| format!("cannot start {program:?}: {e}"))?;
    let usage = wait_with_rusage(child.id())?;
    std::fs::write(
        report,
        format!(
            "{} {} {} {}\n",
            usage.code,
            usage.peak_rss,
            usage.cpu.as_micros(),
            usage.written
        ),
    )
    .map_err(|e| e.to_string())
}

fn spawn(mut command: Command, shown: &str) -> Result<Measured, String> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err_reader = std::thread::spawn(move || {
        BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
            .map(|line| (start.elapsed(), line))
            .collect::<Vec<_>>()
    });
    let usage = wait_with_rusage(child.id())?;
    let wall = start.elapsed();
    drop(child);
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    Ok(Measured {
        wall,
        peak_rss: usage.peak_rss,
        cpu: usage.cpu,
        written: usage.written,
        exit_code: usage.code,
        stdout,
        stderr,
    })
}

/// What `wait4` says about a reaped child.
struct Usage {
    /// The exit code, 128 + the signal if killed.
    code: i32,
    peak_rss: u64,
    cpu: Duration,
    written: u64,
}

/// Reaps the child with `wait4`.
fn wait_with_rusage(pid: u32) -> Result<Usage, String> {
    let mut status: libc::c_int = 0;
    // SAFETY: rusage is plain data; wait4 fills it for the child we spawned.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        // SAFETY: pid is our own child, status and usage are valid for writes.
        let r = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if r == pid as libc::pid_t {
            break;
        }
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(format!("wait4: {e}"));
        }
    }
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        -1
    };
    let time = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec.max(0) as u64) + Duration::from_micros(t.tv_usec.max(0) as u64)
    };
    Ok(Usage {
        code,
        // ru_maxrss is in kilobytes on Linux; ru_oublock counts 512-byte blocks.
        peak_rss: usage.ru_maxrss.max(0) as u64 * 1024,
        cpu: time(usage.ru_utime) + time(usage.ru_stime),
        written: usage.ru_oublock.max(0) as u64 * 512,
    })
}
