//! The rewriter's output for each rule, on each backend's placeholder style, and its
//! refusals. (The isolation matrix in `tests/` runs the same shapes against real servers.)

use sea_orm::{DbBackend, Statement, Value};
use tenancy_core::{rewrite::Rewriter, Registry, StorefrontId, TenancyError};
use uuid::Uuid;

fn rewriter() -> Rewriter {
    Rewriter::new(
        Registry::empty()
            .with_table("customers", "storefront_id")
            .with_table("orders", "storefront_id")
            .with_global("countries"),
    )
}

fn shop() -> StorefrontId {
    "5f0c6b8e-1d2a-4c3b-9e4f-5a6b7c8d9e0f".parse().unwrap()
}

fn tenant() -> Value {
    Value::Uuid(Some(*shop().as_uuid()))
}

fn run(backend: DbBackend, sql: &str, values: Vec<Value>) -> Result<Statement, TenancyError> {
    rewriter().rewrite(
        Statement::from_sql_and_values(backend, sql, values),
        &shop(),
    )
}

fn ok(backend: DbBackend, sql: &str, values: Vec<Value>) -> (String, Vec<Value>) {
    let out = run(backend, sql, values).unwrap_or_else(|e| panic!("{sql}: {e}"));
    (out.sql, out.values.map(|v| v.0).unwrap_or_default())
}

fn refused(backend: DbBackend, sql: &str, values: Vec<Value>) -> String {
    match run(backend, sql, values) {
        Ok(out) => panic!("expected a refusal for {sql}, got {}", out.sql),
        Err(e) => e.to_string(),
    }
}

#[test]
fn where_is_parenthesised_before_the_tenant_predicate() {
    let (sql, values) = ok(
        DbBackend::Postgres,
        "SELECT * FROM customers WHERE a = $1 OR b = $2",
        vec![1.into(), 2.into()],
    );
    assert_eq!(
        sql,
        r#"SELECT * FROM customers WHERE customers."storefront_id" = $3 AND (a = $1 OR b = $2)"#
    );
    assert_eq!(values, vec![1.into(), 2.into(), tenant()]);
}

#[test]
fn positional_tenant_value_goes_at_its_index() {
    // The tenant predicate lands between the WHERE values and the LIMIT value.
    let (sql, values) = ok(
        DbBackend::MySql,
        "SELECT `c`.`id` FROM `customers` AS `c` WHERE `c`.`email` = ? LIMIT ?",
        vec!["e".into(), 5u64.into()],
    );
    assert_eq!(
        sql,
        "SELECT `c`.`id` FROM `customers` AS `c` WHERE `c`.`storefront_id` = ? AND (`c`.`email` = ?) LIMIT ?"
    );
    assert_eq!(values, vec![tenant(), "e".into(), 5u64.into()]);
}

#[test]
fn join_subquery_in_on_gets_its_own_value_in_order() {
    let (sql, values) = ok(
        DbBackend::Sqlite,
        "SELECT c.id FROM customers c LEFT JOIN orders o ON o.customer_id = c.id AND o.total > ? WHERE c.email = ?",
        vec![10.into(), "e".into()],
    );
    assert_eq!(
        sql,
        r#"SELECT c.id FROM customers c LEFT JOIN orders o ON o."storefront_id" = ? AND (o.customer_id = c.id AND o.total > ?) WHERE c."storefront_id" = ? AND (c.email = ?)"#
    );
    assert_eq!(values, vec![tenant(), 10.into(), tenant(), "e".into()]);
}

#[test]
fn nested_queries_cte_union_exists_are_all_confined() {
    let cases = [
        "SELECT id FROM countries WHERE code IN (SELECT country FROM customers)",
        "WITH x AS (SELECT * FROM orders) SELECT * FROM x",
        "SELECT id FROM customers UNION ALL SELECT id FROM orders",
        "SELECT 1 FROM countries k WHERE EXISTS (SELECT 1 FROM customers c WHERE c.cc = k.code)",
        "SELECT COUNT(*) AS n FROM (SELECT id FROM customers) AS sub",
        "SELECT (SELECT MAX(total) FROM orders) AS m FROM countries",
    ];
    for sql in cases {
        let (out, values) = ok(DbBackend::Postgres, sql, vec![]);
        let scoped_refs = ["customers", "orders"]
            .iter()
            .map(|t| sql.matches(t).count())
            .sum::<usize>();
        assert_eq!(
            out.matches("\"storefront_id\" = $1").count(),
            scoped_refs,
            "{sql} -> {out}"
        );
        assert_eq!(values, vec![tenant()]);
    }
}

