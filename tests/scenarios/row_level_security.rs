//! The second fence: PostgreSQL row-level security generated from the registry.
//!
//! What the rewriter cannot see (a view over a scoped table, a SQL function that reads one)
//! is confined by the database itself once the policies are on; a statement with no
//! storefront set reads nothing and writes nothing; `apply` is idempotent and `check` finds
//! what was taken away; a handle refuses to start on a database where the fence is not in
//! place; and a mover whose role the policies bind refuses to move. The isolation matrix,
//! the hybrid test and a live move run with it on in `isolation.rs`, `hybrid.rs` and
//! `moves.rs`.

use std::time::Duration;

use futures_util::StreamExt;
use sea_orm::{ConnectionTrait, Database, DbBackend, Statement, StreamTrait, TransactionTrait};
use tenancy_core::{
    rls::{self, RowLevelSecurity},
    Placement, Registry, StorefrontId, Tenancy, TenancyError, TenancyOptions,
};
use tenancy_tests::{matrix::seed, rls::AppRole, Backend, TestDb};

/// Every scenario here talks to servers: bound so that a hang fails with a message.
const BOUND: Duration = Duration::from_secs(180);

fn sql(text: &str) -> Statement {
    Statement::from_string(DbBackend::Postgres, text)
}

async fn count<C: ConnectionTrait>(db: &C, text: &str) -> i64 {
    let row = db
        .query_one_raw(sql(text))
        .await
        .unwrap_or_else(|e| panic!("{text}: {e}"))
        .unwrap_or_else(|| panic!("{text}: no row"));
    row.try_get_by_index::<i64>(0)
        .unwrap_or_else(|e| panic!("{text}: {e}"))
}

/// The registry of the SmartSeller entities plus what the rewriter cannot look inside: a
/// view over `customers` and a SQL function that reads `orders`.
fn registry() -> Registry {
    entities::registry()
        .with_global("customer_emails")
        .with_function("order_count")
}

async fn create_view_and_function(test: &TestDb, invoker: bool) {
    let options = if invoker {
        " WITH (security_invoker = true)"
    } else {
        ""
    };
    for ddl in [
        format!(
            "CREATE OR REPLACE VIEW customer_emails{options} AS \
             SELECT storefront_id, email FROM customers"
        ),
        "CREATE OR REPLACE FUNCTION order_count() RETURNS bigint LANGUAGE sql STABLE \
         AS 'SELECT count(*) FROM orders'"
            .to_owned(),
    ] {
        test.db
            .execute_unprepared(&ddl)
            .await
            .unwrap_or_else(|e| panic!("{ddl}: {e}"));
    }
}

async fn tenancy(test: &TestDb, rls: Option<RowLevelSecurity>) -> Result<Tenancy, TenancyError> {
    let mut options = TenancyOptions::new()
        .registry(registry())
        .shared_url(test.url.clone())
        .directory(Duration::from_secs(30), Some(Placement::Shared));
    if let Some(rls) = rls {
        options = options.row_level_security(rls);
    }
    options.connect_with(test.db.clone()).await
}

