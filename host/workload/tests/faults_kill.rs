//! Kill at any moment: the real `ferry upgrade` of the reference repository
//! (WORKLOAD.md) is SIGKILLed at seeded random moments and rerun until it is done, on
//! SQLite and PostgreSQL. After every kill the repository must be usable and its ledger
//! must agree with its schema; at the end the WORKLOAD.md v2 rules must hold, every
//! revision must be applied once, and everything else must be as an uninterrupted run
//! leaves it.
//!
//! Each round starts from a fresh v1 repository and has two phases: `ferry upgrade
//! datasets-uuid-1.0.0` (the int → UUID migration, with small batches so that it spans
//! many of them), checked with `ferry_workload::check_v2`; then `ferry upgrade` to the
//! heads (with non-transactional `CREATE INDEX CONCURRENTLY` steps on PostgreSQL). A
//! first round without kills measures each phase's duration and number of progress
//! events; a kill then falls either at a random delay within the first half of that
//! duration or right after a random one of the first half of those events (each rerun
//! resumes, so kills land across the whole run), at batch and step boundaries as well as
//! inside them. Rounds repeat until FERRY_KILLS kills have been delivered. The seed is
//! printed; see docs/RELIABILITY.md for the knobs. Each backend runs twice: on a
//! repository from Ferry's generator, and on one made without Ferry
//! (`tests/fixtures/foreign_v1`, adopted), with FERRY_FOREIGN_KILLS kills (default 5).

#[path = "../../cli/tests/common/mod.rs"]
mod common;
mod fault_support;
mod reference_support;

use common::{Backend, TestDb};
use fault_support::invariants::{self, LedgerView, MapProgress};
use fault_support::process::{self, KillAt, Outcome};
use fault_support::reference::{self, V1Maker, UUID_REVISION};
use fault_support::settings::{self, Dice, KillSettings};
use fault_support::tables::{self, Contents};
use ferry_workload::Snapshot;
use reference_support::foreign::Source;
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// The tables `ferry upgrade` to the heads changes after v2; every other table must
/// come out of that phase exactly as it went in.
const CHANGED_AFTER_V2: [&str; 4] = ["amplifier", "butler_attributes", "collection", "detector"];

/// Kills delivered in one phase of one round before it is let finish, so that a step
/// longer than the kill window cannot keep a round going for ever.
const KILLS_PER_PHASE: usize = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// `ferry upgrade datasets-uuid-1.0.0`.
    ToV2,
    /// `ferry upgrade` (every head).
    ToHeads,
}

/// An uninterrupted run of a phase: how long it took and how many events it wrote.
#[derive(Debug, Clone, Copy)]
struct Calibration {
    duration: Duration,
    events: usize,
}

/// What an uninterrupted run to the heads leaves behind, to compare killed runs with.
struct Expected {
    calibration: [Calibration; 2],
    digest: String,
    changed_tables: BTreeMap<String, Contents>,
}

#[derive(Default)]
struct Tally {
    kills: [usize; 2],
    /// The longest a killed migrator's server session outlived it (PostgreSQL).
    longest_linger: Duration,
    rounds: usize,
    attempts: usize,
    sites: BTreeMap<String, usize>,
}

impl Tally {
    fn total(&self) -> usize {
        self.kills[0] + self.kills[1]
    }
}

struct Harness {
    backend: &'static str,
    /// `--jobs N` for every run, or the default.
    jobs: Option<u64>,
    settings: KillSettings,
    dice: Dice,
    tally: Tally,
}

impl Harness {
    fn command(&self, db: &TestDb, phase: Phase) -> std::process::Command {
        let target = (phase == Phase::ToV2).then_some(UUID_REVISION);
        let mut cmd = reference::upgrade(db, "10", self.settings.batch, target);
        if let Some(jobs) = self.jobs {
            cmd.arg("--jobs").arg(jobs.to_string());
        }
        cmd
    }

