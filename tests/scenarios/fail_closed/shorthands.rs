//! Class 7: shorthands and shadows. `TABLE name` (PostgreSQL, MySQL 8) is confined like
//! `SELECT * FROM name`, in every placement; a CTE named like a scoped table reads the CTE;
//! a schema- or database-qualified write into another storefront's storage is refused.

use std::collections::BTreeSet;

use sea_orm::JsonValue;
use tenancy_core::Placement;
use tenancy_tests::{
    arena::{assault, Arena, Outcome},
    Backend,
};

fn strings(rows: &[JsonValue], key: &str) -> BTreeSet<String> {
    rows.iter()
        .filter_map(|r| r.get(key).and_then(|v| v.as_str()).map(str::to_owned))
        .collect()
}

pub async fn run(arena: &Arena) {
    for (i, shop) in arena.shops.iter().enumerate() {
        let who = format!("{} via {}", arena.backend, shop.label);
        let emails: BTreeSet<String> = shop
            .seeded
            .customers
            .iter()
            .map(|c| c.email.clone())
            .collect();
        // A CTE named like a scoped table: the body reads the CTE (its orders' statuses),
        // never the table, in every placement.
        let outcome = arena
            .attempt(i, "WITH customers AS (SELECT status AS email FROM orders) SELECT email FROM customers")
            .await;
        let Outcome::Rows(rows) = &outcome else {
            panic!("{who}: CTE shadow: {outcome:?}");
        };
        assert_eq!(
            rows.len(),
            shop.seeded.orders.len(),
            "{who}: the CTE shadows the table"
        );
        // Inside a non-recursive CTE the name is the table, confined (SQLite reads it as
        // the CTE itself and reports a circular reference).
        let outcome = arena
            .attempt(
                i,
                "WITH customers AS (SELECT email FROM customers) SELECT email FROM customers",
            )
            .await;
        match (&outcome, arena.backend) {
            (Outcome::Failed(e), Backend::Sqlite) => assert!(e.contains("circular"), "{who}: {e}"),
            (Outcome::Rows(rows), _) => {
                assert_eq!(strings(rows, "email"), emails, "{who}: CTE over the table")
            }
            _ => panic!("{who}: CTE over the table: {outcome:?}"),
        }
        if arena.backend == Backend::Postgres {
            // TABLE as a set-operation branch is confined (and placed in the schema).
            let outcome = arena
                .attempt(
                    i,
                    "SELECT * FROM customers WHERE 1 = 0 UNION ALL TABLE customers",
                )
                .await;
            let Outcome::Rows(rows) = &outcome else {
                panic!("{who}: TABLE shorthand: {outcome:?}");
            };
            assert_eq!(strings(rows, "email"), emails, "{who}: TABLE shorthand");
        }
    }
    // Qualified names that point into another storefront's storage.
    let mut attacks = Vec::new();
    let backend = arena.backend;
    let q = |name: &str| backend.quote(name);
    for shop in &arena.shops {
        let container = match &shop.placement {
            Placement::Schema { schema } => Some(schema.clone()),
            Placement::Database { url } if arena.backend == Backend::MySql => url
                .rsplit('/')
                .next()
                .map(|s| s.split('?').next().unwrap_or(s).to_owned()),
            _ => None,
        };
        if let Some(c) = container {
            let t = format!("{}.{}", q(&c), q("customers"));
            attacks.push(format!("SELECT * FROM {t}"));
            attacks.push(format!(
                "INSERT INTO {t} (id, email, first_name, last_name, created_at, updated_at) \
                 VALUES ('00000000-0000-4000-8000-00000000abcd', 'x@example.com', 'x', 'y', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            ));
            attacks.push(format!("UPDATE {t} SET first_name = 'pwned'"));
            attacks.push(format!("DELETE FROM {t}"));
        }
    }
    attacks.push(format!("SELECT * FROM {}.{}", q("public"), q("customers")));
    // Found in review: a CTE named like a table but for letter case; an alias on a
    // parenthesised join that hides the alias the predicate names; UPDATE OR REPLACE.
    attacks.push(format!(
        "WITH {} AS (SELECT 1 AS x) SELECT * FROM customers",
        q("Customers")
    ));
    attacks.push(format!(
        "WITH {} AS (SELECT 1 AS x) SELECT * FROM tenancy_tenants",
        q("Tenancy_tenants")
    ));
    attacks.push(
        "SELECT DISTINCT j.email FROM (customers AS x CROSS JOIN countries) AS j CROSS JOIN customers AS x"
            .into(),
    );
    if arena.backend == Backend::Sqlite {
        let victim = arena.shops[1].seeded.orders[0].id.simple().to_string();
        attacks.push(format!(
            "UPDATE OR REPLACE orders SET id = X'{victim}' WHERE total_cents > 0"
        ));
    }
    attacks.push(format!("DELETE FROM {}.{}", q("main"), q("customers")));
    // Run from the shared storefronts (a schema storefront naming its own schema is fine).
    let refused = assault(arena, "qualified names", &attacks, true).await;
    assert!(refused > 0);
}