async fn views_and_functions_see_one_storefront() {
    let Some(test) = TestDb::migrated(Backend::Postgres).await else {
        return;
    };
    let role = AppRole::create(&test).await;
    let registry = registry();

    // A view made by a superuser reads as its owner, whom no policy binds: the check
    // names it, and a handle with row-level security refuses to start over it.
    role.secure(&test, &registry).await;
    create_view_and_function(&test, false).await;
    let found = rls::check(&test.db, &registry, Some(&role.name), None)
        .await
        .expect("check");
    assert!(
        found
            .iter()
            .any(|f| f.table == "customer_emails" && f.problem.contains("security_invoker")),
        "the superuser's view is reported: {found:?}"
    );
    let refused = tenancy(&test, Some(role.options())).await.unwrap_err();
    assert!(
        matches!(refused, TenancyError::RowLevelSecurity { ref problems, .. } if problems.contains("customer_emails")),
        "{refused}"
    );
    create_view_and_function(&test, true).await;
    // The view is new since the first apply: the role is granted it now.
    let granted = rls::apply(&test.db, &registry, Some(&role.name), None)
        .await
        .expect("apply");
    assert_eq!(granted.changed, vec!["customer_emails".to_owned()]);
    let secured = tenancy(&test, Some(role.options()))
        .await
        .expect("a handle with row-level security");
    let plain = tenancy(&test, None).await.expect("a handle without it");

    let (a, b) = (StorefrontId::new_random(), StorefrontId::new_random());
    // Written through the secured handle: inserts pass the policies' WITH CHECK.
    let sa = seed(&secured.connection(a), "a", &["x", "y", "shared"], 2).await;
    let sb = seed(&secured.connection(b), "b", &["shared", "z"], 1).await;
    let (customers_a, orders_a) = (sa.customers.len() as i64, sa.orders.len() as i64);
    let (customers_b, orders_b) = (sb.customers.len() as i64, sb.orders.len() as i64);

    for (id, customers, orders) in [(a, customers_a, orders_a), (b, customers_b, orders_b)] {
        let db = secured.connection(id);
        // A single statement (its own transaction, opened with the prelude).
        assert_eq!(
            count(&db, "SELECT count(*) FROM customer_emails").await,
            customers
        );
        assert_eq!(count(&db, "SELECT order_count()").await, orders);
        // Inside a transaction.
        let txn = db.begin().await.expect("begin");
        assert_eq!(
            count(&txn, "SELECT count(*) FROM customer_emails").await,
            customers
        );
        assert_eq!(count(&txn, "SELECT order_count()").await, orders);
        txn.commit().await.expect("commit");
        // A stream.
        let rows: Vec<_> = db
            .stream_raw(sql("SELECT email FROM customer_emails"))
            .await
            .expect("stream")
            .collect()
            .await;
        assert_eq!(rows.len() as i64, customers, "streamed rows");
        assert!(rows.iter().all(Result::is_ok));
    }

    // The same statements without the second fence see every storefront: the test can fail.
    let db = plain.connection(a);
    assert_eq!(
        count(&db, "SELECT count(*) FROM customer_emails").await,
        customers_a + customers_b
    );
    assert_eq!(
        count(&db, "SELECT order_count()").await,
        orders_a + orders_b
    );

    // A plain connection as the application role, with no storefront set: nothing to read,
    // nothing it may write.
    let raw = Database::connect(role.url(&test))
        .await
        .expect("connect as the app role");
    for table in ["customers", "orders", "customer_emails"] {
        assert_eq!(
            count(&raw, &format!("SELECT count(*) FROM {table}")).await,
            0,
            "{table}"
        );
    }
    assert_eq!(count(&raw, "SELECT order_count()").await, 0);
    let insert = format!(
        "INSERT INTO customers (id, storefront_id, email, first_name, last_name, created_at, updated_at) \
         VALUES ('{}', '{}', 'raw@example.com', 'R', 'R', now(), now())",
        uuid::Uuid::new_v4(),
        a
    );
    let err = raw.execute_unprepared(&insert).await.unwrap_err();
    assert!(err.to_string().contains("row-level security"), "{err}");
    let updated = raw
        .execute_unprepared("UPDATE customers SET first_name = 'mallory'")
        .await
        .expect("an update that matches nothing");
    assert_eq!(updated.rows_affected(), 0);
    raw.close().await.expect("close");

    // A SECURITY DEFINER function owned by the superuser reads past the policies: a view
    // could call it. The check names it.
    test.db
        .execute_unprepared(
            "CREATE FUNCTION count_all() RETURNS bigint LANGUAGE sql SECURITY DEFINER \
             AS 'SELECT count(*) FROM customers'",
        )
        .await
        .expect("function");
    let found = rls::check(&test.db, &registry, Some(&role.name), None)
        .await
        .expect("check");
    assert!(
        found
            .iter()
            .any(|f| f.table == "count_all" && f.problem.contains("SECURITY DEFINER")),
        "{found:?}"
    );
    test.db
        .execute_unprepared("DROP FUNCTION count_all()")
        .await
        .expect("drop");

    // Idempotent: a second apply changes nothing.
    let again = rls::apply(&test.db, &registry, Some(&role.name), None)
        .await
        .expect("apply again");
    assert!(again.changed.is_empty(), "{again:?}");
    assert_eq!(again.unchanged, registry.tables().len());

    // What is taken away is found, and the handle no longer starts until it is back.
    for ddl in [
        "DROP POLICY tenancy_storefront_only ON orders",
        "ALTER TABLE customers NO FORCE ROW LEVEL SECURITY",
    ] {
        test.db.execute_unprepared(ddl).await.expect(ddl);
    }
    test.db
        .execute_unprepared(&format!(
            "REVOKE INSERT ON cart_items FROM \"{}\"",
            role.name
        ))
        .await
        .expect("revoke");
    let found = rls::check(&test.db, &registry, Some(&role.name), None)
        .await
        .expect("check");
    let said = |table: &str, what: &str| {
        found
            .iter()
            .any(|f| f.table == table && f.problem.contains(what))
    };
    assert!(said("orders", "restrictive"), "{found:?}");
    assert!(said("customers", "not forced"), "{found:?}");
    assert!(said("cart_items", "INSERT"), "{found:?}");
    assert!(tenancy(&test, Some(role.options())).await.is_err());
    let fixed = rls::apply(&test.db, &registry, Some(&role.name), None)
        .await
        .expect("apply");
    assert_eq!(fixed.changed.len(), 3, "{fixed:?}");
    assert!(rls::check(&test.db, &registry, Some(&role.name), None)
        .await
        .expect("check")
        .is_empty());
    tenancy(&test, Some(role.options()))
        .await
        .expect("starts again");

    for t in [secured, plain] {
        t.shutdown().await;
    }
    role.teardown(test).await;
}

