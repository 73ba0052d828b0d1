//! The isolation matrix, shared by the per-placement tests: seed storefronts through their
//! own connections, check that every read path sees exactly the storefront's rows, and that
//! writes (including attacks on another storefront) leave the other storefront untouched.

use std::collections::BTreeSet;

use chrono::Utc;
use entities::{
    cart_item, customer, customer_address, order, order_item,
    prelude::*,
    repository::{CustomerRepository, NewCustomer},
    shopping_cart,
};
use futures_util::TryStreamExt;
use sea_orm::{
    sea_query::{Expr, OnConflict},
    ActiveModelTrait,
    ActiveValue::{NotSet, Set},
    ColumnTrait, ConnectionTrait, DbErr, EntityTrait, FromQueryResult, JsonValue, LoaderTrait,
    ModelTrait, PaginatorTrait, QueryFilter, QueryOrder, SelectExt, TransactionTrait,
};
use tenancy_core::{StorefrontId, Tenancy, TenancyError, TenantConnection};
use uuid::Uuid;

use crate::{stmt, Backend};

/// What one storefront was seeded with.
pub struct Seeded {
    pub id: StorefrontId,
    pub customers: Vec<customer::Model>,
    pub orders: Vec<order::Model>,
    pub carts: Vec<shopping_cart::Model>,
}

impl Seeded {
    pub fn uuid(&self) -> Uuid {
        *self.id.as_uuid()
    }
    fn customer_ids(&self) -> BTreeSet<Uuid> {
        self.customers.iter().map(|c| c.id).collect()
    }
    fn order_ids(&self) -> BTreeSet<Uuid> {
        self.orders.iter().map(|o| o.id).collect()
    }
}

