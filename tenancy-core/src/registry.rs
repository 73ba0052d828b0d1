//! What a tenant connection may name: tenant-scoped tables, global tables, functions.
//!
//! `#[tenant_scoped]` registers each entity's table and tenant column at link time
//! ([`inventory`]), and `#[global_table]` registers a table every storefront reads (such as
//! `countries`), so [`Registry::from_entities`] knows the application's tables without a
//! hand-written list.
//!
//! The registry is an **allow list**. A statement sent through a
//! [`TenantConnection`](crate::TenantConnection) may name only:
//!
//! - registered tenant-scoped tables (each reference is confined to the storefront);
//! - registered global tables (read-only unless registered as writable);
//! - the common scalar, aggregate and window functions of the three backends (see
//!   [`Registry::function_allowed`]), plus any registered with
//!   [`Registry::with_function`].
//!
//! Everything else (catalogs, system schemas, the framework's own `tenancy_*` tables and
//! `seaql_migrations`, unknown tables, functions that run SQL from text or reach outside
//! the storefront) is refused before the database sees the statement.

use std::collections::{HashMap, HashSet};

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

/// One global table, as registered by `#[global_table]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GlobalTable {
    /// Table name as in `#[sea_orm(table_name)]`.
    pub table: &'static str,
    /// Whether tenant connections may write it (default: read-only).
    pub writable: bool,
}

impl GlobalTable {
    /// Used by the code `#[global_table]` generates.
    pub const fn new(table: &'static str, writable: bool) -> Self {
        Self { table, writable }
    }
}

inventory::collect!(GlobalTable);

/// Implemented by `#[tenant_scoped]` for the entity of a tenant-scoped model.
pub trait TenantScoped: EntityTrait {
    /// The table name.
    const TABLE: &'static str;
    /// The tenant column.
    const TENANT_COLUMN: &'static str;
}

/// Implemented by `#[global_table]` for the entity of a global model.
pub trait Global: EntityTrait {
    /// The table name.
    const TABLE: &'static str;
    /// Whether tenant connections may write it.
    const WRITABLE: bool;
}

/// How a tenant connection may use a global table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GlobalAccess {
    /// Read it; writes are refused (a write would change what every storefront sees).
    ReadOnly,
    /// Read and write it.
    ReadWrite,
}

/// Whether `table` is one of the framework's own tables (the directory, moves, change
/// capture) or the migration bookkeeping table, which no tenant connection may name.
pub fn is_reserved(table: &str) -> bool {
    let t = table.to_ascii_lowercase();
    t.starts_with("tenancy_") || t == "seaql_migrations"
}

/// The tables and functions a tenant connection may name, matched case-insensitively.
///
/// ```
/// use tenancy_core::{GlobalAccess, Registry};
/// let registry = Registry::empty()
///     .with_table("Customers", "storefront_id")
///     .with_global("countries");
/// assert_eq!(registry.tenant_column("customers"), Some("storefront_id"));
/// assert_eq!(registry.tenant_column("countries"), None);
/// assert_eq!(registry.global("COUNTRIES"), Some(GlobalAccess::ReadOnly));
/// assert_eq!(registry.global("tenancy_tenants"), None);
/// ```
#[derive(Clone, Debug, Default)]
pub struct Registry {
    /// Lower-cased table name to tenant column.
    tables: HashMap<String, String>,
    /// Lower-cased global table name to its access.
    globals: HashMap<String, GlobalAccess>,
    /// Lower-cased names of functions allowed beyond the built-in list.
    functions: HashSet<String>,
}

impl Registry {
    /// A registry with no tables.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Every table registered by `#[tenant_scoped]` and `#[global_table]` in the program.
    pub fn from_entities() -> Self {
        let mut registry = Self::empty();
        for scoped in inventory::iter::<ScopedTable> {
            registry = registry.with_table(scoped.table, scoped.column);
        }
        for global in inventory::iter::<GlobalTable> {
            registry = registry.with_global_access(
                global.table,
                if global.writable {
                    GlobalAccess::ReadWrite
                } else {
                    GlobalAccess::ReadOnly
                },
            );
        }
        registry
    }

    /// Adds an entity explicitly (useful when an entity lives in a crate the linker might
    /// drop, or in tests).
    pub fn with<E: TenantScoped>(self) -> Self {
        self.with_table(E::TABLE, E::TENANT_COLUMN)
    }

    /// Adds a global entity explicitly.
    pub fn with_global_entity<E: Global>(self) -> Self {
        let access = if E::WRITABLE {
            GlobalAccess::ReadWrite
        } else {
            GlobalAccess::ReadOnly
        };
        self.with_global_access(E::TABLE, access)
    }

    /// Adds a tenant-scoped table by name. The framework's own tables (see
    /// [`is_reserved`]) are never added.
    pub fn with_table(mut self, table: &str, column: &str) -> Self {
        if !is_reserved(table) {
            let key = table.to_ascii_lowercase();
            self.globals.remove(&key);
            self.tables.insert(key, column.to_owned());
        }
        self
    }

    /// Adds a read-only global table by name: every storefront reads the same rows.
    pub fn with_global(self, table: &str) -> Self {
        self.with_global_access(table, GlobalAccess::ReadOnly)
    }

    /// Adds a global table with the given access. A scoped table of the same name stays
    /// scoped, and the framework's own tables are never added.
    pub fn with_global_access(mut self, table: &str, access: GlobalAccess) -> Self {
        let key = table.to_ascii_lowercase();
        if !is_reserved(&key) && !self.tables.contains_key(&key) {
            self.globals.insert(key, access);
        }
        self
    }

    /// Allows a function (for example one of the application's own SQL functions) in
    /// statements sent through tenant connections. Only allow functions that read nothing
    /// but their arguments.
    pub fn with_function(mut self, name: &str) -> Self {
        self.functions.insert(name.to_ascii_lowercase());
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

    /// The access of `table` if it is a registered global table (case-insensitive).
    pub fn global(&self, table: &str) -> Option<GlobalAccess> {
        if let Some(access) = self.globals.get(table) {
            return Some(*access);
        }
        self.globals.get(&table.to_ascii_lowercase()).copied()
    }

    /// Whether a tenant connection may call the function `name` (case-insensitive): the
    /// built-in allow list of pure scalar, aggregate and window functions, or one added
    /// with [`Self::with_function`].
    pub fn function_allowed(&self, name: &str) -> bool {
        let lower = name.to_ascii_lowercase();
        crate::rewrite::allow::builtin_function(&lower) || self.functions.contains(&lower)
    }

    /// Whether `lower` (lower case) was added with [`Self::with_function`].
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub(crate) fn has_function(&self, lower: &str) -> bool {
        self.functions.contains(lower)
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

    /// The global tables, sorted.
    pub fn globals(&self) -> Vec<(&str, GlobalAccess)> {
        let mut tables: Vec<_> = self.globals.iter().map(|(t, a)| (t.as_str(), *a)).collect();
        tables.sort_by_key(|(t, _)| *t);
        tables
    }

    /// The functions added with [`Self::with_function`], sorted.
    pub fn functions(&self) -> Vec<&str> {
        let mut functions: Vec<_> = self.functions.iter().map(String::as_str).collect();
        functions.sort();
        functions
    }

    /// True when no scoped table is registered.
    pub fn is_empty(&self) -> bool {
        self.tables.is_empty()
    }
}
