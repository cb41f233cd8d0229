//! Ferry called from inside a tokio runtime, as an async application does: the
//! example service (host/ferry/examples/pool_service.rs) verifies and auto-migrates at
//! start-up on a current-thread and on a multi-threaded runtime, against PostgreSQL
//! (through the application's own pool, and through a URL) and SQLite.

#[path = "../../cli/tests/common/mod.rs"]
mod common;

#[allow(dead_code)]
#[path = "../examples/pool_service.rs"]
mod pool_service;

use common::{embed_root, pg_base_url, TestDb};
use ferry::migrator::{Migrator, UpgradeOptions};
use pool_service::{pool, start, Store};

/// Starts the service twice: the first start migrates, the second finds it current;
/// then checks that the application's pool still serves.
async fn starts_and_migrates(store: Store) {
    let first = start(&store, vec![embed_root("base")]).await.unwrap();
    let migrated = first.verification.migrated.expect("auto-migrated");
    assert_eq!(migrated.completed.len(), 3, "app-1, app-2, install-1");
    assert_eq!(first.items, 0);
    let second = start(&store, vec![embed_root("base")]).await.unwrap();
    assert!(second.verification.migrated.is_none(), "already current");
    if let Store::Postgres { pool, schema } = &store {
        // The pool still works after Ferry used it, and lent Ferry none of its own.
        let client = pool.get().await.unwrap();
        let sql = format!("SELECT count(*) FROM \"{schema}\".ferry_revisions");
        let n: i64 = client.query_one(&sql, &[]).await.unwrap().get(0);
        assert!(n >= 3, "the ledger records the revisions: {n}");
    }
}

fn pg_store(test: &str) -> Option<(TestDb, Store)> {
    let db = TestDb::postgres(test)?;
    let schema = db.schema().unwrap().to_string();
    // A fresh schema that Ferry must create itself (no_database → auto-migrate).
    let fresh = format!("{schema}_svc");
    let url = pg_base_url().unwrap();
    let store = Store::Postgres {
        pool: pool(&url).unwrap(),
        schema: fresh,
    };
    Some((db, store))
}

async fn drop_schema(store: &Store) {
    if let Store::Postgres { pool, schema } = store {
        let client = pool.get().await.unwrap();
        client
            .batch_execute(&format!("DROP SCHEMA IF EXISTS \"{schema}\" CASCADE"))
            .await
            .unwrap();
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_current_thread_service_migrates_postgres_through_its_pool() {
    let Some((_db, store)) = pg_store("embed_pool_current") else {
        return;
    };
    starts_and_migrates_then_drop(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_threaded_service_migrates_postgres_through_its_pool() {
    let Some((_db, store)) = pg_store("embed_pool_multi") else {
        return;
    };
    starts_and_migrates_then_drop(store).await;
}

async fn starts_and_migrates_then_drop(store: Store) {
    // Make the pool hold an idle connection driven by the application's runtime
    // first: Ferry must not depend on it being driven while it blocks.
    if let Store::Postgres { pool, .. } = &store {
        let c = pool.get().await.unwrap();
        c.query_one("SELECT 1", &[]).await.unwrap();
    }
    starts_and_migrates(store_ref(&store)).await;
    drop_schema(&store).await;
}

/// The same pool and schema (a pool is a handle: clones share connections).
fn store_ref(store: &Store) -> Store {
    match store {
        Store::Postgres { pool, schema } => Store::Postgres {
            pool: pool.clone(),
            schema: schema.clone(),
        },
        Store::Sqlite(url) => Store::Sqlite(url.clone()),
    }
}

#[tokio::test(flavor = "current_thread")]
async fn a_current_thread_service_migrates_sqlite() {
    let db = TestDb::sqlite();
    starts_and_migrates(Store::Sqlite(db.url().to_string())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_multi_threaded_service_migrates_sqlite() {
    let db = TestDb::sqlite();
    starts_and_migrates(Store::Sqlite(db.url().to_string())).await;
}

/// A URL (Ferry's own connections) from inside both kinds of runtime: no panic.
#[test]
fn a_url_works_inside_either_runtime() {
    let Some(db) = TestDb::postgres("embed_url_in_runtime") else {
        return;
    };
    let mut completed: Vec<usize> = Vec::new();
    for multi in [false, true] {
        let runtime = if multi {
            tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()
        } else {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
        }
        .unwrap();
        let n = runtime.block_on(async {
            let migrator = Migrator::builder()
                .url(db.url())
                .roots([embed_root("base")])
                .stdlib(None)
                .build()
                .unwrap();
            let report = migrator.upgrade(&[], &UpgradeOptions::default()).unwrap();
            assert!(report.succeeded());
            let status = migrator.status().unwrap();
            assert!(!status.trees.is_empty());
            report.completed.len()
        });
        completed.push(n);
    }
    assert_eq!(completed, [3, 0], "applied once, then nothing pending");
    assert_eq!(db.count("ferry_revisions"), 3);
}
