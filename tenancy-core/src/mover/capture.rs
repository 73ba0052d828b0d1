//! Change capture and the fence, installed on one side of a move.
//!
//! Each side that captures gets two tables next to its scoped tables: `tenancy_changelog`
//! (one row per changed row of a moving storefront: table and primary key) and
//! `tenancy_fence` (one row per moving storefront). Row triggers on every scoped table,
//! limited to the moving storefront's rows, take a shared lock on the storefront's fence
//! row, refuse the write when the fence is up, and append the row's key to the changelog.
//!
//! The shared lock is what makes the fence exact: raising it is an `UPDATE` of the fence
//! row, which waits until every transaction that already wrote to the storefront has
//! committed or rolled back; every later write sees the fence and is refused. A process
//! whose directory cache is stale is refused by the database, whatever it runs.
//!
//! The same row guards a target's copy until its cutover ([`Guard::Target`]): every write
//! of the storefront there is refused, whoever sends it, except the mover's own. The mover
//! writes in transactions that set [`Guard::Mover`] first and put the guard back last, so
//! its writes pass (unlogged) while every other writer waits for the row and then finds the
//! guard up again. A stray write on the target therefore cannot slip in before the final
//! check: the database refuses it.

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::{ConnectionTrait, DbBackend};

use super::{
    cascade,
    side::{Key, KeyKind, Side, TableMeta},
};
use crate::{
    backend::{
        capture::{Capture, Captured},
        retry_locked,
    },
    StorefrontId, TenancyError,
};

pub(crate) use crate::connection::fence::{CHANGELOG, FENCE, FENCED};

/// One changelog entry.
#[derive(Clone, Debug)]
pub(crate) struct Entry {
    pub seq: i64,
    pub table: String,
    pub key: Key,
}

fn short_hash(text: &str) -> String {
    // FNV-1a: stable across processes and Rust versions, so trigger names are too.
    let mut h: u32 = 0x811c_9dc5;
    for b in text.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    format!("{h:08x}")
}

/// The name of the storefront's trigger for `op` on `table`: the whole storefront id (two
/// time-ordered ids created in the same millisecond share their first twelve digits), a
/// hash of the table name; 50 characters, within MySQL's 64.
fn trigger_name(storefront: StorefrontId, table: &str, op: &str) -> String {
    format!(
        "tncap_{}_{}_{op}",
        storefront.as_uuid().simple(),
        short_hash(table)
    )
}

/// The name an earlier version gave the same trigger (twelve digits of the id), so that
/// removing a capture it installed finds its triggers.
fn old_trigger_name(storefront: StorefrontId, table: &str, op: &str) -> String {
    let hex = storefront.as_uuid().simple().to_string();
    format!("tncap_{}_{}_{op}", &hex[..12], short_hash(table))
}

/// Whether the MySQL trigger `name` is one of the storefront's: named by
/// [`trigger_name`], or by [`old_trigger_name`] (twelve digits, a hash, an operation).
fn is_storefronts_trigger(storefront: StorefrontId, name: &str) -> bool {
    let hex = storefront.as_uuid().simple().to_string();
    if name.starts_with(&format!("tncap_{hex}_")) {
        return true;
    }
    let parts: Vec<&str> = name.split('_').collect();
    matches!(parts.as_slice(), ["tncap", h, hash, op]
        if *h == &hex[..12] && hash.len() == 8 && matches!(*op, "i" | "u" | "d" | "cd" | "cu"))
}

fn pg_function(storefront: StorefrontId) -> String {
    format!("tncap_{}", storefront.as_uuid().simple())
}

fn refusal(storefront: StorefrontId) -> String {
    format!(
        "{FENCED}: storefront {storefront} is being moved; retry after refreshing its placement"
    )
}

fn guard_refusal(storefront: StorefrontId) -> String {
    format!(
        "{FENCED}: this is the copy a move of storefront {storefront} is filling; until its cutover only the mover writes here (retry after refreshing the placement)"
    )
}

