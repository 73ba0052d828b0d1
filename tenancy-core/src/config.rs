//! Configuration: the seed's `config/tenant_strategy.yaml`, plus what the framework adds.
//!
//! Loaded (with the `config` feature) by figment from a YAML or TOML file, then environment variables prefixed
//! `TENANCY_` (nested keys separated by `__`, relative to `tenant_strategy`: e.g.
//! `TENANCY_DATABASE_CONFIG__SHARED_DATABASE_URL`). Unknown keys are errors, so a typo is
//! caught; every error names the key.
//!
//! ```
//! # #[cfg(feature = "config")] {
//! use tenancy_core::config::TenancyConfig;
//! let yaml = r#"
//! tenant_strategy:
//!   default_type: shared
//!   migration_thresholds: { customers: 100000, orders: 500000, avg_query_time: 200ms }
//!   database_config:
//!     shared_database_url: "postgres://postgres@127.0.0.1:5432/smartseller"
//!     tenant_database_pattern: "postgres://postgres@127.0.0.1:5432/storefront_{storefront_id}"
//!   migration_config: { dual_write_duration: 24h }
//! "#;
//! let config = TenancyConfig::from_yaml_str(yaml).unwrap();
//! assert_eq!(config.tenant_strategy.migration_thresholds.avg_query_time.as_millis(), 200);
//! let err = TenancyConfig::from_yaml_str(&yaml.replace("avg_query_time: 200ms", "avg_query_time: soon")).unwrap_err();
//! assert!(err.to_string().contains("avg_query_time"), "{err}");
//! # }
//! ```

#[cfg(feature = "config")]
use std::path::Path;
use std::{collections::BTreeMap, time::Duration};

#[cfg(feature = "config")]
use figment::{
    providers::{Env, Format, Toml, Yaml},
    Figment,
};
use serde::{Deserialize, Deserializer, Serialize};

use crate::{Placement, StorefrontId, TenancyError, TenantType};

/// The whole file: everything lives under `tenant_strategy`, as in the seed.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TenancyConfig {
    /// The strategy.
    pub tenant_strategy: TenantStrategy,
}

/// The seed's `tenant_strategy`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TenantStrategy {
    /// Placement of new storefronts (and of unknown ones, when `unknown_storefronts` is
    /// `default`).
    #[serde(default = "default_type")]
    pub default_type: TenantType,
    /// `reject` (default): an unknown storefront is an error. `default`: it resolves to
    /// `default_type` (shared only: other placements need provisioning).
    #[serde(default)]
    pub unknown_storefronts: UnknownStorefronts,
    /// Size and latency thresholds that feed the advisor.
    #[serde(default)]
    pub migration_thresholds: MigrationThresholds,
    /// Placement decisions by storefront id, which the advisor follows.
    #[serde(default)]
    pub tenant_overrides: BTreeMap<StorefrontId, TenantType>,
    /// Databases and connections.
    pub database_config: DatabaseConfig,
    /// Online moves.
    #[serde(default)]
    pub migration_config: MigrationConfig,
    /// Monthly cost of one storefront in each placement, for the advisor's estimates.
    #[serde(default)]
    pub costs: Costs,
}

fn default_type() -> TenantType {
    TenantType::Shared
}

/// What to do with a storefront the directory does not know.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UnknownStorefronts {
    /// An error.
    #[default]
    Reject,
    /// The default placement.
    Default,
}

/// The seed's `migration_thresholds`.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MigrationThresholds {
    /// Customers above which a storefront is large.
    pub customers: u64,
    /// Orders above which a storefront is large.
    pub orders: u64,
    /// Mean query time above which a storefront is large.
    #[serde(with = "duration")]
    pub avg_query_time: Duration,
    /// The fraction of a threshold above which a storefront is medium (schema).
    #[serde(default = "default_medium")]
    pub medium_fraction: f64,
    /// The table counted for `customers`.
    #[serde(default = "default_customers_table")]
    pub customers_table: String,
    /// The table counted for `orders`.
    #[serde(default = "default_orders_table")]
    pub orders_table: String,
}

fn default_customers_table() -> String {
    "customers".into()
}
fn default_orders_table() -> String {
    "orders".into()
}

fn default_medium() -> f64 {
    0.1
}

impl Default for MigrationThresholds {
    fn default() -> Self {
        Self {
            customers: 100_000,
            orders: 500_000,
            avg_query_time: Duration::from_millis(200),
            medium_fraction: default_medium(),
            customers_table: default_customers_table(),
            orders_table: default_orders_table(),
        }
    }
}

