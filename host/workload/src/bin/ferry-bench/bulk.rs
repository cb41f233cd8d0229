//! The bulk-insert benchmark (issue 3): ROWS rows (`id`, `row-{id}`, 0.5) inserted
//!
//! - by a Rhai script that builds them in an interpreted loop and hands them to
//!   `db.bulk_insert` 100 at a time (the rows really come from the script);
//! - by a Rhai script that describes them to `db.bulk_insert(table, columns,
//!   #{ each, values })`, which generates them natively;
//! - natively through the same driver (cached prepared statement on SQLite, binary COPY
//!   on PostgreSQL);
//!
//! each by its own process on a fresh database. The scripts run through the real `ferry
//! upgrade`; the figure compared is the time of the step that inserts (`--progress
//! json`), against the native insert alone.

use std::path::Path;
use std::process::Command;

use crate::process::{self, Measured};
use crate::report::{self, megabytes, rate, ratio, seconds, Table};
use crate::target::{self, Database, Scratch};
use crate::{Backend, Env};

const HEADER: &str = r#"const TREE = "bench";
const PARENTS = [];
const VERSION = "1";
const DEPENDS_ON = [];
const MESSAGE = "bulk insert benchmark";

fn upgrade(db) {
    db.step("create", |db| {
        schema::create_table("bulk_rows", #{ columns: [
            #{ name: "id", type: "BIGINT", nullable: false },
            #{ name: "name", type: "VARCHAR(64)", nullable: false },
            #{ name: "score", type: "DOUBLE", nullable: false },
        ] });
    });
    let n = config::get_int("bench.rows");
"#;

/// Rows built one by one in Rhai, 100 per `db.bulk_insert` call: Rhai checks an array
/// against the sandbox's size limit on every change, at a cost proportional to its
/// size, so a script that grows one array to 10,000 rows spends its time there
/// (quadratic; 100 rows per chunk measured fastest).
const SCRIPT_ROWS: &str = r#"    db.step("insert", |db| {
        let columns = ["id", "name", "score"];
        let chunk = [];
        for i in 1..=n {
            chunk.push([i, `row-${i}`, 0.5]);
            if chunk.len() == 100 {
                db.bulk_insert("bulk_rows", columns, chunk);
                chunk = [];
            }
        }
        if chunk.len() > 0 { db.bulk_insert("bulk_rows", columns, chunk); }
    });
}
"#;

/// The same rows described to `db.bulk_insert` and generated natively.
const GENERATED_ROWS: &str = r#"    db.step("insert", |db| {
        db.bulk_insert("bulk_rows", ["id", "name", "score"], #{
            each: #{ i: 1..=n },
            values: ["i", #{ template: "row-{i}" }, 0.5],
        });
    });
}
"#;

struct Variant {
    label: &'static str,
    measured: Measured,
    insert_seconds: f64,
    rows_found: i64,
}

pub fn run(env: &Env, backends: &[Backend], rows: u64) -> Result<(), String> {
    println!(
        "\n== bulk-insert benchmark: {rows} rows; {}",
        report::machine()
    );
    let mut table = Table::new(
        format!("bulk insert of {rows} rows (id, name, score): time of the insert alone"),
        &[
            "backend",
            "rows from",
            "insert s",
            "rows/s",
            "process s",
            "peak RSS MB",
            "vs native",
        ],
    );
    let mut failures = Vec::new();
    for &backend in backends {
        match one_backend(env, backend, rows) {
            Ok(variants) => {
                let native = variants
                    .iter()
                    .find(|v| v.label == "native")
                    .map(|v| v.insert_seconds)
                    .unwrap_or(0.0);
                for v in &variants {
                    if v.rows_found != rows as i64 {
                        failures.push(format!(
                            "{} {}: {} rows in the table, {rows} expected",
                            backend.name(),
                            v.label,
                            v.rows_found
                        ));
                    }
                    table.row(vec![
                        backend.name().into(),
                        v.label.into(),
                        seconds(v.insert_seconds),
                        rate(rows, v.insert_seconds),
                        seconds(v.measured.wall.as_secs_f64()),
                        megabytes(v.measured.peak_rss),
                        if v.label == "native" {
                            "-".into()
                        } else {
                            ratio(v.insert_seconds, native)
                        },
                    ]);
                }
            }
            Err(e) => failures.push(format!("{}: {e}", backend.name())),
        }
    }
    table.print();
    println!("(finished with {})", report::load());
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("\n"))
    }
}

