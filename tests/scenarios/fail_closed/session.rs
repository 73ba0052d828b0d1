//! Class 2: statements that change the session of the pooled connection they run on. Each
//! must be refused: the next storefront to get that connection would run in that state.

use tenancy_tests::{
    arena::{assault, Arena},
    Backend,
};

/// Every session-changing statement we could think of, for `backend`.
pub fn attacks(backend: Backend, other_schema: Option<&str>) -> Vec<String> {
    let other = other_schema.unwrap_or("public");
    let mut v: Vec<String> = match backend {
        Backend::Postgres => vec![
            format!("SET search_path = {other}"),
            format!("SET SESSION search_path TO {other}, public"),
            "SET standard_conforming_strings = off".into(),
            "SET ROLE postgres".into(),
            "SET SESSION AUTHORIZATION postgres".into(),
            "SET statement_timeout = 1".into(),
            "SET tenancy.storefront_id = '00000000-0000-4000-8000-000000000001'".into(),
            "RESET ALL".into(),
            "DISCARD ALL".into(),
            "CREATE TEMP TABLE customers (id int)".into(),
            "CREATE TEMPORARY VIEW customers AS SELECT 1 AS id".into(),
            format!("SELECT set_config('search_path', '{other}', false)"),
            "SELECT pg_advisory_lock(42)".into(),
            "LISTEN tenancy".into(),
            "LOCK TABLE customers IN ACCESS EXCLUSIVE MODE".into(),
            "BEGIN".into(),
            "SELECT * INTO TEMP customers FROM orders".into(),
        ],
        Backend::MySql => vec![
            format!("USE `{other}`"),
            "SET sql_mode = 'NO_BACKSLASH_ESCAPES'".into(),
            "SET SESSION sql_mode = 'ANSI_QUOTES'".into(),
            "SET NAMES latin1".into(),
            "SET autocommit = 0".into(),
            "SET @x = 1".into(),
            "SELECT @x := 1".into(),
            "SELECT email INTO @leak FROM customers LIMIT 1".into(),
            "SET SESSION TRANSACTION ISOLATION LEVEL READ UNCOMMITTED".into(),
            "CREATE TEMPORARY TABLE customers (id int)".into(),
            "LOCK TABLES customers WRITE".into(),
            "SELECT GET_LOCK('x', 1)".into(),
            "START TRANSACTION".into(),
        ],
        Backend::Sqlite => vec![
            "PRAGMA foreign_keys = OFF".into(),
            "PRAGMA case_sensitive_like = ON".into(),
            "PRAGMA query_only = ON".into(),
            "ATTACH DATABASE ':memory:' AS other".into(),
            "CREATE TEMP TABLE customers (id int)".into(),
            "CREATE TEMP VIEW customers AS SELECT 1 AS id".into(),
            "BEGIN IMMEDIATE".into(),
            "SAVEPOINT s".into(),
        ],
    };
    v.push("SELECT 1; SET search_path = x".into());
    v
}

pub async fn run(arena: &Arena) {
    let other_schema = arena.shops.iter().find_map(|s| match &s.placement {
        tenancy_core::Placement::Schema { schema } => Some(schema.clone()),
        _ => None,
    });
    let attacks = attacks(arena.backend, other_schema.as_deref());
    let refused = assault(arena, "session state", &attacks, false).await;
    assert_eq!(refused, attacks.len() * arena.shops.len());
}