/// The fence row's `guard`: who may write the storefront's rows on a side, apart from the
/// fence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Guard {
    /// No guard: the fence alone decides.
    Open,
    /// A target before its cutover: every write is refused.
    Target,
    /// The mover's own transaction writes: its writes pass and are not logged. Only ever
    /// set inside that transaction.
    Mover,
}

impl Guard {
    fn value(self) -> i32 {
        match self {
            Guard::Open => 0,
            Guard::Target => 1,
            Guard::Mover => 2,
        }
    }
}

/// The statement that sets the storefront's guard on `side`.
pub(crate) fn guard_sql(side: &Side, storefront: StorefrontId, guard: Guard) -> String {
    format!(
        "UPDATE {} SET guard = {} WHERE storefront_id = {}",
        side.table(FENCE),
        guard.value(),
        side.storefront_literal(storefront)
    )
}

/// The statement that opens a mover's write transaction on `side`: the guard goes to
/// [`Guard::Mover`] only if it is `expected` (what the mover left it at). Exactly one row
/// must change; none means another mover has taken the move over (or the side serves
/// already), and the transaction must write nothing.
pub(crate) fn enter_sql(side: &Side, storefront: StorefrontId, expected: Guard) -> String {
    format!(
        "UPDATE {} SET guard = {} WHERE storefront_id = {} AND guard = {} AND holder = {}",
        side.table(FENCE),
        Guard::Mover.value(),
        side.storefront_literal(storefront),
        expected.value(),
        side.holder
    )
}

/// Claims the storefront's fence row on `side` for this mover's fencing token
/// (`side.holder`, the move record's version when the mover took its lease, higher for
/// every later holder). Every later step on the side is conditional on the claim, so a
/// mover that lost its lease and wakes finds a newer token there and can act no more. A
/// side without a fence row yet has nothing to claim (`install` writes the token).
pub(crate) async fn claim(side: &Side, storefront: StorefrontId) -> Result<(), TenancyError> {
    let sql = format!(
        "UPDATE {} SET holder = {h} WHERE storefront_id = {} AND holder <= {h}",
        side.table(FENCE),
        side.storefront_literal(storefront),
        h = side.holder,
    );
    match side.conn.execute_unprepared(&sql).await {
        Ok(r) if r.rows_affected() == 1 => return Ok(()),
        Ok(_) => {}
        Err(e) => {
            return match crate::backend::classify(&e) {
                // No capture here yet (or one from before tokens, upgraded by `install`).
                crate::backend::ErrorClass::MissingTable
                | crate::backend::ErrorClass::MissingColumn => Ok(()),
                _ => Err(e.into()),
            };
        }
    }
    match current_guard_row(side, storefront).await? {
        None => Ok(()),
        Some(_) => Err(TenancyError::Move {
            storefront: storefront.to_string(),
            phase: "lease".into(),
            reason: format!(
                "a mover that took this move over later holds its fence row on {}: this one lost its lease and acts no more",
                side.placement
            ),
        }),
    }
}

/// Why [`enter_sql`] changed no row.
pub(crate) fn not_entered(side: &Side, storefront: StorefrontId, expected: Guard) -> String {
    format!(
        "the fence row of storefront {storefront} on {} is not as this mover left it (guard {}): \
         another mover has taken the move over, or the side serves already; nothing was written",
        side.placement,
        expected.value()
    )
}

