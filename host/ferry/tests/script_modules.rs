//! The `uuid::`, `config::`, `attributes::`, `hooks::` and `log::` capabilities on
//! both backends, driven through `Migrator`.

#[path = "../../cli/tests/common/mod.rs"]
mod common;
mod script_support;
use ferry::migrator::Error;
use ferry::observer::{Event, Level};
use script_support::Collect;
use std::rc::Rc;

const CHECK: &str = r#"
fn check(actual, expected, what) {
    if actual != expected {
        throw `${what}: expected ${expected} (${type_of(expected)}), found ${actual} (${type_of(actual)})`;
    }
}
"#;

both!(uuid_functions, |r| {
    r.revision(
        "r1",
        &format!(
            "{CHECK}{}",
            r#"
fn upgrade(db) {
    let ns = uuid::parse("840b31d9-05cd-5161-b2c8-00d32b280d0f");
    let u = uuid::v5(ns, "dataset_type=raw,run=HSC/raw/all,detector=42,exposure=903334,instrument=HSC");
    check(u.canonical, "2f5ee4b8-756e-5705-96b4-3c7b66c7dab5", "v5 (WORKLOAD example)");
    check(u.hex, "2f5ee4b8756e570596b43c7b66c7dab5", "hex");
    check(uuid::hex(u), "2f5ee4b8756e570596b43c7b66c7dab5", "uuid::hex");
    check(uuid::canonical(u), "2f5ee4b8-756e-5705-96b4-3c7b66c7dab5", "uuid::canonical");
    check(u.version, 5, "version");
    check(`${u}`, "2f5ee4b8-756e-5705-96b4-3c7b66c7dab5", "to_string");
    check(uuid::v5("840b31d9-05cd-5161-b2c8-00d32b280d0f", "x"), uuid::v5(ns, "x"), "v5 with a text namespace");
    check(uuid::parse("2f5ee4b8756e570596b43c7b66c7dab5"), u, "parse hex");
    check(uuid::parse(u), u, "parse a Uuid");
    let a = uuid::v4();
    let b = uuid::v4();
    check(a.version, 4, "v4 version");
    if a == b { throw "two v4 are equal"; }
    let uuid_type = if db.dialect == "postgres" { "UUID" } else { "CHAR(32)" };
    db.execute(`CREATE TABLE u (id BIGINT PRIMARY KEY, v ${uuid_type})`);
    db.execute("INSERT INTO u VALUES (?, ?)", [1, u]);
    check(uuid::parse(db.query_value("SELECT v FROM u WHERE id = ?", [1])), u, "round trip");
    check(db.query_value("SELECT id FROM u WHERE v = ?", [u]), 1, "bound uuid in WHERE");
}
"#
        ),
    );
    r.upgrade_ok();
    let stored = match r.value("SELECT v FROM u") {
        ferry::backend::Value::Uuid(u) => u.to_string(),
        ferry::backend::Value::Text(t) => {
            assert_eq!(
                t, "2f5ee4b8756e570596b43c7b66c7dab5",
                "SQLite stores 32 hex"
            );
            uuid::Uuid::parse_str(&t).unwrap().to_string()
        }
        other => panic!("{other:?}"),
    };
    assert_eq!(stored, "2f5ee4b8-756e-5705-96b4-3c7b66c7dab5");
});

both!(uuid_parse_rejects_garbage, |r| {
    r.revision("r1", "fn upgrade(db) { uuid::parse(\"not-a-uuid\"); }");
    let e = r.upgrade_fails();
    assert!(e.message.contains("not a UUID: \"not-a-uuid\""), "{e}");
});

