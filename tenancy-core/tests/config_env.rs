//! Environment overrides (in their own test binary: they change the process environment).

use std::time::Duration;

use tenancy_core::config::TenancyConfig;

const SEED: &str = include_str!("../../examples/config/tenant_strategy.yaml");

#[test]
fn tenancy_variables_override_the_file() {
    std::env::set_var("TENANCY_MIGRATION_THRESHOLDS__CUSTOMERS", "5000");
    std::env::set_var("TENANCY_DATABASE_CONFIG__CONNECTION_BUDGET", "40");
    std::env::set_var("TENANCY_MIGRATION_CONFIG__DUAL_WRITE_DURATION", "90m");
    let config = TenancyConfig::from_yaml_str(SEED).unwrap();
    let s = &config.tenant_strategy;
    assert_eq!(s.migration_thresholds.customers, 5000);
    assert_eq!(s.database_config.connection_budget, 40);
    assert_eq!(
        s.migration_config.dual_write_duration,
        Duration::from_secs(5400)
    );

    std::env::set_var("TENANCY_MIGRATION_THRESHOLDS__ORDERS", "-1");
    let err = TenancyConfig::from_yaml_str(SEED).unwrap_err().to_string();
    assert!(
        err.contains("tenant_strategy.migration_thresholds.orders"),
        "{err}"
    );
    std::env::remove_var("TENANCY_MIGRATION_THRESHOLDS__ORDERS");
}
