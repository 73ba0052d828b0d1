//! The two sides of a move: connections that reach each side's tables, the tables' shape
//! (columns, primary key, foreign-key order) and the primary-key values the mover handles.

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, QueryResult, Statement, Value};
use uuid::Uuid;

use crate::{
    backend::{self, redact, DatabaseUrl, Dialect, Keyset, PoolSpec},
    tenant::validate_identifier,
    Placement, StorefrontId, Tenancy, TenancyError,
};

/// The SQLite schema name under which the mover attaches the other side's file.
pub(crate) const SQLITE_ATTACHED: &str = "tenancy_other";

/// The type of a table's primary key, as far as the mover cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum KeyKind {
    Uuid,
    Int,
    Text,
}

/// One primary-key value.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub(crate) enum Key {
    Uuid(Uuid),
    Int(i64),
    Text(String),
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::Uuid(u) => write!(f, "{u}"),
            Key::Int(i) => write!(f, "{i}"),
            Key::Text(t) => write!(f, "{t}"),
        }
    }
}

impl Key {
    /// The value to bind.
    pub(crate) fn value(&self) -> Value {
        match self {
            Key::Uuid(u) => (*u).into(),
            Key::Int(i) => (*i).into(),
            Key::Text(t) => t.clone().into(),
        }
    }

    /// A PostgreSQL literal (for `COPY (SELECT ...)`, which takes no parameters). Safe: a
    /// uuid and an integer are rendered from their parsed values, text is quoted.
    pub(crate) fn pg_literal(&self) -> String {
        match self {
            Key::Uuid(u) => format!("'{u}'::uuid"),
            Key::Int(i) => i.to_string(),
            Key::Text(t) => format!("'{}'", t.replace('\'', "''")),
        }
    }

    /// Reads the key in column `index` of `row`.
    pub(crate) fn read(
        row: &QueryResult,
        index: usize,
        kind: KeyKind,
    ) -> Result<Key, TenancyError> {
        Ok(match kind {
            KeyKind::Uuid => Key::Uuid(row.try_get_by_index(index)?),
            KeyKind::Int => Key::Int(row.try_get_by_index(index)?),
            KeyKind::Text => Key::Text(row.try_get_by_index(index)?),
        })
    }

    /// Reads a key as the capture triggers stored it in the changelog's `pk` column.
    pub(crate) fn read_logged(
        row: &QueryResult,
        index: usize,
        kind: KeyKind,
        backend: DbBackend,
    ) -> Result<Key, TenancyError> {
        let bad = |what: String| TenancyError::Move {
            storefront: String::new(),
            phase: "catch-up".into(),
            reason: format!("unreadable key in the changelog: {what}"),
        };
        match (backend, kind) {
            (DbBackend::Postgres, _) => {
                let text: String = row.try_get_by_index(index)?;
                Key::parse(&text, kind).ok_or_else(|| bad(text))
            }
            (_, KeyKind::Uuid) => {
                let bytes: Vec<u8> = row.try_get_by_index(index)?;
                Uuid::from_slice(&bytes)
                    .map(Key::Uuid)
                    .map_err(|e| bad(e.to_string()))
            }
            (DbBackend::Sqlite, KeyKind::Int) => Ok(Key::Int(row.try_get_by_index(index)?)),
            (DbBackend::Sqlite, KeyKind::Text) => Ok(Key::Text(row.try_get_by_index(index)?)),
            (_, _) => {
                let bytes: Vec<u8> = row.try_get_by_index(index)?;
                let text = String::from_utf8(bytes).map_err(|e| bad(e.to_string()))?;
                Key::parse(&text, kind).ok_or_else(|| bad(text))
            }
        }
    }

    pub(crate) fn parse(text: &str, kind: KeyKind) -> Option<Key> {
        match kind {
            KeyKind::Uuid => text.parse().ok().map(Key::Uuid),
            KeyKind::Int => text.parse().ok().map(Key::Int),
            KeyKind::Text => Some(Key::Text(text.to_owned())),
        }
    }
}

