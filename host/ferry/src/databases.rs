//! Which database each tree lives in.
//!
//! By default every tree lives in one database, the **main** one (`--db`). An
//! application may place some trees in other databases, like Galaxy's galaxy model
//! (`gxy`) and tool-shed-install model (`tsi`), which may share one database
//! (combined) or not (separate). In `ferry.toml`:
//!
//! ```toml
//! [databases.install]
//! url = "sqlite:install.sqlite"
//! trees = ["install"]
//! ```
//!
//! Each database has its own ledger and its own lock. A database whose URL is the main
//! one's (or another's) is the same database: its trees are combined into it, under one
//! ledger and one lock.

use crate::backend::DbUrl;
use crate::config::ConfigMap;
use crate::source::Source;
use std::collections::{BTreeMap, BTreeSet};

/// The name of the database every tree not placed elsewhere lives in.
pub const MAIN: &str = "main";

/// Why the placement of trees in databases (`[databases.NAME]` in `ferry.toml`, or
/// [`Builder::database`](crate::Builder::database)) cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DatabasesError {
    /// A `databases` configuration key is not valid.
    #[error("configuration key {key}: {reason}")]
    Config {
        /// The key (`databases.NAME.url`, ...).
        key: String,
        /// What is wrong with it.
        reason: String,
    },
    /// One tree is placed in two different databases.
    #[error("tree {tree:?} is placed in two databases: {first} and {second}")]
    TwoPlaces {
        /// The tree.
        tree: String,
        /// The database it was placed in first.
        first: String,
        /// The other database.
        second: String,
    },
    /// A database places trees that no script defines.
    #[error("database {name:?} places tree(s) {} that no script defines (known trees: {})", .trees.join(", "), .known.join(", "))]
    UnknownTrees {
        /// The database's name.
        name: String,
        /// The trees no script defines.
        trees: Vec<String>,
        /// The trees the scripts define.
        known: Vec<String>,
    },
    /// A database is named `main`, the name of the main database.
    #[error("database name {0:?} is taken by the main database (--db)")]
    MainName(String),
}

/// One database and the trees placed in it.
#[derive(Clone)]
pub struct Database {
    pub name: String,
    pub source: Source,
    /// Trees placed here explicitly (the main database also holds every other tree).
    pub trees: BTreeSet<String>,
}

/// Every database of a repository; the first is the main one.
#[derive(Clone)]
pub struct Databases {
    list: Vec<Database>,
}

/// A database declared in configuration: its name, URL and trees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Declared {
    pub name: String,
    pub url: String,
    pub trees: Vec<String>,
}

impl Databases {
    /// One database holding every tree.
    pub fn single(source: Source) -> Databases {
        Databases {
            list: vec![Database {
                name: MAIN.into(),
                source,
                trees: BTreeSet::new(),
            }],
        }
    }

    /// Places `trees` in database `name`. A source that is the same database as one
    /// already known is combined into it.
    pub fn place(
        &mut self,
        name: &str,
        source: Source,
        trees: impl IntoIterator<Item = String>,
    ) -> Result<(), DatabasesError> {
        if name == MAIN {
            return Err(DatabasesError::MainName(name.into()));
        }
        let trees: BTreeSet<String> = trees.into_iter().collect();
        for tree in &trees {
            if let Some(other) = self
                .list
                .iter()
                .skip(1)
                .find(|d| d.name != name && d.trees.contains(tree))
            {
                return Err(DatabasesError::TwoPlaces {
                    tree: tree.clone(),
                    first: other.name.clone(),
                    second: name.into(),
                });
            }
        }
        if let Some(i) = self
            .list
            .iter()
            .position(|d| d.name == name || d.source.same_database(&source))
        {
            if i > 0 {
                self.list[i].trees.extend(trees);
            }
            return Ok(());
        }
        self.list.push(Database {
            name: name.into(),
            source,
            trees,
        });
        Ok(())
    }

    pub fn list(&self) -> &[Database] {
        &self.list
    }

    #[cfg(any(test, feature = "internals"))]
    pub fn main(&self) -> &Database {
        &self.list[0]
    }

    /// Whether trees live in more than one database.
    pub fn several(&self) -> bool {
        self.list.len() > 1
    }

    /// The index in [`Self::list`] of the database `tree` lives in.
    pub fn of_tree(&self, tree: &str) -> usize {
        self.list
            .iter()
            .skip(1)
            .position(|d| d.trees.contains(tree))
            .map(|i| i + 1)
            .unwrap_or(0)
    }

    /// The index of the database named `name`.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.list.iter().position(|d| d.name == name)
    }

    /// The order in which a migrator takes the databases' locks: by name, the same in
    /// every process, so two migrators never each hold one lock and wait for the other.
    pub fn lock_order(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.list.len()).collect();
        order.sort_by(|a, b| self.list[*a].name.cmp(&self.list[*b].name));
        order
    }

    /// Checks that every placed tree is defined by some script.
    pub fn check_trees(&self, known: &[&str]) -> Result<(), DatabasesError> {
        for d in self.list.iter().skip(1) {
            let unknown: Vec<String> = d
                .trees
                .iter()
                .filter(|t| !known.contains(&t.as_str()))
                .cloned()
                .collect();
            if !unknown.is_empty() {
                return Err(DatabasesError::UnknownTrees {
                    name: d.name.clone(),
                    trees: unknown,
                    known: known.iter().map(|s| s.to_string()).collect(),
                });
            }
        }
        Ok(())
    }
}

