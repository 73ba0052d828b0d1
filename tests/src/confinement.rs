//! An independent checker of the rewriter's output, used by the fuzz target and the corpus
//! test: it does not share code with the rewriter's scope pass, so a mistake there is not
//! repeated here.
//!
//! For one rewritten SQL text it requires that:
//! - it parses again, as exactly one query, INSERT, UPDATE or DELETE (nested statements
//!   too);
//! - every name in a table position is a registered table or a CTE of the statement, and no
//!   framework table appears;
//! - every function is on the allow list;
//! - every reference to a scoped table (other than a CTE of that name) is confined: the
//!   conjuncts of the WHERE of its SELECT / UPDATE / DELETE, or of the ON of its join,
//!   include `<alias or name>.storefront_id = <placeholder>`; an INSERT into a scoped table
//!   lists the tenant column.

use std::{collections::HashSet, ops::ControlFlow};

use sqlparser::{
    ast::{
        BinaryOperator, Expr, JoinConstraint, JoinOperator, ObjectName, ObjectNamePart, Query,
        Select, SetExpr, Statement, TableFactor, TableObject, TableWithJoins, Value, Visit,
        Visitor,
    },
    dialect::Dialect,
    parser::{Parser, ParserOptions},
};
use tenancy_core::Registry;

/// What is wrong with a rewriter output.
pub type Finding = String;

fn last(name: &ObjectName) -> String {
    match name.0.last() {
        Some(ObjectNamePart::Identifier(i)) => i.value.clone(),
        _ => String::new(),
    }
}

fn idents(name: &ObjectName) -> Vec<String> {
    name.0
        .iter()
        .filter_map(|p| match p {
            ObjectNamePart::Identifier(i) => Some(i.value.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

/// The conjuncts of `expr` (through AND and parentheses).
fn conjuncts<'e>(expr: &'e Expr, out: &mut Vec<&'e Expr>) {
    match expr {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::And,
            right,
        } => {
            conjuncts(left, out);
            conjuncts(right, out);
        }
        Expr::Nested(inner) => conjuncts(inner, out),
        other => out.push(other),
    }
}

/// Whether `expr`'s conjuncts include `<qualifier>.<column> = <placeholder>`.
fn confines(expr: Option<&Expr>, qualifier: &[String], column: &str) -> bool {
    let Some(expr) = expr else {
        return false;
    };
    let mut all = Vec::new();
    conjuncts(expr, &mut all);
    all.iter().any(|c| match c {
        Expr::BinaryOp {
            left,
            op: BinaryOperator::Eq,
            right,
        } => {
            let left_ok = match left.as_ref() {
                Expr::CompoundIdentifier(parts) => {
                    let names: Vec<String> =
                        parts.iter().map(|p| p.value.to_ascii_lowercase()).collect();
                    names.len() == qualifier.len() + 1
                        && names[..qualifier.len()] == *qualifier
                        && names[qualifier.len()].eq_ignore_ascii_case(column)
                }
                Expr::Identifier(i) => qualifier.is_empty() && i.value.eq_ignore_ascii_case(column),
                _ => false,
            };
            let right_ok = matches!(right.as_ref(), Expr::Value(v) if matches!(v.value, Value::Placeholder(_)));
            left_ok && right_ok
        }
        _ => false,
    })
}

struct Checker<'a> {
    registry: &'a Registry,
    ctes: HashSet<String>,
    findings: Vec<Finding>,
}

impl Checker<'_> {
    fn scoped(&self, name: &ObjectName) -> Option<String> {
        let t = last(name);
        if name.0.len() == 1 && self.ctes.contains(&t.to_ascii_lowercase()) {
            return None;
        }
        self.registry.tenant_column(&t).map(str::to_owned)
    }

    /// Checks the FROM items of a statement whose WHERE is `selection`.
    fn from(&mut self, items: &[TableWithJoins], selection: Option<&Expr>) {
        for item in items {
            self.factor(&item.relation, selection);
            for join in &item.joins {
                use JoinOperator as J;
                let constraint = match &join.join_operator {
                    J::Join(c)
                    | J::Inner(c)
                    | J::Left(c)
                    | J::LeftOuter(c)
                    | J::Right(c)
                    | J::RightOuter(c)
                    | J::FullOuter(c)
                    | J::CrossJoin(c)
                    | J::Semi(c)
                    | J::LeftSemi(c)
                    | J::RightSemi(c)
                    | J::Anti(c)
                    | J::LeftAnti(c)
                    | J::RightAnti(c)
                    | J::StraightJoin(c) => Some(c),
                    _ => None,
                };
                let on = match constraint {
                    Some(JoinConstraint::On(e)) => Some(e),
                    _ => None,
                };
                let optional = matches!(
                    join.join_operator,
                    J::Left(_)
                        | J::LeftOuter(_)
                        | J::Semi(_)
                        | J::LeftSemi(_)
                        | J::Anti(_)
                        | J::LeftAnti(_)
                );
                // A table on the optional side must be confined in its ON clause; an inner
                // one in the ON clause or the WHERE.
                if optional {
                    self.factor(&join.relation, on);
                } else if let Some(on) = on {
                    self.factor_either(&join.relation, on, selection);
                } else {
                    self.factor(&join.relation, selection);
                }
            }
        }
    }

    fn factor_either(&mut self, factor: &TableFactor, on: &Expr, selection: Option<&Expr>) {
        let before = self.findings.len();
        self.factor(factor, Some(on));
        if self.findings.len() > before {
            self.findings.truncate(before);
            self.factor(factor, selection);
        }
    }

    fn factor(&mut self, factor: &TableFactor, selection: Option<&Expr>) {
        match factor {
            TableFactor::Table { name, alias, .. } => {
                if let Some(column) = self.scoped(name) {
                    let qualifier = match alias {
                        Some(a) => vec![a.name.value.to_ascii_lowercase()],
                        None => idents(name),
                    };
                    if !confines(selection, &qualifier, &column) {
                        self.findings.push(format!(
                            "`{name}` is not confined by `{}.{column} = ?`",
                            qualifier.join(".")
                        ));
                    }
                }
            }
            TableFactor::NestedJoin {
                table_with_joins,
                alias,
            } => {
                if alias.is_some() {
                    // Names inside are hidden: each scoped table must be a derived table.
                    let mut inner = Checker {
                        registry: self.registry,
                        ctes: self.ctes.clone(),
                        findings: Vec::new(),
                    };
                    inner.from(std::slice::from_ref(table_with_joins), None);
                    self.findings.extend(inner.findings);
                } else {
                    self.from(std::slice::from_ref(table_with_joins), selection);
                }
            }
            // Derived tables are queries of their own, checked when visited.
            _ => {}
        }
    }

    fn select(&mut self, select: &Select) {
        self.from(&select.from, select.selection.as_ref());
    }
}

