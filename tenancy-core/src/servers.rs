//! The fleet's database servers: their names and capacities, which server holds which
//! storefront database, how loaded each is, and where a new storefront database goes.
//!
//! A server is named in `database_config.servers` (or built with [`ServerConfig::new`])
//! with a URL on it (any database: the name is replaced by each storefront's), a capacity
//! (a weight: a server of capacity 2 should carry twice the load of one of capacity 1;
//! 0 takes nothing new) and, optionally, the most storefront databases it may hold:
//!
//! ```yaml
//! database_config:
//!   tenant_database_pattern: "postgres://app@db1:5432/storefront_{storefront_id}"
//!   servers:
//!     - { name: db1, url: "postgres://app@db1:5432/postgres", capacity: 1 }
//!     - { name: db2, url: "postgres://app@db2:5432/postgres", capacity: 2, max_storefronts: 500 }
//! ```
//!
//! A storefront database belongs to the server whose address (`host:port`, after a
//! [transaction pooler](crate::pooler) is replaced by the server behind it) its URL
//! names, so the servers' URLs must name hosts as the storefronts' URLs do (`db1`, not
//! its IP address, if the storefronts say `db1`).
//!
//! [`Servers::place_new`] picks the server for a new storefront database: the one with
//! the fewest bytes of storefront databases per unit of capacity that has room (capacity
//! above 0, under `max_storefronts`, and answering). [`Servers::survey`] measures every
//! storefront database (rows of the scoped tables, bytes) for the
//! [rebalancer](crate::rebalance).
//!
//! ```
//! use tenancy_core::servers::{ServerConfig, Servers};
//!
//! let servers = Servers::new(vec![
//!     ServerConfig::new("db1", "postgres://app@db1:5432/postgres"),
//!     ServerConfig::new("db2", "postgres://app@db2:5432/postgres").capacity(2.0),
//! ])?;
//! let on = servers.of_url("postgres://app@db2:5432/storefront_42", |u| u.to_owned());
//! assert_eq!(on.map(|s| s.name.as_str()), Some("db2"));
//! assert_eq!(
//!     servers.get("db1")?.database_url("storefront_42"),
//!     "postgres://app@db1:5432/storefront_42"
//! );
//! assert!(Servers::new(vec![ServerConfig::new("db1", "not a url")]).is_err());
//! # Ok::<(), tenancy_core::TenancyError>(())
//! ```

use std::collections::BTreeMap;

use futures_util::StreamExt;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde::{Deserialize, Serialize};

use crate::{
    backend::{
        database::{connect_one, db_step_failed},
        redact, Dialect,
    },
    rebalance::Holding,
    DatabaseUrl, Placement, StorefrontId, Tenancy, TenancyError, TenantState,
};

/// One server of the fleet, as the configuration names it.
#[derive(Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Its name (letters, digits, `_`, `-`, `.`).
    pub name: String,
    /// A URL on it (PostgreSQL or MySQL/MariaDB; the database part is replaced by each
    /// storefront's). May name a transaction pooler in front of it.
    pub url: String,
    /// Its weight (default 1); 0 takes no new storefront and is emptied by a rebalance.
    #[serde(default = "one")]
    pub capacity: f64,
    /// The most storefront databases it may hold (default: no limit).
    #[serde(default)]
    pub max_storefronts: Option<u32>,
}

fn one() -> f64 {
    1.0
}

impl std::fmt::Debug for ServerConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerConfig")
            .field("name", &self.name)
            .field("url", &redact(&self.url))
            .field("capacity", &self.capacity)
            .field("max_storefronts", &self.max_storefronts)
            .finish()
    }
}

impl ServerConfig {
    /// A server named `name` reached at `url`, of capacity 1 and no storefront limit.
    pub fn new(name: &str, url: &str) -> Self {
        Self {
            name: name.to_owned(),
            url: url.to_owned(),
            capacity: 1.0,
            max_storefronts: None,
        }
    }