/// The databases declared in configuration (`databases.NAME.url`, `databases.NAME.trees`).
pub fn declared(config: &ConfigMap) -> Result<Vec<Declared>, DatabasesError> {
    let mut found: BTreeMap<String, (Option<String>, Option<Vec<String>>)> = BTreeMap::new();
    for (key, value) in config.range("databases.".to_string()..) {
        let Some(rest) = key.strip_prefix("databases.") else {
            break;
        };
        let bad = |reason: &str| DatabasesError::Config {
            key: key.clone(),
            reason: reason.into(),
        };
        let (name, field) = rest
            .rsplit_once('.')
            .ok_or_else(|| bad("expected databases.NAME.url or databases.NAME.trees"))?;
        let entry = found.entry(name.to_string()).or_default();
        match field {
            "url" => {
                let url = value
                    .as_str()
                    .ok_or_else(|| bad("must be a database URL string"))?;
                DbUrl::parse(url).map_err(|e| bad(&e.to_string()))?;
                entry.0 = Some(url.to_string());
            }
            "trees" => {
                let list = value
                    .as_array()
                    .ok_or_else(|| bad("must be a list of tree names"))?;
                let trees = list
                    .iter()
                    .map(|v| v.as_str().map(String::from))
                    .collect::<Option<Vec<_>>>()
                    .ok_or_else(|| bad("must be a list of tree names (strings)"))?;
                entry.1 = Some(trees);
            }
            other => {
                return Err(bad(&format!(
                    "unknown field {other:?} (a database has url and trees)"
                )))
            }
        }
    }
    found
        .into_iter()
        .map(|(name, (url, trees))| {
            let missing = |field: &str| DatabasesError::Config {
                key: format!("databases.{name}.{field}"),
                reason: "is missing".into(),
            };
            Ok(Declared {
                url: url.ok_or_else(|| missing("url"))?,
                trees: trees.ok_or_else(|| missing("trees"))?,
                name,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(u: &str) -> Source {
        Source::Url(DbUrl::parse(u).unwrap())
    }

    #[test]
    fn trees_go_to_their_database_and_the_rest_to_main() {
        let mut d = Databases::single(url("sqlite:a.db"));
        d.place("install", url("sqlite:b.db"), ["tsi".to_string()])
            .unwrap();
        assert!(d.several());
        assert_eq!(d.of_tree("tsi"), 1);
        assert_eq!(d.of_tree("gxy"), 0);
        assert_eq!(d.list()[d.lock_order()[0]].name, "install");
    }

    #[test]
    fn the_same_url_is_one_database() {
        let mut d = Databases::single(url("sqlite:a.db"));
        d.place("install", url("sqlite:a.db"), ["tsi".to_string()])
            .unwrap();
        assert!(!d.several());
        assert_eq!(d.of_tree("tsi"), 0);
    }

    #[test]
    fn a_tree_cannot_live_in_two_databases() {
        let mut d = Databases::single(url("sqlite:a.db"));
        d.place("one", url("sqlite:b.db"), ["t".to_string()])
            .unwrap();
        let e = d
            .place("two", url("sqlite:c.db"), ["t".to_string()])
            .unwrap_err();
        assert!(e.to_string().contains("two databases"), "{e}");
        let e = d.place(MAIN, url("sqlite:c.db"), []).unwrap_err();
        assert!(e.to_string().contains("main"), "{e}");
        let e = d.check_trees(&["x"]).unwrap_err();
        assert!(e.to_string().contains("tree(s) t "), "{e}");
    }

    #[test]
    fn configuration_declares_databases() {
        let text = "[databases.install]\nurl = \"sqlite:i.db\"\ntrees = [\"tsi\"]\n";
        let table: toml::Table = text.parse().unwrap();
        let mut config = ConfigMap::new();
        for (k, v) in table["databases"]["install"].as_table().unwrap() {
            config.insert(format!("databases.install.{k}"), v.clone());
        }
        config.insert("other.key".into(), toml::Value::Integer(1));
        let found = declared(&config).unwrap();
        assert_eq!(
            found,
            vec![Declared {
                name: "install".into(),
                url: "sqlite:i.db".into(),
                trees: vec!["tsi".into()],
            }]
        );
        config.remove("databases.install.trees");
        let e = declared(&config).unwrap_err().to_string();
        assert!(
            e.contains("databases.install.trees") && e.contains("missing"),
            "{e}"
        );
        config.insert("databases.install.trees".into(), toml::Value::Integer(3));
        let e = declared(&config).unwrap_err().to_string();
        assert!(e.contains("list of tree names"), "{e}");
        config.insert(
            "databases.install.trees".into(),
            toml::Value::Array(vec![toml::Value::String("tsi".into())]),
        );
        config.insert(
            "databases.install.url".into(),
            toml::Value::String("mysql://x".into()),
        );
        let e = declared(&config).unwrap_err().to_string();
        assert!(e.contains("databases.install.url"), "{e}");
    }
}
