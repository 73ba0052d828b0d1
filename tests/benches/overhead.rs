//! What the TenantConnection costs on a point lookup by email, against plain SeaORM with
//! the storefront filter written by hand, in the same run (SQLite in memory, PostgreSQL).
//!
//! `cargo bench -p tenancy-tests --bench overhead`; the ratios are printed at the end and
//! recorded in docs/benchmarks.md. PostgreSQL uses TENANCY_TEST_POSTGRES_URL, and the rows
//! through PgBouncer TENANCY_TEST_PGBOUNCER_URL. `OVERHEAD_ONLY=ratios` skips criterion's
//! groups and prints the interleaved ratios only.

use std::time::Duration;

use chrono::Utc;
use criterion::{BenchmarkId, Criterion};
use entities::{customer, prelude::*};
use migration::{Migrator, MigratorTrait};
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectOptions, Database, DatabaseConnection, EntityTrait,
    QueryFilter,
};
use tenancy_core::{StorefrontId, TenancyOptions};
use tenancy_tests::{Backend, TestDb};
use tokio::runtime::Runtime;
use uuid::Uuid;

const CUSTOMERS_PER_STOREFRONT: usize = 2000;

async fn seed(db: &DatabaseConnection, shops: &[StorefrontId]) {
    let now = Utc::now();
    for shop in shops {
        let rows: Vec<customer::ActiveModel> = (0..CUSTOMERS_PER_STOREFRONT)
            .map(|i| customer::ActiveModel {
                id: Set(Uuid::new_v4()),
                storefront_id: Set(*shop.as_uuid()),
                email: Set(format!("c{i}@example.com")),
                first_name: Set("c".into()),
                last_name: Set("x".into()),
                phone: Set(None),
                created_at: Set(now),
                updated_at: Set(now),
                deleted_at: Set(None),
            })
            .collect();
        for chunk in rows.chunks(500) {
            Customer::insert_many(chunk.to_vec())
                .exec(db)
                .await
                .expect("seed");
        }
    }
}

fn lookup(c: &mut Criterion, rt: &Runtime, label: &str, db: DatabaseConnection) {
    let shops = [StorefrontId::new_random(), StorefrontId::new_random()];
    rt.block_on(seed(&db, &shops));
    let tenancy = rt
        .block_on(
            TenancyOptions::new()
                .registry(entities::registry())
                .connect_with(db.clone()),
        )
        .expect("tenancy");
    let tconn = tenancy.connection(shops[0]);
    let shop = *shops[0].as_uuid();
    let email = "c777@example.com";

    let mut group = c.benchmark_group(format!("overhead/{label}"));
    group
        .measurement_time(Duration::from_secs(4))
        .sample_size(40);
    group.bench_function(BenchmarkId::from_parameter("tenant_connection"), |b| {
        b.to_async(rt).iter(|| async {
            Customer::find()
                .filter(customer::Column::Email.eq(email))
                .one(&tconn)
                .await
                .expect("tenant lookup")
                .expect("found")
        })
    });
    group.bench_function(
        BenchmarkId::from_parameter("plain_seaorm_hand_filter"),
        |b| {
            b.to_async(rt).iter(|| async {
                Customer::find()
                    .filter(customer::Column::StorefrontId.eq(shop))
                    .filter(customer::Column::Email.eq(email))
                    .one(&db)
                    .await
                    .expect("plain lookup")
                    .expect("found")
            })
        },
    );
    group.finish();

    // Criterion runs one function after the other, and on a shared machine the second
    // often runs in a different state than the first (seen: +-15% either way). The recorded
    // ratio comes from interleaved rounds instead: each round times a batch of each, in
    // alternating order, and the medians of the per-round times are compared.
    let (plain, tenant) = rt.block_on(interleaved(40, |plain| {
        let (db, tconn) = (&db, &tconn);
        async move {
            for _ in 0..200 {
                one_lookup(db, tconn, shop, email, plain).await;
            }
        }
    }));
    println!(
        "RATIO {label}: tenant_connection / plain_seaorm = {:.3} (interleaved medians: {:.1} us / {:.1} us per lookup)",
        tenant / plain,
        tenant / 200.0 * 1e6,
        plain / 200.0 * 1e6
    );
}

