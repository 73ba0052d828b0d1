//! The move protocol's failure paths, one test per hole: a failure just after the
//! directory flip, a `complete` that stopped halfway, a rollback asked of a move cut over
//! without rollback, a second mover acting on a move another one holds, a fence row that
//! went missing, a primary key changed after the full validation, long-lived connections
//! across `complete`, a row the copy had to skip, and a missing column taken for a missing
//! table. Each checks what a customer would lose (a write, a row, which side serves), not
//! just an error.

use std::time::Duration;

use entities::customer;
use migration::Migrator;
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, Set};
use sea_orm_migration::MigratorTrait;
use tenancy_core::{
    mover::{is_fenced, HaltAt, MoveOptions, Mover, Phase},
    Placement, StorefrontId, Tenancy,
};
use tenancy_tests::{
    matrix::seed,
    migrators::MigratorWithTickets,
    movekit::{bounded, count_rows, env, tenancy_with, RawTarget},
    on_every_backend, stmt, Backend, TestDb,
};
use uuid::Uuid;

fn options(halt_at: Option<HaltAt>) -> MoveOptions {
    MoveOptions {
        batch_size: 5,
        catch_up_batch: 200,
        retention: Duration::ZERO,
        max_lag: 50,
        halt_at,
        ..MoveOptions::default()
    }
}

async fn provisioned(tenancy: &Tenancy) -> StorefrontId {
    let id = StorefrontId::new_random();
    tenancy
        .create_storefront::<Migrator>(id, Placement::Shared)
        .await
        .expect("provision");
    seed(&tenancy.connection(id), "p", &["a", "b", "c"], 2).await;
    id
}

fn target_for(test: &TestDb) -> Placement {
    if test.backend == Backend::Sqlite {
        Placement::Database {
            url: test.sibling_url("tenancy_test_p"),
        }
    } else {
        Placement::Schema {
            schema: test.schema_name(),
        }
    }
}

/// A raw write to the storefront's rows in the shared database (the source of every move
/// here), as a process with a stale placement would make it.
async fn raw_write_on_source(test: &TestDb, sf: StorefrontId) -> Result<u64, sea_orm::DbErr> {
    test.db
        .execute_raw(stmt(
            test.db_backend(),
            "UPDATE customers SET phone = 'raw' WHERE storefront_id = ?",
            [(*sf.as_uuid()).into()],
        ))
        .await
        .map(|r| r.rows_affected())
}

