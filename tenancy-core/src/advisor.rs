//! The advisor: the seed's size thresholds and small/medium/large tiers, as a
//! recommendation with its reason and cost.
//!
//! It never changes where a storefront is routed. Only a completed move does that, because
//! sending a storefront to a placement that does not hold its data yet would lose it.

use serde::Serialize;

use sea_orm::{ConnectionTrait, Statement};

use crate::{
    config::TenantStrategy, stats::LatencySummary, tenant::validate_identifier, StorefrontId,
    Tenancy, TenancyError, TenantType,
};

/// Fewer statements than this are too few to judge latency by.
pub(crate) const MIN_QUERIES_FOR_LATENCY: u64 = 20;

/// What the advisor looks at for one storefront.
#[derive(Clone, Debug, Serialize)]
pub struct Observation {
    /// The storefront.
    pub storefront: StorefrontId,
    /// Where it is now.
    pub current: TenantType,
    /// Its customers.
    pub customers: u64,
    /// Its orders.
    pub orders: u64,
    /// Its query latency, as measured by this process.
    pub latency: Option<LatencySummary>,
}

/// Size class.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Below every threshold's medium fraction: shared.
    Small,
    /// Above a medium fraction: its own schema.
    Medium,
    /// Above a threshold: its own database.
    Large,
}

/// The advisor's answer for one storefront.
#[derive(Clone, Debug, Serialize)]
pub struct Recommendation {
    /// The storefront.
    pub storefront: StorefrontId,
    /// Where it is (and stays routed until a move).
    pub current: TenantType,
    /// Where the thresholds say it belongs.
    pub recommended: TenantType,
    /// Size class.
    pub tier: Tier,
    /// Why: which threshold or override, with the value.
    pub reason: String,
    /// Estimated monthly cost where it is.
    pub monthly_cost_current: f64,
    /// Estimated monthly cost where it is recommended.
    pub monthly_cost_recommended: f64,
    /// What it looked at.
    pub observation: Observation,
}

impl Recommendation {
    /// Whether the advice is to move.
    pub fn should_move(&self) -> bool {
        self.current != self.recommended
    }
}

/// Recommends a placement for one storefront.
///
/// ```
/// use tenancy_core::{advisor::{advise, Observation, Tier}, config::TenancyConfig, StorefrontId, TenantType};
/// let config = TenancyConfig::from_yaml_str("tenant_strategy:\n  database_config:\n    shared_database_url: \"sqlite::memory:\"\n").unwrap();
/// let obs = Observation {
///     storefront: StorefrontId::new_random(),
///     current: TenantType::Shared,
///     customers: 150_000,
///     orders: 10,
///     latency: None,
/// };
/// let r = advise(&config.tenant_strategy, obs);
/// assert_eq!((r.recommended, r.tier), (TenantType::Database, Tier::Large));
/// assert_eq!(r.reason, "customers 150000 > threshold 100000");
/// ```
pub fn advise(strategy: &TenantStrategy, observation: Observation) -> Recommendation {
    let t = &strategy.migration_thresholds;
    let f = t.medium_fraction;
    let latency = observation
        .latency
        .filter(|l| l.count >= MIN_QUERIES_FOR_LATENCY)
        .map(|l| l.mean_micros);
    let limit_us = t.avg_query_time.as_micros() as u64;

    let mut large = Vec::new();
    let mut medium = Vec::new();
    let mut check = |name: &str, value: u64, threshold: u64, unit: &str| {
        if value > threshold {
            large.push(format!(
                "{name} {value}{unit} > threshold {threshold}{unit}"
            ));
        } else if (value as f64) > (threshold as f64) * f {
            medium.push(format!(
                "{name} {value}{unit} > {}% of threshold {threshold}{unit}",
                (f * 100.0).round()
            ));
        }
    };
    check("customers", observation.customers, t.customers, "");
    check("orders", observation.orders, t.orders, "");
    if let Some(mean) = latency {
        check("avg query time", mean, limit_us, "us");
    }

    let (tier, by_size, size_reason) = if !large.is_empty() {
        (Tier::Large, TenantType::Database, large.join("; "))
    } else if !medium.is_empty() {
        (Tier::Medium, TenantType::Schema, medium.join("; "))
    } else {
        (
            Tier::Small,
            TenantType::Shared,
            "below every threshold".to_owned(),
        )
    };
    let (recommended, reason) = match strategy.tenant_overrides.get(&observation.storefront) {
        Some(o) => (
            *o,
            format!("tenant_overrides says {o} (size: {size_reason})"),
        ),
        None => (by_size, size_reason),
    };
    Recommendation {
        storefront: observation.storefront,
        current: observation.current,
        recommended,
        tier,
        reason,
        monthly_cost_current: strategy.costs.of(observation.current),
        monthly_cost_recommended: strategy.costs.of(recommended),
        observation,
    }
}

impl Tenancy {
    /// Rows of `table` (a tenant-scoped table) that belong to `storefront`, counted through
    /// its own connection, wherever it is placed.
    pub async fn row_count(
        &self,
        storefront: StorefrontId,
        table: &str,
    ) -> Result<u64, TenancyError> {
        validate_identifier(table)?;
        let db = self.connection(storefront);
        let backend = db.get_database_backend();
        let q = crate::backend::Dialect(backend).quote_char();
        let row = db
            .query_one_raw(Statement::from_string(
                backend,
                format!("SELECT COUNT(*) AS n FROM {q}{table}{q}"),
            ))
            .await?;
        let n: i64 = match row {
            Some(row) => row.try_get_by_index(0)?,
            None => 0,
        };
        Ok(n.max(0) as u64)
    }

    /// What the advisor needs to know about `storefront`.
    pub async fn observe(
        &self,
        strategy: &TenantStrategy,
        storefront: StorefrontId,
    ) -> Result<Observation, TenancyError> {
        let t = &strategy.migration_thresholds;
        Ok(Observation {
            storefront,
            current: self.placement(storefront).await?.tenant_type(),
            customers: self.row_count(storefront, &t.customers_table).await?,
            orders: self.row_count(storefront, &t.orders_table).await?,
            latency: self.stats().summary(storefront),
        })
    }

    /// The advisor's recommendation for every storefront in the directory.
    pub async fn plan(
        &self,
        strategy: &TenantStrategy,
    ) -> Result<Vec<Recommendation>, TenancyError> {
        let mut out = Vec::new();
        for record in self.require_directory()?.list().await? {
            out.push(advise(
                strategy,
                self.observe(strategy, record.storefront).await?,
            ));
        }
        Ok(out)
    }
}
