//! Test support: a fresh, uniquely named database per test on each backend.
//!
//! - SQLite: a temporary file; always available.
//! - PostgreSQL: `TENANCY_TEST_POSTGRES_URL` (e.g. `postgres://postgres@127.0.0.1:5432/postgres`).
//! - MySQL/MariaDB: `TENANCY_TEST_MYSQL_URL` (e.g. `mysql://root@127.0.0.1:3306/test`).
//!
//! When a URL is unset the test prints that it was skipped and why, unless
//! `TENANCY_TEST_REQUIRE_SERVERS=1` (set by `.ci/run`): then a missing URL or an
//! unreachable server fails the test.

pub mod arena;
pub mod confinement;
pub mod fleet;
pub mod matrix;
pub mod movekit;
pub mod oracle;
pub mod pgbouncer;
pub mod rls;

/// One scenario, one test per backend: `on_every_backend!(name, scenario)` defines module
/// `name` holding `#[tokio::test]`s `sqlite`, `postgres` and `mysql`, each awaiting
/// `scenario(Backend::X)`; arguments after the scenario go to `#[tokio::test(...)]`
/// (`flavor = "multi_thread", worker_threads = 4`). Run one scenario with `cargo test -p tenancy-tests name::`, one
/// backend of every scenario with `cargo test -p tenancy-tests postgres`.
///
/// ```
/// use tenancy_tests::{on_every_backend, Backend};
///
/// async fn counts_storefronts(backend: Backend) {
///     let _ = backend; // open a TestDb::new(backend) and assert on it
/// }
///
/// on_every_backend!(storefront_count, counts_storefronts);
/// # fn main() {}
/// ```
#[macro_export]
macro_rules! on_every_backend {
    ($name:ident, $scenario:expr $(, $($runtime:tt)+)?) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            #[tokio::test$(($($runtime)+))?]
            async fn sqlite() {
                ($scenario)($crate::Backend::Sqlite).await
            }

            #[tokio::test$(($($runtime)+))?]
            async fn postgres() {
                ($scenario)($crate::Backend::Postgres).await
            }

            #[tokio::test$(($($runtime)+))?]
            async fn mysql() {
                ($scenario)($crate::Backend::MySql).await
            }
        }
    };
}

/// The workspace README's Rust snippets, compiled as this crate's doctests, so the first
/// code a newcomer reads builds as written.
#[cfg(doctest)]
#[doc = include_str!("../../README.md")]
pub struct ReadmeDoctests;

use std::fmt;

use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use uuid::Uuid;

/// A backend under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
    MySql,
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::MySql => "mysql",
        })
    }
}

/// A database created for one test, dropped by [`TestDb::teardown`].
pub struct TestDb {
    pub backend: Backend,
    pub url: String,
    pub db: DatabaseConnection,
    name: String,
    admin_url: Option<String>,
}

pub(crate) fn require_servers() -> bool {
    std::env::var("TENANCY_TEST_REQUIRE_SERVERS").is_ok_and(|v| v == "1" || v == "true")
}

/// Replaces the database name (the URL path) of `url`.
pub fn with_database(url: &str, name: &str) -> String {
    tenancy_core::DatabaseUrl::parse(url)
        .expect("a database URL")
        .with_database(name)
        .as_str()
        .to_owned()
}

impl TestDb {
    /// A fresh empty database on `backend`, or `None` if the backend is not configured
    /// (and servers are not required).
    pub async fn create(backend: Backend) -> Option<TestDb> {
        let name = format!("tenancy_test_{}", Uuid::new_v4().simple());
        match backend {
            Backend::Sqlite => {
                let path = std::env::temp_dir().join(format!("{name}.sqlite"));
                let url = format!("sqlite://{}?mode=rwc", path.display());
                let db = Database::connect(&url)
                    .await
                    .unwrap_or_else(|e| panic!("sqlite {url}: {e}"));
                Some(TestDb {
                    backend,
                    url,
                    db,
                    name: path.display().to_string(),
                    admin_url: None,
                })
            }
            Backend::Postgres | Backend::MySql => {
                let var = if backend == Backend::Postgres {
                    "TENANCY_TEST_POSTGRES_URL"
                } else {
                    "TENANCY_TEST_MYSQL_URL"
                };
                let Some(admin_url) = std::env::var(var).ok().filter(|v| !v.trim().is_empty())
                else {
                    if require_servers() {
                        panic!("{var} is not set and TENANCY_TEST_REQUIRE_SERVERS=1");
                    }
                    eprintln!("SKIPPED {backend} test: {var} is empty or not set");
                    return None;
                };
                let admin = Database::connect(&admin_url).await.unwrap_or_else(|e| {
                    panic!("{backend} server at {var}={admin_url} is unreachable: {e}")
                });
                let create = match backend {
                    Backend::Postgres => format!("CREATE DATABASE \"{name}\""),
                    _ => format!("CREATE DATABASE `{name}`"),
                };
                admin
                    .execute_unprepared(&create)
                    .await
                    .unwrap_or_else(|e| panic!("{backend}: {create}: {e}"));
                let _ = admin.close().await;
                let url = with_database(&admin_url, &name);
                let db = Database::connect(&url)
                    .await
                    .unwrap_or_else(|e| panic!("{backend} {url}: {e}"));
                Some(TestDb {
                    backend,
                    url,
                    db,
                    name,
                    admin_url: Some(admin_url),
                })
            }
        }
    }