fn config_revision(r: &script_support::Repo) {
    r.revision(
        "r1",
        &format!(
            "{CHECK}{}",
            r#"
const DEFAULTS = #{ "batch.size": 10, name: "tree default", keep: true };
fn upgrade(db) {
    db.execute("CREATE TABLE cfg (k TEXT, v TEXT)");
    db.execute("INSERT INTO cfg VALUES ('batch.size', ?)", [`${config::get_int("batch.size")}`]);
    db.execute("INSERT INTO cfg VALUES ('name', ?)", [config::get_string("name")]);
    db.execute("INSERT INTO cfg VALUES ('keep', ?)", [`${config::get_bool("keep")}`]);
    check(config::get("absent", 7), 7, "get with default");
    check(config::get_int("absent", 8), 8, "get_int with default");
    check(config::get_string("absent", "d"), "d", "get_string with default");
    check(config::get_bool("absent", true), true, "get_bool with default");
    check(config::has("name"), true, "has name");
    check(config::has("absent"), false, "has absent");
    check(config::get("name"), config::get_string("name"), "get");
}
"#
        ),
    );
}

both!(config_layers_defaults_under_migrator_config, |r| {
    config_revision(r);
    let mut config = ferry::config::ConfigMap::new();
    config.insert("batch.size".into(), toml::Value::Integer(500));
    config.insert("name".into(), toml::Value::String("from --set".into()));
    let report = r.upgrade_with(r.migrator().with_config(config));
    assert!(report.succeeded(), "{:?}", report.failed);
    assert_eq!(r.text("SELECT v FROM cfg WHERE k = 'batch.size'"), "500");
    assert_eq!(r.text("SELECT v FROM cfg WHERE k = 'name'"), "from --set");
    assert_eq!(r.text("SELECT v FROM cfg WHERE k = 'keep'"), "true");
});

both!(config_defaults_alone, |r| {
    config_revision(r);
    r.upgrade_ok();
    assert_eq!(r.text("SELECT v FROM cfg WHERE k = 'batch.size'"), "10");
    assert_eq!(r.text("SELECT v FROM cfg WHERE k = 'name'"), "tree default");
});

both!(config_missing_key_names_key_and_revision, |r| {
    r.revision(
        "needs-config-1",
        "fn upgrade(db) { let x = config::get_int(\"instrument.name\"); }",
    );
    let e = r.upgrade_fails();
    assert!(e.message.contains("\"instrument.name\""), "{e}");
    assert!(e.message.contains("needs-config-1"), "{e}");
    assert_eq!(e.line, 9, "{e}");
});

both!(config_wrong_type, |r| {
    r.revision(
        "r1",
        "fn upgrade(db) { let x = config::get_int(\"name\"); }",
    );
    let mut config = ferry::config::ConfigMap::new();
    config.insert("name".into(), toml::Value::String("HSC".into()));
    let e = r.upgrade_fails_with(r.migrator().with_config(config));
    assert!(
        e.message
            .contains("configuration key \"name\" (asked for by revision r1) must be an integer, found string"),
        "{e}"
    );
});

both!(attributes_functions, |r| {
    r.revision(
        "r1",
        &format!(
            "{CHECK}{}",
            r#"
fn upgrade(db) {
    db.execute("CREATE TABLE butler_attributes (name VARCHAR(1024) PRIMARY KEY, value TEXT NOT NULL)");
    check(attributes::get("nope"), (), "absent attribute");
    attributes::set("a", "1");
    attributes::set("a", "2");
    attributes::set("b", "'); DROP TABLE butler_attributes; --");
    check(attributes::get("a"), "2", "overwritten");
    attributes::set("gone", "x");
    check(attributes::delete("gone"), 1, "deleted");
    check(attributes::delete("gone"), 0, "deleted twice");
    check(attributes::manager("datasets"), (), "no manager yet");
    attributes::set_manager("datasets", "lsst.daf.butler.ByDimensionsDatasetRecordStorageManagerUUID", "1.0.0");
    attributes::set_manager("datasets", "lsst.daf.butler.ByDimensionsDatasetRecordStorageManagerUUID", "2.0.0");
    let m = attributes::manager("datasets");
    check(m.class, "lsst.daf.butler.ByDimensionsDatasetRecordStorageManagerUUID", "class");
    check(m.version, "2.0.0", "version");
    attributes::set_manager("collections", "Old", "0.1");
    attributes::set_manager("collections", "New", "1.0");
    check(attributes::all().keys().len(), 6, "attribute count");
}
"#
        ),
    );
    r.upgrade_ok();
    let names: Vec<String> = r
        .column("SELECT name FROM butler_attributes ORDER BY name")
        .into_iter()
        .map(|v| match v {
            ferry::backend::Value::Text(t) => t,
            o => panic!("{o:?}"),
        })
        .collect();
    assert_eq!(
        names,
        [
            "a",
            "b",
            "config:registry.managers.collections",
            "config:registry.managers.datasets",
            "version:New",
            "version:lsst.daf.butler.ByDimensionsDatasetRecordStorageManagerUUID",
        ]
    );
    assert_eq!(
        r.text("SELECT value FROM butler_attributes WHERE name = 'b'"),
        "'); DROP TABLE butler_attributes; --"
    );
});

