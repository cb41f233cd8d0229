//! `docs/ferry.d.rhai`, the definitions file editors read for completion, is generated
//! from the engine scripts run in (Rhai's `metadata` feature). This test fails when the
//! committed file is stale; `FERRY_BLESS=1 cargo test --test script_definitions`
//! rewrites it.

#[test]
fn definitions_file_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/ferry.d.rhai");
    let fresh = ferry::script::definitions().unwrap_or_else(|problems| {
        panic!(
            "functions without a signature in host/ferry/src/script/signatures.rs, or entries \
             that match nothing:\n{}",
            problems.join("\n")
        )
    });
    for name in [
        "bulk_insert",
        "insert_derived",
        "batches",
        "v5",
        "get_int",
        "set_manager",
    ] {
        assert!(fresh.contains(name), "definitions lack {name}");
    }
    assert!(!fresh.contains("fn timestamp"), "no clock");
    assert!(!fresh.contains("fn sleep"), "the sandbox removes sleep");
    for (typed, doc) in [
        (
            "fn execute(db: Db, sql: string, params: array) -> int;",
            "/// Runs one statement with `?` parameters; returns the rows it touched.",
        ),
        (
            "fn create_table(name: string, definition: map) -> ();",
            "/// Creates a table `#{columns, primary_key, unique, foreign_keys}`, portably.",
        ),
        (
            "fn run(name: string, key: string, args: ?) -> ?;",
            "/// Calls the hook provided for `key` with `args`; returns its result.",
        ),
    ] {
        assert!(
            fresh.contains(&format!("{doc}\n{typed}")),
            "definitions lack {typed} with its documentation"
        );
    }
    // Every function of Ferry's own modules, and every fallible registration, has real
    // types: Rhai's placeholders are gone.
    assert!(
        !fresh.contains("EvalAltResult"),
        "a Rust Result type is left"
    );
    for module in ["attributes", "config", "hooks", "log", "schema", "uuid"] {
        let start = fresh
            .find(&format!("module {module} {{"))
            .unwrap_or_else(|| panic!("no module {module}"));
        let block = &fresh[start..start + fresh[start..].find("\n}").expect("closed")];
        let lines: Vec<&str> = block.lines().collect();
        for (i, line) in lines
            .iter()
            .enumerate()
            .filter(|(_, l)| l.starts_with("fn "))
        {
            assert!(
                !line.contains("_: ") && !line.contains("-> ;"),
                "{module}: {line} has no real types"
            );
            assert!(
                lines[i - 1].starts_with("/// "),
                "{module}: {line} has no documentation"
            );
        }
    }
    if std::env::var_os("FERRY_BLESS").is_some() {
        std::fs::write(path, &fresh).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(path).unwrap_or_default();
    assert!(
        committed == fresh,
        "docs/ferry.d.rhai is stale: run FERRY_BLESS=1 cargo test --test script_definitions"
    );
}
