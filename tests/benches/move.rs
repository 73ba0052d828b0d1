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
//! `MOVE_ACROSS=1` moves to a database on another server (TENANCY_TEST_POSTGRES2_URL) and
//! pipes the baseline to the same server. `MOVE_BACKEND=mysql` moves a MariaDB storefront
//! from the shared database (TENANCY_TEST_MYSQL_URL) to a database on another MariaDB server
//! (TENANCY_TEST_MYSQL2_URL); its baseline is `mariadb-dump --where ... | mariadb` of the
//! same rows into a fresh database with the same schema on that server.
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

/// `mariadb-dump` of the storefront's customers piped into `mariadb` on `to_url`'s server.
fn mariadb_pipe(from_url: &str, to_url: &str, storefront: StorefrontId) -> Duration {
    let part = |url: &str| {
        let u = url::Url::parse(url).expect("a MySQL URL");
        (
            u.host_str().unwrap_or("127.0.0.1").to_owned(),
            u.port().unwrap_or(3306),
            u.username().to_owned(),
            u.path().trim_start_matches('/').to_owned(),
        )
    };
    let (fh, fp, fu, fdb) = part(from_url);
    let (th, tp, tu, tdb) = part(to_url);
    let hex = storefront.as_uuid().simple();
    let script = format!(
        "mariadb-dump -h {fh} -P {fp} -u {fu} --no-create-info --skip-triggers --compact \
           --single-transaction --where=\"storefront_id = UNHEX('{hex}')\" {fdb} customers \
         | mariadb -h {th} -P {tp} -u {tu} {tdb}"
    );
    let started = Instant::now();
    let status = Command::new("sh")
        .arg("-c")
        .arg(&script)
        .status()
        .expect("sh");
    assert!(status.success(), "mariadb pipe failed: {script}");
    started.elapsed()
}

/// The server the move goes to: the test's own (a sibling database), or another one.
fn target_server(test: &TestDb) -> String {
    let var = match (
        test.backend,
        std::env::var("MOVE_ACROSS").is_ok_and(|v| v == "1"),
    ) {
        (Backend::MySql, _) => "TENANCY_TEST_MYSQL2_URL",
        (_, true) => "TENANCY_TEST_POSTGRES2_URL",
        _ => return test.admin_url().expect("a server test").to_owned(),
    };
    std::env::var(var).unwrap_or_else(|_| panic!("{var} names the target server"))
}

/// A fresh database with the schema on the target server: its URL.
async fn scratch(test: &TestDb, server: &str) -> String {
    let url = tenancy_tests::with_database(
        server,
        &format!("tenancy_test_b{}", Uuid::new_v4().simple()),
    );
    let name = tenancy_tests::database_of(&url).expect("name");
    let admin = Database::connect(server).await.expect("admin");
    admin
        .execute_unprepared(&format!("CREATE DATABASE {}", test.backend.quote(&name)))
        .await
        .expect("create");
    let _ = admin.close().await;
    let scratch = Database::connect(url.as_str()).await.expect("scratch");
    Migrator::up(&scratch, None).await.expect("migrate");
    let _ = scratch.close().await;
    url
}

async fn drop_scratch(test: &TestDb, server: &str, url: &str) {
    let name = tenancy_tests::database_of(url).expect("name");
    let force = if test.backend == Backend::Postgres {
        " WITH (FORCE)"
    } else {
        ""
    };
    let admin = Database::connect(server).await.expect("admin");
    admin
        .execute_unprepared(&format!(
            "DROP DATABASE {}{force}",
            test.backend.quote(&name)
        ))
        .await
        .expect("drop");
    let _ = admin.close().await;
}

/// The baselines, each into a fresh database with the same schema on the target server:
/// PostgreSQL's text and binary psql pipes, or MariaDB's dump pipe (twice).
async fn pipes(test: &TestDb, storefront: StorefrontId) -> [Duration; 2] {
    let server = target_server(test);
    let mut out = [Duration::ZERO; 2];
    for (slot, options) in out.iter_mut().zip(["", "(FORMAT binary)"]) {
        let url = scratch(test, &server).await;
        *slot = match test.backend {
            Backend::MySql => mariadb_pipe(&test.url, &url, storefront),
            _ => psql_pipe(&test.url, &url, storefront, options),
        };
        drop_scratch(test, &server, &url).await;
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
    let backend = match std::env::var("MOVE_BACKEND").as_deref() {
        Ok("mysql") => Backend::MySql,
        _ => Backend::Postgres,
    };
    let Some((test, tenancy)) = env(backend, Duration::from_millis(500)).await else {
        eprintln!("move bench needs TENANCY_TEST_POSTGRES_URL (or TENANCY_TEST_MYSQL_URL)");
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
        let sql = match backend {
            Backend::MySql => format!(
                "INSERT INTO customers (id, storefront_id, email, first_name, last_name, phone, created_at, updated_at) \
                 SELECT UNHEX(REPLACE(UUID(), '-', '')), UNHEX('{}'), CONCAT('c', seq, '@example.com'), \
                        CONCAT('First', seq), 'Last', '+1 555 0100', NOW(), NOW() FROM seq_1_to_{n}",
                id.as_uuid().simple()
            ),
            _ => format!(
                "INSERT INTO customers (id, storefront_id, email, first_name, last_name, phone, created_at, updated_at) \
                 SELECT gen_random_uuid(), '{id}', 'c' || i || '@example.com', 'First' || i, 'Last', '+1 555 0100', now(), now() \
                 FROM generate_series(1, {n}) i"
            ),
        };
        test.db.execute_unprepared(&sql).await.expect("seed");
    }
    let analyze = match backend {
        Backend::MySql => "ANALYZE TABLE customers",
        _ => "VACUUM ANALYZE customers",
    };
    test.db.execute_unprepared(analyze).await.expect("analyze");
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
    let server = target_server(&test);
    let target = Placement::Database {
        url: tenancy_tests::with_database(
            &server,
            &format!("tenancy_test_mv{}", Uuid::new_v4().simple()),
        ),
    };
    println!(
        "backend {backend}, target {}",
        tenancy_core::DatabaseUrl::parse(&server)
            .ok()
            .and_then(|u| u.server())
            .unwrap_or_default()
    );
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
    let (pipe, pipe2) = match backend {
        Backend::MySql => (
            "mariadb-dump pipe (mean of 2)",
            "mariadb-dump pipe (2nd pair)",
        ),
        _ => ("psql COPY pipe (mean of 2)", "psql binary pipe (mean of 2)"),
    };
    println!(
        "{pipe}: {:.2} s  ({:.0} rows/s)  runs: {:?}",
        baseline.as_secs_f64(),
        rate(baseline),
        baselines
    );
    println!(
        "{pipe2}: {:.2} s  ({:.0} rows/s)  runs: {:?}",
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
    if let Placement::Database { url } = &target {
        drop_scratch(&test, &server, url).await;
    }
    test.teardown().await;
}
