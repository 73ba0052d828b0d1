//! One application process of the multi-process test (`scenarios/processes.rs`): it writes
//! and reads one storefront in a loop through a single long-lived `TenantConnection`, and
//! reports what it did on standard output, one line each, with wall-clock times in
//! nanoseconds (every process of the test runs on one machine, so one clock):
//!
//! - `W <tag> <seq> <ack_ns>`: its write number `seq` was acknowledged at `ack_ns`;
//! - `R <tag> <start_ns> <writer>:<max>:<missing>,... `: a read that began at `start_ns`
//!   saw, of each writer's rows, up to number `max`, lacking the numbers in `missing`
//!   (`/`-separated);
//! - `E <tag> <what>`: a statement failed.
//!
//! Settings come from the environment: `WORKER_URL` (the shared database),
//! `WORKER_STOREFRONT`, `WORKER_TAG`, and the lease in milliseconds `WORKER_LEASE_MS`. It
//! stops when its standard input closes.

use std::{
    collections::{BTreeMap, BTreeSet},
    io::{BufRead, Write},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use chrono::Utc;
use entities::customer;
use sea_orm::{ActiveModelTrait, EntityTrait, Set};
use tenancy_core::{StorefrontId, TenancyOptions, WatchOptions};
use uuid::Uuid;

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos())
}

fn var(name: &str) -> Result<String, String> {
    std::env::var(name).map_err(|_| format!("{name} is not set"))
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), String> {
    let url = var("WORKER_URL")?;
    let storefront: StorefrontId = var("WORKER_STOREFRONT")?
        .parse()
        .map_err(|e| format!("WORKER_STOREFRONT: {e}"))?;
    let tag: u32 = var("WORKER_TAG")?
        .parse()
        .map_err(|e| format!("WORKER_TAG: {e}"))?;
    let lease_ms: u64 = var("WORKER_LEASE_MS")?
        .parse()
        .map_err(|e| format!("WORKER_LEASE_MS: {e}"))?;
    let lease = Duration::from_millis(lease_ms);
    let tenancy = TenancyOptions::new()
        .registry(entities::registry())
        .max_connections(4)
        // An hour: what this process learns of a move, it learns from the change feed.
        .directory(Duration::from_secs(3600), None)
        .watch(WatchOptions {
            poll_interval: Duration::from_millis(20),
            lease,
            heartbeat: lease / 5,
            barrier_wait: lease,
            ..WatchOptions::default()
        })
        .fence_wait(Duration::from_secs(30))
        .connect(&url)
        .await
        .map_err(|e| format!("connecting: {e}"))?;

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let stdin = std::io::stdin();
            for line in stdin.lock().lines() {
                if line.is_err() {
                    break;
                }
            }
            stop.store(true, Ordering::Relaxed);
        });
    }

    let out = std::io::stdout();
    let say = |line: String| {
        let mut out = out.lock();
        let _ = writeln!(out, "{line}");
        let _ = out.flush();
    };
    // One connection for the process's whole life, as a long-lived task would hold it.
    let db = tenancy.connection(storefront);
    let mut seq = 0u64;
    let mut round = 0u64;
    while !stop.load(Ordering::Relaxed) {
        round += 1;
        // Mostly reads: a write through a stale placement is refused by the move's fence
        // and retried on the new one, so only reads can show a stale placement.
        if round % 4 == 1 {
            write(&db, tag, &mut seq, &say).await;
        }
        read(&db, tag, round.is_multiple_of(2), &say).await;
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    drop(db);
    drop(tenancy);
    // Let the watcher give its lease up.
    tokio::time::sleep(Duration::from_millis(100)).await;
    Ok(())
}

async fn write(
    db: &tenancy_core::TenantConnection,
    tag: u32,
    seq: &mut u64,
    say: &impl Fn(String),
) {
    *seq += 1;
    let seq = *seq;
    let now = Utc::now();
    let insert = customer::ActiveModel {
        id: Set(Uuid::new_v4()),
        email: Set(format!("w{tag}-{seq}@processes.test")),
        first_name: Set(format!("w{tag}")),
        last_name: Set(seq.to_string()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(db)
    .await;
    match insert {
        Ok(_) => say(format!("W {tag} {seq} {}", now_ns())),
        Err(e) => say(format!(
            "E {tag} write {seq}: {}",
            e.to_string().replace('\n', " ")
        )),
    }
}

/// Reads every customer, alone or (`in_transaction`) inside a transaction that was open
/// for a while before the read began, as a request handler's transaction would be.
async fn read(
    db: &tenancy_core::TenantConnection,
    tag: u32,
    in_transaction: bool,
    say: &impl Fn(String),
) {
    let result = if in_transaction {
        db.transaction_retrying(|txn| {
            Box::pin(async move {
                // Longer than a polling process takes to acknowledge a flip (50 ms).
                tokio::time::sleep(Duration::from_millis(80)).await;
                let start = now_ns();
                let rows = customer::Entity::find().all(txn).await?;
                Ok::<_, sea_orm::DbErr>((start, rows))
            })
        })
        .await
    } else {
        let start = now_ns();
        customer::Entity::find()
            .all(db)
            .await
            .map(|rows| (start, rows))
    };
    match result {
        Ok((start, rows)) => {
            let mut seen: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
            for c in rows {
                if let Ok(n) = c.last_name.parse::<u64>() {
                    seen.entry(c.first_name).or_default().insert(n);
                }
            }
            let mut line = format!("R {tag} {start}");
            for (writer, numbers) in &seen {
                let max = numbers.last().copied().unwrap_or(0);
                let missing: Vec<String> = (1..=max)
                    .filter(|n| !numbers.contains(n))
                    .map(|n| n.to_string())
                    .collect();
                let writer = writer.trim_start_matches('w');
                line.push_str(&format!(" {writer}:{max}:{}", missing.join("/")));
            }
            say(line);
        }
        Err(e) => say(format!(
            "E {tag} read: {}",
            e.to_string().replace('\n', " ")
        )),
    }
}
