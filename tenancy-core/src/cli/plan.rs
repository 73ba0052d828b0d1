//! `plan` (the advisor's recommendations) and `config check`.

use std::path::Path;

use serde_json::{json, Value};

use super::{render::Report, Context};
use crate::{backend::redact, config::TenancyConfig, TenancyError};

/// `plan`: the advisor's recommendation for every storefront.
pub(super) async fn plan(cx: &Context) -> Result<Report, TenancyError> {
    let plan = cx.tenancy.plan(&cx.config.tenant_strategy).await?;
    let rows = plan.iter().map(|r| {
        vec![
            r.storefront.to_string(),
            r.observation.customers.to_string(),
            r.observation.orders.to_string(),
            r.current.to_string(),
            r.recommended.to_string(),
            format!(
                "{:.2} -> {:.2}",
                r.monthly_cost_current, r.monthly_cost_recommended
            ),
            r.reason.clone(),
        ]
    });
    Ok(Report::of(&plan).table(
        &[
            "STOREFRONT",
            "CUSTOMERS",
            "ORDERS",
            "NOW",
            "ADVICE",
            "COST/MONTH",
            "REASON",
        ],
        rows,
    ))
}

/// `config check`: the configuration loaded and validated (it was, or this is not
/// reached), summarised, passwords hidden.
pub(super) fn config_check(path: &Path, config: &TenancyConfig) -> Report {
    let s = &config.tenant_strategy;
    let db = &s.database_config;
    let mut value = serde_json::to_value(config).unwrap_or(Value::Null);
    if let Some(url) = value.pointer_mut("/tenant_strategy/database_config/shared_database_url") {
        *url = json!(redact(&db.shared_database_url));
    }
    if let Some(Value::String(pattern)) =
        value.pointer_mut("/tenant_strategy/database_config/tenant_database_pattern")
    {
        *pattern = redact(pattern);
    }
    if let Some(Value::Array(servers)) =
        value.pointer_mut("/tenant_strategy/database_config/servers")
    {
        for server in servers {
            if let Some(Value::String(url)) = server.get_mut("url") {
                *url = redact(url);
            }
        }
    }
    Report::new(json!({ "ok": true, "config": value }))
        .line(format!("configuration OK: {}", path.display()))
        .line(format!("  default type: {}", s.default_type))
        .line(format!(
            "  shared database: {}",
            redact(&db.shared_database_url)
        ))
        .line(format!(
            "  tenant database pattern: {}",
            db.tenant_database_pattern
                .as_deref()
                .map(redact)
                .unwrap_or_else(|| "-".into())
        ))
        .line(format!(
            "  thresholds: {} customers, {} orders, {:?} avg query time",
            s.migration_thresholds.customers,
            s.migration_thresholds.orders,
            s.migration_thresholds.avg_query_time
        ))
        .line(format!("  overrides: {}", s.tenant_overrides.len()))
        .line(format!(
            "  connection budget: {} ({} per tenant)",
            db.connection_budget, db.max_connections_per_tenant
        ))
}
