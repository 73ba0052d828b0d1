//! Online moves in every direction, with writers inserting, updating and deleting the
//! moving storefront's rows for the whole move. Afterwards every acknowledged write is on
//! the target exactly once, validation was clean, the source copy is gone after `complete`,
//! and a bystander storefront was never touched.

use std::time::Duration;

use migration::Migrator;
use tenancy_core::{
    mover::{MoveOptions, Mover, Phase},
    Placement, StorefrontId, Tenancy,
};
use tenancy_tests::{
    fleet::{all_configured, Server},
    matrix::{seed, snapshot},
    movekit::{count_rows, env, state, Writers},
    Backend, TestDb,
};

/// Where each step of a chain moves the storefront.
#[derive(Clone, Copy, Debug)]
enum To {
    Shared,
    Schema,
    Database,
    /// A database of its own on another server of the fleet.
    DatabaseOn(Server),
}

fn placement(test: &TestDb, to: To) -> Placement {
    match to {
        To::Shared => Placement::Shared,
        To::Schema => Placement::Schema {
            schema: test.schema_name(),
        },
        To::Database => Placement::Database {
            url: test.sibling_url("tenancy_test_m"),
        },
        To::DatabaseOn(server) => Placement::Database {
            url: server
                .database_url("tenancy_test_m")
                .expect("the chain checked its servers"),
        },
    }
}

pub fn options() -> MoveOptions {
    MoveOptions {
        // Writers on a loaded 2-core machine: a pause budget the catch-up can meet, and
        // time to meet it (the convergence test sets its own).
        pause_budget: Duration::from_secs(2),
        converge_within: Duration::from_secs(300),
        batch_size: 7,
        catch_up_batch: 300,
        retention: Duration::ZERO,
        max_lag: 50,
        ..MoveOptions::default()
    }
}

/// Moves one storefront through `steps` under concurrent writes, checking each move.
async fn chain(backend: Backend, steps: &[To]) {
    let servers: Vec<Server> = steps
        .iter()
        .filter_map(|s| match s {
            To::DatabaseOn(server) => Some(*server),
            _ => None,
        })
        .collect();
    if !all_configured(&servers) {
        return;
    }
    let Some((test, tenancy)) = env(backend, Duration::from_millis(300)).await else {
        return;
    };
    chain_in(backend, steps, test, tenancy).await;
}

