//! Steps, batches and non-transactional steps on both backends, and a real kill of the
//! `ferry` binary between batches: a rerun resumes without repeating or skipping a row.

mod common;
#[path = "../../ferry/tests/script_support/mod.rs"]
mod script_support;
use ferry::backend::Value;

both!(completed_steps_are_skipped_on_rerun, |r| {
    let body = |fail: bool| {
        format!(
            r#"fn upgrade(db) {{
    db.step("one", |db| {{
        db.execute("CREATE TABLE counter (step TEXT, n BIGINT)");
        db.execute("INSERT INTO counter VALUES ('one', 1)");
    }});
    db.step("two", |db| {{
        db.execute("INSERT INTO counter VALUES ('two', 1)");
        {}
    }});
}}"#,
            if fail {
                "throw \"step two is broken\";"
            } else {
                ""
            }
        )
    };
    r.revision("r1", &body(true));
    let e = r.upgrade_fails();
    assert_eq!(e.kind, ferry::script::FailureKind::Thrown);
    assert_eq!(e.step.as_deref(), Some("two"));
    assert_eq!(e.message, "step two is broken");
    assert_eq!(e.line, 16, "{e}");
    assert_eq!(r.int("SELECT COUNT(*) FROM counter WHERE step = 'one'"), 1);
    assert_eq!(
        r.int("SELECT COUNT(*) FROM counter WHERE step = 'two'"),
        0,
        "step two rolled back"
    );
    let status = r.migrator().status().unwrap();
    let unfinished = &status.trees[0].unfinished[0];
    assert_eq!(unfinished.failed_step.as_deref(), Some("two"));
    assert_eq!(unfinished.steps_done, ["one"]);
    // The plan says the same: the failed revision resumes after its committed step.
    let plan = r.migrator().plan_report(&[]).unwrap();
    assert_eq!(plan.revisions[0].revision, "r1");
    assert_eq!(plan.revisions[0].steps_done, ["one"]);

    r.rewrite("r1", &body(false));
    let report = r.upgrade_with(r.migrator());
    assert_eq!(report.completed[0].steps_run, ["two"]);
    assert_eq!(report.completed[0].steps_skipped, ["one"]);
    assert_eq!(
        r.int("SELECT COUNT(*) FROM counter WHERE step = 'one'"),
        1,
        "step one ran once"
    );
    assert_eq!(r.int("SELECT COUNT(*) FROM counter WHERE step = 'two'"), 1);
    assert!(r.migrator().status().unwrap().at_heads());
});

both!(batches_resume_after_a_failure, |r| {
    r.revision(
        "r0",
        r#"fn upgrade(db) {
    db.execute("CREATE TABLE src (id BIGINT PRIMARY KEY)");
    db.execute("CREATE TABLE dst (id BIGINT PRIMARY KEY, run BIGINT)");
    let rows = [];
    for i in 1..=95 { rows.push([i * 3]); }
    db.bulk_insert("src", ["id"], rows);
}"#,
    );
    r.revision(
        "r1",
        r#"fn upgrade(db) {
    let run = config::get_int("run");
    db.batches("copy", #{ table: "src", key: "id", size: 10 }, |db, batch| {
        if batch.number == 3 && run == 1 { throw "batch 3 fails on the first run"; }
        // dst has a primary key: a row processed twice would fail here.
        db.execute("INSERT INTO dst SELECT id, ? FROM src WHERE id > ? AND id <= ?", [run, batch.lo, batch.hi]);
    });
}"#,
    );
    let with_run = |n: i64| {
        let mut c = ferry::config::ConfigMap::new();
        c.insert("run".into(), toml::Value::Integer(n));
        r.migrator().with_config(c)
    };
    let e = r.upgrade_fails_with(with_run(1));
    assert_eq!(e.step.as_deref(), Some("copy"));
    assert_eq!(
        r.int("SELECT COUNT(*) FROM dst"),
        20,
        "batches 1 and 2 committed"
    );
    let status = r.migrator().status().unwrap();
    assert_eq!(
        status.trees[0].unfinished[0].batches_done,
        [("copy".to_string(), 2)]
    );

    let report = r.upgrade_with(with_run(2));
    assert!(report.succeeded(), "{:?}", report.failed);
    assert_eq!(r.int("SELECT COUNT(*) FROM dst"), 95, "no row skipped");
    assert_eq!(r.int("SELECT COUNT(*) FROM dst WHERE run = 1"), 20);
    assert_eq!(r.int("SELECT COUNT(*) FROM dst WHERE run = 2"), 75);
    assert_eq!(
        r.int("SELECT COUNT(*) FROM src WHERE id NOT IN (SELECT id FROM dst)"),
        0
    );
});

