//! The isolation matrix in the shared placement: three storefronts (two with data, one
//! empty) on SQLite, PostgreSQL and MariaDB. See `tenancy_tests::matrix`.

use entities::prelude::*;
use sea_orm::{ConnectionTrait, EntityTrait, PaginatorTrait};
use tenancy_core::{StorefrontId, TenancyError, TenancyOptions};
use tenancy_tests::on_every_backend;
use tenancy_tests::{
    matrix::{check_reads, check_writes, seed, Seeded},
    rls::AppRole,
    stmt, Backend, TestDb,
};

async fn matrix(backend: Backend) {
    matrix_with(backend, Through::Rewriter).await
}

/// What stands between the storefronts besides the rewriter.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Through {
    /// The rewriter alone.
    Rewriter,
    /// PostgreSQL row-level security too: statements run as an application role the
    /// policies bind.
    RowLevelSecurity,
    /// The shared database reached through PgBouncer in transaction mode (the schema is
    /// migrated directly, as operators do).
    PgBouncer,
}

/// The matrix, with the rewriter alone or with what `through` adds.
async fn matrix_with(backend: Backend, through: Through) {
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
    let mut options = TenancyOptions::new().registry(entities::registry());
    let role = if through == Through::RowLevelSecurity {
        let role = AppRole::secured(&test, &entities::registry()).await;
        options = options.row_level_security(role.options());
        Some(role)
    } else {
        None
    };
    let tenancy = match &pgbouncer {
        Some(pgbouncer) => tenancy_tests::pgbouncer::connect(options, pgbouncer, &test.url).await,
        None => options.connect_with(test.db.clone()).await,
    }
    .expect("tenancy");
    let carried_before = match &pgbouncer {
        Some(pgbouncer) => {
            let name = tenancy_tests::database_of(&test.url).expect("a database");
            tenancy_tests::pgbouncer::transactions(pgbouncer, &name).await
        }
        None => 0,
    };
    tenancy
        .verify_registry()
        .await
        .expect("registry covers the schema");
    let a = StorefrontId::new_random();
    let b = StorefrontId::new_random();
    let c = StorefrontId::new_random();
    let sa = seed(
        &tenancy.connection(a),
        "a",
        &["lonely", "shared", "alice"],
        2,
    )
    .await;
    let sb = seed(&tenancy.connection(b), "b", &["shared", "bob"], 1).await;
    let sc = Seeded {
        id: c,
        customers: vec![],
        orders: vec![],
        carts: vec![],
    };
    for (me, other) in [(&sa, &sb), (&sb, &sa), (&sc, &sa)] {
        check_reads(backend, &tenancy.connection(me.id), me, other, true).await;
    }
    check_writes(backend, &tenancy, &sa, &sb).await;
    check_writes(backend, &tenancy, &sc, &sa).await;
    // A read-only global table is read by every storefront and written by none: a
    // storefront's write would change what every other storefront sees.
    let db_c = tenancy.connection(c);
    let err = db_c
        .execute_raw(stmt(
            db_c.get_database_backend(),
            "INSERT INTO countries (code, name) VALUES (?, ?)",
            ["FR".into(), "France".into()],
        ))
        .await
        .unwrap_err();
    let message = TenancyError::from_db_err(&err)
        .unwrap_or_default()
        .to_owned();
    assert!(message.contains("read-only global"), "{backend}: {err}");
    assert_eq!(
        Country::find().count(&tenancy.connection(a)).await.unwrap(),
        2
    );
    if let Some(pgbouncer) = &pgbouncer {
        // The storefronts' statements went through the pooler, each in a transaction.
        let name = tenancy_tests::database_of(&test.url).expect("a database");
        let carried =
            tenancy_tests::pgbouncer::transactions(pgbouncer, &name).await - carried_before;
        assert!(
            carried >= 50,
            "PgBouncer carried {carried} transactions for {name}"
        );
    }
    match role {
        Some(role) => role.teardown(test).await,
        None => test.teardown().await,
    }
}

on_every_backend!(isolation_matrix, matrix);

#[tokio::test]
async fn isolation_matrix_with_row_level_security_postgres() {
    tokio::time::timeout(
        std::time::Duration::from_secs(300),
        matrix_with(Backend::Postgres, Through::RowLevelSecurity),
    )
    .await
    .expect("the matrix finishes within 5 minutes");
}

#[tokio::test]
async fn isolation_matrix_through_pgbouncer_postgres() {
    tokio::time::timeout(
        std::time::Duration::from_secs(300),
        matrix_with(Backend::Postgres, Through::PgBouncer),
    )
    .await
    .expect("the matrix finishes within 5 minutes");
}
