//! The rebalancer against three real PostgreSQL servers (5432, 5433, 5434): thirty
//! storefront databases placed 20/8/2 with skewed sizes, writers running throughout.
//! `rebalance` is killed half way and run again; afterwards every server carries its
//! capacity share within +-15%, and every acknowledged write is where the directory says,
//! exactly once. Then `drain` empties one server under writers, deleting the source copies.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::Duration,
};

use migration::Migrator;
use sea_orm::ConnectionTrait;
use tenancy_core::{
    mover::MoveOptions,
    rebalance::{Event, Rebalancer},
    servers::{ServerConfig, Servers},
    Placement, PoolOptions, StorefrontId, Tenancy, TenancyOptions,
};
use tenancy_tests::{
    fleet::{all_configured, Server},
    movekit::{bounded, state, Writers},
    stmt, Backend, TestDb,
};

/// What the test asserts after the rerun: every server within +-15% of its share.
const TOLERANCE: f64 = 0.15;
/// What the runs aim for: a little tighter, since the writers keep adding rows after the
/// last plan was made.
const AIM: f64 = 0.12;
/// The servers' names, in the order of [`SERVERS`].
const NAMES: [&str; 3] = ["pg1", "pg2", "pg3"];
const SERVERS: [Server; 3] = [Server::Postgres1, Server::Postgres2, Server::Postgres3];
/// Database names of this test start so (`.ci/run` drops leftovers of `tenancy_test_%`).
const PREFIX: &str = "tenancy_test_rb_";

fn move_options() -> MoveOptions {
    MoveOptions {
        // A killed run's lease is waited out by the rerun: short, so the test is too.
        lease: Duration::from_secs(6),
        pause_budget: Duration::from_secs(2),
        converge_within: Duration::from_secs(300),
        retention: Duration::ZERO,
        ..MoveOptions::default()
    }
}

/// Rows seeded into storefront `i` (customers): a few large, many small.
fn seeded_rows(i: usize) -> u64 {
    if i.is_multiple_of(7) {
        6_000
    } else {
        800 + 120 * i as u64
    }
}

/// Inserts `rows` customers of `storefront` straight into its database.
async fn seed(url: &str, storefront: StorefrontId, rows: u64) {
    let db = sea_orm::Database::connect(url).await.expect("connect");
    db.execute_raw(stmt(
        sea_orm::DbBackend::Postgres,
        "INSERT INTO customers (id, storefront_id, email, first_name, last_name, created_at, updated_at) \
         SELECT gen_random_uuid(), $1, 'c' || g || '@example.com', 'n' || g, 'seeded', now(), now() \
         FROM generate_series(1, $2::int) g",
        [(*storefront.as_uuid()).into(), (rows as i64).into()],
    ))
    .await
    .expect("seed");
    let _ = db.close().await;
}

/// Storefronts on each server, by the directory.
async fn on_servers(tenancy: &Tenancy, servers: &Servers) -> BTreeMap<String, usize> {
    let mut by = BTreeMap::new();
    for o in servers.occupancy(tenancy).await.expect("occupancy") {
        by.insert(o.server, o.storefronts);
    }
    by
}