/// A customer written through the storefront's connection (wherever it is served).
async fn new_customer(tenancy: &Tenancy, sf: StorefrontId, email: &str) -> Uuid {
    let now = chrono::Utc::now();
    customer::ActiveModel {
        id: Set(Uuid::new_v4()),
        email: Set(email.into()),
        first_name: Set("late".into()),
        last_name: Set("writer".into()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&tenancy.connection(sf))
    .await
    .expect("customer")
    .id
}

async fn served_from(tenancy: &Tenancy, sf: StorefrontId) -> Placement {
    tenancy
        .directory()
        .expect("directory")
        .get(sf)
        .await
        .expect("directory read")
        .expect("storefront")
        .placement
}

/// Hole 1: the cutover fails just after the directory flipped (a lost connection, a failed
/// read-back). The flip and the move's phase are one step, so the move is switched; the
/// source stays fenced (a stale process's write there is refused, not taken and lost), and
/// a resume does not run the cutover again.
async fn failure_after_the_flip(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let sf = provisioned(&tenancy).await;
    let target = target_for(&test);
    let mover = Mover::new(&tenancy, options(Some(HaltAt::AfterFlip)));
    mover
        .start::<Migrator>(sf, target.clone())
        .await
        .expect("start");
    let err = mover
        .cutover::<Migrator>(sf)
        .await
        .expect_err("the injected failure");
    assert_eq!(served_from(&tenancy, sf).await, target, "{backend}: {err}");
    let status = mover.status(sf).await.expect("status").expect("move");
    assert_eq!(
        status.phase,
        Phase::Switched,
        "{backend}: the flip happened, so the move is switched ({err})"
    );
    let stale = raw_write_on_source(&test, sf).await;
    assert!(
        stale.as_ref().is_err_and(is_fenced),
        "{backend}: a write on the old side must be refused after the flip, got {stale:?}"
    );
    let late = new_customer(&tenancy, sf, "after-flip@example.com").await;
    let resumed = Mover::new(&tenancy, options(None))
        .resume::<Migrator>(sf)
        .await
        .expect("resume");
    assert_eq!(resumed.phase, Phase::Switched, "{backend}");
    let seen = customer::Entity::find_by_id(late)
        .one(&tenancy.connection(sf))
        .await
        .expect("read");
    assert!(
        seen.is_some(),
        "{backend}: the write after the flip is served"
    );
    test.teardown().await;
}

on_every_backend!(
    failure_after_the_flip_keeps_one_side_writable,
    |backend| bounded(module_path!(), failure_after_the_flip(backend)),
    flavor = "multi_thread",
    worker_threads = 2
);

/// The target guard: until the cutover the database refuses every write of the storefront
/// on the target's copy but the mover's (an insert, an update and a delete, sent straight
/// to the target as a stray process would), with an error that says why; the move still
/// validates and cuts over, the target then takes the storefront's writes and logs them,
/// so a rollback brings them back.
async fn target_guard(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let sf = provisioned(&tenancy).await;
    let target = target_for(&test);
    let mover = Mover::new(&tenancy, options(None));
    let ready = mover
        .start::<Migrator>(sf, target.clone())
        .await
        .expect("start");
    assert_eq!(ready.phase, Phase::Ready, "{backend}");
    let raw = RawTarget::open(&test, &target).await;
    let now = if backend == Backend::Postgres {
        "now()"
    } else {
        "CURRENT_TIMESTAMP"
    };
    let stray_id = Uuid::new_v4();
    let insert = format!(
        "INSERT INTO {{t}}customers (id, storefront_id, email, first_name, last_name, created_at, updated_at) \
         VALUES (?, ?, 'stray@example.com', 's', 't', {now}, {now})"
    );
    let sfv = || -> sea_orm::Value { (*sf.as_uuid()).into() };
    for (what, result) in [
        ("insert", raw.write(&insert, [stray_id.into(), sfv()]).await),
        (
            "update",
            raw.write(
                "UPDATE {t}customers SET last_name = 'stray' WHERE storefront_id = ?",
                [sfv()],
            )
            .await,
        ),
        (
            "delete",
            raw.write(
                "DELETE FROM {t}order_items WHERE storefront_id = ?",
                [sfv()],
            )
            .await,
        ),
    ] {
        assert!(
            result.as_ref().is_err_and(|e| is_fenced(e)
                && e.to_string().contains("only the mover writes here")
                && e.to_string().contains(&sf.to_string())),
            "{backend}: a stray {what} on the target before the cutover must be refused by the guard, got {result:?}"
        );
    }
    let switched = mover.cutover::<Migrator>(sf).await.expect("cutover");
    assert_eq!(switched.phase, Phase::Switched, "{backend}");
    assert_eq!(served_from(&tenancy, sf).await, target, "{backend}");
    let stray = customer::Entity::find_by_id(stray_id)
        .one(&tenancy.connection(sf))
        .await
        .expect("read");
    assert!(stray.is_none(), "{backend}: the stray insert left nothing");
    // The guard is lifted: the storefront's writes land on the target, logged.
    let late = new_customer(&tenancy, sf, "after-guard@example.com").await;
    let direct = raw
        .write(
            "UPDATE {t}customers SET phone = 'direct' WHERE storefront_id = ?",
            [sfv()],
        )
        .await;
    assert!(
        direct.as_ref().is_ok_and(|n| *n > 0),
        "{backend}: once it serves, the target takes writes: {direct:?}"
    );
    raw.close().await;
    mover.rollback(sf).await.expect("rollback");
    assert_eq!(
        served_from(&tenancy, sf).await,
        Placement::Shared,
        "{backend}"
    );
    let back = customer::Entity::find_by_id(late)
        .one(&tenancy.connection(sf))
        .await
        .expect("read");
    assert!(
        back.is_some(),
        "{backend}: a write taken by the target after the cutover is replayed by the rollback"
    );
    test.teardown().await;
}

on_every_backend!(
    a_stray_write_on_the_target_is_refused,
    |backend| bounded(module_path!(), target_guard(backend)),
    flavor = "multi_thread",
    worker_threads = 2
);

/// A crash between the flip and lifting the target guard: neither side takes the
/// storefront's writes (the source is fenced, the target still guarded), never both; a
/// resume lifts the guard and the write goes through on the target.
async fn crash_before_unguard(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let sf = provisioned(&tenancy).await;
    let target = target_for(&test);
    let mover = Mover::new(&tenancy, options(Some(HaltAt::BeforeUnguard)));
    mover
        .start::<Migrator>(sf, target.clone())
        .await
        .expect("start");
    let err = mover
        .cutover::<Migrator>(sf)
        .await
        .expect_err("the injected crash");
    assert_eq!(served_from(&tenancy, sf).await, target, "{backend}: {err}");
    let on_source = raw_write_on_source(&test, sf).await;
    assert!(
        on_source.as_ref().is_err_and(is_fenced),
        "{backend}: the source stays fenced, got {on_source:?}"
    );
    let raw = RawTarget::open(&test, &target).await;
    let on_target = raw
        .write(
            "UPDATE {t}customers SET phone = 'early' WHERE storefront_id = ?",
            [(*sf.as_uuid()).into()],
        )
        .await;
    raw.close().await;
    assert!(
        on_target.as_ref().is_err_and(is_fenced),
        "{backend}: the target is still guarded, got {on_target:?}"
    );
    let resumed = Mover::new(&tenancy, options(None))
        .resume::<Migrator>(sf)
        .await
        .expect("resume");
    assert_eq!(resumed.phase, Phase::Switched, "{backend}");
    let late = new_customer(&tenancy, sf, "after-resume@example.com").await;
    let seen = customer::Entity::find_by_id(late)
        .one(&tenancy.connection(sf))
        .await
        .expect("read");
    assert!(seen.is_some(), "{backend}: the target serves after resume");
    test.teardown().await;
}

on_every_backend!(
    a_crash_before_the_guard_lifts_leaves_no_side_writable,
    |backend| bounded(module_path!(), crash_before_unguard(backend)),
    flavor = "multi_thread",
    worker_threads = 2
);

/// A test database, a Tenancy and a shared storefront with the `tickets` tables
/// ([`MigratorWithTickets`]) on top of the application's.
async fn tickets_env(backend: Backend) -> Option<(TestDb, Tenancy, StorefrontId)> {
    let test = TestDb::migrated(backend).await?;
    MigratorWithTickets::up(&test.db, None)
        .await
        .expect("tickets on the shared database");
    let registry = entities::registry()
        .with_table("tickets", "storefront_id")
        .with_global("ticket_kinds");
    let tenancy = tenancy_with(&test, Duration::from_millis(200), registry).await;
    let sf = StorefrontId::new_random();
    tenancy
        .create_storefront::<MigratorWithTickets>(sf, Placement::Shared)
        .await
        .expect("provision");
    Some((test, tenancy, sf))
}

/// Keys the database hands out (a `bigserial`, `AUTO_INCREMENT`, `AUTOINCREMENT`): the copy
/// writes them explicitly, so the target's sequence must be moved past them before it
/// serves, and the source's before it serves again after a rollback; else the first insert
/// takes a key already used.
async fn database_keys(backend: Backend) {
    let Some((test, tenancy, sf)) = tickets_env(backend).await else {
        return;
    };
    let insert = "INSERT INTO {t}tickets (storefront_id, note) VALUES (?, 'x')";
    let sfv = || -> sea_orm::Value { (*sf.as_uuid()).into() };
    for _ in 0..5 {
        test.db
            .execute_raw(stmt(test.db_backend(), &insert.replace("{t}", ""), [sfv()]))
            .await
            .expect("a ticket on the source");
    }
    let target = target_for(&test);
    let mover = Mover::new(&tenancy, options(None));
    mover
        .start::<MigratorWithTickets>(sf, target.clone())
        .await
        .expect("start");
    mover
        .cutover::<MigratorWithTickets>(sf)
        .await
        .expect("cutover");
    let raw = RawTarget::open(&test, &target).await;
    let on_target = raw.write(insert, [sfv()]).await;
    raw.close().await;
    assert!(
        on_target.is_ok(),
        "{backend}: an insert on the target after the cutover draws an unused key: {on_target:?}"
    );
    mover.rollback(sf).await.expect("rollback");
    let on_source = test
        .db
        .execute_raw(stmt(test.db_backend(), &insert.replace("{t}", ""), [sfv()]))
        .await;
    assert!(
        on_source.is_ok(),
        "{backend}: an insert on the source after the rollback draws an unused key: {on_source:?}"
    );
    let count = count_rows(&test.db, "tickets", sf).await;
    assert_eq!(
        count, 7,
        "{backend}: five copied, one from the target, one after"
    );
    test.teardown().await;
}

on_every_backend!(
    keys_the_database_hands_out_do_not_collide_after_a_move,
    |backend| bounded(module_path!(), database_keys(backend)),
    flavor = "multi_thread",
    worker_threads = 2
);

/// Keys from two sequences meet: storefront B holds tickets 6..10 in the shared tables,
/// A's target hands out 6 after the cutover, and A rolls back. The replay must never take
/// B's row over (an upsert on the key alone rewrote it as A's): the rollback stops, naming
/// the key, and B keeps its rows.
async fn keys_of_another_storefront(backend: Backend) {
    keys_of_another_storefront_on(backend, None).await
}

/// [`keys_of_another_storefront`] with the target on `server`, another server of the fleet
/// (between MySQL servers the replay writes rows it read, not `INSERT ... SELECT`).
async fn keys_of_another_storefront_on(
    backend: Backend,
    server: Option<tenancy_tests::fleet::Server>,
) {
    let target = match server {
        Some(server) => match server.database_url("tenancy_test_p") {
            Some(url) => Some(Placement::Database { url }),
            None => return,
        },
        None => None,
    };
    let Some((test, tenancy, a)) = tickets_env(backend).await else {
        return;
    };
    let b = StorefrontId::new_random();
    tenancy
        .create_storefront::<MigratorWithTickets>(b, Placement::Shared)
        .await
        .expect("provision b");
    let insert = "INSERT INTO {t}tickets (storefront_id, note) VALUES (?, ?)";
    for (sf, note) in [(a, "a"), (b, "b")] {
        for _ in 0..5 {
            test.db
                .execute_raw(stmt(
                    test.db_backend(),
                    &insert.replace("{t}", ""),
                    [(*sf.as_uuid()).into(), note.into()],
                ))
                .await
                .expect("a ticket");
        }
    }
    let target = target.unwrap_or_else(|| target_for(&test));
    let mover = Mover::new(&tenancy, options(None));
    mover
        .start::<MigratorWithTickets>(a, target.clone())
        .await
        .expect("start");
    mover
        .cutover::<MigratorWithTickets>(a)
        .await
        .expect("cutover");
    let raw = RawTarget::open(&test, &target).await;
    raw.write(insert, [(*a.as_uuid()).into(), "a-late".into()])
        .await
        .expect("a ticket on the target, key 6");
    raw.close().await;
    let err = mover
        .rollback(a)
        .await
        .expect_err("the rollback meets B's key");
    assert!(
        err.to_string().contains("another storefront"),
        "{backend}: the refusal names the cause: {err}"
    );
    let kept = test
        .db
        .query_one_raw(stmt(
            test.db_backend(),
            "SELECT COUNT(*) FROM tickets WHERE storefront_id = ? AND note = 'b'",
            [(*b.as_uuid()).into()],
        ))
        .await
        .expect("count")
        .expect("a row")
        .try_get_by_index::<i64>(0)
        .expect("a count");
    assert_eq!(
        kept, 5,
        "{backend}: storefront B keeps every one of its rows"
    );
    test.teardown().await;
}

on_every_backend!(
    a_key_another_storefront_holds_is_never_taken_over,
    |backend| bounded(module_path!(), keys_of_another_storefront(backend)),
    flavor = "multi_thread",
    worker_threads = 2
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_another_storefront_holds_is_never_taken_over_across_mysql_servers() {
    bounded(
        module_path!(),
        keys_of_another_storefront_on(Backend::MySql, Some(tenancy_tests::fleet::Server::MySql2)),
    )
    .await
}

/// Rows changed by a foreign-key action from an unscoped table: deleting a global
/// `ticket_kinds` row cascades into the storefront's tickets. MySQL fires no trigger for a
/// cascaded change, so the global table's own trigger logs them; without it the target
/// kept the deleted tickets and served them after the cutover.
async fn global_cascade(backend: Backend) {
    let Some((test, tenancy, sf)) = tickets_env(backend).await else {
        return;
    };
    let db = test.db_backend();
    let sfv = || -> sea_orm::Value { (*sf.as_uuid()).into() };
    let kinds = "INSERT INTO {t}ticket_kinds (code) VALUES ('bug'), ('idea')";
    test.db
        .execute_unprepared(&kinds.replace("{t}", ""))
        .await
        .expect("kinds on the source");
    for kind in ["bug", "bug", "bug", "idea", "idea"] {
        test.db
            .execute_raw(stmt(
                db,
                "INSERT INTO tickets (storefront_id, note, kind) VALUES (?, 'x', ?)",
                [sfv(), kind.into()],
            ))
            .await
            .expect("a ticket");
    }
    let target = target_for(&test);
    Mover::new(&tenancy, options(Some(HaltAt::After(Phase::Prepare))))
        .start::<MigratorWithTickets>(sf, target.clone())
        .await
        .expect_err("halted after prepare");
    // The target's own copy of the global table (global rows are the application's to
    // provision; the mover copies the storefront's rows).
    let raw = RawTarget::open(&test, &target).await;
    raw.write(kinds, []).await.expect("kinds on the target");
    let mover = Mover::new(&tenancy, options(None));
    let ready = mover
        .resume::<MigratorWithTickets>(sf)
        .await
        .expect("to ready");
    assert_eq!(ready.phase, Phase::Ready, "{backend}");
    // After the full validation: a global delete takes three of the storefront's tickets.
    test.db
        .execute_unprepared("DELETE FROM ticket_kinds WHERE code = 'bug'")
        .await
        .expect("a global delete");
    mover
        .cutover::<MigratorWithTickets>(sf)
        .await
        .expect("cutover");
    let served = count_rows(&raw.conn, &format!("{}tickets", raw.prefix), sf).await;
    raw.close().await;
    assert_eq!(
        served, 2,
        "{backend}: the tickets deleted by the global cascade must not come back on the target"
    );
    test.teardown().await;
}

on_every_backend!(
    a_cascade_from_a_global_table_reaches_the_target,
    |backend| bounded(module_path!(), global_cascade(backend)),
    flavor = "multi_thread",
    worker_threads = 2
);

/// Errors by code: the fence is recognised by the trigger's refusal code carrying its
/// marker, not by text alone. A duplicate value that contains the marker (MySQL quotes the
/// value in its message) is the unique violation it is: not retried for the fence wait,
/// not reported as fenced.
async fn marker_in_a_value(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let sf = provisioned(&tenancy).await;
    let email = "tenancy_fenced@example.com";
    new_customer(&tenancy, sf, email).await;
    let now = chrono::Utc::now();
    let twice = customer::ActiveModel {
        id: Set(Uuid::new_v4()),
        email: Set(email.into()),
        first_name: Set("again".into()),
        last_name: Set("writer".into()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&tenancy.connection(sf))
    .await
    .expect_err("the email is taken");
    assert!(
        !is_fenced(&twice),
        "{backend}: a unique violation is not a fence, whatever its text: {twice}"
    );
    test.teardown().await;
}

on_every_backend!(
    a_value_carrying_the_fence_marker_is_not_a_fence,
    |backend| bounded(module_path!(), marker_in_a_value(backend))
);

/// Two storefronts whose ids share their first twelve digits (as time-ordered ids created
/// in the same millisecond do) move at once. Trigger names carry the whole id: with twelve
/// digits, SQLite kept the first storefront's triggers for the second (`IF NOT EXISTS`) and
/// MySQL replaced the first's with the second's, so one storefront's writes went unlogged
/// and were lost at its cutover.
async fn shared_id_prefix(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let first = Uuid::new_v4();
    let mut bytes = *Uuid::new_v4().as_bytes();
    bytes[..6].copy_from_slice(&first.as_bytes()[..6]);
    let pair = [first, Uuid::from_bytes(bytes)].map(|u| StorefrontId::try_from(u).expect("id"));
    for sf in pair {
        tenancy
            .create_storefront::<Migrator>(sf, Placement::Shared)
            .await
            .expect("provision");
        seed(&tenancy.connection(sf), "x", &["a", "b"], 1).await;
    }
    let mover = Mover::new(&tenancy, options(None));
    for sf in pair {
        mover
            .start::<Migrator>(sf, target_for(&test))
            .await
            .expect("start");
    }
    for sf in pair {
        tenancy
            .connection(sf)
            .execute_unprepared("UPDATE customers SET phone = 'while both move'")
            .await
            .expect("a write while both move");
    }
    for sf in pair {
        mover.cutover::<Migrator>(sf).await.expect("cutover");
    }
    for sf in pair {
        let phones: Vec<Option<String>> = customer::Entity::find()
            .all(&tenancy.connection(sf))
            .await
            .expect("read")
            .into_iter()
            .map(|c| c.phone)
            .collect();
        assert!(
            !phones.is_empty() && phones.iter().all(|p| p.as_deref() == Some("while both move")),
            "{backend}: storefront {sf}'s write while both moved is served after its cutover: {phones:?}"
        );
    }
    test.teardown().await;
}

on_every_backend!(
    storefronts_whose_ids_share_a_prefix_move_at_once,
    |backend| bounded(module_path!(), shared_id_prefix(backend)),
    flavor = "multi_thread",
    worker_threads = 2
);

/// A mover that stalls mid-copy past its lease (a GC pause, a frozen VM) while another
/// takes the move over and cuts over. When it wakes, its next page must not reach the
/// target that now serves: its write transaction finds the guard lifted and writes
/// nothing (before, it put back tickets deleted on the target since the cutover and raised
/// the guard again, leaving the storefront unwritable).
async fn zombie_mover(backend: Backend) {
    zombie_mover_with(backend, true).await;
}

/// The same stall, with the second mover taking the move over only up to `ready`: the
/// first one, waking, finds the second's fencing token on the target's fence row and acts
/// no more (the guard alone cannot tell two movers before the cutover apart).
async fn zombie_before_cutover(backend: Backend) {
    zombie_mover_with(backend, false).await;
}

async fn zombie_mover_with(backend: Backend, cut_over: bool) {
    let Some((test, tenancy, sf)) = tickets_env(backend).await else {
        return;
    };
    for _ in 0..7 {
        test.db
            .execute_raw(stmt(
                test.db_backend(),
                "INSERT INTO tickets (storefront_id, note) VALUES (?, 'z')",
                [(*sf.as_uuid()).into()],
            ))
            .await
            .expect("a ticket");
    }
    let lease = Duration::from_secs(1);
    let (frozen_tx, frozen_rx) = std::sync::mpsc::channel::<()>();
    let (wake_tx, wake_rx) = std::sync::mpsc::channel::<()>();
    let wake_rx = std::sync::Mutex::new(wake_rx);
    let froze = std::sync::atomic::AtomicBool::new(false);
    let zombie = Mover::new(
        &tenancy,
        MoveOptions {
            lease,
            ..options(None)
        },
    )
    .observe(move |r| {
        let mid_tickets = r.phase == Phase::Copy
            && r.progress
                .tables
                .iter()
                .any(|t| t.table == "tickets" && t.copied == 5 && !t.done);
        if mid_tickets && !froze.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let _ = frozen_tx.send(());
            // Frozen, holding the worker thread, until the test wakes it.
            tokio::task::block_in_place(|| {
                if let Ok(rx) = wake_rx.lock() {
                    let _ = rx.recv_timeout(Duration::from_secs(120));
                }
            });
        }
    });
    let target = target_for(&test);
    let moving = target.clone();
    let task = tokio::spawn(async move { zombie.start::<MigratorWithTickets>(sf, moving).await });
    tokio::task::block_in_place(|| frozen_rx.recv_timeout(Duration::from_secs(120)))
        .expect("the first mover stalls mid-copy");
    tokio::time::sleep(lease + Duration::from_millis(300)).await;
    let other = Mover::new(
        &tenancy,
        MoveOptions {
            lease: Duration::from_secs(30),
            ..options(None)
        },
    );
    other
        .resume::<MigratorWithTickets>(sf)
        .await
        .expect("the second mover takes the move over");
    if !cut_over {
        let _ = wake_tx.send(());
        let woke = task.await.expect("the first mover's task");
        assert!(
            woke.as_ref()
                .is_err_and(|e| e.to_string().contains("not as this mover left it")),
            "{backend}: the stalled mover's next write is refused on the side (not just its next save): {woke:?}"
        );
        other
            .cutover::<MigratorWithTickets>(sf)
            .await
            .expect("the second mover cuts over");
        let served = tenancy_tests::movekit::count_rows(&test.db, "tickets", sf).await;
        let raw = RawTarget::open(&test, &target).await;
        let on_target = count_rows(&raw.conn, &format!("{}tickets", raw.prefix), sf).await;
        raw.close().await;
        assert_eq!(
            on_target, served,
            "{backend}: the target holds the source's tickets"
        );
        test.teardown().await;
        return;
    }
    other
        .cutover::<MigratorWithTickets>(sf)
        .await
        .expect("and cuts over");
    let raw = RawTarget::open(&test, &target).await;
    raw.write(
        "DELETE FROM {t}tickets WHERE storefront_id = ?",
        [(*sf.as_uuid()).into()],
    )
    .await
    .expect("the served target takes a delete");
    let _ = wake_tx.send(());
    let woke = task.await.expect("the first mover's task");
    assert!(
        woke.is_err(),
        "{backend}: the stalled mover cannot go on: {woke:?}"
    );
    let back = count_rows(&raw.conn, &format!("{}tickets", raw.prefix), sf).await;
    let writable = raw
        .write(
            "INSERT INTO {t}tickets (storefront_id, note) VALUES (?, 'after')",
            [(*sf.as_uuid()).into()],
        )
        .await;
    raw.close().await;
    assert_eq!(
        back, 0,
        "{backend}: the stalled mover's page put deleted tickets back on the serving target"
    );
    assert!(
        writable.is_ok(),
        "{backend}: the serving target stays writable: {writable:?}"
    );
    test.teardown().await;
}

on_every_backend!(
    a_mover_that_lost_its_lease_before_the_cutover_acts_no_more,
    |backend| bounded(module_path!(), zombie_before_cutover(backend)),
    flavor = "multi_thread",
    worker_threads = 4
);

on_every_backend!(
    a_mover_that_lost_its_lease_writes_nothing,
    |backend| bounded(module_path!(), zombie_mover(backend)),
    flavor = "multi_thread",
    worker_threads = 4
);

/// A move prepared by an earlier version (its record says nothing of the target guard)
/// is refused with a message that says what to do, not run by rules its target was not
/// prepared for (its target has no guard to lift and no capture to log).
async fn earlier_version(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let sf = provisioned(&tenancy).await;
    Mover::new(&tenancy, options(Some(HaltAt::After(Phase::Copy))))
        .start::<Migrator>(sf, target_for(&test))
        .await
        .expect_err("halted after the copy");
    // The record as an earlier version wrote it: no `guarded` in its progress.
    let progress: String = test
        .db
        .query_one_raw(stmt(
            test.db_backend(),
            "SELECT progress FROM tenancy_moves WHERE storefront_id = ?",
            [(*sf.as_uuid()).into()],
        ))
        .await
        .expect("read the record")
        .expect("a record")
        .try_get_by_index(0)
        .expect("progress");
    let mut json: serde_json::Value = serde_json::from_str(&progress).expect("json");
    json.as_object_mut().expect("an object").remove("guarded");
    let rewritten = test
        .db
        .execute_raw(stmt(
            test.db_backend(),
            "UPDATE tenancy_moves SET progress = ? WHERE storefront_id = ?",
            [json.to_string().into(), (*sf.as_uuid()).into()],
        ))
        .await
        .expect("rewrite the record");
    assert_eq!(rewritten.rows_affected(), 1);
    let mover = Mover::new(&tenancy, options(None));
    for (what, result) in [
        ("resume", mover.resume::<Migrator>(sf).await),
        ("cutover", mover.cutover::<Migrator>(sf).await),
        ("rollback", mover.rollback(sf).await),
    ] {
        assert!(
            result
                .as_ref()
                .is_err_and(|e| e.to_string().contains("earlier version")),
            "{backend}: {what} of a move prepared without the guard is refused, saying why: {result:?}"
        );
    }
    assert_eq!(
        served_from(&tenancy, sf).await,
        Placement::Shared,
        "{backend}"
    );
    test.teardown().await;
}

on_every_backend!(
    a_move_prepared_by_an_earlier_version_is_refused,
    |backend| bounded(module_path!(), earlier_version(backend))
);

/// A global delete whose foreign-key action reaches the moving storefront's rows is a
/// write of the storefront: refused on the fenced source (MySQL's cascade trigger on the
/// global table takes the fence row's lock and checks it, as PostgreSQL's and SQLite's row
/// triggers on the cascaded rows do) and on the guarded target; the move then completes
/// with every ticket.
async fn global_cascade_behind_the_fence(backend: Backend) {
    let Some((test, tenancy, sf)) = tickets_env(backend).await else {
        return;
    };
    let kinds = "INSERT INTO {t}ticket_kinds (code) VALUES ('bug'), ('idea')";
    test.db
        .execute_unprepared(&kinds.replace("{t}", ""))
        .await
        .expect("kinds on the source");
    for _ in 0..3 {
        test.db
            .execute_raw(stmt(
                test.db_backend(),
                "INSERT INTO tickets (storefront_id, note, kind) VALUES (?, 'x', 'bug')",
                [(*sf.as_uuid()).into()],
            ))
            .await
            .expect("a ticket");
    }
    let target = target_for(&test);
    Mover::new(&tenancy, options(Some(HaltAt::After(Phase::Prepare))))
        .start::<MigratorWithTickets>(sf, target.clone())
        .await
        .expect_err("halted after prepare");
    let raw = RawTarget::open(&test, &target).await;
    raw.write(kinds, []).await.expect("kinds on the target");
    Mover::new(&tenancy, options(Some(HaltAt::MidCutover)))
        .cutover::<MigratorWithTickets>(sf)
        .await
        .expect_err("halted behind the fence");
    let on_source = test
        .db
        .execute_unprepared("DELETE FROM ticket_kinds WHERE code = 'bug'")
        .await;
    assert!(
        on_source.as_ref().is_err_and(is_fenced),
        "{backend}: a global delete reaching the fenced storefront's rows is refused: {on_source:?}"
    );
    let on_target = raw
        .write("DELETE FROM {t}ticket_kinds WHERE code = 'bug'", [])
        .await;
    assert!(
        on_target.as_ref().is_err_and(is_fenced),
        "{backend}: a global delete reaching the guarded target's rows is refused: {on_target:?}"
    );
    Mover::new(&tenancy, options(None))
        .resume::<MigratorWithTickets>(sf)
        .await
        .expect("cutover on resume");
    let served = count_rows(&raw.conn, &format!("{}tickets", raw.prefix), sf).await;
    raw.close().await;
    assert_eq!(
        served, 3,
        "{backend}: every ticket is served after the cutover"
    );
    test.teardown().await;
}

on_every_backend!(
    a_global_cascade_is_refused_behind_the_fence,
    |backend| bounded(module_path!(), global_cascade_behind_the_fence(backend)),
    flavor = "multi_thread",
    worker_threads = 2
);

/// A rollback before the cutover of a move into the shared tables: the guarded copy
/// there is deleted (as the mover, from the guard it has), with its triggers and fence
/// row, and nothing is left for the shared tables to carry; the storefront is served from
/// its own placement as before.
async fn rollback_into_shared(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let sf = StorefrontId::new_random();
    let home = target_for(&test);
    tenancy
        .create_storefront::<Migrator>(sf, home.clone())
        .await
        .expect("provision");
    seed(&tenancy.connection(sf), "r", &["a", "b"], 1).await;
    let mover = Mover::new(&tenancy, options(None));
    let ready = mover
        .start::<Migrator>(sf, Placement::Shared)
        .await
        .expect("start");
    assert_eq!(ready.phase, Phase::Ready, "{backend}");
    let copied = tenancy_tests::movekit::count_rows(&test.db, "customers", sf).await;
    assert!(copied > 0, "{backend}: the shared tables hold the copy");
    let rolled = mover.rollback(sf).await.expect("rollback");
    assert_eq!(
        rolled.error, None,
        "{backend}: the rollback left nothing behind"
    );
    for table in ["customers", "orders", "tenancy_fence"] {
        let left = tenancy_tests::movekit::count_rows(&test.db, table, sf).await;
        assert_eq!(
            left, 0,
            "{backend}: `{table}` keeps nothing of the storefront"
        );
    }
    assert_eq!(served_from(&tenancy, sf).await, home, "{backend}");
    new_customer(&tenancy, sf, "after-rollback@example.com").await;
    test.teardown().await;
}

on_every_backend!(
    a_rollback_before_the_cutover_into_shared_tables_leaves_nothing,
    |backend| bounded(module_path!(), rollback_into_shared(backend)),
    flavor = "multi_thread",
    worker_threads = 2
);

/// A move into the shared tables whose copy meets keys another storefront holds there
/// (integer keys from two sequences): the move stops, naming the cause, instead of
/// skipping the rows (and losing them at the cutover); the other storefront keeps its
/// rows and the moving one is still served from its own placement.
async fn copy_meets_foreign_keys(backend: Backend) {
    let Some((test, tenancy, b)) = tickets_env(backend).await else {
        return;
    };
    for _ in 0..3 {
        test.db
            .execute_raw(stmt(
                test.db_backend(),
                "INSERT INTO tickets (storefront_id, note) VALUES (?, 'b')",
                [(*b.as_uuid()).into()],
            ))
            .await
            .expect("b's ticket");
    }
    let a = StorefrontId::new_random();
    let home = target_for(&test);
    tenancy
        .create_storefront::<MigratorWithTickets>(a, home.clone())
        .await
        .expect("provision a");
    let raw = RawTarget::open(&test, &home).await;
    for _ in 0..3 {
        raw.write(
            "INSERT INTO {t}tickets (storefront_id, note) VALUES (?, 'a')",
            [(*a.as_uuid()).into()],
        )
        .await
        .expect("a's ticket, keys 1 to 3 of its own sequence");
    }
    raw.close().await;
    let err = Mover::new(&tenancy, options(None))
        .start::<MigratorWithTickets>(a, Placement::Shared)
        .await
        .expect_err("the copy meets b's keys");
    assert!(
        err.to_string().contains("another storefront"),
        "{backend}: the refusal names the cause: {err}"
    );
    let kept = tenancy_tests::movekit::count_rows(&test.db, "tickets", b).await;
    assert_eq!(kept, 3, "{backend}: b keeps its tickets");
    assert_eq!(served_from(&tenancy, a).await, home, "{backend}");
    test.teardown().await;
}

on_every_backend!(
    a_copy_into_shared_tables_meeting_another_storefronts_keys_stops,
    |backend| bounded(module_path!(), copy_meets_foreign_keys(backend)),
    flavor = "multi_thread",
    worker_threads = 2
);

/// Hole 2: `complete` stopped after removing the target's capture and before deleting the
/// source. A rollback now would flip back to a source as it was at the cutover, losing
/// every write since: it is refused, and `complete` finishes on a second call.
async fn complete_stopped_halfway(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let sf = provisioned(&tenancy).await;
    let target = target_for(&test);
    let mover = Mover::new(&tenancy, options(None));
    mover
        .start::<Migrator>(sf, target.clone())
        .await
        .expect("start");
    mover.cutover::<Migrator>(sf).await.expect("cutover");
    let late = new_customer(&tenancy, sf, "after-cutover@example.com").await;
    let halting = Mover::new(&tenancy, options(Some(HaltAt::MidComplete)));
    halting.complete(sf, true).await.expect_err("halted");
    let refused = mover.rollback(sf).await;
    assert!(
        refused.is_err(),
        "{backend}: a rollback after complete began must be refused: {refused:?}"
    );
    let done = mover.complete(sf, true).await.expect("complete again");
    assert_eq!(done.phase, Phase::Completed, "{backend}");
    assert_eq!(served_from(&tenancy, sf).await, target, "{backend}");
    let seen = customer::Entity::find_by_id(late)
        .one(&tenancy.connection(sf))
        .await
        .expect("read");
    assert!(
        seen.is_some(),
        "{backend}: the write after the cutover is kept"
    );
    test.teardown().await;
}

on_every_backend!(
    rollback_after_complete_began_is_refused,
    |backend| bounded(module_path!(), complete_stopped_halfway(backend)),
    flavor = "multi_thread",
    worker_threads = 2
);

/// `complete` stopped after the source database was dropped and before that was recorded
/// (a rebalance killed there): the next `complete` finds the source gone, finishes with
/// the target alone, and the storefront keeps serving from the target.
async fn complete_stopped_after_the_source_went(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let sf = StorefrontId::new_random();
    let home = Placement::Database {
        url: test.sibling_url("tenancy_test_home"),
    };
    tenancy
        .create_storefront::<Migrator>(sf, home.clone())
        .await
        .expect("provision");
    seed(&tenancy.connection(sf), "h", &["a", "b"], 2).await;
    let target = Placement::Database {
        url: test.sibling_url("tenancy_test_away"),
    };
    let mover = Mover::new(&tenancy, options(None));
    mover
        .start::<Migrator>(sf, target.clone())
        .await
        .expect("start");
    mover.cutover::<Migrator>(sf).await.expect("cutover");
    let late = new_customer(&tenancy, sf, "after-cutover@example.com").await;
    let halting = Mover::new(&tenancy, options(Some(HaltAt::AfterAbandon)));
    halting.complete(sf, true).await.expect_err("halted");
    let stopped = mover.status(sf).await.expect("status").expect("a move");
    assert_eq!(stopped.phase, Phase::Completing, "{backend}");
    let done = mover
        .complete(sf, true)
        .await
        .unwrap_or_else(|e| panic!("{backend}: complete after the source was deleted: {e}"));
    assert_eq!(done.phase, Phase::Completed, "{backend}");
    assert_eq!(served_from(&tenancy, sf).await, target, "{backend}");
    let seen = customer::Entity::find_by_id(late)
        .one(&tenancy.connection(sf))
        .await
        .expect("read");
    assert!(
        seen.is_some(),
        "{backend}: the write after the cutover is kept"
    );
    tenancy
        .drop_storefront(sf, &sf.to_string())
        .await
        .expect("drop");
    test.teardown().await;
}

on_every_backend!(
    complete_resumes_after_the_source_was_deleted,
    |backend| bounded(
        module_path!(),
        complete_stopped_after_the_source_went(backend)
    ),
    flavor = "multi_thread",
    worker_threads = 2
);

/// A target that holds the source's own tables under another spelling (the shared
/// database named as a storefront database; a storefront database named with another
/// host spelling), or another storefront's database, is refused before anything is
/// recorded or cleared: the move would clear the storefront's live rows, and completing it
/// would drop them.
async fn same_tables_spelled_twice(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let sf = provisioned(&tenancy).await;
    let before = customers_of(&tenancy, sf).await;
    let mover = Mover::new(&tenancy, options(None));
    // The shared database, as a database placement.
    let respelled = |url: &str| match backend {
        Backend::Sqlite => url.replace("sqlite://", "sqlite:"),
        _ => url.replace("127.0.0.1", "localhost"),
    };
    let shared_as_database = Placement::Database {
        url: respelled(&test.url),
    };
    let err = mover
        .start::<Migrator>(sf, shared_as_database)
        .await
        .expect_err("the shared tables are the source's");
    assert!(err.to_string().contains("same tables"), "{backend}: {err}");
    assert!(
        mover.status(sf).await.expect("status").is_none(),
        "{backend}: nothing recorded"
    );
    assert_eq!(
        customers_of(&tenancy, sf).await,
        before,
        "{backend}: rows kept"
    );
    // The shared tables' own schema (PostgreSQL) or database (MySQL), as a schema placement.
    let shared_schema = match backend {
        Backend::Postgres => Some("public".to_owned()),
        Backend::MySql => tenancy_core::DatabaseUrl::parse(&test.url)
            .expect("url")
            .database(),
        Backend::Sqlite => None,
    };
    if let Some(schema) = shared_schema {
        let err = mover
            .start::<Migrator>(sf, Placement::Schema { schema })
            .await
            .expect_err("the shared tables' schema is the source");
        assert!(err.to_string().contains("same tables"), "{backend}: {err}");
        assert_eq!(
            customers_of(&tenancy, sf).await,
            before,
            "{backend}: rows kept"
        );
    }

    // A storefront in a database of its own; the same database, spelled otherwise.
    let home = Placement::Database {
        url: test.sibling_url("tenancy_test_same"),
    };
    let other = StorefrontId::new_random();
    tenancy
        .create_storefront::<Migrator>(other, home.clone())
        .await
        .expect("provision");
    seed(&tenancy.connection(other), "o", &["a", "b"], 2).await;
    let theirs = customers_of(&tenancy, other).await;
    let Placement::Database { url } = &home else {
        unreachable!("a database placement")
    };
    let err = mover
        .start::<Migrator>(
            other,
            Placement::Database {
                url: respelled(url),
            },
        )
        .await
        .expect_err("one database, spelled two ways");
    assert!(err.to_string().contains("same tables"), "{backend}: {err}");
    // And the first storefront may not move into the second's database.
    let err = mover
        .start::<Migrator>(sf, home.clone())
        .await
        .expect_err("another storefront's database");
    assert!(
        err.to_string().contains(&other.to_string()),
        "{backend}: {err}"
    );
    assert_eq!(
        customers_of(&tenancy, other).await,
        theirs,
        "{backend}: rows kept"
    );
    assert_eq!(served_from(&tenancy, other).await, home, "{backend}");
    // The second storefront's database under another spelling passes the directory's
    // check, and is refused before anything is cleared there for holding its rows; the
    // rollback leaves that database alone.
    if backend != Backend::Sqlite {
        let err = mover
            .start::<Migrator>(
                sf,
                Placement::Database {
                    url: respelled(url),
                },
            )
            .await
            .expect_err("another storefront's rows");
        assert!(
            err.to_string().contains(&other.to_string()),
            "{backend}: {err}"
        );
        if mover.status(sf).await.expect("status").is_some() {
            let _ = mover.rollback(sf).await;
        }
        assert_eq!(
            customers_of(&tenancy, other).await,
            theirs,
            "{backend}: rows kept"
        );
        assert_eq!(served_from(&tenancy, other).await, home, "{backend}");
        assert_eq!(
            served_from(&tenancy, sf).await,
            Placement::Shared,
            "{backend}"
        );
        assert_eq!(
            customers_of(&tenancy, sf).await,
            before,
            "{backend}: rows kept"
        );
    }
    tenancy
        .drop_storefront(other, &other.to_string())
        .await
        .expect("drop");
    test.teardown().await;
}

async fn customers_of(tenancy: &Tenancy, sf: StorefrontId) -> usize {
    customer::Entity::find()
        .all(&tenancy.connection(sf))
        .await
        .expect("read")
        .len()
}

on_every_backend!(
    a_target_with_the_sources_tables_is_refused,
    |backend| bounded(module_path!(), same_tables_spelled_twice(backend)),
    flavor = "multi_thread",
    worker_threads = 2
);

/// Hole 2, second half: whether a move can be rolled back after its cutover is decided by
/// the cutover (capture on the target or not) and recorded with the move; a mover
/// configured otherwise later must not roll back a move that logged nothing on the target.
async fn rollback_setting_is_recorded(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let sf = provisioned(&tenancy).await;
    let target = target_for(&test);
    let without = Mover::new(
        &tenancy,
        MoveOptions {
            rollback_enabled: false,
            ..options(None)
        },
    );
    without
        .start::<Migrator>(sf, target.clone())
        .await
        .expect("start");
    without.cutover::<Migrator>(sf).await.expect("cutover");
    let late = new_customer(&tenancy, sf, "no-rollback@example.com").await;
    let with = Mover::new(&tenancy, options(None));
    let refused = with.rollback(sf).await;
    assert!(
        refused.is_err(),
        "{backend}: the move was cut over without rollback: {refused:?}"
    );
    assert_eq!(served_from(&tenancy, sf).await, target, "{backend}");
    let seen = customer::Entity::find_by_id(late)
        .one(&tenancy.connection(sf))
        .await
        .expect("read");
    assert!(
        seen.is_some(),
        "{backend}: the write after the cutover is kept"
    );
    with.complete(sf, true).await.expect("complete");
    test.teardown().await;
}

on_every_backend!(
    rollback_setting_is_recorded_with_the_move,
    |backend| bounded(module_path!(), rollback_setting_is_recorded(backend)),
    flavor = "multi_thread",
    worker_threads = 2
);

/// Hole 6: one mover per storefront. Two starts at once: one wins. A mover that died in
/// the middle of the copy (its task aborted) holds its lease until it expires: another
/// mover is refused until then, and goes on afterwards.
async fn one_mover_at_a_time(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let sf = provisioned(&tenancy).await;
    let (a, b) = (
        Mover::new(&tenancy, options(None)),
        Mover::new(&tenancy, options(None)),
    );
    let (ra, rb) = tokio::join!(
        a.start::<Migrator>(sf, target_for(&test)),
        b.start::<Migrator>(sf, target_for(&test)),
    );
    assert!(
        ra.is_ok() != rb.is_ok(),
        "{backend}: exactly one start wins: {ra:?} / {rb:?}"
    );
    let winner = if ra.is_ok() { &a } else { &b };
    winner.rollback(sf).await.expect("rollback");

    let lease = Duration::from_secs(2);
    let (copying, mut reached_copy) = tokio::sync::mpsc::unbounded_channel();
    let dying = Mover::new(
        &tenancy,
        MoveOptions {
            lease,
            batch_size: 1,
            ..options(None)
        },
    )
    .observe(move |r| {
        if r.phase == Phase::Copy {
            let _ = copying.send(());
        }
    });
    let target = target_for(&test);
    let task = tokio::spawn(async move { dying.start::<Migrator>(sf, target).await });
    tokio::time::timeout(Duration::from_secs(60), reached_copy.recv())
        .await
        .expect("the move reaches the copy");
    task.abort(); // the process dies: nothing gives the lease back
    let _ = task.await;
    let other = Mover::new(
        &tenancy,
        MoveOptions {
            lease,
            ..options(None)
        },
    );
    let refused = other.resume::<Migrator>(sf).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("lease")),
        "{backend}: the lease of the stopped mover holds: {refused:?}"
    );
    let refused = other.rollback(sf).await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("lease")),
        "{backend}: the lease of the stopped mover holds: {refused:?}"
    );
    tokio::time::sleep(lease + Duration::from_millis(500)).await;
    let ready = other.resume::<Migrator>(sf).await.expect("resume");
    assert_eq!(ready.phase, Phase::Ready, "{backend}");
    other.cutover::<Migrator>(sf).await.expect("cutover");
    test.teardown().await;
}

