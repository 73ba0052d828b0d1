//! Moves that go wrong: the mover stopped at every phase boundary and in the middle of the
//! copy, the catch-up and the cutover (then resumed, or rolled back); a rollback after the
//! cutover; a second process with a stale directory cache; a row corrupted on the target;
//! a target server that goes down; and a database-to-database move to another server.
//! Writers run against the moving storefront throughout, and every acknowledged write must
//! end up exactly once wherever the storefront is served from.

use std::time::Duration;

use entities::{customer, order, shopping_cart};
use migration::Migrator;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use tenancy_core::{
    mover::{is_fenced, HaltAt, MoveOptions, Mover, Phase},
    Placement, StorefrontId, Tenancy, TenancyError,
};
use tenancy_tests::{
    fleet::{Proxy, Server},
    on_every_backend,
};
use tenancy_tests::{
    matrix::{seed, snapshot},
    movekit::{count_rows, env, state, unwatched_process, RawTarget, Writers},
    Backend, TestDb,
};

fn options(halt_at: Option<HaltAt>) -> MoveOptions {
    MoveOptions {
        // Writers on a loaded 2-core machine: a pause budget the catch-up can meet, and
        // time to meet it (the convergence test sets its own).
        pause_budget: Duration::from_secs(2),
        converge_within: Duration::from_secs(300),
        batch_size: 5,
        catch_up_batch: 200,
        retention: Duration::ZERO,
        max_lag: 50,
        halt_at,
        ..MoveOptions::default()
    }
}

async fn provisioned(tenancy: &Tenancy, names: &[&str]) -> StorefrontId {
    let id = StorefrontId::new_random();
    tenancy
        .create_storefront::<Migrator>(id, Placement::Shared)
        .await
        .expect("provision");
    seed(&tenancy.connection(id), "f", names, 2).await;
    id
}

fn target_for(test: &TestDb, i: usize) -> Placement {
    if test.backend == Backend::Sqlite || i % 3 == 2 {
        Placement::Database {
            url: test.sibling_url("tenancy_test_f"),
        }
    } else {
        Placement::Schema {
            schema: test.schema_name(),
        }
    }
}

