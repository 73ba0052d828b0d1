//! One application serving storefronts in all three placements at once, with the same
//! code: the isolation matrix in every placement, on PostgreSQL and MariaDB (and SQLite for
//! the shared and database placements; its schema placement is refused clearly).

use std::time::Duration;

use migration::Migrator;
use tenancy_core::{rls, Placement, PoolOptions, StorefrontId, TenancyError, TenancyOptions};
use tenancy_tests::on_every_backend;
use tenancy_tests::{
    database_of,
    matrix::{check_reads, check_writes, seed, Seeded},
    rls::AppRole,
    Backend, TestDb,
};

async fn count(
    db: &sea_orm::DatabaseConnection,
    table: &str,
    storefront: Option<StorefrontId>,
) -> i64 {
    use sea_orm::ConnectionTrait;
    let backend = db.get_database_backend();
    let (sql, values): (String, Vec<sea_orm::Value>) = match storefront {
        Some(s) => (
            format!("SELECT COUNT(*) FROM {table} WHERE storefront_id = ?"),
            vec![(*s.as_uuid()).into()],
        ),
        None => (format!("SELECT COUNT(*) FROM {table}"), vec![]),
    };
    let row = db
        .query_one_raw(tenancy_tests::stmt(backend, &sql, values))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

async fn hybrid(backend: Backend) {
    hybrid_with(backend, Through::Rewriter).await
}

/// What stands between the storefronts besides the rewriter.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Through {
    Rewriter,
    /// PostgreSQL row-level security: provisioning applies the policies to each new
    /// schema and database, and every placement serves through them.
    RowLevelSecurity,
    /// PgBouncer in transaction mode in front of the shared database and of one
    /// storefront database (provisioned, migrated and inspected directly).
    PgBouncer,
}

