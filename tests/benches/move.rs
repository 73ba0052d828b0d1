//! Bench `move`: moving a storefront of MOVE_ROWS rows (default 1,000,000) from the shared
//! placement to its own database on PostgreSQL, while a writer keeps inserting into it.
//!
//! Baseline, in the same run: `psql \copy (SELECT ...) TO STDOUT | psql \copy ... FROM STDIN`
//! of the same rows into a fresh database with the same schema, timed before and after the
//! move (the mean is used); the same pipe in the binary format (the mover's) is printed for
//! reference. Prints rows/s of the move's copy phase and of the whole move (copy, catch-up,
//! validation, cutover) as ratios of the baseline, and the longest write pause the writer
//! saw during the cutover, and the p99 of all the writer's writes during the move next to
//! the p99 of the same writer over MOVE_QUIET_SECS (default 15) with no move running.
//!
//! `cargo bench -p tenancy-tests --bench move` (needs TENANCY_TEST_POSTGRES_URL and psql).

use std::{
    process::Command,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use chrono::Utc;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ActiveModelTrait, ConnectionTrait, Database, Set};
use tenancy_core::{
    mover::{MoveOptions, Mover, Phase},
    Placement, StorefrontId,
};
use tenancy_tests::{movekit::env, Backend, TestDb};
use uuid::Uuid;

/// `options` is appended to both `\copy` commands: empty (text) or `(FORMAT binary)`.
fn psql_pipe(from_url: &str, to_url: &str, storefront: StorefrontId, options: &str) -> Duration {
    let script = format!(
        "psql -q -X '{from_url}' -c \"\\copy (SELECT * FROM customers WHERE storefront_id = '{storefront}') TO STDOUT {options}\" \
         | psql -q -X '{to_url}' -c '\\copy customers FROM STDIN {options}'"
    );
    let started = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .status()
        .expect("sh");
    assert!(status.success(), "psql pipe failed: {script}");
    started.elapsed()
}

/// A connection to the server's maintenance database (to create and drop databases).
async fn admin() -> sea_orm::DatabaseConnection {
    let url = std::env::var("TENANCY_TEST_POSTGRES_URL").expect("TENANCY_TEST_POSTGRES_URL");
    Database::connect(url.as_str()).await.expect("admin")
}

/// The text and the binary psql pipe, each into a fresh database with the same schema.
async fn pipes(test: &TestDb, storefront: StorefrontId) -> [Duration; 2] {
    let admin = admin().await;
    let mut out = [Duration::ZERO; 2];
    for (slot, options) in out.iter_mut().zip(["", "(FORMAT binary)"]) {
        let url = test.sibling_url("tenancy_test_b");
        let name = tenancy_tests::database_of(&url).expect("name").to_owned();
        admin
            .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
            .await
            .expect("create");
        let scratch = Database::connect(url.as_str()).await.expect("scratch");
        Migrator::up(&scratch, None).await.expect("migrate");
        let _ = scratch.close().await;
        *slot = psql_pipe(&test.url, &url, storefront, options);
        admin
            .execute_unprepared(&format!("DROP DATABASE \"{name}\" WITH (FORCE)"))
            .await
            .expect("drop");
    }
    out
}

