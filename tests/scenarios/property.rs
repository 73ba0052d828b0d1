//! Property test: random filter / join / order / limit combinations built with SeaORM run
//! through a TenantConnection return exactly what the same query returns on the shared
//! connection with the storefront filter written by hand.

use chrono::{TimeZone, Utc};
use entities::{customer, order, prelude::*};
use proptest::{
    prelude::*,
    test_runner::{Config, TestRunner},
};
use sea_orm::{
    sea_query::{Expr, ExprTrait, IntoCondition, Query},
    ColumnTrait, Condition, DatabaseConnection, EntityTrait, JoinType, Order as SortOrder,
    QueryFilter, QueryOrder, QuerySelect, RelationTrait, Select,
};
use tenancy_core::{StorefrontId, TenancyOptions, TenantConnection};
use tenancy_tests::{Backend, TestDb};
use uuid::Uuid;

#[derive(Clone, Debug)]
enum Pred {
    FirstNameEq(String),
    EmailLike(String),
    PhoneNull,
    TotalGt(i64),
    StatusEq(String),
    HasOrderOver(i64),
    Not(Box<Pred>),
    All(Vec<Pred>),
    Any(Vec<Pred>),
}

#[derive(Clone, Copy, Debug)]
enum Join {
    None,
    Inner,
    Left,
}

#[derive(Clone, Debug)]
struct Case {
    join: Join,
    pred: Option<Pred>,
    order_by: u8,
    desc: bool,
    limit: Option<u64>,
}

fn leaf(joined: bool) -> BoxedStrategy<Pred> {
    let names = prop::sample::select(vec!["ann", "bo", "cy", "di"]);
    let mut leaves = vec![
        names
            .clone()
            .prop_map(|n| Pred::FirstNameEq(n.to_owned()))
            .boxed(),
        prop::sample::select(vec!["%a%", "%1%", "%@example.com", "b%"])
            .prop_map(|p| Pred::EmailLike(p.to_owned()))
            .boxed(),
        Just(Pred::PhoneNull).boxed(),
        (0i64..6000).prop_map(Pred::HasOrderOver).boxed(),
    ];
    if joined {
        leaves.push((0i64..6000).prop_map(Pred::TotalGt).boxed());
        leaves.push(
            prop::sample::select(vec!["paid", "open", "void"])
                .prop_map(|s| Pred::StatusEq(s.to_owned()))
                .boxed(),
        );
    }
    prop::strategy::Union::new(leaves).boxed()
}

fn pred(joined: bool) -> impl Strategy<Value = Pred> {
    leaf(joined).prop_recursive(3, 12, 3, |inner| {
        prop_oneof![
            inner.clone().prop_map(|p| Pred::Not(Box::new(p))),
            prop::collection::vec(inner.clone(), 1..3).prop_map(Pred::All),
            prop::collection::vec(inner, 1..3).prop_map(Pred::Any),
        ]
    })
}

fn case() -> impl Strategy<Value = Case> {
    prop_oneof![Just(Join::None), Just(Join::Inner), Just(Join::Left)].prop_flat_map(|join| {
        let joined = !matches!(join, Join::None);
        (
            prop::option::of(pred(joined)),
            0u8..3,
            any::<bool>(),
            prop::option::of(1u64..8),
        )
            .prop_map(move |(pred, order_by, desc, limit)| Case {
                join,
                pred,
                order_by,
                desc,
                limit,
            })
    })
}

/// The predicate as a SeaORM condition; `hand` adds the storefront filter to subqueries.
fn condition(p: &Pred, hand: Option<Uuid>) -> Condition {
    match p {
        Pred::FirstNameEq(n) => customer::Column::FirstName.eq(n.clone()).into_condition(),
        Pred::EmailLike(l) => customer::Column::Email.like(l.clone()).into_condition(),
        Pred::PhoneNull => customer::Column::Phone.is_null().into_condition(),
        Pred::TotalGt(t) => order::Column::TotalCents.gt(*t).into_condition(),
        Pred::StatusEq(s) => order::Column::Status.eq(s.clone()).into_condition(),
        Pred::HasOrderOver(t) => {
            let mut sub = Query::select();
            sub.column(order::Column::CustomerId)
                .from(order::Entity)
                .and_where(Expr::col(order::Column::TotalCents).gt(*t));
            if let Some(s) = hand {
                sub.and_where(Expr::col(order::Column::StorefrontId).eq(s));
            }
            customer::Column::Id
                .in_subquery(sub.to_owned())
                .into_condition()
        }
        Pred::Not(inner) => condition(inner, hand).not(),
        Pred::All(v) => v
            .iter()
            .fold(Condition::all(), |c, p| c.add(condition(p, hand))),
        Pred::Any(v) => v
            .iter()
            .fold(Condition::any(), |c, p| c.add(condition(p, hand))),
    }
}

