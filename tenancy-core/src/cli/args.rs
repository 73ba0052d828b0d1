//! The command line, as clap parses it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Operator tool for storefront tenancy.
#[derive(Debug, Parser)]
#[command(name = "tenancy", version, about)]
pub(crate) struct Cli {
    /// Configuration file (YAML or TOML).
    #[arg(
        long,
        short,
        global = true,
        env = "TENANCY_CONFIG",
        default_value = "config/tenant_strategy.yaml"
    )]
    pub(crate) config: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub(crate) json: bool,
    #[command(subcommand)]
    pub(crate) command: Command,
}

/// Top-level commands.
#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Create, list, show and drop storefronts.
    #[command(subcommand)]
    Storefront(StorefrontCommand),
    /// Run the application's migrations across the fleet.
    #[command(subcommand)]
    Migrate(MigrateCommand),
    /// Move a live storefront to another placement (copy, capture, validate, cutover).
    #[command(subcommand)]
    Move(MoveCommand),
    /// The advisor's recommendation for every storefront; `plan rebalance` proposes moves
    /// between servers.
    Plan {
        #[command(subcommand)]
        what: Option<PlanCommand>,
    },
    /// Move storefront databases between servers until each carries its capacity share.
    #[command(subcommand)]
    Rebalance(RebalanceCommand),
    /// The fleet's database servers: their load, and draining one.
    #[command(subcommand)]
    Server(ServerCommand),
    /// PostgreSQL row-level security: install it, or check it, in the shared database and
    /// every storefront schema and database.
    #[command(subcommand)]
    Rls(RlsCommand),
    /// Check the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
}

/// `storefront ...`
#[derive(Debug, Subcommand)]
pub(crate) enum StorefrontCommand {
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
pub(crate) struct CreateArgs {
    /// The storefront id (a UUID).
    pub(crate) id: String,
    /// Placement type (default: its tenant_overrides entry, else default_type).
    #[arg(long = "type", value_name = "shared|schema|database")]
    pub(crate) kind: Option<String>,
    /// Schema name (default: from schema_name_pattern).
    #[arg(long)]
    pub(crate) schema: Option<String>,
    /// Database URL (default: from tenant_database_pattern).
    #[arg(long)]
    pub(crate) url: Option<String>,
}

/// `migrate ...`
#[derive(Debug, Subcommand)]
pub(crate) enum MigrateCommand {
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
pub(crate) struct FleetArgs {
    /// Storefronts migrated at once.
    #[arg(long, short, default_value_t = 4)]
    pub(crate) jobs: usize,
    /// At most this many at once on any one server (schema storefronts count against the
    /// shared database's).
    #[arg(long, value_name = "N")]
    pub(crate) jobs_per_server: Option<usize>,
    /// Only this storefront (repeatable).
    #[arg(long = "storefront", value_name = "ID")]
    pub(crate) storefronts: Vec<String>,
    /// Check each storefront's own migration table instead of trusting the directory.
    #[arg(long)]
    pub(crate) verify: bool,
    /// Leave the shared database alone.
    #[arg(long)]
    pub(crate) no_shared: bool,
}

/// `move ...`
#[derive(Debug, Subcommand)]
pub(crate) enum MoveCommand {
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
pub(crate) struct MoveStartArgs {
    /// The storefront id.
    pub(crate) id: String,
    /// Target placement type.
    #[arg(long = "to", value_name = "shared|schema|database")]
    pub(crate) to: String,
    /// Target schema name (default: from schema_name_pattern).
    #[arg(long)]
    pub(crate) schema: Option<String>,
    /// Target database URL (default: from tenant_database_pattern).
    #[arg(long)]
    pub(crate) url: Option<String>,
    /// Go on through the cutover once ready.
    #[arg(long)]
    pub(crate) cutover: bool,
}

/// `plan ...`
#[derive(Debug, Subcommand)]
pub(crate) enum PlanCommand {
    /// The moves that would bring every server within the tolerance of its capacity
    /// share (rows and bytes of every storefront database, and each move's reason).
    Rebalance {
        /// +-fraction of its share a server may carry (default:
        /// migration_config.rebalance_tolerance).
        #[arg(long)]
        tolerance: Option<f64>,
    },
}

/// `rebalance ...`
#[derive(Debug, Subcommand)]
pub(crate) enum RebalanceCommand {
    /// Finish what a stopped run left, plan, and carry the plan out (resumable: run it
    /// again after a kill).
    Apply {
        /// +-fraction of its share a server may carry (default:
        /// migration_config.rebalance_tolerance).
        #[arg(long)]
        tolerance: Option<f64>,
        #[command(flatten)]
        moves: MovesArgs,
    },
}

/// `server ...`
#[derive(Debug, Subcommand)]
pub(crate) enum ServerCommand {
    /// Every server: capacity, storefront databases, bytes, whether it takes new ones.
    List,
    /// Move every storefront database off one server (maintenance, decommissioning).
    Drain {
        /// The server's name in the configuration.
        name: String,
        /// Show the moves without making them.
        #[arg(long)]
        dry_run: bool,
        #[command(flatten)]
        moves: MovesArgs,
    },
}

/// How a rebalance or a drain moves storefronts.
#[derive(Debug, Args)]
pub(crate) struct MovesArgs {
    /// Moves at once (default: migration_config.concurrent_moves).
    #[arg(long, short)]
    pub(crate) jobs: Option<usize>,
    /// Keep each source copy for migration_config.dual_write_duration (so `move rollback`
    /// can undo the move) instead of deleting it once the move has cut over.
    #[arg(long)]
    pub(crate) keep_sources: bool,
}

/// `rls ...`
#[derive(Debug, Subcommand)]
pub(crate) enum RlsCommand {
    /// Enable and force the policies on every registered scoped table, and grant the
    /// application role what it needs; idempotent.
    Apply(RlsArgs),
    /// Report what is missing or wrong; exits 1 when anything is.
    Check(RlsArgs),
}

/// The arguments of `rls apply` and `rls check`.
#[derive(Debug, Args)]
pub(crate) struct RlsArgs {
    /// The application role (default: `row_level_security.role` of the configuration).
    #[arg(long)]
    pub(crate) role: Option<String>,
}

/// `config ...`
#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Load and validate the configuration, print a summary.
    Check,
}
