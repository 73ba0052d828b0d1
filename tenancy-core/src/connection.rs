//! [`Tenancy`], the framework handle, and the connections it hands out.
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

use std::{future::Future, pin::Pin, sync::Arc, time::Duration};

use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    ExecResult, IsolationLevel, QueryResult, QueryStream, Statement, StreamTrait, TransactionError,
    TransactionOptions, TransactionSession, TransactionStream, TransactionTrait,
};

use crate::{
    directory::AllShared,
    pool::Lease,
    stats::{QueryStats, Stats},
    DatabaseManager, Directory, Placement, PoolOptions, Registry, Rewriter, StorefrontId,
    TenancyError, TenantResolver,
};

struct Inner {
    shared: DatabaseConnection,
    shared_url: Option<String>,
    rewriter: Rewriter,
    resolver: Arc<dyn TenantResolver>,
    directory: Option<Arc<Directory>>,
    pools: Option<DatabaseManager>,
    stats: Stats,
    fence_wait: Duration,
}

/// How long a statement refused by a move's fence is retried by default.
const FENCE_WAIT: Duration = Duration::from_secs(30);

/// Builds a [`Tenancy`] with a directory and tenant pools (hybrid placement).
///
/// ```no_run
/// # async fn demo(shared: sea_orm::DatabaseConnection) -> Result<(), tenancy_core::TenancyError> {
/// use std::time::Duration;
/// use tenancy_core::{Placement, PoolOptions, Tenancy};
/// let tenancy = Tenancy::builder(shared)
///     .directory(Duration::from_secs(30), None) // unknown storefronts are an error
///     .pools(PoolOptions { budget: 50, ..PoolOptions::default() })
///     .build()
///     .await?;
/// # Ok(()) }
/// ```
pub struct TenancyBuilder {
    shared: DatabaseConnection,
    shared_url: Option<String>,
    registry: Option<Registry>,
    directory: Option<(Duration, Option<Placement>)>,
    pools: Option<PoolOptions>,
    fence_wait: Duration,
}

impl TenancyBuilder {
    /// The scoped tables (default: every `#[tenant_scoped]` entity).
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = Some(registry);
        self
    }

    /// Resolve placements through the directory table (created if missing), caching each
    /// answer for `cache_ttl`. Unknown storefronts get `default` if given, else an error.
    pub fn directory(mut self, cache_ttl: Duration, default: Option<Placement>) -> Self {
        self.directory = Some((cache_ttl, default));
        self
    }

    /// The shared database's URL (needed to migrate schemas on MySQL, where a schema is a
    /// database reached by its own URL).
    pub fn shared_url(mut self, url: impl Into<String>) -> Self {
        self.shared_url = Some(url.into());
        self
    }

    /// Limits of the tenant database pools (database placement).
    pub fn pools(mut self, opts: PoolOptions) -> Self {
        self.pools = Some(opts);
        self
    }

    /// How long a statement refused by a moving storefront's fence is retried (after
    /// refreshing the storefront's placement) before the error reaches the caller. Default
    /// 30 s; the cutover itself fences writes for milliseconds.
    pub fn fence_wait(mut self, wait: Duration) -> Self {
        self.fence_wait = wait;
        self
    }

    /// Builds the handle (installs the directory table when a directory is used).
    pub async fn build(self) -> Result<Tenancy, TenancyError> {
        let directory = match self.directory {
            Some((ttl, default)) => {
                let d = Arc::new(Directory::new(self.shared.clone(), ttl, default));
                d.install().await?;
                Some(d)
            }
            None => None,
        };
        let resolver: Arc<dyn TenantResolver> = match &directory {
            Some(d) => Arc::clone(d) as Arc<dyn TenantResolver>,
            None => Arc::new(AllShared),
        };
        let pools = DatabaseManager::new(self.pools.unwrap_or_default())?;
        Ok(Tenancy {
            inner: Arc::new(Inner {
                shared: self.shared,
                shared_url: self.shared_url,
                rewriter: Rewriter::new(self.registry.unwrap_or_else(Registry::from_entities)),
                resolver,
                directory,
                pools: Some(pools),
                stats: Stats::default(),
                fence_wait: self.fence_wait,
            }),
        })
    }
}