/// One lookup by email: plain SeaORM with the storefront filter by hand, or through the
/// tenant connection.
async fn one_lookup(
    db: &DatabaseConnection,
    tconn: &tenancy_core::TenantConnection,
    shop: Uuid,
    email: &str,
    plain: bool,
) {
    let q = Customer::find().filter(customer::Column::Email.eq(email));
    let found = if plain {
        q.filter(customer::Column::StorefrontId.eq(shop))
            .one(db)
            .await
    } else {
        q.one(tconn).await
    };
    assert!(found.expect("lookup").is_some());
}

/// SQLite in memory, migrated: one connection, so every query sees the same database.
async fn sqlite_memory() -> DatabaseConnection {
    let mut opts = ConnectOptions::new("sqlite::memory:");
    opts.max_connections(1)
        .min_connections(1)
        .sqlx_logging(false);
    let db = Database::connect(opts).await.expect("sqlite");
    Migrator::up(&db, None).await.expect("migrate");
    db
}

/// Row-level security on PostgreSQL: the same lookup as an application role the policies
/// bind, against plain SeaORM with the hand-written filter (as the test's superuser, which
/// the policies do not slow down), interleaved as above. Once per statement (each in a
/// transaction of its own, opened with the prelude), and ten lookups in one transaction
/// (the prelude once).
fn row_level_security(rt: &Runtime, test: &TestDb) -> tenancy_tests::rls::AppRole {
    let role = rt.block_on(tenancy_tests::rls::AppRole::create(test));
    rt.block_on(role.secure(test, &entities::registry()));
    let shops = [StorefrontId::new_random(), StorefrontId::new_random()];
    rt.block_on(seed(&test.db, &shops));
    let tenancy = rt
        .block_on(
            TenancyOptions::new()
                .registry(entities::registry())
                .row_level_security(role.options())
                .connect_with(test.db.clone()),
        )
        .expect("tenancy with row-level security");
    ratios(
        rt,
        test,
        &tenancy,
        shops[0],
        ("postgres_rls", "with row-level security / plain_seaorm"),
    );
    rt.block_on(tenancy.shutdown());
    role
}

/// Prints two interleaved ratios for `tenancy`'s connection to `storefront` against plain
/// SeaORM on `test`'s direct connection: a single lookup, and ten lookups in a transaction.
fn ratios(
    rt: &Runtime,
    test: &TestDb,
    tenancy: &tenancy_core::Tenancy,
    storefront: StorefrontId,
    (name, what): (&str, &str),
) {
    let tconn = tenancy.connection(storefront);
    let shop = *storefront.as_uuid();
    let email = "c777@example.com";
    let (batch, rounds) = (200, 40);
    let single = rt.block_on(interleaved(rounds, |plain| {
        let (db, tconn) = (&test.db, &tconn);
        async move {
            for _ in 0..batch {
                one_lookup(db, tconn, shop, email, plain).await;
            }
        }
    }));
    println!(
        "RATIO {name}: tenant_connection {what} = {:.3} (interleaved medians: {:.1} us / {:.1} us per lookup)",
        single.1 / single.0,
        single.1 / batch as f64 * 1e6,
        single.0 / batch as f64 * 1e6
    );
    let in_txn = rt.block_on(interleaved(rounds, |plain| {
        let (db, tconn) = (&test.db, &tconn);
        async move {
            use sea_orm::TransactionTrait;
            for _ in 0..batch / 10 {
                if plain {
                    let txn = db.begin().await.expect("begin");
                    for _ in 0..10 {
                        let found = Customer::find()
                            .filter(customer::Column::StorefrontId.eq(shop))
                            .filter(customer::Column::Email.eq(email))
                            .one(&txn)
                            .await;
                        assert!(found.expect("lookup").is_some());
                    }
                    txn.commit().await.expect("commit");
                } else {
                    let txn = tconn.begin().await.expect("begin");
                    for _ in 0..10 {
                        let found = Customer::find()
                            .filter(customer::Column::Email.eq(email))
                            .one(&txn)
                            .await;
                        assert!(found.expect("lookup").is_some());
                    }
                    txn.commit().await.expect("commit");
                }
            }
        }
    }));
    println!(
        "RATIO {name}_transaction: ten lookups in a transaction {what} = {:.3} (interleaved medians: {:.1} us / {:.1} us per lookup)",
        in_txn.1 / in_txn.0,
        in_txn.1 / batch as f64 * 1e6,
        in_txn.0 / batch as f64 * 1e6
    );
}

