//! `graph`: the revision graph drawn as text, applied revisions marked.

use super::{Error, Migrator};
use crate::{graph_text, ledger};
use std::collections::{BTreeMap, BTreeSet};

impl Migrator {
    /// The revision graph of every tree drawn as text (what `ferry graph` prints), with
    /// the applied revisions marked when the database can be read (the graph itself
    /// needs no database).
    pub fn graph_text(&self) -> Result<String, Error> {
        let project = self.load()?;
        Ok(graph_text::draw(
            &project.graph,
            &self.applied_if_reachable(),
        ))
    }

    /// The same drawing, one text per tree, keyed by the tree's name.
    pub fn tree_graph_texts(&self) -> Result<BTreeMap<String, String>, Error> {
        let project = self.load()?;
        let applied = self.applied_if_reachable();
        Ok(project
            .graph
            .trees()
            .into_iter()
            .map(|t| {
                let text = graph_text::draw_tree(&project.graph, t, &applied);
                (t.to_string(), text)
            })
            .collect())
    }

    /// The applied revisions, or none when the database cannot be read.
    fn applied_if_reachable(&self) -> BTreeSet<String> {
        self.connect_read_only()
            .ok()
            .and_then(|mut c| ledger::revisions(c.as_mut()).ok())
            .map(|r| ledger::applied(&r))
            .unwrap_or_default()
    }
}
