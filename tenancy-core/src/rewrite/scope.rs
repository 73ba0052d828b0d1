//! The AST pass that checks one statement against the allow list and confines it to one
//! storefront.
//!
//! It runs as a sqlparser [`VisitorMut`], so it reaches every query nested anywhere in the
//! statement (subqueries in any expression, CTEs, set-operation branches, derived tables,
//! the source of `INSERT ... SELECT`, data-modifying CTEs). Its two jobs:
//!
//! - **check** (allow list): every statement is a query, `INSERT`, `UPDATE` or `DELETE`;
//!   every name in a table position is a registered scoped table, a registered global
//!   table or a CTE in scope; every function is allowed; every literal and identifier is
//!   one the server reads exactly as the parser did (see [`super::allow`]);
//! - **confine**: each `SELECT`, `UPDATE` and `DELETE` gets the tenant predicate for every
//!   scoped table it reads, in the WHERE clause or in the ON clause of the join that makes
//!   the table optional; each `INSERT` gets the tenant column.
//!
//! Each handled table reference is recorded by address; when the visitor then reaches a
//! reference to a scoped table that no rule handled, the statement is refused. That check
//! is what makes the pass fail closed for syntax it does not know.
//!
//! Name resolution follows SQL's scoping: an unqualified name in a read position is a CTE
//! when a CTE of that name is visible there (earlier CTEs of the same `WITH`, the CTE itself
//! under `WITH RECURSIVE`, the CTEs of enclosing queries), else a table. Where a server
//! could resolve a name either way, the pass takes the reading that confines more: the
//! target of a write is always a table.

use std::{
    collections::{HashMap, HashSet},
    ops::ControlFlow,
};

use sqlparser::{
    ast::{
        AssignmentTarget, BinaryOperator, CaseWhen, Expr, FromTable, Ident, Insert, ObjectName,
        ObjectNamePart, OnConflictAction, OnInsert, Query, Select, SelectItem, SetExpr,
        SqliteOnConflict, Statement, TableAlias, TableFactor, TableObject, TableWithJoins, Update,
        UpdateTableFromKind, Value, ValueWithSpan, VisitorMut,
    },
    dialect::Dialect,
    parser::Parser,
};

use super::{allow, Check};
use crate::{registry::is_reserved, GlobalAccess, Registry, TenancyError};

/// Where a table reference sits, which decides how its name resolves and whether it may be
/// wrapped in a subquery.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Read by a query: may be a CTE; may become `(SELECT * FROM t WHERE <tenant>) AS t`.
    Read,
    /// Written by UPDATE or DELETE: always a table; must stay a plain table.
    Target,
}

/// What a name in a table position refers to.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Resolved {
    /// A CTE in scope.
    Cte,
    /// A registered tenant-scoped table and its tenant column.
    Scoped { table: String, column: String },
    /// A registered global table.
    Global { table: String, access: GlobalAccess },
}

/// The CTEs one `WITH` introduces, and how many of them are visible at this point.
struct CteScope {
    /// The query that owns the `WITH`.
    owner: usize,
    /// CTE names as the server folds them, in order.
    names: Vec<String>,
    /// The address of each CTE's query.
    queries: Vec<usize>,
    recursive: bool,
    /// How many of `names` are visible (those before the CTE being visited, plus itself
    /// under `WITH RECURSIVE`; all of them in the body).
    visible: usize,
}

pub(super) struct ScopePass<'a> {
    registry: &'a Registry,
    dialect: &'a dyn Dialect,
    quote: char,
    tenant_mark: String,
    /// Schema placement: scoped tables are qualified with this (a marker the binder
    /// replaces with the storefront's schema).
    schema_mark: Option<Ident>,
    /// Whether a CTE sees itself even without `WITH RECURSIVE` (SQLite).
    self_reference: bool,
    /// Whether unquoted names fold to lower case (PostgreSQL).
    fold_unquoted: bool,
    /// Addresses of the table names a rule handled, and what each resolved to.
    handled: HashMap<usize, Resolved>,
    scopes: Vec<CteScope>,
    /// Value checks the binder must run (explicit tenant values in INSERT).
    pub(super) checks: Vec<Check>,
    /// Schema qualifiers written on scoped tables: the binder requires each to be the
    /// storefront's own schema.
    pub(super) qualifiers: Vec<(String, String)>,
    /// The first scoped table the pass confined, if any.
    pub(super) touched: Option<String>,
    /// The first global table the statement reads, if any.
    pub(super) global: Option<String>,
}

type Flow = ControlFlow<TenancyError>;

pub(super) fn refuse(table: &str, reason: impl Into<String>) -> TenancyError {
    TenancyError::Refused {
        table: table.to_owned(),
        reason: reason.into(),
    }
}

fn syntax(reason: impl Into<String>) -> TenancyError {
    TenancyError::RefusedSyntax {
        reason: reason.into(),
    }
}

fn hints() -> TenancyError {
    syntax("optimizer hints cannot run through a storefront's connection")
}

