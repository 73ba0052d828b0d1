//! Many processes, one truth: the directory's change feed, each process's lease, and the
//! cutover barrier.
//!
//! Every change of the directory takes the next *epoch* in its own transaction and logs
//! which storefront changed (`tenancy_directory_log`; see [`Directory`]). Each process of a
//! [`Tenancy`](crate::Tenancy) with a directory runs a watcher that
//!
//! - reads the log past the epoch it has applied, at once when PostgreSQL announces a new
//!   one (`LISTEN`/`NOTIFY`; after a dropped connection it reads whatever it missed), else
//!   every [`WatchOptions::poll_interval`] (MySQL/MariaDB and SQLite: one indexed query);
//! - forgets the cached placements of the storefronts that changed (the directory cache
//!   and every long-lived [`TenantConnection`](crate::TenantConnection), task or
//!   transaction-retry loop, which resolve again before their next statement);
//! - then writes that epoch into its lease row in `tenancy_processes`, renewing the lease:
//!   this is its acknowledgement, and it is renewed every [`WatchOptions::heartbeat`]
//!   too.
//!
//! After flipping the directory, a cutover (or a rollback) waits for the *barrier*:
//! every live lease has acknowledged the flip's epoch, or has run out. Only then does it
//! report the move switched.
//!
//! **What the lease guarantees.** A process trusts its cached placements only until its
//! lease's length (less a tenth, for clock-rate drift) after the start of its last
//! successful renewal; past that (it was frozen, or it cannot reach the shared database)
//! every statement first reads the storefront's placement from the directory table, and
//! fails if it cannot. The database's row of the same lease expires no earlier, by the
//! database server's clock. So once the barrier has passed, no process serves a storefront
//! from the placement it had before the flip: a statement that *begins* after the cutover
//! reports `switched` runs where the directory says.
//!
//! A transaction checks, before each statement and without any I/O, whether its
//! storefront changed since it began: then the statement fails like a fenced one, and
//! `transaction_retrying` runs the transaction again on the new placement.
//!
//! **What it assumes.** That the processes' monotonic clocks and the database server's
//! clock run at the same rate, to within a tenth of the lease (not that they agree on the
//! time), and that the server's clock does not step forward by a lease. A statement
//! already running when the flip lands finishes where it began (writes there are refused
//! by the move's fence and retried on the new placement).

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use sea_orm::{
    sea_query::{Alias, ColumnDef, Table},
    ConnectionTrait, DatabaseConnection, DbBackend, Statement,
};
use uuid::Uuid;

use crate::{backend::Dialect, Directory, StorefrontId, TenancyError};

/// The process leases' table.
pub(crate) const PROCESSES: &str = "tenancy_processes";

/// How many log entries one read of the feed takes.
const PAGE: u64 = 1_000;

/// How a process follows the directory and holds its lease. Set through
/// [`TenancyOptions::watch`](crate::TenancyOptions::watch) or the configuration's
/// `database_config` keys `directory_watch`, `directory_poll_interval`, `process_lease`,
/// `process_heartbeat` and `cutover_barrier_wait`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WatchOptions {
    /// Whether this process follows the directory's change feed and holds a lease (default
    /// `true`). Without it, a cached placement is trusted for the directory's cache TTL.
    pub enabled: bool,
    /// How often the feed is read where nothing announces a change (MySQL/MariaDB,
    /// SQLite, or PostgreSQL while its listener reconnects). Default 50 ms; at most
    /// `heartbeat`.
    pub poll_interval: Duration,
    /// How long a renewal keeps this process's lease (default 5 s). A process that dies
    /// holds up a cutover for at most this long.
    pub lease: Duration,
    /// How often the lease is renewed (default 1 s; at most half of `lease`).
    pub heartbeat: Duration,
    /// The longest a cutover waits for every process to acknowledge its flip (default 6 s;
    /// at least `lease`, since an unacknowledged lease runs out by then).
    pub barrier_wait: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        Self {
            enabled: true,
            poll_interval: Duration::from_millis(50),
            lease: Duration::from_secs(5),
            heartbeat: Duration::from_secs(1),
            barrier_wait: Duration::from_secs(6),
        }
    }
}

