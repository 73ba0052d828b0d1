//! Provisions N schema storefronts on PostgreSQL, then times the fleet migration when all
//! are current (the no-op run), trusting the directory and verifying every schema.
//!
//! `FLEET_N=1000 cargo bench -p tenancy-tests --bench fleet` (default N = 1000; needs
//! TENANCY_TEST_POSTGRES_URL). Results are recorded in docs/benchmarks.md.

use std::time::{Duration, Instant};

use futures_util::{stream, StreamExt};
use migration::Migrator;
use tenancy_core::{fleet::FleetOptions, fleet::Outcome, Placement, StorefrontId, TenancyOptions};
use tenancy_tests::{Backend, TestDb};

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let n: usize = std::env::var("FLEET_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let jobs: usize = std::env::var("FLEET_JOBS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8);
    let Some(test) = TestDb::migrated(Backend::Postgres).await else {
        eprintln!("fleet bench needs TENANCY_TEST_POSTGRES_URL");
        return;
    };
    let tenancy = TenancyOptions::new()
        .registry(entities::registry())
        .directory(Duration::from_secs(60), None)
        .connect_with(test.db.clone())
        .await
        .expect("tenancy");

    let started = Instant::now();
    let mut done = 0;
    let mut provisions = stream::iter(0..n)
        .map(|i| {
            let tenancy = tenancy.clone();
            async move {
                let id = StorefrontId::new_random();
                let schema = format!("storefront_{i:05}");
                tenancy
                    .create_storefront::<Migrator>(id, Placement::Schema { schema })
                    .await
                    .expect("provision")
            }
        })
        .buffer_unordered(jobs);
    while provisions.next().await.is_some() {
        done += 1;
        if done % 100 == 0 {
            eprintln!(
                "provisioned {done}/{n} ({:.1}s)",
                started.elapsed().as_secs_f64()
            );
        }
    }
    let provisioning = started.elapsed();

    let opts = FleetOptions {
        jobs,
        include_shared: true,
        ..FleetOptions::default()
    };
    let t = Instant::now();
    let report = tenancy
        .migrate_fleet::<Migrator>(&opts, |_| {})
        .await
        .expect("fleet");
    let noop = t.elapsed();
    assert_eq!(report.count(|o| *o == Outcome::Current), n);

    let t = Instant::now();
    let verified = tenancy
        .migrate_fleet::<Migrator>(
            &FleetOptions {
                verify: true,
                ..opts
            },
            |_| {},
        )
        .await
        .expect("fleet");
    let verify = t.elapsed();
    assert_eq!(verified.count(|o| *o == Outcome::Current), n);

    println!(
        "FLEET n={n} jobs={jobs}: provisioned in {:.1}s ({:.1} storefronts/s); no-op fleet run {:.3}s (directory), {:.3}s (verified per schema)",
        provisioning.as_secs_f64(),
        n as f64 / provisioning.as_secs_f64(),
        noop.as_secs_f64(),
        verify.as_secs_f64()
    );
    test.teardown().await;
}
