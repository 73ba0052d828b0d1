//! The seed's example configuration file drives a hybrid setup: its overrides place one
//! storefront in its own database and one in its own schema, next to a shared one. (Own
//! test binary: it sets TENANCY_ variables to point the file's URLs at a test database.)

use entities::prelude::*;
use migration::{Migrator, MigratorTrait};
use sea_orm::{EntityTrait, PaginatorTrait};
use tenancy_core::{config::TenancyConfig, Placement, StorefrontId, Tenancy, TenantType};
use tenancy_tests::{
    matrix::{check_reads, seed},
    Backend, TestDb,
};

#[tokio::test]
async fn the_seed_example_drives_a_hybrid_setup() {
    let Some(test) = TestDb::migrated(Backend::Postgres).await else {
        return;
    };
    // Same file; only the URLs move to this test's database (prefix tenancy_test_).
    let pattern = tenancy_tests::with_database(&test.url, "tenancy_test_{storefront_id}");
    std::env::set_var("TENANCY_DATABASE_CONFIG__SHARED_DATABASE_URL", &test.url);
    std::env::set_var("TENANCY_DATABASE_CONFIG__TENANT_DATABASE_PATTERN", &pattern);
    let config = TenancyConfig::from_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/config/tenant_strategy.yaml"
    ))
    .expect("the seed's file loads");

    // The override ids are fixed, so a run that crashed may have left their database.
    let admin = sea_orm::Database::connect(tenancy_tests::with_database(&test.url, "postgres"))
        .await
        .unwrap();
    sea_orm::ConnectionTrait::execute_unprepared(
        &admin,
        "DROP DATABASE IF EXISTS tenancy_test_550e8400_e29b_41d4_a716_446655440000 WITH (FORCE)",
    )
    .await
    .unwrap();
    admin.close().await.unwrap();
    let tenancy = Tenancy::connect(&config)
        .await
        .expect("connect from config");
    Migrator::up(tenancy.shared(), None).await.unwrap();
    let large: StorefrontId = "550e8400-e29b-41d4-a716-446655440000".parse().unwrap();
    let medium: StorefrontId = "550e8400-e29b-41d4-a716-446655440001".parse().unwrap();
    let small = StorefrontId::new_random();
    for id in [large, medium, small] {
        let placement = config.placement_for(id, None).unwrap();
        tenancy
            .create_storefront::<Migrator>(id, placement)
            .await
            .unwrap();
    }
    assert_eq!(
        tenancy.placement(large).await.unwrap().tenant_type(),
        TenantType::Database
    );
    assert_eq!(
        tenancy.placement(medium).await.unwrap(),
        Placement::Schema {
            schema: "storefront_550e8400_e29b_41d4_a716_446655440001".into()
        }
    );
    assert_eq!(tenancy.placement(small).await.unwrap(), Placement::Shared);

    let mut seeded = Vec::new();
    for (id, n) in [(large, 3), (medium, 2), (small, 1)] {
        let names = ["shared", "a", "b"];
        seeded.push(seed(&tenancy.connection(id), "seed", &names[..n], 1).await);
    }
    for (i, me) in seeded.iter().enumerate() {
        let other = &seeded[(i + 1) % 3];
        let joinable = me.id != large;
        check_reads(
            Backend::Postgres,
            &tenancy.connection(me.id),
            me,
            other,
            joinable,
        )
        .await;
    }
    assert_eq!(
        Customer::find()
            .count(&tenancy.connection(large))
            .await
            .unwrap(),
        3
    );

    for id in [large, medium, small] {
        tenancy.drop_storefront(id, &id.to_string()).await.unwrap();
    }
    test.teardown().await;
}
