//! The differential oracle (see `tenancy_tests::oracle`): random SQL on storefront A's
//! connection over every storefront's data, against a plain connection over a database
//! holding only A's rows, in every placement of every backend.
//!
//! Sizes: `TENANCY_ORACLE_STATEMENTS` statements per placement (default 1,000 on SQLite and
//! 300 on PostgreSQL and MariaDB); `TENANCY_ORACLE_SEED` fixes the seed (printed by every
//! run and by every failure).

use std::time::Duration;

use tenancy_core::Placement;
use tenancy_tests::on_every_backend;
use tenancy_tests::{arena::Arena, oracle, Backend};

const CORPUS: &str = include_str!("../../fuzz/corpus_src/identity_mapped.sql");

fn count(backend: Backend) -> usize {
    std::env::var("TENANCY_ORACLE_STATEMENTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if backend == Backend::Sqlite {
            1000
        } else {
            300
        })
}

fn seed() -> u64 {
    std::env::var("TENANCY_ORACLE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(7)
        })
}

async fn differential(backend: Backend) {
    let Some(arena) = Arena::new(backend).await else {
        return;
    };
    let n = count(backend);
    let seed = seed();
    for (a, shop) in arena.shops.iter().enumerate() {
        if shop.label == "shared-b" {
            continue;
        }
        let kind = match shop.placement {
            Placement::Shared => "shared",
            Placement::Schema { .. } => "schema",
            Placement::Database { .. } => "database",
        };
        // SQL nobody here wrote (sqlglot's identity.sql mapped onto the schema), where it
        // executes: the same comparison (first, while A's rows are as seeded).
        let corpus = oracle::run_corpus(&arena, a, CORPUS).await;
        println!(
            "oracle {backend} {kind} mapped corpus: {} read-only statements, {} same result, {} failed alike (mostly unknown columns), {} refused",
            corpus.statements,
            corpus.confined,
            corpus.both_failed,
            corpus.refused_total()
        );
        let tally = oracle::run(&arena, a, seed, n).await;
        println!(
            "oracle {backend} {kind} seed {seed}: {} statements, {} confined, {} failed alike, {} refused {:?}",
            tally.statements,
            tally.confined,
            tally.both_failed,
            tally.refused_total(),
            tally.refused
        );
        for (construct, (total, refused)) in &tally.constructs {
            println!("  {construct}: {total} ({refused} refused)");
        }
        assert_eq!(tally.statements, n);

        // The oracle must mostly compare results, not refusals.
        assert!(
            tally.confined * 2 > n,
            "{backend} {kind}: only {} of {n} statements ran and compared",
            tally.confined
        );
    }
    arena.teardown().await;
}

async fn bounded(backend: Backend) {
    // The long run (TENANCY_ORACLE_STATEMENTS in the tens of thousands) gets more time.
    let limit = Duration::from_secs(1200 + count(backend) as u64 / 10);
    tokio::time::timeout(limit, differential(backend))
        .await
        .unwrap_or_else(|_| panic!("{backend}: the oracle did not finish within {limit:?}"));
}

on_every_backend!(
    differential,
    bounded,
    flavor = "multi_thread",
    worker_threads = 2
);