#[tokio::test]
async fn row_level_security_confines_what_the_rewriter_cannot_see() {
    tokio::time::timeout(BOUND, views_and_functions_see_one_storefront())
        .await
        .expect("bounded");
}

/// The roles must split as they should, or the handle does not start: without a named role
/// the URL's role is the application's and must be bound; with one, the URL's role does
/// the framework's own work and must pass the policies.
async fn roles_that_do_not_split() {
    let Some(test) = TestDb::migrated(Backend::Postgres).await else {
        return;
    };
    let role = AppRole::secured(&test, &entities::registry()).await;
    let options = |rls| {
        TenancyOptions::new()
            .registry(entities::registry())
            .row_level_security(rls)
    };
    // The test's superuser as the application: no policy binds it.
    let err = options(RowLevelSecurity::new())
        .connect_with(test.db.clone())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("BYPASSRLS"), "{err}");
    // The application role as the operator: moves would see no rows.
    let app = Database::connect(role.url(&test)).await.expect("connect");
    let err = options(role.options())
        .connect_with(app.clone())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("would see no rows"), "{err}");
    // The application role logging in itself serves storefronts (here it may create the
    // framework's own tables, as the directory's first start does)...
    test.db
        .execute_unprepared(&format!(
            "GRANT CREATE ON SCHEMA public TO \"{}\"",
            role.name
        ))
        .await
        .expect("grant");
    let tenancy = TenancyOptions::new()
        .registry(entities::registry())
        .row_level_security(RowLevelSecurity::new())
        .shared_url(role.url(&test))
        .directory(Duration::from_secs(30), Some(Placement::Shared))
        .connect_with(app.clone())
        .await
        .expect("the application role, bound");
    let a = StorefrontId::new_random();
    tenancy
        .create_storefront::<migration::Migrator>(a, Placement::Shared)
        .await
        .expect("provision in the shared placement");
    let seeded = seed(&tenancy.connection(a), "a", &["x"], 1).await;
    assert_eq!(
        count(&tenancy.connection(a), "SELECT count(*) FROM customers").await,
        seeded.customers.len() as i64
    );
    // ...but a move with it would copy nothing: refused before it starts.
    let mover =
        tenancy_core::mover::Mover::new(&tenancy, tenancy_core::mover::MoveOptions::default());
    let err = mover
        .start::<migration::Migrator>(
            a,
            Placement::Schema {
                schema: test.schema_name(),
            },
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, TenancyError::RowLevelSecurity { .. }),
        "the bound mover is refused: {err}"
    );
    // Not PostgreSQL: refused, not ignored.
    let sqlite = Database::connect("sqlite::memory:").await.expect("sqlite");
    let err = options(RowLevelSecurity::new())
        .connect_with(sqlite)
        .await
        .unwrap_err();
    assert!(matches!(err, TenancyError::Unsupported { .. }), "{err}");

    tenancy.shutdown().await;
    drop(tenancy);
    app.close().await.expect("close");
    role.teardown(test).await;
}

