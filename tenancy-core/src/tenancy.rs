//! [`Tenancy`], the framework's one handle: the shared database, the rewriter, the
//! directory of placements and the tenant pools. Built by [`TenancyOptions`] (sqlx-style
//! options, then `connect(url)`), by [`Tenancy::connect`] from a [`TenancyConfig`] (which
//! fills the same options), or by [`Tenancy::new`] over an open connection when every
//! storefront is shared; it hands out [`TenantConnection`]s.
//!
//! Provisioning ([`crate::provision`]), fleet migrations ([`crate::fleet`]) and the
//! placement advisor ([`crate::advisor`]) add their methods to `Tenancy` in their own
//! modules.

use std::{sync::Arc, time::Duration};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use crate::{
    config::TenancyConfig, connection::TenantConnection, directory::AllShared, rewrite::Rewriter,
    rls::RowLevelSecurity, stats::Stats, DatabaseManager, Directory, Placement, PoolOptions,
    Registry, StorefrontId, TenancyError, TenantResolver, WatchOptions,
};

/// What every connection of one [`Tenancy`] shares.
pub(crate) struct Inner {
    /// The shared database, directly (never through a transaction pooler): the
    /// framework's own tables, and storefront statements when there is no pooler.
    pub(crate) shared: DatabaseConnection,
    /// The shared database through a transaction pooler, for storefront statements only
    /// (run in held transactions, see [`crate::pooler`]).
    pub(crate) pooled: Option<DatabaseConnection>,
    /// Which URLs point at a transaction pooler, and the servers behind them.
    pub(crate) poolers: crate::pooler::Poolers,
    pub(crate) shared_url: Option<String>,
    pub(crate) rewriter: Rewriter,
    pub(crate) resolver: Arc<dyn TenantResolver>,
    pub(crate) directory: Option<Arc<Directory>>,
    pub(crate) pools: Option<DatabaseManager>,
    pub(crate) stats: Stats,
    pub(crate) fence_wait: Duration,
    /// How this process follows the directory (the cutover barrier's wait is read here).
    pub(crate) watch_options: WatchOptions,
    /// This process's watcher, stopped (its lease given up) when the last handle goes.
    pub(crate) watch: Option<crate::watch::Watch>,
    /// Row-level security: each storefront transaction opens with its prelude.
    pub(crate) rls: Option<RowLevelSecurity>,
}

/// How long a statement refused by a move's fence is retried by default.
const FENCE_WAIT: Duration = Duration::from_secs(30);

/// How a [`Tenancy`] is built, named like sqlx's pool options: set what differs from the
/// defaults, then [`connect`](Self::connect) to a URL or
/// [`connect_with`](Self::connect_with) an open SeaORM connection.
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), tenancy_core::TenancyError> {
/// use std::time::Duration;
/// use tenancy_core::{Placement, TenancyOptions};
///
/// let tenancy = TenancyOptions::new()
///     .max_connections(1) // the shared pool: one connection, as SQLite in memory needs
///     .directory(Duration::from_secs(30), Some(Placement::Shared)) // unknown: shared
///     .connection_budget(50) // all storefront databases' pools together
///     .max_connections_per_tenant(2)
///     .acquire_timeout(Duration::from_secs(5))
///     .connect("sqlite::memory:")
///     .await?;
/// assert!(tenancy.directory().is_some());
/// # Ok(()) }
/// ```
///
/// Without [`directory`](Self::directory) every storefront is in the shared placement
/// (as with [`Tenancy::new`]); with it, each storefront is wherever the directory table
/// says, created if missing.
#[derive(Clone)]
pub struct TenancyOptions {
    shared_url: Option<String>,
    max_connections: u32,
    registry: Option<Registry>,
    directory: Option<(Duration, Option<Placement>)>,
    pools: PoolOptions,
    fence_wait: Duration,
    watch: WatchOptions,
    rls: Option<RowLevelSecurity>,
    poolers: Vec<crate::TransactionPooler>,
    /// The shared pool was opened here from `shared_url` (so another connection made from
    /// the URL reaches the same database, schema and all).
    opened_from_url: bool,
}

impl std::fmt::Debug for TenancyOptions {
    /// The shared URL without its password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Self {
            shared_url,
            max_connections,
            registry,
            directory,
            pools,
            fence_wait,
            watch,
            rls,
            poolers,
            opened_from_url,
        } = self;
        f.debug_struct("TenancyOptions")
            .field(
                "shared_url",
                &shared_url.as_deref().map(crate::backend::redact),
            )
            .field("max_connections", max_connections)
            .field("registry", registry)
            .field("directory", directory)
            .field("pools", pools)
            .field("fence_wait", fence_wait)
            .field("watch", watch)
            .field("row_level_security", rls)
            .field("transaction_poolers", poolers)
            .field("opened_from_url", opened_from_url)
            .finish()
    }
}