    fn pick(&mut self, c: Calibration) -> KillAt {
        // Within the first half of an uninterrupted run (its duration, or its events):
        // each rerun resumes where the last one stopped, so a few kills per phase land
        // spread over the whole run.
        if self.dice.percent(50) {
            KillAt::After(self.dice.duration_below(c.duration / 2))
        } else {
            KillAt::AfterEvent {
                nth: 1 + self.dice.below((c.events as u64).div_ceil(2)) as usize,
                then: self.dice.duration_below(Duration::from_millis(3)),
            }
        }
    }

    fn fail(&self, what: &str, problems: &[String]) -> ! {
        panic!(
            "{}\n{what}:\n  {}",
            self.settings.rerun_line(self.backend),
            problems.join("\n  ")
        )
    }

    /// Runs one phase to completion, killing it at random moments when `calibration`
    /// is given; checks the repository after every kill. Returns the uninterrupted
    /// run's calibration (meaningful when no kill was asked for).
    fn phase(
        &mut self,
        db: &TestDb,
        before: &Snapshot,
        phase: Phase,
        calibration: Option<Calibration>,
    ) -> Calibration {
        let index = phase as usize;
        let mut kills_here = 0;
        let mut progress = MapProgress::default();
        let mut batches_reported: BTreeSet<(String, String, u64)> = BTreeSet::new();
        loop {
            let at = match calibration {
                Some(c) if kills_here < KILLS_PER_PHASE => self.pick(c),
                _ => KillAt::Never,
            };
            self.tally.attempts += 1;
            let out = process::run(self.command(db, phase), at);
            self.no_batch_reported_twice(&out, &mut batches_reported);
            if out.killed {
                kills_here += 1;
                self.tally.kills[index] += 1;
                *self.tally.sites.entry(out.kill_site()).or_default() += 1;
                self.after_kill(db, before, &out, at, &mut progress);
                continue;
            }
            if out.code != Some(0) {
                let blocked = if out.code == Some(3) {
                    " (exit 3: a killed migrator blocked the next one)"
                } else {
                    ""
                };
                self.fail(
                    &format!(
                        "round {}: {phase:?} did not finish{blocked}",
                        self.tally.rounds
                    ),
                    &[out.describe()],
                );
            }
            return Calibration {
                duration: out.elapsed,
                events: out.events.len().max(1),
            };
        }
    }

    /// Batches report their number after they commit; one reported twice was applied twice.
    fn no_batch_reported_twice(&self, out: &Outcome, seen: &mut BTreeSet<(String, String, u64)>) {
        for e in out.events.iter().filter(|e| e["event"] == "progress") {
            let key = (
                e["revision"].as_str().unwrap_or("").to_string(),
                e["step"].as_str().unwrap_or("").to_string(),
                e["done"].as_u64().unwrap_or(0),
            );
            if !seen.insert(key.clone()) {
                self.fail("a batch was committed twice", &[format!("{key:?}")]);
            }
        }
    }

    fn after_kill(
        &mut self,
        db: &TestDb,
        before: &Snapshot,
        out: &Outcome,
        at: KillAt,
        progress: &mut MapProgress,
    ) {
        let context = format!(
            "round {}, kill {} ({at:?}, landed at {})",
            self.tally.rounds,
            self.tally.total(),
            out.kill_site()
        );
        let mut conn = db.connect();
        match process::server_session_gone(conn.as_mut(), out.pid, Duration::from_secs(10)) {
            Some(d) => self.tally.longest_linger = self.tally.longest_linger.max(d),
            None => self.fail(
                &context,
                &["the killed migrator's server session is still there after 10 s".into()],
            ),
        }
        if let Err(problems) = invariants::usable(db, reference::ferry(db).command()) {
            self.fail(
                &format!("{context}: the repository is not usable"),
                &problems,
            );
        }
        let view = LedgerView::read(conn.as_mut()).expect("read the ledger");
        let mut problems = view.consistency(false);
        problems.extend(invariants::uuid_revision(
            conn.as_mut(),
            &view,
            before,
            self.settings.batch as i64,
            progress,
        ));
        if view.applied(UUID_REVISION) {
            problems.extend(invariants::later_revisions(conn.as_mut(), &view));
        }
        if !problems.is_empty() {
            self.fail(
                &format!("{context}: the ledger disagrees with the schema"),
                &problems,
            );
        }
    }

