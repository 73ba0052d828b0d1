//! A second fence in the database: PostgreSQL row-level security generated from the
//! registry.
//!
//! The rewriter confines every statement a [`TenantConnection`](crate::TenantConnection)
//! sends, but it cannot see inside what the database runs by itself: a view over a scoped
//! table, a function that reads one, a trigger. With row-level security on, every
//! registered scoped table also carries two policies that admit only the rows of the
//! storefront named by the transaction-local setting `tenancy.storefront_id`:
//!
//! - `tenancy_storefront`, permissive, and `tenancy_storefront_only`, restrictive (so a
//!   permissive policy of the application's own cannot widen what a storefront sees);
//! - both `USING` and `WITH CHECK`, so a storefront neither reads nor writes another's
//!   rows, and a statement with no storefront set reads no row and writes none;
//! - the table's row-level security is enabled and *forced*, so its owner is bound too.
//!   Only a superuser or a role with `BYPASSRLS` passes: the operator's role, which
//!   provisioning, fleet migrations and moves use.
//!
//! Each storefront transaction (and each single statement, which then runs in one) opens
//! with one simple query that sets the storefront with `set_config(..., true)` and, when a
//! role is configured, `SET LOCAL ROLE` to the application role: both end with the
//! transaction, so they work through PgBouncer's transaction mode and never reach another
//! statement of a pooled connection.
//!
//! [`apply`] installs the policies (and grants the application role what it needs) and
//! [`check`] reports what is missing; both are idempotent, and `tenancy rls apply|check`
//! runs them on the shared database and every storefront schema and database.
//!
//! ```no_run
//! # async fn demo() -> Result<(), tenancy_core::TenancyError> {
//! use tenancy_core::{rls::RowLevelSecurity, TenancyOptions};
//!
//! // As the operator (the tables' owner or a superuser): install the policies.
//! let operator = sea_orm::Database::connect("postgres://owner@db/shop").await?;
//! let registry = tenancy_core::Registry::from_entities();
//! tenancy_core::rls::apply(&operator, &registry, Some("shop_app"), None).await?;
//!
//! // The application: each storefront statement runs as `shop_app`, bound by them.
//! let tenancy = TenancyOptions::new()
//!     .row_level_security(RowLevelSecurity::new().role("shop_app")?)
//!     .connect("postgres://owner@db/shop")
//!     .await?;
//! # let _ = tenancy; Ok(()) }
//! ```

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, Statement,
    TransactionTrait,
};

use crate::{Registry, StorefrontId, TenancyError};

/// The transaction-local setting the policies read.
pub const SETTING: &str = "tenancy.storefront_id";
/// The permissive policy's name.
pub const POLICY: &str = "tenancy_storefront";
/// The restrictive policy's name.
pub const RESTRICTIVE_POLICY: &str = "tenancy_storefront_only";

/// How a [`Tenancy`](crate::Tenancy)'s storefront statements meet row-level security: set
/// with [`TenancyOptions::row_level_security`](crate::TenancyOptions::row_level_security)
/// (PostgreSQL only).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RowLevelSecurity {
    role: Option<String>,
}

impl RowLevelSecurity {
    /// Storefront statements run as the role the connection logged in as (which must be
    /// bound by the policies: not a superuser, no `BYPASSRLS`).
    pub fn new() -> Self {
        Self::default()
    }

    /// Storefront statements run as `role` (`SET LOCAL ROLE` in each transaction), while
    /// the framework's own work (provisioning, moves, migrations) keeps the connection's
    /// role. The connection's role must be a member of `role`.
    pub fn role(mut self, role: &str) -> Result<Self, TenancyError> {
        validate_role(role)?;
        self.role = Some(role.to_owned());
        Ok(self)
    }

    /// The application role, if one is set.
    pub fn role_name(&self) -> Option<&str> {
        self.role.as_deref()
    }

    /// The simple query that opens each storefront transaction: the role, then the
    /// storefront. The storefront is a UUID printed by its own type, the role a validated
    /// identifier, quoted.
    pub(crate) fn prelude(&self, storefront: StorefrontId) -> String {
        let set = format!("SELECT set_config('{SETTING}', '{storefront}', true)");
        match &self.role {
            Some(role) => format!("SET LOCAL ROLE {}; {set}", quote(role)),
            None => set,
        }
    }
}

