//! The directory: who is where.
//!
//! The table `tenancy_tenants` in the shared database is the single truth of each
//! storefront's placement and state. [`Directory`] reads and writes it and keeps an
//! in-process cache (entries expire after the configured time, and a write through this
//! process refreshes its own entry at once). [`TenantResolver`] is the seed's
//! `TenantDatabaseResolver`; the directory is its default implementation.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, RwLock,
    },
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::{Alias, ColumnDef, Expr, ExprTrait, OnConflict, Query, Table},
    ConnectionTrait, DatabaseConnection, DbBackend, QueryResult, Statement, TransactionTrait,
};
use serde::Serialize;
use uuid::Uuid;

use crate::{
    backend::Dialect, tenant::validate_identifier, Placement, StorefrontId, TenancyError,
    TenantType,
};

/// The directory table's name.
pub(crate) const TABLE: &str = "tenancy_tenants";
/// One row, `(id = 1, epoch)`: the directory's epoch. Every change of the directory takes
/// the next one in its own transaction; the row's lock makes epochs commit in order.
pub(crate) const EPOCH: &str = "tenancy_directory_epoch";
/// Which storefront each epoch changed (the change feed; the last [`LOG_KEPT`] are kept).
pub(crate) const LOG: &str = "tenancy_directory_log";
/// How many epochs the change feed keeps; a process further behind forgets every cached
/// placement instead.
pub(crate) const LOG_KEPT: i64 = 10_000;
/// The PostgreSQL channel a directory change is announced on (the epoch is the payload).
pub(crate) const CHANNEL: &str = "tenancy_directory";

/// A storefront's lifecycle state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantState {
    /// Serving.
    Active,
    /// Being created; not yet served.
    Provisioning,
    /// Being moved between placements.
    Moving,
}

impl TenantState {
    fn as_str(self) -> &'static str {
        match self {
            TenantState::Active => "active",
            TenantState::Provisioning => "provisioning",
            TenantState::Moving => "moving",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(TenantState::Active),
            "provisioning" => Some(TenantState::Provisioning),
            "moving" => Some(TenantState::Moving),
            _ => None,
        }
    }
}

/// One row of the directory.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct TenantRecord {
    /// The storefront.
    pub storefront: StorefrontId,
    /// Where its rows are (serialised with a database URL's password hidden).
    #[serde(serialize_with = "crate::tenant::serialize_redacted")]
    pub placement: Placement,
    /// Its state.
    pub state: TenantState,
    /// Bumped on every change of the row.
    pub version: i64,
    /// The last migration applied to its schema or database (schema/database placements).
    pub migration: Option<String>,
    /// The error of the last failed migration run, if the last run failed.
    pub migration_error: Option<String>,
    /// When the row was last changed.
    pub updated_at: DateTime<Utc>,
}

/// Resolves where a storefront lives (the seed's `TenantDatabaseResolver`).
#[async_trait::async_trait]
pub trait TenantResolver: Send + Sync {
    /// The storefront's placement.
    async fn placement(&self, storefront: StorefrontId) -> Result<Placement, TenancyError>;

    /// The storefront's tenant type.
    async fn tenant_type(&self, storefront: StorefrontId) -> Result<TenantType, TenancyError> {
        Ok(self.placement(storefront).await?.tenant_type())
    }

    /// The storefront's schema, for schema placement.
    async fn schema_name(&self, storefront: StorefrontId) -> Result<Option<String>, TenancyError> {
        Ok(self
            .placement(storefront)
            .await?
            .schema()
            .map(str::to_owned))
    }

    /// Forgets any cached answer for `storefront`.
    fn invalidate(&self, _storefront: StorefrontId) {}
}

/// Every storefront in the shared placement (what a `Tenancy` without a directory uses).
#[derive(Debug, Default)]
pub struct AllShared;

#[async_trait::async_trait]
impl TenantResolver for AllShared {
    async fn placement(&self, _: StorefrontId) -> Result<Placement, TenancyError> {
        Ok(Placement::Shared)
    }
}

