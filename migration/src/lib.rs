//! The SmartSeller schema as a sea-orm-migration [`Migrator`].
//!
//! The same migrations serve every placement: the shared database (where every scoped
//! table's indexes lead with `storefront_id`), a storefront's own schema and a storefront's
//! own database. Child tables reference their parent by `(storefront_id, parent_id)`, so
//! the database itself refuses a row that points at another storefront's parent.

pub use sea_orm_migration::prelude::*;

mod m20250926_000001_smartseller;

/// The application's migrations, in order.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(m20250926_000001_smartseller::Migration)]
    }
}
