//! What each database backend spells its own way, in one place: identifier quotes,
//! placeholders, literals, keyset filters, error classes, connections, creating and
//! dropping databases ([`database`]) and the change-capture DDL ([`capture`]). The rest of the crate asks a [`Dialect`] and never
//! matches on the backend for SQL text.

pub(crate) mod capture;
pub(crate) mod database;
mod error;
mod url;

use std::time::Duration;

use sea_orm::{ConnectOptions, Database, DatabaseConnection, DbBackend, DbErr, Value};

pub(crate) use self::error::{classify, from_server, retry_locked, ErrorClass};
pub(crate) use self::url::redact;
pub use self::url::DatabaseUrl;
use crate::StorefrontId;

/// The SQL spelling of one backend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Dialect(pub(crate) DbBackend);

impl Dialect {
    /// The identifier quote: a backtick on MySQL, `"` elsewhere.
    pub(crate) fn quote_char(self) -> char {
        match self.0 {
            DbBackend::MySql => '`',
            _ => '"',
        }
    }

    /// `ident`, quoted, the quote character doubled inside it (so a name read from the
    /// catalog quotes right whatever it holds). Callers pass names checked by
    /// `validate_identifier` or read from the catalog, never caller-controlled text.
    pub(crate) fn quote(self, ident: &str) -> String {
        let q = self.quote_char();
        let doubled = format!("{q}{q}");
        format!("{q}{}{q}", ident.replace(q, &doubled))
    }

    /// `qualifier.name`, both quoted.
    pub(crate) fn table(self, qualifier: &str, name: &str) -> String {
        format!("{}.{}", self.quote(qualifier), self.quote(name))
    }

    /// The placeholder of parameter `n` (1-based): `$n` on PostgreSQL, `?` elsewhere.
    pub(crate) fn placeholder(self, n: usize) -> String {
        match self.0 {
            DbBackend::Postgres => format!("${n}"),
            _ => "?".into(),
        }
    }

    /// The storefront id as a literal of the type the tenant column stores (a uuid on
    /// PostgreSQL, 16 bytes elsewhere), for trigger bodies and COPY, which take no
    /// parameters.
    pub(crate) fn storefront_literal(self, storefront: StorefrontId) -> String {
        match self.0 {
            DbBackend::Postgres => format!("'{storefront}'::uuid"),
            _ => format!("X'{}'", storefront.as_uuid().simple()),
        }
    }

    /// The database server's wall clock in Unix milliseconds, as an SQL expression. Process
    /// leases are measured on this one clock (the server's), never on the processes' own.
    pub(crate) fn now_ms(self) -> &'static str {
        match self.0 {
            DbBackend::Postgres => "CAST(EXTRACT(EPOCH FROM clock_timestamp()) * 1000 AS BIGINT)",
            // UTC whatever the session's time zone (no hour repeats at a clock change).
            DbBackend::MySql => {
                "(TIMESTAMPDIFF(MICROSECOND, '1970-01-01 00:00:00', UTC_TIMESTAMP(6)) DIV 1000)"
            }
            _ => "CAST((julianday('now') - 2440587.5) * 86400000 AS INTEGER)",
        }
    }

    /// `INSERT` that leaves a row whose key is taken alone: the words before the table
    /// and the clause after the statement.
    pub(crate) fn insert_ignore(self) -> (&'static str, &'static str) {
        match self.0 {
            DbBackend::Postgres => ("INSERT INTO", " ON CONFLICT DO NOTHING"),
            DbBackend::MySql => ("INSERT IGNORE INTO", ""),
            _ => ("INSERT OR IGNORE INTO", ""),
        }
    }

    /// The keyset filter of one storefront's rows in `range`, with its parameters:
    /// `t.tenant = $1 AND t.pk > $2 AND t.pk <= $3`. `alias` qualifies the columns.
    /// Every paged read, copy and checksum of the mover goes through here.
    pub(crate) fn keyset(
        self,
        alias: Option<&str>,
        tenant_column: &str,
        pk: &str,
        storefront: StorefrontId,
        range: Keyset,
    ) -> (String, Vec<Value>) {
        let col = |c: &str| match alias {
            Some(a) => format!("{a}.{}", self.quote(c)),
            None => self.quote(c),
        };
        let pk = col(pk);
        let mut values: Vec<Value> = vec![(*storefront.as_uuid()).into()];
        let mut sql = format!("{} = {}", col(tenant_column), self.placeholder(1));
        let mut bound = |sql: &mut String, op: &str, v: Value| {
            values.push(v);
            sql.push_str(&format!(
                " AND {pk} {op} {}",
                self.placeholder(values.len())
            ));
        };
        match range {
            Keyset::All => {}
            Keyset::Page { after, upto } => {
                if let Some(v) = after {
                    bound(&mut sql, ">", v);
                }
                if let Some(v) = upto {
                    bound(&mut sql, "<=", v);
                }
            }
            Keyset::Bucket { from, below } => {
                if let Some(v) = from {
                    bound(&mut sql, ">=", v);
                }
                if let Some(v) = below {
                    bound(&mut sql, "<", v);
                }
            }
            Keyset::Keys(keys) => {
                let list: Vec<String> = keys
                    .into_iter()
                    .map(|k| {
                        values.push(k);
                        self.placeholder(values.len())
                    })
                    .collect();
                sql.push_str(&format!(" AND {pk} IN ({})", list.join(", ")));
            }
        }
        (sql, values)
    }
}

