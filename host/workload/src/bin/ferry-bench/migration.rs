//! The migration benchmark (issue 6): registry v1 at size N (not timed), then on copies
//! of the same data
//!
//! - the scripted migration, `ferry upgrade datasets-uuid-1.0.0` run by the real binary
//!   over the project's `scripts/` and `plugins/` (ledger, steps and batch checkpoints
//!   included), with `--progress json` giving the time of each step;
//! - the native migration (`ferry-bench native`, see `native/`);
//! - on PostgreSQL, the scripted migration again with `--jobs 1` (its table steps one
//!   after another on one connection), beside the default (up to `jobs` table steps at
//!   once on pooled connections), with the ratio of the two and of the default to the
//!   native peer, the server's settings, and the WAL each run made the server write and
//!   the checkpoints begun meanwhile;
//! - optionally the scripted migration again with one checkpoint per step
//!   (`--set datasets.uuid_batch_size=` more than N), for the cost of batch checkpoints;
//!
//! each in its own process, timed and measured from outside, each end state checked with
//! `ferry_workload::check_v2`.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use ferry_workload::{check_v2, Scale, Snapshot};

use crate::process::{self, Measured};
use crate::report::{self, megabytes, rate, ratio, seconds, Table};
use crate::target::{self, Database, Scratch};
use crate::{Backend, Env, Source};

const TARGET: &str = "datasets-uuid-1.0.0";

/// One migration run and what the checker found.
struct Run {
    label: &'static str,
    measured: Measured,
    /// Steps (scripted) or phases (native) with their seconds.
    parts: Vec<(String, f64)>,
    problems: Vec<String>,
    /// What the server wrote during the run (PostgreSQL).
    server: Option<ServerWork>,
}

/// The server's WAL (bytes) and checkpoints begun, the whole cluster's, and the busy CPU
/// time of this whole machine: as counted at one moment ([`server_counters`]), or over
/// one run ([`server_work`]). A checkpoint the run's WAL forces (about every half
/// `max_wal_size`) competes with the run for the cores and the disk. Runs of the same
/// code show the same WAL here, yet take different times: when the checkpoint's writes
/// land, which these counters do not show, is what varies. The machine's CPU time
/// (client, server, kernel, when the server runs here) varies much less than the wall
/// time, so it shows a change in the work done where a few runs' wall times cannot.
struct ServerWork {
    wal_bytes: i64,
    checkpoints: i64,
    machine_busy: Option<f64>,
}

/// The whole machine's busy CPU time so far, in seconds summed over its cores (Linux's
/// `/proc/stat`: user, nice, system, irq, softirq and steal); `None` elsewhere.
fn machine_busy_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let ticks: Vec<u64> = stat
        .lines()
        .next()?
        .strip_prefix("cpu ")?
        .split_whitespace()
        .filter_map(|v| v.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal …
    let busy: u64 = [0, 1, 2, 5, 6, 7]
        .iter()
        .filter_map(|&i| ticks.get(i))
        .sum();
    // SAFETY: sysconf reads a constant of the system and has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (per_second > 0).then(|| busy as f64 / per_second as f64)
}

/// The server's WAL position in bytes and the checkpoints it has begun so far, on
/// PostgreSQL: a run's [`ServerWork`] is the difference of two readings.
fn server_counters(db: &Database) -> Result<Option<ServerWork>, String> {
    let Database::Postgres(_) = db else {
        return Ok(None);
    };
    let mut conn = target::connect(&db.url())?;
    let rows = conn
        .query(
            "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint, \
             (checkpoints_timed + checkpoints_req)::bigint FROM pg_stat_bgwriter",
            &[],
        )
        .map_err(|e| format!("reading the server's WAL position: {e}"))?;
    match rows.rows.first().map(|r| r.as_slice()) {
        Some([ferry::backend::Value::Int(wal), ferry::backend::Value::Int(n)]) => {
            Ok(Some(ServerWork {
                wal_bytes: *wal,
                checkpoints: *n,
                machine_busy: machine_busy_seconds(),
            }))
        }
        other => Err(format!("unexpected WAL position row: {other:?}")),
    }
}

/// What the server did between two readings of [`server_counters`].
fn server_work(before: Option<ServerWork>, after: Option<ServerWork>) -> Option<ServerWork> {
    let (before, after) = (before?, after?);
    Some(ServerWork {
        wal_bytes: after.wal_bytes - before.wal_bytes,
        checkpoints: after.checkpoints - before.checkpoints,
        machine_busy: after
            .machine_busy
            .zip(before.machine_busy)
            .map(|(a, b)| a - b),
    })
}

