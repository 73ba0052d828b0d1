//! SQL rewriting: checking each statement against the allow list and confining it to one
//! storefront.
//!
//! Every statement a [`TenantConnection`](crate::TenantConnection) or
//! [`TenantTransaction`](crate::TenantTransaction) runs passes through
//! [`Rewriter::rewrite`]. It is **always parsed** (with the backend's dialect; the result is
//! cached by SQL text) and **what reaches the server is the statement rendered from the
//! checked tree**, never the caller's text, so the server cannot read a name the rewriter
//! did not see. The rules (see `docs/architecture.md`):
//!
//! - **allow list**: only queries (without `INTO`), `INSERT`, `UPDATE` and `DELETE` are
//!   admitted; they may name only registered tables (tenant-scoped ones, and global ones,
//!   read-only unless registered writable) and CTEs, call only allowed functions, and use
//!   only literals and identifiers every backend reads the same way. Everything else is
//!   refused, naming the statement kind, table or function, before the database sees it;
//! - every reference to a tenant-scoped table gets `<alias>.<tenant column> = <tenant>`, in
//!   WHERE for FROM items and in the ON clause of outer-joined tables, inside subqueries,
//!   CTEs, set-operation branches and EXISTS; the tenant predicate comes first and the
//!   existing WHERE is parenthesised after it;
//! - INSERT gets the tenant column and value in every row; an explicit tenant value must be
//!   this storefront's (checked when bound); upserts cannot update another storefront's row;
//! - UPDATE cannot set the tenant column; UPDATE and DELETE are filtered;
//! - the tenant value is always a bound parameter (a `Uuid`), at the right position for the
//!   backend's placeholder style;
//! - schema placement qualifies each scoped table with the storefront's schema; a schema
//!   qualifier written in the SQL must be that schema (other placements refuse qualifiers).
//!
//! The rendered statement is parsed once more and must read back as exactly the checked
//! tree, or it is refused. Rewritten templates are cached by SQL text, so a warm statement
//! costs one hash lookup plus binding.
//!
//! ```
//! use sea_orm::{DbBackend, Statement};
//! use tenancy_core::{rewrite::Rewriter, Registry, StorefrontId};
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
//!     r#"SELECT "id" FROM "customers" WHERE "customers"."storefront_id" = $3 AND ("email" = $1 OR "email" = $2)"#
//! );
//! assert_eq!(out.values.unwrap().0.len(), 3);
//!
//! // Anything outside the allow list is refused before it reaches the database.
//! let refused = rewriter.rewrite(Statement::from_string(DbBackend::Postgres, "SET search_path = other"), &shop);
//! assert!(refused.unwrap_err().to_string().contains("SET"));
//! ```

pub(crate) mod allow;
mod placeholders;
mod scope;

use std::{
    collections::HashMap,
    sync::{Arc, RwLock},
};

use sea_orm::{DbBackend, Statement, Value, Values};
use sqlparser::{
    ast::Statement as Ast,
    parser::{Parser, ParserOptions},
    tokenizer::Token,
};
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
    /// Whether it touches a tenant-scoped table (false: global tables only, or none).
    pub(crate) scoped: bool,
    /// A global table it also reads, if any.
    pub(crate) global: Option<Arc<str>>,
}

/// How the rewritten SQL's values are assembled from the statement's own values.
#[derive(Clone, Debug)]
enum Binding {
    /// Numbered placeholders: the statement's `params` values, then the tenant if `tenant`.
    Append { params: usize, tenant: bool },
    /// Positional placeholders in this order.
    Positional(Vec<Slot>),
}