/// Customers of `storefront`, through the framework (wherever it lives now).
async fn customers(tenancy: &Tenancy, storefront: StorefrontId) -> u64 {
    use sea_orm::{EntityTrait, PaginatorTrait};
    entities::customer::Entity::find()
        .count(&tenancy.connection(storefront))
        .await
        .expect("count")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rebalance_killed_half_way_then_drain_under_writers() {
    bounded(module_path!(), async {
        if !all_configured(&SERVERS) {
            return;
        }
        let Some(test) = TestDb::migrated(Backend::Postgres).await else {
            return;
        };
        let tenancy = TenancyOptions::new()
            .registry(entities::registry())
            .shared_url(test.url.clone())
            .directory(Duration::from_millis(300), None)
            .pools(PoolOptions {
                budget: 64,
                per_tenant: 2,
                ..PoolOptions::default()
            })
            // A write that meets the fence of a killed run's cutover waits for the rerun.
            .fence_wait(Duration::from_secs(45))
            .connect_with(test.db.clone())
            .await
            .expect("tenancy");
        let servers = Servers::new(
            NAMES
                .iter()
                .zip(SERVERS)
                .map(|(name, s)| ServerConfig::new(name, &s.url().expect("configured")))
                .collect(),
        )
        .expect("servers");

        // Thirty storefront databases: 20 on pg1, 8 on pg2, 2 on pg3.
        let mut ids = Vec::new();
        for i in 0..30 {
            let server = match i {
                0..20 => "pg1",
                20..28 => "pg2",
                _ => "pg3",
            };
            let id = StorefrontId::new_random();
            let url = servers
                .get(server)
                .expect("server")
                .database_url(&format!("{PREFIX}{}", uuid::Uuid::new_v4().simple()));
            tenancy
                .create_storefront::<Migrator>(id, Placement::Database { url: url.clone() })
                .await
                .unwrap_or_else(|e| panic!("provisioning on {server}: {e}"));
            seed(&url, id, seeded_rows(i)).await;
            ids.push(id);
        }
        assert_eq!(
            on_servers(&tenancy, &servers).await,
            BTreeMap::from([("pg1".into(), 20), ("pg2".into(), 8), ("pg3".into(), 2)])
        );

        // Writers on three storefronts of the heaviest server (one large, two small),
        // paced so their rows stay a small part of the fleet's.
        let written_to = [ids[7], ids[3], ids[12]];
        let pace = Duration::from_millis(40);
        let mut writers = Vec::new();
        for sf in written_to {
            let base = state(&tenancy.connection(sf)).await;
            writers.push((sf, base, Writers::spawn_paced(&tenancy, sf, 1, pace)));
        }

        // The plan, then a run killed once half its moves are done.
        let rebalancer = Rebalancer::new(&tenancy, servers.clone(), move_options()).jobs(2);
        let (plan, _) = rebalancer.plan(AIM).await.expect("plan");
        assert!(
            plan.moves.len() >= 3,
            "a skewed fleet needs moves: {plan:#?}"
        );
        if std::env::var("REBALANCE_TRACE").is_ok() {
            eprintln!("PLAN {} moves: {:#?}", plan.moves.len(), plan.moves);
        }
        assert!(plan.balanced_after, "{plan:#?}");
        let done = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&done);
        let first = rebalancer.clone().observe(move |e| {
            if let Event::Done(outcome) = e {
                assert!(outcome.error.is_none(), "{outcome:?}");
                counted.fetch_add(1, Ordering::SeqCst);
            }
        });
        let run = tokio::spawn(async move { first.rebalance::<Migrator>(AIM).await });
        let half = (plan.moves.len() / 2).max(1);
        let waited = tokio::time::timeout(Duration::from_secs(600), async {
            while done.load(Ordering::SeqCst) < half && !run.is_finished() {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "half the moves within 10 minutes");
        assert!(!run.is_finished(), "killed before the run ended");
        run.abort();
        let _ = run.await;

        // The rerun finishes what the killed one left, plans again, and carries it out.
        let rerun = rebalancer.rebalance::<Migrator>(AIM).await.expect("rerun");
        if std::env::var("REBALANCE_TRACE").is_ok() {
            eprintln!(
                "RERUN resumed={:?}\nmoves={:?}\nbusy={:?}\nbefore={:?}\nafter={:?}",
                rerun.resumed, rerun.moves, rerun.busy, rerun.plan.before, rerun.plan.after
            );
        }
        assert!(rerun.failed().is_empty(), "{rerun:#?}");
        assert!(
            !rerun.resumed.is_empty(),
            "the kill left moves in flight, which the rerun finished: {rerun:#?}"
        );

        // Every acknowledged write is where the directory says, and nothing else is there.
        for (sf, base, w) in writers {
            let written = w.stop().await;
            assert!(written.errors.is_empty(), "{sf}: {:?}", written.errors);
            assert!(
                written.writes > 10,
                "{sf}: the writer wrote ({})",
                written.writes
            );
            assert_eq!(
                state(&tenancy.connection(sf)).await,
                written.expected(&base),
                "{sf}"
            );
        }
        for (i, sf) in ids.iter().enumerate() {
            if !written_to.contains(sf) {
                assert_eq!(
                    customers(&tenancy, *sf).await,
                    seeded_rows(i),
                    "storefront {i}"
                );
            }
        }
        // Every server within +-15% of its share, by a fresh survey; nothing left to do.
        let (after, survey) = rebalancer.plan(TOLERANCE).await.expect("plan after");
        if std::env::var("REBALANCE_TRACE").is_ok() {
            eprintln!("FINAL {:?}", after.before);
            for h in &survey.holdings {
                eprintln!(
                    "  {} {} rows={} bytes={}",
                    h.storefront, h.server, h.rows, h.bytes
                );
            }
        }
        assert!(survey.busy.is_empty(), "{:?}", survey.busy);
        for s in &after.before {
            assert!(
                (s.ratio() - 1.0).abs() <= TOLERANCE,
                "{} carries {:.1}% of the load for a share of {:.1}%: {after:#?}",
                s.server,
                s.load * 100.0,
                s.target * 100.0
            );
        }
        assert!(after.moves.is_empty(), "{:#?}", after.moves);

        // Drain pg3 under writers on two of its storefronts.
        let on_pg3: Vec<StorefrontId> = survey
            .holdings
            .iter()
            .filter(|h| h.server == "pg3")
            .map(|h| h.storefront)
            .collect();
        assert!(on_pg3.len() >= 2, "{survey:#?}");
        let mut pg3_databases = Vec::new();
        for sf in &on_pg3 {
            let Placement::Database { url } = tenancy.placement(*sf).await.expect("placement")
            else {
                panic!("{sf} is in a database");
            };
            pg3_databases.push(
                tenancy_core::DatabaseUrl::parse(&url)
                    .expect("url")
                    .database()
                    .expect("a name"),
            );
        }
        let mut drained_writers = Vec::new();
        for sf in on_pg3.iter().take(2) {
            let base = state(&tenancy.connection(*sf)).await;
            drained_writers.push((*sf, base, Writers::spawn_paced(&tenancy, *sf, 1, pace)));
        }
        let drained = rebalancer.drain::<Migrator>("pg3").await.expect("drain");
        assert!(drained.is_done(), "{drained:#?}");
        assert_eq!(drained.moves.len(), on_pg3.len(), "{drained:#?}");
        for (sf, base, w) in drained_writers {
            let written = w.stop().await;
            assert!(written.errors.is_empty(), "{sf}: {:?}", written.errors);
            assert_eq!(
                state(&tenancy.connection(sf)).await,
                written.expected(&base),
                "{sf}"
            );
        }
        assert_eq!(on_servers(&tenancy, &servers).await.get("pg3"), Some(&0));
        // The source copies are gone from the drained server.
        let pg3 = sea_orm::Database::connect(&Server::Postgres3.url().expect("url"))
            .await
            .expect("pg3");
        let mut left = Vec::new();
        for name in &pg3_databases {
            let row = pg3
                .query_one_raw(stmt(
                    sea_orm::DbBackend::Postgres,
                    "SELECT count(*) FROM pg_database WHERE datname = $1",
                    [name.clone().into()],
                ))
                .await
                .expect("pg_database")
                .expect("a row");
            if row.try_get_by_index::<i64>(0).expect("count") > 0 {
                left.push(name.clone());
            }
        }
        let _ = pg3.close().await;
        assert!(left.is_empty(), "source databases left on pg3: {left:?}");
        for (i, sf) in ids.iter().enumerate() {
            if !written_to.contains(sf) && !on_pg3.contains(sf) {
                assert_eq!(
                    customers(&tenancy, *sf).await,
                    seeded_rows(i),
                    "storefront {i}"
                );
            }
        }

        for sf in ids {
            tenancy
                .drop_storefront(sf, &sf.to_string())
                .await
                .expect("drop");
        }
        tenancy.shutdown().await;
        test.teardown().await;
    })
    .await;
}