impl WatchOptions {
    /// Checks the options agree with each other; the error names the key at fault.
    pub fn validate(&self) -> Result<(), TenancyError> {
        let bad = |key: &str, reason: &str| TenancyError::Config {
            key: format!("tenant_strategy.database_config.{key}"),
            message: reason.into(),
        };
        if self.poll_interval.is_zero() {
            return Err(bad("directory_poll_interval", "must be more than zero"));
        }
        if self.heartbeat.is_zero() || self.heartbeat * 2 > self.lease {
            return Err(bad(
                "process_heartbeat",
                "must be more than zero and at most half of process_lease (a lease must \
                 survive one failed renewal)",
            ));
        }
        if self.poll_interval > self.heartbeat {
            return Err(bad(
                "directory_poll_interval",
                "must be at most process_heartbeat",
            ));
        }
        if self.barrier_wait < self.lease {
            return Err(bad(
                "cutover_barrier_wait",
                "must be at least process_lease (a process that stopped acknowledging is \
                 only known to have stopped serving once its lease has run out)",
            ));
        }
        Ok(())
    }

    /// How long after a renewal began this process trusts its cache: the lease less a
    /// tenth, for clock-rate drift between this process and the database server.
    fn trusted_for(&self) -> Duration {
        self.lease - self.lease / 10
    }
}

/// Creates the process leases' table if it does not exist.
pub(crate) async fn install(shared: &DatabaseConnection) -> Result<(), TenancyError> {
    let col = Alias::new;
    let table = Table::create()
        .table(col(PROCESSES))
        .if_not_exists()
        .col(
            ColumnDef::new(col("process_id"))
                .uuid()
                .not_null()
                .primary_key(),
        )
        .col(
            ColumnDef::new(col("applied_epoch"))
                .big_integer()
                .not_null(),
        )
        .col(
            ColumnDef::new(col("expires_at_ms"))
                .big_integer()
                .not_null(),
        )
        .col(ColumnDef::new(col("lease_ms")).big_integer().not_null())
        .col(ColumnDef::new(col("host")).string_len(255).not_null())
        .col(ColumnDef::new(col("pid")).big_integer().not_null())
        .to_owned();
    shared.execute(&table).await?;
    Ok(())
}

/// This process's watcher; dropping it stops the watcher, which gives its lease up (if
/// the runtime still runs); [`Watch::shutdown`] waits until it has.
pub(crate) struct Watch {
    stop: std::sync::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
    task: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Watch {
    /// Stops the watcher and waits until its lease row is gone.
    pub(crate) async fn shutdown(&self) {
        if let Some(stop) = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = stop.send(());
        }
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(task) = task {
            let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = stop.send(());
        }
    }
}

/// Starts the watcher of `directory` on the current tokio runtime. `url` is the shared
/// database's URL, where it listens on PostgreSQL; with `own_pool` (the shared pool was
/// opened from that URL, so the URL reaches the same database) it also reads and renews on
/// a connection of its own, so a busy application pool cannot starve its lease.
pub(crate) fn start(
    directory: Arc<Directory>,
    url: Option<String>,
    own_pool: bool,
    opts: WatchOptions,
) -> Watch {
    let (stop, stopped) = tokio::sync::oneshot::channel();
    directory.start_lease();
    let watcher = Watcher {
        process: Uuid::new_v4(),
        applied: None,
        conn: directory.shared().clone(),
        directory,
        opts,
    };
    let task = tokio::spawn(watcher.run(url, own_pool, stopped));
    Watch {
        stop: std::sync::Mutex::new(Some(stop)),
        task: std::sync::Mutex::new(Some(task)),
    }
}

struct Watcher {
    process: Uuid,
    /// The last epoch applied; `None` until the first read.
    applied: Option<i64>,
    /// Where the watcher reads and renews: a pool of its own, else the shared one.
    conn: DatabaseConnection,
    directory: Arc<Directory>,
    opts: WatchOptions,
}

/// How a renewal went.
enum Renewal {
    /// The lease was live and is extended.
    Extended,
    /// The lease had run out (or never existed): a new one was taken, and nothing applied
    /// before counts.
    Rejoined,
}

impl Watcher {
    fn dialect(&self) -> Dialect {
        Dialect(self.conn.get_database_backend())
    }

