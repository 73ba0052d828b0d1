//! The AST pass that confines one statement to one storefront (shared placement).
//!
//! It runs as a sqlparser [`VisitorMut`], so it reaches every query nested anywhere in the
//! statement (subqueries in any expression, CTEs, UNION branches, derived tables, the
//! source of `INSERT ... SELECT`). Each `SELECT`, `UPDATE` and `DELETE` gets the tenant
//! predicate for every scoped table it reads, in the WHERE clause or in the ON clause of
//! the join that makes the table optional. Each handled table reference is recorded by
//! address; when the visitor then reaches a reference to a scoped table that no rule
//! handled, the statement is refused. That check is what makes the pass fail closed for
//! syntax it does not know.

use std::{collections::HashSet, ops::ControlFlow};

use sqlparser::{
    ast::{
        AssignmentTarget, BinaryOperator, CaseWhen, Expr, FromTable, Ident, Insert, ObjectName,
        ObjectNamePart, OnConflictAction, OnInsert, Query, Select, SelectItem, SetExpr,
        SqliteOnConflict, Statement, TableAlias, TableFactor, TableObject, TableWithJoins, Update,
        UpdateTableFromKind, Value, VisitorMut,
    },
    dialect::Dialect,
    parser::Parser,
};

use super::Check;
use crate::{Registry, TenancyError};

/// Where a table reference sits, which decides whether it may be wrapped in a subquery.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    /// Read by a query: may become `(SELECT * FROM t WHERE <tenant>) AS t`.
    Read,
    /// The target of UPDATE or DELETE: must stay a plain table.
    Target,
}

pub(super) struct ScopePass<'a> {
    registry: &'a Registry,
    dialect: &'a dyn Dialect,
    quote: char,
    tenant_mark: String,
    /// Schema placement: scoped tables are qualified with this (a marker the binder
    /// replaces with the storefront's schema).
    schema_mark: Option<Ident>,
    handled: HashSet<usize>,
    /// Value checks the binder must run (explicit tenant values in INSERT).
    pub(super) checks: Vec<Check>,
    /// The first scoped table the pass confined, if any.
    pub(super) touched: Option<String>,
    /// The first table that is neither scoped nor a CTE: a global table.
    pub(super) global: Option<String>,
    /// Names of the CTEs seen so far (lower case).
    ctes: HashSet<String>,
}

type Flow = ControlFlow<TenancyError>;

