//! The storefront API. Every handler takes a [`Tenant`] and uses it as a plain SeaORM
//! connection: there is no storefront id, filter or placement anywhere in this file.

use axum::{
    extract::{Path, Query},
    http::StatusCode,
    routing::{get, post},
    Json, Router,
};
use chrono::Utc;
use entities::{
    cart_item, customer, customer_address, order, order_item,
    prelude::*,
    repository::{CustomerRepository, NewCustomer},
    shopping_cart,
};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};
use serde::{Deserialize, Serialize};
use tenancy_core::http::Tenant;
use uuid::Uuid;

use crate::error::ApiError;

/// The API routes (to be wrapped in a `StorefrontLayer`).
pub fn routes() -> Router {
    Router::new()
        .route("/customers", get(list_customers).post(create_customer))
        .route(
            "/customers/{id}",
            get(get_customer)
                .patch(rename_customer)
                .delete(delete_customer),
        )
        .route(
            "/customers/{id}/addresses",
            post(add_address).get(addresses),
        )
        .route("/carts", post(create_cart))
        .route("/carts/{id}", get(get_cart))
        .route("/carts/{id}/items", post(add_cart_item))
        .route("/orders", post(place_order).get(list_orders))
        .route("/orders/{id}", get(get_order))
}

/// `?page=&per_page=` (0-based page, 20 per page by default).
#[derive(Deserialize)]
pub(crate) struct Page {
    #[serde(default)]
    pub(crate) page: u64,
    #[serde(default = "per_page")]
    pub(crate) per_page: u64,
}

fn per_page() -> u64 {
    20
}

/// The deepest page a list serves (its offset stays far inside the database's integers).
const MAX_PAGE: u64 = 100_000;

impl Page {
    /// `(page, per_page)`, refused with a 422 naming the field when out of range.
    fn checked(&self) -> Result<(u64, u64), ApiError> {
        if !(1..=200).contains(&self.per_page) {
            return Err(ApiError::unprocessable(format!(
                "`per_page` must be 1 to 200, not {}",
                self.per_page
            )));
        }
        if self.page > MAX_PAGE {
            return Err(ApiError::unprocessable(format!(
                "`page` must be at most {MAX_PAGE}, not {}",
                self.page
            )));
        }
        Ok((self.page, self.per_page))
    }
}

/// Refuses `value` (the field `field`) when it is longer than `max` characters: the
/// columns are bounded (MySQL's `VARCHAR(255)`, the SKU's 64), and a value a column cannot
/// hold is the client's mistake, not the server's.
fn bounded(field: &str, value: &str, max: usize) -> Result<(), ApiError> {
    let n = value.chars().count();
    if n > max {
        return Err(ApiError::unprocessable(format!(
            "`{field}` has {n} characters; at most {max}"
        )));
    }
    // PostgreSQL's text holds no NUL, and no field here wants a control character.
    if value.chars().any(char::is_control) {
        return Err(ApiError::unprocessable(format!(
            "`{field}` contains a control character"
        )));
    }
    Ok(())
}

/// The most items one order may carry.
const MAX_ORDER_ITEMS: usize = 100;
/// The highest unit price, in cents (ten million currency units): any order's total
/// (100 items of 10,000 at this price) stays far inside an `i64`.
const MAX_UNIT_PRICE_CENTS: i64 = 1_000_000_000;
/// The largest quantity of one item.
const MAX_QUANTITY: i32 = 10_000;

#[derive(Serialize)]
struct Customers {
    total: u64,
    customers: Vec<customer::Model>,
}

async fn list_customers(
    tenant: Tenant,
    Query(p): Query<Page>,
) -> Result<Json<Customers>, ApiError> {
    let (page, per_page) = p.checked()?;
    let (customers, total) = CustomerRepository::new(&*tenant)
        .list(page, per_page)
        .await?;
    Ok(Json(Customers { total, customers }))
}

#[derive(Deserialize)]
struct CustomerIn {
    email: String,
    first_name: String,
    last_name: String,
    phone: Option<String>,
}

