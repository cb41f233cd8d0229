//! A database error that the script catches still fails its step (and revision), on
//! both backends alike: PostgreSQL cannot go on in a transaction after an error, and
//! Ferry makes SQLite behave the same, so a script cannot half-succeed on one backend.

#[path = "../../cli/tests/common/mod.rs"]
mod common;
mod script_support;

both!(a_caught_database_error_fails_the_step, |r| {
    r.revision(
        "r1",
        r#"fn upgrade(db) {
    db.step("setup", |db| {
        db.execute("CREATE TABLE t (id BIGINT PRIMARY KEY)");
        db.execute("INSERT INTO t VALUES (1)");
    });
    db.step("careless", |db| {
        try {
            db.execute("INSERT INTO t VALUES (1)");
        } catch (e) {
            log::info("ignoring " + e);
        }
        db.execute("INSERT INTO t VALUES (2)");
    });
}"#,
    );
    let e = r.upgrade_fails();
    assert_eq!(e.kind, ferry::script::FailureKind::Host, "{e}");
    assert_eq!(e.step.as_deref(), Some("careless"), "{e}");
    // The step rolled back: row 2 is not there; the setup step stays committed.
    assert_eq!(r.int("SELECT COUNT(*) FROM t"), 1);
    let status = r.migrator().status().unwrap();
    let unfinished = &status.trees[0].unfinished[0];
    assert_eq!(unfinished.failed_step.as_deref(), Some("careless"));
});

both!(
    a_caught_database_error_fails_a_revision_without_steps,
    |r| {
        r.revision(
            "r1",
            r#"fn upgrade(db) {
    db.execute("CREATE TABLE t (id BIGINT PRIMARY KEY)");
    try { db.execute("INSERT INTO nosuch VALUES (1)"); } catch { }
}"#,
        );
        let e = r.upgrade_fails();
        assert_eq!(e.kind, ferry::script::FailureKind::Host, "{e}");
        assert!(
            !r.conn().table_exists("t").unwrap(),
            "the revision rolled back"
        );
    }
);