async fn hybrid_with(backend: Backend, through: Through) {
    let pgbouncer = match through {
        Through::PgBouncer => match tenancy_tests::pgbouncer::url() {
            Some(url) => Some(url),
            None => return,
        },
        _ => None,
    };
    let Some(test) = TestDb::migrated(backend).await else {
        return;
    };
    let mut options = TenancyOptions::new();
    let role = if through == Through::RowLevelSecurity {
        let role = AppRole::secured(&test, &entities::registry()).await;
        options = options.row_level_security(role.options());
        Some(role)
    } else {
        None
    };
    let options = options
        .registry(entities::registry())
        .directory(Duration::from_secs(30), None)
        .pools(PoolOptions {
            budget: 8,
            per_tenant: 2,
            ..PoolOptions::default()
        });
    let tenancy = match &pgbouncer {
        Some(pgbouncer) => tenancy_tests::pgbouncer::connect(options, pgbouncer, &test.url).await,
        None => {
            options
                .shared_url(test.url.clone())
                .connect_with(test.db.clone())
                .await
        }
    }
    .expect("tenancy");
    // Through PgBouncer: the second storefront database is reached through it too.
    let second_url = test.sibling_url("tenancy_test_d");
    let second_url = match &pgbouncer {
        Some(pgbouncer) => tenancy_tests::pgbouncer::through(pgbouncer, &second_url),
        None => second_url,
    };

    let shared_id = StorefrontId::new_random();
    let schema_id = StorefrontId::new_random();
    let database_id = StorefrontId::new_random();
    let second_db_id = StorefrontId::new_random();
    let mut placements = vec![
        (shared_id, Placement::Shared),
        (
            database_id,
            Placement::Database {
                url: test.sibling_url("tenancy_test_d"),
            },
        ),
        (
            second_db_id,
            Placement::Database {
                url: second_url.clone(),
            },
        ),
    ];
    let schema = Placement::Schema {
        schema: test.schema_name(),
    };
    if backend == Backend::Sqlite {
        let err = tenancy
            .create_storefront::<Migrator>(schema_id, schema)
            .await
            .unwrap_err();
        assert!(matches!(err, TenancyError::Unsupported { .. }), "{err}");
        assert!(err.to_string().contains("SQLite"), "{err}");
        assert!(tenancy
            .directory()
            .unwrap()
            .get(schema_id)
            .await
            .unwrap()
            .is_none());
    } else {
        placements.push((schema_id, schema));
    }
    for (id, placement) in &placements {
        tenancy
            .create_storefront::<Migrator>(*id, placement.clone())
            .await
            .unwrap_or_else(|e| panic!("{backend}: provisioning {placement}: {e}"));
        assert_eq!(&tenancy.placement(*id).await.unwrap(), placement);
    }

    // Provisioning put the fence in each new schema and database.
    if let Some(role) = &role {
        let registry = entities::registry();
        for (_, placement) in &placements {
            let found = match placement {
                Placement::Shared => continue,
                Placement::Schema { schema } => {
                    rls::check(&test.db, &registry, Some(&role.name), Some(schema)).await
                }
                Placement::Database { url } => {
                    let own = sea_orm::Database::connect(tenancy.direct_url(url))
                        .await
                        .unwrap();
                    let found = rls::check(&own, &registry, Some(&role.name), None).await;
                    own.close().await.unwrap();
                    found
                }
            };
            let found = found.unwrap_or_else(|e| panic!("check {placement}: {e}"));
            assert!(found.is_empty(), "{placement}: {found:?}");
        }
        // A global table streamed by a storefront in its own database is read where it
        // lives, in the shared database, inside the storefront's transaction.
        use futures_util::StreamExt;
        use sea_orm::StreamTrait;
        let rows: Vec<_> = tenancy
            .connection(database_id)
            .stream_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT code FROM countries",
            ))
            .await
            .expect("stream")
            .collect()
            .await;
        assert_eq!(rows.len(), 2, "{rows:?}");
    }

    // Seed every storefront concurrently, through the same code.
    let seeded: Vec<Seeded> = futures_util::future::join_all(placements.iter().map(|(id, p)| {
        let conn = tenancy.connection(*id);
        let label = p.tenant_type().to_string();
        async move { seed(&conn, &label, &["lonely", "shared", "alice"], 2).await }
    }))
    .await;

    // The rows are physically where the placement says, and nowhere else.
    for (id, placement) in &placements {
        let in_shared = count(&test.db, "customers", Some(*id)).await;
        match placement {
            Placement::Shared => assert_eq!(in_shared, 3, "{backend}: shared rows"),
            Placement::Schema { schema } => {
                assert_eq!(
                    in_shared, 0,
                    "{backend}: schema storefront rows leaked into shared"
                );
                let table = format!("{schema}.customers");
                assert_eq!(
                    count(&test.db, &table, None).await,
                    3,
                    "{backend}: rows in {table}"
                );
            }
            Placement::Database { url } => {
                assert_eq!(
                    in_shared, 0,
                    "{backend}: database storefront rows leaked into shared"
                );
                let own = sea_orm::Database::connect(tenancy.direct_url(url))
                    .await
                    .unwrap();
                assert_eq!(
                    count(&own, "customers", None).await,
                    3,
                    "{backend}: rows in own database"
                );
                own.close().await.unwrap();
            }
        }
    }

    let carried_before = match &pgbouncer {
        Some(pgbouncer) => Some((
            tenancy_tests::pgbouncer::transactions(pgbouncer, &database_of(&test.url).unwrap())
                .await,
            tenancy_tests::pgbouncer::transactions(pgbouncer, &database_of(&second_url).unwrap())
                .await,
        )),
        None => None,
    };

    // Reads in every placement, each against every other storefront.
    for me in &seeded {
        let placement = tenancy.placement(me.id).await.unwrap();
        let joinable = !matches!(placement, Placement::Database { .. });
        for other in seeded.iter().filter(|o| o.id != me.id) {
            check_reads(backend, &tenancy.connection(me.id), me, other, joinable).await;
        }
    }
    // Inside a transaction on its own database too, a scoped + global read is refused.
    {
        use sea_orm::{ConnectionTrait, TransactionTrait};
        let db = tenancy.connection(database_id);
        let txn = db.begin().await.unwrap();
        let err = txn
            .query_all_raw(tenancy_tests::stmt(
                txn.get_database_backend(),
                "SELECT a.id FROM customer_addresses a JOIN countries k ON k.code = a.country_code",
                [],
            ))
            .await
            .unwrap_err();
        let message = TenancyError::from_db_err(&err)
            .unwrap_or_default()
            .to_owned();
        assert!(message.contains("`countries`"), "{backend}: {err}");
        txn.rollback().await.unwrap();
    }

    // Writes in every placement, attacking a storefront in another placement.
    for (i, me) in seeded.iter().enumerate() {
        let victim = &seeded[(i + 1) % seeded.len()];
        check_writes(backend, &tenancy, me, victim).await;
    }

    if let (Some(pgbouncer), Some((shared, second))) = (&pgbouncer, carried_before) {
        // The shared database's storefronts, and the storefront database behind the
        // pooler, were served through it.
        for (url, before) in [(&test.url, shared), (&second_url, second)] {
            let name = database_of(url).unwrap();
            let carried = tenancy_tests::pgbouncer::transactions(pgbouncer, &name).await - before;
            assert!(
                carried >= 20,
                "PgBouncer carried {carried} transactions for {name}"
            );
        }
    }

    // An unknown storefront is an error, not a query on the shared database.
    let err = tenancy
        .placement(StorefrontId::new_random())
        .await
        .unwrap_err();
    assert!(
        matches!(err, TenancyError::UnknownStorefront { .. }),
        "{err}"
    );

    for (id, _) in &placements {
        tenancy
            .drop_storefront(*id, &id.to_string())
            .await
            .unwrap_or_else(|e| panic!("{backend}: dropping {id}: {e}"));
    }
    match role {
        Some(role) => role.teardown(test).await,
        None => test.teardown().await,
    }
}

on_every_backend!(hybrid, hybrid);

#[tokio::test]
async fn hybrid_with_row_level_security_postgres() {
    tokio::time::timeout(
        Duration::from_secs(300),
        hybrid_with(Backend::Postgres, Through::RowLevelSecurity),
    )
    .await
    .expect("the hybrid test finishes within 5 minutes");
}

#[tokio::test]
async fn hybrid_through_pgbouncer_postgres() {
    tokio::time::timeout(
        Duration::from_secs(300),
        hybrid_with(Backend::Postgres, Through::PgBouncer),
    )
    .await
    .expect("the hybrid test finishes within 5 minutes");
}