/// Guards `side` as a move's target: every write of the storefront there is refused but
/// the mover's ([`Guard::Mover`] transactions), its fence is down underneath (a leftover
/// raised fence would refuse writes once the guard lifts) and the changelog entries a
/// former move left there are gone (they are no changes of this move's target).
pub(crate) async fn guard_target(
    side: &Side,
    storefront: StorefrontId,
) -> Result<(), TenancyError> {
    let down = match side.backend {
        DbBackend::Postgres => "false",
        _ => "0",
    };
    // Only a guarded row: `install` creates the target's guarded, and a guard found lifted
    // means the side has served (a mover that stalled here while another one cut over to
    // it must not clear it).
    let sql = format!(
        "UPDATE {} SET fenced = {down} WHERE storefront_id = {} AND guard = {} AND holder = {}",
        side.table(FENCE),
        side.storefront_literal(storefront),
        Guard::Target.value(),
        side.holder,
    );
    let changed = side.conn.execute_unprepared(&sql).await?.rows_affected();
    if changed != 1 {
        return Err(TenancyError::Move {
            storefront: storefront.to_string(),
            phase: "prepare".into(),
            reason: format!(
                "the storefront's fence row on {} is missing or its guard was lifted (the side has served): it is not prepared again",
                side.placement
            ),
        });
    }
    let sql = format!(
        "DELETE FROM {} WHERE storefront_id = {}",
        side.table(CHANGELOG),
        side.storefront_literal(storefront)
    );
    side.conn.execute_unprepared(&sql).await?;
    Ok(())
}

/// The storefront's guard on `side` as it stands (`None` without a fence row).
pub(crate) async fn current_guard(
    side: &Side,
    storefront: StorefrontId,
) -> Result<Option<Guard>, TenancyError> {
    let value = current_guard_row(side, storefront).await?;
    Ok(match value {
        Some(0) => Some(Guard::Open),
        Some(1) => Some(Guard::Target),
        _ => None,
    })
}

/// The storefront's `guard` value on `side`, if it has a fence row.
async fn current_guard_row(
    side: &Side,
    storefront: StorefrontId,
) -> Result<Option<i64>, TenancyError> {
    fence_column(side, storefront, "guard").await
}

/// One column of the storefront's fence row on `side` (`guard`, or `fenced`), if it has
/// one: read as a 64-bit integer on every backend (the columns are boolean, smallint,
/// TINYINT or INTEGER; MySQL spells the cast SIGNED).
async fn fence_column(
    side: &Side,
    storefront: StorefrontId,
    column: &str,
) -> Result<Option<i64>, TenancyError> {
    let (cast, value) = match side.backend {
        DbBackend::MySql => ("SIGNED", column.to_owned()),
        // A boolean casts to integer, not to bigint.
        DbBackend::Postgres => ("BIGINT", format!("{column}::int")),
        _ => ("INTEGER", column.to_owned()),
    };
    let sql = format!(
        "SELECT CAST({value} AS {cast}) FROM {} WHERE storefront_id = {}",
        side.table(FENCE),
        side.storefront_literal(storefront)
    );
    let row = side
        .conn
        .query_one_raw(sea_orm::Statement::from_string(side.backend, sql))
        .await?;
    Ok(match row {
        Some(r) => Some(r.try_get_by_index::<i64>(0)?),
        None => None,
    })
}

/// Lifts the target guard: the side takes the storefront's writes (logged, for a rollback).
pub(crate) async fn unguard(side: &Side, storefront: StorefrontId) -> Result<(), TenancyError> {
    let sql = format!(
        "{} AND holder = {}",
        guard_sql(side, storefront, Guard::Open),
        side.holder
    );
    let changed = side.conn.execute_unprepared(&sql).await?.rows_affected();
    if changed != 1 {
        return Err(TenancyError::Move {
            storefront: storefront.to_string(),
            phase: "cutover".into(),
            reason: format!(
                "the storefront's fence row on {} is missing or held by a mover that took the move over later",
                side.placement
            ),
        });
    }
    Ok(())
}

fn missing_fence_row(side: &Side, storefront: StorefrontId, phase: &str) -> TenancyError {
    TenancyError::Move {
        storefront: storefront.to_string(),
        phase: phase.into(),
        reason: format!(
            "the storefront's fence row is missing from {FENCE} on {}, or a mover that took the move over later holds it: change capture was tampered with or removed (roll the move back and start again), or this mover lost its lease",
            side.placement
        ),
    }
}