#[test]
fn right_and_full_joins_filter_each_table_in_a_subquery() {
    let (sql, _) = ok(
        DbBackend::Postgres,
        "SELECT * FROM customers c FULL OUTER JOIN orders o ON o.customer_id = c.id",
        vec![],
    );
    assert_eq!(
        sql,
        r#"SELECT * FROM (SELECT * FROM customers WHERE customers."storefront_id" = $1) AS c FULL JOIN (SELECT * FROM orders WHERE orders."storefront_id" = $1) AS o ON o.customer_id = c.id"#
    );
    let (sql, _) = ok(
        DbBackend::MySql,
        "SELECT * FROM customers c LEFT JOIN orders o USING (id)",
        vec![],
    );
    assert!(
        sql.contains(
            "LEFT JOIN (SELECT * FROM orders WHERE orders.`storefront_id` = ?) AS o USING"
        ),
        "{sql}"
    );
}

#[test]
fn insert_gets_the_tenant_column_in_every_row() {
    let (sql, values) = ok(
        DbBackend::Sqlite,
        r#"INSERT INTO "customers" ("id", "email") VALUES (?, ?), (?, ?) RETURNING "id""#,
        vec![1.into(), "a".into(), 2.into(), "b".into()],
    );
    assert_eq!(
        sql,
        r#"INSERT INTO "customers" ("id", "email", "storefront_id") VALUES (?, ?, ?), (?, ?, ?) RETURNING "id""#
    );
    assert_eq!(
        values,
        vec![
            1.into(),
            "a".into(),
            tenant(),
            2.into(),
            "b".into(),
            tenant()
        ]
    );
}

#[test]
fn explicit_tenant_values_are_checked() {
    let own = ok(
        DbBackend::Postgres,
        "INSERT INTO customers (id, storefront_id) VALUES ($1, $2)",
        vec![1.into(), tenant()],
    );
    assert!(
        !own.0.contains("storefront_id\""),
        "no second column: {}",
        own.0
    );
    let other = Value::Uuid(Some(Uuid::new_v4()));
    let err = refused(
        DbBackend::Postgres,
        "INSERT INTO customers (id, storefront_id) VALUES ($1, $2)",
        vec![1.into(), other],
    );
    assert!(
        err.contains("`customers`.`storefront_id`") && err.contains("another storefront"),
        "{err}"
    );
    let err = refused(
        DbBackend::Sqlite,
        "INSERT INTO customers (id, storefront_id) VALUES (?, '00000000-0000-4000-8000-000000000001')",
        vec![1.into()],
    );
    assert!(err.contains("another storefront"), "{err}");
    let err = refused(
        DbBackend::Sqlite,
        "INSERT INTO customers (id, storefront_id) VALUES (?, lower(?))",
        vec![1.into(), "x".into()],
    );
    assert!(err.contains("bound parameter"), "{err}");
}

#[test]
fn upserts_cannot_update_another_storefronts_row() {
    let (sql, _) = ok(
        DbBackend::Postgres,
        "INSERT INTO customers (id, email) VALUES ($1, $2) ON CONFLICT (id) DO UPDATE SET email = excluded.email",
        vec![1.into(), "e".into()],
    );
    assert_eq!(
        sql,
        r#"INSERT INTO customers (id, email, "storefront_id") VALUES ($1, $2, $3) ON CONFLICT(id) DO UPDATE SET email = excluded.email WHERE customers."storefront_id" = $3"#
    );
    let (sql, values) = ok(
        DbBackend::MySql,
        "INSERT INTO `customers` (`id`, `email`) VALUES (?, ?) ON DUPLICATE KEY UPDATE `email` = VALUES(`email`)",
        vec![1.into(), "e".into()],
    );
    assert_eq!(
        sql,
        "INSERT INTO `customers` (`id`, `email`, `storefront_id`) VALUES (?, ?, ?) ON DUPLICATE KEY UPDATE `email` = CASE WHEN `customers`.`storefront_id` = ? THEN VALUES(`email`) ELSE `email` END"
    );
    assert_eq!(values, vec![1.into(), "e".into(), tenant(), tenant()]);
    let err = refused(
        DbBackend::Postgres,
        "INSERT INTO customers (id) VALUES ($1) ON CONFLICT (id) DO UPDATE SET storefront_id = excluded.storefront_id",
        vec![1.into()],
    );
    assert!(err.contains("storefront_id"), "{err}");
}