/// Behind PgBouncer in transaction mode (TENANCY_TEST_PGBOUNCER_URL): each lookup of the
/// tenant connection runs unnamed in a held transaction through the pooler, against plain
/// SeaORM's cached prepared statement on a direct connection, interleaved in one run.
fn through_pgbouncer(rt: &Runtime, test: &TestDb) {
    let Ok(pgb) = std::env::var("TENANCY_TEST_PGBOUNCER_URL") else {
        println!("RATIO postgres_pgbouncer: skipped (TENANCY_TEST_PGBOUNCER_URL is not set)");
        return;
    };
    let shops = [StorefrontId::new_random(), StorefrontId::new_random()];
    rt.block_on(seed(&test.db, &shops));
    let tenancy = rt
        .block_on(
            TenancyOptions::new()
                .registry(entities::registry())
                .transaction_pooler(tenancy_tests::pgbouncer::pooler(&pgb, &test.url))
                .connect(&tenancy_tests::pgbouncer::through(&pgb, &test.url)),
        )
        .expect("tenancy through PgBouncer");
    ratios(
        rt,
        test,
        &tenancy,
        shops[0],
        (
            "postgres_pgbouncer",
            "through PgBouncer / plain_seaorm direct",
        ),
    );
    rt.block_on(tenancy.shutdown());
}

/// Medians of `rounds` interleaved timings of `run(true)` (plain) and `run(false)`.
async fn interleaved<F, Fut>(rounds: usize, run: F) -> (f64, f64)
where
    F: Fn(bool) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (mut plain, mut tenant) = (Vec::new(), Vec::new());
    for round in 0..rounds {
        for first in [round % 2 == 0, round % 2 != 0] {
            let start = std::time::Instant::now();
            run(first).await;
            let took = start.elapsed().as_secs_f64();
            if first {
                plain.push(took)
            } else {
                tenant.push(took)
            }
        }
    }
    (median(plain), median(tenant))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Instruction counting under callgrind: `OVERHEAD_SIDE=tenant|plain`, `OVERHEAD_COUNT=n`
/// and `OVERHEAD_BACKEND=sqlite|postgres` run n lookups of one side only (after the same
/// seeding and a warm-up), with no criterion. Two runs with different n, subtracted, give
/// the client-side instructions of one lookup (see docs/benchmarks.md).
fn count_mode(rt: &Runtime) -> bool {
    let (Ok(side), Ok(n)) = (
        std::env::var("OVERHEAD_SIDE"),
        std::env::var("OVERHEAD_COUNT"),
    ) else {
        return false;
    };
    let n: usize = n.parse().expect("OVERHEAD_COUNT is a number");
    let postgres = std::env::var("OVERHEAD_BACKEND").is_ok_and(|b| b == "postgres");
    rt.block_on(async {
        let (db, test) = if postgres {
            let test = TestDb::migrated(Backend::Postgres)
                .await
                .expect("TENANCY_TEST_POSTGRES_URL");
            (test.db.clone(), Some(test))
        } else {
            (sqlite_memory().await, None)
        };
        let shops = [StorefrontId::new_random(), StorefrontId::new_random()];
        seed(&db, &shops).await;
        let tenancy = TenancyOptions::new()
            .registry(entities::registry())
            .connect_with(db.clone())
            .await
            .expect("tenancy");
        let tconn = tenancy.connection(shops[0]);
        let shop = *shops[0].as_uuid();
        for i in 0..(n + 20) {
            let email = format!("c{}@example.com", i % CUSTOMERS_PER_STOREFRONT);
            one_lookup(&db, &tconn, shop, &email, side == "plain").await;
        }
        if let Some(test) = test {
            test.teardown().await;
        }
    });
    true
}

fn main() {
    let rt = Runtime::new().expect("runtime");
    if count_mode(&rt) {
        return;
    }
    let ratios_only = std::env::var("OVERHEAD_ONLY").is_ok_and(|v| v == "ratios");
    let pg = rt.block_on(TestDb::migrated(Backend::Postgres));
    if !ratios_only {
        let mut c = Criterion::default().configure_from_args();
        let sqlite = rt.block_on(sqlite_memory());
        lookup(&mut c, &rt, "sqlite_memory", sqlite);
        if let Some(pg) = &pg {
            lookup(&mut c, &rt, "postgres", pg.db.clone());
        }
        c.final_summary();
    }

    if let Some(pg) = pg {
        through_pgbouncer(&rt, &pg);
        let role = row_level_security(&rt, &pg);
        let admin = pg.admin_url().map(str::to_owned);
        rt.block_on(pg.teardown());
        if let Some(admin) = admin {
            rt.block_on(role.drop(&admin));
        }
    }
}