/// Whether `sql` (as the rewriter rendered it) can only read: a plain `SELECT` without a
/// locking clause that calls none of the functions the application registered (one of
/// those may write). Anything else runs in a transaction that commits; a write misjudged
/// as a read would fail in the read-only transaction, never be lost.
#[cfg_attr(not(feature = "postgres"), allow(dead_code))]
pub(crate) fn reads_only(sql: &str, registry: &Registry) -> bool {
    let select = sql
        .trim_start()
        .get(..7)
        .is_some_and(|head| head.eq_ignore_ascii_case("SELECT "));
    if !select {
        return false;
    }
    // A locking clause, or a registered function (called by its name as a whole word,
    // quoted or not; a word that names one counts even where it is not a call: misjudging
    // a read as a write only costs a `COMMIT`).
    let lower = sql.to_ascii_lowercase();
    !lower
        .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$'))
        .any(|word| word == "for" || registry.has_function(word))
}

/// A role is named like every other identifier the framework writes into SQL.
fn validate_role(role: &str) -> Result<(), TenancyError> {
    crate::tenant::validate_identifier(role)
}

fn quote(ident: &str) -> String {
    crate::backend::Dialect(DbBackend::Postgres).quote(ident)
}

/// How a [`Finding`] about the schema itself (not one of its tables) names it.
pub const SCHEMA_OBJECT: &str = "(schema)";

/// One thing [`check`] found missing or wrong.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Finding {
    /// The schema of the table (or the role's).
    pub schema: String,
    /// The table, view or function; `-` for the role itself, [`SCHEMA_OBJECT`] for the
    /// schema.
    pub table: String,
    /// What is wrong.
    pub problem: String,
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}: {}", self.schema, self.table, self.problem)
    }
}

/// What [`apply`] did in one schema.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Applied {
    /// The schema.
    pub schema: String,
    /// Tables whose security was changed (policies created, enabled or forced, grants).
    pub changed: Vec<String>,
    /// Tables that were already as they should be.
    pub unchanged: usize,
}

/// One scoped table as the catalog has it.
struct TableState {
    oid: i64,
    /// The schema it is in (for the shared database, where the search path finds it).
    schema: String,
    table: String,
    column: String,
    column_type: String,
    enabled: bool,
    forced: bool,
    policies: Vec<(String, bool, String, String, String)>,
}

fn expected_expr(column: &str, column_type: &str) -> String {
    format!(
        "({} = (SELECT NULLIF(current_setting('{SETTING}', true), '')::{column_type}))",
        quote(column)
    )
}

fn postgres_only(conn: &DatabaseConnection) -> Result<(), TenancyError> {
    match conn.get_database_backend() {
        DbBackend::Postgres => Ok(()),
        other => Err(TenancyError::Unsupported {
            placement: "row-level security".into(),
            backend: format!("{other:?}"),
            reason: "row-level security is a PostgreSQL feature; on this backend the rewriter \
                     is the only fence"
                .into(),
        }),
    }
}

/// The schema unqualified names resolve in (`schema`, or the connection's current one).
async fn schema_of(
    txn: &DatabaseTransaction,
    schema: Option<&str>,
) -> Result<String, TenancyError> {
    match schema {
        Some(s) => Ok(s.to_owned()),
        None => current_schema(txn).await,
    }
}

/// How PostgreSQL prints the policy expression for `column` of `column_type` (asked once
/// per column and type in one check or apply, through `seen`), so that the
/// check compares the catalog's text with the server's own rendering, not with a guess of
/// it: a temporary table with the same column, a policy on it, its text, then the
/// savepoint rolled back.
async fn deparsed(
    txn: &DatabaseTransaction,
    column: &str,
    column_type: &str,
    seen: &mut std::collections::HashMap<(String, String), String>,
) -> Result<String, TenancyError> {
    let key = (column.to_owned(), column_type.to_owned());
    if let Some(expr) = seen.get(&key) {
        return Ok(expr.clone());
    }
    let expr = deparse(txn, column, column_type).await?;
    seen.insert(key, expr.clone());
    Ok(expr)
}

/// [`deparsed`] without the cache: one probe.
async fn deparse(
    txn: &DatabaseTransaction,
    column: &str,
    column_type: &str,
) -> Result<String, TenancyError> {
    let probe = "tenancy_rls_probe";
    let savepoint = txn.begin().await?;
    for stmt in [
        format!(
            "CREATE TEMPORARY TABLE {probe} ({} {column_type})",
            quote(column)
        ),
        format!(
            "CREATE POLICY p ON pg_temp.{probe} USING {}",
            expected_expr(column, column_type)
        ),
    ] {
        savepoint.execute_unprepared(&stmt).await?;
    }
    let row = savepoint
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            format!(
                "SELECT pg_get_expr(polqual, polrelid) FROM pg_policy \
                 WHERE polrelid = 'pg_temp.{probe}'::regclass"
            ),
        ))
        .await?;
    savepoint.rollback().await?;
    Ok(row
        .map(|r| r.try_get_by_index::<String>(0))
        .transpose()?
        .unwrap_or_default())
}