#[test]
fn insert_select_is_filtered_and_tagged() {
    let (sql, values) = ok(
        DbBackend::MySql,
        "INSERT INTO orders (id, customer_id) SELECT ?, id FROM customers WHERE email = ?",
        vec![1.into(), "e".into()],
    );
    assert_eq!(
        sql,
        "INSERT INTO orders (id, customer_id, `storefront_id`) SELECT ?, id, ? FROM customers WHERE customers.`storefront_id` = ? AND (email = ?)"
    );
    assert_eq!(values, vec![1.into(), tenant(), tenant(), "e".into()]);
}

#[test]
fn update_and_delete_are_filtered_and_cannot_move_rows() {
    let (sql, _) = ok(
        DbBackend::Postgres,
        "UPDATE customers SET email = $1 WHERE id = $2 OR true",
        vec!["e".into(), 1.into()],
    );
    assert_eq!(
        sql,
        r#"UPDATE customers SET email = $1 WHERE customers."storefront_id" = $3 AND (id = $2 OR true)"#
    );
    let (sql, _) = ok(DbBackend::Sqlite, "DELETE FROM orders", vec![]);
    assert_eq!(
        sql,
        r#"DELETE FROM orders WHERE orders."storefront_id" = ?"#
    );
    for sql in [
        "UPDATE customers SET storefront_id = ? WHERE id = ?",
        "UPDATE customers SET \"STOREFRONT_ID\" = ? WHERE id = ?",
    ] {
        let err = refused(DbBackend::Sqlite, sql, vec![1.into(), 2.into()]);
        assert!(err.to_lowercase().contains("storefront_id"), "{err}");
    }
}

#[test]
fn tables_match_case_insensitively_quoted_or_not() {
    for sql in [
        "SELECT * FROM CUSTOMERS",
        "SELECT * FROM \"Customers\"",
        "select * from \"customers\" as c",
        "SELECT id FROM orders UNION TABLE customers",
    ] {
        let (out, values) = ok(DbBackend::Postgres, sql, vec![]);
        assert!(out.contains("\"storefront_id\" = $1"), "{sql} -> {out}");
        assert_eq!(values.len(), 1);
    }
}

#[test]
fn qualified_names_are_refused_outside_the_storefronts_own_schema() {
    for sql in [
        "SELECT * FROM public.customers",
        "SELECT * FROM \"storefront_b\".\"customers\" AS c",
        "INSERT INTO other.customers (id) VALUES ($1)",
        "SELECT * FROM public.countries",
    ] {
        let values: Vec<Value> = if sql.contains("$1") {
            vec![1.into()]
        } else {
            vec![]
        };
        let err = refused(DbBackend::Postgres, sql, values);
        assert!(err.contains("qualifier"), "{sql}: {err}");
    }
}

#[test]
fn global_tables_are_read_only_and_statements_are_rendered_from_the_tree() {
    let (out, got) = ok(
        DbBackend::Postgres,
        "SELECT *   FROM countries /* a comment */ WHERE code = $1",
        vec!["US".into()],
    );
    assert_eq!(out, "SELECT * FROM countries WHERE code = $1");
    assert_eq!(got, vec!["US".into()]);
    let (out, got) = ok(DbBackend::Sqlite, "SELECT 1 -- nothing else", vec![]);
    assert_eq!(out, "SELECT 1");
    assert!(got.is_empty());
    let err = refused(
        DbBackend::Postgres,
        "INSERT INTO countries (code, name) VALUES ($1, 'x')",
        vec!["FR".into()],
    );
    assert!(
        err.contains("`countries`") && err.contains("read-only global"),
        "{err}"
    );
}

