//! SmartSeller: the seed document's e-commerce service, on the tenancy framework.
//!
//! - [`api`]: the storefront API. Its handlers take a [`Tenant`](tenancy_core::http::Tenant)
//!   and contain no tenant logic.
//! - [`admin`]: the operator dashboard (`/admin`), its JSON API and `/metrics`.
//! - [`app`]: both, with the API behind a [`StorefrontLayer`].
//!
//! Run it with `cargo run -p smartseller` (SQLite, no server) or give it a PostgreSQL or
//! MySQL URL with `--database-url`.

#![recursion_limit = "256"]

pub mod access;
pub mod admin;
pub mod api;
pub mod error;
pub mod plain;

use std::sync::Arc;

use axum::Router;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Statement};
use tenancy_core::http::Layer;
use tenancy_core::{
    config::TenancyConfig,
    http::{Resolve, StorefrontLayer},
    Placement, StorefrontId, Tenancy, TenancyError, TenantRecord,
};

/// What every handler of the service shares.
#[derive(Clone)]
pub struct AppState {
    /// The framework handle.
    pub tenancy: Arc<Tenancy>,
    /// The configuration (patterns for new placements, move options, thresholds).
    pub config: Arc<TenancyConfig>,
    /// Who may use the operator side.
    pub admin: access::AdminAccess,
    plan: admin::SharedPlan,
}

impl AppState {
    /// Connects to the configured shared database, applies the migrations there (shared
    /// placement's tables, the directory) and makes sure the global countries exist. The
    /// operator side answers to `admin`.
    pub async fn connect(
        config: TenancyConfig,
        admin: access::AdminAccess,
    ) -> Result<Self, TenancyError> {
        let tenancy = Tenancy::connect_with(&config, entities::registry()).await?;
        Migrator::up(tenancy.shared(), None).await?;
        let backend = tenancy.shared().get_database_backend();
        let insert = match backend {
            sea_orm::DbBackend::MySql => "INSERT IGNORE INTO countries (code, name) VALUES ('US', 'United States'), ('DE', 'Germany'), ('FR', 'France')",
            _ => "INSERT INTO countries (code, name) VALUES ('US', 'United States'), ('DE', 'Germany'), ('FR', 'France') ON CONFLICT DO NOTHING",
        };
        tenancy
            .shared()
            .execute_raw(Statement::from_string(backend, insert))
            .await?;
        Ok(Self {
            tenancy: Arc::new(tenancy),
            config: Arc::new(config),
            admin,
            plan: Arc::default(),
        })
    }

    /// Provisions a storefront in `placement` (created and migrated with the app's own
    /// migrations), or in the configured default when `None`.
    pub async fn provision(
        &self,
        storefront: StorefrontId,
        placement: Option<Placement>,
    ) -> Result<TenantRecord, TenancyError> {
        let placement = match placement {
            Some(p) => p,
            None => self.config.placement_for(storefront, None)?,
        };
        self.tenancy
            .create_storefront::<Migrator>(storefront, placement)
            .await
    }
}

/// The whole service: `/admin`, `/metrics`, and the storefront API behind the storefront
/// layer (any other path).
pub fn app(state: AppState, resolve: Resolve) -> Result<Router, TenancyError> {
    let layer = StorefrontLayer::new(Arc::clone(&state.tenancy), resolve)?;
    Ok(admin::routes(state).fallback_service(layer.layer(api::routes())))
}

/// A configuration for `url` with placements named after the storefront: schema
/// `sf_<id>`, and for database placement a sibling database (PostgreSQL, MySQL) or a file
/// next to the shared one (SQLite).
pub fn config_for(url: &str) -> Result<TenancyConfig, TenancyError> {
    let database_pattern = if url.starts_with("sqlite:") {
        let path = url
            .trim_start_matches("sqlite://")
            .trim_start_matches("sqlite:")
            .split('?')
            .next()
            .unwrap_or_default();
        let dir = std::path::Path::new(path)
            .parent()
            .map(|p| p.display().to_string())
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| ".".into());
        format!("sqlite://{dir}/sf_{{storefront_id}}.sqlite?mode=rwc")
    } else {
        tenancy_core::DatabaseUrl::parse(url)
            .expect("a database URL")
            .with_database("sf_{storefront_id}")
            .as_str()
            .to_owned()
    };
    TenancyConfig::from_yaml_str(&format!(
        "tenant_strategy:\n  default_type: shared\n  migration_thresholds:\n    customers: 100000\n    orders: 500000\n  database_config:\n    shared_database_url: {url:?}\n    tenant_database_pattern: {database_pattern:?}\n    schema_name_pattern: \"sf_{{storefront_id}}\"\n    directory_cache: 1s\n  migration_config:\n    batch_size: 1000\n    dual_write_duration: 1h\n"
    ))
}

/// How long a client may take (see [`serve`]).
#[derive(Clone, Copy, Debug)]
pub struct Timeouts {
    /// To send a request's head (request line and headers); then it is disconnected.
    pub head: std::time::Duration,
    /// For a whole request, its body read and its answer made; then it is answered 408.
    pub request: std::time::Duration,
}

/// Answers 408 when the request (its body included) is not done within the limit.
async fn deadline(
    axum::extract::State(limit): axum::extract::State<std::time::Duration>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse;
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => (
            axum::http::StatusCode::REQUEST_TIMEOUT,
            axum::Json(serde_json::json!({
                "error": format!("the request took longer than {} ms", limit.as_millis())
            })),
        )
            .into_response(),
    }
}

/// Serves `router` on `listener` over HTTP/1.1 until `shutdown` resolves: like
/// `axum::serve`, but a client must send its whole request head within `timeouts.head`
/// (one that sends half its headers and waits is disconnected) and be done, body and
/// all, within `timeouts.request` (answered 408), instead of holding a connection for as
/// long as it likes. Connections already open finish on their own.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    timeouts: Timeouts,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper_util::{
        rt::{TokioIo, TokioTimer},
        service::TowerToHyperService,
    };
    let router = router.layer(axum::middleware::from_fn_with_state(
        timeouts.request,
        deadline,
    ));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(timeouts.head);
    tokio::pin!(shutdown);
    loop {
        let (stream, _) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                // Out of file descriptors and the like: wait a moment, keep serving.
                Err(e) => {
                    tracing::warn!("accepting a connection failed: {e}");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => return Ok(()),
        };
        let service = TowerToHyperService::new(router.clone());
        let connection = http
            .serve_connection(TokioIo::new(stream), service)
            .with_upgrades();
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
}
