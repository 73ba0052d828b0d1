//! Class 3: the driver's prepared statements. sqlx caches every prepared statement on its
//! connection (`sqlx_s_1`, `sqlx_s_2`... on PostgreSQL); the confined SQL takes the
//! storefront as a parameter, so running one by name with another id would read another
//! storefront. SQL-level PREPARE / EXECUTE / DEALLOCATE are refused on every backend.

use tenancy_tests::{
    arena::{assault, Arena},
    Backend,
};

pub async fn run(arena: &Arena) {
    let victim = arena.shops[1].seeded.uuid();
    let attacks: Vec<String> = match arena.backend {
        Backend::Postgres => {
            let mut v = Vec::new();
            for n in 1..=12 {
                v.push(format!("EXECUTE sqlx_s_{n}('{victim}')"));
                v.push(format!("EXECUTE sqlx_s_{n}('{victim}', '{victim}')"));
            }
            v.push("PREPARE p AS SELECT * FROM customers".into());
            v.push("PREPARE p(uuid) AS SELECT * FROM customers WHERE storefront_id = $1".into());
            v.push("DEALLOCATE ALL".into());
            v
        }
        Backend::MySql => vec![
            "PREPARE s FROM 'SELECT * FROM customers'".into(),
            "EXECUTE s".into(),
            format!("EXECUTE s USING '{victim}'"),
            "DEALLOCATE PREPARE s".into(),
        ],
        Backend::Sqlite => vec![
            // SQLite has no SQL-level prepared statements; the closest forms.
            "EXECUTE s".into(),
            "PREPARE s AS SELECT * FROM customers".into(),
        ],
    };
    // Warm the driver's statement cache with confined statements first.
    for i in 0..arena.shops.len() {
        arena.attempt(i, "SELECT id, email FROM customers").await;
        arena
            .attempt(i, "SELECT id FROM orders WHERE total_cents > 0")
            .await;
    }
    let refused = assault(arena, "prepared statements", &attacks, false).await;
    assert_eq!(refused, attacks.len() * arena.shops.len());
}
