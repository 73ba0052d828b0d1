//! The connections a [`Tenancy`](crate::Tenancy) hands out: [`TenantConnection`] and
//! [`TenantTransaction`].
//!
//! A [`TenantConnection`] is what business code receives. It implements SeaORM's
//! `ConnectionTrait`, `TransactionTrait` and `StreamTrait`, so every ordinary SeaORM call
//! works with it unchanged; each statement is confined to the connection's storefront
//! before it reaches the database (see [`crate::rewrite`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), sea_orm::DbErr> {
//! use sea_orm::{ConnectionTrait, Database};
//! use tenancy_core::{StorefrontId, Tenancy};
//!
//! let shared = Database::connect("sqlite::memory:").await?;
//! let tenancy = Tenancy::new(shared);
//! let shop: StorefrontId = "0b5f6d0e-8f3c-4c2a-9a53-3e1f4b1f7d10".parse()?;
//! let db = tenancy.connection(shop);
//! // Customer::find().all(&db).await? sees only this storefront's customers.
//! # let _ = db.get_database_backend();
//! # Ok(()) }
//! ```

pub(crate) mod fence;
#[cfg(feature = "postgres")]
mod held;
#[cfg(not(feature = "postgres"))]
#[path = "held_unsupported.rs"]
mod held;
mod traits;
mod transaction;

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    time::{Duration, Instant},
};

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbBackend, DbErr, QueryStream, Statement, StreamTrait,
};

pub(crate) use self::traits::{Answer, Call};
pub use self::transaction::TenantTransaction;
use self::{fence::Backoff, traits::Begin};
use crate::{
    pool::Lease, stats::QueryStats, tenancy::Inner, Placement, StorefrontId, TenancyError,
};

/// A connection confined to one storefront. Use it wherever SeaORM takes a connection.
#[derive(Clone)]
pub struct TenantConnection {
    inner: Arc<Inner>,
    storefront: StorefrontId,
    placement: PlacementCache,
    stats: Arc<QueryStats>,
}

impl TenantConnection {
    /// A connection of `inner`'s tenancy for `storefront`; its placement resolves on use.
    pub(crate) fn new(inner: Arc<Inner>, storefront: StorefrontId) -> Self {
        Self {
            stats: inner.stats.for_storefront(storefront),
            inner,
            storefront,
            placement: Arc::new(std::sync::RwLock::new(None)),
        }
    }

    /// The backend of the shared database (every placement of one tenancy uses it).
    fn backend(&self) -> DbBackend {
        ConnectionTrait::get_database_backend(&self.inner.shared)
    }

    fn returning(&self) -> bool {
        self.inner.shared.support_returning()
    }

    /// What `timed` records for this connection.
    fn observed(&self) -> (&QueryStats, StorefrontId, &PlacementCache) {
        (&self.stats, self.storefront, &self.placement)
    }
}

/// A connection's resolved placement, when it was resolved and at which generation of the
/// directory cache: forgotten when a fence says it is stale, resolved again once the
/// directory has applied a change from its feed since (see [`crate::watch`]), while this
/// process's lease has run out, and once it is older than the directory's cache TTL. So a
/// connection (or a task) that lives long never holds a placement longer than any cache of
/// this tenancy does.
pub(crate) type PlacementCache = Arc<std::sync::RwLock<Option<Resolved>>>;

/// One resolution of a placement.
pub(crate) struct Resolved {
    at: Instant,
    generation: u64,
    placement: Arc<Placement>,
}

/// Runs `f` inside a `tenancy.statement` span (storefront, placement kind, operation; never
/// the SQL's bound values), recording its latency and outcome.
pub(crate) async fn timed<T>(
    stats: &QueryStats,
    storefront: StorefrontId,
    placement: &PlacementCache,
    op: &'static str,
    f: impl Future<Output = Result<T, DbErr>>,
) -> Result<T, DbErr> {
    use tracing::Instrument;
    let span = tracing::debug_span!(
        "tenancy.statement",
        storefront = %storefront,
        op,
        placement = tracing::field::Empty,
        error = tracing::field::Empty,
    );
    let started = std::time::Instant::now();
    let result = f.instrument(span.clone()).await;
    stats.record(started.elapsed(), result.is_ok());
    if !span.is_disabled() {
        if let Some(r) = placement.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            span.record("placement", r.placement.tenant_type().as_str());
        }
        if let Err(e) = &result {
            span.record("error", tracing::field::display(e));
        }
    }
    result
}

