//! SQL that nobody here wrote, mapped onto the SmartSeller schema (sqlglot's
//! `tests/fixtures/identity.sql`, see `fuzz/map_corpus.py`), through the rewriter on every
//! dialect, in the shared and schema placements. Each statement is refused or comes out
//! confined, as checked by the independent checker in `tenancy_tests::confinement`; the
//! shares are printed (and recorded in docs/fuzzing.md).

use std::collections::BTreeMap;

use sea_orm::{DbBackend, Statement, Value};
use sqlparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use tenancy_core::{rewrite::Rewriter, StorefrontId, TenancyError};
use tenancy_tests::confinement;

const CORPUS: &str = include_str!("../../fuzz/corpus_src/identity_mapped.sql");

/// Rewrites `sql`, supplying as many values as its placeholders need.
pub fn rewrite(
    rewriter: &Rewriter,
    backend: DbBackend,
    sql: &str,
    schema: Option<&str>,
) -> Result<Statement, TenancyError> {
    let shop: StorefrontId = "5f0c6b8e-1d2a-4c3b-9e4f-5a6b7c8d9e0f".parse().expect("id");
    let stmt = |n: usize| {
        Statement::from_sql_and_values(backend, sql, (0..n).map(|i| Value::Int(Some(i as i32))))
    };
    match rewriter.rewrite_in(stmt(0), &shop, schema) {
        Err(TenancyError::ParameterCount { needed, .. }) => {
            rewriter.rewrite_in(stmt(needed), &shop, schema)
        }
        other => other,
    }
}

#[test]
fn mapped_corpus_is_refused_or_confined() {
    let registry = entities::registry();
    let rewriter = Rewriter::new(registry.clone());
    let dialects: [(DbBackend, &dyn Dialect); 3] = [
        (DbBackend::Postgres, &PostgreSqlDialect {}),
        (DbBackend::MySql, &MySqlDialect {}),
        (DbBackend::Sqlite, &SQLiteDialect {}),
    ];
    let statements: Vec<&str> = CORPUS.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(
        statements.len() > 900,
        "the corpus has {} statements",
        statements.len()
    );
    for (backend, dialect) in dialects {
        for schema in [None, Some("storefront_a")] {
            if schema.is_some() && backend == DbBackend::Sqlite {
                continue;
            }
            let mut confined = 0;
            let mut scoped = 0;
            let mut refused: BTreeMap<String, usize> = BTreeMap::new();
            for sql in &statements {
                match rewrite(&rewriter, backend, sql, schema) {
                    Ok(out) => {
                        let findings = confinement::check(dialect, &registry, &out.sql);
                        assert!(
                            findings.is_empty(),
                            "{backend:?} {schema:?}: `{sql}` came out as `{}`: {findings:?}",
                            out.sql
                        );
                        confined += 1;
                        if out
                            .values
                            .is_some_and(|v| v.0.iter().any(|x| matches!(x, Value::Uuid(_))))
                        {
                            scoped += 1;
                        }
                    }
                    Err(e) => {
                        let kind = match &e {
                            TenancyError::Unparseable { .. }
                            | TenancyError::Untokenizable { .. } => "does not parse".to_string(),
                            TenancyError::RefusedStatement { .. } => "statement kind".into(),
                            TenancyError::RefusedFunction { .. } => "function".into(),
                            TenancyError::RefusedSyntax { .. } => "syntax".into(),
                            TenancyError::Refused { reason, .. }
                                if reason.contains("not a registered") =>
                            {
                                "unregistered table".into()
                            }
                            TenancyError::Refused { .. } => "table use".into(),
                            TenancyError::TenantColumnWrite { .. } => "tenant column write".into(),
                            TenancyError::ParameterCount { .. } => "placeholders".into(),
                            other => other.to_string(),
                        };
                        *refused.entry(kind).or_default() += 1;
                    }
                }
            }
            println!(
                "corpus {backend:?} schema={}: {} statements, {confined} ran ({scoped} on scoped tables, all confined), refused {:?}",
                schema.is_some(),
                statements.len(),
                refused
            );
        }
    }
}
