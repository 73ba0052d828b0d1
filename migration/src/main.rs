//! The operator tool: `cargo run -p migration -- <command>` (see `--help`).

#[tokio::main]
async fn main() -> std::process::ExitCode {
    tenancy_core::cli::run_cli::<migration::Migrator>().await
}