impl Default for TenancyOptions {
    fn default() -> Self {
        Self::new()
    }
}

impl TenancyOptions {
    /// The defaults: every `#[tenant_scoped]` entity, no directory, a shared pool of 10,
    /// [`PoolOptions::default`] for storefront databases, a 30 s fence wait.
    pub fn new() -> Self {
        Self {
            shared_url: None,
            max_connections: 10,
            registry: None,
            directory: None,
            pools: PoolOptions::default(),
            fence_wait: FENCE_WAIT,
            watch: WatchOptions::default(),
            rls: None,
            poolers: Vec::new(),
            opened_from_url: false,
        }
    }

    /// The scoped and global tables (default: every `#[tenant_scoped]` and
    /// `#[global_table]` entity linked into the binary).
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

    /// Connections of the shared database's pool, when [`connect`](Self::connect) opens
    /// it (default 10).
    pub fn max_connections(mut self, max: u32) -> Self {
        self.max_connections = max;
        self
    }

    /// Connections of each storefront database's pool (default 2).
    pub fn max_connections_per_tenant(mut self, max: u32) -> Self {
        self.pools.per_tenant = max;
        self
    }

    /// Server connections all storefront databases' pools may hold together (default
    /// 100); the least recently used idle pool is closed to make room.
    pub fn connection_budget(mut self, budget: u32) -> Self {
        self.pools.budget = budget;
        self
    }

    /// How long a statement waits for a storefront database's pool before failing with
    /// [`TenancyError::BudgetExhausted`] (default 10 s).
    pub fn acquire_timeout(mut self, timeout: Duration) -> Self {
        self.pools.acquire_timeout = timeout;
        self
    }