/// A scoped table as the mover sees it.
#[derive(Clone, Debug)]
pub(crate) struct TableMeta {
    pub name: String,
    pub tenant_column: String,
    pub pk: String,
    pub kind: KeyKind,
    pub columns: Vec<String>,
    /// Per column: whether it holds JSON documents (`json`, `jsonb`, or a domain over one;
    /// always false off PostgreSQL), and (PostgreSQL targets only, else empty) its type as
    /// the target spells it (`format_type`), which the catch-up between databases parses
    /// values into (see `pg_copy::apply`).
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub json: Vec<bool>,
    #[cfg_attr(not(feature = "postgres"), allow(dead_code))]
    pub types: Vec<String>,
}

/// One side of a move: a connection that reaches the side's tables under `qualifier`.
#[derive(Clone)]
pub(crate) struct Side {
    pub placement: Placement,
    pub backend: DbBackend,
    pub conn: DatabaseConnection,
    /// Schema (PostgreSQL), database (MySQL) or attached name (SQLite) of the tables.
    pub qualifier: String,
    /// The connection was opened by the mover (closed when the move step ends).
    pub owned: bool,
    /// The fencing token this mover holds the side's fence row with (see
    /// `capture::claim`); 0 until claimed.
    pub holder: i64,
}

impl Side {
    /// The SQL spelling of this side's backend.
    pub(crate) fn dialect(&self) -> Dialect {
        Dialect(self.backend)
    }

    /// `qualifier.name`, quoted.
    pub(crate) fn table(&self, name: &str) -> String {
        self.dialect().table(&self.qualifier, name)
    }

    pub(crate) fn q(&self, ident: &str) -> String {
        self.dialect().quote(ident)
    }

    pub(crate) fn stmt(&self, sql: impl Into<String>, values: Vec<Value>) -> Statement {
        Statement::from_sql_and_values(self.backend, sql, values)
    }

    /// The placeholder for parameter `n` (1-based).
    pub(crate) fn p(&self, n: usize) -> String {
        self.dialect().placeholder(n)
    }

    /// The literal of the storefront id as the tenant column stores it (for trigger bodies).
    pub(crate) fn storefront_literal(&self, storefront: StorefrontId) -> String {
        self.dialect().storefront_literal(storefront)
    }

    /// The keyset filter of `meta`'s rows of `storefront` in `range` (see
    /// [`Dialect::keyset`]), columns qualified by `alias`.
    pub(crate) fn keyset(
        &self,
        meta: &TableMeta,
        alias: Option<&str>,
        storefront: StorefrontId,
        range: Keyset,
    ) -> (String, Vec<Value>) {
        self.dialect()
            .keyset(alias, &meta.tenant_column, &meta.pk, storefront, range)
    }

    /// Closes the connection if the mover opened it. Bounded: closing a pool waits for
    /// every connection to come back, and a move step must not hang on its cleanup.
    pub(crate) async fn close(self) {
        if self.owned {
            let closing = self.conn.close();
            if tokio::time::timeout(std::time::Duration::from_secs(5), closing)
                .await
                .is_err()
            {
                tracing::warn!(placement = %self.placement, "a move connection did not close within 5 s");
            }
        }
    }

