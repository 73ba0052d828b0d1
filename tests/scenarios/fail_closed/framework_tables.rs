//! Class 6: the framework's own tables. The directory holds every storefront's placement
//! and database URL; re-pointing another storefront's record would reroute it. The change
//! feed and the process leases decide when a cutover may report `switched`; a move's fence
//! and change log decide which side takes writes. No tenant connection may read or write
//! them, however they are spelled.

use tenancy_tests::{
    arena::{assault, Arena},
    Backend,
};

pub async fn run(arena: &Arena) {
    let victim = arena.shops[1].seeded.uuid();
    let backend = arena.backend;
    let q = |name: &str| backend.quote(name);
    let mut attacks: Vec<String> = vec![
        "SELECT * FROM tenancy_tenants".into(),
        "SELECT * FROM TENANCY_TENANTS".into(),
        format!("SELECT * FROM {}", q("tenancy_tenants")),
        "SELECT (SELECT COUNT(*) FROM tenancy_tenants) AS n".into(),
        "SELECT c.email FROM customers c WHERE EXISTS (SELECT 1 FROM tenancy_tenants)".into(),
        "SELECT c.email FROM customers c JOIN tenancy_tenants t ON 1 = 1".into(),
        "WITH a AS (SELECT * FROM tenancy_tenants), tenancy_tenants AS (SELECT 1 AS x) SELECT * FROM a".into(),
        format!("UPDATE tenancy_tenants SET state = 'moving' WHERE storefront_id = '{victim}'"),
        format!("DELETE FROM tenancy_tenants WHERE storefront_id = '{victim}'"),
        "INSERT INTO tenancy_tenants (storefront_id) VALUES ('00000000-0000-4000-8000-000000000001')".into(),
        "SELECT * FROM tenancy_moves".into(),
        "DELETE FROM tenancy_moves".into(),
        "SELECT * FROM seaql_migrations".into(),
        "DELETE FROM seaql_migrations".into(),
        "WITH tenancy_tenants AS (SELECT 1 AS x) DELETE FROM tenancy_tenants".into(),
        "INSERT INTO customers (id, email) SELECT storefront_id, placement FROM tenancy_tenants".into(),
        // The change feed and the process leases: turning the epoch back, forging a change,
        // or deleting the leases a cutover's barrier waits on would let another process
        // serve a storefront from the side it left; the leases also name hosts and pids.
        "UPDATE tenancy_directory_epoch SET epoch = 0".into(),
        "SELECT epoch FROM tenancy_directory_epoch".into(),
        format!("INSERT INTO tenancy_directory_log (epoch, storefront_id) VALUES (999999, '{victim}')"),
        "DELETE FROM tenancy_directory_log".into(),
        "SELECT * FROM tenancy_processes".into(),
        "DELETE FROM tenancy_processes".into(),
        "UPDATE tenancy_processes SET applied_epoch = 999999".into(),
        // A move's fence and change log.
        format!("UPDATE tenancy_fence SET fenced = 0 WHERE storefront_id = '{victim}'"),
        "DELETE FROM tenancy_changelog".into(),
        "SELECT c.email FROM customers c WHERE c.id IN (SELECT pk FROM tenancy_changelog)".into(),
    ];
    if arena.backend == Backend::Postgres {
        attacks.push("SELECT * FROM public.tenancy_tenants".into());
    }
    let refused = assault(arena, "framework tables", &attacks, false).await;
    assert_eq!(refused, attacks.len() * arena.shops.len());
}