/// The seed's `database_config`, plus the framework's pool and naming settings.
///
/// `Debug` hides the passwords of both URLs.
#[derive(Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// The shared database.
    pub shared_database_url: String,
    /// URL of a storefront's own database; must contain `{storefront_id}`.
    #[serde(default)]
    pub tenant_database_pattern: Option<String>,
    /// Connections per tenant pool.
    #[serde(default = "default_per_tenant")]
    pub max_connections_per_tenant: u32,
    /// Connections of the shared pool.
    #[serde(default = "default_shared_pool")]
    pub shared_pool_size: u32,
    /// Server connections all tenant pools together may hold.
    #[serde(default = "default_budget")]
    pub connection_budget: u32,
    /// How long a request waits for the budget.
    #[serde(default = "default_acquire", with = "duration")]
    pub acquire_timeout: Duration,
    /// A tenant pool unused this long is closed.
    #[serde(default = "default_idle", with = "duration")]
    pub idle_timeout: Duration,
    /// Name of a storefront's schema; must contain `{storefront_id}`.
    #[serde(default = "default_schema_pattern")]
    pub schema_name_pattern: String,
    /// How long a process trusts its cached directory entry when it does not watch the
    /// directory (the last fallback when it does).
    #[serde(default = "default_cache", with = "duration")]
    pub directory_cache: Duration,
    /// Whether each process follows the directory's change feed and holds a lease, so a
    /// placement change reaches it within milliseconds and a cutover waits for it (see
    /// `tenancy_core::watch`).
    #[serde(default = "default_watch")]
    pub directory_watch: bool,
    /// How often the feed is read where nothing announces a change (MySQL/MariaDB, SQLite).
    #[serde(default = "default_poll", with = "duration")]
    pub directory_poll_interval: Duration,
    /// How long a renewal keeps a process's lease.
    #[serde(default = "default_lease", with = "duration")]
    pub process_lease: Duration,
    /// How often a process renews its lease (less than `process_lease`).
    #[serde(default = "default_heartbeat", with = "duration")]
    pub process_heartbeat: Duration,
    /// The longest a cutover waits for every process to acknowledge it (at least
    /// `process_lease`).
    #[serde(default = "default_barrier", with = "duration")]
    pub cutover_barrier_wait: Duration,
    /// The second fence: PostgreSQL row-level security (see `tenancy_core::rls`).
    #[serde(default)]
    pub row_level_security: RowLevelSecurityConfig,
    /// Transaction poolers (PgBouncer in transaction mode) in front of PostgreSQL servers,
    /// each `{address: host:port, direct: host:port}` (see `tenancy_core::pooler`).
    #[serde(default)]
    pub transaction_poolers: Vec<crate::TransactionPooler>,
    /// The database servers of the fleet, each `{name, url, capacity, max_storefronts}`
    /// (see `tenancy_core::servers`): new storefront databases go on the least loaded, and
    /// the rebalancer moves storefront databases between them.
    #[serde(default)]
    pub servers: Vec<crate::servers::ServerConfig>,
}

/// `database_config.row_level_security`: off unless `enabled`.
///
/// ```yaml
/// row_level_security:
///   enabled: true
///   role: shop_app   # storefront statements run as this role (SET LOCAL ROLE)
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct RowLevelSecurityConfig {
    /// Turns it on (PostgreSQL only): the handle refuses to start unless the policies are
    /// in place, and every storefront statement tells the database its storefront.
    #[serde(default)]
    pub enabled: bool,
    /// The application role storefront statements take; without it, the role the shared
    /// URL logs in as must be one the policies bind.
    #[serde(default)]
    pub role: Option<String>,
}