both!(batches_over_text_keys_and_empty_tables, |r| {
    r.revision(
        "r1",
        r#"fn upgrade(db) {
    db.step("make", |db| {
        db.execute("CREATE TABLE names (name TEXT PRIMARY KEY)");
        db.execute("CREATE TABLE empty (id BIGINT PRIMARY KEY)");
        db.execute("CREATE TABLE seen (name TEXT PRIMARY KEY, batch BIGINT)");
        db.bulk_insert("names", ["name"], ["d", "a", "c", "b", "e"].map(|n| [n]));
    });
    let n = db.batches("walk", #{ table: "names", key: "name", size: 2 }, |db, batch| {
        db.execute("INSERT INTO seen SELECT name, ? FROM names WHERE name > ? AND name <= ?", [batch.number, batch.lo, batch.hi]);
    });
    if n != 3 { throw `batches: ${n}`; }
    let n = db.batches("none", #{ table: "empty", key: "id" }, |db, batch| { throw "never"; });
    if n != 0 { throw `empty batches: ${n}`; }
}"#,
    );
    r.upgrade_ok();
    assert_eq!(
        r.column("SELECT batch FROM seen ORDER BY name"),
        [1, 1, 2, 2, 3].map(Value::Int)
    );
});

// UUID keys (PostgreSQL's uuid type, SQLite's CHAR(32) text), resumed after a failure:
// the resumed cursor is read back from the ledger's text and must still bind as a UUID.
both!(batches_over_uuid_keys_resume_after_a_failure, |r| {
    r.revision(
        "r0",
        r#"fn upgrade(db) {
    schema::create_table("src", #{ columns: [#{ name: "id", type: "UUID", nullable: false }], primary_key: ["id"] });
    schema::create_table("dst", #{ columns: [#{ name: "id", type: "UUID", nullable: false }, #{ name: "run", type: "BIGINT" }], primary_key: ["id"] });
    let rows = [];
    for i in 1..=25 { rows.push([uuid::v5("840b31d9-05cd-5161-b2c8-00d32b280d0f", `${i}`)]); }
    db.bulk_insert("src", ["id"], rows);
}"#,
    );
    r.revision(
        "r1",
        r#"fn upgrade(db) {
    let run = config::get_int("run");
    db.batches("copy", #{ table: "src", key: "id", size: 4 }, |db, batch| {
        if batch.number == 3 && run == 1 { throw "batch 3 fails on the first run"; }
        db.execute("INSERT INTO dst SELECT id, ? FROM src WHERE id > ? AND id <= ?", [run, batch.lo, batch.hi]);
    });
}"#,
    );
    let with_run = |n: i64| {
        let mut c = ferry::config::ConfigMap::new();
        c.insert("run".into(), toml::Value::Integer(n));
        r.migrator().with_config(c)
    };
    let e = r.upgrade_fails_with(with_run(1));
    assert_eq!(e.step.as_deref(), Some("copy"));
    assert_eq!(e.message, "batch 3 fails on the first run", "{e}");
    assert_eq!(
        r.int("SELECT COUNT(*) FROM dst"),
        8,
        "batches 1 and 2 committed"
    );
    let report = r.upgrade_with(with_run(2));
    assert!(report.succeeded(), "{:?}", report.failed);
    assert_eq!(
        r.int("SELECT COUNT(*) FROM dst"),
        25,
        "no row skipped or repeated"
    );
    assert_eq!(r.int("SELECT COUNT(*) FROM dst WHERE run = 2"), 17);
    assert_eq!(
        r.int("SELECT COUNT(*) FROM src WHERE id NOT IN (SELECT id FROM dst)"),
        0
    );
});

both!(non_transactional_step, |r| {
    r.revision(
        "r1",
        r#"fn upgrade(db) {
    db.step("make", |db| {
        db.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, code TEXT)");
        db.execute("INSERT INTO t VALUES (1, 'a')");
    });
    db.step("index", #{ transactional: false }, |db| {
        schema::add_index("t", "t_code_idx", ["code"], #{ concurrently: true, if_not_exists: true });
    });
}"#,
    );
    r.upgrade_ok();
    let idx = r.conn().indexes("t").unwrap();
    assert_eq!(idx.len(), 1);
    assert_eq!(idx[0].name, "t_code_idx");
});

both!(writes_outside_steps_are_refused_once_steps_are_used, |r| {
    r.revision(
        "r1",
        r#"fn upgrade(db) {
    db.step("one", |db| { db.execute("CREATE TABLE t (id BIGINT)"); });
    db.execute("INSERT INTO t VALUES (1)");
}"#,
    );
    let e = r.upgrade_fails();
    // The script broke a rule of steps: its fault, reported at its line.
    assert_eq!(e.kind, ferry::script::FailureKind::Script, "{e}");
    assert!(
        e.source_line
            .as_deref()
            .is_some_and(|l| l.contains("INSERT INTO t VALUES (1)")),
        "{e}"
    );
    assert!(
        e.message.contains("must do all its writing inside steps"),
        "{e}"
    );
    assert_eq!(r.int("SELECT COUNT(*) FROM t"), 0);
});