#[test]
fn what_is_not_on_the_allow_list_is_refused_naming_it() {
    let cases = [
        (DbBackend::Postgres, "DROP TABLE customers", "DROP TABLE"),
        (DbBackend::Postgres, "TRUNCATE customers", "TRUNCATE"),
        (
            DbBackend::Postgres,
            "CREATE TABLE scratch (id int)",
            "CREATE TABLE",
        ),
        (DbBackend::Postgres, "SET search_path = other", "SET"),
        (DbBackend::MySql, "USE other", "USE"),
        (DbBackend::Postgres, "EXECUTE sqlx_s_1('x')", "EXECUTE"),
        (
            DbBackend::Postgres,
            "SELECT 1; DELETE FROM customers",
            "2 statements",
        ),
        (
            DbBackend::Postgres,
            "SELEKT * FROM customers",
            "could not be parsed",
        ),
        (
            DbBackend::Postgres,
            "SELECT * FROM documents",
            "`documents`",
        ),
        (
            DbBackend::Postgres,
            "SELECT * FROM pg_catalog.pg_stats",
            "`pg_catalog.pg_stats`",
        ),
        (
            DbBackend::Postgres,
            "SELECT * FROM tenancy_tenants",
            "framework's own",
        ),
        (
            DbBackend::Sqlite,
            "SELECT * FROM seaql_migrations",
            "framework's own",
        ),
        (
            DbBackend::Postgres,
            "SELECT query_to_xml('select 1', true, true, '')",
            "`query_to_xml`",
        ),
        (DbBackend::MySql, "SELECT @x := 1", ":="),
        (
            DbBackend::MySql,
            "SELECT 1 FROM customers WHERE BINARY@x IS NULL",
            "variables",
        ),
        (
            DbBackend::MySql,
            "SELECT 1 FROM customers USE INDEX () WHERE 1 = 1",
            "index hints",
        ),
        (
            DbBackend::Sqlite,
            "SELECT 1 FROM customers NOT INDEXED WHERE 1 = 1",
            "index hints",
        ),
        (
            DbBackend::MySql,
            "SELECT * FROM customers WHERE email = 'a\\'b'",
            "backslash",
        ),
        (
            DbBackend::MySql,
            "SELECT * FROM customers WHERE email = \"x\"",
            "double-quoted",
        ),
        (
            DbBackend::Postgres,
            "SELECT * INTO scratch FROM customers",
            "INTO",
        ),
        (
            DbBackend::Postgres,
            "SELECT * FROM generate_series(1, 3)",
            "table functions",
        ),
        (
            DbBackend::MySql,
            "REPLACE INTO customers (id) VALUES (?)",
            "REPLACE",
        ),
        (
            DbBackend::Sqlite,
            "INSERT OR REPLACE INTO customers (id) VALUES (?)",
            "REPLACE",
        ),
        (
            DbBackend::Sqlite,
            "INSERT INTO customers VALUES (?)",
            "column list",
        ),
        (
            DbBackend::Sqlite,
            "SELECT * FROM customers WHERE id = ?1",
            "placeholder",
        ),
        (
            DbBackend::Sqlite,
            "SELECT * FROM customers WHERE id = :id",
            "placeholder",
        ),
        (
            DbBackend::MySql,
            "UPDATE customers c RIGHT JOIN orders o ON o.customer_id = c.id SET c.email = 1",
            "UPDATE or DELETE",
        ),
    ];
    for (backend, sql, needle) in cases {
        let values: Vec<Value> = if sql.contains('?') && !sql.contains("?1") && !sql.contains("? '")
        {
            vec![1.into()]
        } else {
            vec![]
        };
        let err = refused(backend, sql, values);
        assert!(err.contains(needle), "{sql}: expected `{needle}` in: {err}");
    }
}

#[test]
fn column_aliases_on_a_scoped_table_filter_it_in_a_subquery() {
    // `o(storefront_id)` renames `id`: the predicate must name the real tenant column.
    let (sql, _) = ok(
        DbBackend::Postgres,
        "SELECT o.storefront_id FROM orders AS o(storefront_id)",
        vec![],
    );
    assert_eq!(
        sql,
        r#"SELECT o.storefront_id FROM (SELECT * FROM orders WHERE orders."storefront_id" = $1) AS o (storefront_id)"#
    );
}

#[test]
fn an_aliased_parenthesised_join_filters_inside_it() {
    // The alias `j` hides the inner `x`: a predicate on `x` in the outer WHERE would name
    // the outer `customers AS x` and leave the inner one unfiltered.
    let (sql, values) = ok(
        DbBackend::Postgres,
        "SELECT DISTINCT j.email FROM (customers AS x CROSS JOIN countries) AS j CROSS JOIN customers AS x",
        vec![],
    );
    assert_eq!(
        sql,
        r#"SELECT DISTINCT j.email FROM ((SELECT * FROM customers WHERE customers."storefront_id" = $1) AS x CROSS JOIN countries) AS j CROSS JOIN customers AS x WHERE x."storefront_id" = $1"#
    );
    assert_eq!(values, vec![tenant()]);
}