both!(attributes_table_is_configurable, |r| {
    r.revision(
        "r1",
        r#"fn upgrade(db) {
    db.execute("CREATE TABLE app_meta (name TEXT PRIMARY KEY, value TEXT)");
    attributes::set("k", "v");
}"#,
    );
    let mut config = ferry::config::ConfigMap::new();
    config.insert(
        "attributes.table".into(),
        toml::Value::String("app_meta".into()),
    );
    let report = r.upgrade_with(r.migrator().with_config(config));
    assert!(report.succeeded(), "{:?}", report.failed);
    assert_eq!(r.text("SELECT value FROM app_meta WHERE name = 'k'"), "v");
});

fn hook_tree(r: &script_support::Repo) {
    r.write(
        "plugins/obs_subaru/hooks/amp.rhai",
        r#"const HOOK = "populate_amplifier";
const KEY = "HSC";
fn run(db, args) {
    db.bulk_insert("amplifier", ["instrument", "name"], [[args.instrument, "A"], [args.instrument, "B"]])
}"#,
    );
    r.write(
        "plugins/obs_lsst/hooks/amp.rhai",
        r#"const HOOK = "populate_amplifier";
const KEY = "LATISS";
fn run(db, args) {
    db.bulk_insert("amplifier", ["instrument", "name"], [[args.instrument, "C00"]])
}"#,
    );
    r.write(
        "plugins/obs_base/hooks/uuid.rhai",
        r#"const HOOK = "dataset_uuid";
fn run(db, args) { uuid::v5("840b31d9-05cd-5161-b2c8-00d32b280d0f", args.name) }"#,
    );
}

