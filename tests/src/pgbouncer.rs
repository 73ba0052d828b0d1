//! PgBouncer in transaction mode, in front of the test PostgreSQL server
//! (`TENANCY_TEST_PGBOUNCER_URL`, started by `scripts/servers`).

use tenancy_core::{DatabaseUrl, TransactionPooler};

use crate::{require_servers, with_database};

/// The pooler's URL, or `None` (the test is skipped) when it is not configured and servers
/// are not required.
pub fn url() -> Option<String> {
    match std::env::var("TENANCY_TEST_PGBOUNCER_URL")
        .ok()
        .filter(|v| !v.trim().is_empty())
    {
        Some(url) => Some(url),
        None if require_servers() => {
            panic!("TENANCY_TEST_PGBOUNCER_URL is not set and TENANCY_TEST_REQUIRE_SERVERS=1 (scripts/servers up starts PgBouncer)")
        }
        None => {
            eprintln!("SKIPPED PgBouncer test: TENANCY_TEST_PGBOUNCER_URL is empty or not set");
            None
        }
    }
}

fn address(url: &str) -> String {
    DatabaseUrl::parse(url)
        .expect("a PostgreSQL URL")
        .server()
        .expect("a server URL")
}

/// The pooler as the framework is told of it: PgBouncer's address, and the server behind it
/// (the address of `direct`, a URL of the server PgBouncer forwards to).
pub fn pooler(pgbouncer: &str, direct: &str) -> TransactionPooler {
    TransactionPooler::new(&address(pgbouncer), &address(direct)).expect("a valid pooler")
}

/// `direct_url`'s database, reached through PgBouncer.
pub fn through(pgbouncer: &str, direct_url: &str) -> String {
    let name = crate::database_of(direct_url).expect("a database URL");
    with_database(pgbouncer, &name)
}

/// Transactions PgBouncer has carried for `database` since it started (`SHOW STATS` on its
/// admin console): proof that a test's statements went through it.
pub async fn transactions(pgbouncer: &str, database: &str) -> i64 {
    use sea_orm::sqlx::{self, Connection, Row};
    // The admin console speaks the simple query protocol only.
    let mut admin = sqlx::PgConnection::connect(&with_database(pgbouncer, "pgbouncer"))
        .await
        .expect("PgBouncer's admin console");
    let rows = sqlx::raw_sql(sqlx::AssertSqlSafe("SHOW STATS"))
        .fetch_all(&mut admin)
        .await
        .expect("SHOW STATS");
    let mut total = 0;
    for row in rows {
        let name: String = row.try_get("database").expect("database column");
        if name == database {
            // NUMERIC, in text: the simple protocol's format.
            let value = row
                .try_get_raw("total_xact_count")
                .expect("total_xact_count column");
            let text = value.as_str().expect("a text value");
            total += text.parse::<i64>().expect("a count");
        }
    }
    let _ = admin.close().await;
    total
}

/// `url` logging in as `user` instead.
pub fn as_user(url: &str, user: &str) -> String {
    let mut parsed = url::Url::parse(url).expect("a URL");
    parsed.set_username(user).expect("a URL with a user");
    parsed.to_string()
}

/// Server connections PgBouncer holds for `user`, per database (`SHOW SERVERS`).
pub async fn servers(pgbouncer: &str, user: &str) -> Vec<String> {
    use sea_orm::sqlx::{self, Connection, Row};
    let mut admin = sqlx::PgConnection::connect(&with_database(pgbouncer, "pgbouncer"))
        .await
        .expect("PgBouncer's admin console");
    let rows = sqlx::raw_sql(sqlx::AssertSqlSafe("SHOW SERVERS"))
        .fetch_all(&mut admin)
        .await
        .expect("SHOW SERVERS");
    let _ = admin.close().await;
    rows.iter()
        .filter(|row| row.try_get::<String, _>("user").is_ok_and(|u| u == user))
        .filter_map(|row| row.try_get::<String, _>("database").ok())
        .collect()
}

/// `options` with PgBouncer named as a transaction pooler, connected to `direct_url`'s
/// database through it.
pub async fn connect(
    options: tenancy_core::TenancyOptions,
    pgbouncer: &str,
    direct_url: &str,
) -> Result<tenancy_core::Tenancy, tenancy_core::TenancyError> {
    options
        .transaction_pooler(pooler(pgbouncer, direct_url))
        .connect(&through(pgbouncer, direct_url))
        .await
}
