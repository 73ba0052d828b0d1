//! A differential oracle for the rewriter: random SQL over the SmartSeller schema, run on
//! storefront A's `TenantConnection` over the full data set (every storefront, every
//! placement) and on a plain connection over a database that holds only A's rows. The
//! results must be equal, or the statement refused; after a write, A's rows must be equal
//! on both sides and every other storefront's rows unchanged.
//!
//! The generator covers every join kind the backend has, subqueries in the select list,
//! `WHERE` and `FROM`, CTEs (recursive too), set operations, aggregates with `GROUP BY` /
//! `HAVING`, window functions, `DISTINCT`, `LIMIT` / `OFFSET`, and `INSERT` / `UPDATE` /
//! `DELETE` with subqueries. Each statement carries the constructs it uses, for the counts.

use std::collections::BTreeMap;

use sea_orm::{
    ConnectionTrait, DatabaseConnection, DbErr, EntityTrait, FromQueryResult, JsonValue, Statement,
    Value,
};
use tenancy_core::Placement;
use uuid::Uuid;

use crate::{
    arena::{Arena, Outcome},
    Backend, TestDb,
};

/// A small deterministic generator (xorshift64*), so a seed reproduces a run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// One generated statement.
#[derive(Clone, Debug)]
pub struct Generated {
    /// SQL with `?` placeholders and `"` quotes (see [`crate::sql_for`]).
    pub sql: String,
    pub values: Vec<Value>,
    pub write: bool,
    /// For an INSERT: the same statement with the tenant column, for the plain side (the
    /// storefront's id is bound as its last value).
    pub plain_sql: Option<String>,
    /// The constructs it uses.
    pub constructs: Vec<&'static str>,
}

struct Table {
    name: &'static str,
    alias: &'static str,
    /// Columns a query may select or compare, with their kind.
    columns: &'static [(&'static str, Kind)],
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Id,
    Text,
    Int,
}

const CUSTOMERS: Table = Table {
    name: "customers",
    alias: "c",
    columns: &[
        ("id", Kind::Id),
        ("email", Kind::Text),
        ("first_name", Kind::Text),
        ("last_name", Kind::Text),
    ],
};
const ADDRESSES: Table = Table {
    name: "customer_addresses",
    alias: "a",
    columns: &[
        ("id", Kind::Id),
        ("customer_id", Kind::Id),
        ("city", Kind::Text),
        ("country_code", Kind::Text),
    ],
};
const ORDERS: Table = Table {
    name: "orders",
    alias: "o",
    columns: &[
        ("id", Kind::Id),
        ("customer_id", Kind::Id),
        ("status", Kind::Text),
        ("total_cents", Kind::Int),
    ],
};
const ITEMS: Table = Table {
    name: "order_items",
    alias: "i",
    columns: &[
        ("id", Kind::Id),
        ("order_id", Kind::Id),
        ("sku", Kind::Text),
        ("quantity", Kind::Int),
        ("unit_price_cents", Kind::Int),
    ],
};
const CARTS: Table = Table {
    name: "shopping_carts",
    alias: "s",
    columns: &[
        ("id", Kind::Id),
        ("customer_id", Kind::Id),
        ("status", Kind::Text),
    ],
};
const CART_ITEMS: Table = Table {
    name: "cart_items",
    alias: "ci",
    columns: &[
        ("id", Kind::Id),
        ("cart_id", Kind::Id),
        ("sku", Kind::Text),
        ("quantity", Kind::Int),
    ],
};
const COUNTRIES: Table = Table {
    name: "countries",
    alias: "k",
    columns: &[("code", Kind::Text), ("name", Kind::Text)],
};

const TABLES: &[&Table] = &[&CUSTOMERS, &ADDRESSES, &ORDERS, &ITEMS, &CARTS, &CART_ITEMS];

