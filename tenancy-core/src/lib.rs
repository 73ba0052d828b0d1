//! # storefront tenancy
//!
//! A multi-tenant data framework on SeaORM 2.0. Mark an entity with
//! [`#[tenant_scoped]`](tenant_scoped), open a [`TenantConnection`] for a storefront, and
//! call ordinary SeaORM APIs with it: every statement is confined to that storefront.
//!
//! ```
//! use sea_orm::{entity::prelude::*, ActiveValue::Set, ConnectionTrait, Database};
//! use tenancy_core::{StorefrontId, Tenancy};
//!
//! mod customer {
//!     use sea_orm::entity::prelude::*;
//!
//!     #[tenancy_core::tenant_scoped] // storefront_id: Uuid is the tenant column
//!     #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
//!     #[sea_orm(table_name = "customers")]
//!     pub struct Model {
//!         #[sea_orm(primary_key, auto_increment = false)]
//!         pub id: Uuid,
//!         pub storefront_id: Uuid,
//!         pub email: String,
//!     }
//!     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
//!     pub enum Relation {}
//!     impl ActiveModelBehavior for ActiveModel {}
//! }
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let shared = Database::connect("sqlite::memory:").await?;
//! shared
//!     .execute_unprepared(
//!         "CREATE TABLE customers (id BLOB PRIMARY KEY, storefront_id BLOB NOT NULL, email TEXT NOT NULL)",
//!     )
//!     .await?;
//! let tenancy = Tenancy::new(shared);
//! let (alpine, baltic) = (StorefrontId::new_random(), StorefrontId::new_random());
//!
//! // The same business code for every storefront; it never names the storefront.
//! for (shop, email) in [(alpine, "ada@example.com"), (baltic, "alan@example.com")] {
//!     let db = tenancy.connection(shop);
//!     customer::ActiveModel {
//!         id: Set(Uuid::new_v4()),
//!         email: Set(email.into()),
//!         ..Default::default() // storefront_id is filled in
//!     }
//!     .insert(&db)
//!     .await?;
//! }
//!
//! let seen = customer::Entity::find().all(&tenancy.connection(alpine)).await?;
//! assert_eq!(seen.len(), 1); // only alpine's customer
//! assert_eq!(seen[0].email, "ada@example.com");
//! assert_eq!(seen[0].storefront_id, Uuid::from(alpine));
//!
//! // What cannot be proven confined to one storefront is refused, naming the reason.
//! let refused = tenancy
//!     .connection(alpine)
//!     .execute_unprepared("DROP TABLE customers")
//!     .await;
//! assert!(refused.is_err());
//! # Ok(()) }
//! ```
//!
//! ## Features
//!
//! | feature | brings |
//! | --- | --- |
//! | `postgres`, `mysql`, `sqlite` | the SeaORM and sea-orm-migration driver of that backend, nothing else (`postgres` also the COPY path of moves between PostgreSQL databases) |
//! | `config` (default) | `TenancyConfig::from_file` and friends: YAML/TOML files and `TENANCY_*` variables (figment) |
//! | `cli` | `tenancy_core::cli`, the operator tool (clap, indicatif); implies `config` |
//! | `axum` | `tenancy_core::http`: the storefront layer and the `Tenant` extractor |
//!
//! ## Modules, one per concept
//!
//! - [`tenant`]: [`StorefrontId`], [`TenantType`], [`Placement`];
//! - [`registry`]: which tables are tenant-scoped and which are global;
//! - [`rewrite`]: the allow list and the rewriter that confines each statement;
//! - [`rls`]: the second fence on PostgreSQL, row-level security generated from the
//!   registry;
//! - [`Tenancy`] and [`TenancyOptions`] (module `tenancy`): the one handle and how it is
//!   built (sqlx-style options, then `connect(url)`);
//! - [`connection`]: [`TenantConnection`] and [`TenantTransaction`];
//! - [`directory`] and [`pool`]: who is where, and the pools of storefront databases;
//! - [`pooler`]: transaction poolers (PgBouncer) in front of PostgreSQL servers;
//! - [`rebalance`]: the rule that spreads database storefronts over servers by capacity;
//! - [`watch`]: how every process learns of a placement change within milliseconds (the
//!   directory's change feed, process leases, the cutover barrier);
//! - [`provision`], [`fleet`], [`mover`]: creating storefronts, migrating the fleet, moving
//!   a live storefront;
//! - [`config`], [`stats`], [`advisor`], [`metrics`]: configuration and placement policy;
//! - [`DatabaseUrl`]: database URLs, parsed once (module `backend` holds what each database
//!   spells its own way);
//! - [`error`]: the one error type, [`TenancyError`].

#![forbid(unsafe_code)]
#![warn(missing_docs, unreachable_pub)]
#![recursion_limit = "256"]

pub mod advisor;
mod backend;
#[cfg(feature = "cli")]
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
pub mod pooler;
pub mod provision;
pub mod rebalance;
pub mod registry;
pub mod rewrite;
pub mod rls;
pub mod servers;
pub mod stats;
mod tenancy;
pub mod tenant;
pub mod watch;

pub use backend::DatabaseUrl;
pub use connection::{TenantConnection, TenantStream, TenantTransaction};
pub use directory::{Directory, TenantRecord, TenantResolver, TenantState};
pub use error::TenancyError;
pub use pool::{DatabaseManager, PoolOptions};
pub use pooler::TransactionPooler;
pub use registry::{Global, GlobalAccess, GlobalTable, Registry, ScopedTable, TenantScoped};
pub use tenancy::{Tenancy, TenancyOptions};
pub use tenancy_macros::{global_table, tenant_scoped};
pub use tenant::{Placement, StorefrontId, TenantType};
pub use watch::WatchOptions;

/// Used by the code `#[tenant_scoped]` generates. Not public API.
#[doc(hidden)]
pub mod __private {
    pub use inventory;
    pub use uuid::Uuid;
}