#[test]
fn a_cte_shadows_a_table_of_the_same_name() {
    // In the body the name is the CTE; inside the CTE (not recursive) it is the table.
    let (sql, _) = ok(
        DbBackend::Postgres,
        "WITH customers AS (SELECT id FROM customers WHERE id = $1) SELECT id FROM customers",
        vec![1.into()],
    );
    assert_eq!(
        sql,
        r#"WITH customers AS (SELECT id FROM customers WHERE customers."storefront_id" = $2 AND (id = $1)) SELECT id FROM customers"#
    );
    // A write's target is always the table.
    let (sql, _) = ok(
        DbBackend::Postgres,
        "WITH orders AS (SELECT 1 AS id) DELETE FROM orders WHERE id IN (SELECT id FROM orders)",
        vec![],
    );
    assert!(sql.ends_with(r#"DELETE FROM orders WHERE orders."storefront_id" = $1 AND (id IN (SELECT id FROM orders))"#), "{sql}");
    // A CTE named like the framework's table is just a CTE; the table itself is refused.
    ok(
        DbBackend::Sqlite,
        "WITH tenancy_tenants AS (SELECT 1 AS x) SELECT x FROM tenancy_tenants",
        vec![],
    );
    let err = refused(
        DbBackend::Postgres,
        "WITH a AS (SELECT * FROM tenancy_tenants), tenancy_tenants AS (SELECT 1) SELECT * FROM a",
        vec![],
    );
    assert!(err.contains("framework's own"), "{err}");
}

#[test]
fn values_must_match_placeholders() {
    let err = run(
        DbBackend::MySql,
        "SELECT * FROM customers WHERE id = ?",
        vec![],
    )
    .unwrap_err();
    assert!(
        matches!(
            err,
            TenancyError::ParameterCount {
                given: 0,
                needed: 1
            }
        ),
        "{err}"
    );
}

#[test]
fn the_cache_returns_the_same_rewrite_for_every_storefront() {
    let r = rewriter();
    let sql = "SELECT * FROM customers WHERE email = ?";
    let a = StorefrontId::new_random();
    let b = StorefrontId::new_random();
    let first = r
        .rewrite(
            Statement::from_sql_and_values(DbBackend::Sqlite, sql, ["e".into()]),
            &a,
        )
        .unwrap();
    let second = r
        .rewrite(
            Statement::from_sql_and_values(DbBackend::Sqlite, sql, ["e".into()]),
            &b,
        )
        .unwrap();
    assert_eq!(first.sql, second.sql);
    assert_eq!(first.values.unwrap().0[0], Value::Uuid(Some(*a.as_uuid())));
    assert_eq!(second.values.unwrap().0[0], Value::Uuid(Some(*b.as_uuid())));
}

#[test]
fn schema_placement_qualifies_scoped_tables_only() {
    let r = rewriter();
    let stmt = Statement::from_sql_and_values(
        DbBackend::Postgres,
        r#"SELECT "customers"."id" FROM "customers" JOIN "countries" ON "countries"."code" = "customers"."cc" WHERE "customers"."email" = $1"#,
        ["e".into()],
    );
    let out = r.rewrite_in(stmt, &shop(), Some("storefront_a")).unwrap();
    assert_eq!(
        out.sql,
        r#"SELECT "customers"."id" FROM "storefront_a"."customers" JOIN "countries" ON "countries"."code" = "customers"."cc" WHERE "storefront_a"."customers"."storefront_id" = $2 AND ("customers"."email" = $1)"#
    );
    // The same cached template serves another schema; a qualifier must be the storefront's.
    let stmt = Statement::from_sql_and_values(
        DbBackend::MySql,
        "INSERT INTO `storefront_b`.`customers` (`id`) VALUES (?)",
        [1.into()],
    );
    let out = r.rewrite_in(stmt, &shop(), Some("storefront_b")).unwrap();
    assert_eq!(
        out.sql,
        "INSERT INTO `storefront_b`.`customers` (`id`, `storefront_id`) VALUES (?, ?)"
    );
    let err = r
        .rewrite_in(
            Statement::from_sql_and_values(
                DbBackend::MySql,
                "INSERT INTO `storefront_b`.`customers` (`id`) VALUES (?)",
                [1.into()],
            ),
            &shop(),
            Some("storefront_a"),
        )
        .unwrap_err();
    assert!(
        err.to_string().contains("`storefront_b.customers`"),
        "{err}"
    );
    let err = r
        .rewrite_in(
            Statement::from_string(DbBackend::MySql, "SELECT * FROM customers"),
            &shop(),
            Some("bad name; --"),
        )
        .unwrap_err();
    assert!(err.to_string().contains("bad name; --"), "{err}");
}