/// Foreign keys as (child, child column, parent, parent column).
const EDGES: &[(&str, &str, &str, &str)] = &[
    ("customer_addresses", "customer_id", "customers", "id"),
    ("orders", "customer_id", "customers", "id"),
    ("order_items", "order_id", "orders", "id"),
    ("shopping_carts", "customer_id", "customers", "id"),
    ("cart_items", "cart_id", "shopping_carts", "id"),
    ("customer_addresses", "country_code", "countries", "code"),
];

fn table(name: &str) -> &'static Table {
    match name {
        "customers" => &CUSTOMERS,
        "customer_addresses" => &ADDRESSES,
        "orders" => &ORDERS,
        "order_items" => &ITEMS,
        "shopping_carts" => &CARTS,
        "cart_items" => &CART_ITEMS,
        _ => &COUNTRIES,
    }
}

/// The statement generator for one backend.
pub struct Generator {
    pub backend: Backend,
    pub rng: Rng,
    n: usize,
    /// Rows the generated INSERTs added since the last clean-up: the data set stays small,
    /// so joins over it stay small however long the run.
    inserted: usize,
    /// Clean-up statements still to come.
    pending: Vec<&'static str>,
}

struct From {
    sql: String,
    /// (alias, table) in scope.
    scope: Vec<(String, &'static Table)>,
}

impl Generator {
    pub fn new(backend: Backend, seed: u64) -> Self {
        Self {
            backend,
            rng: Rng::new(seed),
            n: 0,
            inserted: 0,
            pending: Vec::new(),
        }
    }

    fn alias(&mut self, base: &str) -> String {
        self.n += 1;
        format!("{base}{}", self.n)
    }

    fn literal(&mut self, kind: Kind) -> String {
        match kind {
            Kind::Int => self
                .rng
                .pick(&["0", "1", "2", "1000", "2000", "3000"])
                .to_string(),
            Kind::Text => self
                .rng
                .pick(&[
                    "'shared@example.com'",
                    "'paid'",
                    "'open'",
                    "'US'",
                    "'SKU-0'",
                    "'Springfield'",
                    "'lonely'",
                    "''",
                ])
                .to_string(),
            Kind::Id => "NULL".into(),
        }
    }

    /// A FROM item: a table, a derived table, or a chain of joins.
    fn from(&mut self, c: &mut Vec<&'static str>, depth: usize) -> From {
        let base = if self.rng.chance(10) {
            &COUNTRIES
        } else {
            *self.rng.pick(TABLES)
        };
        let alias = self.alias(base.alias);
        let mut sql;
        if depth < 2 && self.rng.chance(12) {
            c.push("derived table");
            let cols: Vec<&str> = base.columns.iter().map(|(n, _)| *n).collect();
            let inner_where = self.simple_predicate(c, &[("x".into(), base)], depth + 1);
            sql = format!(
                "(SELECT {} FROM {} x WHERE {inner_where}) {alias}",
                cols.iter()
                    .map(|n| format!("x.{n}"))
                    .collect::<Vec<_>>()
                    .join(", "),
                base.name
            );
        } else {
            sql = format!("{} {alias}", base.name);
        }
        let mut scope = vec![(alias, base)];
        let joins = self.rng.below(3);
        for _ in 0..joins {
            let Some((left_alias, right_name, on_left, on_right)) = self.edge_from(&scope) else {
                break;
            };
            let right = table(right_name);
            let ra = self.alias(right.alias);
            let kinds: &[&str] = match self.backend {
                Backend::MySql => &[
                    "JOIN",
                    "INNER JOIN",
                    "LEFT JOIN",
                    "RIGHT JOIN",
                    "CROSS JOIN",
                ],
                _ => &[
                    "JOIN",
                    "INNER JOIN",
                    "LEFT JOIN",
                    "RIGHT JOIN",
                    "FULL JOIN",
                    "CROSS JOIN",
                ],
            };
            let kind = *self.rng.pick(kinds);
            c.push(match kind {
                "LEFT JOIN" => "left join",
                "RIGHT JOIN" => "right join",
                "FULL JOIN" => "full join",
                "CROSS JOIN" => "cross join",
                _ => "inner join",
            });
            if kind == "CROSS JOIN" {
                sql.push_str(&format!(" CROSS JOIN {} {ra}", right.name));
            } else {
                let extra = if self.rng.chance(25) {
                    c.push("join condition with literal");
                    " OR 1 = 1".to_string()
                } else {
                    String::new()
                };
                sql.push_str(&format!(
                    " {kind} {} {ra} ON ({ra}.{on_right} = {left_alias}.{on_left}{extra})",
                    right.name
                ));
            }
            scope.push((ra, right));
        }
        From { sql, scope }
    }

