//! Quickstart: two storefronts in one SQLite file, each seeing only its own rows.
//!
//! Run it with `cargo run -p examples --bin quickstart`. No server needed.

use chrono::Utc;
use entities::{
    country, order,
    prelude::*,
    repository::{CustomerRepository, NewCustomer},
};
use migration::{Migrator, MigratorTrait};
use sea_orm::{ActiveModelTrait, ActiveValue::Set, Database, EntityTrait, PaginatorTrait};
use tenancy_core::{StorefrontId, Tenancy};
use uuid::Uuid;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. The shared database: a local SQLite file, recreated on every run.
    let path = std::env::temp_dir().join("storefront-tenancy-quickstart.sqlite");
    let _ = std::fs::remove_file(&path);
    let url = format!("sqlite://{}?mode=rwc", path.display());
    let shared = Database::connect(&url).await?;
    println!("database: {}", path.display());

    // 2. The application's own migrations create the tables.
    Migrator::up(&shared, None).await?;

    // 3. Global data (not tenant-scoped) is written once, through the shared connection.
    country::ActiveModel {
        code: Set("US".into()),
        name: Set("United States".into()),
    }
    .insert(&shared)
    .await?;

    // 4. The framework handle knows every #[tenant_scoped] entity by itself.
    let tenancy = Tenancy::new(shared);
    tenancy.verify_registry().await?;
    let alpine: StorefrontId = "a1a1a1a1-0000-4000-8000-000000000001".parse()?;
    let baltic: StorefrontId = "b2b2b2b2-0000-4000-8000-000000000002".parse()?;

    // 5. Business code gets a TenantConnection and never mentions the storefront again.
    for (shop, names) in [
        (alpine, &["ada", "grace", "alan"][..]),
        (baltic, &["ada", "edsger"][..]),
    ] {
        let db = tenancy.connection(shop);
        let customers = CustomerRepository::new(&db);
        for name in names {
            // The same email exists in both storefronts: unique per storefront only.
            let customer = customers
                .create(NewCustomer {
                    email: format!("{name}@example.com"),
                    first_name: name.to_string(),
                    last_name: "Example".into(),
                    phone: None,
                })
                .await?;
            order::ActiveModel {
                id: Set(Uuid::new_v4()),
                customer_id: Set(customer.id),
                status: Set("paid".into()),
                total_cents: Set(4200),
                currency: Set("EUR".into()),
                created_at: Set(Utc::now()),
                updated_at: Set(Utc::now()),
                ..Default::default()
            }
            .insert(&db)
            .await?;
        }
    }

    // 6. Each storefront sees only its own rows, through the very same code.
    for (label, shop) in [("alpine", alpine), ("baltic", baltic)] {
        let db = tenancy.connection(shop);
        let customers = CustomerRepository::new(&db);
        let (page, total) = customers.list(0, 10).await?;
        let emails: Vec<_> = page.iter().map(|c| c.email.as_str()).collect();
        let orders = Order::find().count(&db).await?;
        let countries = Country::find().count(&db).await?;
        println!(
            "{label}: {total} customers {emails:?}, {orders} orders, {countries} countries (global)"
        );
    }

    // 7. Another storefront's customer is simply not there.
    let baltic_ada = CustomerRepository::new(&tenancy.connection(baltic))
        .get_by_email("ada@example.com")
        .await?
        .ok_or("baltic's ada is missing")?;
    let seen_from_alpine = CustomerRepository::new(&tenancy.connection(alpine))
        .get_by_id(baltic_ada.id)
        .await?;
    println!(
        "alpine looking up baltic's customer {}: {:?}",
        baltic_ada.id,
        seen_from_alpine.map(|c| c.email)
    );
    assert_eq!(baltic_ada.storefront_id, Uuid::from(baltic));

    // 8. The unconfined shared connection sees everything (for operators only).
    let all = Customer::find().count(tenancy.shared()).await?;
    println!("shared connection (operators only): {all} customers in all");
    Ok(())
}