fn last_ident(name: &ObjectName) -> Option<&Ident> {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(ident)) => Some(ident),
        _ => None,
    }
}

fn name_idents(name: &ObjectName) -> Vec<Ident> {
    name.0
        .iter()
        .filter_map(|p| match p {
            ObjectNamePart::Identifier(i) => Some(i.clone()),
            _ => None,
        })
        .collect()
}

/// `qualifier.column`, shaped as the parser reads it back.
fn column_ref(mut qualifier: Vec<Ident>, column: Ident) -> Expr {
    if qualifier.is_empty() {
        Expr::Identifier(column)
    } else {
        qualifier.push(column);
        Expr::CompoundIdentifier(qualifier)
    }
}

fn addr<T>(t: &T) -> usize {
    t as *const T as usize
}

/// `p1 AND p2 ... AND (existing)`: the tenant predicates come first, so a server that
/// evaluates conditions in the order written (MySQL, SQLite, PostgreSQL's ON CONFLICT
/// WHERE) never evaluates the caller's condition on another storefront's row (where an
/// error could tell something about that row).
fn and_all(existing: Option<Expr>, preds: Vec<Expr>) -> Option<Expr> {
    let mut acc: Option<Expr> = None;
    let parts = preds
        .into_iter()
        .chain(existing.map(|e| Expr::Nested(Box::new(e))));
    for p in parts {
        acc = Some(match acc {
            None => p,
            Some(left) => Expr::BinaryOp {
                left: Box::new(left),
                op: BinaryOperator::And,
                right: Box::new(p),
            },
        });
    }
    acc
}

fn and_into(target: &mut Expr, preds: Vec<Expr>) {
    let old = std::mem::replace(target, Expr::Value(Value::Null.with_empty_span()));
    if let Some(new) = and_all(Some(old), preds) {
        *target = new;
    }
}

/// The name of an object as written, for messages.
fn display(name: &ObjectName) -> String {
    name_idents(name)
        .iter()
        .map(|i| i.value.as_str())
        .collect::<Vec<_>>()
        .join(".")
}

const OPERATOR_CONNECTION: &str =
    "use the operator connection (Tenancy::shared) for administration";

impl<'a> ScopePass<'a> {
    pub(super) fn new(
        registry: &'a Registry,
        dialect: &'a dyn Dialect,
        quote: char,
        tenant_mark: String,
        schema_mark: Option<Ident>,
    ) -> Self {
        Self {
            self_reference: dialect.is::<sqlparser::dialect::SQLiteDialect>(),
            fold_unquoted: dialect.is::<sqlparser::dialect::PostgreSqlDialect>(),
            registry,
            dialect,
            quote,
            tenant_mark,
            schema_mark,
            handled: HashMap::new(),
            scopes: Vec::new(),
            checks: Vec::new(),
            qualifiers: Vec::new(),
            touched: None,
            global: None,
        }
    }

    /// Whether an unqualified name is a CTE visible here: `Some(true)` when a visible CTE
    /// has exactly this name (as the server folds it), `Some(false)` when one differs from
    /// it only by case (servers disagree on whether that names the CTE), `None` otherwise.
    fn cte_visible(&self, ident: &Ident) -> Option<bool> {
        let name = self.fold(ident);
        let mut near = false;
        for scope in &self.scopes {
            for n in scope.names.iter().take(scope.visible) {
                if *n == name {
                    return Some(true);
                }
                near |= n.eq_ignore_ascii_case(&name);
            }
        }
        near.then_some(false)
    }

    /// A name as PostgreSQL folds it (unquoted to lower case); other backends compare
    /// as written (a case-only difference is refused, see `cte_visible`).
    fn fold(&self, ident: &Ident) -> String {
        if self.fold_unquoted && ident.quote_style.is_none() {
            ident.value.to_ascii_lowercase()
        } else {
            ident.value.clone()
        }
    }

    /// What `name` refers to in a position with `role`, or the refusal naming it.
    fn resolve(&self, name: &ObjectName, role: Role) -> Result<Resolved, TenancyError> {
        let written = display(name);
        if name
            .0
            .iter()
            .any(|p| !matches!(p, ObjectNamePart::Identifier(_)))
        {
            return Err(refuse(&written, "this form of table name is not supported"));
        }
        let Some(ident) = last_ident(name) else {
            return Err(refuse(&written, "empty table name"));
        };
        let table = ident.value.as_str();
        if role == Role::Read && name.0.len() == 1 {
            match self.cte_visible(ident) {
                Some(true) => return Ok(Resolved::Cte),
                Some(false) => {
                    return Err(refuse(
                        &written,
                        "the name differs from a CTE's only by letter case, and servers \
                         disagree on whether it names the CTE; spell it exactly as the CTE",
                    ))
                }
                None => {}
            }
        }
        if is_reserved(table) {
            return Err(refuse(
                &written,
                format!(
                    "it is one of the framework's own tables, which no storefront's connection \
                     may read or write; {OPERATOR_CONNECTION}"
                ),
            ));
        }
        if let Some(column) = self.registry.tenant_column(table) {
            return Ok(Resolved::Scoped {
                table: table.to_owned(),
                column: column.to_owned(),
            });
        }
        if let Some(access) = self.registry.global(table) {
            if name.0.len() > 1 {
                return Err(refuse(
                    &written,
                    "a global table is named without a schema or database qualifier (it lives \
                     in the shared database); write the table name alone",
                ));
            }
            return Ok(Resolved::Global {
                table: table.to_owned(),
                access,
            });
        }
        Err(refuse(
            &written,
            format!(
                "it is not a registered table: a storefront's connection may name only tables \
                 marked #[tenant_scoped] or #[global_table] (or added with \
                 Registry::with_global); catalogs, system schemas and unknown tables are \
                 refused; {OPERATOR_CONNECTION}"
            ),
        ))
    }