    /// Sets its capacity (a weight).
    pub fn capacity(mut self, capacity: f64) -> Self {
        self.capacity = capacity;
        self
    }

    /// Sets the most storefront databases it may hold.
    pub fn max_storefronts(mut self, max: u32) -> Self {
        self.max_storefronts = Some(max);
        self
    }

    /// The URL of database `name` on this server (its credentials and parameters kept).
    pub fn database_url(&self, name: &str) -> String {
        match DatabaseUrl::parse(&self.url) {
            Ok(url) => url.with_database(name).to_string(),
            Err(_) => self.url.clone(),
        }
    }

    fn check(&self) -> Result<DatabaseUrl, String> {
        let name_ok = !self.name.is_empty()
            && self.name.len() <= 63
            && self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
        if !name_ok {
            return Err(format!(
                "`{}` is not a server name (letters, digits, `_`, `-`, `.`; at most 63)",
                self.name
            ));
        }
        let url =
            DatabaseUrl::parse(&self.url).map_err(|e| format!("server {}: {e}", self.name))?;
        if url.backend() == DbBackend::Sqlite {
            return Err(format!(
                "server {}: a SQLite database is a file, not a server",
                self.name
            ));
        }
        if url.server().is_none() {
            return Err(format!(
                "server {}: `{}` names no host",
                self.name,
                redact(&self.url)
            ));
        }
        if !(self.capacity.is_finite() && self.capacity >= 0.0) {
            return Err(format!(
                "server {}: capacity {} is not a weight >= 0",
                self.name, self.capacity
            ));
        }
        Ok(url)
    }
}

/// The fleet's servers, checked: names and addresses unique, URLs parsed.
#[derive(Clone, Debug, Default)]
pub struct Servers {
    list: Vec<ServerConfig>,
}

/// One server's storefront databases and their size, as [`Servers::place_new`] weighs them.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Occupancy {
    /// The server.
    pub server: String,
    /// Its capacity.
    pub capacity: f64,
    /// Storefront databases the directory places on it.
    pub storefronts: usize,
    /// Their size in bytes (`None`: the server did not answer).
    pub bytes: Option<u64>,
    /// Whether it may take another storefront (capacity, limit, answering).
    pub has_room: bool,
}

/// The fleet measured for the rebalancer ([`Servers::survey`]).
#[derive(Clone, Debug, Default)]
pub struct Survey {
    /// Every active storefront database on a named server, with its rows and bytes.
    pub holdings: Vec<Holding>,
    /// Storefronts that must not be moved now, and why (a move in progress, not active).
    pub busy: Vec<(StorefrontId, String)>,
}

impl Servers {
    /// Checks `list`: each name a plain word, each URL a PostgreSQL or MySQL/MariaDB
    /// server URL, capacities weights >= 0, no name or address twice. Errors name the
    /// key `database_config.servers[i]`.
    pub fn new(list: Vec<ServerConfig>) -> Result<Self, TenancyError> {
        let bad = |i: usize, message: String| TenancyError::Config {
            key: format!("tenant_strategy.database_config.servers[{i}]"),
            message,
        };
        let mut names = BTreeMap::new();
        let mut addresses = BTreeMap::new();
        for (i, s) in list.iter().enumerate() {
            let url = s.check().map_err(|m| bad(i, m))?;
            if let Some(j) = names.insert(s.name.clone(), i) {
                return Err(bad(
                    i,
                    format!("server {} is named twice (also [{j}])", s.name),
                ));
            }
            let address = address(&url).unwrap_or_default();
            if let Some(j) = addresses.insert(address.clone(), i) {
                return Err(bad(
                    i,
                    format!("{address} is server [{j}] already: one server, one name"),
                ));
            }
        }
        Ok(Self { list })
    }

    /// Whether no server is named.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    /// The servers, in the configuration's order.
    pub fn iter(&self) -> impl Iterator<Item = &ServerConfig> {
        self.list.iter()
    }