/// Which of a storefront's keys a [`Dialect::keyset`] filter selects.
#[derive(Clone, Debug)]
pub(crate) enum Keyset {
    /// Every key.
    All,
    /// `after < key <= upto` (a page of the copy; either bound may be open).
    Page {
        after: Option<Value>,
        upto: Option<Value>,
    },
    /// `from <= key < below` (a checksum bucket).
    Bucket {
        from: Option<Value>,
        below: Option<Value>,
    },
    /// `key IN (...)`.
    Keys(Vec<Value>),
}

/// How a connection pool is sized and timed. Every pool the crate opens (the shared
/// database's, a storefront's, the mover's and provisioning's one-off connections) is
/// built from one of these by [`connect`].
#[derive(Clone, Copy, Debug)]
pub(crate) struct PoolSpec {
    pub max: u32,
    pub connect_timeout: Option<Duration>,
    pub acquire_timeout: Option<Duration>,
    pub idle_timeout: Option<Duration>,
    pub max_lifetime: Option<Duration>,
}

impl PoolSpec {
    /// At most `max` connections, the driver's timeouts.
    pub(crate) const fn of(max: u32) -> Self {
        Self {
            max,
            connect_timeout: None,
            acquire_timeout: None,
            idle_timeout: None,
            max_lifetime: None,
        }
    }
}

/// Opens a pool on `url` (no connection kept open while idle, no statement logging by
/// sqlx: the crate traces statements itself).
pub(crate) async fn connect(url: &str, spec: PoolSpec) -> Result<DatabaseConnection, DbErr> {
    let mut opts = ConnectOptions::new(url.to_owned());
    opts.max_connections(spec.max)
        .min_connections(0)
        .sqlx_logging(false);
    if let Some(t) = spec.connect_timeout {
        opts.connect_timeout(t);
    }
    if let Some(t) = spec.acquire_timeout {
        opts.acquire_timeout(t);
    }
    if let Some(t) = spec.idle_timeout {
        opts.idle_timeout(t);
    }
    if let Some(t) = spec.max_lifetime {
        opts.max_lifetime(t);
    }
    // Boxed: the driver's connect future is deeply nested, and every caller's future
    // (a move's, a provisioning's) would carry its whole layout.
    Box::pin(Database::connect(opts)).await
}

/// PostgreSQL: whether the server behind `conn` listens on another port than `url` names
/// (`inet_server_port()`), so that something sits between: a pooler (or a proxy) not named
/// in the configuration. Its connections are then treated as pooled (storefront statements
/// unnamed, in transactions of the framework's own), which is safe behind either, and a
/// warning names the URL. A Unix socket (no port) counts as direct.
pub(crate) async fn behind_something(conn: &DatabaseConnection, url: &str) -> bool {
    #[cfg(feature = "postgres")]
    {
        use sea_orm::sqlx::{self, Row};
        if conn.get_database_backend() != DbBackend::Postgres {
            return false;
        }
        let Ok(parsed) = ::url::Url::parse(url) else {
            return false;
        };
        if parsed
            .host_str()
            .is_none_or(|h| h.starts_with('/') || h.starts_with("%2F"))
        {
            return false;
        }
        let named = parsed.port().unwrap_or(5432);
        let sea_orm::DatabaseConnectionType::SqlxPostgresPoolConnection(_) = &conn.inner else {
            return false;
        };
        let pool = conn.get_postgres_connection_pool();
        let answered = sqlx::raw_sql(sqlx::AssertSqlSafe("SELECT inet_server_port()::text"))
            .fetch_optional(pool)
            .await;
        let port = match answered {
            Ok(Some(row)) => row
                .try_get::<Option<String>, _>(0)
                .ok()
                .flatten()
                .and_then(|p| p.parse::<u16>().ok()),
            Ok(None) => None,
            Err(e) => {
                // Unknown: fail closed.
                tracing::warn!(url = %redact(url), error = %e, "could not ask the server its port; storefront statements run as behind a transaction pooler");
                return true;
            }
        };
        match port {
            Some(port) if port != named => {
                tracing::warn!(
                    url = %redact(url),
                    server_port = port,
                    "the server answers on another port than the URL names: something sits in \
                     between; storefront statements run as behind a transaction pooler (name it \
                     in transaction_poolers to give the framework a direct URL)"
                );
                true
            }
            _ => false,
        }
    }
    #[cfg(not(feature = "postgres"))]
    {
        let _ = (conn, url);
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyset_filters_number_their_parameters_per_backend() {
        let id = StorefrontId::new_random();
        let page = || Keyset::Page {
            after: Some(5i64.into()),
            upto: Some(9i64.into()),
        };
        let (sql, values) =
            Dialect(DbBackend::Postgres).keyset(Some("x"), "storefront_id", "id", id, page());
        assert_eq!(
            sql,
            r#"x."storefront_id" = $1 AND x."id" > $2 AND x."id" <= $3"#
        );
        assert_eq!(values.len(), 3);
        let (sql, _) = Dialect(DbBackend::MySql).keyset(
            None,
            "storefront_id",
            "id",
            id,
            Keyset::Keys(vec![1i64.into(), 2i64.into()]),
        );
        assert_eq!(sql, "`storefront_id` = ? AND `id` IN (?, ?)");
        let (sql, values) = Dialect(DbBackend::Sqlite).keyset(
            None,
            "t",
            "k",
            id,
            Keyset::Bucket {
                from: None,
                below: Some(3i64.into()),
            },
        );
        assert_eq!(sql, r#""t" = ? AND "k" < ?"#);
        assert_eq!(values.len(), 2);
    }
}