/// Stops the mover at `point`, then either resumes and cuts over, or rolls back; checks
/// that every acknowledged write is where the storefront is served, exactly once.
async fn crash_at(test: &TestDb, tenancy: &Tenancy, i: usize, point: HaltAt, finish: bool) {
    let sf = provisioned(tenancy, &["a", "b", "c", "d", "e", "f"]).await;
    let target = target_for(test, i);
    let what = format!(
        "{}: halt at {point:?}, then {}",
        test.backend,
        if finish { "resume" } else { "rollback" }
    );
    let base = state(&tenancy.connection(sf)).await;
    let writers = Writers::spawn(tenancy, sf, 2);
    tokio::time::sleep(Duration::from_millis(100)).await;

    let halting = Mover::new(tenancy, options(Some(point.clone())));
    let first = match point {
        HaltAt::MidCutover => {
            halting
                .start::<Migrator>(sf, target.clone())
                .await
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            halting.cutover::<Migrator>(sf).await
        }
        _ => halting.start::<Migrator>(sf, target.clone()).await,
    };
    assert!(
        matches!(first, Err(TenancyError::Halted { .. })),
        "{what}: {first:?}"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;

    // A new mover, as a restarted process would build: only the persisted state survives.
    let mover = Mover::new(tenancy, options(None));
    let status = mover.status(sf).await.expect("status").expect("a move");
    assert!(!status.phase.is_finished(), "{what}: {:?}", status.phase);
    let expected_placement = if finish {
        let ready = mover
            .resume::<Migrator>(sf)
            .await
            .unwrap_or_else(|e| panic!("{what}: resume: {e}"));
        if ready.phase != Phase::Switched {
            assert_eq!(ready.phase, Phase::Ready, "{what}");
            mover
                .cutover::<Migrator>(sf)
                .await
                .unwrap_or_else(|e| panic!("{what}: cutover: {e}"));
        }
        target.clone()
    } else {
        let back = mover
            .rollback(sf)
            .await
            .unwrap_or_else(|e| panic!("{what}: rollback: {e}"));
        assert_eq!(back.phase, Phase::RolledBack, "{what}");
        Placement::Shared
    };
    tokio::time::sleep(Duration::from_millis(150)).await;
    let written = writers.stop().await;
    assert!(
        written.errors.is_empty(),
        "{what}: writes failed: {:?}",
        written.errors
    );
    assert_eq!(
        tenancy.placement(sf).await.expect("placement"),
        expected_placement,
        "{what}"
    );
    assert_eq!(
        state(&tenancy.connection(sf)).await,
        written.expected(&base),
        "{what}: acknowledged writes"
    );
    if finish {
        mover
            .complete(sf, false)
            .await
            .unwrap_or_else(|e| panic!("{what}: complete: {e}"));
        assert_eq!(
            count_rows(&test.db, "customers", sf).await,
            0,
            "{what}: source rows deleted"
        );
    } else {
        // The shared rows are the storefront's only copy, and they are complete.
        let n = count_rows(&test.db, "customers", sf).await;
        assert_eq!(
            n as usize,
            written.expected(&base).customers.len(),
            "{what}"
        );
    }
    assert_eq!(
        state(&tenancy.connection(sf)).await,
        written.expected(&base),
        "{what}: after the end"
    );
}

async fn crashes(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let points = [
        HaltAt::After(Phase::Prepare),
        HaltAt::After(Phase::Capture),
        HaltAt::MidCopy(3),
        HaltAt::After(Phase::Copy),
        HaltAt::MidCatchUp(1),
        HaltAt::After(Phase::CatchUp),
        HaltAt::After(Phase::Validate),
        HaltAt::MidCutover,
    ];
    for (i, point) in points.into_iter().enumerate() {
        crash_at(&test, &tenancy, i, point.clone(), true).await;
        crash_at(&test, &tenancy, i + 1, point, false).await;
    }
    test.teardown().await;
}

on_every_backend!(
    crash_at_every_phase,
    |backend| tenancy_tests::movekit::bounded(module_path!(), crashes(backend)),
    flavor = "multi_thread",
    worker_threads = 4
);

/// After the cutover the target serves and takes writes; rollback replays them onto the
/// source and flips back.
async fn rollback_after_cutover(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let target = target_for(&test, 2);
    rollback_after_cutover_in(backend, test, tenancy, target).await;
}

async fn rollback_after_cutover_in(
    backend: Backend,
    test: TestDb,
    tenancy: Tenancy,
    target: Placement,
) {
    let sf = provisioned(&tenancy, &["a", "b", "c", "d"]).await;
    let base = state(&tenancy.connection(sf)).await;
    let writers = Writers::spawn(&tenancy, sf, 2);
    let mover = Mover::new(&tenancy, options(None));
    mover
        .start::<Migrator>(sf, target.clone())
        .await
        .expect("start");
    mover.cutover::<Migrator>(sf).await.expect("cutover");
    tokio::time::sleep(Duration::from_millis(300)).await; // writes land on the target
    let back = mover.rollback(sf).await.expect("rollback");
    assert_eq!(back.phase, Phase::RolledBack);
    tokio::time::sleep(Duration::from_millis(150)).await;
    let written = writers.stop().await;
    assert!(written.errors.is_empty(), "{backend}: {:?}", written.errors);
    assert_eq!(
        tenancy.placement(sf).await.expect("placement"),
        Placement::Shared
    );
    let expected = written.expected(&base);
    assert_eq!(
        state(&tenancy.connection(sf)).await,
        expected,
        "{backend}: writes made on the target came back"
    );
    assert_eq!(
        count_rows(&test.db, "customers", sf).await as usize,
        expected.customers.len()
    );
    test.teardown().await;
}

on_every_backend!(
    rollback_after_cutover,
    |backend| tenancy_tests::movekit::bounded(module_path!(), rollback_after_cutover(backend)),
    flavor = "multi_thread",
    worker_threads = 4
);

/// The rollback with row-level security on (writers as the application role).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollback_after_cutover_with_row_level_security_postgres() {
    tenancy_tests::movekit::bounded(module_path!(), async {
        let Some((test, tenancy, role)) =
            tenancy_tests::movekit::env_with_rls(Duration::from_millis(200)).await
        else {
            return;
        };
        let admin = test.admin_url().map(str::to_owned);
        let target = target_for(&test, 2);
        rollback_after_cutover_in(Backend::Postgres, test, tenancy, target).await;
        if let Some(admin) = admin {
            role.drop(&admin).await;
        }
    })
    .await;
}

