//! The project: the scripts found under the roots, validated into one graph, with
//! the hooks plugins provide and the probes `adopt` runs.

use super::{Error, Migrator};
use crate::databases::Databases;
use crate::discovery;
use crate::graph::Graph;
use crate::metadata::RevisionMeta;
use crate::script::hooks::HookSet;
use std::rc::Rc;

/// The scripts found under the roots, validated into one graph.
pub struct Project {
    pub graph: Graph,
    pub hooks: HookSet,
    /// Probe scripts found under the roots (`probes/`), for `adopt`.
    pub probes: Vec<crate::metadata::ModuleFile>,
    /// What discovery found, in its order, for the static checks.
    pub(crate) found: discovery::Discovered,
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
    internal_fn! {
        /// The project: the scripts under the roots, discovered and validated into a graph
        /// on first use, then kept. Every command of this migrator uses it, so a command
        /// that runs others (`verify` with `auto_migrate`, a dry run) reads the scripts
        /// once. Call [`Migrator::reload_scripts`] after editing the scripts.
        fn load(&self) -> Result<Rc<Project>, Error> {
            if let Some(project) = self.project.borrow().as_ref() {
                return Ok(project.clone());
            }
            self.reload()
        }
    }

    /// [`Migrator::load`] for commands that neither check nor run scripts (`status`,
    /// `show`): a project discovered here keeps no syntax trees (see
    /// [`crate::analysis`]); a later command of this migrator that runs a revision
    /// compiles its kept text again.
    pub(crate) fn load_metadata(&self) -> Result<Rc<Project>, Error> {
        if let Some(project) = self.project.borrow().as_ref() {
            return Ok(project.clone());
        }
        self.reload_with(discovery::Trees::Drop)
    }

    internal_fn! {
        /// Discovers the scripts again and keeps the new project (the static checks of
        /// `plan` and `upgrade` then run again too).
        fn reload(&self) -> Result<Rc<Project>, Error> {
            self.reload_with(discovery::Trees::Keep)
        }
    }

    fn reload_with(&self, trees: discovery::Trees) -> Result<Rc<Project>, Error> {
        let found = discovery::discover_with(&self.roots, trees)?;
        let graph = Graph::build(found.revisions.clone())?;
        let project = Rc::new(Project {
            graph,
            hooks: HookSet::new(&found.hooks),
            probes: found.probes.clone(),
            found,
        });
        *self.project.borrow_mut() = Some(project.clone());
        self.checked.set(false);
        Ok(project)
    }

    /// Reads the scripts again, for a migrator kept while they are edited: the next
    /// command uses them (and the static checks of `plan` and `upgrade` run again).
    pub fn reload_scripts(&self) -> Result<(), Error> {
        self.reload().map(drop)
    }

    /// Each tree and its heads (the revisions nothing builds on), in tree order.
    pub fn heads(&self) -> Result<Vec<(String, Vec<String>)>, Error> {
        let project = self.load()?;
        let graph = &project.graph;
        Ok(graph
            .trees()
            .into_iter()
            .map(|t| {
                let heads = graph.heads(t).into_iter().map(String::from).collect();
                (t.to_string(), heads)
            })
            .collect())
    }

    /// The static checks of `ferry lint` over the roots and the configuration (no
    /// database needed): every problem, errors and warnings. Reads the scripts anew.
    pub fn lint(&self) -> Result<Vec<crate::lint::Problem>, Error> {
        let project = self.reload()?;
        Ok(self.lint_found(&project.found, &project.graph))
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

    /// [`Migrator::load`] with the static checks (unless turned off), run once per
    /// project: an error refuses with [`Error::Lint`] before any repository is
    /// opened; `plan` and `upgrade` start here. Warnings go to the observer's log
    /// (once per project).
    pub(crate) fn load_checked(&self) -> Result<Rc<Project>, Error> {
        let project = self.load()?;
        if self.static_checks && !self.checked.get() {
            self.refuse_lint_errors(self.lint_found(&project.found, &project.graph))?;
            self.checked.set(true);
        }
        Ok(project)
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
    pub(crate) fn setup(&self) -> Result<(Rc<Project>, Databases), Error> {
        self.setup_with(self.load()?)
    }

    /// [`Migrator::setup`] with [`Migrator::load_metadata`].
    pub(crate) fn setup_metadata(&self) -> Result<(Rc<Project>, Databases), Error> {
        self.setup_with(self.load_metadata()?)
    }

    /// [`Migrator::setup`] for a project already loaded.
    pub(crate) fn setup_with(
        &self,
        project: Rc<Project>,
    ) -> Result<(Rc<Project>, Databases), Error> {
        let dbs = self.databases()?;
        dbs.check_trees(&project.graph.trees())?;
        Ok((project, dbs))
    }
}

#[cfg(test)]
mod tests {
    use crate::migrator::Migrator;
    use std::path::Path;
    use std::rc::Rc;

    /// A copy of the `linear` fixture (alpha-1, alpha-2, alpha-3) to edit.
    fn linear_copy(dir: &Path) -> std::path::PathBuf {
        let from =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/trees/linear/scripts");
        let to = dir.join("scripts");
        std::fs::create_dir_all(to.join("alpha")).unwrap();
        for entry in std::fs::read_dir(from.join("alpha")).unwrap() {
            let entry = entry.unwrap();
            std::fs::copy(entry.path(), to.join("alpha").join(entry.file_name())).unwrap();
        }
        to
    }

    #[test]
    fn the_project_is_loaded_once_and_again_on_reload() {
        let dir = tempfile::tempdir().unwrap();
        let roots = linear_copy(dir.path());
        let url = format!("sqlite:{}", dir.path().join("repo.sqlite").display());
        let migrator = Migrator::new(&url).unwrap().with_roots(vec![roots.clone()]);
        let first = migrator.load().unwrap();
        assert_eq!(first.graph.len(), 3);
        assert!(
            Rc::ptr_eq(&first, &migrator.load().unwrap()),
            "kept, not read again"
        );
        // Commands use the kept project: a script removed since is still planned.
        std::fs::remove_file(roots.join("alpha/003_seed.rhai")).unwrap();
        let status = migrator.status().unwrap();
        assert_eq!(status.trees[0].pending.len(), 3);
        let again = migrator.reload().unwrap();
        assert!(!Rc::ptr_eq(&first, &again));
        assert_eq!(again.graph.len(), 2);
        assert_eq!(migrator.status().unwrap().trees[0].pending.len(), 2);
        // The public spelling: the scripts read again, the kept project replaced.
        std::fs::remove_file(roots.join("alpha/002_label.rhai")).unwrap();
        migrator.reload_scripts().unwrap();
        assert_eq!(migrator.load().unwrap().graph.len(), 1);
        assert_eq!(
            migrator.heads().unwrap(),
            [("alpha".to_string(), vec!["alpha-1".to_string()])]
        );
    }
}