/// A registered table as the server resolves it for the application's statements: in
/// `schema`, or (`None`, the shared database, whose statements name tables unqualified)
/// the first schema of `path` (the application role's search path, see [`app_path`]) that
/// has it; a name spelled exactly as registered before one that differs only in case.
async fn resolve(
    txn: &DatabaseTransaction,
    schema: Option<&str>,
    path: &str,
    table: &str,
) -> Result<Option<(i64, String, String, String)>, TenancyError> {
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT c.oid::bigint, n.nspname::text, c.relname::text, c.relkind::text \
             FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE lower(c.relname) = lower($2) \
               AND c.relkind IN ('r', 'p', 'v', 'm', 'f') \
               AND (($1 <> '' AND n.nspname = $1) \
                    OR ($1 = '' AND n.nspname = ANY (string_to_array($3, chr(31))))) \
             ORDER BY c.relname <> $2, \
                      array_position(string_to_array($3, chr(31)), n.nspname::text) NULLS LAST, \
                      2, 3 \
             LIMIT 1",
            [schema.unwrap_or_default().into(), table.into(), path.into()],
        ))
        .await?;
    let Some(row) = row else { return Ok(None) };
    Ok(Some((
        row.try_get_by_index(0)?,
        row.try_get_by_index(1)?,
        row.try_get_by_index(2)?,
        row.try_get_by_index(3)?,
    )))
}

/// The search path the application's statements resolve names in: the session's as
/// `role` (a default path starts with `"$user"`, the role's own schema), or as the
/// connection's own role without one. `chr(31)`-separated, for [`resolve`].
async fn app_path(txn: &DatabaseTransaction, role: Option<&str>) -> Result<String, TenancyError> {
    if let Some(role) = role {
        txn.execute_unprepared(&format!("SET LOCAL ROLE {}", quote(role)))
            .await?;
    }
    let row = txn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT array_to_string(current_schemas(false), chr(31))",
        ))
        .await;
    if role.is_some() {
        txn.execute_unprepared("RESET ROLE").await?;
    }
    Ok(row?
        .map(|r| r.try_get_by_index::<Option<String>>(0))
        .transpose()?
        .flatten()
        .unwrap_or_default())
}

/// The registered scoped tables present in `schema` (see [`resolve`]), each with its
/// partitions and inheritance children (a statement that names a partition is fenced by
/// the partition's own policies, not its parent's), with their security as the catalog
/// has it; and what makes a registered table unable to carry the policies.
async fn tables(
    txn: &DatabaseTransaction,
    registry: &Registry,
    schema: Option<&str>,
    path: &str,
) -> Result<(Vec<TableState>, Vec<(String, String, String)>), TenancyError> {
    let mut out = Vec::new();
    let mut unfit = Vec::new();
    for (table, column) in registry.tables() {
        let Some((oid, nspname, relname, relkind)) = resolve(txn, schema, path, table).await?
        else {
            continue;
        };
        match relkind.as_str() {
            "r" | "p" => {}
            // A view is fenced through the tables it reads (`bypassing_objects` looks at
            // who it reads them as).
            "v" | "m" => continue,
            _ => {
                unfit.push((
                    nspname,
                    relname,
                    "registered as tenant-scoped, but a foreign table cannot carry \
                     row-level security"
                        .to_owned(),
                ));
                continue;
            }
        }
        let family = txn
            .query_all_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "WITH RECURSIVE tree(oid) AS ( \
                     SELECT $1::bigint::oid \
                     UNION SELECT i.inhrelid FROM pg_inherits i JOIN tree t ON i.inhparent = t.oid) \
                 SELECT c.oid::bigint, n.nspname::text, c.relname::text, \
                        c.relrowsecurity, c.relforcerowsecurity, \
                        format_type(a.atttypid, a.atttypmod) \
                 FROM tree JOIN pg_class c ON c.oid = tree.oid \
                 JOIN pg_namespace n ON n.oid = c.relnamespace \
                 LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = $2 \
                                         AND NOT a.attisdropped \
                 WHERE c.relkind IN ('r', 'p') ORDER BY 2, 3",
                [oid.into(), column.into()],
            ))
            .await?;
        for member in family {
            let member_oid: i64 = member.try_get_by_index(0)?;
            let (member_schema, member_table): (String, String) =
                (member.try_get_by_index(1)?, member.try_get_by_index(2)?);
            let Some(column_type) = member.try_get_by_index::<Option<String>>(5)? else {
                unfit.push((
                    member_schema,
                    member_table,
                    format!("registered as tenant-scoped by `{column}`, which it does not have"),
                ));
                continue;
            };
            let policies = txn
                .query_all_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT p.polname::text, p.polpermissive, p.polcmd::text, \
                            COALESCE(pg_get_expr(p.polqual, p.polrelid), ''), \
                            COALESCE(pg_get_expr(p.polwithcheck, p.polrelid), '') \
                     FROM pg_policy p \
                     WHERE p.polrelid = $1::bigint::oid AND p.polroles = '{0}'::oid[]",
                    [member_oid.into()],
                ))
                .await?
                .into_iter()
                .map(|r| {
                    Ok((
                        r.try_get_by_index::<String>(0)?,
                        r.try_get_by_index::<bool>(1)?,
                        r.try_get_by_index::<String>(2)?,
                        r.try_get_by_index::<String>(3)?,
                        r.try_get_by_index::<String>(4)?,
                    ))
                })
                .collect::<Result<Vec<_>, sea_orm::DbErr>>()?;
            out.push(TableState {
                oid: member_oid,
                schema: member_schema,
                table: member_table,
                column: column.to_owned(),
                enabled: member.try_get_by_index(3)?,
                forced: member.try_get_by_index(4)?,
                column_type,
                policies,
            });
        }
    }
    Ok((out, unfit))
}

