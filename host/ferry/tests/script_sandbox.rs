//! The sandbox: limits stop runaway scripts, escapes are refused, and failures say who
//! failed (the script's own `throw` or the host) and where.

#[path = "../../cli/tests/common/mod.rs"]
mod common;
mod script_support;
use ferry::script::{FailureKind, Limits};
use script_support::{repo, Backend, Repo};
use std::time::{Duration, Instant};

fn sqlite() -> Repo {
    repo(Backend::Sqlite, "sandbox").unwrap()
}

#[test]
fn infinite_loop_hits_the_operation_limit() {
    let r = sqlite();
    r.revision(
        "r1",
        "fn upgrade(db) {\n    let i = 0;\n    loop { i += 1; }\n}",
    );
    let limits = Limits {
        max_operations: 100_000,
        ..Limits::default()
    };
    let e = r.upgrade_fails_with(r.migrator().with_limits(limits));
    assert_eq!(e.kind, FailureKind::Limit, "{e}");
    assert!(e.message.contains("operation limit"), "{e}");
    assert_eq!(e.revision, "r1");
    assert!(e.file.ends_with("scripts/t/r1.rhai"), "{e}");
}

#[test]
fn wall_clock_limit_stops_a_slow_script() {
    let r = sqlite();
    r.revision("r1", "fn upgrade(db) { let i = 0; loop { i += 1; } }");
    let limits = Limits {
        max_duration: Duration::from_millis(300),
        ..Limits::default()
    };
    let started = Instant::now();
    let e = r.upgrade_fails_with(r.migrator().with_limits(limits));
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(e.kind, FailureKind::Limit, "{e}");
    assert!(e.message.contains("time limit"), "{e}");
}

#[test]
fn deep_recursion_hits_the_call_depth_limit() {
    let r = sqlite();
    r.revision(
        "r1",
        "fn down(n) { down(n + 1) }\nfn upgrade(db) { down(0) }",
    );
    let e = r.upgrade_fails();
    assert_eq!(e.kind, FailureKind::Limit, "{e}");
    assert!(e.message.contains("nested calls"), "{e}");
}

#[test]
fn huge_string_hits_the_size_limit() {
    let r = sqlite();
    r.revision("r1", "fn upgrade(db) { let s = \"x\"; loop { s += s; } }");
    let limits = Limits {
        max_string_size: 1 << 20,
        ..Limits::default()
    };
    let e = r.upgrade_fails_with(r.migrator().with_limits(limits));
    assert_eq!(e.kind, FailureKind::Limit, "{e}");
    assert!(e.message.to_lowercase().contains("length of string"), "{e}");
}

#[test]
fn huge_array_hits_the_size_limit() {
    let r = sqlite();
    r.revision("r1", "fn upgrade(db) { let a = []; loop { a.push(1); } }");
    let limits = Limits {
        max_array_size: 10_000,
        ..Limits::default()
    };
    let e = r.upgrade_fails_with(r.migrator().with_limits(limits));
    assert_eq!(e.kind, FailureKind::Limit, "{e}");
}

#[test]
fn eval_is_rejected() {
    let r = sqlite();
    r.revision("r1", "fn upgrade(db) { eval(\"1 + 1\"); }");
    // `eval` is a disabled symbol: the file does not even compile (its metadata cannot
    // be read), so nothing runs.
    let err = r.try_upgrade().expect_err("eval must be refused");
    assert!(err.to_string().contains("eval"), "{err}");
}

#[test]
fn import_outside_the_roots_is_rejected() {
    for path in ["../../etc/passwd", "/etc/passwd", "../scripts/t/r1"] {
        let r = sqlite();
        r.write("stdlib/ok.rhai", "fn one() { 1 }");
        r.revision(
            "r1",
            &format!("import {path:?} as p;\nfn upgrade(db) {{ }}"),
        );
        let e = r.upgrade_fails();
        assert_eq!(e.kind, FailureKind::Script, "{path}: {e}");
        assert!(
            e.message.contains("without '..' or an absolute path"),
            "{path}: {e}"
        );
    }
}

#[test]
fn import_from_stdlib_and_own_lib_works() {
    let r = sqlite();
    r.write("stdlib/ferry/math.rhai", "fn double(x) { x * 2 }");
    r.write("scripts/lib/local.rhai", "fn triple(x) { x * 3 }");
    r.revision(
        "r1",
        r#"import "ferry/math" as m;
import "local" as l;
fn upgrade(db) {
    db.execute("CREATE TABLE out (v BIGINT)");
    db.execute("INSERT INTO out VALUES (?)", [m::double(l::triple(7))]);
}"#,
    );
    r.upgrade_ok();
    assert_eq!(r.int("SELECT v FROM out"), 42);
}