async fn create_customer(
    tenant: Tenant,
    Json(c): Json<CustomerIn>,
) -> Result<(StatusCode, Json<customer::Model>), ApiError> {
    if !c.email.contains('@') {
        return Err(ApiError::unprocessable("email must contain @"));
    }
    bounded("email", &c.email, 254)?;
    bounded("first_name", &c.first_name, 100)?;
    bounded("last_name", &c.last_name, 100)?;
    if let Some(phone) = &c.phone {
        bounded("phone", phone, 32)?;
    }
    let created = CustomerRepository::new(&*tenant)
        .create(NewCustomer {
            email: c.email,
            first_name: c.first_name,
            last_name: c.last_name,
            phone: c.phone,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

async fn customer_or_404(tenant: &Tenant, id: Uuid) -> Result<customer::Model, ApiError> {
    CustomerRepository::new(&**tenant)
        .get_by_id(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no customer {id}")))
}

async fn get_customer(
    tenant: Tenant,
    Path(id): Path<Uuid>,
) -> Result<Json<customer::Model>, ApiError> {
    Ok(Json(customer_or_404(&tenant, id).await?))
}

#[derive(Deserialize)]
struct Rename {
    first_name: String,
    last_name: String,
}

async fn rename_customer(
    tenant: Tenant,
    Path(id): Path<Uuid>,
    Json(r): Json<Rename>,
) -> Result<Json<customer::Model>, ApiError> {
    bounded("first_name", &r.first_name, 100)?;
    bounded("last_name", &r.last_name, 100)?;
    CustomerRepository::new(&*tenant)
        .rename(id, &r.first_name, &r.last_name)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no customer {id}")))
}

async fn delete_customer(tenant: Tenant, Path(id): Path<Uuid>) -> Result<StatusCode, ApiError> {
    match CustomerRepository::new(&*tenant).soft_delete(id).await? {
        true => Ok(StatusCode::NO_CONTENT),
        false => Err(ApiError::not_found(format!("no customer {id}"))),
    }
}

#[derive(Deserialize)]
struct AddressIn {
    line1: String,
    city: String,
    postal_code: String,
    country_code: String,
    #[serde(default)]
    is_default: bool,
}

async fn add_address(
    tenant: Tenant,
    Path(id): Path<Uuid>,
    Json(a): Json<AddressIn>,
) -> Result<(StatusCode, Json<customer_address::Model>), ApiError> {
    bounded("line1", &a.line1, 200)?;
    bounded("city", &a.city, 100)?;
    bounded("postal_code", &a.postal_code, 20)?;
    bounded("country_code", &a.country_code, 2)?;
    customer_or_404(&tenant, id).await?;
    // Countries are global: the same table for every storefront.
    if Country::find_by_id(a.country_code.clone())
        .one(&*tenant)
        .await?
        .is_none()
    {
        return Err(ApiError::unprocessable(format!(
            "unknown country {}",
            a.country_code
        )));
    }
    let now = Utc::now();
    let address = customer_address::ActiveModel {
        id: Set(Uuid::new_v4()),
        customer_id: Set(id),
        line1: Set(a.line1),
        city: Set(a.city),
        postal_code: Set(a.postal_code),
        country_code: Set(a.country_code),
        is_default: Set(a.is_default),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&*tenant)
    .await?;
    Ok((StatusCode::CREATED, Json(address)))
}

async fn addresses(
    tenant: Tenant,
    Path(id): Path<Uuid>,
) -> Result<Json<Vec<customer_address::Model>>, ApiError> {
    customer_or_404(&tenant, id).await?;
    Ok(Json(
        CustomerAddress::find()
            .filter(customer_address::Column::CustomerId.eq(id))
            .order_by_asc(customer_address::Column::CreatedAt)
            .all(&*tenant)
            .await?,
    ))
}

#[derive(Deserialize)]
struct CartIn {
    customer_id: Option<Uuid>,
}

async fn create_cart(
    tenant: Tenant,
    Json(c): Json<CartIn>,
) -> Result<(StatusCode, Json<shopping_cart::Model>), ApiError> {
    if let Some(id) = c.customer_id {
        customer_or_404(&tenant, id).await?;
    }
    let now = Utc::now();
    let cart = shopping_cart::ActiveModel {
        id: Set(Uuid::new_v4()),
        customer_id: Set(c.customer_id),
        status: Set("open".into()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&*tenant)
    .await?;
    Ok((StatusCode::CREATED, Json(cart)))
}

#[derive(Serialize)]
struct Cart {
    #[serde(flatten)]
    cart: shopping_cart::Model,
    items: Vec<cart_item::Model>,
}

async fn get_cart(tenant: Tenant, Path(id): Path<Uuid>) -> Result<Json<Cart>, ApiError> {
    let cart = ShoppingCart::find_by_id(id)
        .one(&*tenant)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("no cart {id}")))?;
    let items = cart_item::Entity::find()
        .filter(cart_item::Column::CartId.eq(id))
        .order_by_asc(cart_item::Column::CreatedAt)
        .all(&*tenant)
        .await?;
    Ok(Json(Cart { cart, items }))
}

#[derive(Deserialize)]
struct CartItemIn {
    sku: String,
    quantity: i32,
}

async fn add_cart_item(
    tenant: Tenant,
    Path(id): Path<Uuid>,
    Json(i): Json<CartItemIn>,
) -> Result<(StatusCode, Json<cart_item::Model>), ApiError> {
    if !(1..=MAX_QUANTITY).contains(&i.quantity) {
        return Err(ApiError::unprocessable(format!(
            "`quantity` must be 1 to {MAX_QUANTITY}"
        )));
    }
    bounded("sku", &i.sku, 64)?;
    if ShoppingCart::find_by_id(id).one(&*tenant).await?.is_none() {
        return Err(ApiError::not_found(format!("no cart {id}")));
    }
    let item = cart_item::ActiveModel {
        id: Set(Uuid::new_v4()),
        cart_id: Set(id),
        sku: Set(i.sku),
        quantity: Set(i.quantity),
        created_at: Set(Utc::now()),
        ..Default::default()
    }
    .insert(&*tenant)
    .await?;
    Ok((StatusCode::CREATED, Json(item)))
}

#[derive(Clone, Deserialize)]
struct OrderIn {
    customer_id: Uuid,
    currency: String,
    items: Vec<OrderItemIn>,
}

#[derive(Clone, Deserialize)]
struct OrderItemIn {
    sku: String,
    quantity: i32,
    unit_price_cents: i64,
}

#[derive(Serialize)]
struct OrderOut {
    #[serde(flatten)]
    order: order::Model,
    items: Vec<order_item::Model>,
}

/// Places an order and its items in one transaction.
async fn place_order(
    tenant: Tenant,
    Json(o): Json<OrderIn>,
) -> Result<(StatusCode, Json<OrderOut>), ApiError> {
    if o.items.is_empty()
        || o.items
            .iter()
            .any(|i| i.quantity < 1 || i.unit_price_cents < 0)
    {
        return Err(ApiError::unprocessable(
            "an order needs items with a positive quantity and a price",
        ));
    }
    if o.items.len() > MAX_ORDER_ITEMS {
        return Err(ApiError::unprocessable(format!(
            "`items` has {} entries; an order holds at most {MAX_ORDER_ITEMS}",
            o.items.len()
        )));
    }
    if o.currency.len() != 3 || !o.currency.chars().all(|c| c.is_ascii_uppercase()) {
        return Err(ApiError::unprocessable(
            "`currency` must be a three-letter code such as EUR",
        ));
    }
    for i in &o.items {
        bounded("items[].sku", &i.sku, 64)?;
        if i.quantity > MAX_QUANTITY {
            return Err(ApiError::unprocessable(format!(
                "`items[].quantity` must be at most {MAX_QUANTITY}"
            )));
        }
        if i.unit_price_cents > MAX_UNIT_PRICE_CENTS {
            return Err(ApiError::unprocessable(format!(
                "`items[].unit_price_cents` must be at most {MAX_UNIT_PRICE_CENTS}"
            )));
        }
    }
    customer_or_404(&tenant, o.customer_id).await?;
    // Bounded above (at most 10^17), and checked all the same.
    let total = o
        .items
        .iter()
        .try_fold(0i64, |sum, i| {
            i64::from(i.quantity)
                .checked_mul(i.unit_price_cents)
                .and_then(|line| sum.checked_add(line))
        })
        .ok_or_else(|| ApiError::unprocessable("the order's total is too large"))?;
    let now = Utc::now();
    // The order and its items commit together; if a storefront move fences the
    // transaction halfway, it runs again from the start on the new placement.
    let (order, items) = tenant
        .transaction_retrying(|txn| {
            let o = o.clone();
            Box::pin(async move {
                let order = order::ActiveModel {
                    id: Set(Uuid::new_v4()),
                    customer_id: Set(o.customer_id),
                    status: Set("placed".into()),
                    total_cents: Set(total),
                    currency: Set(o.currency),
                    created_at: Set(now),
                    updated_at: Set(now),
                    ..Default::default()
                }
                .insert(txn)
                .await?;
                let mut items = Vec::with_capacity(o.items.len());
                for i in o.items {
                    items.push(
                        order_item::ActiveModel {
                            id: Set(Uuid::new_v4()),
                            order_id: Set(order.id),
                            sku: Set(i.sku),
                            quantity: Set(i.quantity),
                            unit_price_cents: Set(i.unit_price_cents),
                            created_at: Set(now),
                            ..Default::default()
                        }
                        .insert(txn)
                        .await?,
                    );
                }
                Ok::<_, sea_orm::DbErr>((order, items))
            })
        })
        .await?;
    Ok((StatusCode::CREATED, Json(OrderOut { order, items })))
}

async fn list_orders(
    tenant: Tenant,
    Query(p): Query<Page>,
) -> Result<Json<Vec<order::Model>>, ApiError> {
    use sea_orm::QuerySelect;
    let (page, per_page) = p.checked()?;
    Ok(Json(
        Order::find()
            .order_by_desc(order::Column::CreatedAt)
            .offset(page * per_page)
            .limit(per_page)
            .all(&*tenant)
            .await?,
    ))
}

async fn get_order(tenant: Tenant, Path(id): Path<Uuid>) -> Result<Json<OrderOut>, ApiError> {
    let (order, items) = Order::find_by_id(id)
        .find_with_related(OrderItem)
        .all(&*tenant)
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| ApiError::not_found(format!("no order {id}")))?;
    Ok(Json(OrderOut { order, items }))
}