/// What is wrong with one table (empty: nothing).
fn problems(state: &TableState, expected: &str) -> Vec<String> {
    let mut out = Vec::new();
    if !state.enabled {
        out.push("row-level security is not enabled".to_owned());
    }
    if !state.forced {
        out.push("row-level security is not forced (its owner would pass)".to_owned());
    }
    for (name, permissive) in [(POLICY, true), (RESTRICTIVE_POLICY, false)] {
        let kind = if permissive {
            "permissive"
        } else {
            "restrictive"
        };
        match state.policies.iter().find(|p| p.0 == name) {
            None => out.push(format!("the {kind} policy `{name}` is missing")),
            Some((_, p, cmd, using, check)) => {
                if *p != permissive || cmd != "*" || using != expected || check != expected {
                    out.push(format!(
                        "the {kind} policy `{name}` differs from the generated one (for all \
                         commands, to PUBLIC, USING and WITH CHECK {expected})"
                    ));
                }
            }
        }
    }
    out
}

/// The grants `role` needs that it lacks: `USAGE` on each of `schemas` (named
/// [`SCHEMA_OBJECT`]); on each registered table as [`resolve`] finds it, and on each of
/// `members` (the scoped tables with their partitions), its schema, name and the missing
/// privileges; `USAGE` on the sequences those tables own (their serial and identity
/// columns), and on no other.
async fn missing_grants(
    txn: &DatabaseTransaction,
    registry: &Registry,
    schemas: &[String],
    within: Option<&str>,
    path: &str,
    members: &[(i64, String, String)],
    role: &str,
) -> Result<Vec<Grant>, TenancyError> {
    let mut wanted: Vec<(String, &str)> = registry
        .tables()
        .into_iter()
        .map(|(t, _)| (t.to_owned(), "SELECT, INSERT, UPDATE, DELETE"))
        .collect();
    for (table, access) in registry.globals() {
        let privileges = match access {
            crate::GlobalAccess::ReadOnly => "SELECT",
            crate::GlobalAccess::ReadWrite => "SELECT, INSERT, UPDATE, DELETE",
        };
        wanted.push((table.to_owned(), privileges));
    }
    let mut missing = Vec::new();
    for schema in schemas {
        let usage = txn
            .query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT has_schema_privilege($1, $2, 'USAGE')",
                [role.into(), schema.clone().into()],
            ))
            .await?;
        if let Some(row) = usage {
            if !row.try_get_by_index::<bool>(0)? {
                missing.push(Grant {
                    kind: "SCHEMA",
                    schema: schema.clone(),
                    object: SCHEMA_OBJECT.to_owned(),
                    privileges: "USAGE".to_owned(),
                });
            }
        }
    }
    let mut targets = Vec::new();
    for (table, privileges) in wanted {
        if let Some((oid, nspname, relname, _)) = resolve(txn, within, path, &table).await? {
            targets.push((oid, nspname, relname, privileges));
        }
    }
    // Partitions and inheritance children of the scoped tables: a view may name one.
    for (oid, nspname, relname) in members {
        if !targets.iter().any(|t| t.0 == *oid) {
            targets.push((
                *oid,
                nspname.clone(),
                relname.clone(),
                "SELECT, INSERT, UPDATE, DELETE",
            ));
        }
    }
    for (oid, nspname, relname, privileges) in targets {
        // One privilege at a time: `has_table_privilege` with a list is true when any one
        // of them is held.
        let mut lacking = Vec::new();
        for privilege in privileges.split(", ") {
            let row = txn
                .query_one_raw(Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT has_table_privilege($1, $2::bigint::oid, $3)",
                    [role.into(), oid.into(), privilege.into()],
                ))
                .await?;
            if let Some(row) = row {
                if !row.try_get_by_index::<bool>(0)? {
                    lacking.push(privilege);
                }
            }
        }
        if !lacking.is_empty() {
            missing.push(Grant {
                kind: "TABLE",
                schema: nspname,
                object: relname,
                privileges: lacking.join(", "),
            });
        }
    }
    let oids: Vec<String> = members.iter().map(|m| m.0.to_string()).collect();
    let sequences = txn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT DISTINCT n.nspname::text, s.relname::text \
             FROM pg_class s JOIN pg_namespace n ON n.oid = s.relnamespace \
             JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass \
                             AND d.refclassid = 'pg_class'::regclass AND d.deptype IN ('a', 'i') \
             WHERE s.relkind = 'S' \
               AND d.refobjid = ANY (string_to_array($2, ',')::bigint[]::oid[]) \
               AND CASE WHEN s.relkind = 'S' \
                        THEN NOT has_sequence_privilege($1, s.oid, 'USAGE') ELSE false END \
             ORDER BY 1, 2",
            [role.into(), oids.join(",").into()],
        ))
        .await?;
    for row in sequences {
        missing.push(Grant {
            kind: "SEQUENCE",
            schema: row.try_get_by_index(0)?,
            object: row.try_get_by_index(1)?,
            privileges: "USAGE".to_owned(),
        });
    }
    Ok(missing)
}

