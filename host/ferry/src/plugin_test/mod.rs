//! `ferry test PLUGIN_DIR`: a plugin's round trip on fresh repositories.
//!
//! For each backend (SQLite in a temporary folder; PostgreSQL in fresh schemas when a
//! URL is given), in order:
//!
//! 1. **start**: build the fixture repository the plugin declares in
//!    `ferry-test.toml` (empty, the sample registry at a size, or a SQL file);
//! 2. **upgrade**: upgrade it to every head, the plugin's included, and take the schema
//!    digest;
//! 3. **expect**: check the expectations marked `after = "upgrade"`;
//! 4. **downgrade**: downgrade each of the plugin's own trees to its base;
//! 5. **expect**: check the expectations marked `after = "downgrade"`;
//! 6. **digest**: the schema digest must equal that of a reference repository built
//!    from the same start and upgraded with the other roots only (the plugin left
//!    nothing of its schema behind);
//! 7. **upgrade again** (the plugin now arrives after every core revision ran), and
//!    check the `after = "upgrade"` expectations and that the digest is the one the
//!    first upgrade left.
//!
//! Every phase is reported as it ends; the first failure ends that backend's run.

pub mod spec;

use std::path::{Path, PathBuf};

use crate::backend::{self, Connection, DbUrl};
use crate::config::ConfigMap;
use crate::migrator::{Error, Migrator, UpgradeOptions};
use crate::script::{Limits, ScriptError};
use spec::{After, Start, TestSpec};

/// What the test runs with: the plugin, the other roots, and the settings a
/// [`Migrator`] needs.
#[derive(Debug, Clone)]
pub struct PluginTestOptions {
    /// The plugin's folder (a script root).
    pub plugin: PathBuf,
    /// Every other root (the core `scripts/`, other plugins the plugin needs).
    pub roots: Vec<PathBuf>,
    /// The stdlib directory, if any.
    pub stdlib: Option<PathBuf>,
    /// The configuration the plugin's scripts see.
    pub config: ConfigMap,
    /// The script engine's limits.
    pub limits: Limits,
    /// A PostgreSQL URL: the test also runs there, in fresh schemas it drops after.
    pub postgres: Option<String>,
}

/// One phase's result, reported as it ends.
#[derive(Debug)]
pub struct PhaseReport {
    /// `sqlite` or `postgres`.
    pub backend: &'static str,
    /// The phase's name (`start`, `upgrade`, `expect after upgrade`, ...).
    pub phase: String,
    /// How the phase ended.
    pub outcome: PhaseOutcome,
    /// The schema digest (sha256) of the repository under test the phase computed: after
    /// `upgrade`, `digest after downgrade` and `digest after upgrade again`.
    pub digest: Option<String>,
}

/// How a phase ended.
#[derive(Debug)]
pub enum PhaseOutcome {
    /// It passed; what it did, in a few words.
    Passed(String),
    /// A revision failed (with its file, line and step).
    Script(Box<ScriptError>),
    /// Anything else failed: an expectation, the digest, the database.
    Failed(String),
}