/// The framework handle: the shared database and the rewriter. Cheap to clone.
#[derive(Clone)]
pub struct Tenancy {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Tenancy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenancy")
            .field("backend", &self.inner.shared.get_database_backend())
            .field("scoped_tables", &self.inner.rewriter.registry().tables())
            .finish()
    }
}

impl Tenancy {
    /// A handle over the shared database, knowing every table marked `#[tenant_scoped]`.
    pub fn new(shared: DatabaseConnection) -> Self {
        Self::with_registry(shared, Registry::from_entities())
    }

    /// A handle with an explicit registry of scoped tables; every storefront is in the
    /// shared placement.
    pub fn with_registry(shared: DatabaseConnection, registry: Registry) -> Self {
        Self {
            inner: Arc::new(Inner {
                shared,
                shared_url: None,
                rewriter: Rewriter::new(registry),
                resolver: Arc::new(AllShared),
                directory: None,
                pools: None,
                stats: Stats::default(),
                fence_wait: FENCE_WAIT,
            }),
        }
    }

    /// A builder for the hybrid setup: directory, tenant pools.
    pub fn builder(shared: DatabaseConnection) -> TenancyBuilder {
        TenancyBuilder {
            shared,
            shared_url: None,
            registry: None,
            directory: None,
            pools: None,
            fence_wait: FENCE_WAIT,
        }
    }

    /// A connection confined to `storefront`. Its placement is resolved on first use.
    pub fn connection(&self, storefront: StorefrontId) -> TenantConnection {
        TenantConnection {
            stats: self.inner.stats.for_storefront(storefront),
            inner: Arc::clone(&self.inner),
            storefront,
            placement: Arc::new(std::sync::RwLock::new(None)),
        }
    }

    /// How long cached directory entries are trusted (zero without a directory).
    pub fn directory_ttl(&self) -> Duration {
        self.directory().map_or(Duration::ZERO, |d| d.ttl())
    }

    /// The shared database's URL, when given to the builder.
    pub fn shared_url(&self) -> Option<&str> {
        self.inner.shared_url.as_deref()
    }

    /// The directory, when this handle uses one.
    pub fn directory(&self) -> Option<&Arc<Directory>> {
        self.inner.directory.as_ref()
    }

    /// The tenant pool manager, when this handle has one.
    pub fn pools(&self) -> Option<&DatabaseManager> {
        self.inner.pools.as_ref()
    }

    /// Where `storefront` lives, as the resolver says now.
    pub async fn placement(&self, storefront: StorefrontId) -> Result<Placement, TenancyError> {
        self.inner.resolver.placement(storefront).await
    }

    /// Query statistics of every storefront served by this process.
    pub fn stats(&self) -> &Stats {
        &self.inner.stats
    }

    /// The rewriter (shared by every connection of this handle).
    pub fn rewriter(&self) -> &Rewriter {
        &self.inner.rewriter
    }

    /// The unconfined shared connection, for migrations and administration. Business code
    /// should never need it.
    pub fn shared(&self) -> &DatabaseConnection {
        &self.inner.shared
    }

    /// The registry of scoped tables.
    pub fn registry(&self) -> &Registry {
        self.inner.rewriter.registry()
    }