/// A privilege `role` lacks: on a schema, a table or a sequence.
struct Grant {
    kind: &'static str,
    schema: String,
    object: String,
    privileges: String,
}

/// Problems of the role itself: missing, a superuser, or free of row-level security.
async fn role_problems(txn: &DatabaseTransaction, role: &str) -> Result<Vec<String>, TenancyError> {
    let row = txn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT rolsuper, rolbypassrls FROM pg_roles WHERE rolname = $1",
            [role.into()],
        ))
        .await?;
    let Some(row) = row else {
        return Ok(vec![format!(
            "the role `{role}` does not exist (create it: CREATE ROLE {role} LOGIN)"
        )]);
    };
    let mut out = Vec::new();
    if row.try_get_by_index::<bool>(0)? {
        out.push(format!(
            "the role `{role}` is a superuser, which no policy binds"
        ));
    }
    if row.try_get_by_index::<bool>(1)? {
        out.push(format!(
            "the role `{role}` has BYPASSRLS, which no policy binds"
        ));
    }
    Ok(out)
}

/// Views and functions through which a storefront's statement would read scoped rows past
/// the policies: a view over a scoped table of `schema` that reads as an owner who passes
/// every policy (a superuser, or `BYPASSRLS`) and is not `security_invoker`; a materialized
/// view over one (it holds every storefront's rows); a function the registry allows that
/// is `SECURITY DEFINER` with such an owner.
async fn bypassing_objects(
    txn: &DatabaseTransaction,
    registry: &Registry,
    schemas: &[String],
    members: &[(i64, String, String)],
) -> Result<Vec<(String, String, String)>, TenancyError> {
    let oids: Vec<String> = members.iter().map(|m| m.0.to_string()).collect();
    let mut out = Vec::new();
    let views = txn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT DISTINCT vn.nspname::text, v.relname::text, t.relname::text, v.relkind::text, r.rolname::text, \
                    (r.rolsuper OR r.rolbypassrls), \
                    EXISTS (SELECT 1 FROM unnest(v.reloptions) o \
                            WHERE o ~* '^security_invoker=(true|on|yes|1)$') \
             FROM pg_rewrite rw \
             JOIN pg_class v ON v.oid = rw.ev_class AND v.relkind IN ('v', 'm') \
             JOIN pg_depend d ON d.objid = rw.oid AND d.classid = 'pg_rewrite'::regclass \
                             AND d.refclassid = 'pg_class'::regclass \
             JOIN pg_class t ON t.oid = d.refobjid AND t.oid <> v.oid \
             JOIN pg_namespace vn ON vn.oid = v.relnamespace \
             JOIN pg_roles r ON r.oid = v.relowner \
             WHERE t.oid = ANY (string_to_array($1, ',')::bigint[]::oid[]) \
             ORDER BY 1, 2",
            [oids.join(",").into()],
        ))
        .await?;
    for row in views {
        let (view_schema, view, table, kind): (String, String, String, String) = (
            row.try_get_by_index(0)?,
            row.try_get_by_index(1)?,
            row.try_get_by_index(2)?,
            row.try_get_by_index(3)?,
        );
        let (owner, bypasses, invoker): (String, bool, bool) = (
            row.try_get_by_index(4)?,
            row.try_get_by_index(5)?,
            row.try_get_by_index(6)?,
        );
        if kind == "m" {
            out.push((
                view_schema,
                view,
                format!(
                    "a materialized view over the scoped table `{table}` holds every \
                     storefront's rows, which no policy filters"
                ),
            ));
        } else if bypasses && !invoker {
            out.push((
                view_schema,
                view,
                format!(
                    "the view reads the scoped table `{table}` as its owner `{owner}`, whom no \
                     policy binds: ALTER VIEW ... SET (security_invoker = true), or give it \
                     to an owner the policies bind"
                ),
            ));
        }
    }
    // Every SECURITY DEFINER function of these schemas owned by such a role (a view or a
    // registered function may call it), and every registered function anywhere; not
    // trigger functions (the capture triggers' `tncap_*`), which run only as triggers.
    let functions: Vec<String> = registry.functions().iter().map(|f| f.to_string()).collect();
    let definers = txn
        .query_all_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT DISTINCT n.nspname::text, p.proname::text, r.rolname::text FROM pg_proc p \
             JOIN pg_roles r ON r.oid = p.proowner \
             JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE p.prosecdef AND (r.rolsuper OR r.rolbypassrls) \
               AND ((n.nspname = ANY (string_to_array($2, chr(31))) \
                     AND p.prorettype <> 'trigger'::regtype) \
                    OR lower(p.proname) = ANY (string_to_array($1, chr(31)))) \
             ORDER BY 1, 2",
            [
                functions.join("\u{1f}").into(),
                schemas.join("\u{1f}").into(),
            ],
        ))
        .await?;
    for row in definers {
        let (function_schema, function, owner): (String, String, String) = (
            row.try_get_by_index(0)?,
            row.try_get_by_index(1)?,
            row.try_get_by_index(2)?,
        );
        out.push((
            function_schema,
            function,
            format!(
                "the function runs as its owner `{owner}` (SECURITY DEFINER), whom no policy \
                 binds: a view or a registered function that calls it reads past the policies"
            ),
        ));
    }
    Ok(out)
}

