//! The operator tool: `cargo run -p migration -- <command>` (see `--help`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    // The registry names the tenant-scoped tables: moves and drops need them.
    tenancy_core::cli::run_cli_with::<migration::Migrator>(entities::registry()).await
}
