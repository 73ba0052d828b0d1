//! Fleet migrations: some storefronts current, one failing; the run reports exactly which;
//! a second run resumes with what is left.

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use migration::Migrator;
use sea_orm::ConnectionTrait;
use tenancy_core::{
    fleet::{FleetOptions, Outcome},
    Placement, PoolOptions, StorefrontId, TenancyOptions,
};
use tenancy_tests::on_every_backend;
use tenancy_tests::{migrators::MigratorV2, Backend, TestDb};

const PROBE: &str = "m20990101_000001_fleet_probe";

async fn fleet(backend: Backend) {
    let Some(test) = TestDb::migrated(backend).await else {
        return;
    };
    let tenancy = TenancyOptions::new()
        .registry(entities::registry())
        .shared_url(test.url.clone())
        .directory(Duration::from_secs(30), None)
        .pools(PoolOptions::default())
        .connect_with(test.db.clone())
        .await
        .unwrap();
    let q = if backend == Backend::MySql { '`' } else { '"' };

    let mut shops = Vec::new();
    for i in 0..5 {
        let placement = if i == 4 || backend == Backend::Sqlite {
            Placement::Database {
                url: test.sibling_url("tenancy_test_f"),
            }
        } else {
            Placement::Schema {
                schema: test.schema_name(),
            }
        };
        let id = StorefrontId::new_random();
        tenancy
            .create_storefront::<Migrator>(id, placement.clone())
            .await
            .unwrap();
        shops.push((id, placement));
    }
    let shared_only = StorefrontId::new_random();
    tenancy
        .create_storefront::<Migrator>(shared_only, Placement::Shared)
        .await
        .unwrap();

    // Everyone is current with the app's migrations: nothing to do.
    let report = tenancy
        .migrate_fleet::<Migrator>(&FleetOptions::default(), |_| {})
        .await
        .unwrap();
    assert!(report.is_success());
    assert_eq!(report.count(|o| *o == Outcome::Current), shops.len());

    // A new migration; storefront 2 is made to fail it.
    let (failing, failing_placement) = shops[2].clone();
    let fail_table = match &failing_placement {
        Placement::Schema { schema } => format!("{q}{schema}{q}.fail_here"),
        _ => "fail_here".into(),
    };
    let exec_in = |placement: Placement, sql: String| {
        let shared = test.db.clone();
        async move {
            match placement {
                Placement::Database { url } => {
                    let db = sea_orm::Database::connect(url.as_str()).await.unwrap();
                    db.execute_unprepared(&sql).await.unwrap();
                    db.close().await.unwrap();
                }
                _ => {
                    shared.execute_unprepared(&sql).await.unwrap();
                }
            }
        }
    };
    exec_in(
        failing_placement.clone(),
        format!("CREATE TABLE {fail_table} (id INT)"),
    )
    .await;

    let seen = Arc::new(Mutex::new(Vec::new()));
    let opts = FleetOptions {
        jobs: 3,
        ..FleetOptions::default()
    };
    let report = {
        let seen = Arc::clone(&seen);
        tenancy
            .migrate_fleet::<MigratorV2>(&opts, move |p| {
                seen.lock().unwrap().push((p.done, p.total))
            })
            .await
            .unwrap()
    };
    assert!(
        matches!(report.shared, Some(Outcome::Migrated { .. })),
        "{backend}: {:?}",
        report.shared
    );
    let failures = report.failures();
    assert_eq!(failures.len(), 1, "{backend}: {failures:?}");
    assert_eq!(failures[0].0, failing);
    assert!(
        failures[0].1.contains("injected failure"),
        "{}",
        failures[0].1
    );
    assert_eq!(
        report.count(|o| matches!(o, Outcome::Migrated { .. })),
        shops.len() - 1
    );
    assert!(
        !report.storefronts.iter().any(|(id, _)| *id == shared_only),
        "shared-placement storefronts migrate with the shared database"
    );
    let progress = seen.lock().unwrap().clone();
    assert_eq!(progress.len(), shops.len());
    assert_eq!(progress.last(), Some(&(shops.len(), shops.len())));
    let record = tenancy
        .directory()
        .unwrap()
        .get(failing)
        .await
        .unwrap()
        .unwrap();
    assert!(record
        .migration_error
        .as_deref()
        .is_some_and(|e| e.contains("injected failure")));
    for (id, placement) in &shops {
        let applied = tenancy.applied_version(*id, placement).await.unwrap();
        let expected = if *id == failing {
            "m20250926_000001_smartseller"
        } else {
            PROBE
        };
        assert_eq!(applied.as_deref(), Some(expected), "{backend}: {placement}");
    }

    // The cause is fixed; the rerun resumes: only the failed storefront is migrated.
    exec_in(
        failing_placement.clone(),
        format!("DROP TABLE {fail_table}"),
    )
    .await;
    let report = tenancy
        .migrate_fleet::<MigratorV2>(&opts, |_| {})
        .await
        .unwrap();
    assert!(report.is_success(), "{backend}: {:?}", report.failures());
    for (id, outcome) in &report.storefronts {
        if *id == failing {
            assert!(matches!(outcome, Outcome::Migrated { .. }), "{outcome:?}");
        } else {
            assert_eq!(*outcome, Outcome::Current);
        }
    }
    // Verified against each storefront's own seaql_migrations, all are current.
    let verified = tenancy
        .migrate_fleet::<MigratorV2>(
            &FleetOptions {
                verify: true,
                ..opts.clone()
            },
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(verified.count(|o| *o == Outcome::Current), shops.len());

    for (id, _) in shops.iter().chain([&(shared_only, Placement::Shared)]) {
        tenancy.drop_storefront(*id, &id.to_string()).await.unwrap();
    }
    test.teardown().await;
}

on_every_backend!(fleet, fleet);

/// A fleet over three PostgreSQL servers (schema storefronts on the shared one, database
/// storefronts on the second and on a third reached through a proxy) gets a real schema
/// change, at most one storefront at a time per server. The third server goes down once
/// the run has begun: only storefronts on it fail, each named in the report, and a rerun
/// with the server back finishes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_fleet_across_servers_with_one_down() {
    use tenancy_tests::{
        fleet::{all_configured, Proxy, Server},
        migrators::MigratorWithLoyalty,
    };
    tokio::time::timeout(Duration::from_secs(300), async {
        if !all_configured(&[Server::Postgres2, Server::Postgres3]) {
            return;
        }
        let Some(test) = TestDb::migrated(Backend::Postgres).await else {
            return;
        };
        let third = Server::Postgres3.url().expect("configured");
        let upstream = tenancy_core::DatabaseUrl::parse(&third)
            .expect("url")
            .server()
            .expect("a server");
        let proxy = Proxy::start(&upstream).await;
        let tenancy = TenancyOptions::new()
            .registry(entities::registry())
            .directory(Duration::from_secs(30), None)
            .pools(PoolOptions::default())
            .connect_with(test.db.clone())
            .await
            .expect("tenancy");
        let mut placed: Vec<(StorefrontId, &str, Placement)> = Vec::new();
        for i in 0..9 {
            let (server, placement) = match i % 3 {
                0 => ("shared", Placement::Schema { schema: test.schema_name() }),
                1 => (
                    "second",
                    Placement::Database {
                        url: Server::Postgres2.database_url("tenancy_test_fs").expect("url"),
                    },
                ),
                _ => (
                    "third",
                    Placement::Database {
                        url: proxy.url(&Server::Postgres3.database_url("tenancy_test_fs").expect("url")),
                    },
                ),
            };
            let id = StorefrontId::new_random();
            tenancy
                .create_storefront::<Migrator>(id, placement.clone())
                .await
                .unwrap_or_else(|e| panic!("provisioning {placement}: {e}"));
            placed.push((id, server, placement));
        }
        let on_third: std::collections::BTreeSet<StorefrontId> = placed
            .iter()
            .filter(|(_, s, _)| *s == "third")
            .map(|(id, _, _)| *id)
            .collect();

        let opts = FleetOptions {
            jobs: 3,
            jobs_per_server: Some(1),
            ..FleetOptions::default()
        };
        // The third server goes down as soon as the first storefront is done.
        let downed = std::sync::atomic::AtomicBool::new(false);
        let report = tenancy
            .migrate_fleet::<MigratorWithLoyalty>(&opts, |_| {
                if !downed.swap(true, std::sync::atomic::Ordering::SeqCst) {
                    proxy.stop();
                }
            })
            .await
            .expect("the run reports");
        let failed: std::collections::BTreeSet<StorefrontId> = report
            .storefronts
            .iter()
            .filter(|(_, o)| matches!(o, Outcome::Failed { .. }))
            .map(|(id, _)| *id)
            .collect();
        assert!(!failed.is_empty(), "the downed server's storefronts failed: {report:?}");
        assert!(failed.is_subset(&on_third), "only the downed server's storefronts fail: {report:?}");
        for (id, outcome) in &report.storefronts {
            if !on_third.contains(id) {
                assert!(matches!(outcome, Outcome::Migrated { .. }), "{id}: {outcome:?}");
            }
            if let Outcome::Failed { error } = outcome {
                assert!(error.contains(&proxy.port.to_string()), "the error names the server: {error}");
            }
        }

        // The server is back: the rerun finishes what failed, and touches nothing else.
        let _back = proxy.restart().await;
        let rerun = tenancy
            .migrate_fleet::<MigratorWithLoyalty>(&opts, |_| {})
            .await
            .expect("the rerun reports");
        for (id, outcome) in &rerun.storefronts {
            if failed.contains(id) {
                assert!(matches!(outcome, Outcome::Migrated { .. }), "{id}: {outcome:?}");
            } else {
                assert_eq!(outcome, &Outcome::Current, "{id}");
            }
        }
        // The column and its index are everywhere now.
        for (id, _, placement) in &placed {
            let (conn, schema) = match placement {
                Placement::Schema { schema } => (test.db.clone(), schema.clone()),
                Placement::Database { url } => (
                    sea_orm::Database::connect(url.as_str()).await.expect("storefront db"),
                    "public".to_owned(),
                ),
                Placement::Shared => unreachable!("no shared storefront here"),
            };
            let row = conn
                .query_one_raw(tenancy_tests::stmt(
                    sea_orm::DbBackend::Postgres,
                    "SELECT COUNT(*) FROM pg_indexes WHERE schemaname = ? AND indexname = 'ix_customers_loyalty_points'",
                    [schema.into()],
                ))
                .await
                .expect("pg_indexes")
                .expect("a row");
            assert_eq!(row.try_get_by_index::<i64>(0).expect("count"), 1, "{id} {placement}");
        }
        for (id, _, _) in &placed {
            tenancy
                .drop_storefront(*id, &id.to_string())
                .await
                .unwrap_or_else(|e| panic!("dropping {id}: {e}"));
        }
        test.teardown().await;
    })
    .await
    .expect("the fleet test finishes within 5 minutes");
}