on_every_backend!(
    one_mover_at_a_time,
    |backend| bounded(module_path!(), one_mover_at_a_time(backend)),
    flavor = "multi_thread",
    worker_threads = 2
);

/// The fence fails closed: with its row gone, a write to the moving storefront is refused
/// (not let through unlogged), and raising a fence that is not there is an error.
async fn missing_fence_row(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let sf = provisioned(&tenancy).await;
    let mover = Mover::new(&tenancy, options(None));
    mover
        .start::<Migrator>(sf, target_for(&test))
        .await
        .expect("start");
    assert!(raw_write_on_source(&test, sf).await.is_ok(), "{backend}");
    test.db
        .execute_raw(stmt(
            test.db_backend(),
            "DELETE FROM tenancy_fence WHERE storefront_id = ?",
            [(*sf.as_uuid()).into()],
        ))
        .await
        .expect("delete the fence row");
    let unlogged = raw_write_on_source(&test, sf).await;
    assert!(
        unlogged.is_err(),
        "{backend}: a write with no fence row must be refused, got {unlogged:?}"
    );
    let cutover = mover.cutover::<Migrator>(sf).await;
    assert!(
        cutover.is_err(),
        "{backend}: a cutover cannot raise a missing fence: {cutover:?}"
    );
    assert_eq!(served_from(&tenancy, sf).await, Placement::Shared);
    mover.rollback(sf).await.expect("rollback");
    assert!(
        raw_write_on_source(&test, sf).await.is_ok(),
        "{backend}: writable again"
    );
    test.teardown().await;
}