/// The directory table plus an in-process cache.
///
/// The cache is kept true by the change feed (see [`crate::watch`]) when the tenancy
/// watches the directory: each applied change bumps the cache's *generation*, and an
/// answer read from the database before a change was applied is never cached after it.
/// While this process's lease has run out, nothing cached is trusted: each lookup reads the
/// table.
pub struct Directory {
    shared: DatabaseConnection,
    cache: RwLock<HashMap<StorefrontId, (Instant, Arc<TenantRecord>)>>,
    ttl: Duration,
    default: Option<Placement>,
    /// Bumped each time changes from the feed are applied.
    generation: AtomicU64,
    /// The generation at which each storefront last changed, and at which everything was
    /// last forgotten (a transaction checks these without any I/O).
    changed_at: RwLock<HashMap<StorefrontId, u64>>,
    cleared_at: AtomicU64,
    /// Whether a process lease vouches for the cache (the watcher runs).
    leased: AtomicBool,
    /// The watcher was stopped: nothing is trusted, for good.
    stopped: AtomicBool,
    /// Until when the lease vouches for it: nanoseconds after `base` on this process's
    /// monotonic clock (0: not yet).
    confirmed_until: AtomicU64,
    base: Instant,
    /// Woken each time changes from the feed are applied: a write refused by a move's
    /// fence retries at once when the flip arrives instead of at its next back-off step.
    changes: tokio::sync::Notify,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("ttl", &self.ttl)
            .field("default", &self.default)
            .finish()
    }
}

fn col(name: &str) -> Alias {
    Alias::new(name)
}

/// The directory's epoch now, read on `conn`.
pub(crate) async fn epoch_on<C: ConnectionTrait>(conn: &C) -> Result<i64, TenancyError> {
    let backend = conn.get_database_backend();
    let row = conn
        .query_one_raw(Statement::from_string(
            backend,
            format!(
                "SELECT epoch FROM {} WHERE id = 1",
                Dialect(backend).quote(EPOCH)
            ),
        ))
        .await?;
    Ok(match row {
        Some(row) => row.try_get_by_index(0)?,
        None => 0,
    })
}

/// The changes after epoch `after`, in order, at most `limit`, read on `conn`:
/// `(epoch, storefront)`; a row whose storefront does not decode gives `None` (the reader
/// forgets everything for it).
pub(crate) async fn changes_since<C: ConnectionTrait>(
    conn: &C,
    after: i64,
    limit: u64,
) -> Result<Vec<(i64, Option<StorefrontId>)>, TenancyError> {
    let query = Query::select()
        .columns(["epoch", "storefront_id"].map(col))
        .from(col(LOG))
        .and_where(Expr::col(col("epoch")).gt(after))
        .order_by(col("epoch"), sea_orm::Order::Asc)
        .limit(limit)
        .to_owned();
    let rows = conn.query_all(&query).await?;
    rows.iter()
        .map(|row| {
            let epoch: i64 = row.try_get("", "epoch")?;
            let storefront = row
                .try_get::<Uuid>("", "storefront_id")
                .ok()
                .and_then(|id| StorefrontId::try_from(id).ok());
            Ok((epoch, storefront))
        })
        .collect()
}

impl Directory {
    /// A directory over the shared database. Unknown storefronts resolve to `default` if
    /// given, else to [`TenancyError::UnknownStorefront`]. Cached entries live `ttl`.
    pub fn new(shared: DatabaseConnection, ttl: Duration, default: Option<Placement>) -> Self {
        Self {
            shared,
            cache: RwLock::new(HashMap::new()),
            ttl,
            default,
            generation: AtomicU64::new(0),
            changed_at: RwLock::new(HashMap::new()),
            cleared_at: AtomicU64::new(0),
            leased: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            confirmed_until: AtomicU64::new(0),
            base: Instant::now(),
            changes: tokio::sync::Notify::new(),
        }
    }

    /// The cache's generation: bumped each time changes from the feed are applied. A
    /// placement resolved at an older generation may be stale.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Whether this process's lease has run out (or never started while the watcher runs):
    /// then no cached placement is trusted.
    pub(crate) fn lapsed(&self) -> bool {
        if !self.leased.load(Ordering::Acquire) {
            return false;
        }
        let until = self.confirmed_until.load(Ordering::Acquire);
        until == 0 || self.nanos(Instant::now()) >= until
    }

    fn nanos(&self, at: Instant) -> u64 {
        Ord::max(
            u64::try_from(at.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX),
            1,
        )
    }

    /// The watcher vouches for the cache from now on (until [`Self::confirm_until`]).
    pub(crate) fn start_lease(&self) {
        self.confirmed_until.store(0, Ordering::Release);
        self.leased.store(true, Ordering::Release);
    }