impl RowLevelSecurityConfig {
    /// The setting as [`RowLevelSecurity`](crate::rls::RowLevelSecurity), `None` when off;
    /// a malformed role is an error naming the key.
    pub fn to_options(&self) -> Result<Option<crate::rls::RowLevelSecurity>, TenancyError> {
        if !self.enabled {
            return Ok(None);
        }
        let rls = crate::rls::RowLevelSecurity::new();
        match &self.role {
            None => Ok(Some(rls)),
            Some(role) => rls.role(role).map(Some).map_err(|e| TenancyError::Config {
                key: "tenant_strategy.database_config.row_level_security.role".into(),
                message: e.to_string(),
            }),
        }
    }
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Every field by name: one added later must be placed here, secret or not.
        let Self {
            shared_database_url,
            tenant_database_pattern,
            max_connections_per_tenant,
            shared_pool_size,
            connection_budget,
            acquire_timeout,
            idle_timeout,
            schema_name_pattern,
            directory_cache,
            directory_watch,
            directory_poll_interval,
            process_lease,
            process_heartbeat,
            cutover_barrier_wait,
            row_level_security,
            transaction_poolers,
            servers,
        } = self;
        use crate::backend::redact;
        f.debug_struct("DatabaseConfig")
            .field("shared_database_url", &redact(shared_database_url))
            .field(
                "tenant_database_pattern",
                &tenant_database_pattern.as_deref().map(redact),
            )
            .field("max_connections_per_tenant", max_connections_per_tenant)
            .field("shared_pool_size", shared_pool_size)
            .field("connection_budget", connection_budget)
            .field("acquire_timeout", acquire_timeout)
            .field("idle_timeout", idle_timeout)
            .field("schema_name_pattern", schema_name_pattern)
            .field("directory_cache", directory_cache)
            .field("directory_watch", directory_watch)
            .field("directory_poll_interval", directory_poll_interval)
            .field("process_lease", process_lease)
            .field("process_heartbeat", process_heartbeat)
            .field("cutover_barrier_wait", cutover_barrier_wait)
            .field("row_level_security", row_level_security)
            .field("transaction_poolers", transaction_poolers)
            .field("servers", servers)
            .finish()
    }
}

impl DatabaseConfig {
    /// The servers, checked (errors name `database_config.servers[i]`).
    pub fn servers(&self) -> Result<crate::servers::Servers, TenancyError> {
        crate::servers::Servers::new(self.servers.clone())
    }

    /// The watch keys as [`WatchOptions`](crate::WatchOptions).
    pub fn watch_options(&self) -> crate::WatchOptions {
        crate::WatchOptions {
            enabled: self.directory_watch,
            poll_interval: self.directory_poll_interval,
            lease: self.process_lease,
            heartbeat: self.process_heartbeat,
            barrier_wait: self.cutover_barrier_wait,
        }
    }
}

fn default_watch() -> bool {
    true
}
fn default_poll() -> Duration {
    crate::WatchOptions::default().poll_interval
}
fn default_lease() -> Duration {
    crate::WatchOptions::default().lease
}
fn default_heartbeat() -> Duration {
    crate::WatchOptions::default().heartbeat
}
fn default_barrier() -> Duration {
    crate::WatchOptions::default().barrier_wait
}

fn default_per_tenant() -> u32 {
    5
}
fn default_shared_pool() -> u32 {
    10
}
fn default_budget() -> u32 {
    100
}
fn default_acquire() -> Duration {
    Duration::from_secs(10)
}
fn default_idle() -> Duration {
    Duration::from_secs(300)
}
fn default_schema_pattern() -> String {
    "storefront_{storefront_id}".into()
}
fn default_cache() -> Duration {
    Duration::from_secs(30)
}

/// The seed's `migration_config` (online moves).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MigrationConfig {
    /// Rows per copy batch.
    pub batch_size: u32,
    /// Validate counts and checksums before cutover.
    pub validation_enabled: bool,
    /// Keep the old side current so a move can be rolled back.
    pub rollback_enabled: bool,
    /// How long the old copy is kept after cutover.
    #[serde(with = "duration")]
    pub dual_write_duration: Duration,
    /// The longest a cutover may expect to fence writes: it fences only once the backlog
    /// can be replayed within it.
    #[serde(with = "duration")]
    pub pause_budget: Duration,
    /// How long a cutover keeps catching up while the backlog does not fit the pause
    /// budget; after it, the first catch-up window that ends with the backlog no smaller
    /// reports that the move cannot converge.
    #[serde(with = "duration")]
    pub converge_within: Duration,
    /// How far from its capacity share a server's load may be before the rebalancer moves
    /// storefronts (0.15: within +-15%).
    pub rebalance_tolerance: f64,
    /// Moves a rebalance or a drain runs at once.
    pub concurrent_moves: u32,
}

impl Default for MigrationConfig {
    fn default() -> Self {
        Self {
            batch_size: 1000,
            validation_enabled: true,
            rollback_enabled: true,
            dual_write_duration: Duration::from_secs(24 * 3600),
            pause_budget: Duration::from_millis(500),
            converge_within: Duration::from_secs(60),
            rebalance_tolerance: 0.15,
            concurrent_moves: 2,
        }
    }
}