    async fn run(
        mut self,
        url: Option<String>,
        own_pool: bool,
        mut stopped: tokio::sync::oneshot::Receiver<()>,
    ) {
        let backend = self.conn.get_database_backend();
        // A connection of its own, where another connection reaches the same database
        // (not SQLite in memory, where a new connection opens an empty database).
        if let Some(url) = url
            .as_deref()
            .filter(|u| own_pool && !u.contains(":memory:") && !u.contains("mode=memory"))
        {
            let spec = crate::backend::PoolSpec {
                connect_timeout: Some(self.opts.heartbeat),
                acquire_timeout: Some(self.opts.heartbeat),
                ..crate::backend::PoolSpec::of(1)
            };
            match tokio::time::timeout(self.opts.heartbeat * 2, crate::backend::connect(url, spec))
                .await
            {
                Ok(Ok(conn)) => self.conn = conn,
                Ok(Err(e)) => tracing::debug!("the directory watcher uses the shared pool: {e}"),
                Err(_) => tracing::debug!(
                    "the directory watcher uses the shared pool: connecting timed out"
                ),
            }
        }
        let mut listener = Listener::new(url, backend, self.opts.heartbeat);
        let mut last_renewal: Option<Instant> = None;
        let mut failures = 0u32;
        loop {
            let wait = if listener.is_listening() {
                self.opts.heartbeat
            } else {
                self.opts.poll_interval.min(self.opts.heartbeat)
            };
            // Back off after failures (up to a heartbeat), so a database that is down is
            // not asked 20 times a second by every process.
            let wait = if failures == 0 {
                wait
            } else {
                (wait * 2u32.saturating_pow(failures.min(8))).min(self.opts.heartbeat)
            };
            let announced = tokio::select! {
                _ = &mut stopped => break,
                announced = listener.next(wait) => announced,
            };
            let due = last_renewal.is_none_or(|at| at.elapsed() >= self.opts.heartbeat);
            match self.sync(due || announced).await {
                Ok(renewed) => {
                    failures = 0;
                    if renewed {
                        last_renewal = Some(Instant::now());
                    }
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(process = %self.process, "the directory watcher could not sync: {e}");
                }
            }
        }
        self.directory.end_lease();
        let delete = Statement::from_sql_and_values(
            backend,
            format!(
                "DELETE FROM {} WHERE process_id = {}",
                self.dialect().quote(PROCESSES),
                self.dialect().placeholder(1)
            ),
            [self.process.into()],
        );
        let _ = self.conn.execute_raw(delete).await;
    }

    /// Reads the feed and applies it; renews the lease when something was applied or
    /// `renew` asks. `true` when the lease was renewed.
    async fn sync(&mut self, renew: bool) -> Result<bool, TenancyError> {
        let started = Instant::now();
        let applied_any = self.apply_feed().await?;
        if !(renew || applied_any) {
            return Ok(false);
        }
        if renew {
            // An epoch that went back (the shared database restored from a backup): what
            // was applied no longer says anything.
            let epoch = crate::directory::epoch_on(&self.conn).await?;
            if self.applied.is_some_and(|a| epoch < a) {
                self.directory.apply_changes(None);
                self.applied = Some(epoch);
            }
        }
        let applied = self.applied.unwrap_or(0);
        match self.renew(applied).await? {
            Renewal::Extended => {}
            Renewal::Rejoined => {
                // Flips while the lease was out were not waited for: read everything anew
                // before vouching for the cache again.
                let epoch = crate::directory::epoch_on(&self.conn).await?;
                self.directory.apply_changes(None);
                self.applied = Some(epoch);
                if let Renewal::Rejoined = self.renew(epoch).await? {
                    return Ok(false);
                }
            }
        }
        self.directory
            .confirm_until(started + self.opts.trusted_for());
        Ok(true)
    }

    /// Applies the feed past the applied epoch. `true` when anything was applied.
    async fn apply_feed(&mut self) -> Result<bool, TenancyError> {
        let Some(mut applied) = self.applied else {
            let epoch = crate::directory::epoch_on(&self.conn).await?;
            self.directory.apply_changes(None);
            self.applied = Some(epoch);
            return Ok(true);
        };
        let mut any = false;
        loop {
            let changes = crate::directory::changes_since(&self.conn, applied, PAGE).await?;
            let Some(&(first, _)) = changes.first() else {
                break;
            };
            let changed: Option<Vec<StorefrontId>> = changes.iter().map(|(_, sf)| *sf).collect();
            match changed {
                // The log holds every change since the applied epoch, each decoded.
                Some(list) if first == applied + 1 => self.directory.apply_changes(Some(&list)),
                // It no longer holds what this process missed, or a row did not decode.
                _ => self.directory.apply_changes(None),
            }
            any = true;
            applied = changes.last().map_or(applied, |(e, _)| *e);
            self.applied = Some(applied);
            if (changes.len() as u64) < PAGE {
                break;
            }
        }
        Ok(any)
    }

