//! The operator side: `/admin` (a dashboard page), its JSON API, and `/metrics`.
//!
//! These routes are not behind the storefront layer: they see every storefront, so they
//! are behind [`crate::access`]: an allowed `Host`, the operator token, JSON on every
//! `POST`.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use axum::{
    extract::{Path, State},
    http::{header, StatusCode},
    response::{Html, IntoResponse},
    routing::{get, post},
    Json, Router,
};
use migration::Migrator;
use serde::{Deserialize, Serialize};
use tenancy_core::{
    advisor::Recommendation,
    metrics,
    mover::{MoveOptions, MoveRecord, Mover},
    Placement, StorefrontId, TenantType,
};
use tokio::sync::Mutex;

use crate::{error::ApiError, AppState};

/// How long the advisor's plan (row counts of every storefront) is reused.
const PLAN_TTL: Duration = Duration::from_secs(10);

/// The advisor's last plan and when it was made.
#[derive(Default)]
pub struct PlanCache {
    at: Option<Instant>,
    plan: Vec<Recommendation>,
}

/// The operator routes, behind [`access::guard`](crate::access::guard) (host, token,
/// JSON), and the login that sets the dashboard's cookie.
pub fn routes(state: AppState) -> Router {
    let access = state.admin.clone();
    let guarded = Router::new()
        .route("/admin", get(page))
        .route("/admin/api/state", get(dashboard_state))
        .route("/admin/api/moves", post(start_move))
        .route(
            "/admin/api/moves/{storefront}/rollback",
            post(rollback_move),
        )
        .route(
            "/admin/api/moves/{storefront}/complete",
            post(complete_move),
        )
        .route("/metrics", get(prometheus))
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            access.clone(),
            crate::access::guard,
        ));
    Router::new()
        .route("/admin/login", get(crate::access::login))
        .with_state(access)
        .merge(guarded)
}

async fn page() -> Html<&'static str> {
    Html(include_str!("admin.html"))
}

/// One row of the dashboard.
#[derive(Serialize)]
struct Row {
    storefront: StorefrontId,
    placement: &'static str,
    location: String,
    state: String,
    customers: Option<u64>,
    orders: Option<u64>,
    queries: u64,
    errors: u64,
    mean_ms: f64,
    p95_ms: f64,
    recommended: Option<TenantType>,
    reason: Option<String>,
}

#[derive(Serialize)]
struct DashboardState {
    storefronts: Vec<Row>,
    moves: Vec<MoveRecord>,
}

fn location(p: &Placement) -> String {
    match p {
        Placement::Shared => "shared tables".into(),
        Placement::Schema { schema } => format!("schema {schema}"),
        Placement::Database { url } => redact_url(url),
    }
}

async fn plan(state: &AppState) -> Vec<Recommendation> {
    let mut cache = state.plan.lock().await;
    let fresh = cache.at.is_some_and(|at| at.elapsed() < PLAN_TTL);
    if !fresh {
        match state.tenancy.plan(&state.config.tenant_strategy).await {
            Ok(plan) => {
                cache.plan = plan;
                cache.at = Some(Instant::now());
            }
            Err(e) => tracing::warn!("advisor plan failed: {e}"),
        }
    }
    cache.plan.clone()
}

async fn dashboard_state(State(state): State<AppState>) -> Result<Json<DashboardState>, ApiError> {
    let directory = state
        .tenancy
        .directory()
        .ok_or_else(|| ApiError::bad_request("no directory"))?;
    // Moves first: a move recorded as switched has flipped the directory already, so the
    // directory read after it never shows the old placement next to a switched move.
    let mut moves = state.mover().list().await?;
    let records = directory.list().await?;
    let plan = plan(&state).await;
    let storefronts = records
        .iter()
        .map(|r| {
            let latency = state
                .tenancy
                .stats()
                .summary(r.storefront)
                .unwrap_or_default();
            let advice = plan.iter().find(|p| p.storefront == r.storefront);
            Row {
                storefront: r.storefront,
                placement: r.placement.tenant_type().as_str(),
                location: location(&r.placement),
                state: format!("{:?}", r.state).to_lowercase(),
                customers: advice.map(|a| a.observation.customers),
                orders: advice.map(|a| a.observation.orders),
                queries: latency.count,
                errors: latency.errors,
                mean_ms: latency.mean_micros as f64 / 1000.0,
                p95_ms: latency.p95_micros as f64 / 1000.0,
                recommended: advice.map(|a| a.recommended),
                reason: advice.map(|a| a.reason.clone()),
            }
        })
        .collect();
    moves.sort_by_key(|m| std::cmp::Reverse(m.updated_at));
    moves.truncate(20);
    // (A move record serialises its placements without their passwords.)
    Ok(Json(DashboardState { storefronts, moves }))
}

/// A move asked for from the dashboard.
#[derive(Deserialize)]
pub struct MoveRequest {
    /// The storefront.
    pub storefront: StorefrontId,
    /// `shared`, `schema` or `database` (names from the configured patterns).
    pub to: TenantType,
}

/// Starts a move in the background: copy, catch-up, validation, then the cutover. The
/// dashboard follows it through `/admin/api/state`.
async fn start_move(
    State(state): State<AppState>,
    Json(req): Json<MoveRequest>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let current = state.tenancy.placement(req.storefront).await?;
    if current.tenant_type() == req.to {
        return Err(ApiError::unprocessable(format!(
            "storefront {} is already in placement {}",
            req.storefront, req.to
        )));
    }
    let target = state.config.placement_for(req.storefront, Some(req.to))?;
    if let Some(m) = state.mover().status(req.storefront).await? {
        if !matches!(
            m.phase,
            tenancy_core::mover::Phase::Completed | tenancy_core::mover::Phase::RolledBack
        ) {
            return Err(ApiError::unprocessable(format!(
                "storefront {} already has a move in phase {}",
                req.storefront,
                m.phase.as_str()
            )));
        }
    }
    let mover = state.mover();
    let sf = req.storefront;
    tokio::spawn(async move {
        let result = async {
            mover.start::<Migrator>(sf, target).await?;
            mover.cutover::<Migrator>(sf).await
        }
        .await;
        match result {
            Ok(record) => {
                tracing::info!(storefront = %sf, phase = record.phase.as_str(), "move cut over")
            }
            Err(e) => tracing::error!(storefront = %sf, "move failed: {e}"),
        }
    });
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "storefront": sf, "to": req.to })),
    ))
}

async fn rollback_move(
    State(state): State<AppState>,
    Path(sf): Path<StorefrontId>,
) -> Result<Json<MoveRecord>, ApiError> {
    Ok(Json(state.mover().rollback(sf).await?))
}

async fn complete_move(
    State(state): State<AppState>,
    Path(sf): Path<StorefrontId>,
) -> Result<Json<MoveRecord>, ApiError> {
    Ok(Json(state.mover().complete(sf, true).await?))
}

async fn prometheus(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    let moves = state.mover().list().await?;
    let text = metrics::render(&state.tenancy, &moves).await?;
    Ok(([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text))
}

impl AppState {
    /// A mover with the configured options.
    pub fn mover(&self) -> Mover {
        Mover::new(
            &self.tenancy,
            MoveOptions::from_config(&self.config.tenant_strategy.migration_config),
        )
    }
}

/// Shared by the admin handlers.
pub type SharedPlan = Arc<Mutex<PlanCache>>;

/// `url` without its password (the admin page shows placements, never secrets).
fn redact_url(url: &str) -> String {
    tenancy_core::DatabaseUrl::parse(url)
        .map(|u| u.to_string())
        .unwrap_or_else(|_| "(not a database URL)".into())
}
