//! Row-level security in tests (PostgreSQL): an application role per test, bound by the
//! policies, and the policies applied as an operator would (`tenancy rls apply`).

use sea_orm::ConnectionTrait;
use tenancy_core::{rls::RowLevelSecurity, Registry};
use uuid::Uuid;

use crate::TestDb;

/// A role created for one test (roles belong to the whole server, so each test has its
/// own). It can log in without a password, as every role can on the test server (trust
/// authentication on 127.0.0.1).
pub struct AppRole {
    /// The role's name.
    pub name: String,
}

impl AppRole {
    /// Creates the role on `test`'s server: `LOGIN`, no superuser, no `BYPASSRLS`.
    pub async fn create(test: &TestDb) -> AppRole {
        let name = format!(
            "tenancy_test_app_{}",
            &Uuid::new_v4().simple().to_string()[..12]
        );
        test.db
            .execute_unprepared(&format!(
                "CREATE ROLE \"{name}\" LOGIN NOSUPERUSER NOBYPASSRLS"
            ))
            .await
            .unwrap_or_else(|e| panic!("CREATE ROLE {name}: {e}"));
        AppRole { name }
    }

    /// [`Self::create`], then [`Self::secure`] with `registry`.
    pub async fn secured(test: &TestDb, registry: &Registry) -> AppRole {
        let role = Self::create(test).await;
        role.secure(test, registry).await;
        role
    }

    /// Tears `test` down, then drops the role (its privileges went with the database).
    pub async fn teardown(self, test: TestDb) {
        let admin = test.admin_url().map(str::to_owned);
        test.teardown().await;
        if let Some(admin) = admin {
            self.drop(&admin).await;
        }
    }

    /// Row-level security whose storefront statements take this role.
    pub fn options(&self) -> RowLevelSecurity {
        RowLevelSecurity::new()
            .role(&self.name)
            .expect("a valid role name")
    }

    /// `test`'s URL, logging in as this role.
    pub fn url(&self, test: &TestDb) -> String {
        let url = &test.url;
        let start = url.find("://").map_or(0, |i| i + 3);
        let end = url[start..].find('@').map_or(start, |i| start + i + 1);
        format!("{}{}@{}", &url[..start], self.name, &url[end..])
    }

    /// Installs the policies in `test`'s shared database (its current schema) and grants
    /// this role what it needs, then checks that nothing is left to report.
    pub async fn secure(&self, test: &TestDb, registry: &Registry) {
        let applied = tenancy_core::rls::apply(&test.db, registry, Some(&self.name), None)
            .await
            .unwrap_or_else(|e| panic!("rls apply: {e}"));
        assert!(
            !applied.changed.is_empty(),
            "the first apply installs something: {applied:?}"
        );
        let findings = tenancy_core::rls::check(&test.db, registry, Some(&self.name), None)
            .await
            .unwrap_or_else(|e| panic!("rls check: {e}"));
        assert!(findings.is_empty(), "after apply: {findings:?}");
    }

    /// Drops the role (after `test`'s teardown: its privileges went with the database).
    /// A privilege left in another database keeps it; `.ci/run` drops such leftovers.
    pub async fn drop(self, admin_url: &str) {
        if let Ok(admin) = sea_orm::Database::connect(admin_url).await {
            let sql = format!("DROP ROLE IF EXISTS \"{}\"", self.name);
            if let Err(e) = admin.execute_unprepared(&sql).await {
                eprintln!("warning: {sql}: {e}");
            }
            let _ = admin.close().await;
        }
    }
}
