//! The SmartSeller data model of the seed document, as SeaORM 2.0 entities.
//!
//! Six tenant-scoped tables (each marked `#[tenant_scoped]`, each with a `storefront_id`)
//! and one global table, [`country`], that every storefront reads.
//!
//! ```text
//! customer ──< customer_address >── country (global)
//!    │  └──< order ──< order_item
//!    └──< shopping_cart ──< cart_item
//! ```

pub mod cart_item;
pub mod country;
pub mod customer;
pub mod customer_address;
pub mod order;
pub mod order_item;
pub mod repository;
pub mod shopping_cart;

/// The entities, under short names.
pub mod prelude {
    pub use super::cart_item::Entity as CartItem;
    pub use super::country::Entity as Country;
    pub use super::customer::Entity as Customer;
    pub use super::customer_address::Entity as CustomerAddress;
    pub use super::order::Entity as Order;
    pub use super::order_item::Entity as OrderItem;
    pub use super::shopping_cart::Entity as ShoppingCart;
}

/// Registers every tenant-scoped and global entity explicitly, in addition to the link-time
/// registration `#[tenant_scoped]` does.
pub fn registry() -> tenancy_core::Registry {
    tenancy_core::Registry::from_entities()
        .with::<customer::Entity>()
        .with::<customer_address::Entity>()
        .with::<order::Entity>()
        .with::<order_item::Entity>()
        .with::<shopping_cart::Entity>()
        .with::<cart_item::Entity>()
        .with_global_entity::<country::Entity>()
}
