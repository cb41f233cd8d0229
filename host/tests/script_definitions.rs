//! `docs/ferry.d.rhai`, the definitions file editors read for completion, is generated
//! from the engine scripts run in (Rhai's `metadata` feature). This test fails when the
//! committed file is stale; `FERRY_BLESS=1 cargo test --test script_definitions`
//! rewrites it.

#[test]
fn definitions_file_is_current() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/ferry.d.rhai");
    let fresh = ferry::script::definitions();
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
