//! The project: the scripts found under the roots, validated into one graph, with
//! the hooks plugins provide and the probes `adopt` runs.

use super::{Error, Migrator};
use crate::databases::Databases;
use crate::discovery;
use crate::graph::Graph;
use crate::metadata::RevisionMeta;
use crate::script::hooks::HookSet;

/// The scripts found under the roots, validated into one graph.
pub struct Project {
    pub graph: Graph,
    pub hooks: HookSet,
    /// Probe scripts found under the roots (`probes/`), for `adopt`.
    pub probes: Vec<crate::metadata::ModuleFile>,
}

impl Project {
    /// Hook problems that would stop `revisions` at run time: a declared hook that no
    /// plugin provides, and a hook provided twice for the same key.
    pub fn hook_problems(&self, revisions: &[&RevisionMeta]) -> Vec<String> {
        let mut problems = Vec::new();
        for ((name, key), providers) in self.hooks.duplicates() {
            let files: Vec<String> = providers
                .iter()
                .map(|h| h.path.display().to_string())
                .collect();
            problems.push(format!(
                "hook {name:?}{} is provided {} times: {}",
                key.as_ref()
                    .map(|k| format!(" for {k:?}"))
                    .unwrap_or_default(),
                providers.len(),
                files.join(", ")
            ));
        }
        for rev in revisions {
            for hook in &rev.hooks {
                if !self.hooks.provided(hook) {
                    problems.push(format!(
                        "revision {} ({}) calls hook {hook:?}, which no plugin provides",
                        rev.id,
                        rev.path.display()
                    ));
                }
            }
        }
        problems
    }
}

impl Migrator {
    /// Discovers the scripts and builds the graph (no database needed).
    pub fn load(&self) -> Result<Project, Error> {
        let found = discovery::discover(&self.roots)?;
        let hooks = HookSet::new(&found.hooks);
        let graph = Graph::build(found.revisions)?;
        Ok(Project {
            graph,
            hooks,
            probes: found.probes,
        })
    }

    /// The static checks of `ferry lint` over the roots and the configuration (no
    /// database needed): every problem, errors and warnings.
    pub fn lint(&self) -> Result<Vec<crate::lint::Problem>, Error> {
        let found = discovery::discover(&self.roots)?;
        let graph = Graph::build(found.revisions.clone())?;
        Ok(self.lint_found(&found, &graph))
    }

    pub(crate) fn lint_found(
        &self,
        found: &discovery::Discovered,
        graph: &Graph,
    ) -> Vec<crate::lint::Problem> {
        crate::lint::check(&crate::lint::Inputs {
            found,
            graph,
            paths: &self.module_paths(),
            config: &self.config,
            sources: &self.config_sources,
        })
    }

    /// [`Migrator::load`] with the static checks (unless turned off): one discovery
    /// serves both, and an error refuses with [`Error::Lint`] before any repository is
    /// opened; `plan` and `upgrade` start here. Warnings go to the observer's log.
    pub(crate) fn load_checked(&self) -> Result<Project, Error> {
        let found = discovery::discover(&self.roots)?;
        let graph = Graph::build(found.revisions.clone())?;
        if self.static_checks {
            self.refuse_lint_errors(self.lint_found(&found, &graph))?;
        }
        let hooks = HookSet::new(&found.hooks);
        Ok(Project {
            graph,
            hooks,
            probes: found.probes,
        })
    }

    /// Refuses with [`Error::Lint`] when `problems` hold an error; logs the warnings.
    pub(crate) fn refuse_lint_errors(
        &self,
        problems: Vec<crate::lint::Problem>,
    ) -> Result<(), Error> {
        let (errors, warnings): (Vec<_>, Vec<_>) = problems
            .into_iter()
            .partition(|p| p.severity == crate::lint::Severity::Error);
        for w in &warnings {
            self.observer.event(&crate::observer::Event::Log {
                level: crate::observer::Level::Warn,
                revision: "lint".into(),
                message: w.to_string(),
            });
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(Error::Lint(errors))
        }
    }

    /// The project and the databases, with every placed tree checked against the graph.
    pub(crate) fn setup(&self) -> Result<(Project, Databases), Error> {
        self.setup_with(self.load()?)
    }

    /// [`Migrator::setup`] for a project already loaded.
    pub(crate) fn setup_with(&self, project: Project) -> Result<(Project, Databases), Error> {
        let dbs = self.databases()?;
        dbs.check_trees(&project.graph.trees())?;
        Ok((project, dbs))
    }
}