/// Reports what is missing for row-level security in `schema` (default: the connection's
/// current schema): on each registered scoped table present there, the two policies,
/// enabled and forced; with `role`, the role's grants on the registered tables and that no
/// attribute lets it pass. Empty when all is in place. Changes nothing.
pub async fn check(
    conn: &DatabaseConnection,
    registry: &Registry,
    role: Option<&str>,
    schema: Option<&str>,
) -> Result<Vec<Finding>, TenancyError> {
    postgres_only(conn)?;
    if let Some(role) = role {
        validate_role(role)?;
    }
    let txn = conn.begin().await?;
    let found = check_in(&txn, registry, role, schema).await;
    txn.rollback().await?;
    found
}

async fn check_in(
    txn: &DatabaseTransaction,
    registry: &Registry,
    role: Option<&str>,
    schema: Option<&str>,
) -> Result<Vec<Finding>, TenancyError> {
    let within = schema;
    let schema = schema_of(txn, within).await?;
    let mut findings = Vec::new();
    let at = |schema: &str, table: &str, problem: String| Finding {
        schema: schema.to_owned(),
        table: table.to_owned(),
        problem,
    };
    if let Some(role) = role {
        for problem in role_problems(txn, role).await? {
            findings.push(at(&schema, "-", problem));
        }
    }
    let role_ok = findings.is_empty();
    // The role's search path, once the role is known to exist.
    let path = app_path(txn, role.filter(|_| role_ok)).await?;
    let (states, unfit) = tables(txn, registry, within, &path).await?;
    for (table_schema, table, problem) in unfit {
        findings.push(at(&table_schema, &table, problem));
    }
    let members = family(&states);
    let schemas = schemas_of(&schema, &states);
    let mut seen = std::collections::HashMap::new();
    for state in &states {
        let expected = deparsed(txn, &state.column, &state.column_type, &mut seen).await?;
        for problem in problems(state, &expected) {
            findings.push(at(&state.schema, &state.table, problem));
        }
    }
    for (object_schema, object, problem) in
        bypassing_objects(txn, registry, &schemas, &members).await?
    {
        findings.push(at(&object_schema, &object, problem));
    }
    if let (Some(role), true) = (role, role_ok) {
        for grant in missing_grants(txn, registry, &schemas, within, &path, &members, role).await? {
            findings.push(at(
                &grant.schema,
                &grant.object,
                format!("the role `{role}` lacks {}", grant.privileges),
            ));
        }
    }
    Ok(findings)
}

/// The scoped tables (with partitions) as (oid, schema, name).
fn family(states: &[TableState]) -> Vec<(i64, String, String)> {
    states
        .iter()
        .map(|t| (t.oid, t.schema.clone(), t.table.clone()))
        .collect()
}

/// `schema` and every schema a scoped table was found in.
fn schemas_of(schema: &str, states: &[TableState]) -> Vec<String> {
    let mut schemas: Vec<String> = std::iter::once(schema.to_owned())
        .chain(states.iter().map(|t| t.schema.clone()))
        .collect();
    schemas.sort();
    schemas.dedup();
    schemas
}