/// A cached rewrite of one SQL text (independent of the storefront).
#[derive(Debug)]
struct Template {
    /// The checked SQL, split where the storefront's schema goes (one part when
    /// unqualified).
    sql: Vec<Box<str>>,
    /// Whether it names a tenant-scoped table.
    scoped: bool,
    /// A global table the statement also reads, if any.
    global: Option<Arc<str>>,
    binding: Binding,
    checks: Vec<Check>,
    /// Schema qualifiers written on scoped tables: each must be the storefront's schema.
    qualifiers: Vec<(String, String)>,
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
fn identifier_quote(backend: DbBackend) -> char {
    crate::backend::Dialect(backend).quote_char()
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
        let Template {
            sql,
            scoped,
            global,
            binding,
            checks,
            qualifiers,
        } = template.as_ref();
        for (qualifier, table) in qualifiers {
            if !schema.is_some_and(|s| s.eq_ignore_ascii_case(qualifier)) {
                return Err(TenancyError::Refused {
                    table: format!("{qualifier}.{table}"),
                    reason: "the schema is not this storefront's own; write the table name \
                             without a qualifier (the connection places it)"
                        .into(),
                });
            }
        }
        let tenant = *storefront.as_uuid();
        let given = stmt.values.take();
        let had_values = given.is_some();
        let mut values = given.map(|v| v.0).unwrap_or_default();
        for check in checks {
            run_check(check, &values, &tenant)?;
        }
        let tenant_value = Value::Uuid(Some(tenant));
        let values = match binding {
            Binding::Append { params, tenant } => {
                if values.len() != *params {
                    return Err(TenancyError::ParameterCount {
                        given: values.len(),
                        needed: *params,
                    });
                }
                if *tenant {
                    values.push(tenant_value);
                }
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
        stmt.values = (had_values || !values.is_empty()).then_some(Values(values));
        Ok(Confined {
            statement: stmt,
            scoped: *scoped,
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

    /// Parses, checks and rewrites one SQL text (a cache miss).
    fn build(
        &self,
        backend: DbBackend,
        sql: &str,
        qualified: bool,
    ) -> Result<Template, TenancyError> {
        if sql.to_ascii_lowercase().contains(SCHEMA_MARK) {
            return Err(TenancyError::RefusedSyntax {
                reason: format!(
                    "`{SCHEMA_MARK}` is the name the rewriter uses for the storefront's schema"
                ),
            });
        }
        let dialect = placeholders::dialect(backend);
        let tokens = placeholders::tokenize(dialect, sql)
            .map_err(|detail| TenancyError::Untokenizable { detail })?;
        let syntax = |reason: String| TenancyError::RefusedSyntax { reason };

        let (parse_sql, tenant_mark, params) = if placeholders::is_positional(backend) {
            let (numbered, count) =
                placeholders::number_positional(sql, &tokens).map_err(syntax)?;
            (
                numbered,
                placeholders::POSITIONAL_TENANT_MARK.to_owned(),
                count,
            )
        } else {
            let max = placeholders::max_numbered(&tokens).map_err(syntax)?;
            (sql.to_owned(), format!("${}", max + 1), max)
        };

        let mut statements = parse(dialect, &parse_sql).map_err(|e| TenancyError::Unparseable {
            dialect: placeholders::dialect_name(backend).into(),
            detail: e.to_string(),
        })?;
        if statements.len() != 1 {
            return Err(syntax(format!(
                "{} statements in one call; send them one at a time",
                statements.len()
            )));
        }
        let mut statement = statements.remove(0);
        if !matches!(
            statement,
            Ast::Query(_) | Ast::Insert(_) | Ast::Update(_) | Ast::Delete(_)
        ) {
            return Err(allow::refuse_statement(&statement));
        }

        let mut pass = scope::ScopePass::new(
            &self.registry,
            dialect,
            identifier_quote(backend),
            tenant_mark.clone(),
            qualified
                .then(|| sqlparser::ast::Ident::with_quote(identifier_quote(backend), SCHEMA_MARK)),
        );
        if let std::ops::ControlFlow::Break(err) =
            sqlparser::ast::VisitMut::visit(&mut statement, &mut pass)
        {
            return Err(err);
        }
        let rendered = statement.to_string();
        // What the server will parse must be exactly what was checked.
        let reread = parse(dialect, &rendered).ok();
        if reread.as_deref() != Some(std::slice::from_ref(&statement)) {
            return Err(syntax(
                "the statement does not read back the same after rewriting (an ambiguous \
                 literal, identifier or construct); simplify it or bind literals as values"
                    .into(),
            ));
        }
        let rendered_tokens = placeholders::tokenize(dialect, &rendered).map_err(syntax)?;
        // No comment (nor an optimizer hint, which lives in one) ever reaches the server:
        // servers disagree on where comments end (PostgreSQL nests them, MySQL executes
        // `/*! ... */`), so text inside one is text the rewriter would not have checked.
        if rendered_tokens.iter().any(|t| {
            matches!(
                &t.token,
                Token::Whitespace(
                    sqlparser::tokenizer::Whitespace::SingleLineComment { .. }
                        | sqlparser::tokenizer::Whitespace::MultiLineComment(_)
                )
            )
        }) {
            return Err(syntax(
                "comments and optimizer hints cannot run through a storefront's connection".into(),
            ));
        }
        let (sql, binding) = if placeholders::is_positional(backend) {
            let (sql, slots) =
                placeholders::bind_positional(&rendered, &rendered_tokens).map_err(syntax)?;
            (sql, Binding::Positional(slots))
        } else {
            let tenant = rendered_tokens
                .iter()
                .any(|t| matches!(&t.token, Token::Placeholder(p) if *p == tenant_mark));
            (rendered, Binding::Append { params, tenant })
        };
        let q = identifier_quote(backend);
        let marker = format!("{q}{SCHEMA_MARK}{q}");
        Ok(Template {
            scoped: pass.touched.is_some(),
            global: pass.global.take().map(Arc::from),
            // Only schema-placement templates carry the marker (a caller's own use of the
            // name is refused at the top of `build`, so nothing else is cut out).
            sql: if qualified {
                sql.split(marker.as_str()).map(Into::into).collect()
            } else {
                vec![sql.into()]
            },
            binding,
            checks: std::mem::take(&mut pass.checks),
            qualifiers: std::mem::take(&mut pass.qualifiers),
        })
    }
}

/// Parses without unescaping literals, so each literal keeps the text the caller wrote
/// (and is rendered back as that text): the allow list judges the literal as written, and
/// the server receives it unchanged.
fn parse(
    dialect: &dyn sqlparser::dialect::Dialect,
    sql: &str,
) -> Result<Vec<Ast>, sqlparser::parser::ParserError> {
    Parser::new(dialect)
        .with_options(ParserOptions::new().with_unescape(false))
        .try_with_sql(sql)?
        .parse_statements()
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