impl Visitor for Checker<'_> {
    type Break = ();

    fn pre_visit_query(&mut self, query: &Query) -> ControlFlow<()> {
        if let Some(with) = &query.with {
            for cte in &with.cte_tables {
                self.ctes.insert(cte.alias.name.value.to_ascii_lowercase());
            }
        }
        if let SetExpr::Table(_) = query.body.as_ref() {
            self.findings.push("a TABLE shorthand came out".into());
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_select(&mut self, select: &Select) -> ControlFlow<()> {
        self.select(select);
        ControlFlow::Continue(())
    }

    fn pre_visit_statement(&mut self, statement: &Statement) -> ControlFlow<()> {
        match statement {
            Statement::Query(_) => {}
            Statement::Insert(ins) => {
                if let TableObject::TableName(name) = &ins.table {
                    if let Some(column) = self.registry.tenant_column(&last(name)) {
                        if !ins
                            .columns
                            .iter()
                            .any(|c| last(c).eq_ignore_ascii_case(column))
                        {
                            self.findings
                                .push(format!("INSERT into `{name}` without `{column}`"));
                        }
                    }
                }
            }
            Statement::Update(u) => {
                let mut items = vec![u.table.clone()];
                if let Some(
                    sqlparser::ast::UpdateTableFromKind::BeforeSet(f)
                    | sqlparser::ast::UpdateTableFromKind::AfterSet(f),
                ) = &u.from
                {
                    items.extend(f.iter().cloned());
                }
                self.from(&items, u.selection.as_ref());
            }
            Statement::Delete(d) => {
                let (sqlparser::ast::FromTable::WithFromKeyword(f)
                | sqlparser::ast::FromTable::WithoutKeyword(f)) = &d.from;
                let mut items = f.clone();
                items.extend(d.using.iter().flatten().cloned());
                self.from(&items, d.selection.as_ref());
            }
            other => self.findings.push(format!(
                "a statement outside the allow list came out: {other}"
            )),
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_relation(&mut self, relation: &ObjectName) -> ControlFlow<()> {
        let t = last(relation);
        let lower = t.to_ascii_lowercase();
        if tenancy_core::registry::is_reserved(&t) {
            self.findings
                .push(format!("framework table `{relation}` came out"));
        } else if !(self.registry.tenant_column(&t).is_some()
            || self.registry.global(&t).is_some()
            || (relation.0.len() == 1 && self.ctes.contains(&lower)))
        {
            self.findings
                .push(format!("unregistered table `{relation}` came out"));
        }
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
        if let Expr::Function(f) = expr {
            if !self.registry.function_allowed(&last(&f.name)) {
                self.findings
                    .push(format!("function `{}` came out", f.name));
            }
        }
        ControlFlow::Continue(())
    }
}

/// Checks one output of the rewriter (see the module docs).
pub fn check(dialect: &dyn Dialect, registry: &Registry, sql: &str) -> Vec<Finding> {
    let parsed = Parser::new(dialect)
        .with_options(ParserOptions::new().with_unescape(false))
        .try_with_sql(sql)
        .and_then(|mut p| p.parse_statements());
    let statements = match parsed {
        Ok(s) => s,
        Err(e) => return vec![format!("the output does not parse again: {e}")],
    };
    if statements.len() != 1 {
        return vec![format!("{} statements came out", statements.len())];
    }
    let mut checker = Checker {
        registry,
        ctes: HashSet::new(),
        findings: Vec::new(),
    };
    let _ = statements[0].visit(&mut checker);
    checker.findings
}