    /// The table's columns in order, each with its type.
    async fn columns(&self, table: &str) -> Result<Vec<(String, String)>, TenancyError> {
        let stmt = match self.backend {
            DbBackend::Postgres => self.stmt(
                "SELECT column_name::text, udt_name::text FROM information_schema.columns \
                 WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position",
                vec![self.qualifier.clone().into(), table.into()],
            ),
            // The type with its character set: rows between servers travel as bytes.
            DbBackend::MySql => self.stmt(
                "SELECT CAST(column_name AS CHAR), \
                        CAST(CONCAT(column_type, IFNULL(CONCAT(' ', character_set_name), '')) AS CHAR) \
                 FROM information_schema.columns \
                 WHERE table_schema = ? AND table_name = ? ORDER BY ordinal_position",
                vec![self.qualifier.clone().into(), table.into()],
            ),
            _ => self.stmt(
                "SELECT name, type FROM pragma_table_info(?, ?) ORDER BY cid",
                vec![table.into(), self.qualifier.clone().into()],
            ),
        };
        self.conn
            .query_all_raw(stmt)
            .await?
            .iter()
            .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?)))
            .collect()
    }

    /// PostgreSQL: the table's column types in column order, spelled as this side's
    /// sessions name them (`format_type`: typmods and domains included).
    async fn formatted_types(&self, table: &str) -> Result<Vec<String>, TenancyError> {
        let stmt = self.stmt(
            "SELECT format_type(a.atttypid, a.atttypmod) FROM pg_attribute a \
             WHERE a.attrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass \
               AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            vec![self.qualifier.clone().into(), table.into()],
        );
        self.conn
            .query_all_raw(stmt)
            .await?
            .iter()
            .map(|r| Ok(r.try_get_by_index(0)?))
            .collect()
    }

    async fn primary_key(&self, table: &str) -> Result<Vec<(String, String)>, TenancyError> {
        let stmt = match self.backend {
            DbBackend::Postgres => self.stmt(
                "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
                 FROM pg_index i JOIN pg_attribute a \
                   ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey) \
                 WHERE i.indisprimary \
                   AND i.indrelid = (quote_ident($1) || '.' || quote_ident($2))::regclass",
                vec![self.qualifier.clone().into(), table.into()],
            ),
            DbBackend::MySql => self.stmt(
                "SELECT CAST(k.column_name AS CHAR), CAST(c.column_type AS CHAR) \
                 FROM information_schema.key_column_usage k \
                 JOIN information_schema.columns c ON c.table_schema = k.table_schema \
                   AND c.table_name = k.table_name AND c.column_name = k.column_name \
                 WHERE k.table_schema = ? AND k.table_name = ? AND k.constraint_name = 'PRIMARY'",
                vec![self.qualifier.clone().into(), table.into()],
            ),
            _ => self.stmt(
                "SELECT name, type FROM pragma_table_info(?, ?) WHERE pk > 0 ORDER BY pk",
                vec![table.into(), self.qualifier.clone().into()],
            ),
        };
        self.conn
            .query_all_raw(stmt)
            .await?
            .iter()
            .map(|r| Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?)))
            .collect()
    }

    async fn parents(&self, table: &str) -> Result<Vec<String>, TenancyError> {
        let stmt = match self.backend {
            DbBackend::Postgres => self.stmt(
                "SELECT DISTINCT p.relname::text FROM pg_constraint c \
                 JOIN pg_class t ON t.oid = c.conrelid \
                 JOIN pg_namespace n ON n.oid = t.relnamespace \
                 JOIN pg_class p ON p.oid = c.confrelid \
                 WHERE c.contype = 'f' AND n.nspname = $1 AND t.relname = $2",
                vec![self.qualifier.clone().into(), table.into()],
            ),
            DbBackend::MySql => self.stmt(
                "SELECT DISTINCT CAST(referenced_table_name AS CHAR) \
                 FROM information_schema.key_column_usage \
                 WHERE table_schema = ? AND table_name = ? AND referenced_table_name IS NOT NULL",
                vec![self.qualifier.clone().into(), table.into()],
            ),
            _ => self.stmt(
                "SELECT DISTINCT \"table\" FROM pragma_foreign_key_list(?, ?)",
                vec![table.into(), self.qualifier.clone().into()],
            ),
        };
        self.conn
            .query_all_raw(stmt)
            .await?
            .iter()
            .map(|r| Ok(r.try_get_by_index::<String>(0)?))
            .collect()
    }
}