    /// One round from a fresh v1 repository; `expected` is `None` for the calibration
    /// round (no kills), which returns what the others are compared with.
    fn round(&mut self, maker: &V1Maker, expected: Option<&Expected>) -> Option<Expected> {
        let (db, before) = maker.make()?;
        let started = Instant::now();
        let kills_before = self.tally.kills;
        let cal = |p: Phase| expected.map(|e| e.calibration[p as usize]);

        let to_v2 = self.phase(&db, &before, Phase::ToV2, cal(Phase::ToV2));
        let mut conn = db.connect();
        if let Err(problems) = ferry_workload::check_v2(conn.as_mut(), &before) {
            self.fail(
                &format!("round {}: the v2 rules are violated", self.tally.rounds),
                &problems,
            );
        }
        let v2_contents = tables::all_contents(conn.as_mut());
        drop(conn);

        let to_heads = self.phase(&db, &before, Phase::ToHeads, cal(Phase::ToHeads));
        let status = invariants::usable(&db, reference::ferry(&db).command())
            .unwrap_or_else(|p| self.fail("the repository is not usable at the end", &p));
        let mut conn = db.connect();
        let mut problems = invariants::at_heads(&status, conn.as_mut(), false);
        let view = LedgerView::read(conn.as_mut()).expect("read the ledger");
        problems.extend(invariants::later_revisions(conn.as_mut(), &view));
        let digest = ferry::digest::digest(conn.as_mut()).expect("digest").sha256;
        let mut after = tables::all_contents(conn.as_mut());
        let changed: BTreeMap<String, Contents> = CHANGED_AFTER_V2
            .iter()
            .map(|t| (t.to_string(), after.remove(*t).unwrap_or_default()))
            .collect();
        let mut untouched = v2_contents;
        untouched.retain(|t, _| !CHANGED_AFTER_V2.contains(&t.as_str()));
        problems.extend(
            tables::differences(&untouched, &after)
                .into_iter()
                .map(|d| format!("changed after v2: {d}")),
        );
        if let Some(e) = expected {
            if digest != e.digest {
                problems.push(format!(
                    "schema digest {digest}, an uninterrupted run gives {}",
                    e.digest
                ));
            }
            problems.extend(
                tables::differences(&e.changed_tables, &changed)
                    .into_iter()
                    .map(|d| format!("differs from an uninterrupted run: {d}")),
            );
        }
        if !problems.is_empty() {
            self.fail(
                &format!("round {}: wrong end state", self.tally.rounds),
                &problems,
            );
        }
        eprintln!(
            "[{}] round {}: {} kills ({} to v2, {} to the heads), {:.1?}",
            self.backend,
            self.tally.rounds,
            self.tally.total() - kills_before[0] - kills_before[1],
            self.tally.kills[0] - kills_before[0],
            self.tally.kills[1] - kills_before[1],
            started.elapsed()
        );
        self.tally.rounds += 1;
        Some(Expected {
            calibration: [to_v2, to_heads],
            digest,
            changed_tables: changed,
        })
    }
}

fn kill_at_any_moment(backend: Backend, source: Source) {
    kill_at_any_moment_with(backend, source, None);
}

