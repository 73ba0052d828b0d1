//! Fuzzes the rewriter: for any input, on any backend and placement, it never panics; when
//! it accepts a statement, the output parses again as one data statement, names only
//! registered tables and allowed functions, and confines every scoped table reference
//! (checked by `tests/src/confinement.rs`, which shares no code with the rewriter).
//!
//! The first byte picks the backend (and the schema placement); the rest is the SQL.

#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use sea_orm::{DbBackend, Statement, Value};
use sqlparser::dialect::{Dialect, MySqlDialect, PostgreSqlDialect, SQLiteDialect};
use tenancy_core::{rewrite::Rewriter, Registry, StorefrontId, TenancyError};

#[path = "../../tests/src/confinement.rs"]
mod confinement;

fn setup() -> &'static (Registry, Rewriter) {
    static SETUP: OnceLock<(Registry, Rewriter)> = OnceLock::new();
    SETUP.get_or_init(|| {
        let registry = entities::registry();
        (registry.clone(), Rewriter::new(registry))
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&first, rest)) = data.split_first() else {
        return;
    };
    let Ok(sql) = std::str::from_utf8(rest) else {
        return;
    };
    let (backend, dialect): (DbBackend, &dyn Dialect) = match first % 3 {
        0 => (DbBackend::Postgres, &PostgreSqlDialect {}),
        1 => (DbBackend::MySql, &MySqlDialect {}),
        _ => (DbBackend::Sqlite, &SQLiteDialect {}),
    };
    let schema = (first & 0x80 != 0 && backend != DbBackend::Sqlite).then_some("storefront_a");
    let (registry, rewriter) = setup();
    let shop: StorefrontId = "5f0c6b8e-1d2a-4c3b-9e4f-5a6b7c8d9e0f"
        .parse()
        .expect("a valid id");
    let stmt = |n: usize| {
        Statement::from_sql_and_values(backend, sql, (0..n).map(|i| Value::Int(Some(i as i32))))
    };
    let result = match rewriter.rewrite_in(stmt(0), &shop, schema) {
        Err(TenancyError::ParameterCount { needed, .. }) if needed < 10_000 => {
            rewriter.rewrite_in(stmt(needed), &shop, schema)
        }
        other => other,
    };
    if let Ok(out) = result {
        let findings = confinement::check(dialect, registry, &out.sql);
        assert!(
            findings.is_empty(),
            "{backend:?} schema={schema:?}: `{sql}` came out as `{}`: {findings:?}",
            out.sql
        );
    }
});