both!(hooks_provided_and_keyed, |r| {
    hook_tree(r);
    r.revision_with_hooks(
        "r1",
        &["populate_amplifier", "dataset_uuid"],
        r#"fn upgrade(db) {
    db.execute("CREATE TABLE amplifier (instrument TEXT, name TEXT)");
    let keys = hooks::keys("populate_amplifier");
    keys.sort();
    if keys != ["HSC", "LATISS"] { throw `keys ${keys}`; }
    if !hooks::has("populate_amplifier", "HSC") || hooks::has("populate_amplifier", "DECam") { throw "has"; }
    if !hooks::has("dataset_uuid") || hooks::has("nothing") { throw "has (unkeyed)"; }
    for k in keys { hooks::run("populate_amplifier", k, #{ instrument: k }); }
    let u = hooks::run("dataset_uuid", #{ name: "x" });
    db.execute("CREATE TABLE u (v TEXT)");
    db.execute("INSERT INTO u VALUES (?)", [u.canonical]);
}"#,
    );
    r.upgrade_ok();
    assert_eq!(
        r.int("SELECT COUNT(*) FROM amplifier WHERE instrument = 'HSC'"),
        2
    );
    assert_eq!(
        r.int("SELECT COUNT(*) FROM amplifier WHERE instrument = 'LATISS'"),
        1
    );
    let ns = uuid::Uuid::parse_str("840b31d9-05cd-5161-b2c8-00d32b280d0f").unwrap();
    assert_eq!(
        r.text("SELECT v FROM u"),
        uuid::Uuid::new_v5(&ns, b"x").to_string()
    );
});

both!(hooks_missing_is_a_planning_error, |r| {
    hook_tree(r);
    r.revision_with_hooks(
        "r1",
        &["populate_visit"],
        r#"fn upgrade(db) { db.execute("CREATE TABLE ran (x BIGINT)"); }"#,
    );
    match r.try_upgrade() {
        Err(Error::Hooks(problems)) => {
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(
                problems[0].contains("calls hook \"populate_visit\", which no plugin provides"),
                "{problems:?}"
            );
        }
        other => panic!("expected Error::Hooks, got {other:?}"),
    }
    assert!(!r.conn().table_exists("ran").unwrap(), "nothing ran");
});

both!(hooks_doubly_provided_is_a_planning_error, |r| {
    hook_tree(r);
    r.write(
        "plugins/obs_subaru2/hooks/amp.rhai",
        "const HOOK = \"populate_amplifier\";\nconst KEY = \"HSC\";\nfn run(db, args) {}",
    );
    r.revision_with_hooks("r1", &["populate_amplifier"], "fn upgrade(db) {}");
    match r.try_upgrade() {
        Err(Error::Hooks(problems)) => assert!(
            problems.iter().any(|p| p.contains("provided 2 times")),
            "{problems:?}"
        ),
        other => panic!("expected Error::Hooks, got {other:?}"),
    }
});

both!(hooks_undeclared_and_unknown_key, |r| {
    hook_tree(r);
    r.revision_with_hooks(
        "r1",
        &["populate_amplifier"],
        r#"fn upgrade(db) { hooks::run("populate_amplifier", "DECam", #{}); }"#,
    );
    let e = r.upgrade_fails();
    assert!(
        e.message
            .contains("no plugin provides hook \"populate_amplifier\" for \"DECam\" (provided for: HSC, LATISS)"),
        "{e}"
    );
    r.revision(
        "r2",
        r#"fn upgrade(db) { hooks::run("dataset_uuid", #{ name: "x" }); }"#,
    );
    r.rewrite("r1", "fn upgrade(db) {}");
    // Refused before anything runs by the static checks, and at run time by the sandbox.
    match r.try_upgrade() {
        Err(Error::Lint(p)) => assert!(
            p[0].to_string().contains(
                "error: hooks::run(\"dataset_uuid\") runs a hook that revision r2 does not declare"
            ),
            "{p:?}"
        ),
        other => panic!("expected the static checks to refuse: {other:?}"),
    }
    let e = r.upgrade_fails_with(r.migrator().with_static_checks(false));
    assert!(e.message.contains("not declared"), "{e}");
    assert_eq!(e.revision, "r2");
});

both!(log_goes_to_the_observer, |r| {
    r.revision(
        "r1",
        r#"fn upgrade(db) {
    log::verbose("d");
    debug("x");
    log::info("i");
    log::warn("w");
    log::error("e");
    print("p");
    log::progress("copy", 5, 10);
    db.step("s", #{ total: 3 }, |db| { db.execute("CREATE TABLE x (a BIGINT)"); });
}"#,
    );
    let events = Collect::new();
    let report = r.upgrade_with(r.migrator().with_observer(events.clone() as Rc<_>));
    assert!(report.succeeded());
    let logs: Vec<(Level, String)> = events
        .events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Log {
                level,
                message,
                revision,
            } => {
                assert_eq!(revision, "r1");
                Some((level, message))
            }
            _ => None,
        })
        .collect();
    assert_eq!(
        logs,
        [
            (Level::Debug, "d".to_string()),
            (Level::Debug, "\"x\"".to_string()),
            (Level::Info, "i".into()),
            (Level::Warn, "w".into()),
            (Level::Error, "e".into()),
            (Level::Info, "p".into()),
        ]
    );
    let all = events.events();
    assert!(all.contains(&Event::Progress {
        revision: "r1".into(),
        step: "copy".into(),
        done: 5,
        total: Some(10)
    }));
    assert!(all.contains(&Event::StepStarted {
        revision: "r1".into(),
        step: "s".into(),
        total: Some(3)
    }));
    assert!(all
        .iter()
        .any(|e| matches!(e, Event::StepFinished { step, .. } if step == "s")));
    assert!(all
        .iter()
        .any(|e| matches!(e, Event::RevisionFinished { outcome, .. } if outcome == "applied")));
});