    /// The watcher stopped (the process gave its lease up): no cached placement is trusted
    /// from now on, since no cutover waits for this process any more.
    pub(crate) fn end_lease(&self) {
        self.stopped.store(true, Ordering::Release);
        self.confirmed_until.store(0, Ordering::Release);
    }

    /// Whether the watcher was stopped ([`Self::end_lease`]).
    pub(crate) fn stopped(&self) -> bool {
        self.stopped.load(Ordering::Acquire)
    }

    /// Whether `storefront`'s placement may have changed after generation `since` (its
    /// entry changed, or everything was forgotten).
    pub(crate) fn changed_since(&self, storefront: StorefrontId, since: u64) -> bool {
        if self.cleared_at.load(Ordering::Acquire) > since {
            return true;
        }
        self.changed_at
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&storefront)
            .is_some_and(|at| *at > since)
    }

    /// The lease was renewed with every change up to now applied: the cache is trusted
    /// until `until`.
    pub(crate) fn confirm_until(&self, until: Instant) {
        self.confirmed_until
            .store(self.nanos(until), Ordering::Release);
    }

    /// Forgets the cached entries of `changed` (every entry when `None`) and bumps the
    /// generation, so placements resolved before are resolved again.
    pub(crate) fn apply_changes(&self, changed: Option<&[StorefrontId]>) {
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        let generation = self.generation.load(Ordering::Acquire) + 1;
        match changed {
            Some(list) => {
                let mut at = self.changed_at.write().unwrap_or_else(|e| e.into_inner());
                for sf in list {
                    cache.remove(sf);
                    at.insert(*sf, generation);
                }
            }
            None => {
                cache.clear();
                self.changed_at
                    .write()
                    .unwrap_or_else(|e| e.into_inner())
                    .clear();
                self.cleared_at.store(generation, Ordering::Release);
            }
        }
        self.generation.store(generation, Ordering::Release);
        drop(cache);
        self.changes.notify_waiters();
    }

    /// Resolves once changes from the feed are applied after the call (or after
    /// `since`, the generation the caller last saw, if that is older).
    pub(crate) async fn changed(&self, since: u64) {
        let notified = self.changes.notified();
        if self.generation() != since {
            return;
        }
        notified.await;
    }

    /// The shared database this directory lives in.
    pub(crate) fn shared(&self) -> &DatabaseConnection {
        &self.shared
    }

    /// How long a cached entry is trusted.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Creates the directory table if it does not exist.
    pub async fn install(&self) -> Result<(), TenancyError> {
        let mut table = Table::create();
        table
            .table(col(TABLE))
            .if_not_exists()
            .col(
                ColumnDef::new(col("storefront_id"))
                    .uuid()
                    .not_null()
                    .primary_key(),
            )
            .col(ColumnDef::new(col("tenant_type")).string_len(16).not_null())
            .col(ColumnDef::new(col("schema_name")).string_len(63).null())
            .col(ColumnDef::new(col("database_url")).text().null())
            .col(ColumnDef::new(col("state")).string_len(16).not_null())
            .col(ColumnDef::new(col("version")).big_integer().not_null())
            .col(ColumnDef::new(col("migration")).string_len(255).null())
            .col(ColumnDef::new(col("migration_error")).text().null())
            .col(
                ColumnDef::new(col("updated_at"))
                    .timestamp_with_time_zone()
                    .not_null(),
            );
        self.shared.execute(&table).await?;
        let epoch = Table::create()
            .table(col(EPOCH))
            .if_not_exists()
            .col(ColumnDef::new(col("id")).integer().not_null().primary_key())
            .col(ColumnDef::new(col("epoch")).big_integer().not_null())
            .to_owned();
        self.shared.execute(&epoch).await?;
        let log = Table::create()
            .table(col(LOG))
            .if_not_exists()
            .col(
                ColumnDef::new(col("epoch"))
                    .big_integer()
                    .not_null()
                    .primary_key(),
            )
            .col(ColumnDef::new(col("storefront_id")).uuid().not_null())
            .to_owned();
        self.shared.execute(&log).await?;
        let dialect = Dialect(self.backend());
        let (insert, ignore) = dialect.insert_ignore();
        self.shared
            .execute_unprepared(&format!(
                "{insert} {} (id, epoch) VALUES (1, 0){ignore}",
                dialect.quote(EPOCH)
            ))
            .await?;
        crate::watch::install(&self.shared).await?;
        Ok(())
    }

    /// Takes the directory's next epoch for a change of `storefront`, on `conn`: a
    /// transaction that also makes the change (the epoch row stays locked until it
    /// commits, so epochs commit in order and a process that has read epoch `e` has seen
    /// every change up to `e`). On PostgreSQL the epoch is announced when it commits.
    pub(crate) async fn bump<C: ConnectionTrait>(
        &self,
        conn: &C,
        storefront: StorefrontId,
    ) -> Result<i64, TenancyError> {
        let backend = self.backend();
        let dialect = Dialect(backend);
        if backend == DbBackend::Postgres {
            // One directory change waits for another's commit at most this long (a flip
            // stalled with the row locked must not hold every other cutover's fence up).
            conn.execute_unprepared("SET LOCAL lock_timeout = '10s'")
                .await?;
        }
        let bumped = conn
            .execute_unprepared(&format!(
                "UPDATE {} SET epoch = epoch + 1 WHERE id = 1",
                dialect.quote(EPOCH)
            ))
            .await?;
        if bumped.rows_affected() != 1 {
            return Err(TenancyError::Refused {
                table: EPOCH.into(),
                reason: "the directory's epoch row is missing (Directory::install creates it)"
                    .into(),
            });
        }
        let epoch = epoch_on(conn).await?;
        let insert = Query::insert()
            .into_table(col(LOG))
            .columns(["epoch", "storefront_id"].map(col))
            .values_panic([epoch.into(), (*storefront.as_uuid()).into()])
            .to_owned();
        conn.execute(&insert).await?;
        let prune = Query::delete()
            .from_table(col(LOG))
            .and_where(Expr::col(col("epoch")).lte(epoch - LOG_KEPT))
            .to_owned();
        conn.execute(&prune).await?;
        if backend == DbBackend::Postgres {
            conn.execute_raw(Statement::from_sql_and_values(
                backend,
                "SELECT pg_notify($1, $2)",
                [CHANNEL.into(), epoch.to_string().into()],
            ))
            .await?;
        }
        Ok(epoch)
    }

    /// The directory's epoch now.
    pub(crate) async fn epoch(&self) -> Result<i64, TenancyError> {
        epoch_on(&self.shared).await
    }

    fn backend(&self) -> DbBackend {
        self.shared.get_database_backend()
    }

    fn parse(row: &QueryResult) -> Result<TenantRecord, TenancyError> {
        let id: Uuid = row.try_get("", "storefront_id")?;
        let kind: String = row.try_get("", "tenant_type")?;
        let schema: Option<String> = row.try_get("", "schema_name")?;
        let url: Option<String> = row.try_get("", "database_url")?;
        let state: String = row.try_get("", "state")?;
        let storefront = StorefrontId::try_from(id)?;
        let bad = |what: &str| TenancyError::Refused {
            table: TABLE.into(),
            reason: format!("storefront {storefront}: {what}"),
        };
        let placement = match kind.as_str() {
            "shared" => Placement::Shared,
            "schema" => Placement::Schema {
                schema: schema.ok_or_else(|| bad("schema placement without schema_name"))?,
            },
            "database" => Placement::Database {
                url: url.ok_or_else(|| bad("database placement without database_url"))?,
            },
            other => return Err(bad(&format!("unknown tenant_type `{other}`"))),
        };
        Ok(TenantRecord {
            storefront,
            placement,
            state: TenantState::parse(&state)
                .ok_or_else(|| bad(&format!("unknown state `{state}`")))?,
            version: row.try_get("", "version")?,
            migration: row.try_get("", "migration")?,
            migration_error: row.try_get("", "migration_error")?,
            updated_at: row.try_get("", "updated_at")?,
        })
    }

    fn select() -> sea_orm::sea_query::SelectStatement {
        Query::select()
            .columns(
                [
                    "storefront_id",
                    "tenant_type",
                    "schema_name",
                    "database_url",
                    "state",
                    "version",
                    "migration",
                    "migration_error",
                    "updated_at",
                ]
                .map(col),
            )
            .from(col(TABLE))
            .to_owned()
    }

    /// The storefront's row, read from the database (not the cache).
    pub async fn get(
        &self,
        storefront: StorefrontId,
    ) -> Result<Option<TenantRecord>, TenancyError> {
        let query = Self::select()
            .and_where(Expr::col(col("storefront_id")).eq(*storefront.as_uuid()))
            .to_owned();
        let generation = self.generation();
        let row = self.shared.query_one(&query).await?;
        let record = row.as_ref().map(Self::parse).transpose()?;
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if self.generation() != generation {
            // A change was applied while this read ran: the answer may predate it, so it
            // is returned (to a caller that began before the change) but not cached.
            cache.remove(&storefront);
            return Ok(record);
        }
        match &record {
            Some(r) => {
                cache.insert(storefront, (Instant::now(), Arc::new(r.clone())));
            }
            None => {
                cache.remove(&storefront);
            }
        }
        Ok(record)
    }

    /// Every storefront, ordered by id.
    pub async fn list(&self) -> Result<Vec<TenantRecord>, TenancyError> {
        let query = Self::select()
            .order_by(col("storefront_id"), sea_orm::Order::Asc)
            .to_owned();
        let rows = self.shared.query_all(&query).await?;
        rows.iter().map(Self::parse).collect()
    }

    /// The storefront's record, from the cache when fresh.
    pub async fn record(
        &self,
        storefront: StorefrontId,
    ) -> Result<Option<Arc<TenantRecord>>, TenancyError> {
        if self.lapsed() {
            // No lease vouches for the cache: confirm the placement from the table.
            return Ok(self.get(storefront).await?.map(Arc::new));
        }
        if let Some((at, record)) = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&storefront)
        {
            if at.elapsed() < self.ttl {
                return Ok(Some(Arc::clone(record)));
            }
        }
        Ok(self.get(storefront).await?.map(Arc::new))
    }

    /// Inserts or replaces the storefront's row (its version is bumped, and so is the
    /// directory's epoch, which every watching process follows).
    pub async fn put(
        &self,
        storefront: StorefrontId,
        placement: &Placement,
        state: TenantState,
    ) -> Result<(), TenancyError> {
        self.flip(storefront, placement, state).await.map(|_| ())
    }

    /// [`Self::put`], returning the epoch the change took (a cutover waits for every
    /// process to acknowledge it).
    pub(crate) async fn flip(
        &self,
        storefront: StorefrontId,
        placement: &Placement,
        state: TenantState,
    ) -> Result<i64, TenancyError> {
        let txn = self.shared.begin().await?;
        let epoch = self.put_on(&txn, storefront, placement, state).await?;
        txn.commit().await?;
        self.get(storefront).await?;
        Ok(epoch)
    }

    /// Marks an active storefront moving, on `conn` (the transaction that records the move):
    /// `false` when it was not active (another move claimed it first).
    pub(crate) async fn claim_for_move<C: ConnectionTrait>(
        &self,
        conn: &C,
        storefront: StorefrontId,
    ) -> Result<bool, TenancyError> {
        let update = Query::update()
            .table(col(TABLE))
            .value(col("state"), TenantState::Moving.as_str())
            .value(col("updated_at"), Utc::now())
            .and_where(Expr::col(col("storefront_id")).eq(*storefront.as_uuid()))
            .and_where(Expr::col(col("state")).eq(TenantState::Active.as_str()))
            .to_owned();
        // A state change, not a placement change: no epoch (open transactions of the
        // storefront need not start again because a move began).
        Ok(conn.execute(&update).await?.rows_affected() == 1)
    }

    /// [`Self::put`] on `conn` (a transaction of the shared database), without refreshing
    /// this process's cache: the caller does once the transaction commits. Returns the
    /// epoch the change took.
    pub(crate) async fn put_on<C: ConnectionTrait>(
        &self,
        conn: &C,
        storefront: StorefrontId,
        placement: &Placement,
        state: TenantState,
    ) -> Result<i64, TenancyError> {
        if let Some(schema) = placement.schema() {
            validate_identifier(schema)?;
        }
        let (schema, url) = match placement {
            Placement::Shared => (None, None),
            Placement::Schema { schema } => (Some(schema.clone()), None),
            Placement::Database { url } => (None, Some(url.clone())),
        };
        let insert = Query::insert()
            .into_table(col(TABLE))
            .columns(
                [
                    "storefront_id",
                    "tenant_type",
                    "schema_name",
                    "database_url",
                    "state",
                    "version",
                    "updated_at",
                ]
                .map(col),
            )
            .values_panic([
                (*storefront.as_uuid()).into(),
                placement.tenant_type().to_string().into(),
                schema.into(),
                url.into(),
                state.as_str().into(),
                1i64.into(),
                Utc::now().into(),
            ])
            .on_conflict(
                OnConflict::column(col("storefront_id"))
                    .update_columns(
                        [
                            "tenant_type",
                            "schema_name",
                            "database_url",
                            "state",
                            "updated_at",
                        ]
                        .map(col),
                    )
                    .value(
                        col("version"),
                        Expr::col((col(TABLE), col("version"))).add(1),
                    )
                    .to_owned(),
            )
            .to_owned();
        let mut stmt = self.backend().build(&insert);
        if self.backend() == DbBackend::MySql {
            // MySQL has no table-qualified reference to the old row in ON DUPLICATE KEY.
            stmt.sql = stmt
                .sql
                .replace("`tenancy_tenants`.`version` + ?", "`version` + ?");
        }
        conn.execute_raw(stmt).await?;
        self.bump(conn, storefront).await
    }

    /// Records a successful migration run: the storefront is now at `migration` (`None`:
    /// no migration applied), and the last error is cleared.
    pub async fn record_migration(
        &self,
        storefront: StorefrontId,
        migration: Option<&str>,
    ) -> Result<(), TenancyError> {
        self.update_migration(storefront, Some(migration), None)
            .await
    }

    /// Records a failed migration run; the recorded version is left as it was.
    pub async fn record_migration_error(
        &self,
        storefront: StorefrontId,
        error: &str,
    ) -> Result<(), TenancyError> {
        self.update_migration(storefront, None, Some(error)).await
    }

    async fn update_migration(
        &self,
        storefront: StorefrontId,
        migration: Option<Option<&str>>,
        error: Option<&str>,
    ) -> Result<(), TenancyError> {
        let mut update = Query::update();
        update
            .table(col(TABLE))
            .value(col("migration_error"), error.map(str::to_owned))
            .value(col("updated_at"), Utc::now())
            .and_where(Expr::col(col("storefront_id")).eq(*storefront.as_uuid()));
        if let Some(m) = migration {
            update.value(col("migration"), m.map(str::to_owned));
        }
        self.shared.execute(&update).await?;
        self.invalidate_entry(storefront);
        Ok(())
    }

    /// Deletes the storefront's row.
    pub async fn remove(&self, storefront: StorefrontId) -> Result<(), TenancyError> {
        let delete = Query::delete()
            .from_table(col(TABLE))
            .and_where(Expr::col(col("storefront_id")).eq(*storefront.as_uuid()))
            .to_owned();
        let txn = self.shared.begin().await?;
        txn.execute(&delete).await?;
        self.bump(&txn, storefront).await?;
        txn.commit().await?;
        self.invalidate_entry(storefront);
        Ok(())
    }

    fn invalidate_entry(&self, storefront: StorefrontId) {
        self.cache
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&storefront);
    }
}

