//! The connection manager: one pool per tenant database, under a global budget.
//!
//! [`DatabaseManager`] hands tenant connections a lease on the pool of a database URL. A pool is
//! created once even when many requests for a new storefront arrive together (single
//! flight), holds `per_tenant` permits of a global budget for as long as it is open, is
//! closed when it has been idle for `idle_timeout`, and is evicted (least recently used,
//! idle first) when a new pool needs its permits. So the number of server connections
//! across all tenant pools never exceeds the budget, however many storefronts there are;
//! a request that cannot get a pool within `acquire_timeout` fails with
//! [`TenancyError::BudgetExhausted`].

use std::{
    collections::HashMap,
    ops::Deref,
    sync::{
        atomic::{AtomicU64, AtomicUsize, Ordering},
        Arc, Mutex, Weak,
    },
    time::{Duration, Instant},
};

use sea_orm::DatabaseConnection;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::{
    backend::{self, redact, PoolSpec},
    pooler::Poolers,
    StorefrontId, TenancyError,
};

/// Limits of the tenant pools.
#[derive(Clone, Debug)]
pub struct PoolOptions {
    /// Server connections all tenant pools together may hold.
    pub budget: u32,
    /// Connections per tenant pool.
    pub per_tenant: u32,
    /// A pool unused this long is closed.
    pub idle_timeout: Duration,
    /// How long a request waits for a pool (budget or connect) before failing.
    pub acquire_timeout: Duration,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            budget: 100,
            per_tenant: 2,
            idle_timeout: Duration::from_secs(300),
            acquire_timeout: Duration::from_secs(10),
        }
    }
}

struct PoolEntry {
    conn: DatabaseConnection,
    /// Its URL points at a transaction pooler.
    pooled: bool,
    in_flight: AtomicUsize,
    last_used: AtomicU64,
    _permits: OwnedSemaphorePermit,
}

enum Slot {
    Ready(Arc<PoolEntry>),
    Creating(Arc<Notify>),
}

struct Inner {
    opts: PoolOptions,
    budget: Arc<Semaphore>,
    pools: Mutex<HashMap<String, Slot>>,
    epoch: Instant,
    poolers: Poolers,
}

/// Pools of tenant databases under a global connection budget. Cheap to clone.
#[derive(Clone)]
pub struct DatabaseManager {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for DatabaseManager {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DatabaseManager")
            .field("opts", &self.inner.opts)
            .field("open_pools", &self.open_pools())
            .finish()
    }
}

/// A pool in use; the pool is not evicted while a lease on it lives.
pub(crate) struct Lease {
    entry: Arc<PoolEntry>,
}

impl Deref for Lease {
    type Target = DatabaseConnection;

    fn deref(&self) -> &DatabaseConnection {
        &self.entry.conn
    }
}

