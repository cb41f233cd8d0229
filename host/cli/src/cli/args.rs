//! The command line, as clap reads it.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;

/// Ferry migrates long-lived data repositories between schema versions with Rhai scripts.
///
/// Exit codes: 0 done; 1 a migration failed; 2 bad usage, configuration, script tree or
/// database URL; 3 the repository is locked by another run, or `check` found it not at
/// the heads.
#[derive(Debug, Parser)]
#[command(name = "ferry", version, about, long_about = None)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args, Clone)]
pub struct Global {
    /// Database URL: sqlite:PATH, postgres://… or postgresql://… (?schema=NAME for a namespace).
    #[arg(
        long,
        env = "FERRY_DB",
        global = true,
        default_value = "sqlite:ferry.sqlite"
    )]
    pub db: String,
    /// A root of script trees (repeatable). Default: FERRY_PATH (colon-separated), else
    /// ./scripts plus every directory under ./plugins.
    #[arg(long = "scripts", value_name = "DIR", global = true)]
    pub scripts: Vec<PathBuf>,
    /// The folder of shared Rhai modules scripts may import (default: ./stdlib).
    #[arg(long, value_name = "DIR", env = "FERRY_STDLIB", global = true)]
    pub stdlib: Option<PathBuf>,
    /// Repository configuration file (default: ./ferry.toml if it exists).
    #[arg(long, value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Set a configuration value (repeatable), overriding the file: KEY=VALUE.
    #[arg(long = "set", value_name = "KEY=VALUE", global = true)]
    pub set: Vec<String>,
    /// Print machine-readable JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Progress output: a bar on a terminal (auto), plain lines, JSON lines, or none.
    #[arg(long, value_enum, global = true, default_value = "auto")]
    pub progress: ProgressMode,
    /// Steps that may run at the same time (the table steps of a table rewrite) run on
    /// up to N pooled connections (PostgreSQL; SQLite runs steps one at a time). Default:
    /// the config key `jobs`, else the server's max_parallel_workers, at most this
    /// machine's cores for a local server, at most 4. Dry runs and --sql run steps in turn.
    #[arg(long, value_name = "N", global = true, value_parser = clap::value_parser!(u64).range(1..=64))]
    pub jobs: Option<u64>,
    /// How long to wait for another migrator's lock before giving up (seconds).
    #[arg(long, value_name = "SECONDS", global = true, default_value_t = 10.0)]
    pub lock_timeout: f64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ProgressMode {
    Auto,
    Plain,
    Json,
    None,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Per tree: current revision and version, heads, pending revisions, unfinished work.
    Status,
    /// Check the scripts and the configuration without running anything (exit 2 on an
    /// error).
    ///
    /// Reports unknown functions and modules, unknown methods of `db`, imports that do
    /// not resolve, syntax errors in lib/ and stdlib/ modules, hooks run without HOOKS or
    /// provided for no revision, unknown configuration keys, and (a warning) tables used
    /// without DEPENDS_ON on their creator. Prints every problem as path:line:column; exit 2 on any error. `plan`
    /// and `upgrade` run the same checks first and refuse on an error.
    Lint,
    /// Every run of every revision, newest first.
    History {
        /// Show at most this many entries (0: all).
        #[arg(long, default_value_t = 0)]
        limit: usize,
    },
    /// The head revisions of every tree.
    Heads,
    /// Everything about one revision: metadata, file, checksum, relations, hooks, state.
    Show {
        /// A full or unique partial revision id.
        revision: String,
    },
    /// The revisions an upgrade to the targets would run, in order, with their hooks,
    /// online-safety and downgradability.
    Plan {
        /// Targets (default: heads).
        targets: Vec<String>,
    },
    /// A text drawing of the revision graph, per tree, newest first.
    Graph,
    /// The schema digest of the repository (sha256 of a canonical schema text).
    Digest {
        /// Also print the canonical text the digest is the hash of.
        #[arg(long, short)]
        verbose: bool,
        /// The database to digest, when trees live in several (default: main).
        #[arg(long, value_name = "NAME")]
        database: Option<String>,
    },
    /// Record revisions (and their unapplied ancestors) as applied without running them,
    /// after checking the schema digest they declare.
    Stamp {
        #[arg(required = true)]
        revisions: Vec<String>,
        /// Record even if the schema digest does not match (noted in the history).
        #[arg(long)]
        force: bool,
    },
    /// Stamp every tree of a repository created by another tool, from its probe.
    Adopt,
    /// Free a recorded lock whose holder is gone; refuses while the lock is held.
    Unlock,
    /// After reviewing an applied revision's changed files (`ferry show REV`), record
    /// them as they are now: its checksum, its modules' and hooks' digest and their
    /// text. Writes who and why into the history; runs nothing.
    Accept {
        /// The applied revision (full id or unique prefix).
        revision: String,
        /// Why the changed files may stand for what ran (required; kept in the history).
        #[arg(long)]
        reason: Option<String>,
        /// Who reviewed it (default: $USER).
        #[arg(long, value_name = "NAME")]
        by: Option<String>,
    },
    /// Forget committed steps of an unfinished (failed or interrupted) revision, so the
    /// next upgrade runs them again; for a step whose committed result was wrong. The
    /// steps' effects stay in the database: they must be able to run again over them.
    Reset {
        /// The unfinished revision (full id or unique prefix).
        revision: String,
        /// A committed step to forget (repeatable; default: every committed step).
        #[arg(long = "step", value_name = "NAME")]
        steps: Vec<String>,
    },
    /// Write a new revision file for TREE, its parent the tree's head.
    New {
        tree: String,
        /// The revision's message.
        #[arg(short, long)]
        message: String,
        /// Start a tree that does not exist yet.
        #[arg(long)]
        new_tree: bool,
    },
    /// Upgrade to the targets (default: every head).
    Upgrade {
        /// Targets: heads, TREE@head, REVISION, partial ids, +N, TREE@+N.
        targets: Vec<String>,
        /// Run inside transactions that are rolled back; report statements and rows.
        #[arg(long)]
        dry_run: bool,
        /// Print the SQL without touching the database (revisions that only write).
        #[arg(long, conflicts_with = "dry_run")]
        sql: bool,
        /// Run even if an applied script has changed since it was applied (recorded).
        #[arg(long)]
        allow_changed: bool,
        /// Run a revision whose BEFORE names a revision already applied, after it
        /// (an instrument plugin installed late; recorded in the history).
        #[arg(long)]
        allow_late: bool,
    },
    /// Undo revisions until TARGET is the newest applied (base: undo everything).
    Downgrade {
        /// base, TREE@base, a revision, -N or TREE@-N (`-N` needs no `--`).
        #[arg(allow_hyphen_values = true)]
        target: String,
        #[arg(long)]
        dry_run: bool,
    },
    /// Exit 0 when the repository is at the heads and unchanged, 3 otherwise.
    Check,
    /// Test a plugin on fresh repositories (not `--db`): build the start its
    /// ferry-test.toml declares, upgrade to the heads, check its expectations, downgrade
    /// its trees, check the schema digest is back, upgrade again. SQLite always;
    /// PostgreSQL too with --postgres. Exit 0: passed; 1: a phase failed; 2: bad
    /// plugin, declaration or usage. With --json: one JSON report of the run when it
    /// ends (per backend, each phase's outcome, a failed revision's file and line, the
    /// schema digest), with the same exit code.
    Test {
        /// The plugin's folder (a script root holding ferry-test.toml).
        plugin: PathBuf,
        /// Also run on this PostgreSQL server, in fresh schemas dropped afterwards.
        #[arg(long, value_name = "URL")]
        postgres: Option<String>,
    },
    /// Classify every tree (no database, empty, current, behind, ahead, unversioned,
    /// unfinished, misplaced) and decide whether the code may write, read or must
    /// refuse. Exit 0: writable; 3: read-only or refused; 1: --auto-migrate ran and a
    /// revision failed.
    Verify {
        /// Upgrade when behind; create the database and run every revision when there
        /// is none or it is empty. Trees in any other state block it.
        #[arg(long)]
        auto_migrate: bool,
        /// With --auto-migrate: adopt a recognised unversioned repository, then upgrade.
        #[arg(long, requires = "auto_migrate")]
        adopt: bool,
        /// A version of a tree the code supports (repeatable): TREE=VERSION.
        #[arg(long = "supports", value_name = "TREE=VERSION")]
        supports: Vec<String>,
        /// Upgrade targets for --auto-migrate (default: heads).
        targets: Vec<String>,
    },
    /// Move trees' ledger records and history to the database the configuration now
    /// places them in, under both locks, after checking that their tables (copied there
    /// first with the database's own tools) hold as many rows as in the source.
    MoveTrees {
        /// The trees to move (each must be placed in the same database).
        #[arg(required = true)]
        trees: Vec<String>,
        /// A table of the trees, already copied to the new database, whose row count
        /// must match the source's (repeatable).
        #[arg(long = "table", value_name = "TABLE")]
        tables: Vec<String>,
    },
}