#[test]
fn a_plugin_cannot_import_another_plugins_lib() {
    let r = sqlite();
    r.write("plugins/a/lib/secret.rhai", "fn x() { 1 }");
    r.write(
        "plugins/b/hooks/h.rhai",
        "const HOOK = \"h\";\nimport \"secret\" as s;\nfn run(db, args) { s::x() }",
    );
    r.revision_with_hooks("r1", &["h"], "fn upgrade(db) { hooks::run(\"h\", #{}); }");
    // Refused before anything runs by the static checks, and at run time by the sandbox.
    match r.try_upgrade() {
        Err(ferry::migrator::Error::Lint(p)) => assert!(
            p[0].to_string()
                .contains("h.rhai:2:1: error: import \"secret\" does not resolve"),
            "{p:?}"
        ),
        other => panic!("expected the static checks to refuse: {other:?}"),
    }
    let e = r.upgrade_fails_with(r.migrator().with_static_checks(false));
    assert!(e.message.contains("not found"), "{e}");
}

#[test]
fn no_clock_file_or_process_functions() {
    for call in [
        "timestamp()",
        "sleep(1)",
        "open_file(\"x\")",
        "system(\"ls\")",
    ] {
        let r = sqlite();
        r.revision("r1", &format!("fn upgrade(db) {{ let t = {call}; }}"));
        // The static checks refuse what is not defined at all (`sleep` is: it throws).
        if call != "sleep(1)" {
            match r.try_upgrade() {
                Err(ferry::migrator::Error::Lint(p)) => assert!(
                    p[0].message.contains("is not defined by this script"),
                    "{call}: {p:?}"
                ),
                other => panic!("{call}: expected the static checks to refuse: {other:?}"),
            }
        }
        let e = r.upgrade_fails_with(r.migrator().with_static_checks(false));
        assert_eq!(e.kind, FailureKind::Script, "{call}: {e}");
        assert!(
            e.message.contains("Function not found") || e.message.contains("not available"),
            "{call}: {e}"
        );
    }
}

#[test]
fn host_failure_and_throw_are_told_apart() {
    let r = sqlite();
    r.revision(
        "r1",
        r#"fn upgrade(db) {
    db.step("bad sql", |db| {
        db.execute("INSERT INTO no_such_table VALUES (1)");
    });
}"#,
    );
    let e = r.upgrade_fails();
    assert_eq!(e.kind, FailureKind::Host, "{e}");
    assert!(e.message.contains("no_such_table"), "{e}");
    assert_eq!(e.revision, "r1");
    assert_eq!(e.step.as_deref(), Some("bad sql"));
    assert!(e.file.ends_with("scripts/t/r1.rhai"), "{e}");
    assert_eq!(e.line, 11, "{e}");
    assert!(
        e.source_line.as_deref().unwrap().contains("no_such_table"),
        "{e}"
    );

    let r = sqlite();
    r.revision(
        "r1",
        r#"fn upgrade(db) {
    db.step("checks", |db| {
        throw "instrument HSC has no detectors";
    });
}"#,
    );
    let e = r.upgrade_fails();
    assert_eq!(e.kind, FailureKind::Thrown, "{e}");
    assert_eq!(e.message, "instrument HSC has no detectors");
    assert_eq!(e.step.as_deref(), Some("checks"));
    assert_eq!(e.line, 11, "{e}");
    assert!(e.source_line.as_deref().unwrap().contains("throw"), "{e}");
}

#[test]
fn errors_in_imported_modules_name_the_module_file() {
    let r = sqlite();
    r.write(
        "stdlib/bad.rhai",
        "fn boom(db) {\n    db.execute(\"SELECT * FROM nowhere\");\n}",
    );
    r.revision(
        "r1",
        "import \"bad\" as b;\nfn upgrade(db) { b::boom(db); }",
    );
    let e = r.upgrade_fails();
    assert_eq!(e.kind, FailureKind::Host, "{e}");
    assert!(e.file.ends_with("stdlib/bad.rhai"), "{e}");
    assert_eq!(e.line, 2, "{e}");
}

#[test]
fn a_thrown_error_can_be_caught_by_the_script() {
    let r = sqlite();
    r.revision(
        "r1",
        r#"fn upgrade(db) {
    let msg = "";
    try { config::get("missing.key"); } catch (e) { msg = `${e}`; }
    db.execute("CREATE TABLE out (m TEXT)");
    db.execute("INSERT INTO out VALUES (?)", [msg]);
}"#,
    );
    r.upgrade_ok();
    assert!(r
        .text("SELECT m FROM out")
        .contains("\"missing.key\" is required"));
}
