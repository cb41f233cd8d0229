//! The `db` capability on both backends: statements with bound parameters, queries,
//! streaming, bulk insert, derived inserts, introspection, quoting and the dialect.
//! Each test writes a small revision, upgrades through `Migrator`, and checks the
//! database afterwards (scripts also check what they read and `throw` on a mismatch).

#[path = "../../cli/tests/common/mod.rs"]
mod common;
mod script_support;
use ferry::backend::Value;
use script_support::Repo;

/// A helper every test script gets: `check(actual, expected, what)`.
const CHECK: &str = r#"
fn check(actual, expected, what) {
    if actual != expected {
        throw `${what}: expected ${expected} (${type_of(expected)}), found ${actual} (${type_of(actual)})`;
    }
}
"#;

fn rev(r: &Repo, id: &str, body: &str) {
    r.revision(id, &format!("{CHECK}\n{body}"));
}

both!(execute_binds_parameters_verbatim, |r| {
    rev(
        r,
        "r1",
        r#"
fn upgrade(db) {
    let blob = if db.dialect == "postgres" { "BYTEA" } else { "BLOB" };
    db.execute(`CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT, score DOUBLE PRECISION, flag BOOLEAN, payload ${blob})`);
    let evil = "'); DROP TABLE t; --";
    let n = db.execute("INSERT INTO t (id, name, score, flag) VALUES (?, ?, ?, ?)", [1, evil, 2.5, true]);
    check(n, 1, "rows inserted");
    db.execute("INSERT INTO t (id, name) VALUES (?, ?)", [2, ()]);
    db.execute("INSERT INTO t (id, name) VALUES (?, ?)", [3, "Robert\"; DELETE FROM t; --"]);
    check(db.execute("UPDATE t SET score = ? WHERE id > ?", [1.0, 1]), 2, "rows updated");
}
"#,
    );
    r.upgrade_ok();
    assert_eq!(
        r.text("SELECT name FROM t WHERE id = 1"),
        "'); DROP TABLE t; --"
    );
    assert_eq!(r.value("SELECT name FROM t WHERE id = 2"), Value::Null);
    assert_eq!(
        r.text("SELECT name FROM t WHERE id = 3"),
        "Robert\"; DELETE FROM t; --"
    );
    assert_eq!(r.int("SELECT COUNT(*) FROM t"), 3);
    assert_eq!(
        r.value("SELECT score FROM t WHERE id = 1"),
        Value::Float(2.5)
    );
});

both!(query_query_row_and_query_value, |r| {
    rev(
        r,
        "r1",
        r#"
fn upgrade(db) {
    db.execute("CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT)");
    for i in 1..=5 { db.execute("INSERT INTO t VALUES (?, ?)", [i, `n${i}`]); }
    let rows = db.query("SELECT id, name FROM t WHERE id >= ? ORDER BY id", [3]);
    check(rows.len(), 3, "rows");
    check(rows[0].id, 3, "first id");
    check(rows[2].name, "n5", "last name");
    check(db.query("SELECT id FROM t").len(), 5, "all rows");
    let row = db.query_row("SELECT id, name FROM t WHERE name = ?", ["n2"]);
    check(row.id, 2, "query_row id");
    check(db.query_row("SELECT id FROM t WHERE id = ?", [99]), (), "query_row of nothing");
    check(db.query_value("SELECT COUNT(*) FROM t"), 5, "count");
    check(db.query_value("SELECT name FROM t WHERE id = ?", [4]), "n4", "query_value");
    check(db.query_value("SELECT name FROM t WHERE id = ?", [99]), (), "query_value of nothing");
    // The sum of what was read is recorded, so the test can see the script ran this far.
    db.execute("CREATE TABLE seen (total BIGINT)");
    let total = 0;
    for row in rows { total += row.id; }
    db.execute("INSERT INTO seen VALUES (?)", [total]);
}
"#,
    );
    r.upgrade_ok();
    assert_eq!(r.int("SELECT total FROM seen"), 12);
});

