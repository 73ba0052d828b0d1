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
use sea_orm::{ActiveModelTrait, ActiveValue::Set, EntityTrait, PaginatorTrait, TransactionTrait};
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
        assert!(
            seen.is_superset(&mine),
            "{how}: {} misses its own rows",
            me.id
        );
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
            check(
                Customer::find().all(&txn).await.expect("read"),
                "transaction",
            );
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
    let tenancy = options
        .connect(&pinned)
        .await
        .expect("tenancy through PgBouncer");
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
    assert_eq!(
        most, 1,
        "server connections PgBouncer held at once for {PINNED}"
    );
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

/// Savepoints of a held transaction end in the order the server keeps them: a nested
/// transaction dropped without an end is rolled back before the next statement, a sibling
/// opened after it goes with it, and nothing runs once its transaction has ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn savepoints_behind_pgbouncer_end_in_order() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let Some(pgb) = pgbouncer::url() else {
            return;
        };
        let Some(test) = TestDb::migrated(Backend::Postgres).await else {
            return;
        };
        let tenancy = pgbouncer::connect(
            TenancyOptions::new().registry(entities::registry()),
            &pgb,
            &test.url,
        )
        .await
        .expect("tenancy through PgBouncer");
        let db = tenancy.connection(StorefrontId::new_random());
        let customer = |name: &str| entities::customer::ActiveModel {
            id: Set(Uuid::new_v4()),
            email: Set(format!("{name}-{}@example.com", Uuid::new_v4().simple())),
            first_name: Set(name.into()),
            last_name: Set("sp".into()),
            created_at: Set(chrono::Utc::now()),
            updated_at: Set(chrono::Utc::now()),
            ..Default::default()
        };
        let names = |db: &TenantConnection| {
            let db = db.clone();
            async move {
                let mut names: Vec<String> = Customer::find()
                    .all(&db)
                    .await
                    .expect("read")
                    .into_iter()
                    .map(|c| c.first_name)
                    .collect();
                names.sort();
                names
            }
        };

        let txn = db.begin().await.expect("begin");
        customer("outer").insert(&txn).await.expect("outer");
        {
            let dropped = txn.begin().await.expect("savepoint");
            customer("dropped")
                .insert(&dropped)
                .await
                .expect("in the dropped one");
            // A sibling would sit inside it on the server, its work decided by the other's
            // end: only the innermost open transaction may begin another.
            let err = txn.begin().await.unwrap_err();
            assert!(err.to_string().contains("still open"), "{err}");
            let sibling = dropped.begin().await.expect("a savepoint inside the first");
            customer("sibling")
                .insert(&sibling)
                .await
                .expect("in the inner one");
            drop(dropped);
            // The inner one was inside the dropped one: it went with it.
            let err = customer("late").insert(&sibling).await.unwrap_err();
            assert!(err.to_string().contains("already ended"), "{err}");
        }
        let kept = txn.begin().await.expect("savepoint");
        customer("kept")
            .insert(&kept)
            .await
            .expect("in the kept one");
        kept.commit().await.expect("release");
        let undone = txn.begin().await.expect("savepoint");
        customer("undone")
            .insert(&undone)
            .await
            .expect("in the undone one");
        undone.rollback().await.expect("rollback to");
        let orphan = txn.begin().await.expect("savepoint");
        txn.commit().await.expect("commit");
        let err = customer("orphan").insert(&orphan).await.unwrap_err();
        assert!(err.to_string().contains("already ended"), "{err}");
        drop(orphan);
        assert_eq!(names(&db).await, ["kept", "outer"]);
        drop(tenancy);
        test.teardown().await;
    })
    .await
    .expect("the savepoint test finishes within 2 minutes");
}

/// PgBouncer reached at an address the configuration does not name as a pooler: the server
/// answers on another port than the URL's, so storefront statements are served as behind a
/// pooler anyway (unnamed, in held transactions) instead of failing, or worse.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unnamed_pooler_is_served_as_one() {
    tokio::time::timeout(Duration::from_secs(120), async {
        let Some(pgb) = pgbouncer::url() else {
            return;
        };
        let Some(test) = TestDb::migrated(Backend::Postgres).await else {
            return;
        };
        let name = database_of(&test.url).expect("a database");
        let tenancy = TenancyOptions::new()
            .registry(entities::registry())
            .max_connections(4)
            .connect(&pgbouncer::through(&pgb, &test.url))
            .await
            .expect("tenancy through an unnamed PgBouncer");
        let before = pgbouncer::transactions(&pgb, &name).await;
        let mut tasks = Vec::new();
        for prefix in ["a", "b", "c"] {
            let db = tenancy.connection(StorefrontId::new_random());
            tasks.push(tokio::spawn(async move {
                let me = seed(&db, prefix, &["x", "y"], 1).await;
                for round in 0..6 {
                    read_own(&db, &me, round).await;
                }
            }));
        }
        for task in tasks {
            task.await.expect("a storefront's reads failed");
        }
        let carried = pgbouncer::transactions(&pgb, &name).await - before;
        assert!(carried >= 18, "PgBouncer carried {carried} transactions");
        drop(tenancy);
        test.teardown().await;
    })
    .await
    .expect("the test finishes within 2 minutes");
}

/// A column of an enum type through PgBouncer: sqlx 0.9 looks the type up between an
/// unnamed statement's parse and its bind, which drops the statement (`26000`, sqlx #4305).
/// A single statement runs again on the same connection, where the type is known now.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_enum_column_reads_through_pgbouncer() {
    use sea_orm::{ConnectionTrait, Statement};
    tokio::time::timeout(Duration::from_secs(120), async {
        let Some(pgb) = pgbouncer::url() else {
            return;
        };
        let Some(test) = TestDb::create(Backend::Postgres).await else {
            return;
        };
        test.db
            .execute_unprepared(
                "CREATE TYPE mood AS ENUM ('calm', 'busy'); \
                 CREATE TABLE moods (id integer PRIMARY KEY, storefront_id uuid NOT NULL, mood mood NOT NULL)",
            )
            .await
            .expect("schema");
        let registry = tenancy_core::Registry::empty().with_table("moods", "storefront_id");
        let tenancy = TenancyOptions::new()
            .registry(registry)
            .max_connections(2)
            .transaction_pooler(pgbouncer::pooler(&pgb, &test.url))
            .connect(&pgbouncer::through(&pgb, &test.url))
            .await
            .expect("tenancy through PgBouncer");
        let (a, b) = (StorefrontId::new_random(), StorefrontId::new_random());
        for (i, (sf, mood)) in [(a, "calm"), (b, "busy")].into_iter().enumerate() {
            tenancy
                .connection(sf)
                .execute_raw(Statement::from_sql_and_values(
                    sea_orm::DbBackend::Postgres,
                    "INSERT INTO moods (id, mood) VALUES ($1, $2::mood)",
                    [(i as i32).into(), mood.into()],
                ))
                .await
                .expect("insert");
        }
        for (sf, mood) in [(a, "calm"), (b, "busy"), (a, "calm"), (b, "busy")] {
            let rows = tenancy
                .connection(sf)
                .query_all_raw(Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    "SELECT id, mood FROM moods",
                ))
                .await
                .expect("an enum column reads through PgBouncer");
            assert_eq!(rows.len(), 1, "{sf}: only its own row");
            // Decoded as text: the enum's label.
            let raw = rows[0].try_get_by_index::<String>(1);
            if let Ok(label) = raw {
                assert_eq!(label, mood);
            }
        }
        drop(tenancy);
        test.teardown().await;
    })
    .await
    .expect("the test finishes within 2 minutes");
}