fn key_kind(table: &str, sql_type: &str) -> Result<KeyKind, TenancyError> {
    let t = sql_type.to_ascii_lowercase();
    if t.contains("uuid") || t == "binary(16)" {
        Ok(KeyKind::Uuid)
    } else if t.contains("int") {
        Ok(KeyKind::Int)
    } else if t.contains("char") || t.contains("text") {
        Ok(KeyKind::Text)
    } else {
        Err(TenancyError::Unsupported {
            placement: "move".into(),
            backend: table.into(),
            reason: format!(
                "the primary key of `{table}` has type {sql_type}; the mover handles uuid, integer and text keys"
            ),
        })
    }
}

/// The scoped tables present on `source`, parents before children, checked against `target`.
pub(crate) async fn tables(
    tenancy: &Tenancy,
    source: &Side,
    target: &Side,
) -> Result<Vec<TableMeta>, TenancyError> {
    let mut metas = BTreeMap::new();
    let mut parents: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (name, tenant_column) in tenancy.registry().tables() {
        validate_identifier(name)?;
        let columns = source.columns(name).await?;
        if columns.is_empty() {
            continue; // registered but not created by the migrations: nothing to move
        }
        let target_columns = target.columns(name).await?;
        fn names(c: &[(String, String)]) -> Vec<&str> {
            c.iter().map(|(n, _)| n.as_str()).collect()
        }
        if names(&target_columns) != names(&columns) {
            return Err(TenancyError::Move {
                storefront: String::new(),
                phase: "prepare".into(),
                reason: format!(
                    "table `{name}` has columns [{}] on the source but [{}] on the target; migrate both to the same version",
                    names(&columns).join(", "),
                    names(&target_columns).join(", ")
                ),
            });
        }
        // Same types too: rows travel in PostgreSQL's binary format, and checksums hash
        // the values as typed.
        if let Some(((column, a), (_, b))) = columns
            .iter()
            .zip(&target_columns)
            .find(|((_, a), (_, b))| !a.eq_ignore_ascii_case(b))
        {
            return Err(TenancyError::Move {
                storefront: String::new(),
                phase: "prepare".into(),
                reason: format!(
                    "column `{name}.{column}` has type {a} on the source but {b} on the target; migrate both to the same version"
                ),
            });
        }
        let json = columns
            .iter()
            .map(|(_, t)| {
                source.backend == DbBackend::Postgres
                    && (t.eq_ignore_ascii_case("json") || t.eq_ignore_ascii_case("jsonb"))
            })
            .collect();
        let types = if target.backend == DbBackend::MySql {
            columns.iter().map(|(_, t)| t.clone()).collect()
        } else if target.backend == DbBackend::Postgres {
            let types = target.formatted_types(name).await?;
            if types.len() != columns.len() {
                return Err(TenancyError::Move {
                    storefront: String::new(),
                    phase: "prepare".into(),
                    reason: format!(
                        "table `{name}`: the target's catalog lists {} columns, its information schema {}",
                        types.len(),
                        columns.len()
                    ),
                });
            }
            types
        } else {
            Vec::new()
        };
        let columns: Vec<String> = columns.into_iter().map(|(n, _)| n).collect();
        let pk = source.primary_key(name).await?;
        let (pk, sql_type) = match pk.as_slice() {
            [one] => one.clone(),
            _ => {
                return Err(TenancyError::Unsupported {
                    placement: "move".into(),
                    backend: name.into(),
                    reason: format!(
                    "table `{name}` has a primary key of {} columns; the mover needs exactly one",
                    pk.len()
                ),
                })
            }
        };
        let kind = key_kind(name, &sql_type)?;
        parents.insert(
            name.to_owned(),
            source.parents(name).await?.into_iter().collect(),
        );
        metas.insert(
            name.to_owned(),
            TableMeta {
                name: name.to_owned(),
                tenant_column: tenant_column.to_owned(),
                pk,
                kind,
                columns,
                json,
                types,
            },
        );
    }
    // Parents first (Kahn's algorithm; a parent outside the scoped set is ignored).
    let mut order = Vec::new();
    let mut done = BTreeSet::new();
    while done.len() < metas.len() {
        let ready: Vec<String> = metas
            .keys()
            .filter(|t| !done.contains(*t))
            .filter(|t| {
                parents[*t]
                    .iter()
                    .all(|p| p == *t || done.contains(p) || !metas.contains_key(p))
            })
            .cloned()
            .collect();
        if ready.is_empty() {
            return Err(TenancyError::Unsupported {
                placement: "move".into(),
                backend: "foreign keys".into(),
                reason: "the scoped tables' foreign keys form a cycle".into(),
            });
        }
        for t in ready {
            done.insert(t.clone());
            order.push(metas[&t].clone());
        }
    }
    Ok(order)
}