    /// A fresh database with the SmartSeller schema and two global countries.
    pub async fn migrated(backend: Backend) -> Option<TestDb> {
        let test = Self::create(backend).await?;
        Migrator::up(&test.db, None)
            .await
            .unwrap_or_else(|e| panic!("{backend}: migrations failed: {e}"));
        let insert = Statement::from_string(
            test.db.get_database_backend(),
            "INSERT INTO countries (code, name) VALUES ('US', 'United States'), ('DE', 'Germany')",
        );
        test.db
            .execute_raw(insert)
            .await
            .unwrap_or_else(|e| panic!("{backend}: seeding countries: {e}"));
        Some(test)
    }

    /// The server URL the test database was created from (none for SQLite).
    pub fn admin_url(&self) -> Option<&str> {
        self.admin_url.as_deref()
    }

    /// The SeaORM backend.
    pub fn db_backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Drops the database.
    pub async fn teardown(self) {
        let _ = self.db.close().await;
        match (&self.backend, &self.admin_url) {
            (Backend::Sqlite, _) => {
                let _ = std::fs::remove_file(&self.name);
            }
            (backend, Some(admin_url)) => {
                if let Ok(admin) = Database::connect(admin_url).await {
                    let drop = match backend {
                        Backend::Postgres => {
                            format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name)
                        }
                        _ => format!("DROP DATABASE IF EXISTS `{}`", self.name),
                    };
                    if let Err(e) = admin.execute_unprepared(&drop).await {
                        eprintln!("warning: {drop}: {e}");
                    }
                    let _ = admin.close().await;
                }
            }
            _ => {}
        }
    }
}

impl Backend {
    /// `name` quoted as an identifier of this backend.
    pub fn quote(self, name: &str) -> String {
        match self {
            Backend::MySql => format!("`{name}`"),
            _ => format!("\"{name}\""),
        }
    }
}

/// Rewrites `?` placeholders to `$1, $2, ...` for PostgreSQL, and `"` identifier quotes to
/// backticks for MySQL, so one SQL text serves every backend in tests.
pub fn sql_for(backend: DbBackend, sql: &str) -> String {
    match backend {
        DbBackend::Postgres => {
            let mut out = String::with_capacity(sql.len() + 8);
            let mut n = 0;
            let mut in_string = false;
            for ch in sql.chars() {
                if ch == '\'' {
                    in_string = !in_string;
                }
                if ch == '?' && !in_string {
                    n += 1;
                    out.push('$');
                    out.push_str(&n.to_string());
                } else {
                    out.push(ch);
                }
            }
            out
        }
        DbBackend::MySql => sql.replace('"', "`"),
        _ => sql.to_owned(),
    }
}

/// A statement from test SQL written with `?` and `"` (see [`sql_for`]).
pub fn stmt(
    backend: DbBackend,
    sql: &str,
    values: impl IntoIterator<Item = sea_orm::Value>,
) -> Statement {
    Statement::from_sql_and_values(backend, sql_for(backend, sql), values)
}

/// A migrator used by tests: the application's migrations plus extra ones.
pub mod migrators {
    use migration::{Migrator, MigratorTrait};
    use sea_orm_migration::prelude::*;

    /// Fails if a table named `fail_here` exists where it runs (so a test can make exactly
    /// one storefront fail), else creates `fleet_probe`.
    pub struct ProbeMigration;

    impl MigrationName for ProbeMigration {
        fn name(&self) -> &str {
            "m20990101_000001_fleet_probe"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for ProbeMigration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            if manager.has_table("fail_here").await? {
                return Err(DbErr::Migration(
                    "injected failure: table fail_here exists".into(),
                ));
            }
            manager
                .create_table(
                    Table::create()
                        .table("fleet_probe")
                        .if_not_exists()
                        .col(ColumnDef::new("id").integer().not_null().primary_key())
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .drop_table(Table::drop().table("fleet_probe").if_exists().to_owned())
                .await
        }
    }

    /// A migration that always fails.
    pub struct BrokenMigration;

    impl MigrationName for BrokenMigration {
        fn name(&self) -> &str {
            "m20990101_000002_broken"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for BrokenMigration {
        async fn up(&self, _: &SchemaManager) -> Result<(), DbErr> {
            Err(DbErr::Migration(
                "injected failure: this migration always fails".into(),
            ))
        }

        async fn down(&self, _: &SchemaManager) -> Result<(), DbErr> {
            Ok(())
        }
    }

    /// The application's migrations, then [`ProbeMigration`].
    pub struct MigratorV2;

    #[async_trait::async_trait]
    impl MigratorTrait for MigratorV2 {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            let mut m = Migrator::migrations();
            m.push(Box::new(ProbeMigration));
            m
        }
    }