/// Rollback after a cutover to a database on another server of the fleet: the writes made
/// there come back to the shared database of the first server.
async fn rollback_across_servers(backend: Backend, server: Server) {
    let Some(url) = server.database_url("tenancy_test_f") else {
        return;
    };
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    rollback_after_cutover_in(backend, test, tenancy, Placement::Database { url }).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollback_after_cutover_across_servers_postgres() {
    tenancy_tests::movekit::bounded(
        module_path!(),
        rollback_across_servers(Backend::Postgres, Server::Postgres2),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rollback_after_cutover_across_servers_mysql() {
    tenancy_tests::movekit::bounded(
        module_path!(),
        rollback_across_servers(Backend::MySql, Server::MySql2),
    )
    .await;
}

/// Rows removed by a foreign key's `ON DELETE CASCADE` are changes like any other. MySQL
/// fires no trigger for them, so after the catch-up an order deleted with its items (and a
/// customer with its address, carts with their items) must still reach the target, and
/// validation, which sees the items on the target only, must know they are in flight.
async fn cascaded_deletes(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let sf = provisioned(&tenancy, &["a", "b", "c"]).await;
    let target = target_for(&test, 2);
    let halting = Mover::new(&tenancy, options(Some(HaltAt::After(Phase::CatchUp))));
    let first = halting.start::<Migrator>(sf, target.clone()).await;
    assert!(
        matches!(first, Err(TenancyError::Halted { .. })),
        "{backend}: {first:?}"
    );
    let db = tenancy.connection(sf);
    let deleted = order::Entity::delete_many()
        .filter(order::Column::TotalCents.eq(1000))
        .exec(&db)
        .await
        .expect("delete orders");
    assert_eq!(deleted.rows_affected, 2, "{backend}");
    shopping_cart::Entity::delete_many()
        .exec(&db)
        .await
        .expect("delete carts");
    customer::Entity::delete_many()
        .filter(customer::Column::FirstName.eq("a"))
        .exec(&db)
        .await
        .expect("delete the customer without orders");
    let expected = snapshot(&db).await;
    assert!(
        !expected.is_empty(),
        "{backend}: the rest of the storefront"
    );

    let mover = Mover::new(&tenancy, options(None));
    let ready = mover
        .resume::<Migrator>(sf)
        .await
        .unwrap_or_else(|e| panic!("{backend}: validation after cascaded deletes: {e}"));
    assert_eq!(ready.phase, Phase::Ready, "{backend}");
    mover
        .cutover::<Migrator>(sf)
        .await
        .unwrap_or_else(|e| panic!("{backend}: cutover: {e}"));
    assert_eq!(tenancy.placement(sf).await.expect("placement"), target);
    assert_eq!(
        snapshot(&tenancy.connection(sf)).await,
        expected,
        "{backend}: the target holds what the source held"
    );
    // Completing removes every capture trigger, the cascade ones included, on both sides.
    mover.complete(sf, true).await.expect("complete");
    assert_eq!(capture_triggers(&test.db).await, 0, "{backend}: source");
    let conn = database_target(&target).await;
    assert_eq!(capture_triggers(&conn).await, 0, "{backend}: target");
    let _ = conn.close().await;
    test.teardown().await;
}

/// A connection to a database-placement target, as an operator would open one.
async fn database_target(target: &Placement) -> sea_orm::DatabaseConnection {
    let Placement::Database { url } = target else {
        panic!("expected a database target, got {target:?}");
    };
    sea_orm::Database::connect(url.as_str())
        .await
        .expect("target")
}

/// Capture triggers present in the database `db` is connected to.
async fn capture_triggers(db: &sea_orm::DatabaseConnection) -> i64 {
    let backend = db.get_database_backend();
    let sql = match backend {
        sea_orm::DbBackend::Postgres => {
            "SELECT COUNT(*) FROM pg_trigger WHERE tgname LIKE 'tncap%'"
        }
        sea_orm::DbBackend::MySql => {
            "SELECT COUNT(*) FROM information_schema.triggers \
             WHERE trigger_schema = DATABASE() AND trigger_name LIKE 'tncap%'"
        }
        _ => "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name LIKE 'tncap%'",
    };
    db.query_one_raw(sea_orm::Statement::from_string(backend, sql))
        .await
        .expect("triggers")
        .expect("a row")
        .try_get_by_index::<i64>(0)
        .expect("a count")
}

on_every_backend!(
    cascaded_deletes_reach_the_target,
    cascaded_deletes,
    flavor = "multi_thread",
    worker_threads = 4
);

/// A target whose table shape drifted from the source's (a column of another type) is
/// refused before any row moves, with the column named, and the move rolls back.
async fn drifted_target(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let sf = provisioned(&tenancy, &["a", "b"]).await;
    let target = target_for(&test, 2);
    let halting = Mover::new(&tenancy, options(Some(HaltAt::After(Phase::Prepare))));
    let first = halting.start::<Migrator>(sf, target.clone()).await;
    assert!(
        matches!(first, Err(TenancyError::Halted { .. })),
        "{backend}: {first:?}"
    );
    let conn = database_target(&target).await;
    conn.execute_unprepared(match backend {
        Backend::Postgres => "ALTER TABLE customers ALTER COLUMN phone TYPE text",
        _ => "ALTER TABLE customers MODIFY phone TEXT",
    })
    .await
    .expect("alter");
    let _ = conn.close().await;
    let mover = Mover::new(&tenancy, options(None));
    let err = mover
        .resume::<Migrator>(sf)
        .await
        .expect_err("a drifted target is refused");
    let text = err.to_string();
    assert!(text.contains("customers.phone"), "{backend}: {text}");
    assert!(text.to_lowercase().contains("text"), "{backend}: {text}");
    assert_eq!(
        count_rows(&test.db, "customers", sf).await,
        2,
        "{backend}: the source is untouched"
    );
    mover.rollback(sf).await.expect("rollback");
    assert_eq!(
        tenancy.placement(sf).await.expect("placement"),
        Placement::Shared
    );
    test.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_drifted_target_is_refused() {
    drifted_target(Backend::Postgres).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn mysql_drifted_target_is_refused() {
    drifted_target(Backend::MySql).await;
}

/// A `json` column has no hash function in PostgreSQL, so validation hashes such a table's
/// rows as text: the move still validates, and a json value changed on the target behind
/// the mover's back is still caught.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_json_column_is_validated() {
    let Some((test, tenancy)) = env(Backend::Postgres, Duration::from_millis(200)).await else {
        return;
    };
    let sf = provisioned(&tenancy, &["a", "b", "c"]).await;
    let add = "ALTER TABLE customers ADD COLUMN prefs json";
    test.db.execute_unprepared(add).await.expect("add json");
    test.db
        .execute_unprepared("UPDATE customers SET prefs = json_build_object('lang', first_name)")
        .await
        .expect("set json");
    let target = target_for(&test, 2);
    let halting = Mover::new(&tenancy, options(Some(HaltAt::After(Phase::Prepare))));
    assert!(halting.start::<Migrator>(sf, target.clone()).await.is_err());
    let conn = database_target(&target).await;
    conn.execute_unprepared(add)
        .await
        .expect("add json on the target");
    let halting = Mover::new(&tenancy, options(Some(HaltAt::After(Phase::CatchUp))));
    assert!(halting.resume::<Migrator>(sf).await.is_err());
    // A json value that differs is caught ...
    // (Past the target guard, as someone who knows the protocol would.)
    let raw = RawTarget::open(&test, &target).await;
    let tamper = |value: &'static str| {
        let raw = &raw;
        async move {
            let sql = format!("UPDATE customers SET prefs = '{value}' WHERE first_name = 'b'");
            assert_eq!(raw.write_behind_the_guard(&sql, sf, []).await, 1, "tamper");
        }
    };
    tamper(r#"{"lang": "xx"}"#).await;
    let mover = Mover::new(&tenancy, options(None));
    let err = mover
        .resume::<Migrator>(sf)
        .await
        .expect_err("the tampered json is caught");
    assert!(
        matches!(&err, TenancyError::Validation { table, .. } if table == "customers"),
        "{err}"
    );
    // ... and with the value put back, validation passes (the column is hashed as text).
    tamper(r#"{"lang" : "b"}"#).await;
    raw.close().await;
    let _ = conn.close().await;
    mover
        .cutover::<Migrator>(sf)
        .await
        .unwrap_or_else(|e| panic!("validation with a json column: {e}"));
    assert_eq!(tenancy.placement(sf).await.expect("placement"), target);
    mover.complete(sf, true).await.expect("complete");
    test.teardown().await;
}

/// Rows changed during a move reach a database target through the catch-up and the fenced
/// drain (the rows as JSON, each value parsed by its column type's input function), not the
/// bulk copy: every value arrives exactly as it was, `json` documents byte for byte and
/// arrays with their bounds. The mover's own validation hashes the rows' text; the test
/// also compares every row's text on both sides.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_changed_rows_of_every_type_replay_exactly() {
    tenancy_tests::movekit::bounded(module_path!(), every_type_replays_exactly()).await
}

async fn every_type_replays_exactly() {
    let Some((test, tenancy)) = env(Backend::Postgres, Duration::from_millis(200)).await else {
        return;
    };
    let sf = provisioned(&tenancy, &["a", "b", "c"]).await;
    let add = "ALTER TABLE customers ADD COLUMN doc json, ADD COLUMN docb jsonb, \
               ADD COLUMN nums int[], ADD COLUMN ratio float8, ADD COLUMN amount numeric, \
               ADD COLUMN raw bytea, ADD COLUMN seen timestamptz, ADD COLUMN note text";
    test.db.execute_unprepared(add).await.expect("add columns");
    let target = Placement::Database {
        url: test.sibling_url("tenancy_test_f"),
    };
    let halting = Mover::new(&tenancy, options(Some(HaltAt::After(Phase::Prepare))));
    assert!(halting.start::<Migrator>(sf, target.clone()).await.is_err());
    let conn = database_target(&target).await;
    conn.execute_unprepared(add)
        .await
        .expect("add the columns on the target");
    // The copy has the rows as they were; every change from here on is replayed.
    let halting = Mover::new(&tenancy, options(Some(HaltAt::After(Phase::Copy))));
    assert!(halting.resume::<Migrator>(sf).await.is_err());
    let changes = [
        r#"UPDATE customers SET doc = '{ "x" :  1, "x": 2 }', docb = '{"b": 1, "a": [1, 2.50]}',
             nums = '[2:3]={7,NULL}', ratio = '-0', amount = 'NaN', raw = '\x00ff5c27',
             seen = '2026-01-02 03:04:05.123456+05:30',
             note = E'tab\there\nnew line "quoted" \\ back, \u00e9t\u00e9'
           WHERE first_name = 'a'"#,
        r#"UPDATE customers SET doc = '"just a string"', docb = 'null', nums = '{}',
             ratio = 'Infinity', amount = '12345678901234567890.000000000001', raw = '',
             seen = 'infinity', note = ''
           WHERE first_name = 'b'"#,
        // Still all NULL in the new columns, changed elsewhere.
        "UPDATE customers SET last_name = 'changed' WHERE first_name = 'c'",
    ];
    for sql in changes {
        let sql = format!("{sql} AND storefront_id = '{sf}'");
        let done = test.db.execute_unprepared(&sql).await.expect("change");
        assert!(done.rows_affected() > 0, "{sql}");
    }
    test.db
        .execute_unprepared(&format!(
            "INSERT INTO customers (id, storefront_id, email, first_name, last_name, phone, \
               created_at, updated_at, doc, nums, ratio, amount) \
             VALUES (gen_random_uuid(), '{sf}', 'new@example.com', 'new', 'row', NULL, now(), now(), \
               '[1,  {{\"a\" : null}}]', ARRAY[[1,2],[3,4]], 0.1::float8 + 0.2::float8, 1e-20)"
        ))
        .await
        .expect("insert");
    let mover = Mover::new(&tenancy, options(None));
    mover
        .cutover::<Migrator>(sf)
        .await
        .unwrap_or_else(|e| panic!("the replayed rows validate: {e}"));
    assert_eq!(tenancy.placement(sf).await.expect("placement"), target);
    let rows = |db: sea_orm::DatabaseConnection| async move {
        let sql =
            format!("SELECT c::text FROM customers c WHERE storefront_id = '{sf}' ORDER BY id");
        let rows = db
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                sql,
            ))
            .await
            .expect("rows");
        rows.iter()
            .map(|r| r.try_get_by_index::<String>(0).expect("text"))
            .collect::<Vec<_>>()
    };
    let source = rows(test.db.clone()).await;
    let replayed = rows(conn.clone()).await;
    assert_eq!(source.len(), 4, "{source:#?}");
    assert_eq!(replayed, source, "every value replayed exactly");
    assert!(
        replayed.iter().any(|r| r.contains("[2:3]={7,NULL}")),
        "{replayed:#?}"
    );
    let _ = conn.close().await;
    mover.complete(sf, true).await.expect("complete");
    test.teardown().await;
}

/// A second process that does not watch the directory caches the old placement for an
/// hour. After the cutover its writes
/// are refused by the fence on the old side (with no retry budget, the refusal reaches
/// it), and with the default budget they succeed on the new side after a refresh.
async fn stale_cache(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let sf = provisioned(&tenancy, &["a", "b"]).await;
    // Processes that do not watch the directory: they trust their caches for an hour.
    let stale = unwatched_process(&test, Duration::from_secs(3600), Duration::from_secs(20)).await;
    let stale_no_retry = unwatched_process(&test, Duration::from_secs(3600), Duration::ZERO).await;
    for t in [&stale, &stale_no_retry] {
        assert_eq!(t.placement(sf).await.expect("cached"), Placement::Shared);
        assert_eq!(state(&t.connection(sf)).await.customers.len(), 2);
    }
    let target = target_for(&test, 2);
    let mover = Mover::new(&tenancy, options(None));
    mover
        .start::<Migrator>(sf, target.clone())
        .await
        .expect("start");
    mover.cutover::<Migrator>(sf).await.expect("cutover");

    // Still cached as shared in both stale processes.
    assert_eq!(
        stale.placement(sf).await.expect("cached"),
        Placement::Shared
    );
    let raw = "UPDATE customers SET first_name = 'after-cutover'";
    let refused = stale_no_retry
        .connection(sf)
        .execute_unprepared(raw)
        .await
        .expect_err("fenced");
    assert!(is_fenced(&refused), "{backend}: {refused}");
    let shared_names = state(&tenancy.connection(sf)).await; // served from the target
    assert!(shared_names
        .customers
        .values()
        .all(|n| n != "after-cutover"));

    let db = stale.connection(sf);
    let updated = db
        .execute_unprepared(raw)
        .await
        .expect("retried on the new placement");
    assert_eq!(updated.rows_affected(), 2, "{backend}");
    let c = entities::customer::Entity::find()
        .all(&db)
        .await
        .expect("read");
    assert!(c.iter().all(|c| c.first_name == "after-cutover"));
    assert_eq!(
        stale.placement(sf).await.expect("refreshed"),
        target,
        "{backend}: the stale process refreshed"
    );
    // The old copy was not written to.
    let old = test
        .db
        .query_one_raw(tenancy_tests::stmt(
            test.db.get_database_backend(),
            "SELECT COUNT(*) FROM customers WHERE storefront_id = ? AND first_name = 'after-cutover'",
            [(*sf.as_uuid()).into()],
        ))
        .await
        .expect("count")
        .expect("row");
    assert_eq!(
        old.try_get_by_index::<i64>(0).expect("n"),
        0,
        "{backend}: a write reached the old placement"
    );
    test.teardown().await;
}

on_every_backend!(
    stale_cache_is_fenced_then_refreshed,
    stale_cache,
    flavor = "multi_thread",
    worker_threads = 4
);

/// A row changed on the target behind the mover's back is caught by validation, which
/// names the table and the key, and the cutover does not happen.
async fn corruption(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let sf = provisioned(&tenancy, &["a", "b", "c", "d", "e"]).await;
    // Enough rows for several validation chunks (at least 100 rows each), so the tampered
    // row sits in a middle one.
    let now = chrono::Utc::now();
    customer::Entity::insert_many((0..350).map(|i| customer::ActiveModel {
        id: sea_orm::Set(uuid::Uuid::new_v4()),
        email: sea_orm::Set(format!("bulk{i}@example.com")),
        first_name: sea_orm::Set(format!("bulk{i}")),
        last_name: sea_orm::Set("bulk".into()),
        created_at: sea_orm::Set(now),
        updated_at: sea_orm::Set(now),
        ..Default::default()
    }))
    .exec(&tenancy.connection(sf))
    .await
    .expect("bulk customers");
    let target = target_for(&test, 2);
    let halting = Mover::new(&tenancy, options(Some(HaltAt::After(Phase::CatchUp))));
    assert!(halting.start::<Migrator>(sf, target.clone()).await.is_err());
    let victim = state(&tenancy.connection(sf))
        .await
        .customers
        .keys()
        .nth(222)
        .copied()
        .expect("a customer");
    // A stray write on the target copy is refused by its guard, with an error that says
    // why; tampering past the guard (knowing the protocol) is caught by validation.
    let raw = RawTarget::open(&test, &target).await;
    let update =
        "UPDATE {t}customers SET last_name = 'tampered' WHERE storefront_id = ? AND id = ?";
    let values = || -> [sea_orm::Value; 2] { [(*sf.as_uuid()).into(), victim.into()] };
    let stray = raw.write(update, values()).await;
    assert!(
        stray
            .as_ref()
            .is_err_and(|e| tenancy_core::mover::is_fenced(e)
                && e.to_string().contains("only the mover writes here")),
        "{backend}: a stray write on the target must be refused by its guard, got {stray:?}"
    );
    let tampered = raw.write_behind_the_guard(update, sf, values()).await;
    assert_eq!(tampered, 1);
    raw.close().await;

    let mover = Mover::new(&tenancy, options(None));
    let err = mover
        .resume::<Migrator>(sf)
        .await
        .expect_err("validation must fail");
    match &err {
        TenancyError::Validation { table, keys, .. } => {
            assert_eq!(table, "customers", "{backend}: {err}");
            assert!(keys.contains(&victim.to_string()), "{backend}: {err}");
        }
        other => panic!("{backend}: expected a validation error, got {other}"),
    }
    assert!(err.to_string().contains(&victim.to_string()));
    let err = mover
        .cutover::<Migrator>(sf)
        .await
        .expect_err("cutover blocked");
    assert!(
        matches!(err, TenancyError::Validation { .. }),
        "{backend}: {err}"
    );
    assert_eq!(
        tenancy.placement(sf).await.expect("placement"),
        Placement::Shared,
        "{backend}: not cut over"
    );
    let status = mover.status(sf).await.expect("status").expect("move");
    assert!(
        status
            .error
            .as_deref()
            .is_some_and(|e| e.contains("customers")),
        "{backend}: {:?}",
        status.error
    );
    // The source still takes writes; rollback cleans up.
    tenancy
        .connection(sf)
        .execute_unprepared("UPDATE customers SET phone = '1'")
        .await
        .expect("write");
    mover.rollback(sf).await.expect("rollback");
    test.teardown().await;
}

on_every_backend!(
    corruption_is_caught,
    corruption,
    flavor = "multi_thread",
    worker_threads = 4
);

fn via_proxy(test: &TestDb, proxy: &Proxy) -> String {
    let url = test.sibling_url("tenancy_test_o");
    url.replacen("127.0.0.1:5432", &format!("127.0.0.1:{}", proxy.port), 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_database_to_database_on_another_server() {
    let Some((test, tenancy)) = env(Backend::Postgres, Duration::from_millis(200)).await else {
        return;
    };
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let sf = provisioned(&tenancy, &["a", "b", "c", "d"]).await;
    let mover = Mover::new(&tenancy, options(None));
    let first = Placement::Database {
        url: test.sibling_url("tenancy_test_o"),
    };
    mover
        .start::<Migrator>(sf, first.clone())
        .await
        .expect("start");
    mover.cutover::<Migrator>(sf).await.expect("cutover");
    mover.complete(sf, false).await.expect("complete");

    let other = Placement::Database {
        url: via_proxy(&test, &proxy),
    };
    let base = state(&tenancy.connection(sf)).await;
    let writers = Writers::spawn(&tenancy, sf, 2);
    tokio::time::sleep(Duration::from_millis(100)).await;
    mover
        .start::<Migrator>(sf, other.clone())
        .await
        .expect("start db -> other server");
    mover
        .cutover::<Migrator>(sf)
        .await
        .expect("cutover db -> other server");
    tokio::time::sleep(Duration::from_millis(150)).await;
    let written = writers.stop().await;
    assert!(written.errors.is_empty(), "{:?}", written.errors);
    assert_eq!(tenancy.placement(sf).await.expect("placement"), other);
    assert_eq!(
        state(&tenancy.connection(sf)).await,
        written.expected(&base)
    );
    mover.complete(sf, false).await.expect("complete");
    assert_eq!(
        state(&tenancy.connection(sf)).await,
        written.expected(&base)
    );
    proxy.stop();
    test.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn postgres_target_server_down_mid_move() {
    let Some((test, tenancy)) = env(Backend::Postgres, Duration::from_millis(200)).await else {
        return;
    };
    let proxy = Proxy::start("127.0.0.1:5432").await;
    let sf = provisioned(&tenancy, &["a", "b", "c", "d", "e", "f"]).await;
    let target = Placement::Database {
        url: via_proxy(&test, &proxy),
    };
    let base = state(&tenancy.connection(sf)).await;
    let writers = Writers::spawn(&tenancy, sf, 2);
    let halting = Mover::new(&tenancy, options(Some(HaltAt::MidCopy(2))));
    assert!(halting.start::<Migrator>(sf, target.clone()).await.is_err());
    proxy.stop();
    let mover = Mover::new(&tenancy, options(None));
    let err = mover
        .resume::<Migrator>(sf)
        .await
        .expect_err("the target is down");
    let message = err.to_string();
    assert!(message.contains(&sf.to_string()), "{message}");
    assert!(
        message.contains("127.0.0.1"),
        "the error names the server: {message}"
    );
    let status = mover.status(sf).await.expect("status").expect("move");
    assert!(status.error.is_some(), "the failure is recorded");

    let back = mover
        .rollback(sf)
        .await
        .expect("rollback works with the target down");
    assert_eq!(back.phase, Phase::RolledBack);
    assert!(
        back.error
            .as_deref()
            .is_some_and(|e| e.contains("left behind")),
        "{:?}",
        back.error
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    let written = writers.stop().await;
    assert!(written.errors.is_empty(), "{:?}", written.errors);
    assert_eq!(
        tenancy.placement(sf).await.expect("placement"),
        Placement::Shared
    );
    assert_eq!(
        state(&tenancy.connection(sf)).await,
        written.expected(&base)
    );
    // No capture is left on the source.
    let triggers = test
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT COUNT(*) FROM pg_trigger WHERE tgname LIKE 'tncap_%'",
        ))
        .await
        .expect("triggers")
        .expect("row");
    assert_eq!(triggers.try_get_by_index::<i64>(0).expect("n"), 0);
    // Drop the database the move left behind, directly (its "server" is down).
    if let (Placement::Database { url }, Ok(admin)) = (
        &target,
        sea_orm::Database::connect("postgres://postgres@127.0.0.1:5432/postgres").await,
    ) {
        if let Some(name) = tenancy_tests::database_of(url) {
            let _ = admin
                .execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                .await;
        }
    }
    test.teardown().await;
}

/// A trigger that makes every customer row written to a database sleep 50 ms, and what
/// removes it.
fn throttle_statements(backend: Backend) -> (Vec<String>, Vec<String>) {
    match backend {
        Backend::Postgres => (
            vec![
                "CREATE FUNCTION throttle_test() RETURNS trigger AS $$ BEGIN PERFORM pg_sleep(0.05); RETURN NEW; END $$ LANGUAGE plpgsql".to_string(),
                "CREATE TRIGGER throttle_test BEFORE INSERT OR UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION throttle_test()".to_string(),
            ],
            vec!["DROP TRIGGER throttle_test ON customers".to_string()],
        ),
        _ => (
            vec!["CREATE TRIGGER throttle_test BEFORE INSERT ON customers FOR EACH ROW SET @throttled = SLEEP(0.05)".to_string()],
            vec!["DROP TRIGGER throttle_test".to_string()],
        ),
    }
}

/// A tight pause budget and a short time to meet it, for the convergence tests.
fn converging_options() -> MoveOptions {
    MoveOptions {
        batch_size: 50,
        catch_up_batch: 20,
        max_lag: 5,
        retention: Duration::ZERO,
        pause_budget: Duration::from_millis(100),
        converge_within: Duration::from_secs(3),
        ..MoveOptions::default()
    }
}

/// Writers that log changes faster than the catch-up can replay them (the target is
/// throttled: every customer row written there sleeps): the cutover fences nothing past
/// its pause budget, says why with both rates, and the storefront keeps serving from the
/// source with no error to the writers. With the writers stopped and the target fast
/// again, the same move cuts over with every acknowledged write.
async fn cannot_converge(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    tenancy_tests::movekit::bounded("the convergence test", async {
        let sf = provisioned(&tenancy, &["a", "b", "c"]).await;
        let target = Placement::Database {
            url: test.sibling_url("tenancy_test_conv"),
        };
        let mover = Mover::new(&tenancy, converging_options());
        mover
            .start::<Migrator>(sf, target.clone())
            .await
            .expect("start");
        let raw = RawTarget::open(&test, &target).await;
        let (throttle, unthrottle) = throttle_statements(backend);
        for sql in &throttle {
            raw.conn
                .execute_unprepared(sql)
                .await
                .expect("throttle the target");
        }
        let base = state(&tenancy.connection(sf)).await;
        let writers = Writers::spawn(&tenancy, sf, 4);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let err = mover
            .cutover::<Migrator>(sf)
            .await
            .expect_err("writers outpace the throttled replay");
        assert!(
            matches!(err, TenancyError::CannotConverge { .. }),
            "{backend}: {err}"
        );
        let message = err.to_string();
        assert!(
            message.contains("cannot converge")
                && message.contains("pause budget")
                && message.contains("/s"),
            "{backend}: {message}"
        );
        // Nothing was fenced: served from the source, and the writers went on.
        assert_eq!(
            tenancy.placement(sf).await.expect("placement"),
            Placement::Shared,
            "{backend}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        let written = writers.stop().await;
        assert!(
            written.errors.is_empty(),
            "{backend}: writers saw {:?}",
            written.errors
        );
        assert!(written.writes > 0, "{backend}");
        for sql in &unthrottle {
            raw.conn.execute_unprepared(sql).await.expect("unthrottle");
        }
        raw.close().await;
        mover
            .cutover::<Migrator>(sf)
            .await
            .expect("with the writers stopped, the move converges");
        assert_eq!(tenancy.placement(sf).await.expect("placement"), target);
        assert_eq!(
            state(&tenancy.connection(sf)).await,
            written.expected(&base),
            "{backend}: every acknowledged write is on the target"
        );
        mover.complete(sf, true).await.expect("complete");
    })
    .await;
    test.teardown().await;
}

/// SQLite has no sleep to throttle its target with; the servers do.
mod a_move_that_cannot_converge_fences_nothing {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        cannot_converge(Backend::Postgres).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mysql() {
        cannot_converge(Backend::MySql).await
    }
}

/// The same for a rollback after the cutover: the target serves, and its writers log
/// changes faster than the replay onto the source can take them (the source is throttled
/// now). The rollback fences nothing past its pause budget, says why, and the storefront
/// keeps serving from the target with no error to the writers, the move still switched;
/// with the writers stopped, the same rollback brings every acknowledged write back.
async fn rollback_cannot_converge(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    tenancy_tests::movekit::bounded("the rollback convergence test", async {
        let sf = provisioned(&tenancy, &["a", "b", "c"]).await;
        let target = Placement::Database {
            url: test.sibling_url("tenancy_test_rconv"),
        };
        let mover = Mover::new(&tenancy, converging_options());
        mover
            .start::<Migrator>(sf, target.clone())
            .await
            .expect("start");
        mover.cutover::<Migrator>(sf).await.expect("cutover");
        let (throttle, unthrottle) = throttle_statements(backend);
        for sql in &throttle {
            test.db
                .execute_unprepared(sql)
                .await
                .expect("throttle the source");
        }
        let base = state(&tenancy.connection(sf)).await;
        let writers = Writers::spawn(&tenancy, sf, 4);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let err = mover
            .rollback(sf)
            .await
            .expect_err("writers outpace the throttled replay back");
        assert!(
            matches!(
                err,
                TenancyError::CannotConverge {
                    step: "rollback",
                    ..
                }
            ),
            "{backend}: {err}"
        );
        let message = err.to_string();
        assert!(
            message.contains("rollback of storefront")
                && message.contains("run the rollback again"),
            "{backend}: {message}"
        );
        // Nothing was fenced: served from the target, the move still switched, and the
        // writers went on.
        assert_eq!(
            tenancy.placement(sf).await.expect("placement"),
            target,
            "{backend}"
        );
        let record = mover.status(sf).await.expect("status").expect("record");
        assert_eq!(record.phase, Phase::Switched, "{backend}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        let written = writers.stop().await;
        assert!(
            written.errors.is_empty(),
            "{backend}: writers saw {:?}",
            written.errors
        );
        assert!(written.writes > 0, "{backend}");
        for sql in &unthrottle {
            test.db.execute_unprepared(sql).await.expect("unthrottle");
        }
        mover
            .rollback(sf)
            .await
            .expect("with the writers stopped, the rollback converges");
        assert_eq!(
            tenancy.placement(sf).await.expect("placement"),
            Placement::Shared
        );
        assert_eq!(
            state(&tenancy.connection(sf)).await,
            written.expected(&base),
            "{backend}: every acknowledged write is back on the source"
        );
    })
    .await;
    test.teardown().await;
}

mod a_rollback_that_cannot_converge_fences_nothing {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn postgres() {
        rollback_cannot_converge(Backend::Postgres).await
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn mysql() {
        rollback_cannot_converge(Backend::MySql).await
    }
}
