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
    matrix_with(backend, false).await
}

/// The matrix; with `rls`, on PostgreSQL with row-level security on (statements run as an
/// application role the policies bind).
async fn matrix_with(backend: Backend, rls: bool) {
    let Some(test) = TestDb::migrated(backend).await else {
        return;
    };
    let mut options = TenancyOptions::new().registry(entities::registry());
    let role = if rls {
        let role = AppRole::secured(&test, &entities::registry()).await;
        options = options.row_level_security(role.options());
        Some(role)
    } else {
        None
    };
    let tenancy = options
        .connect_with(test.db.clone())
        .await
        .expect("tenancy");
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
        matrix_with(Backend::Postgres, true),
    )
    .await
    .expect("the matrix finishes within 5 minutes");
}
