//! Conditions evaluated on other storefronts' rows: if the caller's condition ran before
//! the tenant predicate, a condition that errors only for some rows (malformed JSON, an
//! invalid pattern, a division by zero) would tell, by failing, something about another
//! storefront's rows. The tenant predicate comes first, index hints that force a full
//! scan are refused, and user variables (which could carry values out) are refused.

use tenancy_tests::{
    arena::{assault, Arena, Outcome},
    Backend,
};

pub async fn run(arena: &Arena) {
    for (i, shop) in arena.shops.iter().enumerate() {
        let who = format!("{} via {}", arena.backend, shop.label);
        // Another storefront's data that the condition probes.
        let victim = &arena.shops[(i + 1) % arena.shops.len()].seeded;
        let victim_prefix = victim.customers[2]
            .email
            .split('@')
            .next()
            .unwrap_or("x")
            .to_owned();
        let victim_order = victim.orders[0].id;
        let my_customer = shop.seeded.customers[1].id;
        let probes: Vec<String> = match arena.backend {
            Backend::Sqlite => vec![
                format!("SELECT 1 AS x FROM customers WHERE json_extract(CASE WHEN email LIKE '{victim_prefix}%' THEN '[' ELSE '[]' END, '$') IS NULL"),
                format!(
                    "INSERT INTO orders (id, customer_id, status, total_cents, currency, created_at, updated_at) \
                     VALUES (X'{}', X'{}', 'x', 0, 'EUR', '2024-01-01', '2024-01-01') \
                     ON CONFLICT (id) DO UPDATE SET status = orders.status \
                     WHERE json_extract(CASE WHEN orders.total_cents > 0 THEN '[' ELSE '[]' END, '$') IS NULL",
                    victim_order.simple(),
                    my_customer.simple()
                ),
            ],
            Backend::MySql => vec![format!(
                "SELECT 1 AS x FROM customers WHERE regexp_substr('x', IF(email LIKE '{victim_prefix}%', '(', 'x')) IS NULL"
            )],
            Backend::Postgres => vec![
                format!("SELECT 1 AS x FROM customers WHERE 1 / (CASE WHEN email LIKE '{victim_prefix}%' THEN 0 ELSE 1 END) = 1"),
                format!(
                    "INSERT INTO orders (id, customer_id, status, total_cents, currency, created_at, updated_at) \
                     VALUES ('{victim_order}', '{my_customer}', 'x', 0, 'EUR', now(), now()) \
                     ON CONFLICT (id) DO UPDATE SET status = orders.status \
                     WHERE 1 / (CASE WHEN orders.total_cents > 0 THEN 0 ELSE 1 END) = 1"
                ),
            ],
        };
        for sql in probes {
            let outcome = arena.attempt(i, &sql).await;
            // Refused is fine; a database error here means the condition ran on another
            // storefront's row.
            assert!(
                !matches!(outcome, Outcome::Failed(ref e) if e.contains("JSON") || e.contains("regexp") || e.contains("division") || e.contains("parenthes")),
                "{who}: `{sql}` failed on another storefront's row: {outcome:?}"
            );
        }
    }
    let mut attacks: Vec<String> = Vec::new();
    match arena.backend {
        Backend::MySql => attacks.extend([
            "SELECT 1 FROM customers WHERE DISTINCT@v IS NULL".to_string(),
            "SELECT 1 FROM customers USE INDEX () WHERE (BINARY@x := CONCAT_WS(',', BINARY@x, email)) IS NULL".into(),
            "SELECT BINARY@x".into(),
            "SELECT DISTINCT@v := 1".into(),
            "SELECT id FROM orders FORCE INDEX (PRIMARY) WHERE total_cents > 0".into(),
            "SELECT id FROM orders IGNORE INDEX (ux_orders_storefront_id) FOR UPDATE".into(),
        ]),
        Backend::Sqlite => attacks.extend([
            "SELECT 1 FROM customers NOT INDEXED WHERE email LIKE 'a%'".to_string(),
            "SELECT 1 FROM customers INDEXED BY ux_customers_storefront_id WHERE 1 = 1".into(),
        ]),
        Backend::Postgres => attacks.push("SELECT ctid, xmin FROM customers".into()),
    }
    let refused = assault(arena, "evaluation order", &attacks, false).await;
    assert_eq!(refused, attacks.len() * arena.shops.len());
}