impl Lease {
    /// Whether the pool's URL points at a transaction pooler.
    pub(crate) fn pooled(&self) -> bool {
        self.entry.pooled
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.entry.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

impl DatabaseManager {
    /// A manager with these limits. Starts a background task (on the current tokio
    /// runtime) that closes idle pools; it stops when the manager is dropped.
    pub fn new(opts: PoolOptions) -> Result<Self, TenancyError> {
        Self::with_poolers(opts, Poolers::default())
    }

    /// [`Self::new`], knowing which URLs point at a transaction pooler.
    pub(crate) fn with_poolers(opts: PoolOptions, poolers: Poolers) -> Result<Self, TenancyError> {
        if opts.per_tenant == 0 || opts.budget < opts.per_tenant {
            return Err(TenancyError::Config {
                key: "connection_budget".into(),
                message: format!(
                    "a budget of {} cannot hold one pool of {} connections",
                    opts.budget, opts.per_tenant
                ),
            });
        }
        let inner = Arc::new(Inner {
            budget: Arc::new(Semaphore::new(opts.budget as usize)),
            opts,
            pools: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
            poolers,
        });
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let weak = Arc::downgrade(&inner);
            let every = (inner.opts.idle_timeout / 4).max(Duration::from_millis(50));
            handle.spawn(reap(weak, every));
        }
        Ok(Self { inner })
    }

    /// The limits.
    pub fn options(&self) -> &PoolOptions {
        &self.inner.opts
    }

    /// Number of open pools.
    pub fn open_pools(&self) -> usize {
        self.inner
            .pools
            .lock()
            .map(|p| p.values().filter(|s| matches!(s, Slot::Ready(_))).count())
            .unwrap_or(0)
    }

    /// Each open pool (URL with the password hidden) with the leases in flight on it, and
    /// the connections of the budget not held by any pool.
    pub fn usage(&self) -> (Vec<(String, usize)>, usize) {
        let pools = self
            .inner
            .pools
            .lock()
            .map(|p| {
                let mut v: Vec<_> = p
                    .iter()
                    .filter_map(|(url, slot)| match slot {
                        Slot::Ready(e) => Some((redact(url), e.in_flight.load(Ordering::Acquire))),
                        Slot::Creating(_) => None,
                    })
                    .collect();
                v.sort();
                v
            })
            .unwrap_or_default();
        (pools, self.inner.budget.available_permits())
    }

    fn now(&self) -> u64 {
        self.inner.epoch.elapsed().as_millis() as u64
    }

    /// A lease on the pool for `url`, creating the pool if needed.
    pub(crate) async fn lease(
        &self,
        url: &str,
        storefront: StorefrontId,
    ) -> Result<Lease, TenancyError> {
        let started = Instant::now();
        let deadline = started + self.inner.opts.acquire_timeout;
        enum Next {
            Wait(tokio::sync::futures::OwnedNotified),
            Create(Arc<Notify>),
        }
        loop {
            let next = {
                let mut pools = self.inner.pools.lock().unwrap_or_else(|e| e.into_inner());
                match pools.get(url) {
                    Some(Slot::Ready(entry)) => {
                        entry.in_flight.fetch_add(1, Ordering::AcqRel);
                        entry.last_used.store(self.now(), Ordering::Relaxed);
                        return Ok(Lease {
                            entry: Arc::clone(entry),
                        });
                    }
                    // Registered before the lock is released, so no wake-up is missed.
                    Some(Slot::Creating(n)) => Next::Wait(Arc::clone(n).notified_owned()),
                    None => {
                        let n = Arc::new(Notify::new());
                        pools.insert(url.to_owned(), Slot::Creating(Arc::clone(&n)));
                        Next::Create(n)
                    }
                }
            };
            match next {
                Next::Create(n) => {
                    // If this future is dropped while the pool is created (a client went
                    // away, a caller's timeout fired), the guard takes the `Creating` slot
                    // back and wakes the waiters, one of which creates the pool instead.
                    let mut creating = CreatingSlot {
                        manager: self,
                        url,
                        notify: Arc::clone(&n),
                        settled: false,
                    };
                    let result = self.create(url, storefront, started, deadline).await;
                    creating.settled = true;
                    let out = {
                        let mut pools = self.inner.pools.lock().unwrap_or_else(|e| e.into_inner());
                        match result {
                            Ok(entry) => {
                                pools.insert(url.to_owned(), Slot::Ready(Arc::clone(&entry)));
                                Ok(Lease { entry })
                            }
                            Err(e) => {
                                pools.remove(url);
                                Err(e)
                            }
                        }
                    };
                    n.notify_waiters();
                    return out;
                }
                Next::Wait(notified) => {
                    // Someone else is creating this pool: wait for it (single flight).
                    let remaining = deadline.saturating_duration_since(Instant::now());
                    if tokio::time::timeout(remaining, notified).await.is_err() {
                        return Err(self.exhausted(storefront, started));
                    }
                }
            }
        }
    }

    fn exhausted(&self, storefront: StorefrontId, started: Instant) -> TenancyError {
        TenancyError::BudgetExhausted {
            budget: self.inner.opts.budget,
            waited_ms: started.elapsed().as_millis(),
            storefront: storefront.to_string(),
        }
    }

    async fn create(
        &self,
        url: &str,
        storefront: StorefrontId,
        started: Instant,
        deadline: Instant,
    ) -> Result<Arc<PoolEntry>, TenancyError> {
        let n = self.inner.opts.per_tenant;
        let permits = loop {
            if let Ok(p) = Arc::clone(&self.inner.budget).try_acquire_many_owned(n) {
                break p;
            }
            if self.evict_idle(None).await {
                continue;
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(self.exhausted(storefront, started));
            }
            // Wait for permits, or re-check for an idle pool to evict shortly.
            let wait = remaining.min(Duration::from_millis(20));
            if let Ok(Ok(p)) =
                tokio::time::timeout(wait, Arc::clone(&self.inner.budget).acquire_many_owned(n))
                    .await
            {
                break p;
            }
        };
        let spec = PoolSpec {
            idle_timeout: Some(self.inner.opts.idle_timeout),
            acquire_timeout: Some(self.inner.opts.acquire_timeout),
            ..PoolSpec::of(n)
        };
        let conn = backend::connect(url, spec)
            .await
            .map_err(|e| TenancyError::Step {
                storefront: storefront.to_string(),
                step: format!("connecting to {}", redact(url)),
                source: Box::new(TenancyError::Db(e)),
            })?;
        let pooled = self.inner.poolers.covers(url) || backend::behind_something(&conn, url).await;
        Ok(Arc::new(PoolEntry {
            conn,
            pooled,
            in_flight: AtomicUsize::new(1),
            last_used: AtomicU64::new(self.now()),
            _permits: permits,
        }))
    }

    /// Closes the least recently used idle pool (idle for at least `min_idle` if given).
    /// Returns whether one was closed.
    async fn evict_idle(&self, min_idle: Option<Duration>) -> bool {
        let now = self.now();
        let victim = {
            let mut pools = self.inner.pools.lock().unwrap_or_else(|e| e.into_inner());
            let candidate = pools
                .iter()
                .filter_map(|(url, slot)| match slot {
                    Slot::Ready(e) if e.in_flight.load(Ordering::Acquire) == 0 => {
                        let last = e.last_used.load(Ordering::Relaxed);
                        let idle_enough = min_idle
                            .is_none_or(|d| now.saturating_sub(last) >= d.as_millis() as u64);
                        idle_enough.then_some((last, url.clone()))
                    }
                    _ => None,
                })
                .min();
            candidate.and_then(|(_, url)| match pools.remove(&url) {
                Some(Slot::Ready(e)) => Some(e),
                _ => None,
            })
        };
        match victim {
            Some(entry) => {
                // Permits are released when the entry drops, after its connections closed.
                let _ = entry.conn.close_by_ref().await;
                drop(entry);
                true
            }
            None => false,
        }
    }

    /// Closes the pool of `url` if it is open and idle (used before dropping a database).
    pub(crate) async fn close(&self, url: &str) {
        let entry = {
            let mut pools = self.inner.pools.lock().unwrap_or_else(|e| e.into_inner());
            match pools.get(url) {
                Some(Slot::Ready(e)) if e.in_flight.load(Ordering::Acquire) == 0 => {
                    match pools.remove(url) {
                        Some(Slot::Ready(e)) => Some(e),
                        _ => None,
                    }
                }
                _ => None,
            }
        };
        if let Some(entry) = entry {
            let _ = entry.conn.close_by_ref().await;
        }
    }
}

/// The `Creating` slot of a pool being created by one lease: released, and its waiters
/// woken, if that lease is dropped before it settles the slot.
struct CreatingSlot<'a> {
    manager: &'a DatabaseManager,
    url: &'a str,
    notify: Arc<Notify>,
    settled: bool,
}

