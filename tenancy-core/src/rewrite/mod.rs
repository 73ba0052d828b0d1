//! SQL rewriting: confining each statement to one storefront.
//!
//! Every statement a [`TenantConnection`](crate::TenantConnection) runs passes through
//! [`Rewriter::rewrite`]. The rules (see `docs/architecture.md`):
//!
//! - every reference to a tenant-scoped table gets `<alias>.<tenant column> = <tenant>`, in
//!   WHERE for FROM items and in the ON clause of outer-joined tables, inside subqueries,
//!   CTEs, UNION branches and EXISTS; the existing WHERE is parenthesised first;
//! - INSERT gets the tenant column and value in every row; an explicit tenant value must be
//!   this storefront's (checked when bound); upserts cannot update another storefront's row;
//! - UPDATE cannot set the tenant column; UPDATE and DELETE are filtered;
//! - the tenant value is always a bound parameter (a `Uuid`), at the right position for the
//!   backend's placeholder style;
//! - anything that mentions a scoped table and cannot be confined with certainty is refused
//!   before it reaches the database. Statements that mention no scoped table are passed
//!   through untouched, without being parsed.
//!
//! Rewritten templates are cached by SQL text, so a warm statement costs one hash lookup
//! plus binding.
//!
//! ```
//! use sea_orm::{DbBackend, Statement};
//! use tenancy_core::{Registry, Rewriter, StorefrontId};
//!
//! let rewriter = Rewriter::new(Registry::empty().with_table("customers", "storefront_id"));
//! let shop = StorefrontId::new_random();
//! let stmt = Statement::from_sql_and_values(
//!     DbBackend::Postgres,
//!     r#"SELECT "id" FROM "customers" WHERE "email" = $1 OR "email" = $2"#,
//!     ["a@example.com".into(), "b@example.com".into()],
//! );
//! let out = rewriter.rewrite(stmt, &shop).unwrap();
//! assert_eq!(
//!     out.sql,
//!     r#"SELECT "id" FROM "customers" WHERE ("email" = $1 OR "email" = $2) AND "customers"."storefront_id" = $3"#
//! );
//! assert_eq!(out.values.unwrap().0.len(), 3);
//! ```

mod placeholders;
mod scope;

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use sea_orm::{DbBackend, Statement, Value, Values};
use sqlparser::{ast::Statement as Ast, parser::Parser, tokenizer::Token};
use uuid::Uuid;

use crate::{Registry, StorefrontId, TenancyError};
use placeholders::Slot;

/// Checks the binder runs on explicit tenant values before a statement is sent.
#[derive(Clone, Debug)]
pub(crate) enum Check {
    /// The statement's value at `index` must be this storefront's id.
    Param {
        index: usize,
        table: String,
        column: String,
    },
    /// A literal in the SQL must be this storefront's id.
    Literal {
        value: String,
        table: String,
        column: String,
    },
}

/// A confined statement and what it touches.
pub(crate) struct Confined {
    /// The statement to run.
    pub(crate) statement: Statement,
    /// Whether it touches a tenant-scoped table (false: passed through untouched).
    pub(crate) scoped: bool,
    /// A global table it also reads, if any.
    pub(crate) global: Option<Arc<str>>,
}

/// How the rewritten SQL's values are assembled from the statement's own values.
#[derive(Clone, Debug)]
enum Binding {
    /// Numbered placeholders: the statement's `params` values, then the tenant.
    Append { params: usize },
    /// Positional placeholders in this order.
    Positional(Vec<Slot>),
}

/// A cached rewrite of one SQL text (independent of the storefront).
#[derive(Debug)]
enum Template {
    /// No tenant-scoped table: run as is.
    PassThrough,
    /// Run `sql` with values bound by `binding`, after `checks`.
    Rewritten {
        /// The SQL, split where the storefront's schema goes (one part when unqualified).
        sql: Vec<Box<str>>,
        /// A global (unscoped) table the statement also reads, if any.
        global: Option<Arc<str>>,
        binding: Binding,
        checks: Vec<Check>,
    },
}

/// Confines statements to one storefront (see the module docs). Cheap to share: clone the
/// `Arc` it lives in.
#[derive(Debug)]
pub struct Rewriter {
    registry: Registry,
    /// One cache per backend and mode (unqualified, schema-qualified), keyed by SQL text.
    cache: [RwLock<HashMap<String, Arc<Template>>>; 6],
    capacity: usize,
}

/// Default number of distinct SQL texts cached per backend and mode.
const DEFAULT_CAPACITY: usize = 8192;

