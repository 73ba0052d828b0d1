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
//! Commands: `storefront list|create|show|drop`, `migrate up|down|status`,
//! `move start|status|resume|cutover|rollback|complete`, `plan`, `plan rebalance`,
//! `rebalance apply`, `server list|drain`, `rls apply|check`, `config check`.
//! Human-readable tables by default, `--json` for scripts. Exit codes: 0 success, 1 the
//! operation failed (for a fleet: at least one storefront failed), 2 bad usage or
//! configuration.
//!
//! Inside: `args` is what clap parses; one function per subcommand in `storefront`,
//! `migrate`, `moves`, `plan`, `servers` and `rls`, each returning a report that `render` prints as text or
//! JSON.

mod args;
mod migrate;
mod moves;
mod plan;
mod render;
mod rls;
mod servers;
mod storefront;

use std::{ffi::OsString, process::ExitCode};

use clap::Parser;
use sea_orm_migration::MigratorTrait;

use self::{
    args::{
        Cli, Command, ConfigCommand, MigrateCommand, PlanCommand, RebalanceCommand, ServerCommand,
        StorefrontCommand,
    },
    render::Report,
};
use crate::{config::TenancyConfig, Registry, StorefrontId, Tenancy, TenancyError};

/// Parses the process arguments, runs the command, prints, and returns the exit code.
/// The scoped tables are those registered by `#[tenant_scoped]` entities linked into the
/// binary; pass them explicitly with [`run_cli_with`] when the entities live in a crate the
/// binary does not otherwise use.
pub async fn run_cli<M: MigratorTrait>() -> ExitCode {
    run_cli_from::<M>(std::env::args_os(), Registry::from_entities()).await
}

/// [`run_cli`] with an explicit registry of scoped tables (e.g. `entities::registry()`).
pub async fn run_cli_with<M: MigratorTrait>(registry: Registry) -> ExitCode {
    run_cli_from::<M>(std::env::args_os(), registry).await
}

/// [`run_cli`] with explicit arguments (the first is the program name).
pub async fn run_cli_from<M: MigratorTrait>(
    args: impl IntoIterator<Item = OsString>,
    registry: Registry,
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
        Ok(report) => {
            report.print(json);
            if report.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => {
            render::print_error(&e, json);
            let usage = matches!(
                e,
                TenancyError::Config { .. }
                    | TenancyError::InvalidStorefrontId { .. }
                    | TenancyError::InvalidName { .. }
                    | TenancyError::NotConfirmed { .. }
            );
            ExitCode::from(if usage { 2 } else { 1 })
        }
    }
}

/// What every subcommand that touches the fleet gets.
struct Context {
    tenancy: Tenancy,
    config: TenancyConfig,
    json: bool,
}

async fn run<M: MigratorTrait>(cli: Cli, registry: Registry) -> Result<Report, TenancyError> {
    let config = TenancyConfig::from_file(&cli.config)?;
    if let Command::Config(ConfigCommand::Check) = &cli.command {
        return Ok(plan::config_check(&cli.config, &config));
    }
    let tenancy = if let Command::Rls(_) = &cli.command {
        // Installing the policies cannot wait for them to be in place.
        let mut unchecked = config.clone();
        unchecked
            .tenant_strategy
            .database_config
            .row_level_security
            .enabled = false;
        Tenancy::connect_with(&unchecked, registry).await?
    } else {
        Tenancy::connect_with(&config, registry).await?
    };
    tenancy.require_directory()?;
    let cx = Context {
        tenancy,
        config,
        json: cli.json,
    };
    let report = match cli.command {
        Command::Config(ConfigCommand::Check) => Ok(plan::config_check(&cli.config, &cx.config)),
        Command::Storefront(StorefrontCommand::List) => storefront::list(&cx).await,
        Command::Storefront(StorefrontCommand::Create(args)) => {
            storefront::create::<M>(&cx, args).await
        }
        Command::Storefront(StorefrontCommand::Show { id }) => storefront::show(&cx, &id).await,
        Command::Storefront(StorefrontCommand::Drop { id, confirm }) => {
            storefront::drop(&cx, &id, &confirm).await
        }
        Command::Migrate(MigrateCommand::Up(args)) => migrate::up::<M>(&cx, args).await,
        Command::Migrate(MigrateCommand::Down { fleet, steps }) => {
            migrate::down::<M>(&cx, fleet, steps).await
        }
        Command::Migrate(MigrateCommand::Status(args)) => migrate::status::<M>(&cx, args).await,
        Command::Move(command) => moves::run::<M>(&cx, command).await,
        Command::Plan { what: None } => plan::plan(&cx).await,
        Command::Plan {
            what: Some(PlanCommand::Rebalance { tolerance }),
        } => servers::plan(&cx, tolerance).await,
        Command::Rebalance(RebalanceCommand::Apply { tolerance, moves }) => {
            servers::apply::<M>(&cx, tolerance, moves).await
        }
        Command::Server(ServerCommand::List) => servers::list(&cx).await,
        Command::Server(ServerCommand::Drain {
            name,
            dry_run,
            moves,
        }) => servers::drain::<M>(&cx, &name, dry_run, moves).await,
        Command::Rls(command) => rls::run(&cx, command).await,
    };
    // Give this process's lease up now: a cutover run right after need not wait for it.
    cx.tenancy.shutdown().await;
    report
}

impl Context {
    /// The placement of a new storefront (or a move's target) when the flags name none:
    /// the configuration's for `kind`, except that a new database goes on the least loaded
    /// server with room when servers are configured.
    async fn placement_for(
        &self,
        storefront: StorefrontId,
        kind: Option<crate::TenantType>,
    ) -> Result<crate::Placement, TenancyError> {
        let s = &self.config.tenant_strategy;
        let kind = kind
            .or_else(|| s.tenant_overrides.get(&storefront).copied())
            .unwrap_or(s.default_type);
        let servers = s.database_config.servers()?;
        if kind == crate::TenantType::Database && !servers.is_empty() {
            return servers
                .placement_for_new(
                    &self.tenancy,
                    storefront,
                    s.database_config.tenant_database_pattern.as_deref(),
                )
                .await;
        }
        self.config.placement_for(storefront, Some(kind))
    }
}

/// The storefronts named by repeated `--storefront` flags (`None`: all of them).
fn storefronts(ids: &[String]) -> Result<Option<Vec<StorefrontId>>, TenancyError> {
    if ids.is_empty() {
        return Ok(None);
    }
    ids.iter()
        .map(|s| s.parse())
        .collect::<Result<Vec<_>, _>>()
        .map(Some)
}