on_every_backend!(
    a_missing_fence_row_fails_closed,
    |backend| bounded(module_path!(), missing_fence_row(backend)),
    flavor = "multi_thread",
    worker_threads = 2
);

/// Hole 4: a primary key changed after the full validation. The change is logged under
/// both keys, so the cutover moves the row under its new key and the old one is gone from
/// the target.
async fn primary_key_update(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let sf = provisioned(&tenancy).await;
    let lone = new_customer(&tenancy, sf, "renamed@example.com").await;
    let mover = Mover::new(&tenancy, options(None));
    let ready = mover
        .start::<Migrator>(sf, target_for(&test))
        .await
        .expect("start");
    assert!(ready.progress.validated_round.is_some(), "{backend}");
    let renamed = Uuid::new_v4();
    let changed = test
        .db
        .execute_raw(stmt(
            test.db_backend(),
            "UPDATE customers SET id = ? WHERE id = ?",
            [renamed.into(), lone.into()],
        ))
        .await
        .expect("change the key");
    assert_eq!(changed.rows_affected(), 1);
    mover.cutover::<Migrator>(sf).await.expect("cutover");
    let conn = tenancy.connection(sf);
    let old = customer::Entity::find_by_id(lone)
        .one(&conn)
        .await
        .expect("read");
    assert!(
        old.is_none(),
        "{backend}: the row under its old key must not survive on the target"
    );
    let new = customer::Entity::find_by_id(renamed)
        .one(&conn)
        .await
        .expect("read");
    assert!(new.is_some(), "{backend}: the row under its new key moved");
    mover.complete(sf, true).await.expect("complete");
    test.teardown().await;
}

