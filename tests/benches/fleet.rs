//! Provisions N schema storefronts on PostgreSQL, then times the fleet migration when all
//! are current (the no-op run), trusting the directory and verifying every schema.
//!
//! Then, across servers: FLEET_DATABASES (default 60) storefront databases spread over the
//! three PostgreSQL servers of the test fleet join them, and every storefront gets a
//! migration that adds a column and an index. Timed twice: as a loop of raw SeaORM
//! migrations one storefront after the other (the baseline), then, after reverting, as the
//! fleet run (`FLEET_JOBS` at once, `FLEET_JOBS_PER_SERVER` per server); the peak number
//! of server connections of this bench on each server is sampled every 20 ms.
//!
//! `FLEET_N=1000 cargo bench -p tenancy-tests --bench fleet` (default N = 1000; needs
//! TENANCY_TEST_POSTGRES_URL, and _POSTGRES2_URL and _POSTGRES3_URL for the second part).
//! Results are recorded in docs/benchmarks.md.

use std::time::{Duration, Instant};

use std::sync::{
    atomic::{AtomicBool, AtomicI64, Ordering},
    Arc,
};

use futures_util::{stream, StreamExt};
use migration::Migrator;
use sea_orm::ConnectionTrait;
use sea_orm_migration::MigratorTrait;
use tenancy_core::{
    fleet::FleetOptions, fleet::Outcome, Placement, StorefrontId, Tenancy, TenancyOptions,
};
use tenancy_tests::{
    fleet::{all_configured, Server},
    migrators::MigratorWithLoyalty,
    stmt, Backend, TestDb,
};

