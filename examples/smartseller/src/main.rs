//! The SmartSeller service.
//!
//! ```text
//! cargo run -p smartseller                       # SQLite file in the temp dir, 3 demo storefronts
//! cargo run -p smartseller -- --database-url postgres://postgres@127.0.0.1:5432/smartseller
//! ```
//!
//! Then `curl -H 'x-storefront: <id>' localhost:3000/customers`, and open the dashboard
//! link it prints (`/admin/login?token=...`; set the token with `SMARTSELLER_ADMIN_TOKEN`).

use clap::Parser;
use smartseller::{access::AdminAccess, app, config_for, AppState};
use tenancy_core::{http::Resolve, Placement, StorefrontId, TenantType};

#[derive(Parser)]
#[command(about = "The SmartSeller example service on storefront tenancy")]
struct Args {
    /// Shared database URL (default: a SQLite file in the temp directory). The database
    /// must exist.
    #[arg(long, env = "DATABASE_URL")]
    database_url: Option<String>,
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:3000")]
    listen: String,
    /// How requests name their storefront: header:<name>, subdomain:<base>, path:<prefix>.
    #[arg(long, default_value = "header:x-storefront")]
    resolve: Resolve,
    /// Demo storefronts to provision at start, spread over the placements the backend
    /// supports (shared, schema, database). Existing ones are kept.
    #[arg(long, default_value_t = 3)]
    demo: usize,
    /// The operator token that `/admin`, its API and `/metrics` need (at least 16
    /// characters). Without one a random token is made and printed at start.
    #[arg(long, env = "SMARTSELLER_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// A host name (`host` or `host:port`) the operator side answers to, besides
    /// localhost and the listening address; repeat for several.
    #[arg(long)]
    admin_host: Vec<String>,
    /// How long a client may take to send a request's head (request line and headers)
    /// before it is disconnected.
    #[arg(long, default_value = "10s")]
    header_timeout: humantime::Duration,
    /// How long a whole request (its body included) may take before it is answered 408.
    #[arg(long, default_value = "30s")]
    request_timeout: humantime::Duration,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,sqlx=warn".into()),
        )
        .init();
    let args = Args::parse();
    let url = args.database_url.unwrap_or_else(|| {
        let path = std::env::temp_dir().join("smartseller.sqlite");
        format!("sqlite://{}?mode=rwc", path.display())
    });
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let addr = listener.local_addr()?;
    let (token, made) = match args.admin_token {
        Some(token) => (token, false),
        None => (AdminAccess::random_token(), true),
    };
    let mut hosts = AdminAccess::local_hosts(&addr);
    hosts.extend(args.admin_host);
    let admin = AdminAccess::new(&token, hosts)?;
    let state = AppState::connect(config_for(&url)?, admin).await?;
    let sqlite = url.starts_with("sqlite:");
    let kinds: &[TenantType] = if sqlite {
        &[TenantType::Shared, TenantType::Database]
    } else {
        &[TenantType::Shared, TenantType::Schema, TenantType::Database]
    };
    for i in 0..args.demo {
        // Stable ids, so restarts find the same demo storefronts.
        let id: StorefrontId = format!("5e11e700-0000-4000-8000-{:012}", i + 1).parse()?;
        let placement: Placement = state
            .config
            .placement_for(id, Some(kinds[i % kinds.len()]))?;
        let record = match state.tenancy.directory().map(|d| d.get(id)) {
            Some(get) => match get.await? {
                Some(existing) => existing,
                None => state.provision(id, Some(placement)).await?,
            },
            None => state.provision(id, Some(placement)).await?,
        };
        println!("storefront {id}: {}", record.placement.tenant_type());
    }
    let router = app(state, args.resolve.clone())?;
    println!(
        "listening on http://{addr} (storefront by {}); metrics at /metrics (Authorization: Bearer <admin token>)",
        args.resolve.describe()
    );
    if made {
        // Printed once, to the operator who started the service (never logged).
        println!(
            "dashboard: http://localhost:{}/admin/login?token={token}",
            addr.port()
        );
    } else {
        println!(
            "dashboard: http://localhost:{}/admin/login?token=<SMARTSELLER_ADMIN_TOKEN>",
            addr.port()
        );
    }
    let timeouts = smartseller::Timeouts {
        head: *args.header_timeout,
        request: *args.request_timeout,
    };
    smartseller::serve(listener, router, timeouts, async {
        let _ = tokio::signal::ctrl_c().await;
    })
    .await?;
    Ok(())
}