#[tokio::main(flavor = "multi_thread", worker_threads = 4)]
async fn main() {
    let rows: u64 = std::env::var("MOVE_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let batch: u64 = std::env::var("MOVE_BATCH")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let quiet_secs: u64 = std::env::var("MOVE_QUIET_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(15);
    let Some((test, tenancy)) = env(Backend::Postgres, Duration::from_millis(500)).await else {
        eprintln!("move bench needs TENANCY_TEST_POSTGRES_URL");
        return;
    };
    let sf = StorefrontId::new_random();
    tenancy
        .create_storefront::<Migrator>(sf, Placement::Shared)
        .await
        .expect("provision");
    // Another storefront's rows share the table, as in a real shared database.
    let other = StorefrontId::new_random();
    for (id, n) in [(sf, rows), (other, rows / 10)] {
        test.db
            .execute_unprepared(&format!(
                "INSERT INTO customers (id, storefront_id, email, first_name, last_name, phone, created_at, updated_at) \
                 SELECT gen_random_uuid(), '{id}', 'c' || i || '@example.com', 'First' || i, 'Last', '+1 555 0100', now(), now() \
                 FROM generate_series(1, {n}) i"
            ))
            .await
            .expect("seed");
    }
    test.db
        .execute_unprepared("VACUUM ANALYZE customers")
        .await
        .expect("analyze");
    eprintln!("seeded {rows} rows (+{} of another storefront)", rows / 10);

    // Baseline: psql COPY pipe into a fresh database with the same schema, in text and,
    // for reference, in PostgreSQL's binary format (the mover's).
    let mut baselines = Vec::new();
    let mut binary = Vec::new();
    let [text, bin] = pipes(&test, sf).await;
    baselines.push(text);
    binary.push(bin);

    // The move, with a writer inserting into the storefront the whole time.
    let stop = Arc::new(AtomicBool::new(false));
    let latencies: Arc<Mutex<Vec<(Instant, Duration)>>> = Arc::default();
    let writer = {
        let (tenancy, stop, latencies) =
            (tenancy.clone(), Arc::clone(&stop), Arc::clone(&latencies));
        tokio::spawn(async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                n += 1;
                let db = tenancy.connection(sf);
                let now = Utc::now();
                let started = Instant::now();
                entities::customer::ActiveModel {
                    id: Set(Uuid::new_v4()),
                    email: Set(format!("live{n}@example.com")),
                    first_name: Set("Live".into()),
                    last_name: Set("Writer".into()),
                    created_at: Set(now),
                    updated_at: Set(now),
                    ..Default::default()
                }
                .insert(&db)
                .await
                .expect("a write failed during the move");
                latencies
                    .lock()
                    .expect("lat")
                    .push((started, started.elapsed()));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
            n
        })
    };
    let phases: Arc<Mutex<Vec<(Phase, Instant)>>> = Arc::default();
    let seen = Arc::clone(&phases);
    let mover = Mover::new(
        &tenancy,
        MoveOptions {
            batch_size: batch,
            catch_up_batch: 5_000,
            retention: Duration::ZERO,
            ..MoveOptions::default()
        },
    )
    .observe(move |r| {
        let mut p = seen.lock().expect("phases");
        if p.last().map(|(ph, _)| *ph) != Some(r.phase) {
            p.push((r.phase, Instant::now()));
        }
    });
    let target = Placement::Database {
        url: test.sibling_url("tenancy_test_mv"),
    };
    // The same writer with no move running, for the p99 of its writes to compare against.
    let quiet_started = Instant::now();
    tokio::time::sleep(Duration::from_secs(quiet_secs)).await;
    let started = Instant::now();
    mover
        .start::<Migrator>(sf, target.clone())
        .await
        .expect("start");
    let cutover_started = Instant::now();
    let record = mover.cutover::<Migrator>(sf).await.expect("cutover");
    let cutover_ended = Instant::now();
    let whole = started.elapsed();
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, Ordering::Relaxed);
    let writes = writer.await.expect("writer");

    let [text, bin] = pipes(&test, sf).await;
    baselines.push(text);
    binary.push(bin);

    let phases = phases.lock().expect("phases").clone();
    let at = |ph: Phase| phases.iter().find(|(p, _)| *p == ph).map(|(_, t)| *t);
    let copy = at(Phase::CatchUp)
        .zip(at(Phase::Copy))
        .map(|(b, a)| b - a)
        .expect("copy phase timed");
    let longest_in_cutover = latencies
        .lock()
        .expect("lat")
        .iter()
        .filter(|(s, d)| *s + *d >= cutover_started && *s <= cutover_ended)
        .map(|(_, d)| *d)
        .max()
        .unwrap_or_default();
    let p99 = |from: Instant, to: Instant| {
        let mut within: Vec<Duration> = latencies
            .lock()
            .expect("lat")
            .iter()
            .filter(|(s, _)| *s >= from && *s <= to)
            .map(|(_, d)| *d)
            .collect();
        within.sort();
        let at = (within.len() * 99).div_ceil(100).saturating_sub(1);
        (within.get(at).copied().unwrap_or_default(), within.len())
    };
    let (p99_quiet, n_quiet) = p99(quiet_started, started);
    let (p99_move, n_move) = p99(started, cutover_ended);
    let baseline = baselines.iter().sum::<Duration>() / baselines.len() as u32;
    let baseline_binary = binary.iter().sum::<Duration>() / binary.len() as u32;
    let rate = |d: Duration| rows as f64 / d.as_secs_f64();
    println!("rows moved:                 {rows}");
    println!(
        "psql COPY pipe (mean of 2): {:.2} s  ({:.0} rows/s)  runs: {:?}",
        baseline.as_secs_f64(),
        rate(baseline),
        baselines
    );
    println!(
        "psql binary pipe (mean of 2): {:.2} s  ({:.0} rows/s)  runs: {:?}",
        baseline_binary.as_secs_f64(),
        rate(baseline_binary),
        binary
    );
    println!(
        "move copy phase:            {:.2} s  ({:.0} rows/s)  ratio {:.2} (binary pipe: {:.2})",
        copy.as_secs_f64(),
        rate(copy),
        rate(copy) / rate(baseline),
        rate(copy) / rate(baseline_binary)
    );
    println!(
        "whole move (to switched):   {:.2} s  ({:.0} rows/s)  ratio {:.2} (binary pipe: {:.2})",
        whole.as_secs_f64(),
        rate(whole),
        rate(whole) / rate(baseline),
        rate(whole) / rate(baseline_binary)
    );
    for w in phases.windows(2) {
        println!(
            "  phase {:<10} {:>8.2} s",
            w[0].0.as_str(),
            (w[1].1 - w[0].1).as_secs_f64()
        );
    }
    println!("cutover: fence held {} ms; longest write during the cutover call {:.1} ms; {writes} writes, none failed",
        record.progress.pause_ms.unwrap_or_default(), longest_in_cutover.as_secs_f64() * 1000.0);
    if let Some(s) = record.progress.pause_steps {
        println!(
            "  pause steps: fence {} ms, drain {} ms, check {} ms, flip {} ms, guard lift {} ms",
            s.fence_ms, s.drain_ms, s.check_ms, s.flip_ms, s.open_ms
        );
    }
    println!(
        "writer p99: {:.2} ms during the move ({n_move} writes) / {:.2} ms with no move ({n_quiet} writes): ratio {:.2}",
        p99_move.as_secs_f64() * 1000.0,
        p99_quiet.as_secs_f64() * 1000.0,
        p99_move.as_secs_f64() / p99_quiet.as_secs_f64().max(1e-9)
    );
    mover.complete(sf, true).await.expect("complete");
    let _ = tenancy.shared().execute_unprepared("SELECT 1").await;
    if let Placement::Database { url } = &target {
        if let Some(name) = tenancy_tests::database_of(url) {
            let _ = admin()
                .await
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
    }
    test.teardown().await;
}