/// The mover's own pools: bounded waits, recycled connections (a move may run for days).
async fn connect(url: &str, max: u32) -> Result<DatabaseConnection, TenancyError> {
    let spec = PoolSpec {
        connect_timeout: Some(std::time::Duration::from_secs(5)),
        acquire_timeout: Some(std::time::Duration::from_secs(10)),
        idle_timeout: Some(std::time::Duration::from_secs(3600)),
        max_lifetime: Some(std::time::Duration::from_secs(24 * 3600)),
        ..PoolSpec::of(max)
    };
    backend::connect(url, spec)
        .await
        .map_err(|e| TenancyError::Move {
            storefront: String::new(),
            phase: "connect".into(),
            reason: format!("cannot connect to {}: {e}", redact(url)),
        })
}

async fn scalar(conn: &DatabaseConnection, sql: &str) -> Result<String, TenancyError> {
    let backend = conn.get_database_backend();
    let row = conn
        .query_one_raw(Statement::from_string(backend, sql))
        .await?
        .ok_or_else(|| TenancyError::Move {
            storefront: String::new(),
            phase: "connect".into(),
            reason: format!("`{sql}` returned no row"),
        })?;
    Ok(row.try_get_by_index(0)?)
}

/// The file of a SQLite placement URL.
pub(crate) fn sqlite_file(url: &str) -> Option<String> {
    DatabaseUrl::parse(url)
        .ok()?
        .sqlite_file()
        .map(str::to_owned)
}