/// Runs DDL; a deadlock with application writers (DDL on one table while a writer's
/// foreign-key check waits on another) or a lock wait that timed out is retried.
async fn run(side: &Side, sql: &str) -> Result<(), TenancyError> {
    retry_locked(|| async move {
        side.conn.execute_unprepared(sql).await?;
        Ok(())
    })
    .await
}

/// Creates the changelog and fence tables (if missing), the storefront's fence row (down)
/// and its triggers on every table (the statements are `backend::capture`'s). Running it
/// again is harmless.
///
/// A new fence row starts with `guard` (a target's is guarded from its first moment).
pub(crate) async fn install(
    side: &Side,
    storefront: StorefrontId,
    tables: &[TableMeta],
    guard: Guard,
) -> Result<(), TenancyError> {
    let (changelog, fence) = (side.table(CHANGELOG), side.table(FENCE));
    let (sf, message) = (side.storefront_literal(storefront), refusal(storefront));
    let guarded = guard_refusal(storefront);
    let qualifier = side.q(&side.qualifier);
    let ddl = Capture {
        dialect: side.dialect(),
        qualifier: &qualifier,
        changelog: &changelog,
        fence: &fence,
        storefront: &sf,
        message: &message,
        guarded: &guarded,
    };
    for sql in ddl.tables() {
        run(side, &sql).await?;
    }
    // A fence table from an earlier version gets the columns added since.
    for (probe, add) in ddl.later_columns() {
        if let Err(e) = side.conn.execute_unprepared(&probe).await {
            if crate::backend::classify(&e) != crate::backend::ErrorClass::MissingColumn {
                return Err(e.into());
            }
            if let Err(e) = run(side, &add).await {
                // Another installer may have added it meanwhile.
                if side.conn.execute_unprepared(&probe).await.is_err() {
                    return Err(e);
                }
            }
        }
    }
    run(side, &ddl.fence_row(guard.value(), side.holder)).await?;
    if side.backend == DbBackend::Postgres {
        let function = side.table(&pg_function(storefront));
        run(side, &ddl.pg_function(&function)).await?;
    }
    for t in tables {
        let (table, plain) = (side.table(&t.name), side.q(&t.name));
        let (tenant_column, pk) = (side.q(&t.tenant_column), side.q(&t.pk));
        let captured = Captured {
            name: &t.name,
            table: &table,
            plain: &plain,
            tenant_column: &tenant_column,
            pk: &t.pk,
        };
        if side.backend == DbBackend::Postgres {
            let prefix = format!("tncap_{}", storefront.as_uuid().simple());
            let function = side.table(&pg_function(storefront));
            run(side, &ddl.pg_triggers(&captured, &prefix, &function)).await?;
            continue;
        }
        for (op, event, row) in [
            ("i", "INSERT", "NEW"),
            ("u", "UPDATE", "NEW"),
            ("d", "DELETE", "OLD"),
        ] {
            let trigger = side.table(&trigger_name(storefront, &t.name, op));
            if side.backend == DbBackend::MySql {
                run(side, &format!("DROP TRIGGER IF EXISTS {trigger}")).await?;
            }
            run(side, &ddl.row_trigger(&captured, &trigger, event, row, &pk)).await?;
        }
    }
    if side.backend == DbBackend::MySql {
        // Rows changed by foreign-key actions fire no trigger on MySQL: their parents'
        // BEFORE triggers log them (see `cascade`).
        let edges = cascade::edges(side).await?;
        let parents: Vec<(String, Option<String>)> = tables
            .iter()
            .map(|t| (t.name.clone(), Some(t.tenant_column.clone())))
            .chain(
                cascade::unscoped_parents(&edges, tables)
                    .into_iter()
                    .map(|name| (name, None)),
            )
            .collect();
        for (name, tenant_column) in &parents {
            let table = side.table(name);
            for (op, event, change) in [
                ("cd", "DELETE", cascade::Change::Delete),
                ("cu", "UPDATE", cascade::Change::Update),
            ] {
                let trigger = side.table(&trigger_name(storefront, name, op));
                run(side, &format!("DROP TRIGGER IF EXISTS {trigger}")).await?;
                if let Some(body) = cascade::trigger_body(
                    side,
                    storefront,
                    tables,
                    &edges,
                    name,
                    tenant_column.as_deref(),
                    change,
                    &changelog,
                    &fence,
                    &message,
                    &guarded,
                )? {
                    run(
                        side,
                        &format!(
                            "CREATE TRIGGER {trigger} BEFORE {event} ON {table} FOR EACH ROW {body}"
                        ),
                    )
                    .await?;
                }
            }
        }
    }
    Ok(())
}

