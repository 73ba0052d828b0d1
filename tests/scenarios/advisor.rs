//! The advisor against real data: a storefront above a threshold is recommended a move,
//! with the reason, and is still routed where the directory says.

use std::time::Duration;

use entities::prelude::*;
use migration::Migrator;
use sea_orm::{EntityTrait, PaginatorTrait};
use tenancy_core::{config::TenancyConfig, Placement, StorefrontId, TenancyOptions, TenantType};
use tenancy_tests::{matrix::seed, Backend, TestDb};

async fn advisor(backend: Backend) {
    let Some(test) = TestDb::migrated(backend).await else {
        return;
    };
    let config = TenancyConfig::from_yaml_str(&format!(
        r#"
tenant_strategy:
  migration_thresholds: {{ customers: 3, orders: 100, avg_query_time: 1us }}
  database_config: {{ shared_database_url: "{}" }}
"#,
        test.url
    ))
    .unwrap();
    let tenancy = TenancyOptions::new()
        .registry(entities::registry())
        .directory(Duration::from_secs(30), None)
        .connect_with(test.db.clone())
        .await
        .unwrap();
    let big = StorefrontId::new_random();
    let small = StorefrontId::new_random();
    for id in [big, small] {
        tenancy
            .create_storefront::<Migrator>(id, Placement::Shared)
            .await
            .unwrap();
    }
    seed(&tenancy.connection(big), "big", &["a", "b", "c", "d"], 1).await;
    seed(&tenancy.connection(small), "small", &["a"], 0).await;

    let plan = tenancy.plan(&config.tenant_strategy).await.unwrap();
    let of = |id| plan.iter().find(|r| r.storefront == id).unwrap();
    assert_eq!(of(big).recommended, TenantType::Database);
    assert_eq!(of(big).observation.customers, 4);
    assert_eq!(of(big).observation.orders, 3);
    assert!(
        of(big).reason.contains("customers 4 > threshold 3"),
        "{}",
        of(big).reason
    );
    assert_eq!(of(small).observation.customers, 1);

    // Latency measured by the TenantConnection itself.
    let db = tenancy.connection(small);
    for _ in 0..25 {
        Customer::find().count(&db).await.unwrap();
    }
    let latency = tenancy.stats().summary(small).unwrap();
    // No order between mean and p95 is asserted: one slow first query can lift the mean
    // above the p95.
    assert!(latency.count >= 25 && latency.mean_micros > 0 && latency.p95_micros > 0);
    let plan = tenancy.plan(&config.tenant_strategy).await.unwrap();
    let small_plan = plan.iter().find(|r| r.storefront == small).unwrap();
    assert_eq!(small_plan.recommended, TenantType::Database);
    assert!(
        small_plan.reason.contains("avg query time"),
        "{}",
        small_plan.reason
    );

    // Advice is not routing: both are still shared, and their rows are where they were.
    for id in [big, small] {
        assert_eq!(tenancy.placement(id).await.unwrap(), Placement::Shared);
    }
    assert_eq!(
        Customer::find()
            .count(&tenancy.connection(big))
            .await
            .unwrap(),
        4
    );
    test.teardown().await;
}

#[tokio::test]
async fn advisor_sqlite() {
    advisor(Backend::Sqlite).await;
}

#[tokio::test]
async fn advisor_postgres() {
    advisor(Backend::Postgres).await;
}
