//! Transaction poolers (PgBouncer in `pool_mode = transaction`, and its kin) in front of
//! PostgreSQL servers.
//!
//! Behind a transaction pooler a client connection owns a server connection for one
//! transaction only: the next transaction, or the next statement outside one, may run on
//! another server connection, which another client used a moment ago. So nothing may
//! outlive a transaction there: no `SET` of a session, no session advisory lock, no
//! `LISTEN`, and no server-side prepared statement (PgBouncer 1.18 does not carry them
//! across server connections; sqlx names and caches every statement it prepares, so two
//! clients' `sqlx_s_1` meet on one server connection).
//!
//! Name each pooler with [`TransactionPooler`] (where it listens and which server it
//! forwards to) in [`TenancyOptions::transaction_pooler`](crate::TenancyOptions::transaction_pooler)
//! or `database_config.transaction_poolers` in the configuration. Then, for every URL
//! that points at a pooler (the shared database's and any storefront database's):
//!
//! - each storefront statement runs in a transaction of the framework's own, on a pooled
//!   connection it holds from `BEGIN` to `COMMIT`, as an unnamed statement (parsed,
//!   bound and executed inside that one transaction); a storefront's own transaction runs
//!   the same way, its nested transactions as savepoints;
//! - what needs a session goes to the server directly, at the same URL with the
//!   pooler's address replaced by the server's: the directory, the watcher's `LISTEN` and
//!   its lease, DDL (provisioning, fleet migrations, row-level security), and moves.
//!   [`Tenancy::shared`](crate::Tenancy::shared) is that direct connection too.
//!
//! ```
//! use tenancy_core::pooler::TransactionPooler;
//!
//! let pgbouncer = TransactionPooler::new("127.0.0.1:6432", "127.0.0.1:5432")?;
//! assert!(pgbouncer.covers("postgres://app@127.0.0.1:6432/shop"));
//! assert_eq!(
//!     pgbouncer.direct("postgres://app@127.0.0.1:6432/shop?sslmode=disable"),
//!     "postgres://app@127.0.0.1:5432/shop?sslmode=disable"
//! );
//! # Ok::<(), tenancy_core::TenancyError>(())
//! ```
//!
//! The cost: a statement outside a transaction takes three round trips more than a
//! cached prepared statement on a direct connection (`BEGIN`, the statement's parse, then
//! its bind and execute, then `COMMIT`; a read's `ROLLBACK` is sent after its answer).
//! `docs/placements.md` gives the PgBouncer settings to use and `docs/benchmarks.md` the
//! measured cost.

use crate::{DatabaseUrl, TenancyError};

/// A transaction pooler: the address it listens on and the PostgreSQL server it forwards
/// to (both `host:port`).
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
pub struct TransactionPooler {
    /// Where the pooler listens, as URLs name it (`pgbouncer.internal:6432`).
    pub address: String,
    /// The server behind it, as a direct URL would name it (`db1.internal:5432`).
    pub direct: String,
}

impl TransactionPooler {
    /// A pooler listening on `address` in front of the server at `direct`. Both are
    /// `host:port`; a missing port, or anything that is not a host, is an error naming it.
    pub fn new(address: &str, direct: &str) -> Result<Self, TenancyError> {
        let pooler = Self {
            address: address.trim().to_owned(),
            direct: direct.trim().to_owned(),
        };
        pooler.validate()?;
        Ok(pooler)
    }

    /// Checks both addresses (for poolers read from a configuration).
    pub fn validate(&self) -> Result<(), TenancyError> {
        for (key, value) in [("address", &self.address), ("direct", &self.direct)] {
            let ok = value.rsplit_once(':').is_some_and(|(host, port)| {
                !host.is_empty()
                    && !host.contains(['/', '@', '?', '#', ' '])
                    && port.parse::<u16>().is_ok_and(|p| p > 0)
            });
            if !ok {
                return Err(TenancyError::Config {
                    key: format!("transaction_poolers.{key}"),
                    message: format!("{value:?} is not host:port (e.g. 127.0.0.1:6432)"),
                });
            }
        }
        if self.address == self.direct {
            return Err(TenancyError::Config {
                key: "transaction_poolers.direct".into(),
                message: format!(
                    "the pooler at {} cannot be its own server: name the server it forwards to",
                    self.address
                ),
            });
        }
        Ok(())
    }

    /// Whether `url` is a PostgreSQL URL pointing at this pooler.
    pub fn covers(&self, url: &str) -> bool {
        address_of(url).is_some_and(|a| a == self.address)
    }

    /// `url` with the pooler's address replaced by its server's (unchanged if `url` does
    /// not point at this pooler).
    pub fn direct(&self, url: &str) -> String {
        if !self.covers(url) {
            return url.to_owned();
        }
        let Ok(parsed) = url::Url::parse(url) else {
            return url.to_owned();
        };
        format!(
            "{}{}{}",
            &parsed[..url::Position::BeforeHost],
            self.direct,
            &parsed[url::Position::AfterPort..]
        )
    }
}

/// `host:port` of a PostgreSQL URL (the default port when it names none).
fn address_of(url: &str) -> Option<String> {
    let parsed = DatabaseUrl::parse(url).ok()?;
    if parsed.backend() != sea_orm::DbBackend::Postgres {
        return None;
    }
    parsed.address()
}

/// The poolers of one tenancy.
#[derive(Clone, Debug, Default)]
pub(crate) struct Poolers(Vec<TransactionPooler>);

impl Poolers {
    pub(crate) fn new(poolers: Vec<TransactionPooler>) -> Self {
        Self(poolers)
    }

    /// Whether `url` points at one of them.
    pub(crate) fn covers(&self, url: &str) -> bool {
        self.0.iter().any(|p| p.covers(url))
    }

    /// The direct URL for `url` (itself when no pooler covers it).
    pub(crate) fn direct(&self, url: &str) -> String {
        self.0
            .iter()
            .find(|p| p.covers(url))
            .map_or_else(|| url.to_owned(), |p| p.direct(url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_checked_and_urls_mapped() {
        assert!(TransactionPooler::new("127.0.0.1", "127.0.0.1:5432").is_err());
        assert!(TransactionPooler::new("127.0.0.1:6432", "127.0.0.1:6432").is_err());
        assert!(TransactionPooler::new("a/b:6432", "127.0.0.1:5432").is_err());
        let p = TransactionPooler::new("db:6432", "db:5432").expect("valid");
        assert!(p.covers("postgresql://u:p@db:6432/x"));
        assert!(!p.covers("postgres://u@db:5432/x"));
        assert!(!p.covers("postgres://u@db/x"), "the default port is 5432");
        assert!(!p.covers("mysql://u@db:6432/x"));
        assert_eq!(
            p.direct("postgres://u:p@db:6432/x?a=b"),
            "postgres://u:p@db:5432/x?a=b"
        );
        assert_eq!(
            p.direct("postgres://u@other:6432/x"),
            "postgres://u@other:6432/x"
        );
        let default_port = TransactionPooler::new("db:5432", "db2:5432").expect("valid");
        assert!(default_port.covers("postgres://u@db/x"));
        assert_eq!(
            default_port.direct("postgres://u@db/x"),
            "postgres://u@db2:5432/x"
        );
    }
}