fn env_number(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; nothing else to parse.
    let n = env_number("FLEET_N", 1000);
    let jobs = env_number("FLEET_JOBS", 8);
    let Some(test) = TestDb::migrated(Backend::Postgres).await else {
        eprintln!("fleet bench needs TENANCY_TEST_POSTGRES_URL");
        return;
    };
    let tenancy = TenancyOptions::new()
        .registry(entities::registry())
        .shared_url(test.url.clone())
        .directory(Duration::from_secs(60), None)
        .connect_with(test.db.clone())
        .await
        .expect("tenancy");

    let started = Instant::now();
    let mut done = 0;
    let mut placed: Vec<(StorefrontId, Placement)> = Vec::new();
    let mut provisions = stream::iter(0..n)
        .map(|i| {
            let tenancy = tenancy.clone();
            async move {
                let id = StorefrontId::new_random();
                let placement = Placement::Schema {
                    schema: format!("storefront_{i:05}"),
                };
                tenancy
                    .create_storefront::<Migrator>(id, placement.clone())
                    .await
                    .expect("provision");
                (id, placement)
            }
        })
        .buffer_unordered(jobs);
    while let Some(p) = provisions.next().await {
        placed.push(p);
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
    let databases = env_number("FLEET_DATABASES", 60);
    if databases > 0 && all_configured(&[Server::Postgres2, Server::Postgres3]) {
        across_servers(&test, &tenancy, placed, databases).await;
    }
    tenancy.shutdown().await;
    test.teardown().await;
}

/// The three servers' URLs (of their maintenance database).
fn server_urls() -> [String; 3] {
    [Server::Postgres1, Server::Postgres2, Server::Postgres3].map(|s| s.url().expect("configured"))
}

fn connections_sql(databases: &[String]) -> String {
    let list = databases
        .iter()
        .map(|d| format!("'{}'", d.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(",");
    format!(
        "SELECT count(*) FROM pg_stat_activity WHERE pid <> pg_backend_pid() AND datname IN ({list})"
    )
}

/// The connections to `databases` on the server at `url` now.
async fn count_connections(url: &str, databases: &[String]) -> i64 {
    let db = sea_orm::Database::connect(url).await.expect("monitor");
    let row = db
        .query_one_raw(stmt(
            sea_orm::DbBackend::Postgres,
            &connections_sql(databases),
            [],
        ))
        .await
        .expect("pg_stat_activity")
        .expect("a row");
    let _ = db.close().await;
    row.try_get_by_index(0).expect("count")
}

/// Samples, every 20 ms until `stop`, the connections to `databases` on the server at
/// `url` (the sampler's own excepted), keeping the highest count in `peak`.
async fn sample(url: String, databases: Vec<String>, peak: Arc<AtomicI64>, stop: Arc<AtomicBool>) {
    let db = sea_orm::Database::connect(&url).await.expect("monitor");
    let sql = connections_sql(&databases);
    while !stop.load(Ordering::Relaxed) {
        if let Ok(Some(row)) = db
            .query_one_raw(stmt(sea_orm::DbBackend::Postgres, &sql, []))
            .await
        {
            let n: i64 = row.try_get_by_index(0).unwrap_or(0);
            peak.fetch_max(n, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let _ = db.close().await;
}

/// One storefront migrated with raw SeaORM, as a loop without the framework would: a
/// connection to its database (its schema first on the search path), `up`, close.
async fn raw_up(shared_url: &str, placement: &Placement) {
    let mut opts = match placement {
        Placement::Database { url } => sea_orm::ConnectOptions::new(url.clone()),
        Placement::Schema { schema } => {
            let mut o = sea_orm::ConnectOptions::new(shared_url.to_owned());
            o.set_schema_search_path(schema.clone());
            o
        }
        Placement::Shared => return,
    };
    opts.max_connections(1).sqlx_logging(false);
    let db = sea_orm::Database::connect(opts).await.expect("connect");
    MigratorWithLoyalty::up(&db, None).await.expect("raw up");
    let _ = db.close().await;
}

async fn across_servers(
    test: &TestDb,
    tenancy: &Tenancy,
    mut placed: Vec<(StorefrontId, Placement)>,
    databases: usize,
) {
    let jobs = env_number("FLEET_JOBS", 8);
    let per_server = env_number("FLEET_JOBS_PER_SERVER", 3);
    let urls = server_urls();
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let started = Instant::now();
    let mut names: [Vec<String>; 3] = Default::default();
    for i in 0..databases {
        let name = format!("tenancy_test_fb{}_{i:03}", &tag[..8]);
        let url = tenancy_tests::with_database(&urls[i % 3], &name);
        let id = StorefrontId::new_random();
        let placement = Placement::Database { url };
        tenancy
            .create_storefront::<Migrator>(id, placement.clone())
            .await
            .expect("provision a database");
        names[i % 3].push(name);
        placed.push((id, placement));
    }
    let shared_name = tenancy_core::DatabaseUrl::parse(&test.url)
        .expect("url")
        .database()
        .expect("a name");
    names[0].push(shared_name);
    eprintln!(
        "provisioned {databases} storefront databases over 3 servers in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    // The baseline: raw SeaORM, one storefront after the other.
    let t = Instant::now();
    for (_, placement) in &placed {
        raw_up(&test.url, placement).await;
    }
    let raw = t.elapsed();
    // Reverted (not timed), so the fleet run has the same work to do.
    stream::iter(placed.iter())
        .map(|(id, placement)| async move {
            tenancy
                .migrate_placement_down::<MigratorWithLoyalty>(*id, placement, 1)
                .await
                .expect("down")
        })
        .buffer_unordered(jobs)
        .collect::<Vec<_>>()
        .await;

    let stop = Arc::new(AtomicBool::new(false));
    let peaks: Vec<Arc<AtomicI64>> = (0..3).map(|_| Arc::new(AtomicI64::new(0))).collect();
    let samplers: Vec<_> = (0..3)
        .map(|k| {
            tokio::spawn(sample(
                urls[k].clone(),
                names[k].clone(),
                Arc::clone(&peaks[k]),
                Arc::clone(&stop),
            ))
        })
        .collect();
    // Open before the run, counted once per server before it starts.
    let mut idle = Vec::new();
    for k in 0..3 {
        idle.push(count_connections(&urls[k], &names[k]).await);
    }
    let opts = FleetOptions {
        jobs,
        jobs_per_server: Some(per_server),
        include_shared: false,
        ..FleetOptions::default()
    };
    let t = Instant::now();
    let report = tenancy
        .migrate_fleet::<MigratorWithLoyalty>(&opts, |_| {})
        .await
        .expect("fleet");
    let fleet = t.elapsed();
    stop.store(true, Ordering::Relaxed);
    for s in samplers {
        let _ = s.await;
    }
    let total = placed.len();
    let migrated = report.count(|o| matches!(o, Outcome::Migrated { .. }));
    assert_eq!(migrated, total, "every storefront migrated: {report:?}");
    let peaks: Vec<i64> = peaks.iter().map(|p| p.load(Ordering::Relaxed)).collect();
    // Open before the run: the tenant pools provisioning left idle (one connection per
    // storefront database, bounded by the connection budget) and the shared pool. The
    // run's own connections on a server are bounded by FLEET_JOBS_PER_SERVER.
    for k in 0..3 {
        let own = peaks[k] - idle[k];
        assert!(
            own <= per_server as i64,
            "server {}: the run opened {own} connections at once, more than {per_server}",
            k + 1
        );
    }
    println!(
        "FLEET ACROSS {} schemas + {databases} databases over 3 servers, jobs={jobs} per_server={per_server}: raw SeaORM loop {:.1}s, fleet run {:.1}s (ratio {:.3}); peak connections pg1 (shared + its databases) {}, pg2 {}, pg3 {} (open before the run: {idle:?})",
        total - databases,
        raw.as_secs_f64(),
        fleet.as_secs_f64(),
        fleet.as_secs_f64() / raw.as_secs_f64(),
        peaks[0],
        peaks[1],
        peaks[2]
    );
    for (id, placement) in placed {
        if matches!(placement, Placement::Database { .. }) {
            let _ = tenancy.drop_storefront(id, &id.to_string()).await;
        }
    }
}