/// Monthly cost of one storefront per placement (any currency).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct Costs {
    /// Shared placement.
    pub shared: f64,
    /// Schema placement.
    pub schema: f64,
    /// Database placement.
    pub database: f64,
}

impl Default for Costs {
    fn default() -> Self {
        Self {
            shared: 1.0,
            schema: 5.0,
            database: 50.0,
        }
    }
}

impl Costs {
    /// The cost of a placement kind.
    pub fn of(&self, t: TenantType) -> f64 {
        match t {
            TenantType::Shared => self.shared,
            TenantType::Schema => self.schema,
            TenantType::Database => self.database,
        }
    }
}

/// `"200ms"`, `"24h"`, `"1h 30m"` (humantime), or a number of seconds.
mod duration {
    use super::*;

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Text(String),
            Seconds(u64),
        }
        match Raw::deserialize(d)? {
            Raw::Seconds(s) => Ok(Duration::from_secs(s)),
            Raw::Text(t) => humantime::parse_duration(t.trim()).map_err(|e| {
                serde::de::Error::custom(format!(
                    "invalid duration `{t}`: {e} (write e.g. 200ms, 30s, 24h)"
                ))
            }),
        }
    }

    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

/// Top-level keys of `tenant_strategy` that environment variables may set.
/// (`TENANCY_CONFIG`, the file's path for the CLI, is not a key.)
#[cfg(feature = "config")]
const ENV_SECTIONS: [&str; 8] = [
    "default_type",
    "unknown_storefronts",
    "migration_thresholds",
    "tenant_overrides",
    "database_config",
    "migration_config",
    "costs",
    "config",
];

#[cfg(feature = "config")]
fn config_error(err: figment::Error) -> TenancyError {
    let key = err.path.join(".");
    let message = err.kind.to_string();
    let mut message = message;
    if let Some(source) = &err.metadata {
        message = format!("{message} (in {})", source.name);
    }
    TenancyError::Config {
        key: if key.is_empty() {
            "(top level)".into()
        } else {
            key
        },
        message,
    }
}

/// Loading from files and text: the `config` feature (figment).
#[cfg(feature = "config")]
impl TenancyConfig {
    fn load(figment: Figment) -> Result<Self, TenancyError> {
        let env = Env::prefixed("TENANCY_")
            .split("__")
            .filter(|k| {
                let k = k.as_str().to_ascii_lowercase();
                ENV_SECTIONS.iter().any(|s| k.starts_with(s)) && k != "config"
            })
            .map(|k| format!("tenant_strategy.{k}").into());
        let config: TenancyConfig = figment.merge(env).extract().map_err(config_error)?;
        config.validate()?;
        Ok(config)
    }

    /// Loads a YAML (`.yaml`, `.yml`) or TOML (`.toml`) file, then `TENANCY_` variables.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Self, TenancyError> {
        let path = path.as_ref();
        if !path.exists() {
            return Err(TenancyError::Config {
                key: "(file)".into(),
                message: format!("{} does not exist", path.display()),
            });
        }
        let figment = match path.extension().and_then(|e| e.to_str()) {
            Some("toml") => Figment::new().merge(Toml::file(path)),
            _ => Figment::new().merge(Yaml::file(path)),
        };
        Self::load(figment)
    }

    /// Parses YAML text, then `TENANCY_` variables.
    pub fn from_yaml_str(yaml: &str) -> Result<Self, TenancyError> {
        Self::load(Figment::new().merge(Yaml::string(yaml)))
    }

    /// Parses TOML text, then `TENANCY_` variables.
    pub fn from_toml_str(toml: &str) -> Result<Self, TenancyError> {
        Self::load(Figment::new().merge(Toml::string(toml)))
    }
}