    /// The server named `name`; an error naming it otherwise.
    pub fn get(&self, name: &str) -> Result<&ServerConfig, TenancyError> {
        self.list
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| TenancyError::Config {
                key: "tenant_strategy.database_config.servers".into(),
                message: format!(
                    "no server is named {name} (the servers are: {})",
                    self.list
                        .iter()
                        .map(|s| s.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }

    /// The servers as the planner weighs them (capacity and storefront limit; each
    /// receiving).
    pub fn weights(&self) -> Vec<crate::rebalance::Server> {
        self.list
            .iter()
            .map(|s| crate::rebalance::Server {
                max_storefronts: s.max_storefronts.map(|m| m as usize),
                ..crate::rebalance::Server::new(&s.name, s.capacity)
            })
            .collect()
    }

    /// The server a database URL is on, comparing addresses after `direct` (which maps a
    /// pooler's address to its server's: pass [`Tenancy::direct_url`]).
    pub fn of_url(&self, url: &str, direct: impl Fn(&str) -> String) -> Option<&ServerConfig> {
        let wanted = address(&DatabaseUrl::parse(&direct(url)).ok()?)?;
        self.list.iter().find(|s| {
            DatabaseUrl::parse(&direct(&s.url))
                .ok()
                .and_then(|u| address(&u))
                .as_deref()
                == Some(wanted.as_str())
        })
    }

    /// Refuses servers of another backend than the shared database's: a storefront
    /// database there could not be migrated, served or moved by this fleet.
    fn same_backend(&self, tenancy: &Tenancy) -> Result<(), TenancyError> {
        let backend = tenancy.shared().get_database_backend();
        for (i, s) in self.list.iter().enumerate() {
            let theirs = DatabaseUrl::parse(&s.url)?.backend();
            if theirs != backend {
                return Err(TenancyError::Config {
                    key: format!("tenant_strategy.database_config.servers[{i}]"),
                    message: format!(
                        "server {} is {theirs:?} but the shared database is {backend:?}: one fleet, one backend",
                        s.name
                    ),
                });
            }
        }
        Ok(())
    }

    /// Every storefront database of the directory by server name (those on no named
    /// server under `""`), with its state.
    async fn placed(
        &self,
        tenancy: &Tenancy,
    ) -> Result<BTreeMap<String, Vec<(StorefrontId, String, TenantState)>>, TenancyError> {
        self.same_backend(tenancy)?;
        let directory = tenancy.require_directory()?;
        let mut by_server: BTreeMap<String, Vec<_>> = BTreeMap::new();
        for record in directory.list().await? {
            if let Placement::Database { url } = &record.placement {
                let server = self
                    .of_url(url, |u| tenancy.direct_url(u))
                    .map(|s| s.name.clone())
                    .unwrap_or_default();
                by_server.entry(server).or_default().push((
                    record.storefront,
                    url.clone(),
                    record.state,
                ));
            }
        }
        Ok(by_server)
    }

    /// The storefronts whose databases the directory places on server `name`.
    pub async fn storefronts_on(
        &self,
        tenancy: &Tenancy,
        name: &str,
    ) -> Result<Vec<StorefrontId>, TenancyError> {
        Ok(self
            .placed(tenancy)
            .await?
            .remove(name)
            .unwrap_or_default()
            .into_iter()
            .map(|(sf, _, _)| sf)
            .collect())
    }

    /// Each server's storefront databases and their size in bytes, measured with one query
    /// per server; a server that does not answer has no room (and a warning is logged).
    pub async fn occupancy(&self, tenancy: &Tenancy) -> Result<Vec<Occupancy>, TenancyError> {
        let placed = self.placed(tenancy).await?;
        let mut out = Vec::with_capacity(self.list.len());
        for s in &self.list {
            let mine = placed.get(&s.name).map(Vec::as_slice).unwrap_or_default();
            let names: Vec<String> = mine
                .iter()
                .filter_map(|(_, url, _)| DatabaseUrl::parse(url).ok()?.database())
                .collect();
            let bytes = match database_sizes(&tenancy.direct_url(&s.url)).await {
                Ok(sizes) => Some(names.iter().filter_map(|n| sizes.get(n)).sum()),
                Err(e) => {
                    tracing::warn!(server = %s.name, error = %e, "server does not answer: it takes no new storefront");
                    None
                }
            };
            let under_limit = s
                .max_storefronts
                .is_none_or(|max| (mine.len() as u64) < u64::from(max));
            out.push(Occupancy {
                server: s.name.clone(),
                capacity: s.capacity,
                storefronts: mine.len(),
                has_room: s.capacity > 0.0 && under_limit && bytes.is_some(),
                bytes,
            });
        }
        Ok(out)
    }

    /// The server a new storefront database goes on: of those with room, the one with
    /// the fewest bytes per unit of capacity (then the fewest storefronts per unit, then
    /// the first named). An error when none has room.
    pub async fn place_new(&self, tenancy: &Tenancy) -> Result<&ServerConfig, TenancyError> {
        let occupancy = self.occupancy(tenancy).await?;
        let best = occupancy
            .iter()
            .enumerate()
            .filter(|(_, o)| o.has_room)
            .min_by(|(_, a), (_, b)| {
                let per = |o: &Occupancy, x: f64| x / o.capacity;
                per(a, a.bytes.unwrap_or(0) as f64)
                    .total_cmp(&per(b, b.bytes.unwrap_or(0) as f64))
                    .then(per(a, a.storefronts as f64).total_cmp(&per(b, b.storefronts as f64)))
            })
            .map(|(i, _)| i);
        match best {
            Some(i) => Ok(&self.list[i]),
            None => Err(TenancyError::Config {
                key: "tenant_strategy.database_config.servers".into(),
                message: format!(
                    "no server has room for another storefront database: {}",
                    occupancy
                        .iter()
                        .map(|o| format!(
                            "{} ({})",
                            o.server,
                            if o.bytes.is_none() {
                                "not answering".to_owned()
                            } else if o.capacity == 0.0 {
                                "capacity 0".to_owned()
                            } else {
                                format!("{} storefronts, at its limit", o.storefronts)
                            }
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }

    /// The placement of a new storefront database: on [`Self::place_new`]'s server, named
    /// as `pattern` (a database URL with `{storefront_id}`) names it, or
    /// `storefront_{storefront_id}` without one.
    pub async fn placement_for_new(
        &self,
        tenancy: &Tenancy,
        storefront: StorefrontId,
        pattern: Option<&str>,
    ) -> Result<Placement, TenancyError> {
        let server = self.place_new(tenancy).await?;
        let name = pattern
            .and_then(|p| DatabaseUrl::parse(p).ok()?.database())
            .unwrap_or_else(|| "storefront_{storefront_id}".to_owned());
        Ok(Placement::Database {
            url: storefront.fill(&server.database_url(&name)),
        })
    }

    /// Measures every storefront database on the named servers: rows of each registered
    /// scoped table (exact counts) and the database's size, `jobs` databases at a time.
    /// A storefront database on no named server is an error naming it (the planner
    /// cannot weigh what it cannot place); one that is moving or not active is listed in
    /// [`Survey::busy`] and counted where the directory places it.
    pub async fn survey(&self, tenancy: &Tenancy, jobs: usize) -> Result<Survey, TenancyError> {
        let placed = self.placed(tenancy).await?;
        if let Some((sf, url, _)) = placed.get("").and_then(|v| v.first()) {
            return Err(TenancyError::Config {
                key: "tenant_strategy.database_config.servers".into(),
                message: format!(
                    "storefront {sf} is in {}, on a server the configuration does not name",
                    redact(url)
                ),
            });
        }
        let moves: BTreeMap<StorefrontId, crate::mover::Phase> =
            crate::mover::Mover::new(tenancy, crate::mover::MoveOptions::default())
                .list()
                .await?
                .into_iter()
                .filter(|m| !m.phase.is_finished())
                .map(|m| (m.storefront, m.phase))
                .collect();
        let tables: Vec<String> = tenancy
            .registry()
            .tables()
            .into_iter()
            .map(|(t, _)| t.to_owned())
            .collect();
        let work: Vec<(String, StorefrontId, String, TenantState)> = placed
            .into_iter()
            .flat_map(|(server, v)| {
                v.into_iter()
                    .map(move |(sf, u, st)| (server.clone(), sf, u, st))
            })
            .collect();
        let measured: Vec<Result<(Holding, Option<String>), TenancyError>> =
            futures_util::stream::iter(work)
                .map(|(server, sf, url, state)| {
                    let tables = &tables;
                    let moves = &moves;
                    async move {
                        let (rows, bytes) = measure(sf, &tenancy.direct_url(&url), tables).await?;
                        let busy = if let Some(phase) = moves.get(&sf) {
                            Some(format!("a move is in progress (phase {phase})"))
                        } else if state != TenantState::Active {
                            Some(format!("it is {state:?}").to_lowercase())
                        } else {
                            None
                        };
                        Ok((Holding::new(sf, &server, rows, bytes), busy))
                    }
                })
                .buffer_unordered(jobs.max(1))
                .collect()
                .await;
        let mut survey = Survey::default();
        for m in measured {
            let (holding, busy) = m?;
            if let Some(why) = busy {
                survey.busy.push((holding.storefront, why));
            }
            survey.holdings.push(holding);
        }
        survey.holdings.sort_by_key(|h| h.storefront);
        survey.busy.sort_by_key(|b| b.0);
        Ok(survey)
    }
}

/// A URL's server as `host:port`, the host in lower case and the backend's default port
/// filled in (`DB1` and `db1:5432` are one server). `None` for a URL with no host.
pub(crate) fn address(url: &DatabaseUrl) -> Option<String> {
    url.address().map(|a| a.to_lowercase())
}

/// One database's key, whatever the URL's spelling of its server (see [`address`]) and
/// its credentials or parameters: two URLs with one key name one database. (A host name
/// and its address still differ: the mover also compares the databases themselves.)
pub(crate) fn same_database_key(url: &str) -> String {
    match DatabaseUrl::parse(url) {
        Ok(u) if u.backend() != DbBackend::Sqlite => {
            let db = u.database().unwrap_or_default();
            let db = if u.backend() == DbBackend::MySql {
                db.to_lowercase()
            } else {
                db
            };
            format!("{}/{db}", address(&u).unwrap_or_default())
        }
        Ok(u) => u
            .sqlite_file()
            .map(|f| {
                std::fs::canonicalize(f)
                    .map(|p| p.display().to_string())
                    .unwrap_or_else(|_| f.to_owned())
            })
            .unwrap_or_else(|| url.to_owned()),
        Err(_) => url.to_owned(),
    }
}

/// Rows of `tables` and the size in bytes of the storefront database at `url`.
async fn measure(
    storefront: StorefrontId,
    url: &str,
    tables: &[String],
) -> Result<(u64, u64), TenancyError> {
    let what = || format!("measuring its database {}", redact(url));
    let db = connect_one(url)
        .await
        .map_err(db_step_failed(storefront, what()))?;
    let backend = db.get_database_backend();
    let dialect = Dialect(backend);
    let result = async {
        let mut rows = 0u64;
        for table in tables {
            let sql = format!("SELECT COUNT(*) FROM {}", dialect.quote(table));
            if let Some(row) = db.query_one_raw(Statement::from_string(backend, sql)).await? {
                rows += row.try_get_by_index::<i64>(0)?.max(0) as u64;
            }
        }
        let size = match backend {
            DbBackend::Postgres => "SELECT pg_database_size(current_database())::bigint",
            _ => "SELECT CAST(COALESCE(SUM(data_length + index_length), 0) AS SIGNED) FROM information_schema.tables WHERE table_schema = DATABASE()",
        };
        let bytes = match db.query_one_raw(Statement::from_string(backend, size)).await? {
            Some(row) => row.try_get_by_index::<i64>(0)?.max(0) as u64,
            None => 0,
        };
        Ok::<_, sea_orm::DbErr>((rows, bytes))
    }
    .await;
    let _ = db.close().await;
    result.map_err(db_step_failed(storefront, what()))
}

/// The size in bytes of every database (PostgreSQL) or schema (MySQL/MariaDB) on the
/// server at `url`.
async fn database_sizes(url: &str) -> Result<BTreeMap<String, u64>, sea_orm::DbErr> {
    let db = connect_one(url).await?;
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            "SELECT datname::text, pg_database_size(datname)::bigint FROM pg_database WHERE datallowconn"
        }
        _ => "SELECT CAST(table_schema AS CHAR), CAST(SUM(data_length + index_length) AS SIGNED) FROM information_schema.tables GROUP BY table_schema",
    };
    let result = db.query_all_raw(Statement::from_string(backend, sql)).await;
    let _ = db.close().await;
    let mut sizes = BTreeMap::new();
    for row in result? {
        let name: String = row.try_get_by_index(0)?;
        let bytes: Option<i64> = row.try_get_by_index(1)?;
        sizes.insert(name, bytes.unwrap_or(0).max(0) as u64);
    }
    Ok(sizes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn servers_are_checked_and_named() {
        let ok = Servers::new(vec![
            ServerConfig::new("db1", "postgres://app:pw@db1:5432/postgres"),
            ServerConfig::new("db2", "mysql://root@db2:3306/x").capacity(0.0),
        ])
        .expect("valid");
        assert_eq!(ok.weights()[1].capacity, 0.0);
        let shown = format!("{ok:?}");
        assert!(!shown.contains(":pw@") && shown.contains("***"), "{shown}");
        let cases = [
            (
                vec![ServerConfig::new("has space", "postgres://h:1/d")],
                "has space",
            ),
            (vec![ServerConfig::new("a", "sqlite://x.db")], "SQLite"),
            (
                vec![ServerConfig::new("a", "postgres://h:1/d").capacity(-1.0)],
                "capacity",
            ),
            (
                vec![ServerConfig::new("a", "postgres://h:1/d").capacity(f64::NAN)],
                "capacity",
            ),
            (
                vec![
                    ServerConfig::new("a", "postgres://h:1/d"),
                    ServerConfig::new("a", "postgres://h:2/d"),
                ],
                "named twice",
            ),
            (
                vec![
                    ServerConfig::new("a", "postgres://h:1/d"),
                    ServerConfig::new("b", "postgres://u@h:1/other"),
                ],
                "h:1",
            ),
        ];
        for (list, needle) in cases {
            let err = Servers::new(list).expect_err(needle).to_string();
            assert!(err.contains(needle) && err.contains("servers["), "{err}");
        }
        let err = ok.get("db3").expect_err("unknown").to_string();
        assert!(err.contains("db3") && err.contains("db1, db2"), "{err}");
    }

    #[test]
    fn a_url_belongs_to_the_server_of_its_address() {
        let servers = Servers::new(vec![
            ServerConfig::new("direct", "postgres://app@db1:5432/postgres"),
            ServerConfig::new("other", "postgres://app@db2:5432/postgres"),
        ])
        .expect("valid");
        let pooled = "postgres://app@pool:6432/storefront_1";
        // Through a pooler in front of db1, the URL is db1's.
        let direct = |u: &str| u.replace("pool:6432", "db1:5432");
        assert_eq!(
            servers.of_url(pooled, direct).map(|s| s.name.as_str()),
            Some("direct")
        );
        assert!(servers.of_url(pooled, |u| u.to_owned()).is_none());
        assert!(servers.of_url("not a url", |u| u.to_owned()).is_none());
    }
}
