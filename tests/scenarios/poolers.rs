//! Storefronts behind PgBouncer in transaction mode: two storefronts' statements, single
//! ones, transactions with savepoints and streams, interleave on one pooled server
//! connection, and neither ever sees the other's rows. With row-level security on as
//! well, the storefront setting and the role of one transaction never reach the next.
//!
//! The test logs in as `tenancy_pinned`, for which `scripts/servers` gives PgBouncer
//! `max_user_connections = 1`: whatever the client side does, one server connection
//! carries everything.

use std::{collections::BTreeSet, sync::Arc, time::Duration};

use entities::prelude::*;
use futures_util::TryStreamExt;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, EntityTrait, PaginatorTrait, TransactionTrait,
};
use tenancy_core::{StorefrontId, TenancyOptions, TenantConnection};
use tenancy_tests::{
    database_of,
    matrix::{seed, Seeded},
    pgbouncer,
    rls::AppRole,
    Backend, TestDb,
};
use uuid::Uuid;

const PINNED: &str = "tenancy_pinned";
const TASKS: usize = 4;
const ROUNDS: usize = 12;

/// Every customer `db` reads, by each path, must be `me`'s and all of `me`'s.
async fn read_own(db: &TenantConnection, me: &Seeded, round: usize) {
    let mine: BTreeSet<Uuid> = me.customers.iter().map(|c| c.id).collect();
    let check = |rows: Vec<entities::customer::Model>, how: &str| {
        for row in &rows {
            assert_eq!(
                row.storefront_id,
                me.uuid(),
                "{how}: storefront {} read a row of storefront {}",
                me.id,
                row.storefront_id
            );
        }
        let seen: BTreeSet<Uuid> = rows.iter().map(|r| r.id).collect();
        assert!(seen.is_superset(&mine), "{how}: {} misses its own rows", me.id);
    };
    match round % 3 {
        0 => check(Customer::find().all(db).await.expect("read"), "single"),
        1 => {
            let txn = db.begin().await.expect("begin");
            let extra = entities::customer::ActiveModel {
                id: Set(Uuid::new_v4()),
                email: Set(format!("tmp-{}@example.com", Uuid::new_v4().simple())),
                first_name: Set("tmp".into()),
                last_name: Set("tmp".into()),
                created_at: Set(chrono::Utc::now()),
                updated_at: Set(chrono::Utc::now()),
                ..Default::default()
            };
            {
                let nested = txn.begin().await.expect("savepoint");
                extra.insert(&nested).await.expect("insert in a savepoint");
                assert_eq!(
                    Customer::find().count(&nested).await.expect("count"),
                    mine.len() as u64 + 1
                );
                nested.rollback().await.expect("rollback to the savepoint");
            }
            check(Customer::find().all(&txn).await.expect("read"), "transaction");
            assert_eq!(
                Customer::find().count(&txn).await.expect("count"),
                mine.len() as u64,
                "the savepoint's row was rolled back"
            );
            txn.rollback().await.expect("rollback");
        }
        _ => {
            let rows: Vec<_> = Customer::find()
                .stream(db)
                .await
                .expect("stream")
                .try_collect()
                .await
                .expect("rows");
            check(rows, "stream")
        }
    }
}

async fn interleave(rls: bool) {
    let Some(pgb) = pgbouncer::url() else {
        return;
    };
    let Some(test) = TestDb::migrated(Backend::Postgres).await else {
        return;
    };
    let registry = entities::registry();
    let mut options = TenancyOptions::new()
        .registry(registry.clone())
        .max_connections(TASKS as u32 * 2)
        .transaction_pooler(pgbouncer::pooler(&pgb, &test.url));
    let role = if rls {
        let role = AppRole::secured(&test, &registry).await;
        options = options.row_level_security(role.options());
        Some(role)
    } else {
        None
    };
    let pinned = pgbouncer::as_user(&pgbouncer::through(&pgb, &test.url), PINNED);
    let tenancy = options.connect(&pinned).await.expect("tenancy through PgBouncer");
    let name = database_of(&test.url).expect("a database");
    let a = StorefrontId::new_random();
    let b = StorefrontId::new_random();
    let sa = Arc::new(seed(&tenancy.connection(a), "a", &["ann", "amy", "abe"], 1).await);
    let sb = Arc::new(seed(&tenancy.connection(b), "b", &["bob", "bea"], 1).await);
    let before = pgbouncer::transactions(&pgb, &name).await;

    // Watches PgBouncer's server connections for the pinned role while the readers run.
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (pgb, name, done) = (pgb.clone(), name.clone(), Arc::clone(&done));
        tokio::spawn(async move {
            let (mut most, mut ours) = (0, 0);
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                let servers = pgbouncer::servers(&pgb, PINNED).await;
                most = most.max(servers.len());
                ours += servers.iter().filter(|d| **d == name).count();
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            (most, ours)
        })
    };
    let mut tasks = Vec::new();
    for k in 0..TASKS {
        for me in [&sa, &sb] {
            let db = tenancy.connection(me.id);
            let me = Arc::clone(me);
            tasks.push(tokio::spawn(async move {
                for round in 0..ROUNDS {
                    read_own(&db, &me, round + k).await;
                }
            }));
        }
    }
    for task in tasks {
        task.await.expect("a reader panicked");
    }

    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (most, ours) = sampler.await.expect("the sampler");
    assert_eq!(most, 1, "server connections PgBouncer held at once for {PINNED}");
    assert!(ours > 0, "the sampler never saw {name}'s server connection");
    // One server connection carried all of it, one transaction after another.
    let carried = pgbouncer::transactions(&pgb, &name).await - before;
    let expected = (TASKS * 2 * ROUNDS) as i64;
    assert!(
        carried >= expected,
        "PgBouncer carried {carried} transactions, fewer than the {expected} rounds"
    );
    drop(tenancy);
    match role {
        Some(role) => role.teardown(test).await,
        None => test.teardown().await,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storefronts_interleaving_on_one_pooled_server_connection_stay_apart() {
    tokio::time::timeout(Duration::from_secs(180), interleave(false))
        .await
        .expect("the interleaving test finishes within 3 minutes");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_level_security_settings_never_outlive_their_transaction_behind_pgbouncer() {
    tokio::time::timeout(Duration::from_secs(180), interleave(true))
        .await
        .expect("the interleaving test finishes within 3 minutes");
}