both!(
    nested_steps_and_steps_after_implicit_writes_are_script_errors,
    |r| {
        r.revision(
            "r1",
            r#"fn upgrade(db) {
    db.step("outer", |db| {
        db.step("inner", |db| { db.execute("CREATE TABLE t (id BIGINT)"); });
    });
}"#,
        );
        let e = r.upgrade_fails();
        assert_eq!(e.kind, ferry::script::FailureKind::Script, "{e}");
        assert!(e.message.contains("steps cannot be nested"), "{e}");
        assert_eq!(e.step.as_deref(), Some("outer"), "{e}");
    }
);

both!(a_step_after_writes_outside_steps_is_a_script_error, |r| {
    r.revision(
        "r1",
        r#"fn upgrade(db) {
    db.execute("CREATE TABLE t (id BIGINT)");
    db.step("one", |db| { db.execute("INSERT INTO t VALUES (1)"); });
}"#,
    );
    let e = r.upgrade_fails();
    assert_eq!(e.kind, ferry::script::FailureKind::Script, "{e}");
    assert!(
        e.message
            .contains("follows statements that wrote outside any step"),
        "{e}"
    );
});

/// A real kill: the `ferry` binary runs a batched revision on a SQLite file and is
/// SIGKILLed once the ledger shows committed batches; the rerun finishes the job and
/// every key is processed exactly once.
#[test]
fn sigkill_between_batches_then_resume() {
    let r = script_support::repo(script_support::Backend::Sqlite, "sigkill").unwrap();
    const KEYS: i64 = 20_000;
    r.revision(
        "r0",
        &format!(
            r#"fn upgrade(db) {{
    db.execute("CREATE TABLE src (id BIGINT PRIMARY KEY)");
    db.execute("CREATE TABLE dst (id BIGINT PRIMARY KEY, pid BIGINT)");
    db.execute("WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {KEYS}) INSERT INTO src SELECT i FROM n");
}}"#
        ),
    );
    r.revision(
        "r1",
        r#"fn upgrade(db) {
    let pid = config::get_int("pid", 0);
    db.batches("copy", #{ table: "src", key: "id", size: 50 }, |db, batch| {
        // Slow enough per batch that the test can kill the process mid-way.
        let spin = 0;
        for i in 0..20000 { spin += i; }
        db.execute("INSERT INTO dst SELECT id, ? FROM src WHERE id > ? AND id <= ?", [pid, batch.lo, batch.hi]);
    });
}"#,
    );
    let db_path = r.root().join("repo.sqlite");
    let run = |set_pid: &str| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ferry"))
            .current_dir(r.root())
            .args([
                "--db",
                &r.url,
                "--scripts",
                "scripts",
                "--set",
                set_pid,
                "upgrade",
            ])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn ferry")
    };
    let mut child = run("pid=1");
    let started = std::time::Instant::now();
    let batches_seen: i64 = loop {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(120),
            "no batch committed in time"
        );
        if let Ok(Some(status)) = child.try_wait() {
            panic!("ferry finished before it could be killed: {status}");
        }
        let conn = rusqlite::Connection::open(&db_path);
        if let Ok(conn) = conn {
            let _ = conn.busy_timeout(std::time::Duration::from_millis(50));
            if let Ok(n) = conn.query_row(
                "SELECT batches FROM ferry_steps WHERE step = 'copy'",
                [],
                |row| row.get::<_, i64>(0),
            ) {
                if n >= 5 {
                    break n;
                }
            }
        }
        std::thread::sleep(std::time::Duration::from_millis(5));
    };
    // SAFETY: kill(2) on the pid of a child this test spawned and has not reaped.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    assert_eq!(rc, 0);
    let status = child.wait().unwrap();
    assert!(!status.success(), "killed");

    let killed_at = r.int("SELECT COUNT(*) FROM dst");
    assert!(killed_at >= batches_seen * 50, "committed batches are kept");
    assert!(killed_at < KEYS, "killed before the end ({killed_at} rows)");
    let recorded = r.int("SELECT batches FROM ferry_steps WHERE step = 'copy'");
    assert_eq!(
        killed_at,
        recorded * 50,
        "rows match the recorded cursor exactly"
    );

    let out = run("pid=2").wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "rerun failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(r.int("SELECT COUNT(*) FROM dst"), KEYS, "no key skipped");
    assert_eq!(
        r.int("SELECT COUNT(DISTINCT id) FROM dst"),
        KEYS,
        "no key twice"
    );
    assert_eq!(r.int("SELECT COUNT(*) FROM dst WHERE pid = 1"), killed_at);
    assert_eq!(
        r.int("SELECT COUNT(*) FROM dst WHERE pid = 2"),
        KEYS - killed_at
    );
}