both!(each_streams_and_stops_early, |r| {
    rev(
        r,
        "r1",
        r#"
fn upgrade(db) {
    db.execute("CREATE TABLE t (id BIGINT PRIMARY KEY)");
    let rows = [];
    for i in 1..=1000 { rows.push([i]); }
    db.bulk_insert("t", ["id"], rows);
    let sum = 0;
    let n = db.each("SELECT id FROM t ORDER BY id", [], |row| { sum += row.id; true });
    check(n, 1000, "rows streamed");
    check(sum, 500500, "sum");
    let seen = [];
    let n = db.each("SELECT id FROM t WHERE id > ? ORDER BY id", [10], |row| {
        seen.push(row.id);
        seen.len() < 3
    });
    check(seen, [11, 12, 13], "rows seen before stopping");
    db.execute("CREATE TABLE out (n BIGINT, total BIGINT)");
    db.execute("INSERT INTO out VALUES (?, ?)", [seen.len(), sum]);
}
"#,
    );
    r.upgrade_ok();
    assert_eq!(r.int("SELECT n FROM out"), 3);
    assert_eq!(r.int("SELECT total FROM out"), 500500);
});

both!(each_callback_cannot_use_db, |r| {
    rev(
        r,
        "r1",
        r#"
fn upgrade(db) {
    db.execute("CREATE TABLE t (id BIGINT PRIMARY KEY)");
    db.execute("INSERT INTO t VALUES (1)");
    db.each("SELECT id FROM t", [], |row| { db.execute("DELETE FROM t"); true });
}
"#,
    );
    let e = r.upgrade_fails();
    assert!(e.message.contains("inside the callback of db.each"), "{e}");
    assert_eq!(e.kind, ferry::FailureKind::Script);
    assert!(
        !r.conn().table_exists("t").unwrap(),
        "the revision rolled back"
    );
});

both!(bulk_insert_arrays_and_maps, |r| {
    rev(
        r,
        "r1",
        r#"
fn upgrade(db) {
    let uuid_type = if db.dialect == "postgres" { "UUID" } else { "CHAR(32)" };
    db.execute(`CREATE TABLE t (id BIGINT PRIMARY KEY, name TEXT, u ${uuid_type})`);
    let n = db.bulk_insert("t", ["id", "name", "u"], [
        [1, "one", uuid::parse("840b31d9-05cd-5161-b2c8-00d32b280d0f")],
        [2, "'); DROP TABLE t; --", ()],
    ]);
    check(n, 2, "array rows");
    let n = db.bulk_insert("t", ["id", "name"], [
        #{ id: 3, name: "three" },
        #{ name: "four", id: 4 },
        #{ id: 5 },
    ]);
    check(n, 3, "map rows");
    check(uuid::parse(db.query_value("SELECT u FROM t WHERE id = 1")).canonical, "840b31d9-05cd-5161-b2c8-00d32b280d0f", "uuid read back");
}
"#,
    );
    r.upgrade_ok();
    assert_eq!(r.int("SELECT COUNT(*) FROM t"), 5);
    assert_eq!(
        r.text("SELECT name FROM t WHERE id = 2"),
        "'); DROP TABLE t; --"
    );
    assert_eq!(r.text("SELECT name FROM t WHERE id = 4"), "four");
    assert_eq!(r.value("SELECT name FROM t WHERE id = 5"), Value::Null);
});

both!(bulk_insert_rejects_bad_rows, |r| {
    rev(
        r,
        "r1",
        r#"
fn upgrade(db) {
    db.execute("CREATE TABLE t (id BIGINT, name TEXT)");
    db.bulk_insert("t", ["id", "name"], [[1, "a"], [2]]);
}
"#,
    );
    let e = r.upgrade_fails();
    assert!(
        e.message.contains("row 2 has 1 values for 2 columns"),
        "{e}"
    );
});