#[tokio::test]
async fn roles_that_do_not_split_are_refused() {
    tokio::time::timeout(BOUND, roles_that_do_not_split())
        .await
        .expect("bounded");
}

#[test]
fn a_role_name_is_an_identifier() {
    for bad in [
        "",
        "1app",
        "app-role",
        "app\"; DROP TABLE x; --",
        &"a".repeat(64),
    ] {
        assert!(RowLevelSecurity::new().role(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        RowLevelSecurity::new()
            .role("shop_app")
            .unwrap()
            .role_name(),
        Some("shop_app")
    );
}

/// A partitioned scoped table: a statement that names a partition directly (here through a
/// view) is fenced by the partition's own policies, which `apply` installs too.
async fn partitions() {
    let Some(test) = TestDb::migrated(Backend::Postgres).await else {
        return;
    };
    for ddl in [
        "CREATE TABLE ledger (id uuid NOT NULL, storefront_id uuid NOT NULL, amount integer NOT NULL) \
         PARTITION BY HASH (storefront_id)",
        "CREATE TABLE ledger_p0 PARTITION OF ledger FOR VALUES WITH (MODULUS 2, REMAINDER 0)",
        "CREATE TABLE ledger_p1 PARTITION OF ledger FOR VALUES WITH (MODULUS 2, REMAINDER 1)",
        "CREATE VIEW ledger_parts WITH (security_invoker = true) AS \
         SELECT storefront_id FROM ledger_p0 UNION ALL SELECT storefront_id FROM ledger_p1",
    ] {
        test.db.execute_unprepared(ddl).await.expect(ddl);
    }
    let registry = entities::registry()
        .with_table("ledger", "storefront_id")
        .with_global("ledger_parts");
    let role = AppRole::create(&test).await;
    let applied = rls::apply(&test.db, &registry, Some(&role.name), None)
        .await
        .expect("apply");
    for table in ["ledger", "ledger_p0", "ledger_p1"] {
        assert!(
            applied.changed.iter().any(|t| t == table),
            "{table}: {applied:?}"
        );
    }
    assert!(rls::check(&test.db, &registry, Some(&role.name), None)
        .await
        .expect("check")
        .is_empty());
    // Rows of many storefronts, spread over both partitions.
    let ids: Vec<StorefrontId> = (0..8).map(|_| StorefrontId::new_random()).collect();
    for id in &ids {
        test.db
            .execute_unprepared(&format!(
                "INSERT INTO ledger VALUES ('{}', '{id}', 1)",
                uuid::Uuid::new_v4()
            ))
            .await
            .expect("insert");
    }
    let tenancy = TenancyOptions::new()
        .registry(registry)
        .row_level_security(role.options())
        .connect_with(test.db.clone())
        .await
        .expect("tenancy");
    for id in &ids {
        let db = tenancy.connection(*id);
        assert_eq!(count(&db, "SELECT count(*) FROM ledger_parts").await, 1);
        assert_eq!(count(&db, "SELECT count(*) FROM ledger").await, 1);
    }
    role.teardown(test).await;
}

#[tokio::test]
async fn partitions_carry_the_policies_too() {
    tokio::time::timeout(BOUND, partitions())
        .await
        .expect("bounded");
}

/// A storefront statement whose transaction fails to open, or whose caller stops waiting
/// at any point, never leaves a pooled connection inside the storefront's transaction or
/// as the application role: every connection of the pool reads as the operator again.
async fn no_connection_keeps_a_storefront() {
    let Some(test) = TestDb::migrated(Backend::Postgres).await else {
        return;
    };
    let role = AppRole::secured(&test, &entities::registry()).await;
    let tenancy = TenancyOptions::new()
        .registry(entities::registry())
        .max_connections(4)
        .row_level_security(role.options())
        .connect(&test.url)
        .await
        .expect("tenancy");
    let a = StorefrontId::new_random();
    let db = tenancy.connection(a);
    seed(&db, "a", &["x", "y"], 1).await;

    // The prelude fails (the role is gone under that name): a clear error naming it...
    let renamed = format!("{}_away", role.name);
    test.db
        .execute_unprepared(&format!(
            "ALTER ROLE \"{}\" RENAME TO \"{renamed}\"",
            role.name
        ))
        .await
        .expect("rename");
    for _ in 0..6 {
        let err = db
            .query_one_raw(sql("SELECT count(*) FROM customers"))
            .await
            .unwrap_err();
        assert!(err.to_string().contains(&role.name), "{err}");
    }
    test.db
        .execute_unprepared(&format!(
            "ALTER ROLE \"{renamed}\" RENAME TO \"{}\"",
            role.name
        ))
        .await
        .expect("rename back");
    // ...and callers that stop waiting at every point of a statement's round trips.
    for i in 0..200u64 {
        let stop = Duration::from_micros(i * 37 % 3000);
        let _ = tokio::time::timeout(
            stop,
            db.execute_raw(sql(
                "UPDATE customers SET phone = 'p' WHERE first_name = 'x'",
            )),
        )
        .await;
        let _ = tokio::time::timeout(stop, db.query_all_raw(sql("SELECT id FROM customers"))).await;
    }
    // Every connection of the shared pool (four) is the operator's, outside any storefront.
    let shared = tenancy.shared();
    for _ in 0..40 {
        let row = shared
            .query_one_raw(sql(
                "SELECT current_user::text, COALESCE(current_setting('tenancy.storefront_id', true), '')",
            ))
            .await
            .expect("the pool serves")
            .expect("a row");
        let user: String = row.try_get_by_index(0).unwrap();
        let setting: String = row.try_get_by_index(1).unwrap();
        assert_eq!(user, "postgres");
        assert_eq!(setting, "", "no storefront left on a pooled connection");
    }
    assert_eq!(
        count(&db, "SELECT count(*) FROM customers").await,
        2,
        "the storefront still reads its rows"
    );
    tenancy.shutdown().await;
    drop(tenancy);
    role.teardown(test).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_pooled_connection_keeps_a_storefront() {
    tokio::time::timeout(BOUND, no_connection_keeps_a_storefront())
        .await
        .expect("bounded");
}

/// The application's statements resolve unqualified names in the application role's
/// search path, whose default starts with `"$user"`: a table in a schema named after the
/// role is the one they reach, and the check looks there.
async fn the_roles_own_schema() {
    let Some(test) = TestDb::migrated(Backend::Postgres).await else {
        return;
    };
    let role = AppRole::secured(&test, &entities::registry()).await;
    for ddl in [
        format!("CREATE SCHEMA \"{0}\" AUTHORIZATION \"{0}\"", role.name),
        format!(
            "CREATE TABLE \"{}\".orders (id uuid PRIMARY KEY, storefront_id uuid NOT NULL)",
            role.name
        ),
    ] {
        test.db.execute_unprepared(&ddl).await.expect("ddl");
    }
    let found = rls::check(&test.db, &entities::registry(), Some(&role.name), None)
        .await
        .expect("check");
    assert!(
        found.iter().any(|f| f.schema == role.name
            && f.table == "orders"
            && f.problem.contains("not enabled")),
        "{found:?}"
    );
    let err = TenancyOptions::new()
        .registry(entities::registry())
        .row_level_security(role.options())
        .connect_with(test.db.clone())
        .await
        .unwrap_err();
    assert!(
        matches!(err, TenancyError::RowLevelSecurity { .. }),
        "{err}"
    );
    let applied = rls::apply(&test.db, &entities::registry(), Some(&role.name), None)
        .await
        .expect("apply");
    assert!(applied.changed.iter().any(|t| t == "orders"), "{applied:?}");
    assert!(
        rls::check(&test.db, &entities::registry(), Some(&role.name), None)
            .await
            .expect("check")
            .is_empty()
    );
    role.teardown(test).await;
}

#[tokio::test]
async fn a_table_in_the_roles_own_schema_is_the_one_checked() {
    tokio::time::timeout(BOUND, the_roles_own_schema())
        .await
        .expect("bounded");
}