    /// A join edge from something in scope: (left alias, right table name, left column,
    /// right column).
    fn edge_from(
        &mut self,
        scope: &[(String, &'static Table)],
    ) -> Option<(String, &'static str, &'static str, &'static str)> {
        let mut options = Vec::new();
        for (alias, t) in scope {
            for (child, ccol, parent, pcol) in EDGES {
                if *child == t.name {
                    options.push((alias.clone(), *parent, *ccol, *pcol));
                }
                if *parent == t.name {
                    options.push((alias.clone(), *child, *pcol, *ccol));
                }
            }
        }
        if options.is_empty() {
            return None;
        }
        let i = self.rng.below(options.len());
        Some(options.swap_remove(i))
    }

    fn column(
        &mut self,
        scope: &[(String, &'static Table)],
        want: Option<Kind>,
    ) -> Option<(String, Kind)> {
        let mut all = Vec::new();
        for (alias, t) in scope {
            for (name, kind) in t.columns {
                if want.is_none_or(|w| w == *kind) {
                    all.push((format!("{alias}.{name}"), *kind));
                }
            }
        }
        if all.is_empty() {
            return None;
        }
        let i = self.rng.below(all.len());
        Some(all.swap_remove(i))
    }

    fn simple_predicate(
        &mut self,
        c: &mut Vec<&'static str>,
        scope: &[(String, &'static Table)],
        depth: usize,
    ) -> String {
        match self.rng.below(7) {
            0 | 1 => {
                let Some((col, kind)) = self
                    .column(scope, Some(Kind::Int))
                    .or_else(|| self.column(scope, Some(Kind::Text)))
                else {
                    return "1 = 1".into();
                };
                let op = *self.rng.pick(&["=", "<>", "<", ">=", ">"]);
                format!("{col} {op} {}", self.literal(kind))
            }
            2 => {
                c.push("OR");
                let a = self.simple_predicate(c, scope, depth + 1);
                format!("({a} OR 1 = 1)")
            }
            3 if depth < 2 => {
                c.push("IN subquery");
                let Some((col, _)) = self.column(scope, Some(Kind::Id)) else {
                    return "1 = 1".into();
                };
                let t = *self.rng.pick(TABLES);
                let inner = self.alias("q");
                let pred = self.simple_predicate(c, &[(inner.clone(), t)], depth + 1);
                format!(
                    "{col} IN (SELECT {inner}.id FROM {} {inner} WHERE {pred})",
                    t.name
                )
            }
            4 if depth < 2 => {
                c.push("EXISTS");
                let t = *self.rng.pick(TABLES);
                let inner = self.alias("e");
                let pred = self.simple_predicate(c, &[(inner.clone(), t)], depth + 1);
                let neg = if self.rng.chance(30) { "NOT " } else { "" };
                format!(
                    "{neg}EXISTS (SELECT 1 FROM {} {inner} WHERE {pred})",
                    t.name
                )
            }
            5 => {
                let Some((col, _)) = self.column(scope, None) else {
                    return "1 = 1".into();
                };
                c.push("IS NULL");
                format!("{col} IS NOT NULL")
            }
            _ => {
                let Some((col, _)) = self.column(scope, Some(Kind::Text)) else {
                    return "1 = 1".into();
                };
                format!("{col} LIKE '%a%'")
            }
        }
    }

    /// A SELECT with `columns` output columns (0: any), returning (sql, column count).
    fn select(
        &mut self,
        c: &mut Vec<&'static str>,
        depth: usize,
        columns: usize,
    ) -> (String, usize) {
        let from = self.from(c, depth);
        let mut projection = Vec::new();
        let mut group_by = Vec::new();
        let mut aggregate = false;
        let want = if columns == 0 {
            1 + self.rng.below(3)
        } else {
            columns
        };
        let mode = self.rng.below(10);
        if mode < 2 && columns <= 2 {
            // Aggregates.
            aggregate = true;
            c.push("aggregate");
            if want >= 2 || self.rng.chance(50) && columns == 0 {
                if let Some((col, _)) = self.column(&from.scope, Some(Kind::Text)) {
                    group_by.push(col.clone());
                    projection.push(col);
                    c.push("GROUP BY");
                }
            }
            while projection.len() < want {
                let agg = match self.column(&from.scope, Some(Kind::Int)) {
                    Some((col, _)) => format!("{}({col})", self.rng.pick(&["MIN", "MAX", "COUNT"])),
                    None => "COUNT(*)".into(),
                };
                projection.push(agg);
            }
        } else {
            while projection.len() < want {
                let item = if depth < 2 && self.rng.chance(15) {
                    c.push("scalar subquery");
                    let t = *self.rng.pick(TABLES);
                    let inner = self.alias("sq");
                    let pred = self.simple_predicate(c, &[(inner.clone(), t)], depth + 1);
                    format!("(SELECT COUNT(*) FROM {} {inner} WHERE {pred})", t.name)
                } else if self.rng.chance(10) {
                    c.push("window function");
                    let (part, _) = self
                        .column(&from.scope, Some(Kind::Text))
                        .unwrap_or(("1".into(), Kind::Int));
                    match self.column(&from.scope, Some(Kind::Int)) {
                        Some((ord, _)) if self.rng.chance(50) => {
                            format!("RANK() OVER (PARTITION BY {part} ORDER BY {ord})")
                        }
                        _ => format!("COUNT(*) OVER (PARTITION BY {part})"),
                    }
                } else {
                    match self.column(&from.scope, None) {
                        Some((col, _)) => col,
                        None => "1".into(),
                    }
                };
                projection.push(item);
            }
        }
        let distinct = if self.rng.chance(15) {
            c.push("DISTINCT");
            "DISTINCT "
        } else {
            ""
        };
        let mut sql = format!(
            "SELECT {distinct}{} FROM {}",
            projection
                .iter()
                .enumerate()
                .map(|(i, p)| format!("{p} AS col{i}"))
                .collect::<Vec<_>>()
                .join(", "),
            from.sql
        );
        if self.rng.chance(70) {
            let pred = self.simple_predicate(c, &from.scope, depth);
            sql.push_str(&format!(" WHERE {pred}"));
        }
        if aggregate && !group_by.is_empty() {
            sql.push_str(&format!(" GROUP BY {}", group_by.join(", ")));
            if self.rng.chance(40) {
                c.push("HAVING");
                sql.push_str(" HAVING COUNT(*) >= 1");
            }
        }
        (sql, projection.len())
    }

    /// One statement: a query (most of the time) or a write.
    pub fn statement(&mut self) -> Generated {
        if let Some(sql) = self.pending.pop() {
            return Generated {
                sql: sql.to_owned(),
                values: Vec::new(),
                write: true,
                plain_sql: None,
                constructs: vec!["DELETE", "clean-up"],
            };
        }
        if self.inserted >= 8 {
            self.inserted = 0;
            // Popped from the end: orders first, then the customers they referenced.
            self.pending = vec![
                "DELETE FROM customers WHERE first_name = 'gen' AND id NOT IN (SELECT o.customer_id FROM orders o)",
                "DELETE FROM orders WHERE currency = 'GEN'",
            ];
            return self.statement();
        }
        let mut c = Vec::new();
        if self.rng.chance(25) {
            return self.write(c);
        }
        let mut values = Vec::new();
        let sql = match self.rng.below(10) {
            0 | 1 => {
                c.push("set operation");
                let n = 1 + self.rng.below(2);
                let (a, _) = self.select(&mut c, 1, n);
                let (b, _) = self.select(&mut c, 1, n);
                let op = *self
                    .rng
                    .pick(&["UNION", "UNION ALL", "INTERSECT", "EXCEPT"]);
                format!("{a} {op} {b}")
            }
            2 => {
                c.push("CTE");
                let (inner, n) = self.select(&mut c, 1, 0);
                let cols: Vec<String> = (0..n).map(|i| format!("col{i}")).collect();
                format!("WITH w AS ({inner}) SELECT {} FROM w", cols.join(", "))
            }
            3 => {
                c.push("recursive CTE");
                let (inner, _) = self.select(&mut c, 1, 1);
                format!(
                    "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 3) \
                     SELECT r.n AS n, w.col0 AS v FROM r CROSS JOIN ({inner}) w"
                )
            }
            4 => {
                c.push("LIMIT/OFFSET");
                let (inner, n) = self.select(&mut c, 0, 0);
                let order: Vec<String> = (1..=n).map(|i| i.to_string()).collect();
                values.push(Value::BigInt(Some(1 + self.rng.below(4) as i64)));
                let offset = if self.rng.chance(50) {
                    values.push(Value::BigInt(Some(self.rng.below(3) as i64)));
                    " OFFSET ?"
                } else {
                    ""
                };
                // Deterministic only when the ordered rows are distinct.
                format!(
                    "SELECT * FROM ({inner}) lim ORDER BY {} LIMIT ?{offset}",
                    order.join(", ")
                )
                .replace("SELECT * FROM (SELECT ", "SELECT DISTINCT * FROM (SELECT ")
            }
            _ => self.select(&mut c, 0, 0).0,
        };
        Generated {
            sql,
            values,
            write: false,
            plain_sql: None,
            constructs: c,
        }
    }

    fn write(&mut self, mut c: Vec<&'static str>) -> Generated {
        let new_id = || Value::Uuid(Some(Uuid::new_v4()));
        let mut plain_sql = None;
        let (sql, values) = match self.rng.below(7) {
            0 => {
                c.push("INSERT VALUES");
                self.inserted += 1;
                let cols = "id, email, first_name, last_name, created_at, updated_at";
                let vals = "?, ?, 'gen', 'oracle', '2024-01-01 00:00:00', '2024-01-01 00:00:00'";
                plain_sql = Some(format!(
                    "INSERT INTO customers ({cols}, storefront_id) VALUES ({vals}, ?)"
                ));
                (
                    format!("INSERT INTO customers ({cols}) VALUES ({vals})"),
                    vec![
                        new_id(),
                        Value::String(Some(format!(
                            "gen-{}@example.com",
                            self.rng.next_u64() % 1_000_000
                        ))),
                    ],
                )
            }
            1 => {
                c.push("INSERT SELECT");
                self.inserted += 1;
                let pred = self.simple_predicate(&mut c, &[("c".into(), &CUSTOMERS)], 1);
                let cols = "id, customer_id, status, total_cents, currency, created_at, updated_at";
                let select = "SELECT ?, c.id, 'gen', 7, 'GEN', c.created_at, c.updated_at";
                let rest = format!(
                    "FROM customers c WHERE c.email = (SELECT MIN(m.email) FROM customers m) AND {pred}"
                );
                plain_sql = Some(format!(
                    "INSERT INTO orders ({cols}, storefront_id) {select}, ? {rest}"
                ));
                (
                    format!("INSERT INTO orders ({cols}) {select} {rest}"),
                    vec![new_id()],
                )
            }
            2 | 3 => {
                c.push("UPDATE");
                let t = *self.rng.pick(&[&ORDERS, &ITEMS, &CART_ITEMS, &CUSTOMERS]);
                let (set, _) = match t.name {
                    "customers" => ("last_name = 'updated'", ()),
                    "orders" => ("status = 'updated', total_cents = total_cents + 1", ()),
                    _ => ("quantity = quantity + 1", ()),
                };
                let pred = self.simple_predicate(&mut c, &[(t.name.to_string(), t)], 0);
                (format!("UPDATE {} SET {set} WHERE {pred}", t.name), vec![])
            }
            4 => {
                c.push("UPDATE with subquery");
                (
                    "UPDATE orders SET status = 'big' WHERE customer_id IN \
                     (SELECT s.customer_id FROM shopping_carts s WHERE s.status = 'open' OR 1 = 1)"
                        .to_string(),
                    vec![],
                )
            }
            _ => {
                c.push("DELETE");
                let t = *self.rng.pick(&[&ITEMS, &CART_ITEMS]);
                let pred = self.simple_predicate(&mut c, &[(t.name.to_string(), t)], 0);
                (format!("DELETE FROM {} WHERE {pred}", t.name), vec![])
            }
        };
        Generated {
            sql,
            values,
            write: true,
            plain_sql,
            constructs: c,
        }
    }
}

/// Counts of one oracle run.
#[derive(Debug, Default)]
pub struct Tally {
    pub statements: usize,
    /// Equal results on both sides.
    pub confined: usize,
    /// Both sides rejected by the database in the same way (e.g. a constraint).
    pub both_failed: usize,
    /// Refused by the framework, by reason.
    pub refused: BTreeMap<String, usize>,
    /// By construct: (statements, refused).
    pub constructs: BTreeMap<&'static str, (usize, usize)>,
}

impl Tally {
    pub fn refused_total(&self) -> usize {
        self.refused.values().sum()
    }
}

/// The reason of a refusal, without the names in it.
fn reason(message: &str) -> String {
    let m: String = message.split('`').step_by(2).collect::<Vec<_>>().join("_");
    m.chars().take(90).collect::<String>().trim().to_owned()
}

async fn run_plain(db: &DatabaseConnection, g: &Generated, tenant: Uuid) -> Outcome {
    let stmt = match &g.plain_sql {
        Some(sql) => {
            let mut values = g.values.clone();
            values.push(Value::Uuid(Some(tenant)));
            crate::stmt(db.get_database_backend(), sql, values)
        }
        None => crate::stmt(db.get_database_backend(), &g.sql, g.values.clone()),
    };
    let result = if g.write {
        db.execute_raw(stmt).await.map(|_| Vec::new())
    } else {
        JsonValue::find_by_statement(stmt).all(db).await
    };
    crate::arena::outcome_of(result)
}

async fn run_tenant(conn: &tenancy_core::TenantConnection, g: &Generated) -> Outcome {
    let stmt = crate::stmt(conn.get_database_backend(), &g.sql, g.values.clone());
    let result: Result<Vec<JsonValue>, DbErr> = if g.write {
        conn.execute_raw(stmt).await.map(|_| Vec::new())
    } else {
        JsonValue::find_by_statement(stmt).all(conn).await
    };
    crate::arena::outcome_of(result)
}

/// Rows as a multiset. A row of a query result is its values (column names are compared
/// only through their values: a server names an unaliased expression column after its
/// text, which rendering may change, e.g. by dropping a comment).
fn sorted(rows: &[JsonValue]) -> Vec<String> {
    let mut v: Vec<String> = rows
        .iter()
        .map(|r| match r.as_object() {
            Some(o) => {
                let mut values: Vec<String> = o.values().map(|x| x.to_string()).collect();
                values.sort();
                values.join("\u{1f}")
            }
            None => r.to_string(),
        })
        .collect();
    v.sort();
    v
}

/// A's rows, physically where A lives.
async fn own_rows(arena: &Arena, a: usize) -> BTreeMap<String, Vec<String>> {
    let shop = &arena.shops[a];
    let backend = arena.backend;
    let q = |name: &str| backend.quote(name);
    let mut out = BTreeMap::new();
    let own_db;
    let (db, prefix, filter) = match &shop.placement {
        Placement::Shared => (&arena.test.db, String::new(), true),
        Placement::Schema { schema } => (&arena.test.db, format!("{}.", q(schema)), false),
        Placement::Database { url } => {
            own_db = sea_orm::Database::connect(url.as_str())
                .await
                .expect("own database");
            (&own_db, String::new(), false)
        }
    };
    let me = arena.uuid_literal(shop.seeded.uuid());
    for t in TABLES {
        let sql = if filter {
            format!("SELECT * FROM {} WHERE storefront_id = {me}", q(t.name))
        } else {
            format!("SELECT * FROM {prefix}{}", q(t.name))
        };
        let rows =
            JsonValue::find_by_statement(Statement::from_string(db.get_database_backend(), sql))
                .all(db)
                .await
                .expect("own rows");
        out.insert(t.name.to_string(), sorted(&rows));
    }
    out
}

async fn reference_rows(
    db: &DatabaseConnection,
    backend: Backend,
) -> BTreeMap<String, Vec<String>> {
    let mut out = BTreeMap::new();
    for t in TABLES {
        let q = backend.quote(t.name);
        let rows = JsonValue::find_by_statement(Statement::from_string(
            db.get_database_backend(),
            format!("SELECT * FROM {q}"),
        ))
        .all(db)
        .await
        .expect("reference rows");
        out.insert(t.name.to_string(), sorted(&rows));
    }
    out
}

/// A database holding only shop `a`'s rows (copied through its own connection).
pub async fn reference(arena: &Arena, a: usize) -> TestDb {
    use entities::prelude::*;
    let reference = TestDb::migrated(arena.backend)
        .await
        .expect("the reference database");
    let conn = arena.conn(a);
    macro_rules! copy {
        ($e:ty, $m:ident) => {
            let models = <$e>::find().all(&conn).await.expect("read own rows");
            if !models.is_empty() {
                <$e>::insert_many(models.into_iter().map(entities::$m::ActiveModel::from))
                    .exec(&reference.db)
                    .await
                    .expect("copy into the reference");
            }
        };
    }
    copy!(Customer, customer);
    copy!(CustomerAddress, customer_address);
    copy!(Order, order);
    copy!(OrderItem, order_item);
    copy!(ShoppingCart, shopping_cart);
    copy!(CartItem, cart_item);
    reference
}

/// Runs `count` generated statements for shop `a` (seeded with `seed`), comparing with
/// the reference database. Panics with the seed and the statement on a difference.
pub async fn run(arena: &Arena, a: usize, seed: u64, count: usize) -> Tally {
    let mut generator = Generator::new(arena.backend, seed);
    run_statements(arena, a, seed, (0..count).map(|_| generator.statement())).await
}

/// Runs the read-only statements of `corpus` (one per line, with no placeholders) for
/// shop `a` through the same comparison: SQL that nobody here wrote, where it executes.
pub async fn run_corpus(arena: &Arena, a: usize, corpus: &str) -> Tally {
    let statements = corpus
        .lines()
        .map(str::trim)
        .filter(|l| {
            let upper = l.to_ascii_uppercase();
            (upper.starts_with("SELECT") || upper.starts_with("WITH"))
                && !l.contains('?')
                && !upper.contains("INSERT")
                && !upper.contains("UPDATE")
                && !upper.contains("DELETE")
        })
        .map(|l| Generated {
            sql: l.to_owned(),
            values: Vec::new(),
            write: false,
            plain_sql: None,
            constructs: vec!["mapped corpus"],
        })
        .collect::<Vec<_>>();
    run_statements(arena, a, 0, statements).await
}

async fn run_statements(
    arena: &Arena,
    a: usize,
    seed: u64,
    statements: impl IntoIterator<Item = Generated>,
) -> Tally {
    let reference = reference(arena, a).await;
    let conn = arena.conn(a);
    let label = format!("{} {}", arena.backend, arena.shops[a].label);
    let others_before = arena.physical(a).await;
    let mut tally = Tally::default();
    for (k, g) in statements.into_iter().enumerate() {
        let fail = |what: String| -> ! {
            panic!(
                "oracle {label}, seed {seed}, statement {k}: {what}\n  sql: {}\n  values: {:?}\n  \
                 rerun: TENANCY_ORACLE_SEED={seed} cargo test -p tenancy-tests --test oracle",
                g.sql, g.values
            )
        };
        let tenant = tokio::time::timeout(crate::arena::STATEMENT_LIMIT, run_tenant(&conn, &g))
            .await
            .unwrap_or_else(|_| fail("the tenant side did not finish".into()));
        tally.statements += 1;
        let entry = |t: &mut Tally, refused: bool| {
            for c in &g.constructs {
                let e = t.constructs.entry(c).or_default();
                e.0 += 1;
                if refused {
                    e.1 += 1;
                }
            }
        };
        if let Outcome::Refused(message) = &tenant {
            *tally.refused.entry(reason(message)).or_default() += 1;
            entry(&mut tally, true);
            continue;
        }
        entry(&mut tally, false);
        if let Some(value) = arena.leaks(a, &tenant) {
            fail(format!(
                "another storefront's value {value} came back: {tenant:?}"
            ));
        }
        let plain = tokio::time::timeout(
            crate::arena::STATEMENT_LIMIT,
            run_plain(&reference.db, &g, arena.shops[a].seeded.uuid()),
        )
        .await
        .unwrap_or_else(|_| fail("the reference side did not finish".into()));
        match (&tenant, &plain) {
            (Outcome::Rows(t), Outcome::Rows(p)) => {
                // A corpus statement that picks rows without a total order (LIMIT / FETCH
                // without ORDER BY, random()) may pick other rows of A's on each side: the
                // counts must agree (and the leak check above has passed).
                let upper = g.sql.to_ascii_uppercase();
                let arbitrary = g.constructs.contains(&"mapped corpus")
                    && ["LIMIT", "FETCH", "OFFSET", "TOP", "RAND"]
                        .iter()
                        .any(|k| upper.contains(k));
                if !(arbitrary && t.len() == p.len()) && sorted(t) != sorted(p) {
                    fail(format!(
                        "results differ:\n  tenant:    {t:?}\n  reference: {p:?}"
                    ));
                }
                tally.confined += 1;
            }
            (Outcome::Failed(_), Outcome::Failed(_)) => tally.both_failed += 1,
            (t, p) => fail(format!(
                "outcomes differ:\n  tenant:    {t:?}\n  reference: {p:?}"
            )),
        }
        if g.write {
            let mine = own_rows(arena, a).await;
            let theirs = reference_rows(&reference.db, arena.backend).await;
            if mine != theirs {
                let table = mine
                    .iter()
                    .find(|(t, rows)| theirs.get(*t) != Some(rows))
                    .map(|(t, _)| t.clone())
                    .unwrap_or_default();
                fail(format!(
                    "after the write, A's `{table}` differs from the reference"
                ));
            }
        }
    }
    let others_after = arena.physical(a).await;
    assert_eq!(
        others_after, others_before,
        "oracle {label}, seed {seed}: another storefront's rows changed"
    );
    reference.teardown().await;
    tally
}