    /// Extends the lease if it is still live, else takes a new one.
    async fn renew(&self, applied: i64) -> Result<Renewal, TenancyError> {
        let d = self.dialect();
        let backend = self.conn.get_database_backend();
        let lease_ms = i64::try_from(self.opts.lease.as_millis()).unwrap_or(i64::MAX);
        let table = d.quote(PROCESSES);
        let now = d.now_ms();
        let extend = Statement::from_sql_and_values(
            backend,
            format!(
                "UPDATE {table} SET applied_epoch = {p1}, expires_at_ms = {now} + {p2}, lease_ms = {p3} \
                 WHERE process_id = {p4} AND expires_at_ms > {now}",
                p1 = d.placeholder(1),
                p2 = d.placeholder(2),
                p3 = d.placeholder(3),
                p4 = d.placeholder(4),
            ),
            [
                applied.into(),
                lease_ms.into(),
                lease_ms.into(),
                self.process.into(),
            ],
        );
        if self.conn.execute_raw(extend).await?.rows_affected() == 1 {
            return Ok(Renewal::Extended);
        }
        // Gone or run out: take it anew, and clear leases that ran out an hour ago.
        let clear = Statement::from_sql_and_values(
            backend,
            format!(
                "DELETE FROM {table} WHERE process_id = {p1} OR expires_at_ms < {now} - 3600000",
                p1 = d.placeholder(1)
            ),
            [self.process.into()],
        );
        self.conn.execute_raw(clear).await?;
        let host = std::env::var("HOSTNAME").unwrap_or_default();
        let insert = Statement::from_sql_and_values(
            backend,
            format!(
                "INSERT INTO {table} (process_id, applied_epoch, expires_at_ms, lease_ms, host, pid) \
                 VALUES ({p1}, {p2}, {now} + {p3}, {p4}, {p5}, {p6})",
                p1 = d.placeholder(1),
                p2 = d.placeholder(2),
                p3 = d.placeholder(3),
                p4 = d.placeholder(4),
                p5 = d.placeholder(5),
                p6 = d.placeholder(6),
            ),
            [
                self.process.into(),
                applied.into(),
                lease_ms.into(),
                lease_ms.into(),
                host.into(),
                i64::from(std::process::id()).into(),
            ],
        );
        self.conn.execute_raw(insert).await?;
        Ok(Renewal::Rejoined)
    }
}

/// Where announcements come from: a PostgreSQL listener when one can be had, else the
/// clock.
enum Listener {
    #[cfg(feature = "postgres")]
    Postgres {
        url: String,
        listener: Option<sea_orm::sqlx::postgres::PgListener>,
        retry_at: Instant,
        connect_timeout: Duration,
    },
    Polling,
}

impl Listener {
    #[allow(unused_variables)]
    fn new(url: Option<String>, backend: DbBackend, connect_timeout: Duration) -> Self {
        #[cfg(feature = "postgres")]
        if let (Some(url), DbBackend::Postgres) = (url, backend) {
            return Listener::Postgres {
                url,
                listener: None,
                retry_at: Instant::now(),
                connect_timeout,
            };
        }
        Listener::Polling
    }

    fn is_listening(&self) -> bool {
        match self {
            #[cfg(feature = "postgres")]
            Listener::Postgres { listener, .. } => listener.is_some(),
            Listener::Polling => false,
        }
    }

    /// Waits for an announcement or for `wait`; `true` when something was announced (or
    /// may have been missed: a listener that has just (re)connected).
    async fn next(&mut self, wait: Duration) -> bool {
        match self {
            #[cfg(feature = "postgres")]
            Listener::Postgres {
                url,
                listener,
                retry_at,
                connect_timeout,
            } => {
                if listener.is_none() && Instant::now() >= *retry_at {
                    match tokio::time::timeout(*connect_timeout, Self::listen(url)).await {
                        Ok(Ok(l)) => {
                            *listener = Some(l);
                            // Whatever was announced while nobody listened.
                            return true;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!("directory listener: {e}; polling meanwhile");
                            *retry_at = Instant::now() + Duration::from_secs(1);
                        }
                        Err(_) => {
                            tracing::debug!(
                                "directory listener: connecting timed out; polling meanwhile"
                            );
                            *retry_at = Instant::now() + Duration::from_secs(1);
                        }
                    }
                }
                let Some(l) = listener.as_mut() else {
                    tokio::time::sleep(wait.min(Duration::from_millis(50))).await;
                    return false;
                };
                match tokio::time::timeout(wait, l.try_recv()).await {
                    Err(_) => false,
                    Ok(Ok(Some(_))) => true,
                    // The connection dropped: listen anew (the next call reconnects and then
                    // reads what was announced meanwhile), polling until then.
                    Ok(Ok(None)) | Ok(Err(_)) => {
                        tracing::debug!("directory listener lost its connection; reconnecting");
                        *listener = None;
                        true
                    }
                }
            }
            Listener::Polling => {
                tokio::time::sleep(wait).await;
                false
            }
        }
    }

