//! Which tables are tenant-scoped.
//!
//! `#[tenant_scoped]` registers each entity's table and tenant column at link time
//! ([`inventory`]), so [`Registry::from_entities`] knows every scoped table of the
//! application without a hand-written list. Tables not in the registry are global: the
//! rewriter passes their statements through untouched.

use std::collections::HashMap;

use sea_orm::EntityTrait;

/// One tenant-scoped table, as registered by `#[tenant_scoped]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ScopedTable {
    /// Table name as in `#[sea_orm(table_name)]`.
    pub table: &'static str,
    /// The tenant column (`storefront_id` by default).
    pub column: &'static str,
}

impl ScopedTable {
    /// Used by the code `#[tenant_scoped]` generates.
    pub const fn new(table: &'static str, column: &'static str) -> Self {
        Self { table, column }
    }
}

inventory::collect!(ScopedTable);

/// Implemented by `#[tenant_scoped]` for the entity of a tenant-scoped model.
pub trait TenantScoped: EntityTrait {
    /// The table name.
    const TABLE: &'static str;
    /// The tenant column.
    const TENANT_COLUMN: &'static str;
}

/// The set of tenant-scoped tables, matched case-insensitively.
///
/// ```
/// use tenancy_core::Registry;
/// let registry = Registry::empty().with_table("Customers", "storefront_id");
/// assert_eq!(registry.tenant_column("customers"), Some("storefront_id"));
/// assert_eq!(registry.tenant_column("countries"), None);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Registry {
    /// Lower-cased table name to tenant column.
    tables: HashMap<String, String>,
}

impl Registry {
    /// A registry with no tables.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Every table registered by `#[tenant_scoped]` in the program.
    pub fn from_entities() -> Self {
        let mut registry = Self::empty();
        for scoped in inventory::iter::<ScopedTable> {
            registry = registry.with_table(scoped.table, scoped.column);
        }
        registry
    }

    /// Adds an entity explicitly (useful when an entity lives in a crate the linker might
    /// drop, or in tests).
    pub fn with<E: TenantScoped>(self) -> Self {
        self.with_table(E::TABLE, E::TENANT_COLUMN)
    }

    /// Adds a table by name.
    pub fn with_table(mut self, table: &str, column: &str) -> Self {
        self.tables
            .insert(table.to_ascii_lowercase(), column.to_owned());
        self
    }

    /// The tenant column of `table` if it is tenant-scoped (case-insensitive).
    pub fn tenant_column(&self, table: &str) -> Option<&str> {
        if let Some(column) = self.tables.get(table) {
            return Some(column);
        }
        self.tables
            .get(&table.to_ascii_lowercase())
            .map(String::as_str)
    }

    /// Whether `column` is the tenant column of any scoped table (case-insensitive).
    pub fn is_tenant_column(&self, column: &str) -> bool {
        self.tables.values().any(|c| c.eq_ignore_ascii_case(column))
    }

    /// The scoped tables, sorted.
    pub fn tables(&self) -> Vec<(&str, &str)> {
        let mut tables: Vec<_> = self
            .tables
            .iter()
            .map(|(t, c)| (t.as_str(), c.as_str()))
            .collect();
        tables.sort();
        tables
    }

    /// True when no table is registered.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}
