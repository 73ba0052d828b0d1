//! Isolation that fails closed, tried as an attacker would: raw SQL through one
//! storefront's connection, in every placement, on every backend. One file per class of
//! attack (see issue "Isolation that really fails closed"):
//!
//! 1. [`unparsed`]: text the server would read differently from the rewriter;
//! 2. [`session`]: statements that change a pooled connection's session;
//! 3. [`prepared`]: the driver's prepared statements, run by name;
//! 4. [`sql_in_strings`]: functions and statements that run SQL given as text;
//! 5. [`catalogs`]: catalogs, statistics and system schemas;
//! 6. [`framework_tables`]: the directory, the moves and the migration table;
//! 7. [`shorthands`]: `TABLE name`, CTEs that shadow tables, qualified names;
//! 8. [`evaluation_order`]: conditions that would run on other storefronts' rows first,
//!    index hints, variables hidden in names (found in review).
//!
//! [`pooled`] runs the session attacks on a shared pool of one connection and then serves
//! another storefront on that same connection.
//!
//! Every attack runs through each storefront of the arena; each must be refused or return
//! nothing of another storefront, and afterwards every other storefront's rows, read
//! physically in every schema and database, must be unchanged.

mod catalogs;
mod evaluation_order;
mod framework_tables;
mod pooled;
mod prepared;
mod session;
mod shorthands;
mod sql_in_strings;
mod unparsed;

use std::time::Duration;

use tenancy_tests::on_every_backend;
use tenancy_tests::{arena::Arena, Backend};

/// The whole run of one backend fails instead of hanging past this.
const LIMIT: Duration = Duration::from_secs(900);

async fn all_classes(backend: Backend) {
    let Some(arena) = Arena::new(backend).await else {
        return;
    };
    registry_check(&arena).await;
    unparsed::run(&arena).await;
    session::run(&arena).await;
    prepared::run(&arena).await;
    sql_in_strings::run(&arena).await;
    catalogs::run(&arena).await;
    framework_tables::run(&arena).await;
    shorthands::run(&arena).await;
    evaluation_order::run(&arena).await;
    arena.teardown().await;
}

/// `verify_registry` passes with a directory (whose table has a `storefront_id` column but
/// is the framework's own), and still names a real unregistered table with that column.
async fn registry_check(arena: &Arena) {
    use sea_orm::ConnectionTrait;
    let backend = arena.backend;
    arena
        .tenancy
        .verify_registry()
        .await
        .unwrap_or_else(|e| panic!("{backend}: verify_registry with a directory: {e}"));
    let db = &arena.test.db;
    db.execute_unprepared(
        "CREATE TABLE rogue_notes (id INTEGER PRIMARY KEY, storefront_id VARCHAR(36))",
    )
    .await
    .expect("create rogue_notes");
    let err = arena.tenancy.verify_registry().await.unwrap_err();
    assert!(err.to_string().contains("rogue_notes"), "{backend}: {err}");
    db.execute_unprepared("DROP TABLE rogue_notes")
        .await
        .expect("drop rogue_notes");
}

async fn bounded(backend: Backend) {
    tokio::time::timeout(LIMIT, all_classes(backend))
        .await
        .unwrap_or_else(|_| panic!("{backend}: the attacks did not finish within {LIMIT:?}"));
}

on_every_backend!(
    fail_closed,
    bounded,
    flavor = "multi_thread",
    worker_threads = 2
);