on_every_backend!(
    a_primary_key_changed_after_validation_moves,
    |backend| bounded(module_path!(), primary_key_update(backend)),
    flavor = "multi_thread",
    worker_threads = 2
);

/// Hole 3: a connection resolved before the cutover, and a task holding one, that next
/// write only after `complete` deleted the old copy. A connection re-resolves its placement
/// once it is older than the directory's cache TTL, and `complete` waits until every cache
/// has let go of the source: both writes land where the storefront is served.
async fn long_lived_connections(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let sf = provisioned(&tenancy).await;
    let other_process =
        tenancy_tests::movekit::second_process(&test, Duration::from_millis(200)).await;
    let held = other_process.connection(sf);
    held.execute_unprepared("UPDATE customers SET phone = 'early'")
        .await
        .expect("resolves the shared placement");
    let (go, mut wait) = tokio::sync::oneshot::channel::<()>();
    let task_conn = other_process.connection(sf);
    task_conn
        .execute_unprepared("UPDATE customers SET phone = 'early'")
        .await
        .expect("resolves the shared placement");
    let task = tokio::spawn(async move {
        let _ = (&mut wait).await;
        let now = chrono::Utc::now();
        customer::ActiveModel {
            id: Set(Uuid::new_v4()),
            email: Set("from-task@example.com".into()),
            first_name: Set("task".into()),
            last_name: Set("writer".into()),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&task_conn)
        .await
        .map(|m| m.id)
    });
    let target = target_for(&test);
    let mover = Mover::new(&tenancy, options(None));
    mover
        .start::<Migrator>(sf, target.clone())
        .await
        .expect("start");
    mover.cutover::<Migrator>(sf).await.expect("cutover");
    mover.complete(sf, true).await.expect("complete");
    let now = chrono::Utc::now();
    let from_held = customer::ActiveModel {
        id: Set(Uuid::new_v4()),
        email: Set("from-held@example.com".into()),
        first_name: Set("held".into()),
        last_name: Set("writer".into()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&held)
    .await
    .expect("the long-lived connection writes")
    .id;
    let _ = go.send(());
    let from_task = task
        .await
        .expect("task")
        .expect("the task's connection writes");
    let served = tenancy.connection(sf);
    for (who, id) in [("connection", from_held), ("task", from_task)] {
        let seen = customer::Entity::find_by_id(id)
            .one(&served)
            .await
            .expect("read");
        assert!(
            seen.is_some(),
            "{backend}: the long-lived {who}'s write after complete is where the storefront is served"
        );
    }
    let orphans = tenancy_tests::movekit::count_rows(&test.db, "customers", sf).await;
    assert_eq!(orphans, 0, "{backend}: nothing was written to the old side");
    test.teardown().await;
}

on_every_backend!(
    long_lived_connections_follow_the_move,
    |backend| bounded(module_path!(), long_lived_connections(backend)),
    flavor = "multi_thread",
    worker_threads = 2
);

/// Hole 5: the copy's skip rule. Customer X is copied; then X gives up its email and Y
/// takes it. Y's copy collides with X's old email on the target and is skipped (Y is
/// logged: it changed); Y's untouched order is then refused for its missing parent. That
/// order must be logged too, or the move can never validate (and without validation it
/// would be lost).
async fn skipped_child(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let sf = StorefrontId::new_random();
    tenancy
        .create_storefront::<Migrator>(sf, Placement::Shared)
        .await
        .expect("provision");
    let conn = tenancy.connection(sf);
    let now = chrono::Utc::now();
    // Keys in copy order: X before Y.
    let (x, y) = (
        Uuid::parse_str("00000000-0000-4000-8000-000000000001").expect("uuid"),
        Uuid::parse_str("00000000-0000-4000-8000-000000000002").expect("uuid"),
    );
    for (id, email) in [(x, "first@example.com"), (y, "second@example.com")] {
        customer::ActiveModel {
            id: Set(id),
            email: Set(email.into()),
            first_name: Set("c".into()),
            last_name: Set("c".into()),
            created_at: Set(now),
            updated_at: Set(now),
            ..Default::default()
        }
        .insert(&conn)
        .await
        .expect("customer");
    }
    let order = entities::order::ActiveModel {
        id: Set(Uuid::new_v4()),
        customer_id: Set(y),
        status: Set("paid".into()),
        total_cents: Set(100),
        currency: Set("EUR".into()),
        created_at: Set(now),
        updated_at: Set(now),
        ..Default::default()
    }
    .insert(&conn)
    .await
    .expect("order")
    .id;
    let one_by_one = |halt_at| MoveOptions {
        batch_size: 1,
        catch_up_batch: 1,
        ..options(halt_at)
    };
    let target = target_for(&test);
    Mover::new(&tenancy, one_by_one(Some(HaltAt::MidCopy(1))))
        .start::<Migrator>(sf, target.clone())
        .await
        .expect_err("halted after X");
    for (email, id) in [("third@example.com", x), ("first@example.com", y)] {
        test.db
            .execute_raw(stmt(
                test.db_backend(),
                "UPDATE customers SET email = ? WHERE id = ?",
                [email.into(), id.into()],
            ))
            .await
            .expect("email change");
    }
    let mover = Mover::new(&tenancy, one_by_one(None));
    let ready = mover
        .resume::<Migrator>(sf)
        .await
        .unwrap_or_else(|e| panic!("{backend}: the move validates: {e}"));
    assert_eq!(ready.phase, Phase::Ready, "{backend}");
    mover.cutover::<Migrator>(sf).await.expect("cutover");
    let seen = entities::order::Entity::find_by_id(order)
        .one(&tenancy.connection(sf))
        .await
        .expect("read");
    assert!(seen.is_some(), "{backend}: Y's order moved");
    mover.complete(sf, true).await.expect("complete");
    test.teardown().await;
}

on_every_backend!(
    a_row_the_copy_skips_is_replayed,
    |backend| bounded(module_path!(), skipped_child(backend)),
    flavor = "multi_thread",
    worker_threads = 2
);

/// Errors are read by code, not by text: a scoped table whose tenant column is missing
/// makes dropping a storefront fail naming the column, where matching "does not exist"
/// in the message took it for a missing table, skipped it, and left the storefront's
/// rows behind.
async fn missing_column(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let sf = provisioned(&tenancy).await;
    test.db
        .execute_unprepared("ALTER TABLE order_items RENAME COLUMN storefront_id TO sf_gone")
        .await
        .expect("rename the column");
    let err = tenancy
        .drop_storefront(sf, &sf.to_string())
        .await
        .expect_err("a missing column is an error");
    let text = err.to_string();
    assert!(
        text.contains("storefront_id") || text.to_lowercase().contains("column"),
        "{backend}: the error names the column: {text}"
    );
    test.teardown().await;
}

on_every_backend!(
    a_missing_column_is_not_a_missing_table,
    |backend| bounded(module_path!(), missing_column(backend)),
    flavor = "multi_thread",
    worker_threads = 2
);

/// A leftover target: an earlier move to the same schema or database was abandoned after
/// its copy (its record lost), and the source changed since. The new move clears the
/// storefront's stale rows there instead of keeping them (the copy leaves rows already on
/// the target alone), so it validates and the target holds the source's rows.
async fn leftover_target(backend: Backend) {
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let sf = provisioned(&tenancy).await;
    let target = target_for(&test);
    Mover::new(&tenancy, options(Some(HaltAt::After(Phase::Copy))))
        .start::<Migrator>(sf, target.clone())
        .await
        .expect_err("halted after the copy");
    // The record is lost and the storefront active again, as after a crash and a hand
    // clean-up that forgot the target.
    for sql in [
        "DELETE FROM tenancy_moves WHERE storefront_id = ?",
        "UPDATE tenancy_tenants SET state = 'active' WHERE storefront_id = ?",
        "DELETE FROM tenancy_changelog WHERE storefront_id = ?",
    ] {
        test.db
            .execute_raw(stmt(test.db_backend(), sql, [(*sf.as_uuid()).into()]))
            .await
            .expect("clean-up by hand");
    }
    // The leftover copy is stale: changed there, not on the source (so nothing logs it),
    // past the guard the first move left up (as by hand, knowing the protocol).
    let raw = RawTarget::open(&test, &target).await;
    let stale = raw
        .write_behind_the_guard(
            "UPDATE {t}customers SET last_name = 'stale' WHERE storefront_id = ?",
            sf,
            [(*sf.as_uuid()).into()],
        )
        .await;
    assert!(stale > 0, "{backend}: the copy had written rows");
    raw.close().await;
    let mover = Mover::new(&tenancy, options(None));
    let ready = mover
        .start::<Migrator>(sf, target.clone())
        .await
        .unwrap_or_else(|e| panic!("{backend}: the move over a leftover target validates: {e}"));
    assert_eq!(ready.phase, Phase::Ready, "{backend}");
    mover.cutover::<Migrator>(sf).await.expect("cutover");
    let stale = customer::Entity::find()
        .all(&tenancy.connection(sf))
        .await
        .expect("read")
        .into_iter()
        .filter(|c| c.last_name == "stale")
        .count();
    assert_eq!(stale, 0, "{backend}: no stale row served from the target");
    mover.complete(sf, true).await.expect("complete");
    test.teardown().await;
}

on_every_backend!(
    a_leftover_target_is_cleared,
    |backend| bounded(module_path!(), leftover_target(backend)),
    flavor = "multi_thread",
    worker_threads = 2
);

/// A repeatable-read writer whose snapshot predates the fence: on PostgreSQL it meets the
/// raised fence as a serialization failure (40001), not as the fence's error. Run through
/// `transaction_retrying_with`, it runs again (on the target) instead of failing.
async fn repeatable_read_writer(backend: Backend) {
    use std::sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    };
    let Some((test, tenancy)) = env(backend, Duration::from_millis(200)).await else {
        return;
    };
    let sf = provisioned(&tenancy).await;
    let mover = Mover::new(&tenancy, options(None));
    mover
        .start::<Migrator>(sf, target_for(&test))
        .await
        .expect("start");
    let attempts = Arc::new(AtomicUsize::new(0));
    let (snapshot_taken, mut snapshot_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    let (go, go_rx) = tokio::sync::watch::channel(false);
    let conn = tenancy.connection(sf);
    let counted = Arc::clone(&attempts);
    let writer = tokio::spawn(async move {
        conn.transaction_retrying_with(
            Some(sea_orm::IsolationLevel::RepeatableRead),
            None,
            move |txn| {
                let counted = Arc::clone(&counted);
                let snapshot_taken = snapshot_taken.clone();
                let mut go = go_rx.clone();
                Box::pin(async move {
                    counted.fetch_add(1, Ordering::SeqCst);
                    customer::Entity::find().all(txn).await?; // the snapshot
                    let _ = snapshot_taken.send(());
                    let _ = go.wait_for(|go| *go).await;
                    txn.execute_unprepared("UPDATE customers SET phone = 'rr'")
                        .await?;
                    Ok::<_, sea_orm::DbErr>(())
                })
            },
        )
        .await
    });
    snapshot_rx
        .recv()
        .await
        .expect("the writer took its snapshot");
    mover.cutover::<Migrator>(sf).await.expect("cutover");
    let _ = go.send(true);
    let written = writer.await.expect("writer task");
    assert!(
        written.is_ok(),
        "{backend}: the repeatable-read writer runs again after the fence: {written:?}"
    );
    assert!(
        attempts.load(Ordering::SeqCst) >= 2,
        "{backend}: it ran again"
    );
    let customers = customer::Entity::find()
        .all(&tenancy.connection(sf))
        .await
        .expect("read");
    assert!(
        customers.iter().all(|c| c.phone.as_deref() == Some("rr")),
        "{backend}: the write is on the side that serves"
    );
    mover.complete(sf, true).await.expect("complete");
    test.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeatable_read_writer_runs_again_postgres() {
    bounded(module_path!(), repeatable_read_writer(Backend::Postgres)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeatable_read_writer_runs_again_mysql() {
    bounded(module_path!(), repeatable_read_writer(Backend::MySql)).await;
}

/// A `char(n)` key is logged with its padding (`to_jsonb(row) ->> pk`): the catch-up
/// between PostgreSQL databases must find the changed row under that spelling, or it takes
/// the row for deleted, deletes it on the target (which cascades to its children, unlogged)
/// and writes it again: the children would be lost without any check noticing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_padded_key_that_changed_keeps_its_children() {
    bounded(module_path!(), async {
        let Some(test) = TestDb::migrated(Backend::Postgres).await else {
            return;
        };
        let tables = [
            "CREATE TABLE codes (code char(4) PRIMARY KEY, storefront_id uuid NOT NULL, label text NOT NULL)",
            "CREATE TABLE code_notes (id uuid PRIMARY KEY, storefront_id uuid NOT NULL, \
             code char(4) NOT NULL REFERENCES codes (code) ON DELETE CASCADE, body text NOT NULL)",
        ];
        for sql in tables {
            test.db.execute_unprepared(sql).await.expect("tables");
        }
        let registry = entities::registry()
            .with_table("codes", "storefront_id")
            .with_table("code_notes", "storefront_id");
        let tenancy = tenancy_with(&test, Duration::from_millis(200), registry).await;
        let sf = provisioned(&tenancy).await;
        test.db
            .execute_unprepared(&format!(
                "INSERT INTO codes VALUES ('ab', '{sf}', 'first'), ('cd', '{sf}', 'second'); \
                 INSERT INTO code_notes VALUES \
                   (gen_random_uuid(), '{sf}', 'ab', 'one'), (gen_random_uuid(), '{sf}', 'ab', 'two'), \
                   (gen_random_uuid(), '{sf}', 'cd', 'three')"
            ))
            .await
            .expect("rows");
        let target = Placement::Database {
            url: test.sibling_url("tenancy_test_pad"),
        };
        let halting = Mover::new(&tenancy, options(Some(HaltAt::After(Phase::Prepare))));
        let _ = halting.start::<Migrator>(sf, target.clone()).await;
        let Placement::Database { url } = &target else {
            unreachable!()
        };
        let raw = sea_orm::Database::connect(url.as_str())
            .await
            .expect("target");
        for sql in tables {
            raw.execute_unprepared(sql)
                .await
                .expect("tables on the target");
        }
        let halting = Mover::new(&tenancy, options(Some(HaltAt::After(Phase::Copy))));
        assert!(halting.resume::<Migrator>(sf).await.is_err(), "halted");
        // A change of the parent after the copy: replayed by the catch-up.
        test.db
            .execute_unprepared(&format!(
                "UPDATE codes SET label = 'changed' WHERE code = 'ab' AND storefront_id = '{sf}'"
            ))
            .await
            .expect("change");
        let mover = Mover::new(&tenancy, options(None));
        mover.cutover::<Migrator>(sf).await.expect("cutover");
        let notes = |db: sea_orm::DatabaseConnection| async move {
            let rows = db
                .query_all_raw(sea_orm::Statement::from_string(
                    sea_orm::DbBackend::Postgres,
                    format!(
                        "SELECT code || ':' || body FROM code_notes WHERE storefront_id = '{sf}' ORDER BY 1"
                    ),
                ))
                .await
                .expect("notes");
            rows.iter()
                .map(|r| r.try_get_by_index::<String>(0).expect("text"))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            notes(raw.clone()).await,
            notes(test.db.clone()).await,
            "the changed parent's children are still on the target"
        );
        assert_eq!(notes(raw.clone()).await.len(), 3);
        let label = raw
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Postgres,
                "SELECT label FROM codes WHERE code = 'ab'".to_owned(),
            ))
            .await
            .expect("label")
            .expect("row");
        assert_eq!(label.try_get_by_index::<String>(0).expect("label"), "changed");
        let _ = raw.close().await;
        mover.complete(sf, true).await.expect("complete");
        test.teardown().await;
    })
    .await;
}
