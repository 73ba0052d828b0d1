//! The operator CLI, as a library entry point the application's migration crate calls
//! (the way sea-orm-migration's `cli::run_cli` works), so `cargo run -p migration -- <command>`
//! is the operator tool:
//!
//! ```no_run
//! // migration/src/main.rs
//! #[tokio::main]
//! async fn main() -> std::process::ExitCode {
//! #   struct Migrator;
//! #   #[async_trait::async_trait]
//! #   impl sea_orm_migration::MigratorTrait for Migrator {
//! #       fn migrations() -> Vec<Box<dyn sea_orm_migration::MigrationTrait>> { vec![] }
//! #   }
//!     tenancy_core::cli::run_cli::<Migrator>().await
//! }
//! ```
//!
//! Commands: `storefront list|create|show|drop`, `migrate up|down|status`, `plan`,
//! `config check`. Human-readable tables by default, `--json` for scripts. Exit codes:
//! 0 success, 1 the operation failed (for a fleet: at least one storefront failed),
//! 2 bad usage or configuration.

use std::{ffi::OsString, path::PathBuf, process::ExitCode, time::Duration};

use clap::{Args, Parser, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};
use sea_orm_migration::MigratorTrait;
use serde_json::{json, Value};

use crate::{
    config::TenancyConfig,
    fleet::{FleetOptions, Outcome},
    provision::latest_migration,
    tenant::redact_url,
    Placement, StorefrontId, Tenancy, TenancyError, TenantType,
};

/// Operator tool for storefront tenancy.
#[derive(Debug, Parser)]
#[command(name = "tenancy", version, about)]
pub struct Cli {
    /// Configuration file (YAML or TOML).
    #[arg(
        long,
        short,
        global = true,
        env = "TENANCY_CONFIG",
        default_value = "config/tenant_strategy.yaml"
    )]
    pub config: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create, list, show and drop storefronts.
    #[command(subcommand)]
    Storefront(StorefrontCommand),
    /// Run the application's migrations across the fleet.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Move a live storefront to another placement (copy, capture, validate, cutover).
    #[command(subcommand)]
    Move(MoveCommand),
    /// The advisor's recommendation for every storefront.
    Plan,
    /// Check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `storefront ...`
#[derive(Debug, Subcommand)]
pub enum StorefrontCommand {
    /// List every storefront in the directory.
    List,
    /// Provision a storefront (create its schema or database and run the migrations).
    Create(CreateArgs),
    /// Show one storefront.
    Show {
        /// The storefront id.
        id: String,
    },
    /// Drop a storefront and all its data.
    Drop {
        /// The storefront id.
        id: String,
        /// The storefront id again, to confirm.
        #[arg(long)]
        confirm: String,
    },
}

/// `storefront create`
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The storefront id (a UUID).
    pub id: String,
    /// Placement type (default: its tenant_overrides entry, else default_type).
    #[arg(long = "type", value_name = "shared|schema|database")]
    pub kind: Option<String>,
    /// Schema name (default: from schema_name_pattern).
    #[arg(long)]
    pub schema: Option<String>,
    /// Database URL (default: from tenant_database_pattern).
    #[arg(long)]
    pub url: Option<String>,
}

/// `migrate ...`
#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Apply pending migrations to the shared database and every storefront.
    Up(FleetArgs),
    /// Revert migrations on storefront schemas/databases (and the shared database).
    Down {
        #[command(flatten)]
        fleet: FleetArgs,
        /// How many migrations to revert.
        #[arg(long, default_value_t = 1)]
        steps: u32,
    },
    /// Which migration each storefront is at.
    Status(FleetArgs),
}

/// Narrowing and parallelism of fleet commands.
#[derive(Debug, Args)]
pub struct FleetArgs {
    /// Storefronts migrated at once.
    #[arg(long, short, default_value_t = 4)]
    pub jobs: usize,
    /// Only this storefront (repeatable).
    #[arg(long = "storefront", value_name = "ID")]
    pub storefronts: Vec<String>,
    /// Check each storefront's own migration table instead of trusting the directory.
    #[arg(long)]
    pub verify: bool,
    /// Leave the shared database alone.
    #[arg(long)]
    pub no_shared: bool,
}

