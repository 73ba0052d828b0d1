//! Load run: the SmartSeller API on the framework against the same routes on plain SeaORM
//! with hand-written filters, both on PostgreSQL, driven by `wrk` (Debian's package).
//!
//! ```text
//! cargo run --release -p smartseller --bin load -- --storefronts 1000
//! ```
//!
//! The framework side has the storefronts in mixed placements (by default 90% shared, 8% in
//! a schema of their own, 2% in a database of their own); the baseline has all of them in
//! the shared tables, which is the only placement hand-written filters give. Both serve the
//! same data from this process; wrk runs them in turn, alternating which goes first, and
//! the result is given as ratios within each round.

use std::{path::Path, process::Stdio, time::Duration};

use clap::Parser;
use migration::{Migrator, MigratorTrait};
use sea_orm::{ActiveValue::Set, ConnectionTrait, Database, EntityTrait};
use smartseller::{app, config_for, plain, AppState};
use tenancy_core::{http::Resolve, StorefrontId, TenantType};

#[derive(Parser)]
struct Args {
    /// A PostgreSQL URL with rights to create databases.
    #[arg(long, default_value = "postgres://postgres@127.0.0.1:5432/postgres")]
    postgres_url: String,
    /// Storefronts.
    #[arg(long, default_value_t = 1000)]
    storefronts: usize,
    /// Customers per storefront.
    #[arg(long, default_value_t = 20)]
    customers: usize,
    /// One storefront in this many gets a schema of its own.
    #[arg(long, default_value_t = 12)]
    schema_every: usize,
    /// One storefront in this many gets a database of its own.
    #[arg(long, default_value_t = 50)]
    database_every: usize,
    /// Length of each wrk run.
    #[arg(long, default_value = "15s")]
    duration: String,
    /// wrk connections.
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// How long a directory entry is trusted (the example's own default is 1 s, for quick
    /// moves; the framework's default is 30 s).
    #[arg(long, default_value = "30s")]
    directory_cache: humantime::Duration,
    /// wrk threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Rounds (each runs both services once).
    #[arg(long, default_value_t = 3)]
    rounds: usize,
}

/// wrk's script: 60% list a page, 30% read one customer, 10% create one, each for a random
/// storefront of the file it reads.
const SCRIPT: &str = r#"
local targets = {}
local counter = 0
function init(args)
  for line in io.lines(args[1]) do
    local sf, cid = line:match("([^,]+),([^,]+)")
    table.insert(targets, { sf = sf, cid = cid })
  end
  math.randomseed(os.time() + tonumber(tostring({}):sub(8), 16) % 100000)