impl Drop for CreatingSlot<'_> {
    fn drop(&mut self) {
        if self.settled {
            return;
        }
        {
            let mut pools = self
                .manager
                .inner
                .pools
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if matches!(pools.get(self.url), Some(Slot::Creating(n)) if Arc::ptr_eq(n, &self.notify))
            {
                pools.remove(self.url);
            }
        }
        self.notify.notify_waiters();
    }
}

async fn reap(inner: Weak<Inner>, every: Duration) {
    loop {
        tokio::time::sleep(every).await;
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let manager = DatabaseManager { inner };
        let idle = manager.inner.opts.idle_timeout;
        while manager.evict_idle(Some(idle)).await {}
    }
}

#[cfg(all(test, feature = "sqlite"))]
mod tests {
    use super::*;

    /// The first lease for a new database is dropped while its pool is being created (a
    /// client disconnects, a caller's timeout fires): the next lease creates the pool and
    /// succeeds, instead of waiting on a slot nobody will fill until `BudgetExhausted`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_cancelled_creation_leaves_no_slot_behind() {
        let manager = DatabaseManager::new(PoolOptions {
            budget: 2,
            per_tenant: 2,
            acquire_timeout: Duration::from_secs(5),
            ..PoolOptions::default()
        })
        .expect("manager");
        let files: Vec<std::path::PathBuf> = (0..2)
            .map(|i| {
                std::env::temp_dir().join(format!(
                    "tenancy_pool_cancel_{i}_{}.sqlite",
                    uuid::Uuid::new_v4().simple()
                ))
            })
            .collect();
        let urls: Vec<String> = files
            .iter()
            .map(|f| format!("sqlite://{}?mode=rwc", f.display()))
            .collect();
        let (a, b) = (StorefrontId::new_random(), StorefrontId::new_random());
        // A's pool holds the whole budget, in use: B's pool waits for connections.
        let held = manager.lease(&urls[0], a).await.expect("a's pool");
        // B's first lease is cancelled while it waits to create its pool.
        let first =
            tokio::time::timeout(Duration::from_millis(100), manager.lease(&urls[1], b)).await;
        assert!(
            first.is_err(),
            "b's first lease must still be creating its pool when it is cancelled"
        );
        drop(held);
        // A's pool is idle now: B's next lease evicts it and creates its own.
        let second = tokio::time::timeout(Duration::from_secs(30), manager.lease(&urls[1], b))
            .await
            .expect("the next lease does not hang");
        assert!(
            second.is_ok(),
            "the next lease creates the pool: {:?}",
            second.err()
        );
        drop(second);
        for f in files {
            let _ = std::fs::remove_file(f);
        }
    }
}