/// Opens both sides of a move from `from` to `to`.
pub(crate) async fn open(
    tenancy: &Tenancy,
    from: &Placement,
    to: &Placement,
) -> Result<(Side, Side), TenancyError> {
    let shared = tenancy.shared().clone();
    let backend = shared.get_database_backend();
    match backend {
        DbBackend::Postgres => {
            let mut sides = Vec::new();
            for placement in [from, to] {
                let side = match placement {
                    Placement::Shared => Side {
                        placement: placement.clone(),
                        backend,
                        qualifier: scalar(&shared, "SELECT current_schema()::text").await?,
                        conn: shared.clone(),
                        owned: false,
                        holder: 0,
                    },
                    Placement::Schema { schema } => {
                        validate_identifier(schema)?;
                        Side {
                            placement: placement.clone(),
                            backend,
                            qualifier: schema.clone(),
                            conn: shared.clone(),
                            owned: false,
                            holder: 0,
                        }
                    }
                    Placement::Database { url } => {
                        let conn = connect(&tenancy.direct_url(url), 4).await?;
                        Side {
                            placement: placement.clone(),
                            backend,
                            qualifier: scalar(&conn, "SELECT current_schema()::text").await?,
                            conn,
                            owned: true,
                            holder: 0,
                        }
                    }
                };
                let rls_on = tenancy.row_level_security().is_some();
                crate::rls::refuse_bound_operator(
                    &side.conn,
                    &side.qualifier,
                    rls_on,
                    "moving a storefront",
                )
                .await?;
                sides.push(side);
            }
            let to = sides.pop();
            let from = sides.pop();
            from.zip(to).ok_or_else(|| unreachable_sides(backend))
        }
        DbBackend::MySql => {
            let shared_db = scalar(&shared, "SELECT CAST(DATABASE() AS CHAR)").await?;
            let server = |url: &str| DatabaseUrl::parse(url).ok().and_then(|u| u.server());
            let shared_host = tenancy.shared_url().and_then(server);
            let mut sides = Vec::new();
            for placement in [from, to] {
                // A database on the shared server is reached through the shared
                // connection (rows then move inside the server); one on another server
                // through a connection of its own (rows travel through the mover).
                let (qualifier, conn) = match placement {
                    Placement::Shared => (shared_db.clone(), None),
                    Placement::Schema { schema } => (schema.clone(), None),
                    Placement::Database { url } => {
                        let parsed = DatabaseUrl::parse(url)?;
                        let name = parsed.database().ok_or_else(|| TenancyError::InvalidName {
                            name: parsed.to_string(),
                            reason: "the URL names no database".into(),
                        })?;
                        let same_server = shared_host.is_some() && parsed.server() == shared_host;
                        let conn = if same_server {
                            None
                        } else {
                            Some(connect(&tenancy.direct_url(url), 4).await?)
                        };
                        (name, conn)
                    }
                };
                validate_identifier(&qualifier)?;
                let owned = conn.is_some();
                sides.push(Side {
                    placement: placement.clone(),
                    backend,
                    conn: conn.unwrap_or_else(|| shared.clone()),
                    qualifier,
                    owned,
                    holder: 0,
                });
            }
            let to = sides.pop();
            let from = sides.pop();
            from.zip(to).ok_or_else(|| unreachable_sides(backend))
        }
        _ => {
            let file_of = |p: &Placement| -> Result<String, TenancyError> {
                let url = match p {
                    Placement::Shared => tenancy.shared_url().ok_or_else(|| TenancyError::Unsupported {
                        placement: "move".into(),
                        backend: "SQLite".into(),
                        reason: "moving to or from the shared SQLite file needs its URL (TenancyOptions::shared_url)".into(),
                    })?,
                    Placement::Database { url } => url.as_str(),
                    Placement::Schema { .. } => {
                        return Err(TenancyError::Unsupported {
                            placement: "schema".into(),
                            backend: "SQLite".into(),
                            reason: "SQLite has no schema placement; use database placement (a file per storefront)".into(),
                        })
                    }
                };
                sqlite_file(url).ok_or_else(|| TenancyError::InvalidName {
                    name: url.to_owned(),
                    reason: "a SQLite placement needs a file URL".into(),
                })
            };
            let from_file = file_of(from)?;
            let to_file = file_of(to)?;
            let conn = connect(&format!("sqlite://{from_file}?mode=rwc"), 1).await?;
            conn.execute_raw(Statement::from_sql_and_values(
                backend,
                format!("ATTACH DATABASE ? AS {SQLITE_ATTACHED}"),
                [to_file.into()],
            ))
            .await?;
            Ok((
                Side {
                    placement: from.clone(),
                    backend,
                    conn: conn.clone(),
                    qualifier: "main".into(),
                    owned: true,
                    holder: 0,
                },
                Side {
                    placement: to.clone(),
                    backend,
                    conn,
                    qualifier: SQLITE_ATTACHED.into(),
                    owned: false,
                    holder: 0,
                },
            ))
        }
    }
}