fn write_tree(dir: &Path, body: &str) -> Result<(), String> {
    let tree = dir.join("bench");
    std::fs::create_dir_all(&tree).map_err(|e| e.to_string())?;
    let text = format!("const REVISION = \"bench-bulk\";\n{HEADER}{body}");
    std::fs::write(tree.join("bench-bulk.rhai"), text).map_err(|e| e.to_string())
}

fn one_backend(env: &Env, backend: Backend, rows: u64) -> Result<Vec<Variant>, String> {
    let ferry = target::ferry_binary(env)?;
    let scratch = Scratch::new(env, &format!("bulk-{}", backend.name()))?;
    let mut variants = Vec::new();
    for (label, body) in [
        ("script loop + db.bulk_insert", Some(SCRIPT_ROWS)),
        ("db.bulk_insert #{each, values}", Some(GENERATED_ROWS)),
        ("native", None),
    ] {
        let key = label
            .split_whitespace()
            .next()
            .unwrap_or("x")
            .replace('.', "_");
        let db = Database::fresh(env, backend, &scratch, &format!("bulk_{key}"))?;
        eprintln!("{}: bulk insert, {label} ...", backend.name());
        let (measured, insert_seconds) = match body {
            Some(body) => {
                let scripts = scratch.path.join(format!("scripts_{key}"));
                write_tree(&scripts, body)?;
                let mut cmd = Command::new(&ferry);
                cmd.current_dir(&scratch.path)
                    .arg("--db")
                    .arg(db.url())
                    .arg("--scripts")
                    .arg(&scripts)
                    .arg("--progress")
                    .arg("json")
                    .arg("--set")
                    .arg(format!("bench.rows={rows}"))
                    .arg("upgrade");
                let m = process::run(cmd)?.success(label)?;
                let steps = crate::migration::scripted_steps(&m.stderr);
                let insert = steps
                    .iter()
                    .find(|(s, _)| s == "insert")
                    .map(|(_, t)| *t)
                    .ok_or_else(|| format!("{label}: no insert step in the progress"))?;
                (m, insert)
            }
            None => {
                let mut cmd = Command::new(target::bench_binary()?);
                cmd.arg("native-bulk")
                    .arg("--backend")
                    .arg(backend.name())
                    .arg("--db")
                    .arg(db.url())
                    .arg("--rows")
                    .arg(rows.to_string());
                let m = process::run(cmd)?.success(label)?;
                let insert = crate::migration::native_phases(&m.stdout)
                    .into_iter()
                    .find(|(p, _)| p == "insert")
                    .map(|(_, t)| t)
                    .ok_or_else(|| format!("{label}: no insert phase reported"))?;
                (m, insert)
            }
        };
        let rows_found = count_rows(&db)?;
        variants.push(Variant {
            label,
            measured,
            insert_seconds,
            rows_found,
        });
    }
    Ok(variants)
}

fn count_rows(db: &Database) -> Result<i64, String> {
    let mut conn = target::connect(&db.url())?;
    let rows = conn
        .query(
            "SELECT COUNT(*), COUNT(DISTINCT id), MIN(id), MAX(id) FROM bulk_rows \
             WHERE name = 'row-' || CAST(id AS VARCHAR(20)) AND score = 0.5",
            &[],
        )
        .map_err(|e| e.to_string())?;
    match rows.rows.first().map(|r| r.as_slice()) {
        Some([ferry::backend::Value::Int(n), ferry::backend::Value::Int(d), ..]) if n == d => {
            Ok(*n)
        }
        other => Err(format!("unexpected bulk_rows contents: {other:?}")),
    }
}
