//! A migrator built on the application's own connection: a `rusqlite::Connection` (a
//! file, lent and given back) and a `tokio_postgres::Client` whose connection task the
//! application drives on its own thread.

#[path = "../../cli/tests/common/mod.rs"]
mod common;

use common::embed_root as root;
use common::TestDb;
use ferry::migrator::{Migrator, TreeState, UpgradeOptions, VerifyOptions};

#[test]
fn a_lent_sqlite_connection_is_migrated_locked_and_given_back() {
    let db = TestDb::sqlite();
    let path = db.url().trim_start_matches("sqlite:").to_string();
    let conn = rusqlite::Connection::open(&path).unwrap();
    let m = Migrator::builder()
        .sqlite_connection(conn)
        .unwrap()
        .roots([root("base")])
        .stdlib(None)
        .build()
        .unwrap();
    let v = m
        .verify(&VerifyOptions::default().auto_migrate(true))
        .unwrap();
    assert!(v.writable(), "{v:#?}");
    assert_eq!(v.migrated.as_ref().unwrap().completed.len(), 3);
    // Another migrator on the same file sees the same ledger.
    let other = Migrator::builder()
        .url(db.url())
        .roots([root("base")])
        .stdlib(None)
        .build()
        .unwrap();
    assert!(other.status().unwrap().at_heads());
    let conn = m.into_sqlite_connection().expect("given back");
    let n: i64 = conn
        .query_row("SELECT COUNT(*) FROM ferry_revisions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
}

#[test]
fn a_tokio_postgres_client_driven_by_the_application() {
    let Some(db) = TestDb::postgres("lent_connections") else {
        return;
    };
    let schema = db.schema().unwrap().to_string();
    let base = common::pg_base_url().unwrap();
    // The application's runtime, on its own thread, drives the connection task.
    let (tx, rx) = std::sync::mpsc::channel();
    let app = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let (client, connection) = tokio_postgres::connect(&base, tokio_postgres::NoTls)
                .await
                .unwrap();
            tx.send(client).unwrap();
            let _ = connection.await;
        });
    });
    let client = rx.recv().unwrap();
    let m = Migrator::builder()
        .postgres_client(client, &schema)
        .unwrap()
        .roots([root("base")])
        .stdlib(None)
        .build()
        .unwrap();
    let v = m.verify(&VerifyOptions::default()).unwrap();
    assert_eq!(v.tree("app").unwrap().state, TreeState::Empty, "{v:#?}");
    let report = m.upgrade(&[], &UpgradeOptions::default()).unwrap();
    assert_eq!(report.completed.len(), 3);
    assert!(db.has_table("app_item") && db.has_table("install_repo"));
    assert_eq!(db.applied_in_order(), ["app-1", "app-2", "install-1"]);
    assert!(m.status().unwrap().at_heads());
    drop(m); // closes the client, which ends the connection task
    app.join().unwrap();
}