/// The database a side's tables are in, as one string two sides can be compared by: the
/// server (PostgreSQL: its start time and the database's oid; MySQL/MariaDB: its host
/// name, port and data directory, then the database, in lower case as the server may fold
/// it; SQLite: the file). Two URLs that spell one database differently (a host name and
/// its address, a pooler and its server) give the same identity.
pub(crate) async fn database_identity(side: &Side) -> Result<String, TenancyError> {
    let sql = match side.backend {
        DbBackend::Postgres => {
            "SELECT extract(epoch FROM pg_postmaster_start_time())::text || '/' || d.oid::text FROM pg_database d WHERE d.datname = current_database()"
        }
        DbBackend::MySql => "SELECT CONCAT(@@hostname, ':', @@port, ':', @@datadir)",
        _ => "PRAGMA database_list",
    };
    let rows = side.conn.query_all_raw(side.stmt(sql, vec![])).await?;
    Ok(match side.backend {
        DbBackend::Sqlite => {
            let mut file = None;
            for row in &rows {
                let name: String = row.try_get_by_index(1)?;
                if name.eq_ignore_ascii_case(&side.qualifier) {
                    let path: String = row.try_get_by_index(2)?;
                    file = Some(
                        std::fs::canonicalize(&path)
                            .map(|p| p.display().to_string())
                            .unwrap_or(path),
                    );
                }
            }
            file.unwrap_or_default()
        }
        DbBackend::MySql => {
            let server: String = match rows.first() {
                Some(row) => row.try_get_by_index(0)?,
                None => String::new(),
            };
            format!("{server}/{}", side.qualifier.to_lowercase())
        }
        _ => match rows.first() {
            Some(row) => row.try_get_by_index::<String>(0)?,
            None => String::new(),
        },
    })
}

/// Where a side's tables are: [`database_identity`], and on PostgreSQL the schema.
pub(crate) async fn identity(side: &Side) -> Result<String, TenancyError> {
    let database = database_identity(side).await?;
    Ok(match side.backend {
        DbBackend::Postgres => format!("{database}/{}", side.qualifier),
        _ => database,
    })
}

/// What dropping the side's container would drop: its database for a database
/// placement, its tables' schema (MySQL: database) otherwise.
pub(crate) async fn container_identity(side: &Side) -> Result<String, TenancyError> {
    match side.placement {
        Placement::Database { .. } => database_identity(side).await,
        _ => identity(side).await,
    }
}

/// Whether dropping `side`'s container would drop `other`'s tables (compared at the
/// container's level: a database placement's whole database, a schema's schema).
pub(crate) async fn contains(side: &Side, other: &Side) -> Result<bool, TenancyError> {
    let mine = container_identity(side).await?;
    let theirs = match side.placement {
        Placement::Database { .. } => database_identity(other).await?,
        _ => identity(other).await?,
    };
    Ok(mine == theirs)
}

/// Opens the source side alone (a rollback whose target is unreachable).
pub(crate) async fn open_source(tenancy: &Tenancy, from: &Placement) -> Result<Side, TenancyError> {
    if tenancy.shared().get_database_backend() == DbBackend::Sqlite {
        return Ok(open(tenancy, from, from).await?.0);
    }
    Ok(open(tenancy, from, &Placement::Shared).await?.0)
}

fn unreachable_sides(backend: DbBackend) -> TenancyError {
    TenancyError::Unsupported {
        placement: "move".into(),
        backend: format!("{backend:?}"),
        reason: "could not open both sides".into(),
    }
}

/// Runs the same step on both sides at once and waits for both, even when one fails: a
/// query future dropped half way (as `try_join!` does to the other side on an error) can
/// leave its pool connection checked out, and closing that pool then never finishes.
pub(crate) async fn both<A, B>(
    a: impl std::future::Future<Output = Result<A, TenancyError>>,
    b: impl std::future::Future<Output = Result<B, TenancyError>>,
) -> Result<(A, B), TenancyError> {
    let (a, b) = tokio::join!(a, b);
    Ok((a?, b?))
}

/// Whether both sides are reached through one connection (then rows move by
/// `INSERT ... SELECT` inside the server; otherwise by PostgreSQL `COPY`, or between MySQL
/// servers as rows through the mover). SQLite's two files are always one connection.
pub(crate) fn same_connection(a: &Side, b: &Side) -> bool {
    match a.backend {
        DbBackend::Sqlite => true,
        _ => !a.owned && !b.owned,
    }
}