/// Why the test could not start (bad usage: exit 2).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PluginTestError {
    #[error("{0}")]
    /// The plugin's `ferry-test.toml` is not valid.
    Spec(#[from] spec::SpecError),
    #[error(transparent)]
    /// The migrator failed.
    Migrator(#[from] Error),
    /// The plugin folder cannot be used.
    #[error("plugin folder {}: {message}", path.display())]
    Plugin {
        /// The plugin directory.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

/// Runs the test on every backend; `Ok(true)` when every phase passed.
pub fn run(
    options: &PluginTestOptions,
    report: &mut dyn FnMut(&PhaseReport),
) -> Result<bool, PluginTestError> {
    let plugin = options
        .plugin
        .canonicalize()
        .map_err(|e| PluginTestError::Plugin {
            path: options.plugin.clone(),
            message: e.to_string(),
        })?;
    let spec = spec::read(&plugin)?;
    let roots: Vec<PathBuf> = options
        .roots
        .iter()
        .filter(|r| r.canonicalize().ok().as_deref() != Some(plugin.as_path()))
        .cloned()
        .collect();
    let trees = plugin_trees(options, &plugin, &roots)?;
    let mut passed = true;
    let sqlite = SqliteScratch::new()?;
    let run = Backend {
        name: "sqlite",
        main: sqlite.url("main"),
        reference: sqlite.url("reference"),
    };
    passed &= run.run(options, &plugin, &roots, &spec, &trees, report);
    drop(sqlite);
    if let Some(base) = &options.postgres {
        let pg = PgScratch::new(base)?;
        let run = Backend {
            name: "postgres",
            main: pg.url(0),
            reference: pg.url(1),
        };
        passed &= run.run(options, &plugin, &roots, &spec, &trees, report);
    }
    Ok(passed)
}

/// The trees of the plugin's revisions. A plugin revision in a tree that also holds
/// revisions of other roots cannot be downgraded on its own, so it is refused.
fn plugin_trees(
    options: &PluginTestOptions,
    plugin: &Path,
    roots: &[PathBuf],
) -> Result<Vec<String>, PluginTestError> {
    let mut all = roots.to_vec();
    all.push(plugin.to_path_buf());
    let project = migrator(options, "sqlite:unused.sqlite", all)?.load()?;
    let ours = |root: &Path| root.canonicalize().ok().as_deref() == Some(plugin);
    let mut trees = Vec::new();
    for tree in project.graph.trees() {
        let revisions = project.graph.tree_revisions(tree);
        if !revisions.iter().any(|m| ours(&m.root)) {
            continue;
        }
        if let Some(other) = revisions.iter().find(|m| !ours(&m.root)) {
            let mine = revisions
                .iter()
                .find(|m| ours(&m.root))
                .expect("one is ours");
            return Err(PluginTestError::Plugin {
                path: plugin.to_path_buf(),
                message: format!(
                    "{} puts revision {} into tree {tree}, which also holds {} ({}): a plugin \
                     adds trees of its own (docs/PLUGINS.md, \"Trees\")",
                    mine.path.display(),
                    mine.id,
                    other.id,
                    other.path.display()
                ),
            });
        }
        trees.push(tree.to_string());
    }
    Ok(trees)
}

fn migrator(
    options: &PluginTestOptions,
    url: &str,
    roots: Vec<PathBuf>,
) -> Result<Migrator, Error> {
    Ok(Migrator::new(url)?
        .with_roots(roots)
        .with_stdlib(options.stdlib.clone())
        .with_config(options.config.clone())
        .with_limits(options.limits.clone()))
}

/// One backend's pair of databases: the one under test and the reference.
struct Backend {
    name: &'static str,
    main: String,
    reference: String,
}

impl Backend {
    fn run(
        &self,
        options: &PluginTestOptions,
        plugin: &Path,
        roots: &[PathBuf],
        spec: &TestSpec,
        trees: &[String],
        report: &mut dyn FnMut(&PhaseReport),
    ) -> bool {
        let mut phase = |name: &str, outcome: PhaseOutcome, digest: Option<&str>| -> bool {
            let ok = matches!(outcome, PhaseOutcome::Passed(_));
            report(&PhaseReport {
                backend: self.name,
                phase: name.to_string(),
                outcome,
                digest: digest.map(str::to_string),
            });
            ok
        };
        let mut with_plugin = roots.to_vec();
        with_plugin.push(plugin.to_path_buf());
        let main = match migrator(options, &self.main, with_plugin) {
            Ok(m) => m,
            Err(e) => return phase("start", PhaseOutcome::Failed(e.to_string()), None),
        };
        if !phase("start", outcome(start(&main, &spec.start)), None) {
            return false;
        }
        let upgraded = match upgrade(&main) {
            PhaseOutcome::Passed(what) => match main.digest() {
                Ok(d) => {
                    phase("upgrade", PhaseOutcome::Passed(what), Some(&d.sha256));
                    d
                }
                Err(e) => {
                    let why = format!("the schema digest after the upgrade: {e}");
                    return phase("upgrade", PhaseOutcome::Failed(why), None);
                }
            },
            failed => return phase("upgrade", failed, None),
        };
        if !phase(
            "expect after upgrade",
            expect(&main, spec, After::Upgrade),
            None,
        ) {
            return false;
        }
        if !phase("downgrade", downgrade(&main, trees), None) {
            return false;
        }
        if !phase(
            "expect after downgrade",
            expect(&main, spec, After::Downgrade),
            None,
        ) {
            return false;
        }
        let reference = reference_digest(options, &self.reference, roots, &spec.start);
        let now = main.digest();
        let digest = match (reference, &now) {
            (Ok(reference), Ok(now)) if reference.sha256 == now.sha256 => {
                PhaseOutcome::Passed(format!(
                    "back to the schema without the plugin ({})",
                    &now.sha256[..12]
                ))
            }
            (Ok(reference), Ok(now)) => PhaseOutcome::Failed(format!(
                "after the downgrade the schema digest is {}, not {} (that of the same start \
                 upgraded without the plugin): the plugin's downgrade left part of its schema \
                 behind or removed something it did not create; `ferry digest -v` on both \
                 shows the difference",
                now.sha256, reference.sha256
            )),
            (Err(e), _) => PhaseOutcome::Failed(format!("the reference repository: {e}")),
            (_, Err(e)) => PhaseOutcome::Failed(e.to_string()),
        };
        let now = now.ok().map(|d| d.sha256);
        if !phase("digest after downgrade", digest, now.as_deref()) {
            return false;
        }
        if !phase("upgrade again", upgrade(&main), None) {
            return false;
        }
        if !phase(
            "expect after upgrade again",
            expect(&main, spec, After::Upgrade),
            None,
        ) {
            return false;
        }
        let again = main.digest();
        let outcome = match &again {
            Ok(d) if d.sha256 == upgraded.sha256 => PhaseOutcome::Passed(format!(
                "the same as after the first upgrade ({})",
                &d.sha256[..12]
            )),
            Ok(d) => PhaseOutcome::Failed(format!(
                "after upgrading again the schema digest is {}, not {} as after the first upgrade",
                d.sha256, upgraded.sha256
            )),
            Err(e) => PhaseOutcome::Failed(e.to_string()),
        };
        let again = again.ok().map(|d| d.sha256);
        phase("digest after upgrade again", outcome, again.as_deref())
    }
}

/// The digest of the same start upgraded to the heads without the plugin.
fn reference_digest(
    options: &PluginTestOptions,
    url: &str,
    roots: &[PathBuf],
    from: &Start,
) -> Result<crate::digest::SchemaDigest, String> {
    let m = migrator(options, url, roots.to_vec()).map_err(|e| e.to_string())?;
    let describe = |o: PhaseOutcome| match o {
        PhaseOutcome::Script(e) => e.to_string(),
        PhaseOutcome::Failed(s) | PhaseOutcome::Passed(s) => s,
    };
    start(&m, from).map_err(describe)?;
    match upgrade(&m) {
        PhaseOutcome::Passed(_) => m.digest().map_err(|e| e.to_string()),
        other => Err(describe(other)),
    }
}

fn outcome(r: Result<String, PhaseOutcome>) -> PhaseOutcome {
    r.map_or_else(|failed| failed, PhaseOutcome::Passed)
}

fn failed(e: impl std::fmt::Display) -> PhaseOutcome {
    PhaseOutcome::Failed(e.to_string())
}

/// Builds the declared starting state in the (empty) database of `m`.
fn start(m: &Migrator, start: &Start) -> Result<String, PhaseOutcome> {
    match start {
        Start::Empty => Ok("an empty repository".into()),
        Start::Sql(file) => {
            let sql = std::fs::read_to_string(file)
                .map_err(|e| failed(format!("{}: {e}", file.display())))?;
            let mut conn = m.connect().map_err(failed)?;
            conn.execute_batch(&sql)
                .map_err(|e| failed(format!("{}: {e}", file.display())))?;
            Ok(format!("{} run", file.display()))
        }
        Start::Sample { n, seed } => {
            let targets: Vec<String> = crate::workload::schema::V1_REVISIONS
                .iter()
                .map(|s| s.to_string())
                .collect();
            let _v1 = m
                .upgrade(&targets, &UpgradeOptions::default())
                .map_err(|e| match script_failure(e) {
                    Ok(e) => PhaseOutcome::Script(e),
                    Err(e) => failed(e),
                })?;
            let mut conn = m.connect().map_err(failed)?;
            crate::workload::schema::create_missing_tables(conn.as_mut()).map_err(failed)?;
            let filled = crate::workload::fill_v1(conn.as_mut(), *n, *seed).map_err(failed)?;
            Ok(format!(
                "the sample registry, N = {n} (seed {seed}): {} rows",
                filled.total_rows()
            ))
        }
    }
}

fn upgrade(m: &Migrator) -> PhaseOutcome {
    match m.upgrade(&[], &UpgradeOptions::default()) {
        Ok(r) => PhaseOutcome::Passed(format!("{} revision(s) applied", r.completed.len())),
        Err(e) => match script_failure(e) {
            Ok(e) => PhaseOutcome::Script(e),
            Err(e) => PhaseOutcome::Failed(e.to_string()),
        },
    }
}

/// The script failure of a failed run; any other error as it is.
fn script_failure(e: Error) -> Result<Box<ScriptError>, Error> {
    match e {
        Error::Failed { report } => match report.failed {
            Some(f) => Ok(Box::new(f)),
            None => Err(Error::Failed { report }),
        },
        e => Err(e),
    }
}

fn downgrade(m: &Migrator, trees: &[String]) -> PhaseOutcome {
    if trees.is_empty() {
        return PhaseOutcome::Passed("the plugin has no tree of its own".into());
    }
    let mut undone = 0;
    for tree in trees {
        match m.downgrade(&format!("{tree}@base"), &UpgradeOptions::default()) {
            Ok(r) => undone += r.completed.len(),
            Err(e) => {
                return match script_failure(e) {
                    Ok(e) => PhaseOutcome::Script(e),
                    Err(e) => PhaseOutcome::Failed(e.to_string()),
                }
            }
        }
    }
    PhaseOutcome::Passed(format!(
        "{undone} revision(s) of {} undone",
        trees.join(", ")
    ))
}

/// Checks every expectation marked `after`, naming the first that fails by its line.
fn expect(m: &Migrator, spec: &TestSpec, after: After) -> PhaseOutcome {
    let mut conn = match m.connect() {
        Ok(c) => c,
        Err(e) => return PhaseOutcome::Failed(e.to_string()),
    };
    let mut checked = 0;
    for e in spec.expectations.iter().filter(|e| e.after == after) {
        let at = format!(
            "{}:{}: expectation {:?}",
            spec.path.display(),
            e.line,
            e.name
        );
        match query(conn.as_mut(), &e.sql) {
            Ok(rows) if spec::rows_match(&e.rows, &rows) => checked += 1,
            Ok(rows) => {
                return PhaseOutcome::Failed(format!(
                    "{at} failed: expected rows {}, found {}\n  in query: {}",
                    spec::expected_text(&e.rows),
                    spec::rows_text(&rows),
                    e.sql
                ))
            }
            Err(err) => {
                return PhaseOutcome::Failed(format!(
                    "{at}: the query failed: {err}\n  in query: {}",
                    e.sql
                ))
            }
        }
    }
    PhaseOutcome::Passed(format!("{checked} expectation(s) met"))
}

fn query(
    conn: &mut dyn Connection,
    sql: &str,
) -> Result<Vec<Vec<backend::Value>>, backend::DbError> {
    Ok(conn.query(sql, &[])?.rows)
}

/// A temporary folder for the SQLite files, removed on drop.
struct SqliteScratch {
    dir: PathBuf,
}

impl SqliteScratch {
    fn new() -> Result<SqliteScratch, PluginTestError> {
        let dir =
            std::env::temp_dir().join(format!("ferry-test-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).map_err(|e| PluginTestError::Plugin {
            path: dir.clone(),
            message: format!("cannot create the scratch folder: {e}"),
        })?;
        Ok(SqliteScratch { dir })
    }

    fn url(&self, name: &str) -> String {
        format!(
            "sqlite:{}",
            self.dir.join(format!("{name}.sqlite")).display()
        )
    }
}

impl Drop for SqliteScratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Two fresh PostgreSQL schemas on the server at a URL, dropped on drop.
struct PgScratch {
    admin: Box<dyn Connection>,
    base: String,
    schemas: [String; 2],
}

impl PgScratch {
    fn new(base: &str) -> Result<PgScratch, PluginTestError> {
        let url = DbUrl::parse(base).map_err(Error::from)?;
        let mut admin = backend::connect(&url).map_err(Error::from)?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let schemas = [
            format!("ferry_test_{id}_main"),
            format!("ferry_test_{id}_ref"),
        ];
        for s in &schemas {
            admin
                .execute_batch(&format!("CREATE SCHEMA \"{s}\""))
                .map_err(Error::from)?;
        }
        Ok(PgScratch {
            admin,
            base: base.to_string(),
            schemas,
        })
    }

    fn url(&self, i: usize) -> String {
        let sep = if self.base.contains('?') { '&' } else { '?' };
        format!("{}{sep}schema={}", self.base, self.schemas[i])
    }
}

impl Drop for PgScratch {
    fn drop(&mut self) {
        for s in &self.schemas {
            let _ = self
                .admin
                .execute_batch(&format!("DROP SCHEMA IF EXISTS \"{s}\" CASCADE"));
        }
    }
}