    /// A real schema change: a column on `customers` and an index on it.
    pub struct LoyaltyPoints;

    impl MigrationName for LoyaltyPoints {
        fn name(&self) -> &str {
            "m20990101_000003_loyalty_points"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for LoyaltyPoints {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .alter_table(
                    Table::alter()
                        .table("customers")
                        .add_column(
                            ColumnDef::new("loyalty_points")
                                .integer()
                                .not_null()
                                .default(0),
                        )
                        .to_owned(),
                )
                .await?;
            manager
                .create_index(
                    Index::create()
                        .name("ix_customers_loyalty_points")
                        .table("customers")
                        .col("loyalty_points")
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .drop_index(
                    Index::drop()
                        .name("ix_customers_loyalty_points")
                        .table("customers")
                        .to_owned(),
                )
                .await?;
            manager
                .alter_table(
                    Table::alter()
                        .table("customers")
                        .drop_column("loyalty_points")
                        .to_owned(),
                )
                .await
        }
    }

    /// The application's migrations, then [`LoyaltyPoints`].
    pub struct MigratorWithLoyalty;

    #[async_trait::async_trait]
    impl MigratorTrait for MigratorWithLoyalty {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            let mut m = Migrator::migrations();
            m.push(Box::new(LoyaltyPoints));
            m
        }
    }

    /// The application's migrations, then [`BrokenMigration`].
    pub struct BrokenMigrator;

    #[async_trait::async_trait]
    impl MigratorTrait for BrokenMigrator {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            let mut m = Migrator::migrations();
            m.push(Box::new(BrokenMigration));
            m
        }
    }

    /// Creates `ticket_kinds`, a global lookup table, and `tickets`, a tenant-scoped table
    /// whose key the database hands out (a PostgreSQL `bigserial`, MySQL `AUTO_INCREMENT`,
    /// SQLite `AUTOINCREMENT`) and whose rows go with their kind (`ON DELETE CASCADE` from
    /// the global table).
    pub struct TicketsMigration;

    impl MigrationName for TicketsMigration {
        fn name(&self) -> &str {
            "m20990101_000003_tickets"
        }
    }

    #[async_trait::async_trait]
    impl MigrationTrait for TicketsMigration {
        async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .create_table(
                    Table::create()
                        .table("ticket_kinds")
                        .if_not_exists()
                        .col(
                            ColumnDef::new("code")
                                .string_len(16)
                                .not_null()
                                .primary_key(),
                        )
                        .to_owned(),
                )
                .await?;
            manager
                .create_table(
                    Table::create()
                        .table("tickets")
                        .if_not_exists()
                        .col(
                            ColumnDef::new("id")
                                .big_integer()
                                .not_null()
                                .auto_increment()
                                .primary_key(),
                        )
                        .col(ColumnDef::new("storefront_id").uuid().not_null())
                        .col(ColumnDef::new("note").string().not_null())
                        .col(ColumnDef::new("kind").string_len(16).null())
                        .foreign_key(
                            ForeignKey::create()
                                .name("fk_tickets_kind")
                                .from("tickets", "kind")
                                .to("ticket_kinds", "code")
                                .on_delete(ForeignKeyAction::Cascade),
                        )
                        .to_owned(),
                )
                .await
        }

        async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
            manager
                .drop_table(Table::drop().table("tickets").if_exists().to_owned())
                .await?;
            manager
                .drop_table(Table::drop().table("ticket_kinds").if_exists().to_owned())
                .await
        }
    }

    /// The application's migrations, then [`TicketsMigration`] (register `tickets` with
    /// `Registry::with_table("tickets", "storefront_id")` and `ticket_kinds` with
    /// `with_global`).
    pub struct MigratorWithTickets;

    #[async_trait::async_trait]
    impl MigratorTrait for MigratorWithTickets {
        fn migrations() -> Vec<Box<dyn MigrationTrait>> {
            let mut m = Migrator::migrations();
            m.push(Box::new(TicketsMigration));
            m
        }
    }
}

impl TestDb {
    /// The URL of a new, uniquely named database on this test's server (not created).
    pub fn sibling_url(&self, prefix: &str) -> String {
        let name = format!("{prefix}{}", Uuid::new_v4().simple());
        match self.backend {
            Backend::Sqlite => format!(
                "sqlite://{}?mode=rwc",
                std::env::temp_dir()
                    .join(format!("{name}.sqlite"))
                    .display()
            ),
            _ => with_database(self.admin_url.as_deref().unwrap_or(&self.url), &name),
        }
    }

    /// A unique schema name (a database on MySQL, so it must be unique on the server).
    pub fn schema_name(&self) -> String {
        format!(
            "tenancy_test_s{}",
            &Uuid::new_v4().simple().to_string()[..16]
        )
    }
}

/// The database a server URL names (`None` for SQLite URLs and URLs naming none).
pub fn database_of(url: &str) -> Option<String> {
    tenancy_core::DatabaseUrl::parse(url).ok()?.database()
}