    #[cfg(feature = "postgres")]
    async fn listen(url: &str) -> Result<sea_orm::sqlx::postgres::PgListener, TenancyError> {
        let mut l = sea_orm::sqlx::postgres::PgListener::connect(url)
            .await
            .map_err(|e| TenancyError::Db(sea_orm::DbErr::Custom(e.to_string())))?;
        l.listen(crate::directory::CHANNEL)
            .await
            .map_err(|e| TenancyError::Db(sea_orm::DbErr::Custom(e.to_string())))?;
        Ok(l)
    }
}

/// What the [`barrier`] saw.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Barrier {
    /// From the start of the wait until every live lease had acknowledged (or run out).
    pub(crate) waited: Duration,
    /// Leases still behind when the wait gave up (0 when it passed).
    pub(crate) behind: u64,
}

/// Waits until every process lease that was live at the flip has applied `epoch`, has
/// been given up, or is older than its length by this process's monotonic clock since the
/// wait began (by then such a process no longer trusts its cache). The database server's
/// clock is read once, to tell which leases were live; after that only the monotonic clock
/// counts, so a step of the server's clock cannot end the wait early. Gives up after
/// `wait` (raised to the longest such lease) only when the leases cannot be read.
pub(crate) async fn barrier(
    shared: &DatabaseConnection,
    epoch: i64,
    wait: Duration,
) -> Result<Barrier, TenancyError> {
    let started = Instant::now();
    let backend = shared.get_database_backend();
    let d = Dialect(backend);
    let table = d.quote(PROCESSES);
    let live = Statement::from_sql_and_values(
        backend,
        format!(
            "SELECT process_id, lease_ms FROM {table} WHERE applied_epoch < {p1} AND expires_at_ms > {now}",
            p1 = d.placeholder(1),
            now = d.now_ms(),
        ),
        [epoch.into()],
    );
    let behind_now = Statement::from_sql_and_values(
        backend,
        format!(
            "SELECT process_id FROM {table} WHERE applied_epoch < {p1}",
            p1 = d.placeholder(1),
        ),
        [epoch.into()],
    );
    // The leases live and behind at the flip, with their lengths.
    let mut waiting: Vec<(Uuid, Duration)> = Vec::new();
    let mut pause = Duration::from_millis(2);
    loop {
        match shared.query_all_raw(live.clone()).await {
            Ok(rows) => {
                for row in rows {
                    let id: Uuid = row.try_get_by_index(0)?;
                    let ms: i64 = row.try_get_by_index(1)?;
                    waiting.push((id, Duration::from_millis(u64::try_from(ms).unwrap_or(0))));
                }
                break;
            }
            Err(e) if started.elapsed() < wait => {
                tracing::warn!("the cutover barrier could not read the leases: {e}");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            Err(e) => {
                tracing::warn!(
                    epoch,
                    "the cutover barrier gave up reading the leases after {wait:?}: {e}"
                );
                return Ok(Barrier {
                    waited: started.elapsed(),
                    behind: u64::MAX,
                });
            }
        }
    }
    let longest = waiting.iter().map(|(_, l)| *l).max().unwrap_or_default();
    let wait = wait.max(longest + Duration::from_millis(100));
    let mut pause = Duration::from_millis(2);
    loop {
        let elapsed = started.elapsed();
        waiting.retain(|(_, lease)| *lease > elapsed);
        if waiting.is_empty() {
            return Ok(Barrier {
                waited: elapsed,
                behind: 0,
            });
        }
        match shared.query_all_raw(behind_now.clone()).await {
            Ok(rows) => {
                let behind: std::collections::HashSet<Uuid> = rows
                    .iter()
                    .filter_map(|r| r.try_get_by_index::<Uuid>(0).ok())
                    .collect();
                // Acknowledged, or given up (its row is gone: the process stopped).
                waiting.retain(|(id, _)| behind.contains(id));
            }
            Err(e) => tracing::warn!("the cutover barrier could not read the leases: {e}"),
        }
        if waiting.is_empty() {
            return Ok(Barrier {
                waited: started.elapsed(),
                behind: 0,
            });
        }
        if started.elapsed() >= wait {
            // Only reached when the leases could not be read: each has run out by now.
            return Ok(Barrier {
                waited: started.elapsed(),
                behind: waiting.len() as u64,
            });
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(20));
    }
}