end
function request()
  local t = targets[math.random(#targets)]
  local r = math.random(100)
  local headers = { ["x-storefront"] = t.sf }
  if r <= 60 then
    return wrk.format("GET", "/customers?per_page=10", headers)
  elseif r <= 90 then
    return wrk.format("GET", "/customers/" .. t.cid, headers)
  else
    counter = counter + 1
    headers["content-type"] = "application/json"
    local body = string.format('{"email":"load%d-%d-%d@example.com","first_name":"L","last_name":"T"}',
      math.random(1000000000), counter, os.time())
    return wrk.format("POST", "/customers", headers, body)
  end
end
"#;

struct Run {
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    requests: u64,
    bad: u64,
}

fn millis(text: &str) -> Option<f64> {
    let text = text.trim();
    let (num, unit) = text.split_at(text.find(|c: char| c.is_ascii_alphabetic())?);
    let n: f64 = num.parse().ok()?;
    Some(match unit {
        "us" => n / 1000.0,
        "ms" => n,
        "s" => n * 1000.0,
        "m" => n * 60_000.0,
        _ => return None,
    })
}

fn parse(out: &str) -> Option<Run> {
    let mut run = Run {
        rps: 0.0,
        p50_ms: 0.0,
        p99_ms: 0.0,
        requests: 0,
        bad: 0,
    };
    for line in out.lines() {
        let l = line.trim();
        if let Some(v) = l.strip_prefix("Requests/sec:") {
            run.rps = v.trim().parse().ok()?;
        } else if let Some(v) = l.strip_prefix("50%") {
            run.p50_ms = millis(v)?;
        } else if let Some(v) = l.strip_prefix("99%") {
            run.p99_ms = millis(v)?;
        } else if let Some(v) = l.strip_prefix("Non-2xx or 3xx responses:") {
            run.bad += v.trim().parse::<u64>().ok()?;
        } else if l.starts_with("Socket errors:") {
            run.bad += l
                .split(|c: char| !c.is_ascii_digit())
                .filter_map(|n| n.parse::<u64>().ok())
                .sum::<u64>();
        } else if l.contains(" requests in ") {
            run.requests = l.split_whitespace().next()?.parse().ok()?;
        }
    }
    (run.rps > 0.0).then_some(run)
}

async fn wrk(
    args: &Args,
    script: &Path,
    targets: &Path,
    addr: std::net::SocketAddr,
) -> Result<Run, Box<dyn std::error::Error>> {
    let out = tokio::process::Command::new("wrk")
        .args([
            format!("-t{}", args.threads),
            format!("-c{}", args.connections),
            format!("-d{}", args.duration),
            "--latency".into(),
            "-s".into(),
            script.display().to_string(),
            format!("http://{addr}"),
            "--".into(),
            targets.display().to_string(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .output()
        .await
        .map_err(|e| format!("running wrk (apt-get install wrk): {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    parse(&text).ok_or_else(|| {
        format!(
            "could not read wrk's output:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        )
        .into()
    })
}

async fn recreate(admin: &sea_orm::DatabaseConnection, name: &str) -> Result<(), sea_orm::DbErr> {
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
        .await?;
    admin
        .execute_unprepared(&format!("CREATE DATABASE \"{name}\""))
        .await?;
    Ok(())
}

/// `n` customers of `sf` (at least one), and the id of the first.
fn customers(sf: StorefrontId, n: usize) -> (uuid::Uuid, Vec<entities::customer::ActiveModel>) {
    let now = chrono::Utc::now();
    let ids: Vec<uuid::Uuid> = (0..n.max(1)).map(|_| uuid::Uuid::new_v4()).collect();
    let rows = ids
        .iter()
        .enumerate()
        .map(|(i, id)| entities::customer::ActiveModel {
            id: Set(*id),
            storefront_id: Set(*sf.as_uuid()),
            email: Set(format!("c{i}@example.com")),
            first_name: Set(format!("c{i}")),
            last_name: Set("Load".into()),
            phone: Set(None),
            created_at: Set(now - chrono::Duration::seconds(i as i64)),
            updated_at: Set(now),
            deleted_at: Set(None),
        })
        .collect();
    (ids[0], rows)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let admin = Database::connect(&args.postgres_url).await?;
    let tenancy_url = tenancy_core::DatabaseUrl::parse(&args.postgres_url)
        .expect("a database URL")
        .with_database("smartseller_load")
        .as_str()
        .to_owned();
    let plain_url = tenancy_core::DatabaseUrl::parse(&args.postgres_url)
        .expect("a database URL")
        .with_database("smartseller_load_plain")
        .as_str()
        .to_owned();
    recreate(&admin, "smartseller_load").await?;
    recreate(&admin, "smartseller_load_plain").await?;

    // The framework side: storefronts in mixed placements.
    let mut config = config_for(&tenancy_url)?;
    config.tenant_strategy.database_config.directory_cache = *args.directory_cache;
    // The load touches no operator route: a random token no one holds.
    let access = smartseller::access::AdminAccess::new(
        &smartseller::access::AdminAccess::random_token(),
        ["localhost"],
    )?;
    let state = AppState::connect(config, access).await?;
    let ids: Vec<StorefrontId> = (0..args.storefronts)
        .map(|_| StorefrontId::new_random())
        .collect();
    let mut targets = String::new();
    let started = std::time::Instant::now();
    let (mut shared, mut schema, mut database) = (0, 0, 0);
    for (i, sf) in ids.iter().enumerate() {
        let kind = if i % args.database_every == 0 {
            database += 1;
            TenantType::Database
        } else if i % args.schema_every == 0 {
            schema += 1;
            TenantType::Schema
        } else {
            shared += 1;
            TenantType::Shared
        };
        let placement = state.config.placement_for(*sf, Some(kind))?;
        state.provision(*sf, Some(placement)).await?;
        let (first, rows) = customers(*sf, args.customers);
        entities::customer::Entity::insert_many(rows)
            .exec(&state.tenancy.connection(*sf))
            .await?;
        targets.push_str(&format!("{sf},{first}\n"));
        if (i + 1) % 100 == 0 {
            eprintln!(
                "provisioned {} storefronts ({:.0?})",
                i + 1,
                started.elapsed()
            );
        }
    }
    // The baseline: the same rows, all in the shared tables.
    let plain_db = Database::connect(
        sea_orm::ConnectOptions::new(plain_url.clone())
            .max_connections(10)
            .sqlx_logging(false)
            .to_owned(),
    )
    .await?;
    Migrator::up(&plain_db, None).await?;
    for sf in &ids {
        use sea_orm::ActiveModelTrait;
        let models = entities::customer::Entity::find()
            .all(&state.tenancy.connection(*sf))
            .await?;
        let rows: Vec<entities::customer::ActiveModel> = models
            .into_iter()
            .map(|m| entities::customer::ActiveModel::from(m).reset_all())
            .collect();
        entities::customer::Entity::insert_many(rows)
            .exec(&plain_db)
            .await?;
    }
    eprintln!(
        "{} storefronts: {shared} shared, {schema} schema, {database} database; {} customers each; directory cache {}",
        ids.len(),
        args.customers,
        args.directory_cache
    );

    let dir = std::env::temp_dir().join("smartseller-load");
    std::fs::create_dir_all(&dir)?;
    let script = dir.join("mix.lua");
    let targets_file = dir.join("targets.csv");
    std::fs::write(&script, SCRIPT)?;
    std::fs::write(&targets_file, targets)?;

    let serve = |router: axum::Router| async move {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        tokio::spawn(async move { axum::serve(listener, router).await });
        Ok::<_, std::io::Error>(addr)
    };
    let framework = serve(app(state.clone(), Resolve::header("x-storefront"))?).await?;
    let baseline = serve(plain::routes(plain_db.clone())).await?;

    // Warm both (pools, caches) before measuring.
    let warm = Args {
        duration: "3s".into(),
        ..Args::parse()
    };
    wrk(&warm, &script, &targets_file, framework).await?;
    wrk(&warm, &script, &targets_file, baseline).await?;

    println!("| round | service | req/s | p50 ms | p99 ms | requests | non-2xx/errors |");
    println!("|---|---|---|---|---|---|---|");
    let (mut rps_ratio, mut p99_ratio) = (Vec::new(), Vec::new());
    for round in 0..args.rounds {
        let order: [(&str, std::net::SocketAddr); 2] = if round % 2 == 0 {
            [("framework", framework), ("plain SeaORM", baseline)]
        } else {
            [("plain SeaORM", baseline), ("framework", framework)]
        };
        let mut results = Vec::new();
        for (name, addr) in order {
            let r = wrk(&args, &script, &targets_file, addr).await?;
            println!(
                "| {} | {name} | {:.0} | {:.2} | {:.2} | {} | {} |",
                round + 1,
                r.rps,
                r.p50_ms,
                r.p99_ms,
                r.requests,
                r.bad
            );
            results.push((name, r));
        }
        let f = results
            .iter()
            .find(|(n, _)| *n == "framework")
            .map(|(_, r)| r);
        let p = results
            .iter()
            .find(|(n, _)| *n != "framework")
            .map(|(_, r)| r);
        if let (Some(f), Some(p)) = (f, p) {
            rps_ratio.push(f.rps / p.rps);
            p99_ratio.push(f.p99_ms / p.p99_ms);
        }
    }
    println!(
        "\nmedian over {} rounds: framework/plain req/s = {:.3}, p99 latency = {:.3}",
        args.rounds,
        median(rps_ratio),
        median(p99_ratio)
    );

    // Clean up: the storefront databases (schemas go with their database), then the two.
    for sf in &ids {
        if state.tenancy.placement(*sf).await?.tenant_type() == TenantType::Database {
            let _ = state.tenancy.drop_storefront(*sf, &sf.to_string()).await;
        }
    }
    let _ = plain_db.close().await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let _ = admin
        .execute_unprepared("DROP DATABASE IF EXISTS \"smartseller_load\" WITH (FORCE)")
        .await;
    let _ = admin
        .execute_unprepared("DROP DATABASE IF EXISTS \"smartseller_load_plain\" WITH (FORCE)")
        .await;
    Ok(())
}