    /// A storefront database's pool unused this long is closed (default 5 min).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.pools.idle_timeout = timeout;
        self
    }

    /// All four storefront-pool settings at once.
    pub fn pools(mut self, opts: PoolOptions) -> Self {
        self.pools = opts;
        self
    }

    /// The shared database's URL, when [`connect_with`](Self::connect_with) is given a
    /// connection: moves to and from a SQLite file and schemas on MySQL (a schema is a
    /// database reached by its own URL) need it. [`connect`](Self::connect) sets it.
    pub fn shared_url(mut self, url: impl Into<String>) -> Self {
        self.shared_url = Some(url.into());
        self
    }

    /// How long a statement refused by a moving storefront's fence is retried (after
    /// refreshing the storefront's placement) before the error reaches the caller. Default
    /// 30 s; the cutover itself fences writes for milliseconds.
    pub fn fence_wait(mut self, wait: Duration) -> Self {
        self.fence_wait = wait;
        self
    }

    /// How this process follows the directory's changes and holds its lease (see
    /// [`crate::watch`]); with a directory, the default watches it: a placement change
    /// reaches this process within milliseconds, and a cutover waits for it.
    pub fn watch(mut self, watch: WatchOptions) -> Self {
        self.watch = watch;
        self
    }

    /// Turns on the second fence: PostgreSQL row-level security (see [`crate::rls`]). Each
    /// storefront transaction, and each single statement, then tells the database which
    /// storefront it runs for (and takes the application role, if one is named), and the
    /// handle refuses to start unless the policies, the grants and the roles are in place
    /// in the shared database (`tenancy rls apply` puts them there). Provisioning and fleet
    /// migrations apply the policies to each schema and database they create or migrate.
    pub fn row_level_security(mut self, rls: RowLevelSecurity) -> Self {
        self.rls = Some(rls);
        self
    }

    /// A transaction pooler (PgBouncer in transaction mode) in front of a PostgreSQL
    /// server; call once per pooler. A shared database URL or storefront database URL
    /// that points at one is used as [`crate::pooler`] describes: storefront statements go
    /// through the pooler in transactions of the framework's own, and what needs a
    /// session goes to the server directly.
    pub fn transaction_pooler(mut self, pooler: crate::TransactionPooler) -> Self {
        self.poolers.push(pooler);
        self
    }

    /// Opens the shared database at `url` and builds the handle. When `url` points at a
    /// [transaction pooler](Self::transaction_pooler), two pools are opened: one through
    /// the pooler for storefront statements, and one to the server directly for the
    /// framework's own work.
    pub async fn connect(mut self, url: &str) -> Result<Tenancy, TenancyError> {
        let spec = crate::backend::PoolSpec::of(self.max_connections);
        let open = |url: String| async move {
            crate::backend::connect(&url, spec)
                .await
                .map_err(|e| TenancyError::Step {
                    storefront: "-".into(),
                    step: format!("connecting to {}", crate::backend::redact(&url)),
                    source: Box::new(TenancyError::Db(e)),
                })
        };
        let poolers = crate::pooler::Poolers::new(self.poolers.clone());
        let direct = poolers.direct(url);
        let (shared, pooled) = if poolers.covers(url) {
            (
                open(direct.clone()).await?,
                Some(open(url.to_owned()).await?),
            )
        } else {
            let shared = open(direct.clone()).await?;
            // Something between us and the server that was not named as a pooler: serve
            // storefront statements as if through one (fail closed).
            let pooled = crate::backend::behind_something(&shared, url)
                .await
                .then(|| shared.clone());
            (shared, pooled)
        };
        self.shared_url = Some(direct);
        self.opened_from_url = true;
        self.build(shared, pooled).await
    }

    /// Builds the handle over an open connection to the shared database (installs the
    /// directory table when a directory is used).
    /// `shared` must reach the server directly: transaction poolers apply to storefront
    /// databases here (use [`connect`](Self::connect) for a shared database behind one).
    pub async fn connect_with(self, shared: DatabaseConnection) -> Result<Tenancy, TenancyError> {
        self.build(shared, None).await
    }

    async fn build(
        self,
        shared: DatabaseConnection,
        pooled: Option<DatabaseConnection>,
    ) -> Result<Tenancy, TenancyError> {
        self.watch.validate()?;
        for pooler in &self.poolers {
            pooler.validate()?;
        }
        let poolers = crate::pooler::Poolers::new(self.poolers);
        let registry = self.registry.unwrap_or_else(Registry::from_entities);
        if let Some(rls) = &self.rls {
            let database = self
                .shared_url
                .as_deref()
                .map_or_else(|| "the shared database".to_owned(), crate::backend::redact);
            crate::rls::verify(&shared, &registry, rls, &database).await?;
        }
        let directory = match self.directory {
            Some((ttl, default)) => {
                let d = Arc::new(Directory::new(shared.clone(), ttl, default));
                d.install().await?;
                Some(d)
            }
            None => None,
        };
        let resolver: Arc<dyn TenantResolver> = match &directory {
            Some(d) => Arc::clone(d) as Arc<dyn TenantResolver>,
            None => Arc::new(AllShared),
        };
        let pools = DatabaseManager::with_poolers(self.pools, poolers.clone())?;
        let watch = match &directory {
            Some(d) if self.watch.enabled => Some(crate::watch::start(
                Arc::clone(d),
                self.shared_url.clone(),
                self.opened_from_url,
                self.watch.clone(),
            )),
            _ => None,
        };
        if let (Some(d), Some(_)) = (&directory, &watch) {
            // Until its first renewal the watcher vouches for no placement, and a
            // transaction refuses to run on one it cannot confirm: hand out a handle that
            // serves at once (or, after two heartbeats, one that fails closed until the
            // watcher gets through).
            let wait = Ord::min(self.watch.lease, self.watch.heartbeat * 2);
            let deadline = std::time::Instant::now() + wait;
            while d.lapsed() && std::time::Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
            if d.lapsed() {
                tracing::warn!("the directory watcher has not renewed its lease yet; transactions fail closed until it does");
            }
        }
        Ok(Tenancy {
            inner: Arc::new(Inner {
                shared,
                pooled,
                poolers,
                shared_url: self.shared_url,
                rewriter: Rewriter::new(registry),
                resolver,
                directory,
                pools: Some(pools),
                stats: Stats::default(),
                fence_wait: self.fence_wait,
                watch_options: self.watch,
                watch,
                rls: self.rls,
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
    /// A handle over an open connection to the shared database, knowing every table
    /// marked `#[tenant_scoped]`; every storefront is in the shared placement. Anything
    /// else (a directory, storefront databases, an explicit registry) is
    /// [`TenancyOptions`]'.
    pub fn new(shared: DatabaseConnection) -> Self {
        Self {
            inner: Arc::new(Inner {
                shared,
                pooled: None,
                poolers: Default::default(),
                shared_url: None,
                rewriter: Rewriter::new(Registry::from_entities()),
                resolver: Arc::new(AllShared),
                directory: None,
                pools: None,
                stats: Stats::default(),
                fence_wait: FENCE_WAIT,
                watch_options: WatchOptions::default(),
                watch: None,
                rls: None,
            }),
        }
    }

    /// A connection confined to `storefront`. Its placement is resolved on first use.
    pub fn connection(&self, storefront: StorefrontId) -> TenantConnection {
        TenantConnection::new(Arc::clone(&self.inner), storefront)
    }

    /// How long a statement refused by a move's fence is retried on the new placement.
    pub(crate) fn fence_wait(&self) -> Duration {
        self.inner.fence_wait
    }

    /// How this process follows the directory.
    pub(crate) fn watch_options(&self) -> &WatchOptions {
        &self.inner.watch_options
    }

    /// Stops this process's directory watcher and gives its lease up at once, so no
    /// cutover waits for it. Call it before a process exits (a process that just stops
    /// lets its lease run out, and a cutover meanwhile waits up to `process_lease`).
    /// The handle keeps working, but trusts no cached placement any more: each statement
    /// reads its storefront's placement from the directory table first.
    pub async fn shutdown(&self) {
        if let Some(watch) = &self.inner.watch {
            watch.shutdown().await;
        }
    }

    /// How long cached directory entries are trusted (zero without a directory).
    pub fn directory_ttl(&self) -> Duration {
        self.directory().map_or(Duration::ZERO, |d| d.ttl())
    }

    /// `url` as the framework reaches it for work that needs a session (DDL, migrations,
    /// moves): when it points at a [transaction pooler](TenancyOptions::transaction_pooler),
    /// the same URL at the server behind the pooler; otherwise `url` itself.
    pub fn direct_url(&self, url: &str) -> String {
        self.inner.poolers.direct(url)
    }

    /// The shared database's URL, when given to the builder (the direct one, when
    /// [`TenancyOptions::connect`] was given a pooler's).
    pub fn shared_url(&self) -> Option<&str> {
        self.inner.shared_url.as_deref()
    }

    /// The directory, when this handle uses one.
    pub fn directory(&self) -> Option<&Arc<Directory>> {
        self.inner.directory.as_ref()
    }

    /// Row-level security, when this handle has it on.
    pub fn row_level_security(&self) -> Option<&RowLevelSecurity> {
        self.inner.rls.as_ref()
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
    /// should never need it. With the shared database behind a transaction pooler, this
    /// is the direct connection to its server.
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

/// Building from a [`TenancyConfig`] (the seed's YAML file).
impl Tenancy {
    /// Connects to the configured shared database and builds the handle: directory (with
    /// `directory_cache` and the `unknown_storefronts` policy), tenant pools (budget,
    /// per-tenant size, timeouts), every `#[tenant_scoped]` entity.
    pub async fn connect(config: &TenancyConfig) -> Result<Tenancy, TenancyError> {
        Self::connect_with(config, Registry::from_entities()).await
    }

    /// [`Tenancy::connect`] with an explicit registry of scoped tables.
    pub async fn connect_with(
        config: &TenancyConfig,
        registry: Registry,
    ) -> Result<Tenancy, TenancyError> {
        let db = &config.tenant_strategy.database_config;
        let default = match config.tenant_strategy.unknown_storefronts {
            crate::config::UnknownStorefronts::Default => Some(Placement::Shared),
            crate::config::UnknownStorefronts::Reject => None,
        };
        let mut options = TenancyOptions::new();
        for pooler in &db.transaction_poolers {
            options = options.transaction_pooler(pooler.clone());
        }
        if let Some(rls) = db.row_level_security.to_options()? {
            options = options.row_level_security(rls);
        }
        options
            .registry(registry)
            .max_connections(db.shared_pool_size)
            .directory(db.directory_cache, default)
            .connection_budget(db.connection_budget)
            .max_connections_per_tenant(db.max_connections_per_tenant)
            .idle_timeout(db.idle_timeout)
            .acquire_timeout(db.acquire_timeout)
            .watch(db.watch_options())
            .connect(&db.shared_database_url)
            .await
    }
}