    /// Checks the shared database for tables that have a tenant column but are not
    /// registered as tenant-scoped (an entity missing `#[tenant_scoped]`, or one the linker
    /// dropped). Statements on such a table would not be confined, so call this at start-up.
    pub async fn verify_registry(&self) -> Result<(), TenancyError> {
        let db = &self.inner.shared;
        let columns: Vec<String> = {
            let mut c: Vec<String> = self
                .registry()
                .tables()
                .iter()
                .map(|(_, c)| c.to_string())
                .collect();
            if c.is_empty() {
                c.push("storefront_id".into());
            }
            c.sort();
            c.dedup();
            c
        };
        let mut unregistered = Vec::new();
        for column in columns {
            let stmt = match db.get_database_backend() {
                DbBackend::Postgres => Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT table_name::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND column_name = $1",
                    [column.clone().into()],
                ),
                DbBackend::MySql => Statement::from_sql_and_values(
                    DbBackend::MySql,
                    "SELECT CAST(table_name AS CHAR) FROM information_schema.columns \
                     WHERE table_schema = DATABASE() AND column_name = ?",
                    [column.clone().into()],
                ),
                backend => Statement::from_sql_and_values(
                    backend,
                    "SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) p \
                     WHERE m.type = 'table' AND p.name = ?",
                    [column.clone().into()],
                ),
            };
            for row in db.query_all_raw(stmt).await? {
                let table: String = row.try_get_by_index(0)?;
                // The framework's own tables (the directory has a storefront_id column) are
                // never named through a tenant connection, so they need no registration.
                if self.registry().tenant_column(&table).is_none()
                    && !crate::registry::is_reserved(&table)
                {
                    unregistered.push(table);
                }
            }
        }
        match unregistered.first() {
            None => Ok(()),
            Some(table) => Err(TenancyError::Refused {
                table: table.clone(),
                reason: format!(
                    "the table has a tenant column but no entity marked #[tenant_scoped] \
                     registers it (unregistered: {})",
                    unregistered.join(", ")
                ),
            }),
        }
    }
}

/// A connection confined to one storefront. Use it wherever SeaORM takes a connection.
#[derive(Clone)]
pub struct TenantConnection {
    inner: Arc<Inner>,
    storefront: StorefrontId,
    placement: PlacementCache,
    stats: Arc<QueryStats>,
}

/// A connection's resolved placement, forgotten when a fence says it is stale.
type PlacementCache = Arc<std::sync::RwLock<Option<Arc<Placement>>>>;

/// Runs `f` inside a `tenancy.statement` span (storefront, placement kind, operation; never
/// the SQL's bound values), recording its latency and outcome.
async fn timed<T>(
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
        if let Some(p) = placement
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_deref()
        {
            span.record("placement", crate::metrics::kind(p));
        }
        if let Err(e) = &result {
            span.record("error", tracing::field::display(e));
        }
    }
    result
}