both!(insert_derived_uuid4_uuid5_template, |r| {
    rev(
        r,
        "r1",
        r#"
fn upgrade(db) {
    let uuid_type = if db.dialect == "postgres" { "UUID" } else { "CHAR(32)" };
    db.execute("CREATE TABLE raw (id BIGINT PRIMARY KEY, run TEXT, detector BIGINT, exposure BIGINT)");
    db.execute(`CREATE TABLE id_map (old_id BIGINT PRIMARY KEY, det_uuid ${uuid_type}, rand ${uuid_type}, label TEXT)`);
    let rows = [];
    for i in 1..=250 { rows.push([i, "HSC/raw/all", i % 100, 903334]); }
    db.bulk_insert("raw", ["id", "run", "detector", "exposure"], rows);
    let n = db.insert_derived(#{
        source: "SELECT id, run, detector, exposure FROM raw WHERE id <= ?",
        params: [200],
        key: "id",
        into: "id_map",
        chunk: 64,
        columns: ["old_id", "det_uuid", "rand", "label"],
        values: [
            "id",
            #{ uuid5: "840b31d9-05cd-5161-b2c8-00d32b280d0f",
               name: "dataset_type=raw,run={run},detector={detector},exposure={exposure},instrument=HSC" },
            #{ uuid4: true },
            #{ template: "{run}#{id}" },
        ],
    });
    check(n, 200, "derived rows");
}
"#,
    );
    r.upgrade_ok();
    assert_eq!(r.int("SELECT COUNT(*) FROM id_map"), 200);
    let expected = uuid::Uuid::new_v5(
        &uuid::Uuid::parse_str("840b31d9-05cd-5161-b2c8-00d32b280d0f").unwrap(),
        b"dataset_type=raw,run=HSC/raw/all,detector=42,exposure=903334,instrument=HSC",
    );
    assert_eq!(
        expected.to_string(),
        "2f5ee4b8-756e-5705-96b4-3c7b66c7dab5",
        "the WORKLOAD example"
    );
    let stored = r.value("SELECT det_uuid FROM id_map WHERE old_id = 42");
    let stored = match stored {
        Value::Uuid(u) => u,
        Value::Text(t) => uuid::Uuid::parse_str(&t).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(stored, expected);
    assert_eq!(
        r.text("SELECT label FROM id_map WHERE old_id = 7"),
        "HSC/raw/all#7"
    );
    // uuid4 values are random: all distinct, and version 4.
    assert_eq!(r.int("SELECT COUNT(DISTINCT rand) FROM id_map"), 200);
    let rand = match r.value("SELECT rand FROM id_map WHERE old_id = 1") {
        Value::Uuid(u) => u,
        Value::Text(t) => uuid::Uuid::parse_str(&t).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(rand.get_version_num(), 4);
});

// Only copied columns and random UUIDs, the source's columns in another order than the
// target's and a parameter in the query: each value lands in its column.
both!(insert_derived_copies_and_random_uuids, |r| {
    rev(
        r,
        "r1",
        r#"
fn upgrade(db) {
    let uuid_type = if db.dialect == "postgres" { "UUID" } else { "CHAR(32)" };
    db.execute("CREATE TABLE dataset (id BIGINT PRIMARY KEY, run TEXT)");
    db.execute(`CREATE TABLE id_map (old_id BIGINT PRIMARY KEY, new_id ${uuid_type} NOT NULL, run TEXT)`);
    let rows = [];
    for i in 1..=300 { rows.push([i, `run${i % 7}`]); }
    db.bulk_insert("dataset", ["id", "run"], rows);
    let n = db.insert_derived(#{
        source: "SELECT run, id FROM dataset WHERE id > ?",
        params: [100],
        key: "id",
        into: "id_map",
        columns: ["old_id", "new_id", "run"],
        values: ["id", #{ uuid4: true }, "run"],
    });
    check(n, 200, "derived rows");
}
"#,
    );
    r.upgrade_ok();
    assert_eq!(r.int("SELECT COUNT(*) FROM id_map WHERE old_id > 100"), 200);
    assert_eq!(r.int("SELECT COUNT(DISTINCT new_id) FROM id_map"), 200);
    assert_eq!(r.text("SELECT run FROM id_map WHERE old_id = 103"), "run5");
    let new_id = match r.value("SELECT new_id FROM id_map WHERE old_id = 250") {
        Value::Uuid(u) => u,
        Value::Text(t) => uuid::Uuid::parse_str(&t).unwrap(),
        other => panic!("{other:?}"),
    };
    assert_eq!(new_id.get_version_num(), 4);
});