/// Installs row-level security in `schema` (default: the connection's current schema), in
/// one transaction: each registered scoped table present there gets both policies, enabled
/// and forced; with `role`, the role gets `USAGE` on the schema and its sequences,
/// `SELECT, INSERT, UPDATE, DELETE` on the scoped tables and what the registry allows on
/// the global ones. Changes only what differs, so running it again changes nothing. Run it
/// as the tables' owner or a superuser.
pub async fn apply(
    conn: &DatabaseConnection,
    registry: &Registry,
    role: Option<&str>,
    schema: Option<&str>,
) -> Result<Applied, TenancyError> {
    postgres_only(conn)?;
    let txn = conn.begin().await?;
    let applied = apply_in(&txn, registry, role, schema).await?;
    txn.commit().await?;
    Ok(applied)
}

/// [`apply`] inside the caller's transaction (provisioning applies it in the transaction
/// that migrated the schema, so a new schema is never visible without its policies).
pub(crate) async fn apply_in(
    txn: &DatabaseTransaction,
    registry: &Registry,
    role: Option<&str>,
    schema: Option<&str>,
) -> Result<Applied, TenancyError> {
    if let Some(role) = role {
        validate_role(role)?;
    }
    let within = schema;
    let schema = schema_of(txn, within).await?;
    if let Some(role) = role {
        if let Some(problem) = role_problems(txn, role).await?.into_iter().next() {
            return Err(TenancyError::RowLevelSecurity {
                database: format!("schema {schema}"),
                problems: problem,
            });
        }
    }
    let mut applied = Applied {
        schema: schema.clone(),
        ..Applied::default()
    };
    let path = app_path(txn, role).await?;
    let (states, unfit) = tables(txn, registry, within, &path).await?;
    if let Some((table_schema, table, problem)) = unfit.into_iter().next() {
        return Err(TenancyError::RowLevelSecurity {
            database: format!("schema {table_schema}"),
            problems: format!("{table}: {problem}"),
        });
    }
    let members = family(&states);
    let schemas = schemas_of(&schema, &states);
    let mut seen = std::collections::HashMap::new();
    for state in states {
        let expected = deparsed(txn, &state.column, &state.column_type, &mut seen).await?;
        let wrong = problems(&state, &expected);
        if wrong.is_empty() {
            applied.unchanged += 1;
            continue;
        }
        let table = format!("{}.{}", quote(&state.schema), quote(&state.table));
        let expr = expected_expr(&state.column, &state.column_type);
        let mut ddl = vec![
            format!("ALTER TABLE {table} ENABLE ROW LEVEL SECURITY"),
            format!("ALTER TABLE {table} FORCE ROW LEVEL SECURITY"),
        ];
        for (name, kind) in [(POLICY, "PERMISSIVE"), (RESTRICTIVE_POLICY, "RESTRICTIVE")] {
            ddl.push(format!("DROP POLICY IF EXISTS {} ON {table}", quote(name)));
            ddl.push(format!(
                "CREATE POLICY {} ON {table} AS {kind} FOR ALL TO PUBLIC USING {expr} WITH CHECK {expr}",
                quote(name)
            ));
        }
        for stmt in ddl {
            txn.execute_unprepared(&stmt).await?;
        }
        applied.changed.push(state.table.clone());
    }
    if let Some(role) = role {
        let q_role = quote(role);
        for grant in missing_grants(txn, registry, &schemas, within, &path, &members, role).await? {
            let target = match grant.kind {
                "SCHEMA" => format!("SCHEMA {}", quote(&grant.schema)),
                kind => format!("{kind} {}.{}", quote(&grant.schema), quote(&grant.object)),
            };
            txn.execute_unprepared(&format!(
                "GRANT {} ON {target} TO {q_role}",
                grant.privileges
            ))
            .await?;
            if !applied.changed.contains(&grant.object) {
                applied.changed.push(grant.object);
            }
        }
    }
    Ok(applied)
}

/// The connection's role, and whether it passes every policy (a superuser, or `BYPASSRLS`).
async fn current_role<C: ConnectionTrait>(conn: &C) -> Result<(String, bool), TenancyError> {
    let row = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT current_user::text, rolsuper OR rolbypassrls FROM pg_roles \
             WHERE rolname = current_user",
        ))
        .await?
        .ok_or_else(|| TenancyError::RowLevelSecurity {
            database: "this server".into(),
            problems: "the connection's role is not in pg_roles".into(),
        })?;
    Ok((row.try_get_by_index(0)?, row.try_get_by_index(1)?))
}