    /// The target of a write: a scoped table, or a global table registered as writable.
    fn write_target(&self, name: &ObjectName) -> Result<Resolved, TenancyError> {
        let resolved = self.resolve(name, Role::Target)?;
        if let Resolved::Global {
            table,
            access: GlobalAccess::ReadOnly,
        } = &resolved
        {
            return Err(refuse(
                table,
                format!(
                    "it is a read-only global table: a write would change what every storefront \
                     sees; register it with #[global_table(writable)] if storefronts may write \
                     it, or {OPERATOR_CONNECTION}"
                ),
            ));
        }
        Ok(resolved)
    }

    /// Checks the schema qualifier of a scoped table and places it: schema placement
    /// qualifies it with the storefront's schema (a qualifier written in the SQL must be
    /// that schema, checked when bound); the other placements refuse qualifiers.
    fn qualify(&mut self, name: &mut ObjectName, table: &str) -> Result<(), TenancyError> {
        let parts = name_idents(name);
        if parts.len() > 2 {
            return Err(refuse(
                &display(name),
                "names with more than one qualifier are not supported",
            ));
        }
        match (&self.schema_mark, parts.first()) {
            (Some(_), Some(schema)) if parts.len() == 2 => {
                self.qualifiers
                    .push((schema.value.clone(), table.to_owned()));
            }
            (None, Some(_)) if parts.len() == 2 => {
                return Err(refuse(
                    &display(name),
                    "a storefront's connection places its tables itself; write the table name \
                     without a schema or database qualifier",
                ));
            }
            _ => {}
        }
        if let (Some(mark), Some(t)) = (&self.schema_mark, parts.last()) {
            *name = ObjectName::from(vec![mark.clone(), t.clone()]);
        }
        Ok(())
    }

    fn mark(&mut self, name: &ObjectName, resolved: Resolved) {
        match &resolved {
            Resolved::Scoped { table, .. } if self.touched.is_none() => {
                self.touched = Some(table.clone());
            }
            _ => {}
        }
        self.handled.insert(addr(name), resolved);
    }

    fn tenant_value(&self) -> Expr {
        Expr::Value(Value::Placeholder(self.tenant_mark.clone()).with_empty_span())
    }

    fn column_ident(&self, column: &str) -> Ident {
        Ident::with_quote(self.quote, column)
    }

    /// `<qualifier>.<column> = <tenant>`
    fn predicate(&self, qualifier: Vec<Ident>, column: &str) -> Expr {
        Expr::BinaryOp {
            left: Box::new(column_ref(qualifier, self.column_ident(column))),
            op: BinaryOperator::Eq,
            right: Box::new(self.tenant_value()),
        }
    }

    /// The tenant predicate of a plain table reference, if it resolves to a scoped table.
    fn table_predicate(
        &mut self,
        factor: &mut TableFactor,
        role: Role,
    ) -> Result<Option<Expr>, TenancyError> {
        let TableFactor::Table {
            name, alias, args, ..
        } = factor
        else {
            return Ok(None);
        };
        if args.is_some() {
            return Err(refuse(
                &display(name),
                "table functions cannot run through a storefront's connection",
            ));
        }
        let resolved = match role {
            Role::Target => self.write_target(name)?,
            Role::Read => self.resolve(name, role)?,
        };
        let Resolved::Scoped { table, column } = resolved.clone() else {
            if let Resolved::Global { table, .. } = &resolved {
                if self.global.is_none() {
                    self.global = Some(table.clone());
                }
            }
            self.mark(name, resolved);
            return Ok(None);
        };
        self.qualify(name, &table)?;
        self.mark(name, resolved);
        let qualifier = match alias {
            Some(alias) => vec![alias.name.clone()],
            None => name_idents(name),
        };
        Ok(Some(self.predicate(qualifier, &column)))
    }