both!(insert_derived_names_the_key_it_violates, |r| {
    rev(
        r,
        "r1",
        r#"
fn upgrade(db) {
    db.execute("CREATE TABLE raw (id BIGINT PRIMARY KEY, run TEXT)");
    db.execute("CREATE TABLE by_run (run TEXT PRIMARY KEY, first_id BIGINT)");
    db.bulk_insert("raw", ["id", "run"], [[1, "HSC/a"], [2, "HSC/b"], [3, "HSC/a"]]);
    db.insert_derived(#{
        source: "SELECT id, run FROM raw",
        key: "id",
        into: "by_run",
        columns: ["run", "first_id"],
        values: [#{ template: "{run}" }, "id"],
    });
}
"#,
    );
    let e = r.upgrade_fails().to_string();
    let named = match r.backend {
        script_support::Backend::Sqlite => "table by_run, key (run) = ('HSC/a')",
        script_support::Backend::Postgres => "Key (run)=(HSC/a) already exists",
    };
    assert!(e.contains(named), "{named:?} in {e}");
});

both!(step_beside_refuses_a_bad_spec_before_anything_runs, |r| {
    // Each spec is refused before the body runs (it would create `t`) and before the
    // step's query: the error names the call and what is wrong.
    let cases = [
        (
            r#"#{ sql: "SELECT 1" }"#,
            r#"db.step_beside("beside", …): the spec declares the step's work as one of insert_derived; found "sql""#,
        ),
        (
            r#"#{}"#,
            r#"db.step_beside("beside", …): the spec declares no work (one of insert_derived)"#,
        ),
        (
            r#"#{ insert_derived: #{ source: "SELECT 1 AS id", into: "m", columns: ["id"], values: [#{ uuid7: true }] } }"#,
            "insert_derived: a derived value is #{uuid4: true}",
        ),
        (
            r#"#{ insert_derived: #{ source: "SELECT 1 AS id", into: "m", columns: ["id"] } }"#,
            "insert_derived needs `values` (one per target column)",
        ),
    ];
    let mut first = true;
    for (spec, says) in cases {
        let body = format!(
            r#"
fn upgrade(db) {{
    db.step_beside("beside", {spec}, |db| {{
        db.step("body", |db| {{ db.execute("CREATE TABLE t (id BIGINT)"); }});
    }});
}}
"#
        );
        if first {
            rev(r, "r1", &body);
            first = false;
        } else {
            r.rewrite("r1", &body);
        }
        let e = r.upgrade_fails();
        assert_eq!(e.kind, ferry::FailureKind::Script, "{e}");
        assert!(e.to_string().contains(says), "{says:?} in {e}");
        assert!(e.line > 0, "the error names the script's line: {e}");
        assert!(!r.conn().table_exists("t").unwrap(), "the body ran: {e}");
    }
    // Inside a step it is refused: it makes a step and runs steps beside it.
    r.rewrite(
        "r1",
        r#"
fn upgrade(db) {
    db.step("outer", |db| {
        db.step_beside("beside", #{ insert_derived: #{ source: "SELECT 1 AS id", into: "m", columns: ["id"], values: ["id"] } }, |db| {});
    });
}
"#,
    );
    let e = r.upgrade_fails().to_string();
    assert!(e.contains(r#"so it cannot run inside step "outer""#), "{e}");
});

both!(introspection, |r| {
    rev(
        r,
        "r1",
        r#"
fn upgrade(db) {
    db.execute("CREATE TABLE parent (id BIGINT PRIMARY KEY, code TEXT NOT NULL)");
    db.execute("CREATE TABLE dataset_tags_1 (dataset_id BIGINT NOT NULL, tag TEXT DEFAULT 'x', CONSTRAINT dataset_tags_1_pkey PRIMARY KEY (dataset_id), CONSTRAINT dataset_tags_1_unq UNIQUE (tag), CONSTRAINT dataset_tags_1_fkey FOREIGN KEY (dataset_id) REFERENCES parent (id) ON DELETE CASCADE)");
    db.execute("CREATE TABLE dataset_tags_22 (id BIGINT)");
    db.execute("CREATE INDEX parent_code_idx ON parent (code)");

    check(db.tables("dataset_tags_%"), ["dataset_tags_1", "dataset_tags_22"], "tables");
    check(db.table_exists("parent"), true, "parent exists");
    check(db.table_exists("nope"), false, "nope exists");

    let cols = db.columns("dataset_tags_1");
    check(cols.len(), 2, "column count");
    check(cols[0].name, "dataset_id", "first column");
    check(cols[0].type, "bigint", "first column type");
    check(cols[0].nullable, false, "dataset_id nullable");
    check(cols[1].nullable, true, "tag nullable");
    if !cols[1].default_value.contains("'x'") { throw `default: ${cols[1].default_value}`; }

    let pk = db.primary_key("dataset_tags_1");
    check(pk.columns, ["dataset_id"], "pk columns");
    check(db.primary_key("dataset_tags_22"), (), "no pk");

    let fks = db.foreign_keys("dataset_tags_1");
    check(fks.len(), 1, "fk count");
    check(fks[0].references, "parent", "fk table");
    check(fks[0].columns, ["dataset_id"], "fk columns");
    check(fks[0].referenced_columns, ["id"], "fk referenced columns");
    check(fks[0].on_delete, "CASCADE", "on delete");

    let uq = db.unique_constraints("dataset_tags_1");
    check(uq.len(), 1, "unique count");
    check(uq[0].columns, ["tag"], "unique columns");

    let idx = db.indexes("parent");
    check(idx.len(), 1, "index count");
    check(idx[0].name, "parent_code_idx", "index name");
    check(idx[0].columns, ["code"], "index columns");
    check(idx[0].unique, false, "index unique");

    check(db.quote("we\"ird"), "\"we\"\"ird\"", "quote");
    if db.dialect != "sqlite" && db.dialect != "postgres" { throw db.dialect; }
    db.execute("CREATE TABLE out (dialect TEXT, fk_name TEXT, pk_name TEXT, uq_name TEXT)");
    db.execute("INSERT INTO out VALUES (?, ?, ?, ?)", [db.dialect, fks[0].name, pk.name, uq[0].name]);
}
"#,
    );
    r.upgrade_ok();
    let dialect = match r.backend {
        script_support::Backend::Sqlite => "sqlite",
        script_support::Backend::Postgres => "postgres",
    };
    assert_eq!(r.text("SELECT dialect FROM out"), dialect);
    assert_eq!(r.text("SELECT fk_name FROM out"), "dataset_tags_1_fkey");
    assert_eq!(r.text("SELECT pk_name FROM out"), "dataset_tags_1_pkey");
    assert_eq!(r.text("SELECT uq_name FROM out"), "dataset_tags_1_unq");
});

both!(schema_namespace_keeps_names, |r| {
    rev(
        r,
        "r1",
        r#"
fn upgrade(db) {
    schema::create_table("parent", #{
        columns: [#{ name: "id", type: "BIGINT", nullable: false }, #{ name: "code", type: "TEXT" }],
        primary_key: ["id"],
    });
    schema::create_table("child", #{
        columns: [#{ name: "id", type: "BIGINT", nullable: false }, #{ name: "parent_id", type: "BIGINT" }],
        primary_key: #{ name: "child_pk", columns: ["id"] },
        foreign_keys: [#{ name: "child_parent_fk", columns: ["parent_id"], references: "parent", referenced_columns: ["id"], on_delete: "CASCADE" }],
    });
    db.execute("INSERT INTO parent VALUES (1, 'a')");
    db.execute("INSERT INTO child VALUES (10, 1)");
    schema::add_column("child", #{ name: "note", type: "TEXT", default_value: "'n'" });
    schema::rename_column("child", "note", "remark");
    schema::add_index("child", "child_remark_idx", ["remark"]);
    schema::add_unique("child", "child_remark_unq", ["remark"]);
    schema::alter_column_type("child", "remark", "VARCHAR(20)");
    check(db.foreign_keys("child")[0].name, "child_parent_fk", "fk kept");
    check(db.primary_key("child").name, "child_pk", "pk kept");
    check(db.indexes("child")[0].name, "child_remark_idx", "index kept");
    schema::drop_index("child", "child_remark_idx");
    schema::create_table("scratch", #{ columns: [#{ name: "x", type: "BIGINT" }] });
    schema::rename_table("scratch", "scratch2");
    schema::drop_table("scratch2");
    schema::drop_table_if_exists("scratch2");
}
"#,
    );
    r.upgrade_ok();
    assert_eq!(r.text("SELECT remark FROM child WHERE id = 10"), "n");
    let mut c = r.conn();
    assert!(!c.table_exists("scratch2").unwrap());
    assert!(c.indexes("child").unwrap().is_empty());
    assert_eq!(
        c.unique_constraints("child").unwrap()[0].name,
        "child_remark_unq"
    );
    assert_eq!(c.foreign_keys("child").unwrap()[0].name, "child_parent_fk");
});

both!(bulk_insert_generates_rows_from_a_description, |r| {
    rev(
        r,
        "r1",
        r#"
fn upgrade(db) {
    db.execute("CREATE TABLE amplifier (detector BIGINT, name TEXT, gain DOUBLE PRECISION, k TEXT)");
    let n = db.bulk_insert("amplifier", ["detector", "name", "gain", "k"], #{
        each: #{ detector: 0..=2, amp: ["A", "B"] },
        values: ["detector", #{ template: "{amp}-{detector}" }, 2.5, ()],
    });
    check(n, 6, "generated rows");
    check(db.bulk_insert("amplifier", ["detector"], #{ each: #{ d: 5..5 }, values: ["d"] }), 0, "empty range");
}
"#,
    );
    r.upgrade_ok();
    assert_eq!(
        r.int("SELECT COUNT(*) FROM amplifier WHERE gain = 2.5 AND k IS NULL"),
        6
    );
    assert_eq!(
        r.text("SELECT name FROM amplifier WHERE detector = 2 AND name LIKE 'B%'"),
        "B-2"
    );
});

both!(bulk_insert_generator_errors_name_the_cause, |r| {
    rev(
        r,
        "r1",
        r#"
fn upgrade(db) {
    db.execute("CREATE TABLE amplifier (detector BIGINT, name TEXT)");
    db.bulk_insert("amplifier", ["detector", "name"], #{
        each: #{ detector: 0..10 },
        values: ["detector", #{ template: "{amp}" }],
    });
}
"#,
    );
    let e = r.upgrade_fails();
    assert!(
        e.message.contains("bulk_insert into amplifier") && e.message.contains("{amp}"),
        "{e}"
    );
    assert_eq!(e.kind, ferry::FailureKind::Script, "{e}");
    assert!(e.line > 0, "{e:?}");
});

both!(a_failed_run_is_an_error_that_keeps_what_completed, |r| {
    r.revision(
        "r1",
        r#"fn upgrade(db) { db.execute("CREATE TABLE one (id BIGINT)"); }"#,
    );
    let r2 = r.revision("r2", "fn upgrade(db) {\n    throw \"r2 refuses\";\n}");
    let throw_line = 1 + std::fs::read_to_string(&r2)
        .unwrap()
        .lines()
        .position(|l| l.contains("throw"))
        .unwrap();
    r.revision("r3", "fn upgrade(db) {}");
    let err = r
        .migrator()
        .upgrade(&[], &ferry::migrator::UpgradeOptions::default())
        .expect_err("r2 throws");
    assert_eq!(err.exit_code(), 1);
    // The message is the failure's own: the script, its line, the thrown text.
    let text = err.to_string();
    assert!(text.contains("r2 refuses"), "{text}");
    let failure = err.script_failure().expect("a script failure");
    assert_eq!(
        (failure.revision.as_str(), failure.line),
        ("r2", throw_line)
    );
    assert_eq!(text, failure.to_string());
    // The partial report: r1 completed (and stays applied), r3 was not run.
    let report = err.report().expect("the partial report");
    let completed: Vec<&str> = report
        .completed
        .iter()
        .map(|c| c.revision.as_str())
        .collect();
    assert_eq!(completed, ["r1"]);
    assert_eq!(report.not_run, ["r3"]);
    assert!(r.conn().table_exists("one").unwrap());
    match err {
        ferry::migrator::Error::Failed { report } => assert!(report.failed.is_some()),
        other => panic!("{other:?}"),
    }
});