/// Stands for the storefront's schema in cached schema-placement templates.
const SCHEMA_MARK: &str = "__tenancy_schema__";

fn cache_slot(backend: DbBackend, qualified: bool) -> usize {
    let b = match backend {
        DbBackend::Postgres => 0,
        DbBackend::MySql => 1,
        _ => 2,
    };
    b * 2 + usize::from(qualified)
}

/// The identifier quote of a backend: a backtick on MySQL, `"` elsewhere.
pub(crate) fn identifier_quote(backend: DbBackend) -> char {
    match backend {
        DbBackend::MySql => '`',
        _ => '"',
    }
}

impl Rewriter {
    /// A rewriter for the tables in `registry`.
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            cache: Default::default(),
            capacity: DEFAULT_CAPACITY,
        }
    }

    /// The registry of scoped tables.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// Rewrites `stmt` for `storefront` (shared placement): see the module docs.
    pub fn rewrite(
        &self,
        stmt: Statement,
        storefront: &StorefrontId,
    ) -> Result<Statement, TenancyError> {
        self.rewrite_in(stmt, storefront, None)
    }

    /// Rewrites `stmt` for `storefront`, qualifying each scoped table with `schema` when
    /// given (schema placement; the schema must be a plain identifier). Global tables stay
    /// where they are.
    pub fn rewrite_in(
        &self,
        stmt: Statement,
        storefront: &StorefrontId,
        schema: Option<&str>,
    ) -> Result<Statement, TenancyError> {
        self.confine(stmt, storefront, schema).map(|c| c.statement)
    }

    /// [`Self::rewrite_in`], also telling what the statement touches.
    pub(crate) fn confine(
        &self,
        mut stmt: Statement,
        storefront: &StorefrontId,
        schema: Option<&str>,
    ) -> Result<Confined, TenancyError> {
        if let Some(schema) = schema {
            crate::tenant::validate_identifier(schema)?;
        }
        let template = self.template(stmt.db_backend, &stmt.sql, schema.is_some())?;
        let Template::Rewritten {
            sql,
            global,
            binding,
            checks,
        } = template.as_ref()
        else {
            return Ok(Confined {
                statement: stmt,
                scoped: false,
                global: None,
            });
        };
        let tenant = *storefront.as_uuid();
        let mut values = stmt.values.take().map(|v| v.0).unwrap_or_default();
        for check in checks {
            run_check(check, &values, &tenant)?;
        }
        let tenant_value = Value::Uuid(Some(tenant));
        let values = match binding {
            Binding::Append { params } => {
                if values.len() != *params {
                    return Err(TenancyError::ParameterCount {
                        given: values.len(),
                        needed: *params,
                    });
                }
                values.push(tenant_value);
                values
            }
            Binding::Positional(slots) => {
                let needed = slots.iter().filter(|s| matches!(s, Slot::Param(_))).count();
                if values.len() != needed {
                    return Err(TenancyError::ParameterCount {
                        given: values.len(),
                        needed,
                    });
                }
                let mut out = Vec::with_capacity(slots.len());
                for slot in slots {
                    out.push(match slot {
                        Slot::Tenant => tenant_value.clone(),
                        Slot::Param(i) => {
                            values
                                .get(*i)
                                .cloned()
                                .ok_or(TenancyError::ParameterCount {
                                    given: values.len(),
                                    needed: i + 1,
                                })?
                        }
                    });
                }
                out
            }
        };
        stmt.sql = match (sql.as_slice(), schema) {
            ([only], _) => only.to_string(),
            (parts, Some(schema)) => {
                let q = identifier_quote(stmt.db_backend);
                parts.join(format!("{q}{schema}{q}").as_str())
            }
            (parts, None) => parts.join(""),
        };
        stmt.values = Some(Values(values));
        Ok(Confined {
            statement: stmt,
            scoped: true,
            global: global.clone(),
        })
    }

    fn template(
        &self,
        backend: DbBackend,
        sql: &str,
        qualified: bool,
    ) -> Result<Arc<Template>, TenancyError> {
        let cache = &self.cache[cache_slot(backend, qualified)];
        if let Some(hit) = cache.read().ok().and_then(|c| c.get(sql).cloned()) {
            return Ok(hit);
        }
        // Refusals are not cached: they are rare, and the error is rebuilt each time.
        let template = Arc::new(self.build(backend, sql, qualified)?);
        if let Ok(mut c) = cache.write() {
            if c.len() >= self.capacity {
                c.clear();
            }
            c.insert(sql.to_owned(), Arc::clone(&template));
        }
        Ok(template)
    }

    /// Parses and rewrites one SQL text (a cache miss).
    fn build(
        &self,
        backend: DbBackend,
        sql: &str,
        qualified: bool,
    ) -> Result<Template, TenancyError> {
        let dialect = placeholders::dialect(backend);
        let tokens = placeholders::tokenize(dialect, sql)
            .map_err(|detail| TenancyError::Untokenizable { detail })?;

        // Fast path: no word of the SQL names a scoped table.
        let Some(table) = tokens.iter().find_map(|t| match &t.token {
            Token::Word(w) if self.registry.tenant_column(&w.value).is_some() => {
                Some(w.value.clone())
            }
            _ => None,
        }) else {
            return Ok(Template::PassThrough);
        };
        let refuse = |reason: String| TenancyError::Refused {
            table: table.clone(),
            reason,
        };

        let (parse_sql, tenant_mark, params) = if placeholders::is_positional(backend) {
            let (numbered, count) =
                placeholders::number_positional(sql, &tokens).map_err(&refuse)?;
            (
                numbered,
                placeholders::POSITIONAL_TENANT_MARK.to_owned(),
                count,
            )
        } else {
            let max = placeholders::max_numbered(&tokens).map_err(&refuse)?;
            (sql.to_owned(), format!("${}", max + 1), max)
        };

        let mut statements =
            Parser::parse_sql(dialect, &parse_sql).map_err(|e| TenancyError::Unparseable {
                table: table.clone(),
                detail: e.to_string(),
            })?;
        if statements.len() != 1 {
            return Err(refuse(format!(
                "{} statements in one call; send them one at a time",
                statements.len()
            )));
        }
        let mut statement = statements.remove(0);
        if !matches!(
            statement,
            Ast::Query(_) | Ast::Insert(_) | Ast::Update(_) | Ast::Delete(_)
        ) {
            let kind = tokens
                .iter()
                .find_map(|t| match &t.token {
                    Token::Word(w) => Some(w.value.to_ascii_uppercase()),
                    _ => None,
                })
                .unwrap_or_default();
            return Err(refuse(format!(
                "{kind} statements cannot run through a TenantConnection; \
                 use the shared connection for administration"
            )));
        }

        let mut pass = scope::ScopePass::new(
            &self.registry,
            dialect,
            identifier_quote(backend),
            tenant_mark,
            qualified
                .then(|| sqlparser::ast::Ident::with_quote(identifier_quote(backend), SCHEMA_MARK)),
        );
        if let std::ops::ControlFlow::Break(err) =
            sqlparser::ast::VisitMut::visit(&mut statement, &mut pass)
        {
            return Err(err);
        }
        if pass.touched.is_none() {
            // The name appeared, but not as a table (a column or alias): nothing to confine.
            return Ok(Template::PassThrough);
        }
        let checks = std::mem::take(&mut pass.checks);
        let global = pass.global.take().map(Arc::from);
        let rewritten = statement.to_string();
        let (sql, binding) = if placeholders::is_positional(backend) {
            let (sql, slots) =
                placeholders::bind_positional(dialect, &rewritten).map_err(&refuse)?;
            (sql, Binding::Positional(slots))
        } else {
            (rewritten, Binding::Append { params })
        };
        let q = identifier_quote(backend);
        let marker = format!("{q}{SCHEMA_MARK}{q}");
        Ok(Template::Rewritten {
            global,
            sql: sql.split(marker.as_str()).map(Into::into).collect(),
            binding,
            checks,
        })
    }
}

fn run_check(check: &Check, values: &[Value], tenant: &Uuid) -> Result<(), TenancyError> {
    let (found, table, column) = match check {
        Check::Param {
            index,
            table,
            column,
        } => (values.get(*index).and_then(value_as_uuid), table, column),
        Check::Literal {
            value,
            table,
            column,
        } => (Uuid::parse_str(value).ok(), table, column),
    };
    match found {
        Some(found) if &found == tenant => Ok(()),
        Some(found) => Err(TenancyError::TenantColumnWrite {
            table: table.clone(),
            column: column.clone(),
            reason: format!(
                "the value {found} is another storefront (this connection is {tenant})"
            ),
        }),
        None => Err(TenancyError::TenantColumnWrite {
            table: table.clone(),
            column: column.clone(),
            reason: "the value is not a UUID".into(),
        }),
    }
}

fn value_as_uuid(value: &Value) -> Option<Uuid> {
    match value {
        Value::Uuid(Some(u)) => Some(*u),
        Value::String(Some(s)) => Uuid::parse_str(s).ok(),
        Value::Bytes(Some(b)) => Uuid::from_slice(b).ok(),
        _ => None,
    }
}
