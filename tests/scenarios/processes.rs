//! Many processes, one truth (`tenancy_core::watch`): the directory's change feed, process
//! leases and the cutover barrier.
//!
//! - `every_read_after_switched_sees_every_acknowledged_write`: three OS processes
//!   (`src/bin/storefront_worker.rs`) write and read one storefront in a loop while it
//!   moves shared -> database and back three times; one of them is frozen (SIGSTOP)
//!   across a cutover. Every read that began outside a cutover or rollback call must hold
//!   every write any process had acknowledged before it began.
//! - `a_watching_process_has_the_new_placement_when_the_cutover_returns`: a second
//!   Tenancy with an hour's cache TTL and a long-lived connection reads from the target
//!   as soon as the cutover returns.
//! - `the_cutover_waits_for_a_lease_that_does_not_acknowledge`: a lease row that never
//!   acknowledges holds the cutover until the lease has run out.

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant, SystemTime, UNIX_EPOCH},
};

use migration::Migrator;
use sea_orm::{ConnectionTrait, EntityTrait};
use tenancy_core::{
    mover::{MoveOptions, Mover},
    Placement, StorefrontId, Tenancy, TenancyOptions, WatchOptions,
};
use tenancy_tests::{
    matrix::seed,
    movekit::{bounded, env, state},
    on_every_backend, Backend, TestDb,
};

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn options() -> MoveOptions {
    MoveOptions {
        // Writers on a loaded 2-core machine: a pause budget the catch-up can meet, and
        // time to meet it (the convergence test sets its own).
        pause_budget: Duration::from_secs(2),
        converge_within: Duration::from_secs(300),
        batch_size: 50,
        catch_up_batch: 500,
        retention: Duration::ZERO,
        max_lag: 50,
        ..MoveOptions::default()
    }
}

async fn provisioned(tenancy: &Tenancy) -> StorefrontId {
    let id = StorefrontId::new_random();
    tenancy
        .create_storefront::<Migrator>(id, Placement::Shared)
        .await
        .expect("provision");
    seed(&tenancy.connection(id), "p", &["a", "b"], 1).await;
    id
}