fn build(case: &Case, hand: Option<Uuid>) -> Select<Customer> {
    let mut q = Customer::find();
    let rel = customer::Relation::Order.def();
    let rel = match hand {
        Some(s) => rel.on_condition(move |_l, r| {
            Expr::col((r, order::Column::StorefrontId))
                .eq(s)
                .into_condition()
        }),
        None => rel,
    };
    q = match case.join {
        Join::None => q,
        Join::Inner => q.join(JoinType::InnerJoin, rel),
        Join::Left => q.join(JoinType::LeftJoin, rel),
    };
    if let Some(p) = &case.pred {
        q = q.filter(condition(p, hand));
    }
    if let Some(s) = hand {
        q = q.filter(customer::Column::StorefrontId.eq(s));
    }
    let dir = if case.desc {
        SortOrder::Desc
    } else {
        SortOrder::Asc
    };
    q = match case.order_by {
        0 => q.order_by(customer::Column::Email, dir),
        1 => q.order_by(customer::Column::FirstName, dir),
        _ => q.order_by(customer::Column::CreatedAt, dir),
    };
    q = q.order_by_asc(customer::Column::Id);
    if let Some(n) = case.limit {
        q = q.limit(n);
    }
    q
}

async fn seed(shared: &DatabaseConnection, shops: &[StorefrontId]) {
    let names = ["ann", "bo", "cy", "di"];
    let mut customers = Vec::new();
    let mut orders = Vec::new();
    for (s, shop) in shops.iter().enumerate() {
        for i in 0..8usize {
            let id = Uuid::new_v4();
            let at = Utc
                .timestamp_opt(1_700_000_000 + (i * 37 % 11) as i64, 0)
                .unwrap();
            customers.push(customer::ActiveModel {
                id: sea_orm::Set(id),
                storefront_id: sea_orm::Set(*shop.as_uuid()),
                email: sea_orm::Set(format!("{}{i}@example.com", names[(i + s) % 4])),
                first_name: sea_orm::Set(names[(i * 3 + s) % 4].into()),
                last_name: sea_orm::Set("x".into()),
                phone: sea_orm::Set(if i % 3 == 0 { None } else { Some("1".into()) }),
                created_at: sea_orm::Set(at),
                updated_at: sea_orm::Set(at),
                deleted_at: sea_orm::Set(None),
            });
            for k in 0..(i % 3) {
                orders.push(order::ActiveModel {
                    id: sea_orm::Set(Uuid::new_v4()),
                    storefront_id: sea_orm::Set(*shop.as_uuid()),
                    customer_id: sea_orm::Set(id),
                    status: sea_orm::Set(["paid", "open", "void"][(i + k + s) % 3].into()),
                    total_cents: sea_orm::Set(((i * 700 + k * 1300 + s * 300) % 6000) as i64),
                    currency: sea_orm::Set("EUR".into()),
                    created_at: sea_orm::Set(at),
                    updated_at: sea_orm::Set(at),
                });
            }
        }
    }
    Customer::insert_many(customers)
        .exec(shared)
        .await
        .expect("seed customers");
    Order::insert_many(orders)
        .exec(shared)
        .await
        .expect("seed orders");
}

fn property(backend: Backend, cases: u32) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let Some(test) = rt.block_on(TestDb::migrated(backend)) else {
        return;
    };
    let shops: Vec<StorefrontId> = (0..3).map(|_| StorefrontId::new_random()).collect();
    rt.block_on(seed(&test.db, &shops));
    let tenancy = rt
        .block_on(
            TenancyOptions::new()
                .registry(entities::registry())
                .connect_with(test.db.clone()),
        )
        .expect("tenancy");
    let conns: Vec<TenantConnection> = shops.iter().map(|s| tenancy.connection(*s)).collect();
    // A fourth storefront with no rows at all.
    let empty = tenancy.connection(StorefrontId::new_random());

    let mut runner = TestRunner::new(Config {
        cases,
        failure_persistence: None,
        ..Config::default()
    });
    let result = runner.run(&case(), |case| {
        rt.block_on(async {
            for conn in conns.iter().chain(std::iter::once(&empty)) {
                let got: Vec<Uuid> = build(&case, None)
                    .all(conn)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("tenant query: {e}")))?
                    .into_iter()
                    .map(|c| c.id)
                    .collect();
                let expected: Vec<Uuid> = build(&case, Some(*conn.storefront().as_uuid()))
                    .all(&test.db)
                    .await
                    .map_err(|e| TestCaseError::fail(format!("hand-filtered query: {e}")))?
                    .into_iter()
                    .map(|c| c.id)
                    .collect();
                prop_assert_eq!(got, expected, "{} {:?}", backend, case);
            }
            Ok(())
        })
    });
    rt.block_on(test.teardown());
    if let Err(e) = result {
        panic!("{backend}: {e}");
    }
}

#[test]
fn random_queries_match_hand_filtered_sqlite() {
    property(Backend::Sqlite, 128);
}

#[test]
fn random_queries_match_hand_filtered_postgres() {
    property(Backend::Postgres, 64);
}

#[test]
fn random_queries_match_hand_filtered_mysql() {
    property(Backend::MySql, 64);
}