fn refuse(table: &str, reason: impl Into<String>) -> TenancyError {
    TenancyError::Refused {
        table: table.to_owned(),
        reason: reason.into(),
    }
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

/// `(existing) AND p1 AND p2 ...`
fn and_all(existing: Option<Expr>, preds: Vec<Expr>) -> Option<Expr> {
    let mut acc = existing.map(|e| Expr::Nested(Box::new(e)));
    for p in preds {
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

impl<'a> ScopePass<'a> {
    pub(super) fn new(
        registry: &'a Registry,
        dialect: &'a dyn Dialect,
        quote: char,
        tenant_mark: String,
        schema_mark: Option<Ident>,
    ) -> Self {
        Self {
            registry,
            dialect,
            quote,
            tenant_mark,
            schema_mark,
            handled: HashSet::new(),
            checks: Vec::new(),
            touched: None,
            global: None,
            ctes: HashSet::new(),
        }
    }

    /// `(table, tenant column)` if `name` is a scoped table (the schema qualifier is
    /// ignored: `any_schema.customers` is treated as scoped, which fails closed).
    fn scoped(&self, name: &ObjectName) -> Option<(String, String)> {
        let ident = last_ident(name)?;
        let column = self.registry.tenant_column(&ident.value)?;
        Some((ident.value.clone(), column.to_owned()))
    }

    /// Schema placement: `[any.]table` becomes `<schema>.table`.
    fn qualify(&self, name: &mut ObjectName) {
        if let (Some(mark), Some(table)) = (&self.schema_mark, last_ident(name).cloned()) {
            *name = ObjectName::from(vec![mark.clone(), table]);
        }
    }

    fn mark_handled(&mut self, name: &ObjectName, table: &str) {
        self.handled.insert(name as *const ObjectName as usize);
        if self.touched.is_none() {
            self.touched = Some(table.to_owned());
        }
    }

    fn tenant_value(&self) -> Expr {
        Expr::Value(Value::Placeholder(self.tenant_mark.clone()).with_empty_span())
    }

    fn column_ident(&self, column: &str) -> Ident {
        Ident::with_quote(self.quote, column)
    }

    /// `<qualifier>.<column> = <tenant>`
    fn predicate(&self, mut qualifier: Vec<Ident>, column: &str) -> Expr {
        qualifier.push(self.column_ident(column));
        Expr::BinaryOp {
            left: Box::new(Expr::CompoundIdentifier(qualifier)),
            op: BinaryOperator::Eq,
            right: Box::new(self.tenant_value()),
        }
    }

    /// The tenant predicate of a plain table reference, if the table is scoped.
    fn table_predicate(&mut self, factor: &mut TableFactor) -> Result<Option<Expr>, TenancyError> {
        let TableFactor::Table {
            name, alias, args, ..
        } = factor
        else {
            return Ok(None);
        };
        let Some((table, column)) = self.scoped(name) else {
            return Ok(None);
        };
        if args.is_some() {
            return Err(refuse(&table, "it is called like a table function"));
        }
        self.qualify(name);
        self.mark_handled(name, &table);
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
        match factor {
            TableFactor::Table { .. } => Ok(self.table_predicate(factor)?.into_iter().collect()),
            TableFactor::NestedJoin {
                table_with_joins, ..
            } => self.filter_from(table_with_joins, role),
            // Derived tables and the rest: their queries are visited on their own.
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
                    self.refuse_if_scoped(&join.relation, "this kind of join is not supported")?;
                    continue;
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

    fn refuse_if_scoped(&self, factor: &TableFactor, reason: &str) -> Result<(), TenancyError> {
        if let TableFactor::Table { name, .. } = factor {
            if let Some((table, _)) = self.scoped(name) {
                return Err(refuse(&table, reason));
            }
        }
        Ok(())
    }

    /// Replaces each scoped table reference in `factor` by
    /// `(SELECT * FROM table) AS alias`; the subquery is then confined when visited.
    fn wrap_scoped(&mut self, factor: &mut TableFactor, role: Role) -> Result<(), TenancyError> {
        match factor {
            TableFactor::Table { name, alias, .. } => {
                let Some((table, _)) = self.scoped(name) else {
                    return Ok(());
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
        let TableObject::TableName(name) = &mut ins.table else {
            return Ok(());
        };
        let Some((table, column)) = self.scoped(name) else {
            return Ok(());
        };
        self.qualify(name);
        let qualifier = match &ins.table_alias {
            Some(alias) => vec![alias.alias.clone()],
            None => name_idents(name),
        };
        self.mark_handled(name, &table);
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
                    let keep = Expr::CompoundIdentifier(name_idents(target));
                    let value =
                        std::mem::replace(&mut a.value, Expr::Value(Value::Null.with_empty_span()));
                    a.value = Expr::Case {
                        case_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
                        end_token: sqlparser::ast::helpers::attached_token::AttachedToken::empty(),
                        operand: None,
                        conditions: vec![CaseWhen {
                            condition: self.predicate(Vec::new(), &column),
                            result: value,
                        }],
                        else_result: Some(Box::new(keep)),
                    };
                }
            }
            _ => {}
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
        let mut preds = self.filter_from(&mut update.table, Role::Target)?;
        if let Some(UpdateTableFromKind::BeforeSet(from) | UpdateTableFromKind::AfterSet(from)) =
            &mut update.from
        {
            for item in from {
                preds.extend(self.filter_from(item, Role::Read)?);
            }
        }
        if let Some(table) = self.touched.clone() {
            self.check_assignment_targets(&update.assignments, &table)?;
        }
        if !preds.is_empty() {
            update.selection = and_all(update.selection.take(), preds);
        }
        Ok(())
    }

    fn delete(&mut self, delete: &mut sqlparser::ast::Delete) -> Result<(), TenancyError> {
        let mut preds = Vec::new();
        let (FromTable::WithFromKeyword(from) | FromTable::WithoutKeyword(from)) = &mut delete.from;
        for item in from {
            preds.extend(self.filter_from(item, Role::Target)?);
        }
        if let Some(using) = &mut delete.using {
            for item in using {
                preds.extend(self.filter_from(item, Role::Target)?);
            }
        }
        if !preds.is_empty() {
            delete.selection = and_all(delete.selection.take(), preds);
        }
        Ok(())
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
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.to_ascii_lowercase());
            }
        }
        if let SetExpr::Table(t) = query.body.as_ref() {
            if let Some(name) = &t.table_name {
                if self.registry.tenant_column(&name.value).is_some() {
                    return ControlFlow::Break(refuse(
                        &name.value,
                        "TABLE shorthand is not supported; use SELECT",
                    ));
                }
            }
        }
        if !query.pipe_operators.is_empty() {
            return ControlFlow::Break(refuse(
                self.touched.as_deref().unwrap_or("?"),
                "pipe syntax is not supported",
            ));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &mut Select) -> Flow {
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
            Statement::Insert(ins) => flow(self.insert(ins)),
            Statement::Update(update) => flow(self.update(update)),
            Statement::Delete(delete) => flow(self.delete(delete)),
            _ => ControlFlow::Continue(()),
        }
    }

    fn pre_visit_value(&mut self, value: &mut sqlparser::ast::ValueWithSpan) -> Flow {
        if let Value::Placeholder(p) = &value.value {
            if *p != self.tenant_mark && super::placeholders::placeholder_index(p).is_none() {
                return ControlFlow::Break(refuse(
                    self.touched.as_deref().unwrap_or("?"),
                    format!("unsupported placeholder `{p}`"),
                ));
            }
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &mut ObjectName) -> Flow {
        if let Some((table, _)) = self.scoped(relation) {
            if !self
                .handled
                .contains(&(relation as *const ObjectName as usize))
            {
                return ControlFlow::Break(refuse(
                    &table,
                    "the table appears where the rewriter cannot confine it to one storefront",
                ));
            }
        }
        if self.global.is_none() && self.scoped(relation).is_none() {
            if let Some(ident) = last_ident(relation) {
                if !self.ctes.contains(&ident.value.to_ascii_lowercase()) {
                    self.global = Some(ident.value.clone());
                }
            }
        }
        ControlFlow::Continue(())
    }
}