impl Run {
    fn wall(&self) -> f64 {
        self.measured.wall.as_secs_f64()
    }

    fn part(&self, name: &str) -> Option<f64> {
        self.parts.iter().find(|(p, _)| p == name).map(|(_, s)| *s)
    }
}

struct BackendResult {
    backend: Backend,
    runs: Vec<Run>,
    batches: u64,
    /// The server's settings that bear on the figures (PostgreSQL).
    settings: Vec<(String, String)>,
}

/// The PostgreSQL settings printed with the figures.
const SERVER_SETTINGS: [&str; 8] = [
    "server_version",
    "max_worker_processes",
    "max_parallel_workers",
    "shared_buffers",
    "work_mem",
    "maintenance_work_mem",
    "synchronous_commit",
    "ssl",
];

fn server_settings(url: &str) -> Result<Vec<(String, String)>, String> {
    let mut conn = target::connect(url)?;
    SERVER_SETTINGS
        .iter()
        .map(|name| {
            let rows = conn
                .query(&format!("SHOW {name}"), &[])
                .map_err(|e| e.to_string())?;
            let value = rows
                .rows
                .first()
                .and_then(|r| r.first())
                .map(|v| match v {
                    ferry::backend::Value::Text(t) => t.clone(),
                    other => other.to_string(),
                })
                .unwrap_or_default();
            Ok((name.to_string(), value))
        })
        .collect()
}