#[async_trait::async_trait]
impl TenantResolver for Directory {
    async fn placement(&self, storefront: StorefrontId) -> Result<Placement, TenancyError> {
        match self.record(storefront).await? {
            Some(record) => Ok(record.placement.clone()),
            None => self
                .default
                .clone()
                .ok_or_else(|| TenancyError::UnknownStorefront {
                    storefront: storefront.to_string(),
                }),
        }
    }

    fn invalidate(&self, storefront: StorefrontId) {
        self.invalidate_entry(storefront);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write refused by a fence waits on [`Directory::changed`]: it must wake when a
    /// change is applied after the refusal, and not wait at all when one was applied
    /// between the refusal and the wait (the generation it saw has moved).
    #[tokio::test]
    async fn a_waiter_wakes_on_the_next_change_and_never_misses_one() {
        let directory = Arc::new(Directory::new(
            DatabaseConnection::default(),
            Duration::from_secs(30),
            None,
        ));
        let bound = Duration::from_secs(5);
        // Applied before the wait began, after the generation was read: no wait.
        let seen = directory.generation();
        directory.apply_changes(Some(&[StorefrontId::new_random()]));
        tokio::time::timeout(bound, directory.changed(seen))
            .await
            .expect("a change applied since `seen` ends the wait at once");
        // Applied while waiting: the waiter wakes.
        let seen = directory.generation();
        let waiting = tokio::spawn({
            let directory = Arc::clone(&directory);
            async move { directory.changed(seen).await }
        });
        tokio::task::yield_now().await;
        directory.apply_changes(None);
        tokio::time::timeout(bound, waiting)
            .await
            .expect("the change woke the waiter")
            .expect("waiter");
        // Nothing applied: it keeps waiting.
        let seen = directory.generation();
        assert!(
            tokio::time::timeout(Duration::from_millis(50), directory.changed(seen))
                .await
                .is_err(),
            "woke with no change"
        );
    }
}
