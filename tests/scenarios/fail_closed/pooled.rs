//! A shared pool of ONE connection: storefront A runs every session-changing statement
//! (each must be refused), then storefront B reads and writes on that same connection and
//! gets exactly its own rows; the session itself is unchanged.

use std::{collections::BTreeSet, time::Duration};

use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectOptions, ConnectionTrait, Database,
    EntityTrait, QueryFilter, Statement,
};
use tenancy_tests::on_every_backend;
use tenancy_tests::{
    arena::{Arena, Outcome},
    Backend, TestDb,
};

async fn session_state(db: &sea_orm::DatabaseConnection, backend: Backend) -> String {
    let sql = match backend {
        Backend::Postgres => "SELECT current_setting('search_path') || '|' || current_setting('standard_conforming_strings') || '|' || current_user AS s",
        Backend::MySql => "SELECT CONCAT(DATABASE(), '|', @@SESSION.sql_mode, '|', @@autocommit, '|', COALESCE(@x, '')) AS s",
        Backend::Sqlite => "SELECT (SELECT foreign_keys FROM pragma_foreign_keys) || '|' || (SELECT COUNT(*) FROM pragma_database_list) AS s",
    };
    let row = db
        .query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap_or_else(|e| panic!("{backend}: session state: {e}"))
        .expect("a row");
    row.try_get_by_index::<String>(0)
        .or_else(|_| row.try_get_by_index::<i64>(0).map(|n| n.to_string()))
        .unwrap_or_default()
}

async fn pool_of_one(backend: Backend) {
    let Some(test) = TestDb::migrated(backend).await else {
        return;
    };
    let mut options = ConnectOptions::new(test.url.clone());
    options
        .max_connections(1)
        .min_connections(1)
        .acquire_timeout(Duration::from_secs(20))
        .sqlx_logging(false);
    let one = Database::connect(options).await.expect("pool of one");
    let arena = Arena::with_shared(test, one.clone()).await;
    let before = session_state(&one, backend).await;
    let other_schema = arena.shops.iter().find_map(|s| match &s.placement {
        tenancy_core::Placement::Schema { schema } => Some(schema.clone()),
        _ => None,
    });
    let a = 0;
    let b = 1;
    for sql in super::session::attacks(backend, other_schema.as_deref()) {
        let outcome = arena.attempt(a, &sql).await;
        assert!(
            matches!(outcome, Outcome::Refused(_)),
            "{backend}: `{sql}` was not refused: {outcome:?}"
        );
    }
    assert_eq!(
        session_state(&one, backend).await,
        before,
        "{backend}: the pooled session changed"
    );
    // B, on the same single connection, reads exactly its rows and writes its own.
    let db_b = arena.conn(b);
    let mine: BTreeSet<_> = arena.shops[b]
        .seeded
        .customers
        .iter()
        .map(|c| c.id)
        .collect();
    let got: BTreeSet<_> = entities::prelude::Customer::find()
        .all(&db_b)
        .await
        .expect("B reads")
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(got, mine, "{backend}: B's reads after A's attempts");
    let target = arena.shops[b].seeded.customers[0].clone();
    let mut am: entities::customer::ActiveModel = target.clone().into();
    am.first_name = Set("renamed-by-b".into());
    am.update(&db_b).await.expect("B writes");
    let shared = &arena.test.db;
    let renamed = entities::prelude::Customer::find()
        .filter(entities::customer::Column::FirstName.eq("renamed-by-b"))
        .all(shared)
        .await
        .expect("physical read");
    assert_eq!(renamed.len(), 1, "{backend}: exactly B's row was written");
    assert_eq!(renamed[0].storefront_id, arena.shops[b].seeded.uuid());
    drop(db_b);
    arena.teardown().await;
    let _ = one.close().await;
}

async fn bounded(backend: Backend) {
    let limit = Duration::from_secs(600);
    tokio::time::timeout(limit, pool_of_one(backend))
        .await
        .unwrap_or_else(|_| {
            panic!("{backend}: the pool-of-one test did not finish within {limit:?}")
        });
}

on_every_backend!(
    pool_of_one,
    bounded,
    flavor = "multi_thread",
    worker_threads = 2
);
