//! The test fleet's servers beyond the first of each backend (`scripts/servers` starts
//! them): `TENANCY_TEST_POSTGRES2_URL`, `TENANCY_TEST_POSTGRES3_URL`,
//! `TENANCY_TEST_MYSQL2_URL`.

use uuid::Uuid;

use crate::{require_servers, with_database};

/// One server of the fleet, named by the variable that holds its URL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Server {
    /// `TENANCY_TEST_POSTGRES_URL` (127.0.0.1:5432).
    Postgres1,
    /// `TENANCY_TEST_POSTGRES2_URL` (127.0.0.1:5433).
    Postgres2,
    /// `TENANCY_TEST_POSTGRES3_URL` (127.0.0.1:5434).
    Postgres3,
    /// `TENANCY_TEST_MYSQL_URL` (127.0.0.1:3306).
    MySql1,
    /// `TENANCY_TEST_MYSQL2_URL` (127.0.0.1:3307).
    MySql2,
}

impl Server {
    /// The variable naming the server's URL.
    pub fn var(self) -> &'static str {
        match self {
            Server::Postgres1 => "TENANCY_TEST_POSTGRES_URL",
            Server::Postgres2 => "TENANCY_TEST_POSTGRES2_URL",
            Server::Postgres3 => "TENANCY_TEST_POSTGRES3_URL",
            Server::MySql1 => "TENANCY_TEST_MYSQL_URL",
            Server::MySql2 => "TENANCY_TEST_MYSQL2_URL",
        }
    }

    /// The server's URL, or `None` (the test is skipped) when it is not configured and
    /// servers are not required.
    pub fn url(self) -> Option<String> {
        let var = self.var();
        match std::env::var(var).ok().filter(|v| !v.trim().is_empty()) {
            Some(url) => Some(url),
            None if require_servers() => {
                panic!("{var} is not set and TENANCY_TEST_REQUIRE_SERVERS=1 (scripts/servers up starts the fleet)")
            }
            None => {
                eprintln!("SKIPPED: {var} is empty or not set");
                None
            }
        }
    }

    /// The URL of a new, uniquely named database on this server (not created).
    pub fn database_url(self, prefix: &str) -> Option<String> {
        let url = self.url()?;
        Some(with_database(
            &url,
            &format!("{prefix}{}", Uuid::new_v4().simple()),
        ))
    }
}

/// Whether every server in `servers` is configured (a required one that is not panics).
pub fn all_configured(servers: &[Server]) -> bool {
    servers.iter().all(|s| s.url().is_some())
}
