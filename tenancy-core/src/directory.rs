//! The directory: who is where.
//!
//! The table `tenancy_tenants` in the shared database is the single truth of each
//! storefront's placement and state. [`Directory`] reads and writes it and keeps an
//! in-process cache (entries expire after the configured time, and a write through this
//! process refreshes its own entry at once). [`TenantResolver`] is the seed's
//! `TenantDatabaseResolver`; the directory is its default implementation.

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::{Alias, ColumnDef, Expr, ExprTrait, OnConflict, Query, Table},
    ConnectionTrait, DatabaseConnection, DbBackend, QueryResult,
};
use serde::Serialize;
use uuid::Uuid;

use crate::{tenant::validate_identifier, Placement, StorefrontId, TenancyError, TenantType};

/// The directory table's name.
pub(crate) const TABLE: &str = "tenancy_tenants";

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
    /// Where its rows are.
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
pub struct Directory {
    shared: DatabaseConnection,
    cache: RwLock<HashMap<StorefrontId, (Instant, Arc<TenantRecord>)>>,
    ttl: Duration,
    default: Option<Placement>,
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

impl Directory {
    /// A directory over the shared database. Unknown storefronts resolve to `default` if
    /// given, else to [`TenancyError::UnknownStorefront`]. Cached entries live `ttl`.
    pub fn new(shared: DatabaseConnection, ttl: Duration, default: Option<Placement>) -> Self {
        Self {
            shared,
            cache: RwLock::new(HashMap::new()),
            ttl,
            default,
        }
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
        Ok(())
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
        let row = self.shared.query_one(&query).await?;
        let record = row.as_ref().map(Self::parse).transpose()?;
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
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

    /// Inserts or replaces the storefront's row (its version is bumped).
    pub async fn put(
        &self,
        storefront: StorefrontId,
        placement: &Placement,
        state: TenantState,
    ) -> Result<(), TenancyError> {
        self.put_on(&self.shared, storefront, placement, state)
            .await?;
        self.get(storefront).await?;
        Ok(())
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
        Ok(conn.execute(&update).await?.rows_affected() == 1)
    }

    /// [`Self::put`] on `conn` (a transaction of the shared database), without refreshing
    /// this process's cache: the caller does once the transaction commits.
    pub(crate) async fn put_on<C: ConnectionTrait>(
        &self,
        conn: &C,
        storefront: StorefrontId,
        placement: &Placement,
        state: TenantState,
    ) -> Result<(), TenancyError> {
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
        Ok(())
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
        self.shared.execute(&delete).await?;
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