/// The harness with `--jobs N` given to every run (`None`: the default).
fn kill_at_any_moment_with(backend: Backend, source: Source, jobs: Option<u64>) {
    let name = match (backend, source, jobs) {
        (Backend::Postgres, Source::Ferry, Some(_)) => "postgres, --jobs 2",
        (Backend::Sqlite, Source::Ferry, _) => "sqlite",
        (Backend::Postgres, Source::Ferry, None) => "postgres",
        (Backend::Sqlite, Source::Foreign, _) => "sqlite, foreign v1",
        (Backend::Postgres, Source::Foreign, _) => "postgres, foreign v1",
    };
    if backend == Backend::Postgres && common::pg_base_url().is_none() {
        eprintln!("kill harness: PostgreSQL skipped, FERRY_TEST_PG_URL is not set");
        return;
    }
    let mut settings = KillSettings::from_env();
    if jobs.is_some() {
        // Parallel table steps get a few kills of their own by default (FERRY_PARALLEL_KILLS).
        settings.kills = settings::env_u64("FERRY_PARALLEL_KILLS", 5) as usize;
        eprintln!(
            "[{name}] FERRY_PARALLEL_KILLS={} (FERRY_KILLS is for the default)",
            settings.kills
        );
    }
    if source == Source::Foreign {
        // The second kind of repository gets fewer kills by default (FERRY_FOREIGN_KILLS).
        settings.kills = settings::env_u64("FERRY_FOREIGN_KILLS", 5) as usize;
        eprintln!(
            "[{name}] FERRY_FOREIGN_KILLS={} (FERRY_KILLS is for the other kind)",
            settings.kills
        );
    }
    eprintln!("{}", settings.rerun_line(name));
    let started = Instant::now();
    let maker = V1Maker::from_source(source, backend, "faults_kill", settings.n, 7);
    let mut harness = Harness {
        backend: name,
        jobs,
        settings,
        dice: Dice::new(settings.seed),
        tally: Tally::default(),
    };
    let expected = harness.round(&maker, None).expect("a fresh repository");
    eprintln!(
        "[{name}] uninterrupted: to v2 {:.2?} ({} events), to the heads {:.2?} ({} events)",
        expected.calibration[0].duration,
        expected.calibration[0].events,
        expected.calibration[1].duration,
        expected.calibration[1].events
    );
    while harness.tally.total() < settings.kills {
        assert!(
            harness.tally.rounds < 20 + settings.kills,
            "{}: too many rounds without reaching the kill count",
            settings.rerun_line(name)
        );
        harness.round(&maker, Some(&expected));
    }
    let t = &harness.tally;
    let sites: Vec<String> = t
        .sites
        .iter()
        .map(|(s, n)| format!("{n:>4}  {s}"))
        .collect();
    eprintln!(
        "[{name}] seed {}: {} kills survived ({} on the way to v2, {} on the way to the heads) \
         in {} killed rounds, {} runs, {:.1?}; longest a killed migrator's server session \
         lingered: {:.0?}\nwhere the kills landed:\n{}",
        settings.seed,
        t.total(),
        t.kills[0],
        t.kills[1],
        t.rounds - 1,
        t.attempts,
        started.elapsed(),
        t.longest_linger,
        sites.join("\n")
    );
}

#[test]
fn sqlite_survives_kills_at_any_moment() {
    kill_at_any_moment(Backend::Sqlite, Source::Ferry);
}

#[test]
fn postgres_survives_kills_at_any_moment() {
    kill_at_any_moment(Backend::Postgres, Source::Ferry);
}

/// The table steps of the int → UUID rewrite run two at a time, each on its own pooled
/// connection: a kill loses only the uncommitted work of the steps running then.
#[test]
fn postgres_with_jobs_2_survives_kills_at_any_moment() {
    kill_at_any_moment_with(Backend::Postgres, Source::Ferry, Some(2));
}

/// The same on a repository Ferry did not make (`tests/fixtures/foreign_v1`, adopted).
#[test]
fn sqlite_foreign_v1_survives_kills_at_any_moment() {
    kill_at_any_moment(Backend::Sqlite, Source::Foreign);
}

#[test]
fn postgres_foreign_v1_survives_kills_at_any_moment() {
    kill_at_any_moment(Backend::Postgres, Source::Foreign);
}