/// `move ...`
#[derive(Debug, Subcommand)]
pub enum MoveCommand {
    /// Start a move and run it until it is ready for the cutover (copied, caught up,
    /// validated); `--cutover` goes on through the cutover.
    Start(MoveStartArgs),
    /// Show a storefront's latest move, or every move.
    Status {
        /// The storefront id (default: every move).
        id: Option<String>,
    },
    /// Go on with an interrupted move from its last recorded step.
    Resume {
        /// The storefront id.
        id: String,
    },
    /// Fence the source, replay the last changes, check them and flip the directory.
    Cutover {
        /// The storefront id.
        id: String,
    },
    /// Undo the move: before the cutover drop the target; after it, replay the target's
    /// changes onto the source and flip back.
    Rollback {
        /// The storefront id.
        id: String,
    },
    /// Delete the source copy of a cut-over move (after `migration_config.dual_write_duration`).
    Complete {
        /// The storefront id.
        id: String,
        /// Complete before the retention window has passed.
        #[arg(long)]
        force: bool,
    },
}

/// `move start`
#[derive(Debug, Args)]
pub struct MoveStartArgs {
    /// The storefront id.
    pub id: String,
    /// Target placement type.
    #[arg(long = "to", value_name = "shared|schema|database")]
    pub to: String,
    /// Target schema name (default: from schema_name_pattern).
    #[arg(long)]
    pub schema: Option<String>,
    /// Target database URL (default: from tenant_database_pattern).
    #[arg(long)]
    pub url: Option<String>,
    /// Go on through the cutover once ready.
    #[arg(long)]
    pub cutover: bool,
}

/// `config ...`
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Load and validate the configuration, print a summary.
    Check,
}

/// What a command produced: a human text and the same as JSON.
struct Output {
    text: String,
    json: Value,
    ok: bool,
}

/// Parses the process arguments, runs the command, prints, and returns the exit code.
/// The scoped tables are those registered by `#[tenant_scoped]` entities linked into the
/// binary; pass them explicitly with [`run_cli_with`] when the entities live in a crate the
/// binary does not otherwise use.
pub async fn run_cli<M: MigratorTrait>() -> ExitCode {
    run_cli_from::<M>(std::env::args_os(), crate::Registry::from_entities()).await
}

/// [`run_cli`] with an explicit registry of scoped tables (e.g. `entities::registry()`).
pub async fn run_cli_with<M: MigratorTrait>(registry: crate::Registry) -> ExitCode {
    run_cli_from::<M>(std::env::args_os(), registry).await
}

/// [`run_cli`] with explicit arguments (the first is the program name).
pub async fn run_cli_from<M: MigratorTrait>(
    args: impl IntoIterator<Item = OsString>,
    registry: crate::Registry,
) -> ExitCode {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    let json = cli.json;
    match run::<M>(cli, registry).await {
        Ok(out) => {
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&out.json).unwrap_or_default()
                );
            } else {
                print!("{}", out.text);
            }
            if out.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            let code = match e {
                TenancyError::Config { .. }
                | TenancyError::InvalidStorefrontId { .. }
                | TenancyError::InvalidName { .. }
                | TenancyError::NotConfirmed { .. } => 2,
                _ => 1,
            };
            if json {
                println!("{}", json!({ "error": e.to_string() }));
            }
            eprintln!("error: {e}");
            ExitCode::from(code)
        }
    }
}

fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            widths[i] = widths[i].max(cell.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut out = String::new();
        for (i, c) in cells.iter().enumerate() {
            let pad = widths[i] - c.chars().count();
            out.push_str(c);
            if i + 1 < cells.len() {
                out.push_str(&" ".repeat(pad + 2));
            }
        }
        out.trim_end().to_owned() + "\n"
    };
    let mut out = line(headers.to_vec());
    out.push_str(&line(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .iter()
            .map(String::as_str)
            .collect(),
    ));
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}

fn placement_detail(p: &Placement) -> String {
    match p {
        Placement::Shared => "-".into(),
        Placement::Schema { schema } => schema.clone(),
        Placement::Database { url } => redact_url(url),
    }
}

fn placement_json(p: &Placement) -> Value {
    match p {
        Placement::Shared => json!({ "type": "shared" }),
        Placement::Schema { schema } => json!({ "type": "schema", "schema": schema }),
        Placement::Database { url } => json!({ "type": "database", "url": redact_url(url) }),
    }
}

