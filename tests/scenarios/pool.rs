//! The pool manager under load: 200 database-placed storefronts on PostgreSQL served by one
//! process with a global budget of 20 server connections (16 for tenant pools, 4 for the
//! shared pool), concurrent requests, no error, and never more than 20 connections to
//! these databases, as counted by the server in `pg_stat_activity`.

use std::{
    sync::{
        atomic::{AtomicBool, AtomicI64, Ordering},
        Arc,
    },
    time::Duration,
};

use chrono::Utc;
use entities::{prelude::*, shopping_cart};
use futures_util::{stream, StreamExt};
use migration::Migrator;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ConnectOptions, ConnectionTrait, Database, DbBackend,
    EntityTrait, PaginatorTrait, Statement, TransactionTrait,
};
use tenancy_core::{Placement, PoolOptions, StorefrontId, TenancyError, TenancyOptions};
use tenancy_tests::{Backend, TestDb};
use uuid::Uuid;

const STOREFRONTS: usize = 200;
const TENANT_BUDGET: u32 = 16;
const SHARED_POOL: u32 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_hundred_databases_within_twenty_connections() {
    let Some(test) = TestDb::migrated(Backend::Postgres).await else {
        return;
    };
    let mut opts = ConnectOptions::new(test.url.clone());
    opts.max_connections(SHARED_POOL).sqlx_logging(false);
    let shared = Database::connect(opts).await.unwrap();
    // From here on the process's only connections to these databases are the shared pool
    // and the tenant pools.
    test.db.close_by_ref().await.unwrap();
    let tenancy = TenancyOptions::new()
        .registry(entities::registry())
        .directory(Duration::from_secs(60), None)
        .pools(PoolOptions {
            budget: TENANT_BUDGET,
            per_tenant: 1,
            idle_timeout: Duration::from_secs(30),
            acquire_timeout: Duration::from_secs(30),
        })
        .connect_with(shared)
        .await
        .unwrap();

    // Provision 200 databases (prefix tenancy_test_ so CI cleans up after a crash).
    let prefix = format!(
        "tenancy_test_p{}_",
        &Uuid::new_v4().simple().to_string()[..8]
    );
    let shops: Vec<(StorefrontId, String)> = (0..STOREFRONTS)
        .map(|i| {
            (
                StorefrontId::new_random(),
                tenancy_tests::with_database(&test.url, &format!("{prefix}{i}")),
            )
        })
        .collect();
    stream::iter(shops.clone())
        .map(|(id, url)| {
            let tenancy = tenancy.clone();
            async move {
                tenancy
                    .create_storefront::<Migrator>(id, Placement::Database { url })
                    .await
                    .unwrap_or_else(|e| panic!("provisioning {id}: {e}"))
            }
        })
        .buffer_unordered(4)
        .collect::<Vec<_>>()
        .await;

    // Watch the server: connections to the shared test database and the 200 tenant ones.
    let admin = Database::connect(
        test.url
            .replace(&test.url[test.url.rfind('/').unwrap()..], "/postgres"),
    )
    .await
    .unwrap();
    let watching = Arc::new(AtomicBool::new(true));
    let peak = Arc::new(AtomicI64::new(0));
    let watcher = {
        let (watching, peak) = (Arc::clone(&watching), Arc::clone(&peak));
        let like = format!("{prefix}%");
        let shared_db = tenancy_tests::database_of(&test.url).unwrap().to_owned();
        tokio::spawn(async move {
            while watching.load(Ordering::Relaxed) {
                let row = admin
                    .query_one_raw(Statement::from_sql_and_values(
                        DbBackend::Postgres,
                        "SELECT COUNT(*) FROM pg_stat_activity WHERE datname LIKE $1 OR datname = $2",
                        [like.clone().into(), shared_db.clone().into()],
                    ))
                    .await
                    .unwrap()
                    .unwrap();
                let n: i64 = row.try_get_by_index(0).unwrap();
                peak.fetch_max(n, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            admin.close().await.unwrap();
        })
    };

    // Single flight: 50 requests for one storefront whose pool does not exist yet.
    let (first, _) = shops[0];
    let results = futures_util::future::join_all((0..50).map(|_| {
        let db = tenancy.connection(first);
        async move { Customer::find().count(&db).await }
    }))
    .await;
    assert!(results.iter().all(Result::is_ok));
    assert!(tenancy.pools().unwrap().open_pools() <= 1 + TENANT_BUDGET as usize);

    // 2,000 requests over 200 storefronts, 64 at a time: a write and a read each.
    let requests: Vec<StorefrontId> = (0..2000)
        .map(|i| shops[(i * 7919) % STOREFRONTS].0)
        .collect();
    let outcomes = stream::iter(requests)
        .map(|id| {
            let db = tenancy.connection(id);
            async move {
                let txn = db.begin().await?;
                shopping_cart::ActiveModel {
                    id: Set(Uuid::new_v4()),
                    customer_id: Set(None),
                    status: Set("open".into()),
                    created_at: Set(Utc::now()),
                    updated_at: Set(Utc::now()),
                    ..Default::default()
                }
                .insert(&txn)
                .await?;
                txn.commit().await?;
                ShoppingCart::find().count(&db).await
            }
        })
        .buffer_unordered(64)
        .collect::<Vec<_>>()
        .await;
    watching.store(false, Ordering::Relaxed);
    watcher.await.unwrap();
    let errors: Vec<_> = outcomes.iter().filter_map(|r| r.as_ref().err()).collect();
    assert!(
        errors.is_empty(),
        "{} requests failed, first: {}",
        errors.len(),
        errors[0]
    );
    let peak = peak.load(Ordering::Relaxed);
    println!("peak server connections: {peak}");
    assert!(peak > 0, "the watcher saw no connection at all");
    assert!(
        peak <= i64::from(TENANT_BUDGET + SHARED_POOL),
        "{peak} server connections, budget {}",
        TENANT_BUDGET + SHARED_POOL
    );
    let total: u64 = stream::iter(shops.iter().map(|(id, _)| tenancy.connection(*id)))
        .then(|db| async move { ShoppingCart::find().count(&db).await.unwrap() })
        .fold(0, |a, b| async move { a + b })
        .await;
    assert_eq!(
        total, 2000,
        "every acknowledged write is in its storefront's database"
    );

    // A budget that stays exhausted gives a clear error naming the storefront.
    let tight = TenancyOptions::new()
        .registry(entities::registry())
        .directory(Duration::from_secs(60), None)
        .pools(PoolOptions {
            budget: 1,
            per_tenant: 1,
            idle_timeout: Duration::from_secs(30),
            acquire_timeout: Duration::from_millis(300),
        })
        .connect_with(tenancy.shared().clone())
        .await
        .unwrap();
    let held = tight.connection(shops[1].0).begin().await.unwrap();
    let err = Customer::find()
        .count(&tight.connection(shops[2].0))
        .await
        .unwrap_err();
    let message = TenancyError::from_db_err(&err)
        .unwrap_or_default()
        .to_owned();
    assert!(
        message.contains("budget") && message.contains(&shops[2].0.to_string()),
        "{err}"
    );
    held.rollback().await.unwrap();
    Customer::find()
        .count(&tight.connection(shops[2].0))
        .await
        .unwrap();

    stream::iter(shops.iter().map(|(id, _)| *id))
        .for_each_concurrent(8, |id| {
            let tenancy = tenancy.clone();
            async move { tenancy.drop_storefront(id, &id.to_string()).await.unwrap() }
        })
        .await;
    test.teardown().await;
}