/// In the database placement, a statement that reads scoped and global tables together
/// would read the storefront database's (empty) copy of the global table: refuse it.
fn refuse_global_join(confined: &crate::rewrite::Confined) -> Result<(), TenancyError> {
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

fn forget(inner: &Inner, storefront: StorefrontId, cache: &PlacementCache) {
    inner.resolver.invalidate(storefront);
    *cache.write().unwrap_or_else(|e| e.into_inner()) = None;
}

/// Where one statement runs.
enum Target<'a> {
    Shared(&'a DatabaseConnection),
    Tenant(Lease),
}

impl Target<'_> {
    fn conn(&self) -> &DatabaseConnection {
        match self {
            Target::Shared(c) => c,
            Target::Tenant(lease) => lease,
        }
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

    /// The storefront's placement (resolved on first use, and again after a move's fence
    /// refused a statement).
    pub async fn placement(&self) -> Result<Arc<Placement>, TenancyError> {
        if let Some(p) = self
            .placement
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
        {
            return Ok(Arc::clone(p));
        }
        let resolved = Arc::new(self.inner.resolver.placement(self.storefront).await?);
        *self.placement.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&resolved));
        Ok(resolved)
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
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            let txn = match self.begin().await {
                Ok(txn) => txn,
                Err(e)
                    if crate::mover::is_retryable(&e)
                        && started.elapsed() < self.inner.fence_wait =>
                {
                    self.forget_placement();
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(20));
                    continue;
                }
                Err(e) => return Err(e.into()),
            };
            let fenced = Arc::clone(&txn.fenced);
            match work(&txn).await {
                Ok(value) => {
                    txn.commit().await?;
                    return Ok(value);
                }
                Err(e) => {
                    let _ = txn.rollback().await;
                    if !fenced.load(std::sync::atomic::Ordering::Relaxed)
                        || started.elapsed() >= self.inner.fence_wait
                    {
                        return Err(e);
                    }
                    tracing::debug!(storefront = %self.storefront, "transaction fenced by a move; running it again");
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(20));
                }
            }
        }
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
        let started = std::time::Instant::now();
        let mut pause = Duration::from_millis(2);
        loop {
            match attempt().await {
                Err(e)
                    if crate::mover::is_retryable(&e)
                        && started.elapsed() < self.inner.fence_wait =>
                {
                    tracing::debug!(storefront = %self.storefront, "write fenced by a move; refreshing its placement");
                    self.forget_placement();
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(20));
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
                reason: "it was built without tenant pools (use Tenancy::builder)".into(),
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
            _ => Ok((Target::Shared(&self.inner.shared), confined.statement)),
        }
    }

    /// The connection transactions of this storefront start on.
    async fn home(&self) -> Result<Target<'_>, DbErr> {
        match self.placement().await?.as_ref() {
            Placement::Database { url } => Ok(Target::Tenant(self.lease(url).await?)),
            _ => Ok(Target::Shared(&self.inner.shared)),
        }
    }

    async fn start(
        &self,
        begin: impl for<'c> FnOnce(
            &'c DatabaseConnection,
        ) -> Pin<
            Box<dyn Future<Output = Result<DatabaseTransaction, DbErr>> + Send + 'c>,
        >,
    ) -> Result<TenantTransaction, DbErr> {
        let home = self.home().await?;
        let txn = begin(home.conn()).await?;
        let schema = self.placement().await?.schema().map(str::to_owned);
        Ok(TenantTransaction {
            stats: Arc::clone(&self.stats),
            inner: Arc::clone(&self.inner),
            storefront: self.storefront,
            placement: Arc::clone(&self.placement),
            schema,
            own_database: matches!(home, Target::Tenant(_)),
            txn,
            _lease: match home {
                Target::Tenant(lease) => Some(Arc::new(lease)),
                Target::Shared(_) => None,
            },
            fenced: Arc::default(),
        })
    }
}

/// A transaction confined to one storefront; nested `begin` opens a savepoint.
pub struct TenantTransaction {
    stats: Arc<QueryStats>,
    inner: Arc<Inner>,
    storefront: StorefrontId,
    /// The connection's placement cache, forgotten if a fence refuses a statement here.
    placement: PlacementCache,
    schema: Option<String>,
    /// Runs in the storefront's own database.
    own_database: bool,
    txn: DatabaseTransaction,
    /// Keeps the tenant pool open while the transaction lives.
    _lease: Option<Arc<Lease>>,
    /// Set when a move's fence refused one of its statements (shared with nested ones).
    fenced: Arc<std::sync::atomic::AtomicBool>,
}

impl std::fmt::Debug for TenantTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantTransaction")
            .field("storefront", &self.storefront)
            .finish()
    }
}

impl TenantTransaction {
    /// The storefront this transaction is confined to.
    pub fn storefront(&self) -> StorefrontId {
        self.storefront
    }