/// In the database placement, a statement that reads scoped and global tables together
/// would read the storefront database's (empty) copy of the global table: refuse it.
pub(crate) fn refuse_global_join(confined: &crate::rewrite::Confined) -> Result<(), TenancyError> {
    match &confined.global {
        Some(table) => Err(TenancyError::Refused {
            table: table.to_string(),
            reason: "a storefront in its own database cannot read a global table of the shared \
                     database in the same statement as its own tables; read the global table \
                     in a statement of its own"
                .into(),
        }),
        None => Ok(()),
    }
}

pub(crate) fn forget(inner: &Inner, storefront: StorefrontId, cache: &PlacementCache) {
    inner.resolver.invalidate(storefront);
    *cache.write().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Where one statement runs.
enum Target<'a> {
    Shared(&'a DatabaseConnection),
    /// The shared database through a transaction pooler.
    Pooled(&'a DatabaseConnection),
    Tenant(Lease),
}

impl Target<'_> {
    fn conn(&self) -> &DatabaseConnection {
        match self {
            Target::Shared(c) | Target::Pooled(c) => c,
            Target::Tenant(lease) => lease,
        }
    }

    /// Whether the connection goes through a transaction pooler.
    fn pooled(&self) -> bool {
        match self {
            Target::Shared(_) => false,
            Target::Pooled(_) => true,
            Target::Tenant(lease) => lease.pooled(),
        }
    }
}

impl Inner {
    /// The shared database for storefront statements: through the pooler if there is one.
    fn shared_target(&self) -> Target<'_> {
        match &self.pooled {
            Some(pooled) => Target::Pooled(pooled),
            None => Target::Shared(&self.shared),
        }
    }

    /// How statements on `target` run in a transaction of the framework's own: with
    /// row-level security (its prelude opens each one), or behind a transaction pooler
    /// (statements unnamed); `None` when neither applies and SeaORM runs them as usual.
    fn opening(&self, storefront: StorefrontId, target: &Target<'_>) -> Option<held::Opening> {
        let pooled = target.pooled();
        (self.rls.is_some() || pooled).then(|| held::Opening {
            prelude: self.rls.as_ref().map(|rls| rls.prelude(storefront)),
            named: !pooled,
        })
    }
}

impl std::fmt::Debug for TenantConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantConnection")
            .field("storefront", &self.storefront)
            .finish()
    }
}

impl TenantConnection {
    /// The storefront this connection is confined to.
    pub fn storefront(&self) -> StorefrontId {
        self.storefront
    }

    /// The storefront's placement (resolved on first use, again once the directory has
    /// applied a change since, while this process's lease has run out, once older than the
    /// directory's cache TTL, and after a move's fence refused a statement).
    pub async fn placement(&self) -> Result<Arc<Placement>, TenancyError> {
        let directory = self.inner.directory.as_deref();
        let ttl = directory.map_or(Duration::MAX, |d| d.ttl());
        // Read before resolving: a change applied while the resolution runs leaves the
        // answer at an older generation, resolved again next time.
        let generation = directory.map_or(0, |d| d.generation());
        if !directory.is_some_and(|d| d.lapsed()) {
            if let Some(r) = self
                .placement
                .read()
                .unwrap_or_else(|e| e.into_inner())
                .as_ref()
            {
                if r.generation == generation && r.at.elapsed() < ttl {
                    return Ok(Arc::clone(&r.placement));
                }
            }
        }
        let at = Instant::now();
        let placement = Arc::new(self.inner.resolver.placement(self.storefront).await?);
        *self.placement.write().unwrap_or_else(|e| e.into_inner()) = Some(Resolved {
            at,
            generation,
            placement: Arc::clone(&placement),
        });
        Ok(placement)
    }

    /// Runs `work` in a transaction and commits it; when a move's fence refused one of its
    /// statements, the transaction is rolled back and `work` runs again from the start, in
    /// a new transaction on the refreshed placement (for up to the tenancy's fence wait).
    ///
    /// A single statement outside a transaction is retried like this by itself; a
    /// transaction cannot be, because only the application knows how to redo it. Use this
    /// for writes that must go through a move without an error reaching the caller.
    ///
    /// ```no_run
    /// # async fn f(db: tenancy_core::TenantConnection) -> Result<(), sea_orm::DbErr> {
    /// use sea_orm::{ConnectionTrait, Statement};
    /// let n = db
    ///     .transaction_retrying(|txn| {
    ///         Box::pin(async move {
    ///             let backend = txn.get_database_backend();
    ///             txn.execute_raw(Statement::from_string(backend, "UPDATE customers SET phone = NULL"))
    ///                 .await
    ///                 .map(|r| r.rows_affected())
    ///         })
    ///     })
    ///     .await?;
    /// # let _ = n; Ok(()) }
    /// ```
    pub async fn transaction_retrying<F, T, E>(&self, work: F) -> Result<T, E>
    where
        F: for<'c> Fn(
                &'c TenantTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send
            + Sync,
        T: Send,
        E: From<DbErr> + Send,
    {
        self.retrying(|| Begin::Default, work).await
    }