    /// Predicates for one factor of a FROM item, to be placed by the caller.
    fn factor_predicates(
        &mut self,
        factor: &mut TableFactor,
        role: Role,
    ) -> Result<Vec<Expr>, TenancyError> {
        if let TableFactor::Table {
            alias: Some(alias), ..
        } = factor
        {
            // `t AS a(x, y)` renames the columns: `a.<tenant column>` could be another
            // column. Filter the table in a subquery, under its own names.
            if !alias.columns.is_empty() {
                if role == Role::Target {
                    return Err(syntax(
                        "column aliases on the target of UPDATE or DELETE are not supported",
                    ));
                }
                self.wrap_scoped(factor, role)?;
                return Ok(Vec::new());
            }
        }
        match factor {
            TableFactor::Table { .. } => {
                Ok(self.table_predicate(factor, role)?.into_iter().collect())
            }
            // An alias on a parenthesised join hides the names inside it, so a predicate in
            // the enclosing WHERE could name another table: filter each scoped table in a
            // subquery instead.
            TableFactor::NestedJoin { alias: Some(_), .. } => {
                if role == Role::Target {
                    return Err(syntax(
                        "an aliased parenthesised join cannot be the target of UPDATE or DELETE",
                    ));
                }
                self.wrap_scoped(factor, role)?;
                Ok(Vec::new())
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.filter_from(table_with_joins, role),
            // Derived tables: their queries are visited on their own. Anything else is
            // refused when the visitor reaches it (`pre_visit_table_factor`).
            _ => Ok(Vec::new()),
        }
    }

    /// Confines one FROM item (a table and its joins). Returns the predicates that belong
    /// in the enclosing WHERE; predicates for optional (outer-joined) tables go into their
    /// ON clause here.
    fn filter_from(
        &mut self,
        from: &mut TableWithJoins,
        role: Role,
    ) -> Result<Vec<Expr>, TenancyError> {
        use sqlparser::ast::{JoinConstraint as C, JoinOperator as J};

        let preserves_right = from.joins.iter().any(|j| {
            matches!(
                j.join_operator,
                J::Right(_)
                    | J::RightOuter(_)
                    | J::FullOuter(_)
                    | J::RightSemi(_)
                    | J::RightAnti(_)
            )
        });
        if preserves_right {
            // With RIGHT or FULL joins in the chain, no single place for a predicate keeps
            // the join's meaning; filtering each scoped table in a subquery always does.
            self.wrap_scoped(&mut from.relation, role)?;
            for join in &mut from.joins {
                self.wrap_scoped(&mut join.relation, role)?;
            }
            return Ok(Vec::new());
        }

        let mut where_preds = self.factor_predicates(&mut from.relation, role)?;
        for join in &mut from.joins {
            let (optional, constraint) = match &mut join.join_operator {
                J::Join(c) | J::Inner(c) | J::CrossJoin(c) | J::StraightJoin(c) => (false, c),
                J::Left(c)
                | J::LeftOuter(c)
                | J::Semi(c)
                | J::LeftSemi(c)
                | J::Anti(c)
                | J::LeftAnti(c) => (true, c),
                _ => {
                    return Err(syntax(
                        "this kind of join is not supported through a storefront's connection",
                    ))
                }
            };
            match constraint {
                C::On(on) => {
                    let preds = self.factor_predicates(&mut join.relation, role)?;
                    if !preds.is_empty() {
                        and_into(on, preds);
                    }
                }
                _ if optional => self.wrap_scoped(&mut join.relation, role)?,
                _ => where_preds.extend(self.factor_predicates(&mut join.relation, role)?),
            }
        }
        Ok(where_preds)
    }

    /// Replaces each scoped table reference in `factor` by
    /// `(SELECT * FROM table) AS alias`; the subquery is then confined when visited.
    fn wrap_scoped(&mut self, factor: &mut TableFactor, role: Role) -> Result<(), TenancyError> {
        match factor {
            TableFactor::Table { name, alias, .. } => {
                let resolved = match role {
                    Role::Target => self.write_target(name)?,
                    Role::Read => self.resolve(name, role)?,
                };
                let Resolved::Scoped { table, .. } = resolved else {
                    return self.table_predicate(factor, Role::Read).map(|_| ());
                };
                if role == Role::Target {
                    return Err(refuse(
                        &table,
                        "RIGHT/FULL or USING/NATURAL outer joins are not supported in UPDATE or DELETE",
                    ));
                }
                let alias_name = match alias {
                    Some(a) => a.name.clone(),
                    None => last_ident(name)
                        .cloned()
                        .unwrap_or_else(|| Ident::new(&table)),
                };
                let columns = alias
                    .as_ref()
                    .map(|a| a.columns.clone())
                    .unwrap_or_default();
                let subquery = self.select_star_from(name.clone(), &table)?;
                *factor = TableFactor::Derived {
                    lateral: false,
                    subquery: Box::new(subquery),
                    alias: Some(TableAlias {
                        explicit: true,
                        name: alias_name,
                        columns,
                        at: None,
                    }),
                    sample: None,
                };
                Ok(())
            }
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => {
                self.wrap_scoped(&mut table_with_joins.relation, role)?;
                for join in &mut table_with_joins.joins {
                    self.wrap_scoped(&mut join.relation, role)?;
                }
                Ok(())
            }
            _ => Ok(()),
        }
    }

    fn select_star_from(&self, name: ObjectName, table: &str) -> Result<Query, TenancyError> {
        let mut statements = Parser::parse_sql(self.dialect, "SELECT * FROM t")
            .map_err(|e| refuse(table, format!("internal: {e}")))?;
        if let Some(Statement::Query(mut query)) = statements.pop() {
            if let SetExpr::Select(select) = query.body.as_mut() {
                if let Some(TableFactor::Table { name: n, .. }) =
                    select.from.first_mut().map(|f| &mut f.relation)
                {
                    *n = name;
                    return Ok(*query);
                }
            }
        }
        Err(refuse(
            table,
            "internal: could not build a filtered subquery",
        ))
    }

    /// `TABLE name` (a whole query or a set-operation branch) becomes
    /// `SELECT * FROM name`, which the rules then confine like any other query.
    fn expand_table_shorthand(&self, body: &mut SetExpr) -> Result<(), TenancyError> {
        match body {
            SetExpr::Table(t) => {
                let Some(table) = t.table_name.clone() else {
                    return Err(syntax("TABLE without a table name"));
                };
                let mut parts = Vec::new();
                if let Some(schema) = t.schema_name.clone() {
                    parts.push(schema);
                }
                parts.push(table.clone());
                let query = self.select_star_from(ObjectName::from(parts), &table.value)?;
                *body = *query.body;
                Ok(())
            }
            SetExpr::SetOperation { left, right, .. } => {
                self.expand_table_shorthand(left)?;
                self.expand_table_shorthand(right)
            }
            _ => Ok(()),
        }
    }

    /// An explicit tenant value in a write must be this storefront's: a bound value or a
    /// UUID literal, checked when the statement is bound.
    fn check_value(&mut self, expr: &Expr, table: &str, column: &str) -> Result<(), TenancyError> {
        let write = |reason: &str| TenancyError::TenantColumnWrite {
            table: table.to_owned(),
            column: column.to_owned(),
            reason: reason.to_owned(),
        };
        match expr {
            Expr::Value(v) => match &v.value {
                Value::Placeholder(p) => {
                    let index = super::placeholders::placeholder_index(p)
                        .ok_or_else(|| write("the value is an unsupported placeholder"))?;
                    self.checks.push(Check::Param {
                        index,
                        table: table.to_owned(),
                        column: column.to_owned(),
                    });
                    Ok(())
                }
                Value::SingleQuotedString(s) => {
                    self.checks.push(Check::Literal {
                        value: s.clone(),
                        table: table.to_owned(),
                        column: column.to_owned(),
                    });
                    Ok(())
                }
                _ => Err(write(
                    "the value must be a bound parameter or a UUID literal",
                )),
            },
            Expr::Cast { expr, .. } | Expr::Nested(expr) => self.check_value(expr, table, column),
            _ => Err(write(
                "the value must be a bound parameter or a UUID literal",
            )),
        }
    }

    fn check_assignment_targets(
        &self,
        assignments: &[sqlparser::ast::Assignment],
        table: &str,
    ) -> Result<(), TenancyError> {
        for a in assignments {
            let names: Vec<&ObjectName> = match &a.target {
                AssignmentTarget::ColumnName(n) => vec![n],
                AssignmentTarget::Tuple(v) => v.iter().collect(),
            };
            for n in names {
                if let Some(col) = last_ident(n) {
                    if self.registry.is_tenant_column(&col.value) {
                        return Err(TenancyError::TenantColumnWrite {
                            table: table.to_owned(),
                            column: col.value.clone(),
                            reason:
                                "the tenant column cannot be changed (move the storefront instead)"
                                    .into(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    fn insert(&mut self, ins: &mut Insert) -> Result<(), TenancyError> {
        if !ins.optimizer_hints.is_empty() {
            return Err(hints());
        }
        let TableObject::TableName(name) = &mut ins.table else {
            return Err(syntax(
                "INSERT into a table function is not supported through a storefront's connection",
            ));
        };
        let resolved = self.write_target(name)?;
        let Resolved::Scoped { table, column } = resolved.clone() else {
            // A writable global table: nothing to confine.
            self.mark(name, resolved);
            return Ok(());
        };
        self.qualify(name, &table)?;
        let qualifier = match &ins.table_alias {
            Some(alias) => vec![alias.alias.clone()],
            None => name_idents(name),
        };
        self.mark(name, resolved);
        if ins.replace_into || matches!(ins.or, Some(SqliteOnConflict::Replace)) {
            return Err(refuse(
                &table,
                "REPLACE can delete another storefront's row",
            ));
        }
        if !ins.assignments.is_empty() {
            return Err(refuse(
                &table,
                "INSERT ... SET is not supported; use a column list",
            ));
        }
        if ins.columns.is_empty() {
            return Err(refuse(
                &table,
                "INSERT without a column list: the tenant column cannot be placed",
            ));
        }
        let position = ins
            .columns
            .iter()
            .position(|c| last_ident(c).is_some_and(|i| i.value.eq_ignore_ascii_case(&column)));
        let Some(source) = ins.source.as_mut() else {
            return Err(refuse(&table, "INSERT without VALUES or SELECT"));
        };
        self.insert_source(&mut source.body, position, &table, &column)?;
        if position.is_none() {
            ins.columns
                .push(ObjectName::from(vec![self.column_ident(&column)]));
        }
        match &mut ins.on {
            Some(OnInsert::OnConflict(conflict)) => {
                if let OnConflictAction::DoUpdate(update) = &mut conflict.action {
                    self.check_assignment_targets(&update.assignments, &table)?;
                    // The conflicting row may be another storefront's (same primary key):
                    // then the update must not happen.
                    let pred = self.predicate(qualifier, &column);
                    update.selection = and_all(update.selection.take(), vec![pred]);
                }
            }
            Some(OnInsert::DuplicateKeyUpdate(assignments)) => {
                self.check_assignment_targets(assignments, &table)?;
                if ins.insert_alias.is_some() {
                    return Err(refuse(
                        &table,
                        "row aliases (INSERT ... AS new) are not supported with ON DUPLICATE \
                         KEY UPDATE; use VALUES(column)",
                    ));
                }
                // MySQL has no WHERE here: each assignment keeps the old value unless the
                // existing row is this storefront's. The tenant column is never assigned, so
                // it always reads the existing row's value.
                for a in assignments.iter_mut() {
                    let AssignmentTarget::ColumnName(target) = &a.target else {
                        return Err(refuse(
                            &table,
                            "tuple assignment in ON DUPLICATE KEY UPDATE",
                        ));
                    };
                    let mut parts = name_idents(target);
                    let Some(last) = parts.pop() else {
                        return Err(refuse(&table, "empty assignment target"));
                    };
                    let keep = column_ref(parts, last);
                    let value =
                        std::mem::replace(&mut a.value, Expr::Value(Value::Null.with_empty_span()));
                    a.value = Expr::Case {
                        case_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
                        end_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
                        operand: None,
                        conditions: vec![CaseWhen {
                            // The existing row's tenant column, named by the target table
                            // (unambiguous even when the source is a join).
                            condition: self.predicate(qualifier.clone(), &column),
                            result: value,
                        }],
                        else_result: Some(Box::new(keep)),
                    };
                }
            }
            None => {}
            Some(_) => return Err(refuse(&table, "this ON clause of INSERT is not supported")),
        }
        Ok(())
    }

    fn insert_source(
        &mut self,
        body: &mut SetExpr,
        position: Option<usize>,
        table: &str,
        column: &str,
    ) -> Result<(), TenancyError> {
        self.expand_table_shorthand(body)?;
        match body {
            SetExpr::Values(values) => {
                for row in &mut values.rows {
                    match position {
                        Some(p) => {
                            let value = row.get(p).ok_or_else(|| {
                                refuse(table, "a VALUES row is shorter than the column list")
                            })?;
                            self.check_value(&value.clone(), table, column)?;
                        }
                        None => row.push(self.tenant_value()),
                    }
                }
                Ok(())
            }
            SetExpr::Select(select) => self.insert_select(select, position, table, column),
            SetExpr::SetOperation { left, right, .. } => {
                self.insert_source(left, position, table, column)?;
                self.insert_source(right, position, table, column)
            }
            SetExpr::Query(query) => self.insert_source(&mut query.body, position, table, column),
            _ => Err(refuse(table, "unsupported INSERT source")),
        }
    }

    fn insert_select(
        &mut self,
        select: &mut Select,
        position: Option<usize>,
        table: &str,
        column: &str,
    ) -> Result<(), TenancyError> {
        match position {
            None => {
                if select.projection.iter().any(|item| {
                    matches!(
                        item,
                        SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
                    )
                }) {
                    return Err(TenancyError::TenantColumnWrite {
                        table: table.to_owned(),
                        column: column.to_owned(),
                        reason: "in INSERT ... SELECT, name the selected columns (a `*` could \
                                 carry another storefront's tenant column)"
                            .into(),
                    });
                }
                select
                    .projection
                    .push(SelectItem::UnnamedExpr(self.tenant_value()));
                Ok(())
            }
            Some(p) => {
                let wildcard = select.projection.iter().take(p + 1).any(|item| {
                    matches!(
                        item,
                        SelectItem::Wildcard(_) | SelectItem::QualifiedWildcard(..)
                    )
                });
                match select.projection.get(p) {
                    Some(SelectItem::UnnamedExpr(e)) | Some(SelectItem::ExprWithAlias { expr: e, .. })
                        if !wildcard =>
                    {
                        let e = e.clone();
                        self.check_value(&e, table, column)
                    }
                    _ => Err(TenancyError::TenantColumnWrite {
                        table: table.to_owned(),
                        column: column.to_owned(),
                        reason: "in INSERT ... SELECT, leave the tenant column out of the column list (it is added) or select a bound value".into(),
                    }),
                }
            }
        }
    }

    fn update(&mut self, update: &mut Update) -> Result<(), TenancyError> {
        if !update.optimizer_hints.is_empty() {
            return Err(hints());
        }
        if matches!(update.or, Some(SqliteOnConflict::Replace)) {
            return Err(syntax(
                "UPDATE OR REPLACE can delete another storefront's row (a conflicting key); \
                 use a plain UPDATE",
            ));
        }
        // The first table is written; MySQL's joined tables may be written too, so each
        // must be scoped (or a writable global table).
        let mut preds = self.filter_from(&mut update.table, Role::Target)?;
        if let Some(UpdateTableFromKind::BeforeSet(from) | UpdateTableFromKind::AfterSet(from)) =
            &mut update.from
        {
            for item in from {
                preds.extend(self.filter_from(item, Role::Read)?);
            }
        }
        let table = match &update.table.relation {
            TableFactor::Table { name, .. } => display(name),
            _ => String::from("?"),
        };
        self.check_assignment_targets(&update.assignments, &table)?;
        if !preds.is_empty() {
            update.selection = and_all(update.selection.take(), preds);
        }
        Ok(())
    }

    fn delete(&mut self, delete: &mut sqlparser::ast::Delete) -> Result<(), TenancyError> {
        if !delete.optimizer_hints.is_empty() {
            return Err(hints());
        }
        let mut preds = Vec::new();
        let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &mut delete.from;
        // `DELETE FROM t ...`: the FROM tables are written. MySQL's `DELETE t1 FROM t1 JOIN
        // t2`: the listed tables are written, and must each name a scoped FROM table.
        let role = if delete.tables.is_empty() {
            Role::Target
        } else {
            Role::Read
        };
        for item in from.iter_mut() {
            preds.extend(self.filter_from(item, role)?);
        }
        if let Some(using) = &mut delete.using {
            for item in using {
                preds.extend(self.filter_from(item, Role::Read)?);
            }
        }
        if !delete.tables.is_empty() {
            let mut scoped_names = HashSet::new();
            let mut other_names = HashSet::new();
            for item in from.iter() {
                collect_names(item, &self.handled, &mut scoped_names, &mut other_names);
            }
            for target in &delete.tables {
                // Exactly a scoped table's alias or name, and not (in any case) another's:
                // MySQL compares aliases case-sensitively on Linux, not everywhere.
                let key = display(target);
                if !scoped_names.contains(&key)
                    || other_names.contains(&key.to_ascii_lowercase())
                    || target.0.len() != 1
                {
                    return Err(refuse(
                        &display(target),
                        "a multi-table DELETE may delete only from tenant-scoped tables of its \
                         FROM clause, named by their alias or table name",
                    ));
                }
            }
        }
        if !preds.is_empty() {
            delete.selection = and_all(delete.selection.take(), preds);
        }
        Ok(())
    }

    /// Registers the CTEs of `query`'s `WITH` (after checking their names).
    fn enter_with(&mut self, query: &Query) -> Result<(), TenancyError> {
        let Some(with) = &query.with else {
            return Ok(());
        };
        let mut names = Vec::new();
        let mut queries = Vec::new();
        for cte in &with.cte_tables {
            if cte.from.is_some() {
                return Err(syntax("CTE ... FROM is not supported"));
            }
            names.push(self.fold(&cte.alias.name));
            queries.push(addr(cte.query.as_ref()));
        }
        self.scopes.push(CteScope {
            owner: addr(query),
            names,
            queries,
            recursive: with.recursive || self.self_reference,
            visible: 0,
        });
        Ok(())
    }
}

/// The aliases (or table names) of the FROM items of `item`: those of scoped tables a rule
/// handled as written, all others lower-cased.
fn collect_names(
    item: &TableWithJoins,
    handled: &HashMap<usize, Resolved>,
    scoped: &mut HashSet<String>,
    others: &mut HashSet<String>,
) {
    let mut factor = |f: &TableFactor| {
        let (name, alias) = match f {
            TableFactor::Table { name, alias, .. } => (
                alias
                    .as_ref()
                    .map(|a| a.name.value.clone())
                    .or_else(|| last_ident(name).map(|i| i.value.clone())),
                Some(name),
            ),
            TableFactor::Derived { alias, .. } | TableFactor::NestedJoin { alias, .. } => {
                (alias.as_ref().map(|a| a.name.value.clone()), None)
            }
            _ => (None, None),
        };
        let Some(label) = name else { return };
        match alias.and_then(|n| handled.get(&addr(n))) {
            Some(Resolved::Scoped { .. }) => {
                scoped.insert(label);
            }
            _ => {
                others.insert(label.to_ascii_lowercase());
            }
        }
    };
    factor(&item.relation);
    for j in &item.joins {
        factor(&j.relation);
    }
}

fn flow(result: Result<(), TenancyError>) -> Flow {
    match result {
        Ok(()) => ControlFlow::Continue(()),
        Err(e) => ControlFlow::Break(e),
    }
}

impl VisitorMut for ScopePass<'_> {
    type Break = TenancyError;

    fn pre_visit_query(&mut self, query: &mut Query) -> Flow {
        let me = addr(&*query);
        // Entering the body of a CTE: the CTEs before it are visible (and itself, under
        // WITH RECURSIVE).
        if let Some(scope) = self.scopes.last_mut() {
            if let Some(i) = scope.queries.iter().position(|q| *q == me) {
                scope.visible = if scope.recursive { i + 1 } else { i };
            }
        }
        if let Err(e) = self.enter_with(query) {
            return ControlFlow::Break(e);
        }
        if let Err(e) = self.expand_table_shorthand(&mut query.body) {
            return ControlFlow::Break(e);
        }
        if !query.pipe_operators.is_empty() {
            return ControlFlow::Break(syntax("pipe syntax is not supported"));
        }
        if query.for_clause.is_some() || query.settings.is_some() || query.format_clause.is_some() {
            return ControlFlow::Break(syntax(
                "FOR, SETTINGS and FORMAT clauses are not supported",
            ));
        }
        ControlFlow::Continue(())
    }

    fn post_visit_query(&mut self, query: &mut Query) -> Flow {
        let me = addr(&*query);
        if self.scopes.last().is_some_and(|s| s.owner == me) {
            self.scopes.pop();
        }
        // Leaving a CTE's body: it is visible to the CTEs after it and to the body.
        if let Some(scope) = self.scopes.last_mut() {
            if let Some(i) = scope.queries.iter().position(|q| *q == me) {
                scope.visible = scope.visible.max(i + 1);
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &mut Select) -> Flow {
        if !select.optimizer_hints.is_empty() {
            return ControlFlow::Break(hints());
        }
        if select.into.is_some() {
            return ControlFlow::Break(TenancyError::RefusedStatement {
                kind: "SELECT ... INTO".into(),
                reason: "it writes query results into a table, a file or variables; \
                         use INSERT ... SELECT"
                    .into(),
            });
        }
        if !select.lateral_views.is_empty() || select.value_table_mode.is_some() {
            return ControlFlow::Break(syntax("LATERAL VIEW and SELECT AS are not supported"));
        }
        let mut preds = Vec::new();
        for item in &mut select.from {
            match self.filter_from(item, Role::Read) {
                Ok(p) => preds.extend(p),
                Err(e) => return ControlFlow::Break(e),
            }
        }
        if !preds.is_empty() {
            select.selection = and_all(select.selection.take(), preds);
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, statement: &mut Statement) -> Flow {
        match statement {
            Statement::Query(_) => ControlFlow::Continue(()),
            Statement::Insert(ins) => flow(self.insert(ins)),
            Statement::Update(update) => flow(self.update(update)),
            Statement::Delete(delete) => flow(self.delete(delete)),
            other => ControlFlow::Break(allow::refuse_statement(other)),
        }
    }

    fn pre_visit_table_factor(&mut self, factor: &mut TableFactor) -> Flow {
        match factor {
            TableFactor::Table {
                index_directives, ..
            } if !index_directives.is_empty() => ControlFlow::Break(syntax(
                "index hints (USE/FORCE/IGNORE INDEX, INDEXED BY, NOT INDEXED) are refused: \
                 they can make the server read every storefront's rows before the tenant \
                 predicate",
            )),
            TableFactor::Table {
                args: None,
                with_ordinality: false,
                json_path: None,
                version: None,
                partitions,
                ..
            } if partitions.is_empty() => ControlFlow::Continue(()),
            TableFactor::Derived { .. } | TableFactor::NestedJoin { .. } => {
                ControlFlow::Continue(())
            }
            _ => ControlFlow::Break(syntax(
                "only tables, subqueries and joins may appear in FROM through a storefront's \
                 connection (table functions, UNNEST, PIVOT and the like are refused)",
            )),
        }
    }

    fn pre_visit_expr(&mut self, expr: &mut Expr) -> Flow {
        flow(allow::check_expr(self.registry, expr))
    }

    fn pre_visit_value(&mut self, value: &mut ValueWithSpan) -> Flow {
        if let Value::Placeholder(p) = &value.value {
            if *p != self.tenant_mark && super::placeholders::placeholder_index(p).is_none() {
                return ControlFlow::Break(syntax(format!("unsupported placeholder `{p}`")));
            }
            return ControlFlow::Continue(());
        }
        flow(allow::check_literal(&value.value))
    }

    fn pre_visit_ident(&mut self, ident: &mut Ident) -> Flow {
        flow(allow::check_ident(ident))
    }

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> Flow {
        if self.handled.contains_key(&addr(&*relation)) {
            return ControlFlow::Continue(());
        }
        match self.resolve(relation, Role::Read) {
            Ok(Resolved::Scoped { table, .. }) => ControlFlow::Break(refuse(
                &table,
                "the table appears where the rewriter cannot confine it to one storefront",
            )),
            Ok(Resolved::Global { table, .. }) => {
                if self.global.is_none() {
                    self.global = Some(table);
                }
                ControlFlow::Continue(())
            }
            Ok(Resolved::Cte) => ControlFlow::Continue(()),
            Err(e) => ControlFlow::Break(e),
        }
    }
}