    /// A transaction cannot be replayed, so a fenced statement fails it; the connection's
    /// placement is forgotten so that the caller's retry starts on the new placement.
    fn fenced<T>(&self, result: Result<T, DbErr>) -> Result<T, DbErr> {
        if let Err(e) = &result {
            if crate::mover::is_retryable(e) {
                forget(&self.inner, self.storefront, &self.placement);
                self.fenced
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        result
    }

    fn confine(&self, stmt: Statement) -> Result<Statement, DbErr> {
        let confined =
            self.inner
                .rewriter
                .confine(stmt, &self.storefront, self.schema.as_deref())?;
        if self.own_database && confined.scoped {
            refuse_global_join(&confined)?;
        }
        Ok(confined.statement)
    }

    fn wrap(&self, txn: DatabaseTransaction) -> TenantTransaction {
        TenantTransaction {
            stats: Arc::clone(&self.stats),
            inner: Arc::clone(&self.inner),
            storefront: self.storefront,
            placement: Arc::clone(&self.placement),
            schema: self.schema.clone(),
            own_database: self.own_database,
            txn,
            _lease: self._lease.clone(),
            fenced: Arc::clone(&self.fenced),
        }
    }

    /// Commits the transaction (or releases the savepoint).
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }

    /// Rolls the transaction back (or to the savepoint).
    pub async fn rollback(self) -> Result<(), DbErr> {
        self.txn.rollback().await
    }

    async fn run<F, T, E>(self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c TenantTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        let result = callback(&self).await.map_err(TransactionError::Transaction);
        if result.is_ok() {
            self.commit().await.map_err(TransactionError::Connection)?;
        } else {
            self.rollback()
                .await
                .map_err(TransactionError::Connection)?;
        }
        result
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for TenantConnection {
    fn get_database_backend(&self) -> DbBackend {
        ConnectionTrait::get_database_backend(&self.inner.shared)
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        timed(
            &self.stats,
            self.storefront,
            &self.placement,
            "execute",
            self.fenced_retry(|| async {
                let (target, stmt) = self.prepare(stmt.clone()).await?;
                target.conn().execute_raw(stmt).await
            }),
        )
        .await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let backend = ConnectionTrait::get_database_backend(self);
        timed(
            &self.stats,
            self.storefront,
            &self.placement,
            "execute",
            self.fenced_retry(|| async {
                let (target, stmt) = self.prepare(Statement::from_string(backend, sql)).await?;
                match &stmt.values {
                    // Rewritten: the tenant value is bound, so it runs as a prepared statement.
                    Some(_) => target.conn().execute_raw(stmt).await,
                    None => target.conn().execute_unprepared(&stmt.sql).await,
                }
            }),
        )
        .await
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        timed(
            &self.stats,
            self.storefront,
            &self.placement,
            "query_one",
            self.fenced_retry(|| async {
                let (target, stmt) = self.prepare(stmt.clone()).await?;
                target.conn().query_one_raw(stmt).await
            }),
        )
        .await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        timed(
            &self.stats,
            self.storefront,
            &self.placement,
            "query_all",
            self.fenced_retry(|| async {
                let (target, stmt) = self.prepare(stmt.clone()).await?;
                target.conn().query_all_raw(stmt).await
            }),
        )
        .await
    }

    fn support_returning(&self) -> bool {
        self.inner.shared.support_returning()
    }
}

#[async_trait::async_trait]
impl ConnectionTrait for TenantTransaction {
    fn get_database_backend(&self) -> DbBackend {
        ConnectionTrait::get_database_backend(&self.txn)
    }

    async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
        timed(
            &self.stats,
            self.storefront,
            &self.placement,
            "execute",
            async { self.fenced(self.txn.execute_raw(self.confine(stmt)?).await) },
        )
        .await
    }

    async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
        let backend = ConnectionTrait::get_database_backend(self);
        let stmt = self.confine(Statement::from_string(backend, sql))?;
        self.fenced(match &stmt.values {
            Some(_) => self.txn.execute_raw(stmt).await,
            None => self.txn.execute_unprepared(&stmt.sql).await,
        })
    }

    async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
        timed(
            &self.stats,
            self.storefront,
            &self.placement,
            "query_one",
            async { self.fenced(self.txn.query_one_raw(self.confine(stmt)?).await) },
        )
        .await
    }