/// Drops the storefront's triggers, fence row and changelog entries (the shared tables stay
/// for other moves). Harmless when nothing is installed.
pub(crate) async fn remove(
    side: &Side,
    storefront: StorefrontId,
    tables: &[TableMeta],
) -> Result<(), TenancyError> {
    match side.backend {
        DbBackend::Postgres => {
            // One table per statement, children first: a single `DROP FUNCTION ... CASCADE`
            // would hold every table's lock at once and deadlock with a writer that has
            // touched a parent and waits for a child (seen in CI as a writer's failed insert).
            let hex = storefront.as_uuid().simple();
            for t in tables.iter().rev() {
                let table = side.table(&t.name);
                for suffix in ["iu", "d"] {
                    run(
                        side,
                        &format!("DROP TRIGGER IF EXISTS tncap_{hex}_{suffix} ON {table}"),
                    )
                    .await
                    .or_else(|e| match &e {
                        TenancyError::Db(db) if missing_table(db) => Ok(()),
                        _ => Err(e),
                    })?;
                }
            }
            let function = side.table(&pg_function(storefront));
            run(
                side,
                &format!("DROP FUNCTION IF EXISTS {function}() CASCADE"),
            )
            .await?;
        }
        DbBackend::MySql => {
            // Every trigger of the storefront's, found by name: those on the scoped tables
            // and those on unscoped parents whose actions reach them. (A prefix compared
            // with LEFT, not LIKE: under NO_BACKSLASH_ESCAPES a LIKE escape matches nothing.)
            for name in mysql_triggers(side, storefront).await? {
                let trigger = side.table(&name);
                run(side, &format!("DROP TRIGGER IF EXISTS {trigger}")).await?;
            }
            let left = mysql_triggers(side, storefront).await?;
            if !left.is_empty() {
                // The fence row stays: the triggers that remain refuse writes without it
                // too, and keep logging with it.
                return Err(TenancyError::Move {
                    storefront: storefront.to_string(),
                    phase: "clean-up".into(),
                    reason: format!(
                        "capture triggers remain on {} after removing them: {}",
                        side.placement,
                        left.join(", ")
                    ),
                });
            }
        }
        _ => {
            for t in tables {
                for op in ["i", "u", "d"] {
                    for name in [
                        trigger_name(storefront, &t.name, op),
                        old_trigger_name(storefront, &t.name, op),
                    ] {
                        let trigger = side.table(&name);
                        run(side, &format!("DROP TRIGGER IF EXISTS {trigger}")).await?;
                    }
                }
            }
        }
    }
    for table in [FENCE, CHANGELOG] {
        let sql = format!(
            "DELETE FROM {} WHERE storefront_id = {}",
            side.table(table),
            side.p(1)
        );
        match side
            .conn
            .execute_raw(side.stmt(sql, vec![(*storefront.as_uuid()).into()]))
            .await
        {
            Ok(_) => {}
            Err(e) if missing_table(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

pub(crate) use crate::provision::table_missing as missing_table;

/// The storefront's triggers on a MySQL side, by name.
async fn mysql_triggers(
    side: &Side,
    storefront: StorefrontId,
) -> Result<Vec<String>, TenancyError> {
    let hex = storefront.as_uuid().simple().to_string();
    // Twelve digits: the prefix of both this version's names and an earlier one's.
    let prefix = format!("tncap_{}", &hex[..12]);
    let sql = "SELECT CAST(trigger_name AS CHAR) FROM information_schema.triggers \
               WHERE trigger_schema = ? AND LEFT(trigger_name, ?) = ?";
    let rows = side
        .conn
        .query_all_raw(side.stmt(
            sql,
            vec![
                side.qualifier.clone().into(),
                (prefix.len() as i64).into(),
                prefix.into(),
            ],
        ))
        .await?;
    let mut names = Vec::new();
    for row in rows {
        let name: String = row.try_get_by_index(0)?;
        if is_storefronts_trigger(storefront, &name) {
            names.push(name);
        }
    }
    Ok(names)
}

/// Raises or lowers the fence. Raising waits for every transaction that has written to the
/// storefront on this side to finish.
pub(crate) async fn set_fence(
    side: &Side,
    storefront: StorefrontId,
    fenced: bool,
) -> Result<(), TenancyError> {
    let value: sea_orm::Value = match side.backend {
        DbBackend::Postgres => fenced.into(),
        _ => i32::from(fenced).into(),
    };
    let sql = format!(
        "UPDATE {} SET fenced = {} WHERE storefront_id = {} AND holder = {}",
        side.table(FENCE),
        side.p(1),
        side.p(2),
        side.holder
    );
    let changed = side
        .conn
        .execute_raw(side.stmt(sql, vec![value, (*storefront.as_uuid()).into()]))
        .await?
        .rows_affected();
    if changed != 1 {
        // Lowering a fence that is not there is done; one a later mover holds is not this
        // mover's to lower.
        if !fenced && current_guard_row(side, storefront).await?.is_none() {
            return Ok(());
        }
        // The triggers refuse every write while the row is missing; a fence that cannot be
        // raised on purpose is a broken capture, not one to cut over behind.
        return Err(missing_fence_row(side, storefront, "cutover"));
    }
    Ok(())
}

/// Whether the storefront's writes are fenced on `side` (no fence row: not fenced).
pub(crate) async fn fence_up(side: &Side, storefront: StorefrontId) -> Result<bool, TenancyError> {
    Ok(fence_column(side, storefront, "fenced")
        .await?
        .is_some_and(|v| v != 0))
}

/// Appends `key` of `table` to the changelog by hand: a row the copy could not write
/// (its parent is not on the target yet, or it collides with a row that changed since) is
/// replayed by the catch-up like any logged change, instead of being left to the
/// assumption that it changed after capture began (true of a unique collision, not of a
/// child whose parent was skipped).
pub(crate) async fn log_key(
    side: &Side,
    storefront: StorefrontId,
    table: &str,
    key: &Key,
) -> Result<(), TenancyError> {
    // The key as the triggers log it: text on PostgreSQL (`to_jsonb(row) ->> pk`), the
    // column's own value elsewhere.
    let pk: sea_orm::Value = match side.backend {
        DbBackend::Postgres => key.to_string().into(),
        _ => key.value(),
    };
    let sql = format!(
        "INSERT INTO {} (storefront_id, table_name, pk) VALUES ({}, {}, {})",
        side.table(CHANGELOG),
        side.p(1),
        side.p(2),
        side.p(3)
    );
    side.conn
        .execute_raw(side.stmt(sql, vec![(*storefront.as_uuid()).into(), table.into(), pk]))
        .await?;
    Ok(())
}

/// Up to `limit` entries not applied yet, oldest first.
pub(crate) async fn pending(
    side: &Side,
    storefront: StorefrontId,
    kinds: &BTreeMap<String, KeyKind>,
    limit: u64,
) -> Result<Vec<Entry>, TenancyError> {
    let sql = format!(
        "SELECT seq, table_name, pk FROM {} WHERE storefront_id = {} AND round IS NULL ORDER BY seq LIMIT {limit}",
        side.table(CHANGELOG),
        side.p(1)
    );
    let rows = side
        .conn
        .query_all_raw(side.stmt(sql, vec![(*storefront.as_uuid()).into()]))
        .await?;
    rows.iter()
        .map(|row| {
            let seq: i64 = row.try_get_by_index(0)?;
            let table: String = row.try_get_by_index(1)?;
            let kind = *kinds.get(&table).ok_or_else(|| TenancyError::Move {
                storefront: storefront.to_string(),
                phase: "catch-up".into(),
                reason: format!("the changelog names table `{table}`, which is not a scoped table"),
            })?;
            let key = Key::read_logged(row, 2, kind, side.backend)?;
            Ok(Entry { seq, table, key })
        })
        .collect()
}

/// Marks entries as applied in catch-up round `round`.
pub(crate) async fn mark(side: &Side, entries: &[Entry], round: i64) -> Result<(), TenancyError> {
    for chunk in entries.chunks(1000) {
        let seqs: Vec<String> = chunk.iter().map(|e| e.seq.to_string()).collect();
        let sql = format!(
            "UPDATE {} SET round = {round} WHERE seq IN ({})",
            side.table(CHANGELOG),
            seqs.join(", ")
        );
        side.conn.execute_unprepared(&sql).await?;
    }
    Ok(())
}

/// Entries not applied yet.
pub(crate) async fn lag(side: &Side, storefront: StorefrontId) -> Result<u64, TenancyError> {
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE storefront_id = {} AND round IS NULL",
        side.table(CHANGELOG),
        side.p(1)
    );
    let row = side
        .conn
        .query_one_raw(side.stmt(sql, vec![(*storefront.as_uuid()).into()]))
        .await?;
    let n: i64 = match row {
        Some(r) => r.try_get_by_index(0)?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

/// The keys, per table, of entries applied after round `after` or not applied yet: every
/// row that may have changed since a validation that started at round `after`.
pub(crate) async fn keys_since(
    side: &Side,
    storefront: StorefrontId,
    kinds: &BTreeMap<String, KeyKind>,
    after: i64,
) -> Result<BTreeMap<String, BTreeSet<Key>>, TenancyError> {
    let sql = format!(
        "SELECT table_name, pk FROM {} WHERE storefront_id = {} AND (round IS NULL OR round > {after})",
        side.table(CHANGELOG),
        side.p(1)
    );
    let rows = side
        .conn
        .query_all_raw(side.stmt(sql, vec![(*storefront.as_uuid()).into()]))
        .await?;
    let mut out: BTreeMap<String, BTreeSet<Key>> = BTreeMap::new();
    for row in &rows {
        let table: String = row.try_get_by_index(0)?;
        if let Some(kind) = kinds.get(&table) {
            let key = Key::read_logged(row, 1, *kind, side.backend)?;
            out.entry(table).or_default().insert(key);
        }
    }
    Ok(out)
}

/// The newest entry not applied yet (0 when none).
pub(crate) async fn newest_pending(
    side: &Side,
    storefront: StorefrontId,
) -> Result<i64, TenancyError> {
    let sql = format!(
        "SELECT MAX(seq) FROM {} WHERE storefront_id = {} AND round IS NULL",
        side.table(CHANGELOG),
        side.p(1)
    );
    let row = side
        .conn
        .query_one_raw(side.stmt(sql, vec![(*storefront.as_uuid()).into()]))
        .await?;
    Ok(match row {
        Some(r) => r.try_get_by_index::<Option<i64>>(0)?.unwrap_or(0),
        None => 0,
    })
}

/// The highest round recorded so far (0 when none).
pub(crate) async fn last_round(side: &Side, storefront: StorefrontId) -> Result<i64, TenancyError> {
    let sql = format!(
        "SELECT MAX(round) FROM {} WHERE storefront_id = {}",
        side.table(CHANGELOG),
        side.p(1)
    );
    let row = side
        .conn
        .query_one_raw(side.stmt(sql, vec![(*storefront.as_uuid()).into()]))
        .await?;
    Ok(match row {
        Some(r) => r.try_get_by_index::<Option<i64>>(0)?.unwrap_or(0),
        None => 0,
    })
}
