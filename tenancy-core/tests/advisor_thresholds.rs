//! The advisor on either side of each threshold.

use tenancy_core::{
    advisor::{advise, Observation, Tier},
    config::TenancyConfig,
    stats::LatencySummary,
    StorefrontId, TenantType,
};

fn config() -> TenancyConfig {
    TenancyConfig::from_yaml_str(
        r#"
tenant_strategy:
  migration_thresholds: { customers: 1000, orders: 5000, avg_query_time: 200ms, medium_fraction: 0.5 }
  database_config: { shared_database_url: "sqlite::memory:" }
  costs: { shared: 2, schema: 10, database: 80 }
"#,
    )
    .unwrap()
}

fn obs(customers: u64, orders: u64, mean_ms: Option<u64>) -> Observation {
    Observation {
        storefront: StorefrontId::new_random(),
        current: TenantType::Shared,
        customers,
        orders,
        latency: mean_ms.map(|ms| LatencySummary {
            count: 100,
            errors: 0,
            mean_micros: ms * 1000,
            p95_micros: ms * 2000,
        }),
    }
}

#[test]
fn each_threshold_on_either_side() {
    let c = config();
    let s = &c.tenant_strategy;
    let cases = [
        (
            obs(1000, 0, None),
            TenantType::Schema,
            Tier::Medium,
            "customers 1000 > 50% of threshold 1000",
        ),
        (
            obs(1001, 0, None),
            TenantType::Database,
            Tier::Large,
            "customers 1001 > threshold 1000",
        ),
        (
            obs(500, 0, None),
            TenantType::Shared,
            Tier::Small,
            "below every threshold",
        ),
        (
            obs(501, 0, None),
            TenantType::Schema,
            Tier::Medium,
            "customers 501 > 50% of threshold 1000",
        ),
        (
            obs(0, 5000, None),
            TenantType::Schema,
            Tier::Medium,
            "orders 5000 > 50% of threshold 5000",
        ),
        (
            obs(0, 5001, None),
            TenantType::Database,
            Tier::Large,
            "orders 5001 > threshold 5000",
        ),
        (
            obs(0, 0, Some(200)),
            TenantType::Schema,
            Tier::Medium,
            "avg query time 200000us > 50% of threshold 200000us",
        ),
        (
            obs(0, 0, Some(201)),
            TenantType::Database,
            Tier::Large,
            "avg query time 201000us > threshold 200000us",
        ),
        (
            obs(0, 0, Some(100)),
            TenantType::Shared,
            Tier::Small,
            "below every threshold",
        ),
    ];
    for (o, recommended, tier, reason) in cases {
        let r = advise(s, o);
        assert_eq!(
            (r.recommended, r.tier, r.reason.as_str()),
            (recommended, tier, reason)
        );
        assert_eq!(r.monthly_cost_current, 2.0);
        assert_eq!(
            r.monthly_cost_recommended,
            match recommended {
                TenantType::Shared => 2.0,
                TenantType::Schema => 10.0,
                TenantType::Database => 80.0,
            }
        );
    }
}

#[test]
fn too_few_queries_do_not_judge_latency() {
    let c = config();
    let mut o = obs(0, 0, Some(900));
    if let Some(l) = o.latency.as_mut() {
        l.count = 5;
    }
    assert_eq!(
        advise(&c.tenant_strategy, o).recommended,
        TenantType::Shared
    );
}

#[test]
fn overrides_win_and_say_so() {
    let mut c = config();
    let o = obs(5, 5, None);
    c.tenant_strategy
        .tenant_overrides
        .insert(o.storefront, TenantType::Database);
    let r = advise(&c.tenant_strategy, o);
    assert_eq!(r.recommended, TenantType::Database);
    assert!(
        r.reason.starts_with("tenant_overrides says database"),
        "{}",
        r.reason
    );
    assert_eq!(r.tier, Tier::Small);
}
