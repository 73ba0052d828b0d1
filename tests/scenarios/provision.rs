//! Provisioning: a failure halfway leaves neither a directory row nor a schema/database
//! behind; provisioning again succeeds and is idempotent; dropping needs confirmation and
//! removes the data in every placement.

use std::time::Duration;

use entities::prelude::*;
use migration::Migrator;
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, PaginatorTrait, Statement,
};
use tenancy_core::{Placement, PoolOptions, StorefrontId, TenancyError, TenancyOptions};
use tenancy_tests::on_every_backend;
use tenancy_tests::{matrix::seed, migrators::BrokenMigrator, Backend, TestDb};

async fn schema_exists(db: &DatabaseConnection, schema: &str) -> bool {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => "SELECT 1 FROM information_schema.schemata WHERE schema_name = $1",
        _ => "SELECT 1 FROM information_schema.schemata WHERE schema_name = ?",
    };
    db.query_one_raw(Statement::from_sql_and_values(
        backend,
        sql,
        [schema.into()],
    ))
    .await
    .unwrap()
    .is_some()
}

fn database_name(url: &str) -> String {
    tenancy_tests::database_of(url).unwrap().to_owned()
}

async fn provisioning(backend: Backend) {
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
    let directory = tenancy.directory().unwrap().clone();

    let mut cases = vec![(
        StorefrontId::new_random(),
        Placement::Database {
            url: test.sibling_url("tenancy_test_d"),
        },
    )];
    if backend != Backend::Sqlite {
        cases.push((
            StorefrontId::new_random(),
            Placement::Schema {
                schema: test.schema_name(),
            },
        ));
    }
    for (id, placement) in cases {
        // A migration fails halfway: nothing is left registered or created.
        let err = tenancy
            .create_storefront::<BrokenMigrator>(id, placement.clone())
            .await
            .unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, TenancyError::Step { .. }), "{message}");
        assert!(
            message.contains(&id.to_string()) && message.contains("injected failure"),
            "{message}"
        );
        assert!(
            directory.get(id).await.unwrap().is_none(),
            "{backend}: half-registered {placement}"
        );
        match &placement {
            Placement::Schema { schema } => {
                assert!(
                    !schema_exists(&test.db, schema).await,
                    "{backend}: schema {schema} left behind"
                )
            }
            Placement::Database { url } if backend == Backend::Sqlite => {
                let path = url
                    .trim_start_matches("sqlite://")
                    .split('?')
                    .next()
                    .unwrap();
                assert!(
                    !std::path::Path::new(path).exists(),
                    "{backend}: file {path} left behind"
                );
            }
            Placement::Database { url } => {
                let name = database_name(url);
                assert!(!schema_exists(&test.db, &name).await || backend == Backend::Postgres);
                if backend == Backend::Postgres {
                    let row = test
                        .db
                        .query_one_raw(Statement::from_sql_and_values(
                            DbBackend::Postgres,
                            "SELECT 1 FROM pg_database WHERE datname = $1",
                            [name.clone().into()],
                        ))
                        .await
                        .unwrap();
                    assert!(row.is_none(), "{backend}: database {name} left behind");
                }
            }
            Placement::Shared => unreachable!(),
        }

        // Provisioning again succeeds, and again is harmless.
        let record = tenancy
            .create_storefront::<Migrator>(id, placement.clone())
            .await
            .unwrap_or_else(|e| panic!("{backend}: reprovisioning {placement}: {e}"));
        assert_eq!(record.placement, placement);
        assert_eq!(
            record.migration.as_deref(),
            Some("m20250926_000001_smartseller")
        );
        let again = tenancy
            .create_storefront::<Migrator>(id, placement.clone())
            .await
            .unwrap();
        assert_eq!(
            again.version, record.version,
            "{backend}: idempotent provisioning changed the row"
        );

        // Another placement for a provisioned storefront is a move, not a provisioning.
        let err = tenancy
            .create_storefront::<Migrator>(id, Placement::Shared)
            .await
            .unwrap_err();
        assert!(err.to_string().contains("move it"), "{err}");

        // Data, then a drop: refused without the right confirmation, complete with it.
        let conn = tenancy.connection(id);
        seed(&conn, "p", &["a", "b"], 1).await;
        let err = tenancy.drop_storefront(id, "yes").await.unwrap_err();
        assert!(matches!(err, TenancyError::NotConfirmed { .. }), "{err}");
        assert_eq!(Customer::find().count(&conn).await.unwrap(), 2);
        tenancy.drop_storefront(id, &id.to_string()).await.unwrap();
        assert!(directory.get(id).await.unwrap().is_none());
        if let Placement::Schema { schema } = &placement {
            assert!(
                !schema_exists(&test.db, schema).await,
                "{backend}: dropped schema remains"
            );
        }
        let err = tenancy.placement(id).await.unwrap_err();
        assert!(
            matches!(err, TenancyError::UnknownStorefront { .. }),
            "{err}"
        );
    }

    // Shared placement: the drop deletes exactly that storefront's rows.
    let keep = StorefrontId::new_random();
    let gone = StorefrontId::new_random();
    for id in [keep, gone] {
        tenancy
            .create_storefront::<Migrator>(id, Placement::Shared)
            .await
            .unwrap();
        seed(&tenancy.connection(id), "s", &["a", "b", "c"], 2).await;
    }
    tenancy
        .drop_storefront(gone, &gone.to_string())
        .await
        .unwrap();
    assert_eq!(Customer::find().count(&test.db).await.unwrap(), 3);
    assert_eq!(Order::find().count(&test.db).await.unwrap(), 4);
    assert_eq!(
        Customer::find()
            .count(&tenancy.connection(keep))
            .await
            .unwrap(),
        3
    );
    test.teardown().await;
}

on_every_backend!(provisioning, provisioning);
