//! # storefront tenancy
//!
//! A multi-tenant data framework on SeaORM 2.0. Mark an entity with
//! [`#[tenant_scoped]`](tenant_scoped), open a [`TenantConnection`] for a storefront, and
//! call ordinary SeaORM APIs with it: every statement is confined to that storefront.
//!
//! ```ignore
//! use sea_orm::entity::prelude::*;
//!
//! #[tenancy_core::tenant_scoped]
//! #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
//! #[sea_orm(table_name = "customers")]
//! pub struct Model {
//!     #[sea_orm(primary_key, auto_increment = false)]
//!     pub id: Uuid,
//!     pub storefront_id: Uuid,
//!     pub email: String,
//! }
//! # #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)] pub enum Relation {}
//! # impl ActiveModelBehavior for ActiveModel {}
//!
//! let tenancy = tenancy_core::Tenancy::new(sea_orm::Database::connect(url).await?);
//! let db = tenancy.connection(storefront_id);
//! let mine = Entity::find().all(&db).await?; // only this storefront's customers
//! ```
//!
//! Modules, one per concept:
//! - [`tenant`] holds [`StorefrontId`] and [`TenantType`];
//! - [`registry`] knows which tables are tenant-scoped;
//! - [`rewrite`] is the SQL rewriter that confines each statement;
//! - [`connection`] has [`Tenancy`], [`TenantConnection`] and [`TenantTransaction`];
//! - [`error`] has the one error type, [`TenancyError`].

#![recursion_limit = "256"]

pub mod advisor;
pub mod cli;
pub mod config;
pub mod connection;
pub mod directory;
pub mod error;
pub mod fleet;
#[cfg(feature = "axum")]
pub mod http;
pub mod metrics;
pub mod mover;
pub mod pool;
pub mod provision;
pub mod registry;
pub mod rewrite;
pub mod stats;
pub mod tenant;

pub use connection::{Tenancy, TenantConnection, TenantTransaction};
pub use directory::{Directory, TenantRecord, TenantResolver, TenantState};
pub use error::TenancyError;
pub use pool::{DatabaseManager, Lease, PoolOptions};
pub use registry::{Global, GlobalAccess, GlobalTable, Registry, ScopedTable, TenantScoped};
pub use rewrite::Rewriter;
pub use tenancy_macros::{global_table, tenant_scoped};
pub use tenant::{Placement, StorefrontId, TenantType};

/// Used by the code `#[tenant_scoped]` generates. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use inventory;
    pub use uuid::Uuid;
}
