//! The baseline for the load run: the same customer routes written on plain SeaORM, with the
//! storefront filter written by hand in every query and every storefront in the shared
//! tables. It is what a team writes without the framework; `docs/benchmarks.md` compares the
//! two. Not for production: one forgotten filter here is a cross-storefront leak.

use axum::{
    extract::{Path, Query, State},
    http::{HeaderMap, StatusCode},
    routing::get,
    Json, Router,
};
use chrono::Utc;
use entities::{customer, prelude::Customer};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait,
    PaginatorTrait, QueryFilter, QueryOrder,
};
use serde::Deserialize;
use uuid::Uuid;

use crate::{api::Page, error::ApiError};

/// The baseline routes over `db`.
pub fn routes(db: DatabaseConnection) -> Router {
    Router::new()
        .route("/customers", get(list).post(create))
        .route("/customers/{id}", get(one))
        .with_state(db)
}

fn storefront(headers: &HeaderMap) -> Result<Uuid, ApiError> {
    headers
        .get("x-storefront")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<Uuid>().ok())
        .filter(|u| !u.is_nil())
        .ok_or_else(|| ApiError::bad_request("missing or malformed x-storefront header"))
}

async fn list(
    State(db): State<DatabaseConnection>,
    headers: HeaderMap,
    Query(p): Query<Page>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let sf = storefront(&headers)?;
    let paginator = Customer::find()
        .filter(customer::Column::StorefrontId.eq(sf))
        .filter(customer::Column::DeletedAt.is_null())
        .order_by_desc(customer::Column::CreatedAt)
        .order_by_asc(customer::Column::Id)
        .paginate(&db, p.per_page.clamp(1, 200));
    let total = paginator.num_items().await?;
    let customers = paginator.fetch_page(p.page).await?;
    Ok(Json(
        serde_json::json!({ "total": total, "customers": customers }),
    ))
}

async fn one(
    State(db): State<DatabaseConnection>,
    headers: HeaderMap,
    Path(id): Path<Uuid>,
) -> Result<Json<customer::Model>, ApiError> {
    let sf = storefront(&headers)?;
    Customer::find_by_id(id)
        .filter(customer::Column::StorefrontId.eq(sf))
        .filter(customer::Column::DeletedAt.is_null())
        .one(&db)
        .await?
        .map(Json)
        .ok_or_else(|| ApiError::not_found(format!("no customer {id}")))
}

#[derive(Deserialize)]
struct CustomerIn {
    email: String,
    first_name: String,
    last_name: String,
    phone: Option<String>,
}

async fn create(
    State(db): State<DatabaseConnection>,
    headers: HeaderMap,
    Json(c): Json<CustomerIn>,
) -> Result<(StatusCode, Json<customer::Model>), ApiError> {
    let sf = storefront(&headers)?;
    let now = Utc::now();
    let created = customer::ActiveModel {
        id: Set(Uuid::new_v4()),
        storefront_id: Set(sf),
        email: Set(c.email),
        first_name: Set(c.first_name),
        last_name: Set(c.last_name),
        phone: Set(c.phone),
        created_at: Set(now),
        updated_at: Set(now),
        deleted_at: Set(None),
    }
    .insert(&db)
    .await?;
    Ok((StatusCode::CREATED, Json(created)))
}