    /// [`Self::transaction_retrying`] with an isolation level and access mode. A
    /// repeatable-read or serializable transaction that fails with a serialization failure
    /// or a deadlock (as one whose snapshot predates a move's fence does) runs again too.
    pub async fn transaction_retrying_with<F, T, E>(
        &self,
        isolation: Option<sea_orm::IsolationLevel>,
        access: Option<sea_orm::AccessMode>,
        work: F,
    ) -> Result<T, E>
    where
        F: for<'c> Fn(
                &'c TenantTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send
            + Sync,
        T: Send,
        E: From<DbErr> + Send,
    {
        self.retrying(|| Begin::Config(isolation, access), work)
            .await
    }

    async fn retrying<F, T, E>(&self, begin: impl Fn() -> Begin, work: F) -> Result<T, E>
    where
        F: for<'c> Fn(
                &'c TenantTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send
            + Sync,
        T: Send,
        E: From<DbErr> + Send,
    {
        let mut backoff = Backoff::new(self.inner.fence_wait);
        let directory = self.inner.directory.as_deref();
        loop {
            let seen = self.generation();
            let txn = match self.open(begin()).await {
                Ok(txn) => txn,
                Err(e) if fence::is_retryable(&e) && backoff.may_retry() => {
                    self.forget_placement();
                    backoff
                        .pause_or_change(directory, self.storefront, seen)
                        .await;
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let fenced = txn.fenced_flag();
            match work(&txn).await {
                Ok(value) => {
                    txn.commit().await?;
                    return Ok(value);
                }
                Err(e) => {
                    let _ = txn.rollback().await;
                    if !fenced.load(std::sync::atomic::Ordering::Relaxed) || !backoff.may_retry() {
                        return Err(e);
                    }
                    tracing::debug!(storefront = %self.storefront, "transaction fenced by a move (or a serialization failure); running it again");
                    backoff
                        .pause_or_change(directory, self.storefront, seen)
                        .await;
                }
            }
        }
    }

    /// The directory cache's generation (0 without a directory).
    fn generation(&self) -> u64 {
        self.inner
            .directory
            .as_deref()
            .map_or(0, |d| d.generation())
    }

    /// Forgets the placement, here and in the directory cache.
    fn forget_placement(&self) {
        forget(&self.inner, self.storefront, &self.placement);
    }

    /// Runs `attempt` again while a move's fence refuses it: each time the placement is
    /// resolved afresh, so once the directory has flipped the statement goes to the new
    /// placement. A refused statement had no effect, so running it again is safe.
    async fn fenced_retry<T, F, Fut>(&self, attempt: F) -> Result<T, DbErr>
    where
        F: Fn() -> Fut,
        Fut: Future<Output = Result<T, DbErr>>,
    {
        let mut backoff = Backoff::new(self.inner.fence_wait);
        loop {
            let seen = self.generation();
            match attempt().await {
                Err(e) if fence::is_retryable(&e) && backoff.may_retry() => {
                    tracing::debug!(storefront = %self.storefront, "write fenced by a move; refreshing its placement");
                    self.forget_placement();
                    backoff
                        .pause_or_change(self.inner.directory.as_deref(), self.storefront, seen)
                        .await;
                }
                other => return other,
            }
        }
    }

    async fn lease(&self, url: &str) -> Result<Lease, DbErr> {
        let pools = self.inner.pools.as_ref().ok_or_else(|| {
            DbErr::from(TenancyError::Unsupported {
                placement: "database".into(),
                backend: "this Tenancy".into(),
                reason: "it was built without tenant pools (build it with TenancyOptions)".into(),
            })
        })?;
        // Opening a pool is a large future (the driver's connect); boxed, it costs the hot
        // path of every statement one pointer instead of kilobytes copied per poll.
        Ok(Box::pin(pools.lease(url, self.storefront)).await?)
    }

    /// Confines `stmt` and picks where it runs: the shared database for the shared and
    /// schema placements, and for statements on global tables only; the storefront's own
    /// database otherwise.
    async fn prepare(&self, stmt: Statement) -> Result<(Target<'_>, Statement), DbErr> {
        let placement = self.placement().await?;
        let confined = self
            .inner
            .rewriter
            .confine(stmt, &self.storefront, placement.schema())?;
        match placement.as_ref() {
            Placement::Database { url } if confined.scoped => {
                refuse_global_join(&confined)?;
                Ok((Target::Tenant(self.lease(url).await?), confined.statement))
            }
            _ => Ok((self.inner.shared_target(), confined.statement)),
        }
    }

    /// The connection transactions of this storefront start on.
    async fn home_of(&self, placement: &Placement) -> Result<Target<'_>, DbErr> {
        match placement {
            Placement::Database { url } => Ok(Target::Tenant(self.lease(url).await?)),
            _ => Ok(self.inner.shared_target()),
        }
    }

    /// Begins a transaction on the storefront's home connection. The placement is
    /// resolved once: where the transaction runs and which schema it names agree.
    async fn open(&self, begin: Begin) -> Result<TenantTransaction, DbErr> {
        let generation = self
            .inner
            .directory
            .as_deref()
            .map_or(0, |d| d.generation());
        let placement = self.placement().await?;
        let home = self.home_of(&placement).await?;
        let txn = match self.inner.opening(self.storefront, &home) {
            Some(opening) => {
                // Cancel-safe by itself: a held connection whose transaction was not seen
                // to end is closed, never returned to the pool.
                transaction::Txn::Held(
                    held::HeldTransaction::begin(home.conn(), &begin, &opening).await?,
                )
            }
            None => {
                // Begun in a task of its own: a caller that stops waiting while `BEGIN` is
                // on the wire would otherwise drop the transaction before the driver
                // counts it, and the connection would go back to the pool inside it (sqlx
                // #4385). The task finishes the begin; dropping its result then rolls the
                // transaction back.
                let conn = home.conn().clone();
                let txn = tokio::spawn(async move { begin.on(&conn).await })
                    .await
                    .map_err(|e| {
                        DbErr::Custom(format!(
                            "{}beginning a transaction: {e}",
                            crate::error::PREFIX
                        ))
                    })??;
                transaction::Txn::Orm(txn)
            }
        };
        let schema = placement.schema().map(str::to_owned);
        let own_database = matches!(home, Target::Tenant(_));
        let lease = match home {
            Target::Tenant(lease) => Some(Arc::new(lease)),
            Target::Shared(_) | Target::Pooled(_) => None,
        };
        Ok(TenantTransaction::new(
            Arc::clone(&self.inner),
            self.storefront,
            Arc::clone(&self.stats),
            Arc::clone(&self.placement),
            schema,
            own_database,
            txn,
            lease,
            generation,
        ))
    }

    /// Confines a statement and runs it where the placement says, again while a fence
    /// refuses it.
    async fn call(&self, call: Call) -> Result<Answer, DbErr> {
        self.fenced_retry(|| async {
            let (target, stmt) = self.prepare(call.statement().clone()).await?;
            match self.inner.opening(self.storefront, &target) {
                Some(opening) => {
                    let registry = self.inner.rewriter.registry();
                    held::single(target.conn(), call.with(stmt), &opening, registry).await
                }
                None => call.with(stmt).run(target.conn()).await,
            }
        })
        .await
    }
}

traits::connection_traits!(TenantConnection);

/// The rows a [`TenantConnection`] streams.
pub type TenantStream<'a> =
    Pin<Box<dyn futures_util::Stream<Item = Result<sea_orm::QueryResult, DbErr>> + Send + 'a>>;

impl StreamTrait for TenantConnection {
    type Stream<'a> = TenantStream<'a>;

    fn get_database_backend(&self) -> DbBackend {
        self.inner.shared.get_database_backend()
    }

    fn stream_raw<'a>(
        &'a self,
        stmt: Statement,
    ) -> Pin<Box<dyn Future<Output = Result<TenantStream<'a>, DbErr>> + 'a + Send>> {
        Box::pin(async move {
            let (target, stmt) = self.prepare(stmt).await?;
            if let Some(opening) = self.inner.opening(self.storefront, &target) {
                // A task holds the stream's transaction (and the storefront database's
                // pool, through its lease) until the last row.
                let conn = target.conn().clone();
                let lease: Box<dyn std::any::Any + Send> = match target {
                    Target::Tenant(lease) => Box::new(lease),
                    Target::Shared(_) | Target::Pooled(_) => Box::new(()),
                };
                let registry = self.inner.rewriter.registry();
                return held::stream(&conn, stmt, &opening, registry, lease).await;
            }
            // The stream owns its pooled connection; the lease only guards its creation.
            let rows: QueryStream = target.conn().stream_raw(stmt).await?;
            Ok(Box::pin(rows) as TenantStream<'a>)
        })
    }
}