impl TenancyConfig {
    /// Checks what serde cannot: patterns, positive limits, fractions.
    pub fn validate(&self) -> Result<(), TenancyError> {
        let s = &self.tenant_strategy;
        let bad = |key: &str, message: String| {
            Err(TenancyError::Config {
                key: format!("tenant_strategy.{key}"),
                message,
            })
        };
        let db = &s.database_config;
        for (i, pooler) in db.transaction_poolers.iter().enumerate() {
            if let Err(TenancyError::Config { key, message }) = pooler.validate() {
                let field = key.rsplit('.').next().unwrap_or("address");
                return bad(
                    &format!("database_config.transaction_poolers[{i}].{field}"),
                    message,
                );
            }
        }
        let servers = db.servers()?;
        if let Ok(shared) = crate::DatabaseUrl::parse(&db.shared_database_url) {
            for (i, server) in servers.iter().enumerate() {
                let theirs = crate::DatabaseUrl::parse(&server.url)?.backend();
                if theirs != shared.backend() {
                    return bad(
                        &format!("database_config.servers[{i}]"),
                        format!(
                            "server {} is {theirs:?} but the shared database is {:?}: one fleet, one backend",
                            server.name,
                            shared.backend()
                        ),
                    );
                }
            }
        }
        if let Some(p) = &db.tenant_database_pattern {
            if !p.contains("{storefront_id}") {
                return bad(
                    "database_config.tenant_database_pattern",
                    format!(
                        "`{}` has no {{storefront_id}}: every storefront would share one database",
                        crate::backend::redact(p)
                    ),
                );
            }
        }
        if !db.schema_name_pattern.contains("{storefront_id}") {
            return bad(
                "database_config.schema_name_pattern",
                format!("`{}` has no {{storefront_id}}", db.schema_name_pattern),
            );
        }
        let probe = StorefrontId::new_random().fill(&db.schema_name_pattern);
        if let Err(e) = crate::tenant::validate_identifier(&probe) {
            return bad("database_config.schema_name_pattern", e.to_string());
        }
        if !db.shared_database_url.contains("://") && !db.shared_database_url.starts_with("sqlite:")
        {
            return bad(
                "database_config.shared_database_url",
                format!("`{}` is not a database URL", db.shared_database_url),
            );
        }
        for (key, value) in [
            (
                "database_config.max_connections_per_tenant",
                db.max_connections_per_tenant,
            ),
            ("database_config.connection_budget", db.connection_budget),
            ("database_config.shared_pool_size", db.shared_pool_size),
            (
                "migration_config.batch_size",
                self.tenant_strategy.migration_config.batch_size,
            ),
            (
                "migration_config.concurrent_moves",
                self.tenant_strategy.migration_config.concurrent_moves,
            ),
        ] {
            if value == 0 {
                return bad(key, "must be at least 1".into());
            }
        }
        if db.connection_budget < db.max_connections_per_tenant {
            return bad(
                "database_config.connection_budget",
                format!(
                    "{} is less than max_connections_per_tenant ({}): no tenant pool could open",
                    db.connection_budget, db.max_connections_per_tenant
                ),
            );
        }
        db.watch_options().validate()?;
        if self.tenant_strategy.migration_config.pause_budget.is_zero() {
            return bad(
                "migration_config.pause_budget",
                "must be more than zero".into(),
            );
        }
        let t = s.migration_config.rebalance_tolerance;
        if !(0.0..1.0).contains(&t) {
            return bad(
                "migration_config.rebalance_tolerance",
                format!("{t} is not a fraction below 1 (0.15 means +-15%)"),
            );
        }
        let f = s.migration_thresholds.medium_fraction;
        if !(0.0..=1.0).contains(&f) {
            return bad(
                "migration_thresholds.medium_fraction",
                format!("{f} is not between 0 and 1"),
            );
        }
        for (key, value) in [
            ("costs.shared", s.costs.shared),
            ("costs.schema", s.costs.schema),
            ("costs.database", s.costs.database),
        ] {
            if value < 0.0 || !value.is_finite() {
                return bad(key, format!("{value} is not a cost"));
            }
        }
        Ok(())
    }

    /// The placement `create` should use for `storefront` when none is given: its override,
    /// else the default type, with names from the configured patterns.
    pub fn placement_for(
        &self,
        storefront: StorefrontId,
        kind: Option<TenantType>,
    ) -> Result<Placement, TenancyError> {
        let s = &self.tenant_strategy;
        let kind = kind
            .or_else(|| s.tenant_overrides.get(&storefront).copied())
            .unwrap_or(s.default_type);
        Ok(match kind {
            TenantType::Shared => Placement::Shared,
            TenantType::Schema => Placement::Schema {
                schema: storefront.fill(&s.database_config.schema_name_pattern),
            },
            TenantType::Database => Placement::Database {
                url: storefront.fill(s.database_config.tenant_database_pattern.as_deref().ok_or_else(|| TenancyError::Config {
                    key: "tenant_strategy.database_config.tenant_database_pattern".into(),
                    message: "database placement needs a tenant_database_pattern (or an explicit URL)".into(),
                })?),
            },
        })
    }
}