/// What a [`Tenancy`](crate::Tenancy) with row-level security checks before it serves a
/// statement: PostgreSQL; roles that split as they should (with [`RowLevelSecurity::role`],
/// the connection's own role is the operator's and must pass the policies, or moves and
/// provisioning through this handle would see no rows, and it must be able to take the
/// application role; without it, the connection's role is the application's and must be
/// bound); and [`check`] finding nothing in the shared database's schema. Fails closed:
/// any problem refuses the handle, naming every one.
pub(crate) async fn verify(
    conn: &DatabaseConnection,
    registry: &Registry,
    rls: &RowLevelSecurity,
    database: &str,
) -> Result<(), TenancyError> {
    postgres_only(conn)?;
    let txn = conn.begin().await?;
    let (user, bypasses) = current_role(&txn).await?;
    let mut problems = Vec::new();
    let app_role = match rls.role_name() {
        Some(role) => {
            if !bypasses {
                problems.push(format!(
                    "the connection's role `{user}` is bound by the policies, so the \
                     framework's own work through this handle (moves, provisioning, fleet \
                     migrations) would see no rows: connect as a superuser or a role with \
                     BYPASSRLS; storefront statements run as `{role}`"
                ));
            }
            role.to_owned()
        }
        None => {
            if bypasses {
                problems.push(format!(
                    "the connection's role `{user}` is a superuser or has BYPASSRLS, which \
                     no policy binds: connect as the application's role, or name it with \
                     RowLevelSecurity::role"
                ));
            }
            user.clone()
        }
    };
    let found = check_in(&txn, registry, Some(&app_role), None).await;
    let member = match rls.role_name() {
        Some(role)
            if found
                .as_ref()
                .is_ok_and(|f| f.iter().all(|f| f.table != "-")) =>
        {
            txn.query_one_raw(Statement::from_sql_and_values(
                DbBackend::Postgres,
                "SELECT pg_has_role(current_user, $1, 'MEMBER')",
                [role.into()],
            ))
            .await?
            .map(|r| r.try_get_by_index::<bool>(0))
            .transpose()?
            .unwrap_or(false)
        }
        _ => true,
    };
    txn.rollback().await?;
    if !member {
        problems.push(format!(
            "the connection's role `{user}` cannot take the role `{}` (GRANT {} TO {user})",
            rls.role_name().unwrap_or_default(),
            rls.role_name().unwrap_or_default()
        ));
    }
    problems.extend(found?.iter().map(Finding::to_string));
    if problems.is_empty() {
        return Ok(());
    }
    Err(TenancyError::RowLevelSecurity {
        database: database.to_owned(),
        problems: problems.join("; "),
    })
}

/// The connection's current schema on PostgreSQL (empty elsewhere).
pub(crate) async fn current_schema<C: ConnectionTrait>(conn: &C) -> Result<String, TenancyError> {
    if conn.get_database_backend() != DbBackend::Postgres {
        return Ok(String::new());
    }
    let row = conn
        .query_one_raw(Statement::from_string(
            DbBackend::Postgres,
            "SELECT current_schema()::text",
        ))
        .await?;
    Ok(row
        .map(|r| r.try_get_by_index::<Option<String>>(0))
        .transpose()?
        .flatten()
        .unwrap_or_default())
}

/// Refuses the framework's own work (`work`: moving a storefront, migrating, provisioning)
/// with a role the policies bind: a move would copy, validate and clean up none of the
/// storefront's rows, and a migration's data changes would reach none (on PostgreSQL,
/// where a table of `schema` has row-level security or `rls_on`).
pub(crate) async fn refuse_bound_operator<C: ConnectionTrait>(
    conn: &C,
    schema: &str,
    rls_on: bool,
    work: &str,
) -> Result<(), TenancyError> {
    if conn.get_database_backend() != DbBackend::Postgres {
        return Ok(());
    }
    let row = conn
        .query_one_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
                            WHERE n.nspname = $1 AND c.relrowsecurity AND c.relkind IN ('r', 'p') \
                              AND (c.relforcerowsecurity \
                                   OR c.relowner <> (SELECT oid FROM pg_roles WHERE rolname = current_user)))",
            [schema.into()],
        ))
        .await?;
    let secured = row
        .map(|r| r.try_get_by_index::<bool>(0))
        .transpose()?
        .unwrap_or(false);
    if !secured && !rls_on {
        return Ok(());
    }
    let (user, bypasses) = current_role(conn).await?;
    if bypasses {
        return Ok(());
    }
    Err(TenancyError::RowLevelSecurity {
        database: format!("schema {schema}"),
        problems: format!(
            "{work} as the role `{user}`, which row-level security binds here, would see \
             none of the storefronts' rows: run it as a superuser or a role with BYPASSRLS \
             (a handle whose RowLevelSecurity names the application role, or the operator \
             CLI)"
        ),
    })
}