/// Seeds a storefront through its own TenantConnection: `names` customers (the first has
/// no orders), `orders_each` orders with one item each for the others, one cart each.
pub async fn seed(
    db: &TenantConnection,
    prefix: &str,
    names: &[&str],
    orders_each: usize,
) -> Seeded {
    let repo = CustomerRepository::new(db);
    let now = Utc::now();
    let mut customers = Vec::new();
    let mut orders = Vec::new();
    let mut carts = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let email = if *name == "shared" {
            "shared@example.com".to_owned()
        } else {
            format!("{prefix}-{name}@example.com")
        };
        let c = repo
            .create(NewCustomer {
                email,
                first_name: name.to_string(),
                last_name: prefix.to_owned(),
                phone: None,
            })
            .await
            .expect("create customer");
        customer_address::ActiveModel {
            id: Set(Uuid::new_v4()),
            customer_id: Set(c.id),
            line1: Set(format!("{i} Main St")),
            city: Set("Springfield".into()),
            postal_code: Set("12345".into()),
            country_code: Set("US".into()),
            is_default: Set(true),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("insert address");
        if i > 0 {
            for k in 0..orders_each {
                let o = order::ActiveModel {
                    id: Set(Uuid::new_v4()),
                    customer_id: Set(c.id),
                    status: Set("paid".into()),
                    total_cents: Set(1000 * (k as i64 + 1)),
                    currency: Set("EUR".into()),
                    created_at: Set(now),
                    updated_at: Set(now),
                    ..Default::default()
                }
                .insert(db)
                .await
                .expect("insert order");
                // insert_many path for the items.
                OrderItem::insert_many([order_item::ActiveModel {
                    id: Set(Uuid::new_v4()),
                    order_id: Set(o.id),
                    sku: Set(format!("SKU-{k}")),
                    quantity: Set(1),
                    unit_price_cents: Set(o.total_cents),
                    created_at: Set(now),
                    ..Default::default()
                }])
                .exec(db)
                .await
                .expect("insert_many items");
                orders.push(o);
            }
        }
        let cart = shopping_cart::ActiveModel {
            id: Set(Uuid::new_v4()),
            customer_id: Set(Some(c.id)),
            status: Set("open".into()),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("insert cart");
        cart_item::ActiveModel {
            id: Set(Uuid::new_v4()),
            cart_id: Set(cart.id),
            sku: Set("SKU-CART".into()),
            quantity: Set(2),
            created_at: Set(now),
            ..Default::default()
        }
        .insert(db)
        .await
        .expect("insert cart item");
        carts.push(cart);
        customers.push(c);
    }
    Seeded {
        id: db.storefront(),
        customers,
        orders,
        carts,
    }
}

/// Every row of one storefront in every scoped table, read through its own connection
/// (wherever it is placed) with the filter also written by hand.
pub async fn snapshot(db: &TenantConnection) -> Vec<JsonValue> {
    let s = *db.storefront().as_uuid();
    let mut rows = Vec::new();
    macro_rules! dump {
        ($e:ty, $m:ident) => {
            rows.extend(
                <$e>::find()
                    .filter($m::Column::StorefrontId.eq(s))
                    .order_by_asc($m::Column::Id)
                    .into_json()
                    .all(db)
                    .await
                    .expect("snapshot"),
            );
        };
    }
    dump!(Customer, customer);
    dump!(CustomerAddress, customer_address);
    dump!(Order, order);
    dump!(OrderItem, order_item);
    dump!(ShoppingCart, shopping_cart);
    dump!(CartItem, cart_item);
    rows
}

fn refusal(err: &DbErr) -> &str {
    TenancyError::from_db_err(err)
        .unwrap_or_else(|| panic!("expected a tenancy refusal, got {err}"))
}

#[derive(Debug, FromQueryResult)]
struct IdRow {
    id: Uuid,
}

async fn raw_ids(db: &TenantConnection, sql: &str, values: Vec<sea_orm::Value>) -> Vec<Uuid> {
    let backend = db.get_database_backend();
    IdRow::find_by_statement(stmt(backend, sql, values))
        .all(db)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .map(|r| r.id)
        .collect()
}

/// Reads through every call path see exactly the storefront's own rows.
/// `globals_joinable`: whether scoped tables can be joined with global ones in one
/// statement (not for a storefront in its own database, where such a statement is
/// refused).
pub async fn check_reads(
    backend: Backend,
    db: &TenantConnection,
    me: &Seeded,
    other: &Seeded,
    globals_joinable: bool,
) {
    let ctx = format!("{backend} storefront {}", me.id);
    let mine = me.uuid();

    // find / filter / one / all
    let all = Customer::find().all(db).await.unwrap();
    assert_eq!(
        all.iter().map(|c| c.id).collect::<BTreeSet<_>>(),
        me.customer_ids(),
        "{ctx}: find().all()"
    );
    let shared = Customer::find()
        .filter(customer::Column::Email.eq("shared@example.com"))
        .one(db)
        .await
        .unwrap();
    assert_eq!(
        shared.as_ref().map(|c| c.storefront_id),
        me.customers.first().map(|_| mine),
        "{ctx}: one() by an email both storefronts use"
    );
    for theirs in &other.customers {
        assert!(
            Customer::find_by_id(theirs.id)
                .one(db)
                .await
                .unwrap()
                .is_none(),
            "{ctx}: find_by_id of another storefront's customer"
        );
    }
    let repo = CustomerRepository::new(db);
    assert_eq!(
        repo.count().await.unwrap(),
        me.customers.len() as u64,
        "{ctx}: repository count"
    );

    // find_related from a model of the other storefront finds nothing.
    for theirs in &other.customers {
        assert!(
            theirs.find_related(Order).all(db).await.unwrap().is_empty(),
            "{ctx}: find_related from another storefront's model"
        );
    }
    let mut related = BTreeSet::new();
    for c in &me.customers {
        related.extend(
            c.find_related(Order)
                .all(db)
                .await
                .unwrap()
                .into_iter()
                .map(|o| o.id),
        );
    }
    assert_eq!(related, me.order_ids(), "{ctx}: find_related");

    // find_also_related (LEFT JOIN), find_with_related, loaders.
    let pairs = Customer::find()
        .find_also_related(Order)
        .all(db)
        .await
        .unwrap();
    assert!(pairs.iter().all(
        |(c, o)| c.storefront_id == mine && o.as_ref().is_none_or(|o| o.storefront_id == mine)
    ));
    assert_eq!(
        pairs.iter().filter(|(_, o)| o.is_none()).count(),
        me.customers
            .iter()
            .filter(|c| !me.orders.iter().any(|o| o.customer_id == c.id))
            .count(),
        "{ctx}: find_also_related keeps customers without orders (LEFT JOIN stays LEFT)"
    );
    let with = Customer::find()
        .find_with_related(Order)
        .all(db)
        .await
        .unwrap();
    assert_eq!(with.len(), me.customers.len(), "{ctx}: find_with_related");
    assert_eq!(
        with.iter().map(|(_, o)| o.len()).sum::<usize>(),
        me.orders.len()
    );
    let loaded = all.load_many(Order, db).await.unwrap();
    assert_eq!(
        loaded.iter().map(Vec::len).sum::<usize>(),
        me.orders.len(),
        "{ctx}: load_many"
    );
    let owners = Order::find()
        .all(db)
        .await
        .unwrap()
        .load_one(Customer, db)
        .await
        .unwrap();
    assert!(
        owners
            .iter()
            .all(|c| c.as_ref().is_some_and(|c| c.storefront_id == mine)),
        "{ctx}: load_one"
    );
    let items = OrderItem::find()
        .find_also_related(Order)
        .all(db)
        .await
        .unwrap();
    assert_eq!(items.len(), me.orders.len(), "{ctx}: order items");

    // paginator, count, exists, cursor
    let pages = Customer::find()
        .order_by_asc(customer::Column::Id)
        .paginate(db, 2);
    assert_eq!(
        pages.num_items().await.unwrap(),
        me.customers.len() as u64,
        "{ctx}: num_items"
    );
    let mut paged = BTreeSet::new();
    for p in 0..pages.num_pages().await.unwrap() {
        paged.extend(pages.fetch_page(p).await.unwrap().into_iter().map(|c| c.id));
    }
    assert_eq!(paged, me.customer_ids(), "{ctx}: paginator pages");
    assert_eq!(
        Order::find().count(db).await.unwrap(),
        me.orders.len() as u64,
        "{ctx}: count"
    );
    assert_eq!(
        Customer::find().exists(db).await.unwrap(),
        !me.customers.is_empty(),
        "{ctx}: exists"
    );
    if let Some(theirs) = other.customers.first() {
        assert!(
            !Customer::find_by_id(theirs.id).exists(db).await.unwrap(),
            "{ctx}: exists on another storefront's id"
        );
    }
    let cursor = Customer::find()
        .cursor_by(customer::Column::Id)
        .first(100)
        .all(db)
        .await
        .unwrap();
    assert_eq!(cursor.len(), me.customers.len(), "{ctx}: cursor");

    // streams, on the connection and in a transaction
    let streamed: Vec<customer::Model> = Customer::find()
        .stream(db)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    assert_eq!(streamed.len(), me.customers.len(), "{ctx}: stream");
    let txn = db.begin().await.unwrap();
    {
        let in_txn: Vec<order::Model> = Order::find()
            .stream(&txn)
            .await
            .unwrap()
            .try_collect()
            .await
            .unwrap();
        assert_eq!(
            in_txn.len(),
            me.orders.len(),
            "{ctx}: stream in a transaction"
        );
    }
    txn.commit().await.unwrap();

    // Raw SQL: aliases, OR precedence, upper case, quoting, joins, subqueries, CTE, UNION.
    let email = || vec!["shared@example.com".into()];
    let expect_all = me.customer_ids();
    let cases: Vec<(&str, Vec<sea_orm::Value>, BTreeSet<Uuid>)> = vec![
        ("SELECT c.id FROM customers c WHERE c.email = ? OR 1 = 1", email(), expect_all.clone()),
        ("SELECT c.id AS id FROM customers AS c WHERE (c.email = ?) OR c.email <> ''", email(), expect_all.clone()),
        ("SELECT \"id\" FROM \"customers\" WHERE 1 = 1 OR \"email\" = ?", email(), expect_all.clone()),
        (
            "SELECT id FROM customers WHERE id IN (SELECT customer_id FROM orders WHERE total_cents > ? OR 1 = 1)",
            vec![0i64.into()],
            me.orders.iter().map(|o| o.customer_id).collect(),
        ),
        (
            "SELECT c.id FROM customers c WHERE EXISTS (SELECT 1 FROM orders o WHERE o.customer_id = c.id OR 1 = 1)",
            vec![],
            if me.orders.is_empty() { BTreeSet::new() } else { expect_all.clone() },
        ),
        (
            "WITH big AS (SELECT customer_id FROM orders WHERE total_cents >= ?) SELECT c.id FROM customers c JOIN big ON big.customer_id = c.id",
            vec![0i64.into()],
            me.orders.iter().map(|o| o.customer_id).collect(),
        ),
        (
            "SELECT id FROM customers UNION SELECT id FROM orders",
            vec![],
            me.customer_ids().union(&me.order_ids()).copied().collect(),
        ),
        (
            "SELECT a.customer_id AS id FROM customer_addresses a JOIN countries k ON k.code = a.country_code WHERE k.code = ?",
            vec!["US".into()],
            expect_all.clone(),
        ),
        (
            "SELECT x.id FROM (SELECT id, email FROM customers) x WHERE x.email LIKE ? OR 1 = 1",
            vec!["%".into()],
            expect_all.clone(),
        ),
    ];
    for (sql, values, expected) in cases {
        if !globals_joinable && sql.contains("countries") {
            // In its own database the global table is not there: refused, not wrong.
            let backend = db.get_database_backend();
            let err = IdRow::find_by_statement(stmt(backend, sql, values))
                .all(db)
                .await
                .unwrap_err();
            assert!(refusal(&err).contains("`countries`"), "{ctx}: {sql}: {err}");
            continue;
        }
        let got: BTreeSet<Uuid> = raw_ids(db, sql, values).await.into_iter().collect();
        assert_eq!(got, expected, "{ctx}: {sql}");
    }
    if backend != Backend::MySql {
        // MySQL table names are case-sensitive on Linux; elsewhere they are not.
        let got = raw_ids(db, "SELECT ID AS id FROM CUSTOMERS WHERE 1 = 1", vec![]).await;
        assert_eq!(
            got.into_iter().collect::<BTreeSet<_>>(),
            expect_all,
            "{ctx}: upper case"
        );
    }

    // LEFT JOIN ON 1 = 1 would pair every customer with every order in the database.
    #[derive(Debug, FromQueryResult)]
    struct Pair {
        cid: Uuid,
        osf: Option<Uuid>,
    }
    let pairs = Pair::find_by_statement(stmt(
        db.get_database_backend(),
        "SELECT c.id AS cid, o.storefront_id AS osf FROM customers c LEFT JOIN orders o ON 1 = 1",
        [],
    ))
    .all(db)
    .await
    .unwrap();
    let expected = me.customers.len() * me.orders.len().max(1);
    assert_eq!(pairs.len(), expected, "{ctx}: LEFT JOIN ON 1 = 1 row count");
    assert!(pairs
        .iter()
        .all(|p| me.customer_ids().contains(&p.cid) && p.osf.is_none_or(|s| s == mine)));

    // Global table: passes through, every storefront reads all of it.
    assert_eq!(
        Country::find().count(db).await.unwrap(),
        2,
        "{ctx}: global countries"
    );
}

/// Writes by `me`, including attempts on `victim`'s rows, confined to `me`.
pub async fn check_writes(backend: Backend, tenancy: &Tenancy, me: &Seeded, victim: &Seeded) {
    let ctx = format!("{backend} writes by {}", me.id);
    let db = tenancy.connection(me.id);
    let victim_db = tenancy.connection(victim.id);
    let b = db.get_database_backend();
    let mine = me.uuid();
    let before = snapshot(&victim_db).await;
    let theirs = victim.customers[0].clone();

    // ActiveModel update / save / delete of the victim's row: nothing happens to it.
    let mut active: customer::ActiveModel = theirs.clone().into();
    active.first_name = Set("pwned".into());
    assert!(
        active.clone().update(&db).await.is_err(),
        "{ctx}: update of another storefront's model"
    );
    let _ = active.save(&db).await;
    let deleted = theirs.clone().delete(&db).await.unwrap();
    assert_eq!(
        deleted.rows_affected, 0,
        "{ctx}: delete of another storefront's model"
    );

    // update_many / delete_many affect only mine.
    let renamed = Customer::update_many()
        .col_expr(customer::Column::LastName, Expr::value("renamed"))
        .exec(&db)
        .await
        .unwrap();
    assert_eq!(
        renamed.rows_affected,
        me.customers.len() as u64,
        "{ctx}: update_many"
    );
    let gone = CartItem::delete_many().exec(&db).await.unwrap();
    assert_eq!(
        gone.rows_affected,
        me.carts.len() as u64,
        "{ctx}: delete_many"
    );

    // Upsert whose primary key collides with the victim's row.
    let now = Utc::now();
    let colliding = customer::ActiveModel {
        id: Set(theirs.id),
        storefront_id: NotSet,
        email: Set("collide@example.com".into()),
        first_name: Set("collide".into()),
        last_name: Set("collide".into()),
        phone: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    };
    let _ = Customer::insert(colliding)
        .on_conflict(
            OnConflict::column(customer::Column::Id)
                .update_columns([customer::Column::FirstName, customer::Column::Email])
                .to_owned(),
        )
        .exec_without_returning(&db)
        .await;
    // Sharing a table with the victim, the upsert neither inserts nor updates; in another
    // placement it simply inserts my own row. Either way the victim's row is untouched
    // (checked by the snapshot at the end) and what I see is mine.
    if let Some(row) = Customer::find_by_id(theirs.id).one(&db).await.unwrap() {
        assert_eq!(row.storefront_id, mine, "{ctx}: colliding upsert");
    }

    // Upsert on my own (storefront_id, email) updates my row only.
    let mine_shared = me
        .customers
        .iter()
        .find(|c| c.email == "shared@example.com");
    if mine_shared.is_some() {
        let upsert = customer::ActiveModel {
            id: Set(Uuid::new_v4()),
            storefront_id: NotSet,
            email: Set("shared@example.com".into()),
            first_name: Set("upserted".into()),
            last_name: Set("x".into()),
            phone: Set(None),
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
        };
        Customer::insert(upsert)
            .on_conflict(
                OnConflict::columns([customer::Column::StorefrontId, customer::Column::Email])
                    .update_column(customer::Column::FirstName)
                    .to_owned(),
            )
            .exec_without_returning(&db)
            .await
            .unwrap_or_else(|e| panic!("{ctx}: own upsert: {e}"));
        let got = CustomerRepository::new(&db)
            .get_by_email("shared@example.com")
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got.first_name, "upserted", "{ctx}: own upsert");
    }

    // INSERT ... SELECT from an email both storefronts use: only my customer is selected.
    let new_cart = Uuid::new_v4();
    let inserted = db
        .execute_raw(stmt(
            b,
            "INSERT INTO shopping_carts (id, customer_id, status, created_at, updated_at) \
             SELECT ?, id, 'copied', created_at, updated_at FROM customers WHERE email = ? OR 1 = 0",
            [new_cart.into(), "shared@example.com".into()],
        ))
        .await
        .unwrap_or_else(|e| panic!("{ctx}: INSERT ... SELECT: {e}"));
    assert_eq!(
        inserted.rows_affected(),
        u64::from(mine_shared.is_some()),
        "{ctx}: INSERT ... SELECT"
    );
    if mine_shared.is_some() {
        let cart = ShoppingCart::find_by_id(new_cart)
            .one(&db)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            cart.storefront_id, mine,
            "{ctx}: INSERT ... SELECT sets the tenant"
        );
    }

    // Writing another storefront's id into the tenant column is refused.
    let forged = customer::ActiveModel {
        id: Set(Uuid::new_v4()),
        storefront_id: Set(victim.uuid()),
        email: Set("forged@example.com".into()),
        first_name: Set("f".into()),
        last_name: Set("f".into()),
        phone: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    };
    let err = forged.clone().insert(&db).await.unwrap_err();
    assert!(refusal(&err).contains("customers"), "{ctx}: {err}");
    let mut own = forged;
    own.storefront_id = Set(mine);
    own.email = Set("explicit-own@example.com".into());
    own.insert(&db)
        .await
        .unwrap_or_else(|e| panic!("{ctx}: explicit own tenant id: {e}"));

    let err = Customer::update_many()
        .col_expr(customer::Column::StorefrontId, Expr::value(victim.uuid()))
        .exec(&db)
        .await
        .unwrap_err();
    assert!(refusal(&err).contains("storefront_id"), "{ctx}: {err}");
    let err = db
        .execute_raw(stmt(
            b,
            "UPDATE customers SET storefront_id = ? WHERE 1 = 1",
            [victim.uuid().into()],
        ))
        .await
        .unwrap_err();
    refusal(&err);

    // Raw UPDATE / DELETE with OR: confined anyway.
    let customers_mine = Customer::find().count(&db).await.unwrap();
    let updated = db
        .execute_raw(stmt(
            b,
            "UPDATE customers SET phone = ? WHERE email = ? OR 1 = 1",
            ["555".into(), "x".into()],
        ))
        .await
        .unwrap();
    assert_eq!(
        updated.rows_affected(),
        customers_mine,
        "{ctx}: raw UPDATE with OR"
    );
    let carts_mine = ShoppingCart::find().count(&db).await.unwrap();
    let deleted = db
        .execute_raw(stmt(
            b,
            "DELETE FROM shopping_carts WHERE status = ? OR 1 = 1",
            ["none".into()],
        ))
        .await
        .unwrap();
    assert_eq!(
        deleted.rows_affected(),
        carts_mine,
        "{ctx}: raw DELETE with OR"
    );

    // Transactions with nested savepoints.
    let txn = db.begin().await.unwrap();
    let keep = shopping_cart::ActiveModel {
        id: Set(Uuid::new_v4()),
        customer_id: Set(None),
        status: Set("kept".into()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&txn)
    .await
    .unwrap();
    let nested = txn.begin().await.unwrap();
    let dropped = shopping_cart::ActiveModel {
        id: Set(Uuid::new_v4()),
        customer_id: Set(None),
        status: Set("dropped".into()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&nested)
    .await
    .unwrap();
    assert_eq!(
        ShoppingCart::find().count(&nested).await.unwrap(),
        2,
        "{ctx}: reads in a savepoint"
    );
    nested.rollback().await.unwrap();
    txn.commit().await.unwrap();
    assert!(ShoppingCart::find_by_id(keep.id)
        .one(&db)
        .await
        .unwrap()
        .is_some());
    assert!(ShoppingCart::find_by_id(dropped.id)
        .one(&db)
        .await
        .unwrap()
        .is_none());
    let counted = db
        .transaction::<_, _, DbErr>(|txn| {
            Box::pin(async move { Customer::find().count(txn).await })
        })
        .await
        .unwrap();
    assert_eq!(
        counted,
        Customer::find().count(&db).await.unwrap(),
        "{ctx}: transaction closure"
    );

    // Statements that cannot be confined are refused, and did nothing.
    // Each refusal names what was refused: the statement kind, or why it cannot be checked.
    let refused = [
        ("DROP TABLE customers", "DROP TABLE"),
        ("DELETE FROM customers; DELETE FROM orders", "2 statements"),
        ("SELEKT * FROM customers", "could not be parsed"),
        ("CREATE INDEX ix_evil ON customers (email)", "CREATE INDEX"),
    ];
    for (sql, needle) in refused {
        let err = db.execute_unprepared(sql).await.unwrap_err();
        assert!(refusal(&err).contains(needle), "{ctx}: {sql}: {err}");
    }
    if backend == Backend::MySql {
        let err = db
            .execute_raw(stmt(
                b,
                "REPLACE INTO customers (id, email) VALUES (?, ?)",
                [theirs.id.into(), "r".into()],
            ))
            .await
            .unwrap_err();
        assert!(refusal(&err).contains("REPLACE"), "{ctx}: {err}");
    }
    assert!(
        Customer::find().count(&db).await.unwrap() > 0,
        "{ctx}: the refused statements left the table and its rows alone"
    );

    // The victim's rows are exactly as they were.
    assert_eq!(
        snapshot(&victim_db).await,
        before,
        "{ctx}: victim's rows changed"
    );
}
