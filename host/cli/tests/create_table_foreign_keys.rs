//! `schema::create_table` checks each foreign key against its target before anything is
//! created: a missing table, a missing column, or target columns that are neither the
//! primary key nor unique fail the step with the author's file and line, the table, the
//! foreign key and the target columns, on SQLite as on PostgreSQL, and leave nothing
//! behind (SQLite alone would commit the broken table and fail a step later with
//! "foreign key mismatch").
//!
//! The scripts are a new instrument team's plugin `obs_test` (instrument TST) adding a
//! dimension table of its own, written into a temporary folder per case.

mod common;
use common::*;
use std::path::{Path, PathBuf};

const CORE: &str = r#"const REVISION = "dimensions-1";
const TREE = "dimensions";
const PARENTS = [];
const VERSION = "1";
const DEPENDS_ON = [];
const MESSAGE = "instrument and a non-unique column";
fn upgrade(db) {
    schema::create_table("instrument", #{
        columns: [
            #{ name: "name", type: "VARCHAR(32)", nullable: false },
            #{ name: "visit_system", type: "INTEGER", nullable: true },
        ],
        primary_key: ["name"],
    });
}
"#;

/// The plugin revision, with its foreign key referencing `target (columns)`.
fn plugin_revision(target: &str, columns: &str) -> String {
    format!(
        r#"const REVISION = "obs_test-1";
const TREE = "obs_test";
const PARENTS = [];
const VERSION = "1";
const DEPENDS_ON = ["dimensions-1"];
const MESSAGE = "TST filters";
fn upgrade(db) {{
    db.execute("CREATE TABLE tst_marker (x INTEGER)", []);
    schema::create_table("tst_filter", #{{
        columns: [
            #{{ name: "instrument", type: "VARCHAR(32)", nullable: false }},
            #{{ name: "band", type: "VARCHAR(32)", nullable: false }},
        ],
        primary_key: ["instrument", "band"],
        foreign_keys: [
            #{{ name: "tst_filter_fkey_instrument", columns: ["instrument"],
               references: "{target}", referenced_columns: [{columns}] }},
        ],
    }});
}}
"#
    )
}

/// Writes the core root and the plugin root under `dir`; returns both roots.
fn roots(dir: &Path, target: &str, columns: &str) -> (PathBuf, PathBuf) {
    let core = dir.join("scripts");
    let plugin = dir.join("plugins/obs_test");
    std::fs::create_dir_all(core.join("dimensions")).unwrap();
    std::fs::create_dir_all(&plugin).unwrap();
    std::fs::write(core.join("dimensions/001_instrument.rhai"), CORE).unwrap();
    std::fs::write(
        plugin.join("001_filters.rhai"),
        plugin_revision(target, columns),
    )
    .unwrap();
    (core, plugin)
}

fn refused_before_commit(target: &str, columns: &str, why: &str) {
    for_each_backend(&format!("create_table_fk_{target}"), |db| {
        let scratch = tempfile::tempdir().unwrap();
        let (core, plugin) = roots(scratch.path(), target, columns);
        let run = db
            .ferry()
            .scripts(&core)
            .scripts(&plugin)
            .run(["upgrade"])
            .code(1)
            // The call's own line: `schema::create_table` is on line 9.
            .stderr_has("001_filters.rhai:9:")
            .stderr_has(&format!(
                "create_table tst_filter: foreign key tst_filter_fkey_instrument (instrument) references {target} ({})",
                columns.replace('"', "")
            ))
            .stderr_has(why)
            .stderr_has("nothing was created");
        assert!(
            !run.stderr.contains("foreign key mismatch"),
            "{}",
            run.describe()
        );
        assert!(!db.has_table("tst_filter"), "[{}] table left", db.name());
        // The step is the revision's implicit one: its other statement is gone too.
        assert!(!db.has_table("tst_marker"), "[{}] marker left", db.name());
        assert_eq!(
            db.revision_state("obs_test-1").as_deref(),
            Some("failed"),
            "[{}]",
            db.name()
        );
        assert_eq!(
            db.revision_state("dimensions-1").as_deref(),
            Some("applied")
        );
        // Fixed, the same repository upgrades: nothing broken was left to undo.
        std::fs::write(
            plugin.join("001_filters.rhai"),
            plugin_revision("instrument", "\"name\""),
        )
        .unwrap();
        db.ferry()
            .scripts(&core)
            .scripts(&plugin)
            .run(["upgrade"])
            .success();
        db.execute("INSERT INTO instrument (name) VALUES ('TST')");
        db.execute("INSERT INTO tst_filter (instrument, band) VALUES ('TST', 'r')");
        assert_eq!(db.count("tst_filter"), 1);
    });
}

