//! One analysis of each script file (issue 15): the bytes discovery hashed are the bytes
//! that run and that the ledger records, every file is compiled once per command, and
//! `DEFAULTS` is type-checked at discovery.

#[path = "../../cli/tests/common/mod.rs"]
mod common;
mod script_support;

use ferry::observer::{Event, Observer};
use script_support::{repo, Backend, Repo};
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;

/// Rewrites a file when a given revision starts: someone editing the tree while a
/// migration runs.
struct EditWhenStarted {
    revision: &'static str,
    file: PathBuf,
    text: String,
    done: RefCell<bool>,
}

impl Observer for EditWhenStarted {
    fn event(&self, event: &Event) {
        if let Event::RevisionStarted { revision, .. } = event {
            if revision == self.revision && !*self.done.borrow() {
                std::fs::write(&self.file, &self.text).expect("rewrite");
                *self.done.borrow_mut() = true;
            }
        }
    }
}

fn sqlite(test: &str) -> Repo {
    repo(Backend::Sqlite, test).expect("sqlite")
}

/// The discovered version runs: the plan, the checks, the checksum in the ledger and the
/// statements that ran all describe one text. Running the edited text instead would
/// record a checksum of bytes that never ran (or run bytes nobody checked); refusing
/// would leave a half-applied plan for an edit the next command sees anyway (as a
/// pending change of an applied revision).
#[test]
fn a_file_edited_during_the_run_runs_as_discovered() {
    let r = sqlite("edited_during_run");
    r.revision(
        "r1",
        "fn upgrade(db) { db.execute(\"CREATE TABLE first (x INTEGER)\", []); }",
    );
    let second = r.revision(
        "r2",
        "fn upgrade(db) { db.execute(\"CREATE TABLE planned (x INTEGER)\", []); }",
    );
    let discovered = std::fs::read(&second).unwrap();
    let edited = String::from_utf8(discovered.clone())
        .unwrap()
        .replace("planned", "edited");
    let edit = Rc::new(EditWhenStarted {
        revision: "r1",
        file: second.clone(),
        text: edited.clone(),
        done: RefCell::new(false),
    });
    let report = r.upgrade_with(r.migrator().with_observer(edit.clone()));
    assert!(report.failed.is_none(), "{:?}", report.failed);
    assert!(*edit.done.borrow(), "the file was edited during the run");
    assert_eq!(std::fs::read_to_string(&second).unwrap(), edited);
    let tables = r.column(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('planned', 'edited')",
    );
    assert_eq!(
        tables,
        [ferry::backend::Value::Text("planned".into())],
        "the discovered text ran"
    );
    let expected = ferry::analysis::checksum(&discovered);
    assert_eq!(
        r.text("SELECT checksum FROM ferry_revisions WHERE revision = 'r2'"),
        expected
    );
    assert_eq!(
        r.text("SELECT content FROM ferry_sources WHERE revision = 'r2' AND kind = 'revision'"),
        String::from_utf8(discovered).unwrap(),
        "the ledger keeps the text that ran"
    );
    assert_eq!(
        r.text("SELECT checksum FROM ferry_sources WHERE revision = 'r2' AND kind = 'revision'"),
        expected
    );
}