pub fn run(
    env: &Env,
    backends: &[Backend],
    n: u64,
    seed: u64,
    checkpoint_cost: bool,
    source: Source,
) -> Result<(), String> {
    let scale = Scale::new(n).map_err(|e| e.to_string())?;
    let made_by = match source {
        Source::Ferry => format!("seed {seed}"),
        Source::Foreign => "v1 from tests/fixtures/foreign_v1, adopted".to_string(),
    };
    println!(
        "\n== migration benchmark: N = {n} datasets ({made_by}); {}",
        report::machine()
    );
    let mut results = Vec::new();
    let mut failures = Vec::new();
    for &backend in backends {
        match one_backend(env, backend, scale, seed, checkpoint_cost, source) {
            Ok(r) => results.push(r),
            Err(e) => failures.push(format!("{}: {e}", backend.name())),
        }
    }
    print_results(&results, n);
    println!("(finished with {})", report::load());
    for r in &results {
        for run in &r.runs {
            for p in &run.problems {
                failures.push(format!(
                    "{} {}: end state breaks a v2 rule: {p}",
                    r.backend.name(),
                    run.label
                ));
            }
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

fn sample(env: &Env, repo: &Path, db: &Database, scale: Scale, seed: u64) -> Result<(), String> {
    let ferry = target::ferry_binary(env)?;
    let mut cmd =
        Command::new(ferry.with_file_name(format!("ferry-sample{}", std::env::consts::EXE_SUFFIX)));
    cmd.current_dir(repo)
        .arg("--db")
        .arg(db.url())
        .arg("--n")
        .arg(scale.n.to_string())
        .arg("--seed")
        .arg(seed.to_string());
    process::run(cmd)?.success("ferry-sample")?;
    Ok(())
}

/// Registry v1 made without Ferry's code: `tests/fixtures/foreign_v1/make_v1.sh`, then
/// `ferry adopt` to record the trees' revisions from `butler_attributes`.
fn foreign(env: &Env, repo: &Path, db: &Database, scale: Scale) -> Result<(), String> {
    let mut cmd = Command::new("bash");
    cmd.arg(repo.join("tests/fixtures/foreign_v1/make_v1.sh"));
    match db {
        Database::Sqlite { path } => {
            cmd.arg("sqlite").arg(path);
        }
        Database::Postgres(schema) => {
            cmd.arg("postgres").arg(&env.pg_url).arg(&schema.name);
        }
    }
    cmd.arg(scale.n.to_string());
    process::run(cmd)?.success("make_v1.sh")?;
    let mut adopt = Command::new(target::ferry_binary(env)?);
    adopt
        .current_dir(repo)
        .arg("--db")
        .arg(db.url())
        .arg("adopt");
    process::run(adopt)?.success("ferry adopt")?;
    Ok(())
}

/// Registry v1 at `scale` from `source` in the empty database `db`.
fn make_v1(
    env: &Env,
    repo: &Path,
    db: &Database,
    scale: Scale,
    seed: u64,
    source: Source,
) -> Result<(), String> {
    match source {
        Source::Ferry => sample(env, repo, db, scale, seed),
        Source::Foreign => foreign(env, repo, db, scale),
    }
}

fn one_backend(
    env: &Env,
    backend: Backend,
    scale: Scale,
    seed: u64,
    checkpoint_cost: bool,
    source: Source,
) -> Result<BackendResult, String> {
    let repo = target::repo(env)?;
    let ferry = target::ferry_binary(env)?;
    let scratch = Scratch::new(env, &format!("migration-{}", backend.name()))?;
    // The native migration rewrites Ferry's own v1 DDL text (SQLite) and its own kind of
    // sequences (PostgreSQL); on a repository from other SQL it has no baseline to offer.
    let mut labels = match source {
        Source::Ferry => vec!["scripted", "native"],
        Source::Foreign => {
            eprintln!(
                "{}: native skipped: it is written for the v1 DDL of Ferry's generator",
                backend.name()
            );
            vec!["scripted"]
        }
    };
    if backend == Backend::Postgres {
        labels.insert(1, "scripted_jobs1");
        if source == Source::Ferry {
            labels.push("pure_sql");
        }
    }
    if checkpoint_cost {
        labels.push("scripted_single");
    }
    eprintln!(
        "{}: creating registry v1 at N = {} ...",
        backend.name(),
        scale.n
    );
    let databases: Vec<Database> = match backend {
        Backend::Sqlite => {
            let v1 = Database::fresh(env, backend, &scratch, "v1")?;
            make_v1(env, &repo, &v1, scale, seed, source)?;
            let Database::Sqlite { path } = &v1 else {
                unreachable!()
            };
            labels
                .iter()
                .map(|label| {
                    let copy = scratch.path.join(format!("{label}.sqlite"));
                    std::fs::copy(path, &copy).map_err(|e| e.to_string())?;
                    // On disk before any run starts, so that no run pays for writing
                    // back another's copy.
                    std::fs::File::open(&copy)
                        .and_then(|f| f.sync_all())
                        .map_err(|e| e.to_string())?;
                    Ok(Database::Sqlite { path: copy })
                })
                .collect::<Result<_, String>>()?
        }
        // The same seed (or the same SQL) gives the same rows in every schema.
        Backend::Postgres => labels
            .iter()
            .map(|label| {
                let db = Database::fresh(env, backend, &scratch, label)?;
                make_v1(env, &repo, &db, scale, seed, source)?;
                Ok(db)
            })
            .collect::<Result<_, String>>()?,
    };
    eprintln!("{}: taking the v1 snapshot ...", backend.name());
    let snapshot = {
        let mut conn = target::connect(&databases[0].url())?;
        Snapshot::take(conn.as_mut()).map_err(|e| e.to_string())?
    };
    let mut runs = Vec::new();
    for (label, db) in labels.iter().zip(&databases) {
        settle(db)?;
        let counters = server_counters(db)?;
        eprintln!("{}: running {label} ...", backend.name());
        let measured = match *label {
            "native" | "pure_sql" => {
                let mut cmd = Command::new(target::bench_binary()?);
                cmd.arg("native")
                    .arg("--backend")
                    .arg(backend.name())
                    .arg("--db")
                    .arg(db.url());
                if *label == "pure_sql" {
                    cmd.arg("--sql-script");
                }
                process::run(cmd)?
            }
            _ => {
                let mut cmd = Command::new(&ferry);
                cmd.current_dir(&repo)
                    .arg("--db")
                    .arg(db.url())
                    .arg("--progress")
                    .arg("json");
                if *label == "scripted_jobs1" {
                    cmd.arg("--jobs").arg("1");
                }
                if *label == "scripted_single" {
                    cmd.arg("--set")
                        .arg(format!("datasets.uuid_batch_size={}", scale.n + 1));
                }
                cmd.arg("upgrade").arg(TARGET);
                process::run(cmd)?
            }
        }
        .success(label)?;
        let server = server_work(counters, server_counters(db)?);
        let parts = if *label == "native" || *label == "pure_sql" {
            native_phases(&measured.stdout)
        } else {
            scripted_steps(&measured.stderr)
        };
        eprintln!("{}: checking the {label} end state ...", backend.name());
        let problems = {
            let mut conn = target::connect(&db.url())?;
            check_v2(conn.as_mut(), &snapshot).err().unwrap_or_default()
        };
        runs.push(Run {
            label,
            measured,
            parts,
            problems,
            server,
        });
    }
    let batches = runs
        .iter()
        .find(|r| r.label == "scripted")
        .map(|r| batches_run(&r.measured.stderr, "map dataset ids"))
        .unwrap_or(0);
    let settings = match backend {
        Backend::Postgres => server_settings(&databases[0].url())?,
        Backend::Sqlite => Vec::new(),
    };
    Ok(BackendResult {
        backend,
        runs,
        batches,
        settings,
    })
}

/// Before a timed run on PostgreSQL: a `CHECKPOINT`, so that no run starts with the
/// dirty buffers and the WAL of making the databases or of the run before it (the
/// server would write them out during the run, as a checkpoint the WAL forces). SQLite
/// copies are on disk already (see `one_backend`).
fn settle(db: &Database) -> Result<(), String> {
    if let Database::Postgres(_) = db {
        let mut conn = target::connect(&db.url())?;
        conn.execute("CHECKPOINT", &[]).map_err(|e| {
            format!("CHECKPOINT before a timed run (needs a superuser or pg_checkpoint): {e}")
        })?;
    }
    Ok(())
}

/// Step durations from `--progress json` lines, timed as they arrived.
pub fn scripted_steps(stderr: &[(Duration, String)]) -> Vec<(String, f64)> {
    let mut started: Vec<(String, Duration)> = Vec::new();
    let mut steps = Vec::new();
    for (at, line) in stderr {
        let Ok(event) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let step = event["step"].as_str().unwrap_or_default().to_string();
        match event["event"].as_str() {
            Some("step_started") => started.push((step, *at)),
            Some("step_finished") => {
                if let Some(i) = started.iter().position(|(s, _)| *s == step) {
                    let (_, t0) = started.remove(i);
                    steps.push((step, (*at - t0).as_secs_f64()));
                }
            }
            _ => {}
        }
    }
    steps
}

/// How many batches of `step` committed (its `progress` events).
fn batches_run(stderr: &[(Duration, String)], step: &str) -> u64 {
    stderr
        .iter()
        .filter_map(|(_, l)| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|e| e["event"] == "progress" && e["step"] == step)
        .count() as u64
}

pub fn native_phases(stdout: &str) -> Vec<(String, f64)> {
    stdout
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| Some((v["phase"].as_str()?.to_string(), v["seconds"].as_f64()?)))
        .collect()
}

fn print_results(results: &[BackendResult], n: u64) {
    let mut main = Table::new(
        format!("int -> UUID migration, N = {n}: wall time of the migration process alone"),
        &[
            "backend",
            "implementation",
            "wall s",
            "datasets/s",
            "peak RSS MB",
            "scripted/native",
            "CPU s",
            "written MB",
            "v2 check",
        ],
    );
    for r in results {
        let native = r.runs.iter().find(|x| x.label == "native");
        for run in &r.runs {
            let vs = match (run.label, native) {
                ("native" | "pure_sql", _) | (_, None) => "-".to_string(),
                (_, Some(nat)) => ratio(run.wall(), nat.wall()),
            };
            main.row(vec![
                r.backend.name().into(),
                match run.label {
                    "scripted" => "scripted (ferry upgrade)".into(),
                    "scripted_single" => "scripted, one checkpoint per step".into(),
                    "scripted_jobs1" => "scripted, --jobs 1".into(),
                    "pure_sql" => "pure SQL script (server-side)".into(),
                    other => other.into(),
                },
                seconds(run.wall()),
                rate(n, run.wall()),
                megabytes(run.measured.peak_rss),
                vs,
                seconds(run.measured.cpu.as_secs_f64()),
                megabytes(run.measured.written),
                if run.problems.is_empty() {
                    "ok".into()
                } else {
                    format!("{} problems", run.problems.len())
                },
            ]);
        }
    }
    main.print();

    for r in results {
        let mut parts = Table::new(
            format!("where the time goes, {} N = {n}", r.backend.name()),
            &["implementation", "step / phase", "s", "share"],
        );
        for run in r.runs.iter().filter(|x| x.label != "scripted_single") {
            for (name, s) in &run.parts {
                parts.row(vec![
                    run.label.into(),
                    name.clone(),
                    seconds(*s),
                    format!("{:.0} %", 100.0 * s / run.wall().max(1e-9)),
                ]);
            }
        }
        parts.print();
    }

    let mut parallel = Table::new(
        format!(
            "parallel table steps, N = {n}: default --jobs vs --jobs 1 vs the pure-SQL \
             script (goals: default <= 0.75 x --jobs 1, <= 0.8 x pure SQL)"
        ),
        &[
            "backend",
            "default wall s",
            "--jobs 1 wall s",
            "pure SQL wall s",
            "native wall s",
            "default / --jobs 1",
            "default / pure SQL",
            "default / native",
        ],
    );
    for r in results {
        let wall = |label: &str| r.runs.iter().find(|x| x.label == label).map(Run::wall);
        let (Some(default), Some(one)) = (wall("scripted"), wall("scripted_jobs1")) else {
            continue;
        };
        let show = |v: Option<f64>| v.map(seconds).unwrap_or_else(|| "-".into());
        let versus = |v: Option<f64>| {
            v.map(|v| format!("{:.2}", default / v))
                .unwrap_or_else(|| "-".into())
        };
        parallel.row(vec![
            r.backend.name().into(),
            seconds(default),
            seconds(one),
            show(wall("pure_sql")),
            show(wall("native")),
            format!("{:.2}", default / one),
            versus(wall("pure_sql")),
            versus(wall("native")),
        ]);
    }
    parallel.print();

    let mut server = Table::new(
        format!(
            "server work per run, N = {n}: WAL written and checkpoints begun (whole cluster), \
             busy CPU of this machine (all cores)"
        ),
        &[
            "backend",
            "implementation",
            "wall s",
            "WAL MB",
            "checkpoints",
            "machine CPU s",
        ],
    );
    for r in results {
        for run in &r.runs {
            let Some(work) = &run.server else { continue };
            server.row(vec![
                r.backend.name().into(),
                run.label.into(),
                seconds(run.wall()),
                format!("{:.1}", work.wal_bytes as f64 / 1e6),
                work.checkpoints.to_string(),
                work.machine_busy
                    .map_or_else(|| "n/a".into(), |s| format!("{s:.2}")),
            ]);
        }
    }
    if results
        .iter()
        .any(|r| r.runs.iter().any(|x| x.server.is_some()))
    {
        server.print();
    }
    for r in results.iter().filter(|r| !r.settings.is_empty()) {
        let shown: Vec<String> = r
            .settings
            .iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        println!("{} server: {}", r.backend.name(), shown.join(", "));
    }

    let mut cost = Table::new(
        format!(
            "checkpoint cost, N = {n}: batch checkpoints (default size) vs one checkpoint per step"
        ),
        &[
            "backend",
            "batches",
            "wall s",
            "map step s",
            "one checkpoint: wall s",
            "map step s",
            "overhead (wall)",
        ],
    );
    for r in results {
        let (Some(batched), Some(single)) = (
            r.runs.iter().find(|x| x.label == "scripted"),
            r.runs.iter().find(|x| x.label == "scripted_single"),
        ) else {
            continue;
        };
        let step = "map dataset ids";
        let show = |v: Option<f64>| v.map(seconds).unwrap_or_else(|| "-".into());
        cost.row(vec![
            r.backend.name().into(),
            r.batches.to_string(),
            seconds(batched.wall()),
            show(batched.part(step)),
            seconds(single.wall()),
            show(single.part(step)),
            format!("{:+.1} %", 100.0 * (batched.wall() / single.wall() - 1.0)),
        ]);
    }
    cost.print();
}

#[cfg(test)]
mod tests {
    use super::machine_busy_seconds;
    use std::time::{Duration, Instant};

    /// The machine's CPU time counts this process's own work (on Linux, where it is read).
    #[test]
    #[cfg(target_os = "linux")]
    fn machine_busy_time_grows_with_work_done() {
        let before = machine_busy_seconds().expect("/proc/stat is readable on Linux");
        let start = Instant::now();
        let mut x = 0u64;
        while start.elapsed() < Duration::from_millis(300) {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
        }
        let after = machine_busy_seconds().unwrap();
        // 0.3 s of one core's work, counted in ticks of 10 ms; other processes only add.
        assert!(after - before >= 0.2, "{before} -> {after}");
    }
}
