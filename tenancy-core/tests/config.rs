//! Configuration: the seed's example loads; every kind of bad input is an error that names
//! the key.

use std::time::Duration;

use tenancy_core::{config::TenancyConfig, Placement, StorefrontId, TenancyError, TenantType};

const SEED: &str = include_str!("../../examples/config/tenant_strategy.yaml");

fn err(yaml: &str) -> String {
    match TenancyConfig::from_yaml_str(yaml) {
        Ok(_) => panic!("expected an error for:\n{yaml}"),
        Err(e) => {
            assert!(matches!(e, TenancyError::Config { .. }), "{e}");
            e.to_string()
        }
    }
}

#[test]
fn the_seed_example_loads() {
    let config = TenancyConfig::from_yaml_str(SEED).unwrap();
    let s = &config.tenant_strategy;
    assert_eq!(s.default_type, TenantType::Shared);
    assert_eq!(s.migration_thresholds.customers, 100_000);
    assert_eq!(s.migration_thresholds.orders, 500_000);
    assert_eq!(
        s.migration_thresholds.avg_query_time,
        Duration::from_millis(200)
    );
    assert_eq!(
        s.migration_config.dual_write_duration,
        Duration::from_secs(24 * 3600)
    );
    assert_eq!(s.migration_config.batch_size, 1000);
    assert_eq!(s.database_config.max_connections_per_tenant, 20);
    let large: StorefrontId = "550e8400-e29b-41d4-a716-446655440000".parse().unwrap();
    assert_eq!(s.tenant_overrides.get(&large), Some(&TenantType::Database));
    assert_eq!(
        config.placement_for(large, None).unwrap(),
        Placement::Database {
            url:
                "postgres://postgres@127.0.0.1:5432/storefront_550e8400_e29b_41d4_a716_446655440000"
                    .into()
        }
    );
    let file = TenancyConfig::from_file(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../examples/config/tenant_strategy.yaml"
    ))
    .unwrap();
    assert_eq!(file.tenant_strategy.tenant_overrides.len(), 2);
}

#[test]
fn toml_works_too() {
    let config = TenancyConfig::from_toml_str(
        r#"
[tenant_strategy]
default_type = "schema"
[tenant_strategy.database_config]
shared_database_url = "mysql://root@127.0.0.1:3306/shop"
schema_name_pattern = "shop_{storefront_id}"
"#,
    )
    .unwrap();
    let id = StorefrontId::new_random();
    assert_eq!(
        config.placement_for(id, None).unwrap(),
        Placement::Schema {
            schema: format!("shop_{}", id.underscored())
        }
    );
}

#[test]
fn malformed_uuid_key_is_named() {
    let message = err(&SEED.replace("550e8400-e29b-41d4-a716-446655440001", "not-a-uuid"));
    assert!(
        message.contains("tenant_overrides") && message.contains("not-a-uuid"),
        "{message}"
    );
}

#[test]
fn unknown_type_is_named() {
    let message = err(&SEED.replace(r#""schema"    # Medium"#, r#""datbase"    # Medium"#));
    assert!(
        message.contains("tenant_overrides") && message.contains("datbase"),
        "{message}"
    );
    let message = err(&SEED.replace(r#"default_type: "shared""#, r#"default_type: "sharded""#));
    assert!(
        message.contains("default_type") && message.contains("sharded"),
        "{message}"
    );
}

#[test]
fn pattern_without_placeholder_is_named() {
    let message = err(&SEED.replace("storefront_{storefront_id}\"", "storefront\""));
    assert!(
        message.contains("tenant_strategy.database_config.tenant_database_pattern"),
        "{message}"
    );
    assert!(message.contains("{storefront_id}"), "{message}");
}

#[test]
fn bad_duration_is_named() {
    let message = err(&SEED.replace("avg_query_time: 200ms", "avg_query_time: 200 parsecs"));
    assert!(
        message.contains("tenant_strategy.migration_thresholds.avg_query_time"),
        "{message}"
    );
    assert!(message.contains("200 parsecs"), "{message}");
    let message = err(&SEED.replace(
        r#"dual_write_duration: "24h""#,
        r#"dual_write_duration: "a day""#,
    ));
    assert!(message.contains("dual_write_duration"), "{message}");
}

#[test]
fn negative_threshold_is_named() {
    let message = err(&SEED.replace("customers: 100000", "customers: -5"));
    assert!(
        message.contains("tenant_strategy.migration_thresholds.customers"),
        "{message}"
    );
    assert!(message.contains("-5"), "{message}");
}

#[test]
fn unknown_key_is_named() {
    let message = err(&SEED.replace("batch_size: 1000", "batch_sise: 1000"));
    assert!(
        message.contains("batch_sise") && message.contains("migration_config"),
        "{message}"
    );
    let message = err(&SEED.replace(
        "  migration_thresholds:",
        "  migration_treshold:\n    x: 1\n  migration_thresholds:",
    ));
    assert!(message.contains("migration_treshold"), "{message}");
}

#[test]
fn inconsistent_limits_are_named() {
    let yaml = SEED.replace(
        "max_connections_per_tenant: 20",
        "max_connections_per_tenant: 20\n    connection_budget: 10",
    );
    let message = err(&yaml);
    assert!(
        message.contains("tenant_strategy.database_config.connection_budget"),
        "{message}"
    );
    let message = err(&SEED.replace("batch_size: 1000", "batch_size: 0"));
    assert!(
        message.contains("tenant_strategy.migration_config.batch_size"),
        "{message}"
    );
    let message = err(&SEED.replace(
        "postgres://postgres@127.0.0.1:5432/smartseller",
        "smartseller",
    ));
    assert!(message.contains("shared_database_url"), "{message}");
}

#[test]
fn a_missing_file_is_an_error() {
    let e = TenancyConfig::from_file("/nonexistent/tenant_strategy.yaml").unwrap_err();
    assert!(
        e.to_string().contains("/nonexistent/tenant_strategy.yaml"),
        "{e}"
    );
}