/// Discovery, the static checks, the checksums of what a revision runs, its declared
/// steps and the run itself share one compilation of each file: revisions, a hook, a
/// `lib/` module and a `stdlib/` module, each imported or called.
#[test]
fn an_upgrade_compiles_every_script_file_once() {
    let r = sqlite("compiled_once");
    r.write("stdlib/shared.rhai", "fn twice(x) { x * 2 }");
    r.write(
        "scripts/lib/util.rhai",
        "import \"shared\" as s;\nfn size() { s::twice(2) }",
    );
    r.write(
        "scripts/t/hooks/h.rhai",
        "const HOOK = \"h\";\nimport \"util\" as u;\nfn run(db, args) { u::size() }",
    );
    r.revision_with_hooks(
        "r1",
        &["h"],
        "import \"util\" as u;\nfn upgrade(db) {\n    let n = hooks::run(\"h\", #{}) + u::size();\n    db.step(\"make\", |db| { db.execute(`CREATE TABLE t${n} (x INTEGER)`, []); });\n}",
    );
    r.revision(
        "r2",
        "fn upgrade(db) { db.execute(\"CREATE TABLE second (x INTEGER)\", []); }",
    );
    let files = 5;
    let before = ferry::analysis::parses_on_this_thread();
    r.upgrade_ok();
    let parses = ferry::analysis::parses_on_this_thread() - before;
    assert_eq!(
        r.int("SELECT COUNT(*) FROM t8"),
        0,
        "the hook and modules ran"
    );
    assert_eq!(
        r.int("SELECT COUNT(*) FROM ferry_sources WHERE revision = 'r1'"),
        3,
        "r1 ran its own file, the hook and the lib/ module"
    );
    assert_eq!(parses, files, "{parses} compilations of {files} files");
    // A second command in the same process (`plan`: checks, graph, declared steps)
    // discovers the revisions and the hook again, once each, so that an edit is seen;
    // the modules' bytes are read again but, unchanged, not compiled again.
    let before = ferry::analysis::parses_on_this_thread();
    r.migrator().plan_report(&[]).expect("plan");
    let parses = ferry::analysis::parses_on_this_thread() - before;
    assert_eq!(
        parses, 3,
        "{parses} compilations by plan of 2 revisions and 1 hook"
    );
    // An edited module is compiled again (and only it).
    r.write(
        "scripts/lib/util.rhai",
        "import \"shared\" as s;\nfn size() { s::twice(3) }",
    );
    let before = ferry::analysis::parses_on_this_thread();
    r.migrator().plan_report(&[]).expect("plan");
    let parses = ferry::analysis::parses_on_this_thread() - before;
    assert_eq!(
        parses, 4,
        "{parses} compilations after editing lib/util.rhai"
    );
    // `status` and `show` keep no syntax trees, but still compile each revision and
    // hook once: the edit of the module r1 imports is found from that one compilation.
    let m = r.migrator();
    let before = ferry::analysis::parses_on_this_thread();
    let status = m.status().expect("status");
    let shown = m.show("r1").expect("show");
    let parses = ferry::analysis::parses_on_this_thread() - before;
    assert_eq!(status.changed, ["r1"]);
    assert!(shown.changed, "show names the changed module too");
    assert_eq!(
        parses, 3,
        "{parses} compilations by status and show of 2 revisions and 1 hook"
    );
}

#[test]
fn a_defaults_of_the_wrong_type_is_refused_at_discovery_naming_its_line() {
    let r = sqlite("defaults_type");
    r.revision(
        "r1",
        "const DEFAULTS = [\"t.size\", 3];\nfn upgrade(db) { config::get(\"t.size\"); }",
    );
    let err = r.try_upgrade().expect_err("refused");
    let text = err.to_string();
    assert!(
        text.contains("r1.rhai:9: DEFAULTS must be an object map, found array"),
        "{text}"
    );
    assert_eq!(
        r.int("SELECT COUNT(*) FROM sqlite_master WHERE name = 'ferry_revisions'"),
        0
    );
}

#[test]
fn defaults_reach_the_script() {
    let r = sqlite("defaults_run");
    r.revision(
        "r1",
        "const DEFAULTS = #{ \"t.size\": 3, \"t.name\": \"kept\" };\n\
         fn upgrade(db) {\n    let n = config::get(\"t.size\");\n    let name = config::get(\"t.name\");\n    db.execute(`CREATE TABLE ${name}_${n} (x INTEGER)`, []);\n}",
    );
    r.upgrade_ok();
    assert_eq!(r.int("SELECT COUNT(*) FROM kept_3"), 0);
}