/// One spawned worker process and the lines it printed.
struct Worker {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl Worker {
    fn spawn(test: &TestDb, sf: StorefrontId, tag: usize, lease_ms: u64) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_storefront_worker"))
            .env("WORKER_URL", &test.url)
            .env("WORKER_STOREFRONT", sf.to_string())
            .env("WORKER_TAG", tag.to_string())
            .env("WORKER_LEASE_MS", lease_ms.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the worker");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("stdout");
        let sink = Arc::clone(&lines);
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                sink.lock().expect("lines").push(line);
            }
        });
        Worker {
            child,
            lines,
            reader: Some(reader),
        }
    }

    fn count(&self, kind: &str) -> usize {
        self.lines
            .lock()
            .expect("lines")
            .iter()
            .filter(|l| l.starts_with(kind))
            .count()
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill {signal} failed");
    }

    /// Closes its standard input (it stops) and waits for it; its lines.
    fn finish(mut self) -> Vec<String> {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match self.child.try_wait().expect("wait") {
                Some(_) => break,
                None if Instant::now() > deadline => {
                    let _ = self.child.kill();
                    panic!("a worker did not stop within 30 s");
                }
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
        std::mem::take(&mut *self.lines.lock().expect("lines"))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A read: who read, when it began, and per writer the highest number seen and the numbers
/// missing below it.
struct Read {
    tag: usize,
    start: u128,
    seen: BTreeMap<usize, (u64, Vec<u64>)>,
}

fn parse(
    lines: &[String],
    writes: &mut Vec<(usize, u64, u128)>,
    reads: &mut Vec<Read>,
    errors: &mut Vec<String>,
) {
    for line in lines {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts.first().copied() {
            Some("W") => writes.push((
                parts[1].parse().expect("tag"),
                parts[2].parse().expect("seq"),
                parts[3].parse().expect("ack"),
            )),
            Some("R") => {
                let mut seen = BTreeMap::new();
                for p in &parts[3..] {
                    let mut f = p.split(':');
                    let writer: usize = f.next().and_then(|s| s.parse().ok()).expect("writer");
                    let max: u64 = f.next().and_then(|s| s.parse().ok()).expect("max");
                    let missing = f
                        .next()
                        .unwrap_or("")
                        .split('/')
                        .filter(|s| !s.is_empty())
                        .map(|s| s.parse().expect("missing"))
                        .collect();
                    seen.insert(writer, (max, missing));
                }
                reads.push(Read {
                    tag: parts[1].parse().expect("tag"),
                    start: parts[2].parse().expect("start"),
                    seen,
                });
            }
            Some("E") => errors.push(line.clone()),
            _ => {}
        }
    }
}

/// The placement a round of the test moves to.
fn database_target(test: &TestDb) -> Placement {
    Placement::Database {
        url: test.sibling_url("tenancy_test_proc"),
    }
}

async fn wait_for(what: &str, limit: Duration, mut done: impl FnMut() -> bool) {
    let started = Instant::now();
    while !done() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn every_read_after_switched(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_secs(3600)).await else {
        return;
    };
    bounded("the multi-process test", async {
        let sf = provisioned(&tenancy).await;
        let lease_ms = 1_000;
        let workers: Vec<Worker> = (0..3)
            .map(|tag| Worker::spawn(&test, sf, tag, lease_ms))
            .collect();
        for w in &workers {
            wait_for("a worker's first reads", Duration::from_secs(60), || {
                w.count("R ") >= 3
            })
            .await;
        }
        let mover = Mover::new(&tenancy, options());
        // (call began, call returned) of every cutover and rollback: reads that began in
        // between are not checked (a process may not have the flip yet).
        let mut switching: Vec<(u128, u128)> = Vec::new();
        let mut acknowledged = Vec::new();
        let mut resumed_at = None;
        for round in 0..3 {
            let target = database_target(&test);
            mover
                .start::<Migrator>(sf, target.clone())
                .await
                .expect("start");
            tokio::time::sleep(Duration::from_millis(200)).await;
            // SQLite's engine runs inside each process: one frozen while it holds the file's
            // write lock stops every writer of the file, the mover too. The frozen round runs
            // where the database is a server.
            let frozen = round == 1 && backend != Backend::Sqlite;
            if frozen {
                workers[0].signal("-STOP");
            }
            let began = now_ns();
            let record = mover.cutover::<Migrator>(sf).await.expect("cutover");
            switching.push((began, now_ns()));
            acknowledged.extend(record.progress.acknowledged_ms);
            assert_eq!(
                tenancy.placement(sf).await.expect("placement"),
                target,
                "{backend}"
            );
            if frozen {
                // The others write on the new side; then the frozen one wakes.
                let before = workers[1].count("W ");
                wait_for("writes after the cutover", Duration::from_secs(30), || {
                    workers[1].count("W ") >= before + 5
                })
                .await;
                resumed_at = Some(now_ns());
                workers[0].signal("-CONT");
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
            let began = now_ns();
            let record = mover.rollback(sf).await.expect("rollback");
            switching.push((began, now_ns()));
            acknowledged.extend(record.progress.acknowledged_ms);
            assert_eq!(
                tenancy.placement(sf).await.expect("placement"),
                Placement::Shared,
                "{backend}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let (mut writes, mut reads, mut errors) = (Vec::new(), Vec::new(), Vec::new());
        for w in workers {
            parse(&w.finish(), &mut writes, &mut reads, &mut errors);
        }
        assert!(
            errors.is_empty(),
            "{backend}: statements failed: {errors:#?}"
        );

        // Per writer, its acknowledged writes in order of acknowledgement.
        let mut acked: BTreeMap<usize, Vec<(u128, u64)>> = BTreeMap::new();
        for (tag, seq, at) in &writes {
            acked.entry(*tag).or_default().push((*at, *seq));
        }
        let mut checked = 0usize;
        let mut violations = Vec::new();
        for read in &reads {
            if switching
                .iter()
                .any(|(a, b)| read.start >= *a && read.start <= *b)
            {
                continue;
            }
            checked += 1;
            for (writer, list) in &acked {
                let (max, missing) = read.seen.get(writer).cloned().unwrap_or((0, Vec::new()));
                for (at, seq) in list.iter().take_while(|(at, _)| *at < read.start) {
                    let _ = at;
                    if *seq > max || missing.contains(seq) {
                        violations.push(format!(
                            "process {} read at {} lacks write {seq} of process {writer}",
                            read.tag, read.start
                        ));
                    }
                }
            }
        }
        acknowledged.sort_unstable();
        let pct = |p: usize| acknowledged[(acknowledged.len() - 1) * p / 100];
        println!(
            "{backend}: {checked} reads checked, {} violations, {} writes; flip to last \
             acknowledgement over {} switches: p50 {} ms, p99 {} ms, longest {} ms",
            violations.len(),
            writes.len(),
            acknowledged.len(),
            pct(50),
            pct(99),
            acknowledged.iter().max().copied().unwrap_or(0)
        );
        assert!(
            violations.is_empty(),
            "{backend}: {} of {checked} reads missed acknowledged writes, first: {:#?}",
            violations.len(),
            &violations[..violations.len().min(5)]
        );
        assert!(
            checked >= 100,
            "{backend}: only {checked} reads were checked"
        );
        // The frozen process's first read after it woke, checked like any other, must
        // exist and hold the writes made on the new side while it slept.
        let Some(resumed_at) = resumed_at else {
            return;
        };
        let first_after = reads
            .iter()
            .filter(|r| r.tag == 0 && r.start > resumed_at)
            .min_by_key(|r| r.start)
            .expect("the frozen process read after it woke");
        let written_meanwhile = acked[&1]
            .iter()
            .filter(|(at, _)| *at < resumed_at)
            .map(|(_, seq)| *seq)
            .max()
            .expect("process 1 wrote");
        assert!(
            first_after
                .seen
                .get(&1)
                .is_some_and(|(max, _)| *max >= written_meanwhile),
            "{backend}: the frozen process's first read after waking came from the old copy"
        );
    })
    .await;
    test.teardown().await;
}

on_every_backend!(
    every_read_after_switched_sees_every_acknowledged_write,
    every_read_after_switched,
    flavor = "multi_thread",
    worker_threads = 2
);

async fn watching_process_has_the_new_placement(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_secs(3600)).await else {
        return;
    };
    bounded("the watching-process test", async {
        let sf = provisioned(&tenancy).await;
        let other = TenancyOptions::new()
            .registry(entities::registry())
            .shared_url(test.url.clone())
            .directory(Duration::from_secs(3600), None)
            .connect(&test.url)
            .await
            .expect("the second process");
        // A long-lived connection, its placement resolved (shared) and cached.
        let db = other.connection(sf);
        assert_eq!(state(&db).await.customers.len(), 2);
        let mover = Mover::new(&tenancy, options());
        let target = database_target(&test);
        mover
            .start::<Migrator>(sf, target.clone())
            .await
            .expect("start");
        let record = mover.cutover::<Migrator>(sf).await.expect("cutover");
        assert!(record.progress.acknowledged_ms.is_some(), "{backend}");
        // Written on the target through the mover's process, read at once through the
        // other's long-lived connection: no TTL was waited for.
        seed(&tenancy.connection(sf), "after", &["c"], 1).await;
        assert_eq!(
            db.placement().await.expect("placement").as_ref(),
            &target,
            "{backend}: the long-lived connection still had the old placement"
        );
        assert_eq!(state(&db).await.customers.len(), 3, "{backend}");
        mover.complete(sf, true).await.expect("complete");
    })
    .await;
    test.teardown().await;
}

on_every_backend!(
    a_watching_process_has_the_new_placement_when_the_cutover_returns,
    watching_process_has_the_new_placement
);

/// A process lease that never acknowledges (a process frozen or cut off) holds the
/// cutover until its lease has run out, and no longer.
async fn waits_for_a_silent_lease(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_secs(3600)).await else {
        return;
    };
    bounded("the silent-lease test", async {
        let sf = provisioned(&tenancy).await;
        let mover = Mover::new(&tenancy, options());
        mover
            .start::<Migrator>(sf, database_target(&test))
            .await
            .expect("start");
        let b = test.db_backend();
        let now = match b {
            sea_orm::DbBackend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
            sea_orm::DbBackend::MySql => {
                "(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) DIV 1000)"
            }
            _ => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
        };
        // Applied epoch 0, renewed just now for 10 s (the server's clock, in the same
        // expressions as `Dialect::now_ms`, which is the crate's own).
        test.db
            .execute_raw(tenancy_tests::stmt(
                b,
                &format!(
                    "INSERT INTO tenancy_processes (process_id, applied_epoch, expires_at_ms, lease_ms, host, pid) \
                     VALUES (?, 0, {now} + 10000, 10000, 'frozen', 1)"
                ),
                [uuid::Uuid::new_v4().into()],
            ))
            .await
            .expect("a silent lease");
        let record = mover.cutover::<Migrator>(sf).await.expect("cutover");
        let waited = record.progress.acknowledged_ms.expect("the barrier ran");
        assert!(
            waited < 30_000,
            "{backend}: the barrier waited {waited} ms, past the silent lease's 10 s"
        );
        assert!(
            waited >= 500,
            "{backend}: the cutover reported switched {waited} ms after the flip, while a \
             live lease had not acknowledged it"
        );
        let customers = entities::customer::Entity::find()
            .all(&tenancy.connection(sf))
            .await
            .expect("read");
        assert_eq!(customers.len(), 2);
    })
    .await;
    test.teardown().await;
}

on_every_backend!(
    the_cutover_waits_for_a_lease_that_does_not_acknowledge,
    waits_for_a_silent_lease
);

/// The watch keys are checked together; the error names the key at fault.
#[test]
fn watch_options_that_disagree_are_refused_by_name() {
    let bad = WatchOptions {
        barrier_wait: Duration::from_secs(1),
        lease: Duration::from_secs(5),
        ..WatchOptions::default()
    };
    let err = bad.validate().expect_err("refused").to_string();
    assert!(err.contains("cutover_barrier_wait"), "{err}");
    let bad = WatchOptions {
        heartbeat: Duration::from_secs(5),
        ..WatchOptions::default()
    };
    let err = bad.validate().expect_err("refused").to_string();
    assert!(err.contains("process_heartbeat"), "{err}");
    WatchOptions::default()
        .validate()
        .expect("the defaults agree");
}