async fn chain_in(backend: Backend, steps: &[To], test: TestDb, tenancy: Tenancy) {
    let moving = StorefrontId::new_random();
    let bystander = StorefrontId::new_random();
    for id in [moving, bystander] {
        tenancy
            .create_storefront::<Migrator>(id, Placement::Shared)
            .await
            .expect("provision");
    }
    seed(
        &tenancy.connection(moving),
        "m",
        &["a", "b", "c", "d", "e", "f", "g", "h", "i"],
        3,
    )
    .await;
    seed(
        &tenancy.connection(bystander),
        "b",
        &["a", "b", "shared"],
        2,
    )
    .await;
    let bystander_before = snapshot(&tenancy.connection(bystander)).await;

    for step in steps {
        let target = placement(&test, *step);
        let source = tenancy.placement(moving).await.expect("placement");
        let what = format!("{backend}: {source} -> {target}");
        let server = |url: &str| tenancy_core::DatabaseUrl::parse(url).ok()?.server();
        let servers_apart = matches!(step, To::DatabaseOn(_))
            || matches!(&source, Placement::Database { url } if server(url) != server(&test.url));
        let base = state(&tenancy.connection(moving)).await;
        let writers = Writers::spawn(&tenancy, moving, 3);
        tokio::time::sleep(Duration::from_millis(150)).await;

        let began = std::time::Instant::now();
        let mut opts = options();
        if servers_apart {
            // Each page between two connections costs about 40 ms of delayed ACK (sqlx
            // 0.9 sets no TCP_NODELAY, so COPY's data and its end wait for one): pages of
            // 7 rows could not keep up with writers on the fleet's fsync-off servers, whose
            // inserts land ahead of the copy (random UUID keys, below its bound).
            opts.batch_size = 100;
        }
        let mover = Mover::new(&tenancy, opts).observe(move |r| {
            if std::env::var("MOVE_TRACE").is_ok() {
                eprintln!(
                    "{:>7} ms {} {:?} lag={} applied={}",
                    began.elapsed().as_millis(),
                    r.phase,
                    r.progress
                        .tables
                        .iter()
                        .map(|t| t.copied)
                        .collect::<Vec<_>>(),
                    r.progress.lag,
                    r.progress.applied
                );
            }
        });
        let ready = mover
            .start::<Migrator>(moving, target.clone())
            .await
            .unwrap_or_else(|e| panic!("{what}: start: {e}"));
        assert_eq!(ready.phase, Phase::Ready, "{what}");
        assert!(
            ready.progress.validated_round.is_some(),
            "{what}: validated"
        );
        assert!(
            ready.progress.validated_rows > 0,
            "{what}: validation compared rows"
        );
        assert!(
            ready.progress.tables.iter().all(|t| t.done),
            "{what}: every table copied: {:?}",
            ready.progress.tables
        );
        tokio::time::sleep(Duration::from_millis(150)).await;
        let switched = mover
            .cutover::<Migrator>(moving)
            .await
            .unwrap_or_else(|e| panic!("{what}: cutover: {e}"));
        assert_eq!(switched.phase, Phase::Switched, "{what}");
        assert_eq!(
            tenancy.placement(moving).await.expect("placement"),
            target,
            "{what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let written = writers.stop().await;
        assert!(
            written.errors.is_empty(),
            "{what}: writes failed: {:?}",
            written.errors
        );
        assert!(
            written.writes > 20,
            "{what}: the writers ran ({} writes)",
            written.writes
        );

        let after = state(&tenancy.connection(moving)).await;
        let expected = written.expected(&base);
        assert_eq!(
            after.customers.len(),
            expected.customers.len(),
            "{what}: customers"
        );
        assert_eq!(
            after, expected,
            "{what}: every acknowledged write, exactly once"
        );

        let done = mover
            .complete(moving, false)
            .await
            .unwrap_or_else(|e| panic!("{what}: complete: {e}"));
        assert_eq!(done.phase, Phase::Completed, "{what}");
        check_source_gone(&test, &tenancy, moving, &source).await;
        // Still all there after the source was deleted.
        assert_eq!(
            state(&tenancy.connection(moving)).await,
            expected,
            "{what}: after complete"
        );
    }
    assert_eq!(
        snapshot(&tenancy.connection(bystander)).await,
        bystander_before,
        "{backend}: the bystander storefront was touched"
    );
    test.teardown().await;
}

async fn check_source_gone(
    test: &TestDb,
    tenancy: &Tenancy,
    storefront: StorefrontId,
    source: &Placement,
) {
    use sea_orm::ConnectionTrait;
    match source {
        Placement::Shared => {
            for table in ["customers", "orders", "order_items", "customer_addresses"] {
                assert_eq!(
                    count_rows(&test.db, table, storefront).await,
                    0,
                    "shared {table} still has rows"
                );
            }
        }
        Placement::Schema { schema } => {
            let backend = test.db.get_database_backend();
            let row = test
                .db
                .query_one_raw(tenancy_tests::stmt(
                    backend,
                    "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?",
                    [schema.clone().into()],
                ))
                .await
                .expect("schemata")
                .expect("row");
            assert_eq!(
                row.try_get_by_index::<i64>(0).expect("count"),
                0,
                "schema {schema} still exists"
            );
        }
        Placement::Database { url } => {
            if let Some(path) = url
                .strip_prefix("sqlite://")
                .and_then(|r| r.split('?').next())
            {
                assert!(!std::path::Path::new(path).exists(), "{path} still exists");
            } else {
                let name = tenancy_tests::database_of(url).expect("db name").to_owned();
                let (sql, admin) = if test.backend == Backend::Postgres {
                    (
                        "SELECT COUNT(*) FROM pg_database WHERE datname = ?",
                        tenancy_tests::with_database(url, "postgres"),
                    )
                } else {
                    (
                        "SELECT COUNT(*) FROM information_schema.schemata WHERE schema_name = ?",
                        tenancy_tests::with_database(url, "test"),
                    )
                };
                // Asked of the server the database was on, which may be another one.
                let server = sea_orm::Database::connect(admin).await.expect("its server");
                let backend = server.get_database_backend();
                let row = server
                    .query_one_raw(tenancy_tests::stmt(backend, sql, [name.clone().into()]))
                    .await
                    .expect("databases")
                    .expect("row");
                let _ = server.close().await;
                assert_eq!(
                    row.try_get_by_index::<i64>(0).expect("count"),
                    0,
                    "database {name} still exists"
                );
            }
        }
    }
    let _ = tenancy;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_shared_schema_database_shared() {
    tenancy_tests::movekit::bounded(
        module_path!(),
        chain(Backend::Postgres, &[To::Schema, To::Database, To::Shared]),
    )
    .await;
}

/// The same chain with row-level security on: the writers' statements run as an
/// application role the policies bind; the mover, as the operator, passes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_with_row_level_security_shared_schema_database_shared() {
    tenancy_tests::movekit::bounded(module_path!(), async {
        let Some((test, tenancy, role)) =
            tenancy_tests::movekit::env_with_rls(Duration::from_millis(300)).await
        else {
            return;
        };
        let admin = test.admin_url().map(str::to_owned);
        chain_in(
            Backend::Postgres,
            &[To::Schema, To::Database, To::Shared],
            test,
            tenancy,
        )
        .await;
        if let Some(admin) = admin {
            role.drop(&admin).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_shared_database_schema_shared() {
    tenancy_tests::movekit::bounded(
        module_path!(),
        chain(Backend::Postgres, &[To::Database, To::Schema, To::Shared]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_shared_schema_database_shared() {
    tenancy_tests::movekit::bounded(
        module_path!(),
        chain(Backend::MySql, &[To::Schema, To::Database, To::Shared]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_shared_database_schema_shared() {
    tenancy_tests::movekit::bounded(
        module_path!(),
        chain(Backend::MySql, &[To::Database, To::Schema, To::Shared]),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sqlite_shared_database_shared() {
    tenancy_tests::movekit::bounded(
        module_path!(),
        chain(Backend::Sqlite, &[To::Database, To::Shared]),
    )
    .await;
}

/// Between PostgreSQL servers: 5432 -> 5433, 5433 -> 5434 and back, 5433 -> 5432.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_across_servers() {
    tenancy_tests::movekit::bounded(
        module_path!(),
        chain(
            Backend::Postgres,
            &[
                To::DatabaseOn(Server::Postgres2),
                To::DatabaseOn(Server::Postgres3),
                To::DatabaseOn(Server::Postgres2),
                To::Shared,
            ],
        ),
    )
    .await;
}

/// Between MariaDB servers: 3306 -> 3307 and back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_across_servers() {
    tenancy_tests::movekit::bounded(
        module_path!(),
        chain(
            Backend::MySql,
            &[To::DatabaseOn(Server::MySql2), To::Shared],
        ),
    )
    .await;
}