#[test]
fn missing_target_table_is_refused_before_commit() {
    refused_before_commit("instrumnet", "\"name\"", "table instrumnet does not exist");
}

#[test]
fn missing_target_column_is_refused_before_commit() {
    refused_before_commit(
        "instrument",
        "\"nmae\"",
        "table instrument has no column nmae (its columns: name, visit_system)",
    );
}

#[test]
fn target_columns_that_are_not_unique_are_refused_before_commit() {
    refused_before_commit(
        "instrument",
        "\"visit_system\"",
        "(visit_system) is neither the primary key nor unique in instrument (its keys: (name))",
    );
}

#[test]
fn a_unique_target_and_a_self_reference_are_accepted() {
    for_each_backend("create_table_fk_accepted", |db| {
        let scratch = tempfile::tempdir().unwrap();
        let (core, plugin) = roots(scratch.path(), "instrument", "\"name\"");
        std::fs::write(
            plugin.join("002_groups.rhai"),
            r#"const REVISION = "obs_test-2";
const TREE = "obs_test";
const PARENTS = ["obs_test-1"];
const VERSION = "2";
const DEPENDS_ON = [];
const MESSAGE = "TST filter groups";
fn upgrade(db) {
    schema::create_table("tst_group", #{
        columns: [
            #{ name: "id", type: "INTEGER", nullable: false },
            #{ name: "code", type: "VARCHAR(8)", nullable: false },
            #{ name: "parent", type: "INTEGER", nullable: true },
            #{ name: "band", type: "VARCHAR(32)", nullable: true },
            #{ name: "instrument", type: "VARCHAR(32)", nullable: true },
        ],
        primary_key: ["id"],
        unique: [#{ name: "tst_group_code", columns: ["code"] }],
        foreign_keys: [
            #{ name: "tst_group_fkey_parent", columns: ["parent"], references: "tst_group", referenced_columns: ["id"] },
            #{ name: "tst_group_fkey_filter", columns: ["instrument", "band"], references: "tst_filter", referenced_columns: ["instrument", "band"] },
        ],
    });
}
"#,
        )
        .unwrap();
        db.ferry()
            .scripts(&core)
            .scripts(&plugin)
            .run(["upgrade"])
            .success();
        assert!(db.has_table("tst_group"), "[{}]", db.name());
        db.execute("INSERT INTO tst_group (id, code) VALUES (1, 'a')");
        db.execute("INSERT INTO tst_group (id, code, parent) VALUES (2, 'b', 1)");
        assert_eq!(db.count("tst_group"), 2);
    });
}

/// A target table Ferry did not make (hand-written SQL, as another tool leaves it): a
/// unique index counts as a key, a plain index does not.
#[test]
fn a_target_made_by_hand_written_sql_is_read_as_the_database_has_it() {
    for_each_backend("create_table_fk_hand_written", |db| {
        db.execute(
            "CREATE TABLE instrument (name VARCHAR(32) NOT NULL, code INTEGER, grp INTEGER)",
        );
        db.execute("CREATE UNIQUE INDEX instrument_code ON instrument (code)");
        db.execute("CREATE INDEX instrument_grp ON instrument (grp)");
        let scratch = tempfile::tempdir().unwrap();
        let plugin = scratch.path().join("obs_test");
        std::fs::create_dir_all(&plugin).unwrap();
        let revision = |column: &str| {
            format!(
                r#"const REVISION = "obs_test-1";
const TREE = "obs_test";
const PARENTS = [];
const VERSION = "1";
const DEPENDS_ON = [];
const MESSAGE = "TST detectors";
fn upgrade(db) {{
    schema::create_table("tst_detector", #{{
        columns: [#{{ name: "instrument_ref", type: "INTEGER", nullable: false }}],
        foreign_keys: [#{{ name: "tst_detector_fkey", columns: ["instrument_ref"],
                          references: "instrument", referenced_columns: ["{column}"] }}],
    }});
}}
"#
            )
        };
        std::fs::write(plugin.join("001_detectors.rhai"), revision("grp")).unwrap();
        db.ferry()
            .scripts(&plugin)
            .run(["upgrade"])
            .code(1)
            .stderr_has("001_detectors.rhai:8:")
            .stderr_has(
                "(grp) is neither the primary key nor unique in instrument (its keys: (code))",
            );
        assert!(!db.has_table("tst_detector"), "[{}]", db.name());
        std::fs::write(plugin.join("001_detectors.rhai"), revision("code")).unwrap();
        db.ferry().scripts(&plugin).run(["upgrade"]).success();
        db.execute("INSERT INTO instrument (name, code) VALUES ('TST', 7)");
        db.execute("INSERT INTO tst_detector (instrument_ref) VALUES (7)");
        assert_eq!(db.count("tst_detector"), 1);
    });
}