    async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
        timed(
            &self.stats,
            self.storefront,
            &self.placement,
            "query_all",
            async { self.fenced(self.txn.query_all_raw(self.confine(stmt)?).await) },
        )
        .await
    }

    fn support_returning(&self) -> bool {
        self.txn.support_returning()
    }
}

#[async_trait::async_trait]
impl TransactionTrait for TenantConnection {
    type Transaction = TenantTransaction;

    async fn begin(&self) -> Result<TenantTransaction, DbErr> {
        self.start(|c| Box::pin(c.begin())).await
    }

    async fn begin_with_config(
        &self,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<TenantTransaction, DbErr> {
        self.start(move |c| Box::pin(c.begin_with_config(isolation_level, access_mode)))
            .await
    }

    async fn begin_with_options(
        &self,
        options: TransactionOptions,
    ) -> Result<TenantTransaction, DbErr> {
        self.start(move |c| Box::pin(c.begin_with_options(options)))
            .await
    }

    async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c TenantTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        let txn = self.begin().await.map_err(TransactionError::Connection)?;
        txn.run(callback).await
    }

    async fn transaction_with_config<F, T, E>(
        &self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c TenantTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        let txn = self
            .begin_with_config(isolation_level, access_mode)
            .await
            .map_err(TransactionError::Connection)?;
        txn.run(callback).await
    }
}

#[async_trait::async_trait]
impl TransactionTrait for TenantTransaction {
    type Transaction = TenantTransaction;

    async fn begin(&self) -> Result<TenantTransaction, DbErr> {
        Ok(self.wrap(self.txn.begin().await?))
    }

    async fn begin_with_config(
        &self,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<TenantTransaction, DbErr> {
        Ok(self.wrap(
            self.txn
                .begin_with_config(isolation_level, access_mode)
                .await?,
        ))
    }

    async fn begin_with_options(
        &self,
        options: TransactionOptions,
    ) -> Result<TenantTransaction, DbErr> {
        Ok(self.wrap(self.txn.begin_with_options(options).await?))
    }

    async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c TenantTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        let txn = self.begin().await.map_err(TransactionError::Connection)?;
        txn.run(callback).await
    }

    async fn transaction_with_config<F, T, E>(
        &self,
        callback: F,
        isolation_level: Option<IsolationLevel>,
        access_mode: Option<AccessMode>,
    ) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c TenantTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        let txn = self
            .begin_with_config(isolation_level, access_mode)
            .await
            .map_err(TransactionError::Connection)?;
        txn.run(callback).await
    }
}

#[async_trait::async_trait]
impl TransactionSession for TenantTransaction {
    async fn commit(self) -> Result<(), DbErr> {
        TenantTransaction::commit(self).await
    }

    async fn rollback(self) -> Result<(), DbErr> {
        TenantTransaction::rollback(self).await
    }
}

impl StreamTrait for TenantConnection {
    type Stream<'a> = QueryStream;

    fn get_database_backend(&self) -> DbBackend {
        self.inner.shared.get_database_backend()
    }

    fn stream_raw<'a>(
        &'a self,
        stmt: Statement,
    ) -> Pin<Box<dyn Future<Output = Result<QueryStream, DbErr>> + 'a + Send>> {
        Box::pin(async move {
            let (target, stmt) = self.prepare(stmt).await?;
            // The stream owns its pooled connection; the lease only guards its creation.
            target.conn().stream_raw(stmt).await
        })
    }
}

impl StreamTrait for TenantTransaction {
    type Stream<'a> = TransactionStream<'a>;

    fn get_database_backend(&self) -> DbBackend {
        StreamTrait::get_database_backend(&self.txn)
    }

    fn stream_raw<'a>(
        &'a self,
        stmt: Statement,
    ) -> Pin<Box<dyn Future<Output = Result<TransactionStream<'a>, DbErr>> + 'a + Send>> {
        Box::pin(async move {
            let stmt = self.confine(stmt)?;
            self.txn.stream_raw(stmt).await
        })
    }
}