fn storefronts(ids: &[String]) -> Result<Option<Vec<StorefrontId>>, TenancyError> {
    if ids.is_empty() {
        return Ok(None);
    }
    ids.iter()
        .map(|s| s.parse())
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}

async fn run<M: MigratorTrait>(
    cli: Cli,
    registry: crate::Registry,
) -> Result<Output, TenancyError> {
    let config = TenancyConfig::from_file(&cli.config)?;
    if let Command::Config(ConfigCommand::Check) = &cli.command {
        let s = &config.tenant_strategy;
        let db = &s.database_config;
        let text = format!(
            "configuration OK: {}\n  default type: {}\n  shared database: {}\n  tenant database pattern: {}\n  thresholds: {} customers, {} orders, {:?} avg query time\n  overrides: {}\n  connection budget: {} ({} per tenant)\n",
            cli.config.display(),
            s.default_type,
            redact_url(&db.shared_database_url),
            db.tenant_database_pattern.as_deref().map(redact_url).unwrap_or_else(|| "-".into()),
            s.migration_thresholds.customers,
            s.migration_thresholds.orders,
            s.migration_thresholds.avg_query_time,
            s.tenant_overrides.len(),
            db.connection_budget,
            db.max_connections_per_tenant,
        );
        let mut value = serde_json::to_value(&config).unwrap_or(Value::Null);
        if let Some(url) = value.pointer_mut("/tenant_strategy/database_config/shared_database_url")
        {
            *url = json!(redact_url(&db.shared_database_url));
        }
        return Ok(Output {
            text,
            json: json!({ "ok": true, "config": value }),
            ok: true,
        });
    }
    let tenancy = Tenancy::connect_with(&config, registry).await?;
    let directory = tenancy.require_directory()?;
    match cli.command {
        Command::Config(_) => unreachable!("handled above"),
        Command::Storefront(StorefrontCommand::List) => {
            let records = directory.list().await?;
            let rows = records
                .iter()
                .map(|r| {
                    vec![
                        r.storefront.to_string(),
                        r.placement.tenant_type().to_string(),
                        placement_detail(&r.placement),
                        format!("{:?}", r.state).to_lowercase(),
                        r.migration.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect::<Vec<_>>();
            let json = records
                .iter()
                .map(|r| {
                    json!({
                        "storefront": r.storefront,
                        "placement": placement_json(&r.placement),
                        "state": r.state,
                        "version": r.version,
                        "migration": r.migration,
                        "migration_error": r.migration_error,
                    })
                })
                .collect::<Vec<_>>();
            Ok(Output {
                text: table(
                    &["STOREFRONT", "TYPE", "WHERE", "STATE", "MIGRATION"],
                    &rows,
                ),
                json: Value::Array(json),
                ok: true,
            })
        }
        Command::Storefront(StorefrontCommand::Create(args)) => {
            let id: StorefrontId = args.id.parse()?;
            let kind = args
                .kind
                .as_deref()
                .map(|k| k.parse::<TenantType>())
                .transpose()
                .map_err(|message| TenancyError::Config {
                    key: "--type".into(),
                    message,
                })?;
            let placement = match (kind, args.schema, args.url) {
                (_, Some(schema), _) => Placement::Schema { schema },
                (_, _, Some(url)) => Placement::Database { url },
                (kind, None, None) => config.placement_for(id, kind)?,
            };
            let record = tenancy
                .create_storefront::<M>(id, placement.clone())
                .await?;
            Ok(Output {
                text: format!(
                    "created storefront {id} ({}, at {})\n",
                    placement.tenant_type(),
                    record.migration.as_deref().unwrap_or("-")
                ),
                json: json!({ "storefront": id, "placement": placement_json(&placement), "migration": record.migration }),
                ok: true,
            })
        }
        Command::Storefront(StorefrontCommand::Show { id }) => {
            let id: StorefrontId = id.parse()?;
            let record =
                directory
                    .get(id)
                    .await?
                    .ok_or_else(|| TenancyError::UnknownStorefront {
                        storefront: id.to_string(),
                    })?;
            let latency = tenancy.stats().summary(id);
            Ok(Output {
                text: format!(
                    "storefront  {}\ntype        {}\nwhere       {}\nstate       {:?}\nversion     {}\nmigration   {}\nlast error  {}\nupdated     {}\n",
                    id,
                    record.placement.tenant_type(),
                    placement_detail(&record.placement),
                    record.state,
                    record.version,
                    record.migration.as_deref().unwrap_or("-"),
                    record.migration_error.as_deref().unwrap_or("-"),
                    record.updated_at,
                ),
                json: json!({
                    "storefront": id,
                    "placement": placement_json(&record.placement),
                    "state": record.state,
                    "version": record.version,
                    "migration": record.migration,
                    "migration_error": record.migration_error,
                    "updated_at": record.updated_at,
                    "latency": latency,
                }),
                ok: true,
            })
        }
        Command::Storefront(StorefrontCommand::Drop { id, confirm }) => {
            let id: StorefrontId = id.parse()?;
            tenancy.drop_storefront(id, &confirm).await?;
            Ok(Output {
                text: format!("dropped storefront {id}\n"),
                json: json!({ "dropped": id }),
                ok: true,
            })
        }
        Command::Migrate(MigrateCommand::Up(args)) => {
            let opts = FleetOptions {
                jobs: args.jobs,
                only: storefronts(&args.storefronts)?,
                include_shared: !args.no_shared,
                verify: args.verify,
            };
            let bar = if cli.json {
                ProgressBar::hidden()
            } else {
                ProgressBar::new(0)
            };
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} migrating [{bar:30}] {pos}/{len} storefronts {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            let report = tenancy
                .migrate_fleet::<M>(&opts, |p| {
                    bar.set_length(p.total as u64);
                    bar.set_position(p.done as u64);
                    if let Outcome::Failed { .. } = p.outcome {
                        bar.set_message(format!("(failed: {})", p.storefront));
                    }
                })
                .await?;
            bar.finish_and_clear();
            let rows = report
                .storefronts
                .iter()
                .map(|(id, o)| {
                    let (outcome, detail) = match o {
                        Outcome::Current => ("current", String::new()),
                        Outcome::Migrated { version } => {
                            ("migrated", version.clone().unwrap_or_default())
                        }
                        Outcome::Failed { error } => ("FAILED", error.clone()),
                    };
                    vec![id.to_string(), outcome.to_owned(), detail]
                })
                .collect::<Vec<_>>();
            let mut text = String::new();
            if let Some(shared) = &report.shared {
                text.push_str(&format!("shared database: {}\n", outcome_word(shared)));
            }
            text.push_str(&table(&["STOREFRONT", "OUTCOME", "DETAIL"], &rows));
            let failures = report.failures().len();
            text.push_str(&format!(
                "{} storefronts: {} migrated, {} current, {} failed ({} ms)\n",
                report.storefronts.len(),
                report.count(|o| matches!(o, Outcome::Migrated { .. })),
                report.count(|o| *o == Outcome::Current),
                failures,
                report.elapsed.as_millis()
            ));
            Ok(Output {
                text,
                ok: report.is_success(),
                json: serde_json::to_value(&report).unwrap_or(Value::Null),
            })
        }
        Command::Migrate(MigrateCommand::Down { fleet, steps }) => {
            let only = storefronts(&fleet.storefronts)?;
            let mut results = Vec::new();
            let mut ok = true;
            for record in directory.list().await? {
                if matches!(record.placement, Placement::Shared) {
                    continue;
                }
                if only
                    .as_ref()
                    .is_some_and(|o| !o.contains(&record.storefront))
                {
                    continue;
                }
                let r = tenancy
                    .migrate_placement_down::<M>(record.storefront, &record.placement, steps)
                    .await;
                let (version, error) = match r {
                    Ok(v) => (v, None),
                    Err(e) => {
                        ok = false;
                        (None, Some(e.to_string()))
                    }
                };
                match &error {
                    None => {
                        directory
                            .record_migration(record.storefront, version.as_deref())
                            .await?
                    }
                    Some(e) => {
                        directory
                            .record_migration_error(record.storefront, e)
                            .await?
                    }
                }
                results.push(json!({ "storefront": record.storefront, "migration": version, "error": error }));
            }
            if !fleet.no_shared && only.is_none() {
                if let Err(e) = M::down(tenancy.shared(), Some(steps)).await {
                    ok = false;
                    results.push(json!({ "storefront": "shared", "error": e.to_string() }));
                }
            }
            let rows = results
                .iter()
                .map(|r| {
                    vec![
                        r["storefront"].as_str().unwrap_or("-").to_owned(),
                        r["migration"].as_str().unwrap_or("-").to_owned(),
                        r["error"].as_str().unwrap_or("").to_owned(),
                    ]
                })
                .collect::<Vec<_>>();
            Ok(Output {
                text: table(&["STOREFRONT", "NOW AT", "ERROR"], &rows),
                json: Value::Array(results),
                ok,
            })
        }
        Command::Migrate(MigrateCommand::Status(args)) => {
            let only = storefronts(&args.storefronts)?;
            let latest = latest_migration::<M>();
            let mut rows = Vec::new();
            let mut out = Vec::new();
            for record in directory.list().await? {
                if only
                    .as_ref()
                    .is_some_and(|o| !o.contains(&record.storefront))
                {
                    continue;
                }
                let applied = if args.verify {
                    tenancy
                        .applied_version(record.storefront, &record.placement)
                        .await
                        .ok()
                        .flatten()
                } else {
                    record.migration.clone()
                };
                let status = if record.migration_error.is_some() {
                    "failed"
                } else if applied == latest {
                    "current"
                } else {
                    "behind"
                };
                rows.push(vec![
                    record.storefront.to_string(),
                    record.placement.tenant_type().to_string(),
                    applied.clone().unwrap_or_else(|| "-".into()),
                    status.to_owned(),
                ]);
                out.push(json!({
                    "storefront": record.storefront,
                    "type": record.placement.tenant_type(),
                    "migration": applied,
                    "status": status,
                    "error": record.migration_error,
                }));
            }
            Ok(Output {
                text: format!(
                    "latest migration: {}\n{}",
                    latest.as_deref().unwrap_or("-"),
                    table(&["STOREFRONT", "TYPE", "MIGRATION", "STATUS"], &rows)
                ),
                json: json!({ "latest": latest, "storefronts": out }),
                ok: true,
            })
        }
        Command::Move(command) => run_move::<M>(&tenancy, &config, command, cli.json).await,
        Command::Plan => {
            let plan = tenancy.plan(&config.tenant_strategy).await?;
            let rows = plan
                .iter()
                .map(|r| {
                    vec![
                        r.storefront.to_string(),
                        r.observation.customers.to_string(),
                        r.observation.orders.to_string(),
                        r.current.to_string(),
                        r.recommended.to_string(),
                        format!(
                            "{:.2} -> {:.2}",
                            r.monthly_cost_current, r.monthly_cost_recommended
                        ),
                        r.reason.clone(),
                    ]
                })
                .collect::<Vec<_>>();
            Ok(Output {
                text: table(
                    &[
                        "STOREFRONT",
                        "CUSTOMERS",
                        "ORDERS",
                        "NOW",
                        "ADVICE",
                        "COST/MONTH",
                        "REASON",
                    ],
                    &rows,
                ),
                json: serde_json::to_value(&plan).unwrap_or(Value::Null),
                ok: true,
            })
        }
    }
}

fn outcome_word(o: &Outcome) -> String {
    match o {
        Outcome::Current => "current".into(),
        Outcome::Migrated { version } => {
            format!("migrated ({})", version.as_deref().unwrap_or("-"))
        }
        Outcome::Failed { error } => format!("FAILED: {error}"),
    }
}

fn move_json(r: &crate::mover::MoveRecord) -> Value {
    json!({
        "id": r.id,
        "storefront": r.storefront,
        "source": placement_json(&r.source),
        "target": placement_json(&r.target),
        "phase": r.phase,
        "error": r.error,
        "progress": r.progress,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "cutover_at": r.cutover_at,
    })
}

fn move_text(r: &crate::mover::MoveRecord) -> String {
    let mut out = format!(
        "move {} of storefront {}: {} -> {}\n  phase: {}\n",
        r.id, r.storefront, r.source, r.target, r.phase
    );
    for t in &r.progress.tables {
        out.push_str(&format!(
            "  {:<20} {:>9} of {:>9} rows copied{}\n",
            t.table,
            t.copied,
            t.rows,
            if t.done { "" } else { " (copying)" }
        ));
    }
    out.push_str(&format!(
        "  changelog: {} replayed, lag {}\n",
        r.progress.applied, r.progress.lag
    ));
    if let Some(round) = r.progress.validated_round {
        out.push_str(&format!(
            "  validated: {} rows (from catch-up round {round})\n",
            r.progress.validated_rows
        ));
    }
    if let Some(ms) = r.progress.pause_ms {
        out.push_str(&format!("  cutover pause: {ms} ms\n"));
    }
    if let Some(e) = &r.error {
        out.push_str(&format!("  last error: {e}\n"));
    }
    out
}

/// Progress bars for a running move: one per table (rows copied) and one for the phase and
/// changelog lag. Hidden with `--json`.
fn move_bars(
    mover: crate::mover::Mover,
    json: bool,
) -> (crate::mover::Mover, indicatif::MultiProgress) {
    use std::{collections::HashMap, sync::Mutex};
    let multi = indicatif::MultiProgress::new();
    if json {
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let status = multi.add(ProgressBar::new_spinner());
    status.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    status.enable_steady_tick(Duration::from_millis(120));
    let style = ProgressStyle::with_template("  {prefix:<20} [{bar:30}] {pos:>9}/{len:9} rows")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let bars: Mutex<HashMap<String, ProgressBar>> = Mutex::new(HashMap::new());
    let m = multi.clone();
    let mover = mover.observe(move |r| {
        status.set_message(format!(
            "{}: phase {}, changelog lag {} ({} replayed)",
            r.storefront, r.phase, r.progress.lag, r.progress.applied
        ));
        let mut bars = bars.lock().unwrap_or_else(|e| e.into_inner());
        for t in &r.progress.tables {
            let bar = bars.entry(t.table.clone()).or_insert_with(|| {
                let b = m.add(ProgressBar::new(t.rows));
                b.set_style(style.clone());
                b.set_prefix(t.table.clone());
                b
            });
            bar.set_length(t.rows.max(t.copied));
            bar.set_position(t.copied);
            if t.done && !bar.is_finished() {
                bar.finish();
            }
        }
    });
    (mover, multi)
}

async fn run_move<M: MigratorTrait>(
    tenancy: &Tenancy,
    config: &TenancyConfig,
    command: MoveCommand,
    json_out: bool,
) -> Result<Output, TenancyError> {
    use crate::mover::{MoveOptions, Mover};
    let base = Mover::new(
        tenancy,
        MoveOptions::from_config(&config.tenant_strategy.migration_config),
    );
    let (mover, multi) = move_bars(base, json_out);
    let record = match command {
        MoveCommand::Status { id } => {
            let records = match id {
                Some(id) => mover.status(id.parse()?).await?.into_iter().collect(),
                None => mover.list().await?,
            };
            let _ = multi.clear();
            let text = if records.is_empty() {
                "no moves\n".to_owned()
            } else {
                records.iter().map(move_text).collect::<Vec<_>>().join("\n")
            };
            return Ok(Output {
                text,
                json: Value::Array(records.iter().map(move_json).collect()),
                ok: true,
            });
        }
        MoveCommand::Start(args) => {
            let id: StorefrontId = args.id.parse()?;
            let kind = args
                .to
                .parse::<TenantType>()
                .map_err(|message| TenancyError::Config {
                    key: "--to".into(),
                    message,
                })?;
            let target = match (kind, args.schema, args.url) {
                (TenantType::Schema, Some(schema), _) => Placement::Schema { schema },
                (TenantType::Database, _, Some(url)) => Placement::Database { url },
                (kind, _, _) => config.placement_for(id, Some(kind))?,
            };
            let ready = mover.start::<M>(id, target).await;
            match ready {
                Ok(_) if args.cutover => mover.cutover::<M>(id).await,
                other => other,
            }
        }
        MoveCommand::Resume { id } => mover.resume::<M>(id.parse()?).await,
        MoveCommand::Cutover { id } => mover.cutover::<M>(id.parse()?).await,
        MoveCommand::Rollback { id } => mover.rollback(id.parse()?).await,
        MoveCommand::Complete { id, force } => mover.complete(id.parse()?, force).await,
    };
    let _ = multi.clear();
    let record = record?;
    Ok(Output {
        text: move_text(&record),
        json: move_json(&record),
        ok: true,
    })
}
