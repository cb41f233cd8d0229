//! `ferry new TREE -m MESSAGE`: writes a new revision file with its header filled in.
//!
//! The new revision's id is `TREE-<n+1>` (n: the tree's revision count; bumped until
//! unused), its parents the tree's heads (two heads make the new revision a merge), and
//! it goes next to the tree's newest head file. A tree that does not exist yet needs
//! `new_tree`, and goes to `<first root>/<TREE>/`.

use crate::graph::Graph;
use std::path::{Path, PathBuf};

/// Why no file was written.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NewError {
    #[error("unknown tree {tree:?} (known: {known}); pass --new-tree to start a new tree")]
    UnknownTree { tree: String, known: String },
    #[error("tree {0:?} already exists; drop --new-tree to add a revision to it")]
    TreeExists(String),
    #[error("no script root to write into")]
    NoRoot,
    #[error("a tree name may only hold letters, digits, '-' and '_': {0:?}")]
    BadName(String),
    #[error("cannot write {}: {message}", path.display())]
    Write { path: PathBuf, message: String },
    /// A message every later command would refuse (MESSAGE is one printable line).
    #[error("the message {message:?} {why}")]
    BadMessage { message: String, why: String },
}

/// What `new` wrote.
#[derive(Debug, Clone, serde::Serialize)]
pub struct NewRevision {
    /// The new revision's id.
    pub revision: String,
    /// Its parents (the tree's head before it; none for a new tree).
    pub parents: Vec<String>,
    /// The script file written.
    pub file: PathBuf,
}

fn rhai_string(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

/// The text of a new revision file.
pub fn template(id: &str, tree: &str, parents: &[String], message: &str) -> String {
    let parents = parents
        .iter()
        .map(|p| rhai_string(p))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "// {message}\n\
         const REVISION = {id};\n\
         const TREE = {tree};\n\
         const PARENTS = [{parents}];\n\
         const VERSION = \"TODO\"; // the tree's human version after this revision\n\
         const DEPENDS_ON = [];\n\
         const MESSAGE = {msg};\n\
         \n\
         fn upgrade(db) {{\n    \
             // db.step(\"name\", |db| {{ db.execute(\"...\"); }});\n    \
             throw \"{raw_id}: upgrade is not written yet\";\n\
         }}\n\
         \n\
         fn downgrade(db) {{\n    \
             throw \"{raw_id}: downgrade is not written yet\";\n\
         }}\n",
        id = rhai_string(id),
        tree = rhai_string(tree),
        msg = rhai_string(message),
        raw_id = id.replace('"', ""),
    )
}

/// Writes the new revision of `tree` and returns what it wrote.
pub fn write_new(
    graph: &Graph,
    roots: &[PathBuf],
    tree: &str,
    message: &str,
    new_tree: bool,
) -> Result<NewRevision, NewError> {
    if tree.is_empty()
        || !tree
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(NewError::BadName(tree.into()));
    }
    if let Some(why) = crate::metadata::unprintable(message, crate::metadata::MAX_MESSAGE_CHARS) {
        return Err(NewError::BadMessage {
            message: message.into(),
            why,
        });
    }
    let revs = graph.tree_revisions(tree);
    let (dir, parents): (PathBuf, Vec<String>) = if revs.is_empty() {
        if !new_tree {
            return Err(NewError::UnknownTree {
                tree: tree.into(),
                known: graph.trees().join(", "),
            });
        }
        let root = roots.first().ok_or(NewError::NoRoot)?;
        (root.join(tree), vec![])
    } else {
        if new_tree {
            return Err(NewError::TreeExists(tree.into()));
        }
        let heads: Vec<String> = graph.heads(tree).into_iter().map(String::from).collect();
        let newest = heads
            .iter()
            .filter_map(|h| graph.get(h))
            .max_by_key(|m| graph.position(&m.id))
            .expect("a tree has a head");
        let dir = newest
            .path
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| newest.root.clone());
        (dir, heads)
    };
    let mut n = revs.len() + 1;
    let id = loop {
        let candidate = format!("{tree}-{n}");
        if !graph.contains(&candidate) && !dir.join(format!("{candidate}.rhai")).exists() {
            break candidate;
        }
        n += 1;
    };
    let file = dir.join(format!("{id}.rhai"));
    let io = |e: std::io::Error| NewError::Write {
        path: file.clone(),
        message: e.to_string(),
    };
    std::fs::create_dir_all(&dir).map_err(io)?;
    std::fs::write(&file, template(&id, tree, &parents, message)).map_err(io)?;
    Ok(NewRevision {
        revision: id,
        parents,
        file,
    })
}
