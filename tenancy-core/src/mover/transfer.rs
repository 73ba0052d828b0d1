//! Moving rows: the bulk copy (keyset pages on the primary key) and the replay of changed
//! keys (catch-up).
//!
//! When one connection reaches both sides (PostgreSQL schemas of one database, MySQL
//! databases of one server, SQLite files attached to one connection) rows never leave the
//! server: `INSERT ... SELECT`. Between two PostgreSQL databases (any servers) rows travel
//! as `COPY ... TO STDOUT` piped into `COPY ... FROM STDIN`, the fastest path PostgreSQL has.

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::{ConnectionTrait, DbBackend, TransactionTrait};

#[cfg(feature = "postgres")]
use super::pg_copy;
use super::{
    capture::{self, enter_sql, guard_sql, not_entered, Guard},
    side::{same_connection, Key, KeyKind, Side, TableMeta},
};
use crate::{
    backend::{classify, ErrorClass, Keyset},
    StorefrontId, TenancyError,
};

/// Rows between two databases travel by PostgreSQL's COPY: without the `postgres`
/// feature no such move can have been planned (no PostgreSQL side can be connected).
#[cfg(not(feature = "postgres"))]
fn pg_copy_unavailable() -> TenancyError {
    TenancyError::Move {
        storefront: "-".into(),
        phase: "copy".into(),
        reason: "copying between two databases needs PostgreSQL's COPY: build with the `postgres` feature".into(),
    }
}

/// A write the copy may skip: the row is in the changelog (see `write_page`).
pub(super) fn skippable(e: &sea_orm::DbErr) -> bool {
    matches!(
        classify(e),
        ErrorClass::UniqueViolation | ErrorClass::ForeignKeyViolation
    )
}

/// `key IN (...)`.
fn key_list(chunk: &[&Key]) -> Keyset {
    Keyset::Keys(chunk.iter().map(|k| k.value()).collect())
}

pub(super) fn columns(side: &Side, meta: &TableMeta, alias: Option<&str>) -> String {
    meta.columns
        .iter()
        .map(|c| match alias {
            Some(a) => format!("{a}.{}", side.q(c)),
            None => side.q(c),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The last key of the next page of at most `limit` keys after `after` (and at most
/// `bound`) on `side`.
pub(crate) async fn page_end(
    side: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    after: Option<&Key>,
    bound: Option<&Key>,
    limit: u64,
) -> Result<Option<Key>, TenancyError> {
    let pk = side.q(&meta.pk);
    let range = Keyset::Page {
        after: after.map(Key::value),
        upto: bound.map(Key::value),
    };
    let (filter, values) = side.keyset(meta, None, storefront, range);
    let sql = format!(
        "SELECT {pk} FROM (SELECT {pk} FROM {} WHERE {filter} ORDER BY {pk} LIMIT {limit}) AS page \
         ORDER BY {pk} DESC LIMIT 1",
        side.table(&meta.name)
    );
    let row = side.conn.query_one_raw(side.stmt(sql, values)).await?;
    row.map(|r| Key::read(&r, 0, meta.kind)).transpose()
}

/// The highest key of the storefront on `side` (where a resumed copy continues).
pub(crate) async fn max_key(
    side: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
) -> Result<Option<Key>, TenancyError> {
    let pk = side.q(&meta.pk);
    let (filter, values) = side.keyset(meta, None, storefront, Keyset::All);
    let sql = format!(
        "SELECT {pk} FROM {} WHERE {filter} ORDER BY {pk} DESC LIMIT 1",
        side.table(&meta.name),
    );
    let row = side.conn.query_one_raw(side.stmt(sql, values)).await?;
    row.map(|r| Key::read(&r, 0, meta.kind)).transpose()
}

/// The keys `(after, upto]`: one page of the copy.
fn page(after: Option<&Key>, upto: &Key) -> Keyset {
    Keyset::Page {
        after: after.map(Key::value),
        upto: Some(upto.value()),
    }
}

/// Runs one statement (built for `conn_side`'s connection, which also reaches `dst`) as the
/// mover's own write on `dst`: in a transaction that sets [`Guard::Mover`] first and leaves
/// the guard at `leave`, so the target guard and the fence let it through and no one else.
pub(super) async fn as_mover(
    dst: &Side,
    storefront: StorefrontId,
    leave: Guard,
    stmt: sea_orm::Statement,
) -> Result<sea_orm::ExecResult, sea_orm::DbErr> {
    let txn = dst.conn.begin().await?;
    let result = async {
        let entered = txn
            .execute_unprepared(&enter_sql(dst, storefront, leave))
            .await?;
        if entered.rows_affected() != 1 {
            return Err(sea_orm::DbErr::Custom(not_entered(dst, storefront, leave)));
        }
        let r = txn.execute_raw(stmt).await?;
        txn.execute_unprepared(&guard_sql(dst, storefront, leave))
            .await?;
        Ok(r)
    }
    .await;
    match result {
        Ok(r) => {
            txn.commit().await?;
            Ok(r)
        }
        Err(e) => {
            let _ = txn.rollback().await;
            Err(e)
        }
    }
}

async fn copy_range_sql(
    src: &Side,
    dst: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    after: Option<&Key>,
    upto: &Key,
) -> Result<u64, TenancyError> {
    let cols = columns(src, meta, None);
    let (insert, ignore) = src.dialect().insert_ignore();
    let copy = |filter: &str| {
        format!(
            "{insert} {} ({cols}) SELECT {cols} FROM {} WHERE {filter}{ignore}",
            dst.table(&meta.name),
            src.table(&meta.name),
        )
    };
    let (filter, values) = src.keyset(meta, None, storefront, page(after, upto));
    let sql = copy(&filter);
    let copied = as_mover(dst, storefront, Guard::Target, src.stmt(sql, values)).await;
    if copied.is_ok() && matches!(dst.placement, crate::Placement::Shared) {
        // Into shared tables a key of the page may be another storefront's row there
        // (integer keys from two sequences): the insert skipped it, and no catch-up can
        // write it. Stop, naming one.
        let (filter, values) = src.keyset(meta, Some("s"), storefront, page(after, upto));
        let (pk, tc) = (src.q(&meta.pk), src.q(&meta.tenant_column));
        let sql = format!(
            "SELECT d.{pk} FROM {} d WHERE d.{tc} <> {} AND d.{pk} IN (SELECT s.{pk} FROM {} s WHERE {filter})",
            dst.table(&meta.name),
            dst.storefront_literal(storefront),
            src.table(&meta.name),
        );
        let held = src.conn.query_all_raw(src.stmt(sql, values)).await?;
        if let Some(row) = held.first() {
            let first = Key::read(row, 0, meta.kind)?.to_string();
            return Err(foreign_keys(dst, meta, storefront, held.len(), &first));
        }
    }
    match copied {
        Ok(r) if src.backend == DbBackend::MySql => {
            // MySQL's INSERT IGNORE also turns a foreign-key refusal into a warning: the
            // rows of the page that are not on the target now are looked up and logged.
            for key in keys_in(src, meta, storefront, after, upto, Some(dst)).await? {
                tracing::debug!(table = %meta.name, key = %key, "copy deferred to catch-up");
                capture::log_key(src, storefront, &meta.name, &key).await?;
            }
            Ok(r.rows_affected())
        }
        Ok(r) => Ok(r.rows_affected()),
        Err(e) if skippable(&e) => {
            // One row at a time, skipping the rows the target refuses.
            let keys = keys_in(src, meta, storefront, after, upto, None).await?;
            let mut written = 0;
            for key in keys {
                let (filter, values) =
                    src.keyset(meta, None, storefront, Keyset::Keys(vec![key.value()]));
                let stmt = src.stmt(copy(&filter), values);
                match as_mover(dst, storefront, Guard::Target, stmt).await {
                    Ok(r) => written += r.rows_affected(),
                    Err(e) if skippable(&e) => {
                        tracing::debug!(table = %meta.name, key = %key, "copy deferred to catch-up: {e}");
                        capture::log_key(src, storefront, &meta.name, &key).await?;
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(written)
        }
        Err(e) => Err(e.into()),
    }
}

/// The keys of `side`'s page `(after, upto]`, in order; with `absent_from`, only those
/// with no row there (a side on the same server).
async fn keys_in(
    side: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    after: Option<&Key>,
    upto: &Key,
    absent_from: Option<&Side>,
) -> Result<Vec<Key>, TenancyError> {
    let pk = side.q(&meta.pk);
    let (filter, values) = side.keyset(meta, Some("s"), storefront, page(after, upto));
    let absent = absent_from.map_or_else(String::new, |other| {
        format!(
            " AND NOT EXISTS (SELECT 1 FROM {} d WHERE d.{pk} = s.{pk})",
            other.table(&meta.name)
        )
    });
    let sql = format!(
        "SELECT s.{pk} FROM {} s WHERE {filter}{absent} ORDER BY s.{pk}",
        side.table(&meta.name)
    );
    side.conn
        .query_all_raw(side.stmt(sql, values))
        .await?
        .iter()
        .map(|row| Key::read(row, 0, meta.kind))
        .collect()
}

/// One page of the copy, read from the source and not yet written. Between PostgreSQL
/// databases the rows are in `data` (COPY's binary format), between MySQL servers in
/// `rows`; on one connection they never leave the server.
pub(crate) struct Page {
    pub(super) after: Option<Key>,
    /// The page's last key: where the copy goes on once the page is written.
    pub upto: Key,
    pub(super) data: Vec<u8>,
    pub(super) rows: Vec<super::rows::Row>,
}

/// Whether reading the next page while writing this one pays: the sides are different
/// servers or databases (different connections), so the two run side by side, as the two
/// ends of a `psql | psql` pipe do.
pub(crate) fn pipelined(src: &Side, dst: &Side) -> bool {
    !same_connection(src, dst)
}

/// Reads the page after `after` (at most `limit` rows, none above `bound`) from the source.
pub(crate) async fn read_page(
    src: &Side,
    dst: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    after: Option<&Key>,
    bound: Option<&Key>,
    limit: u64,
) -> Result<Option<Page>, TenancyError> {
    let Some(upto) = page_end(src, meta, storefront, after, bound, limit).await? else {
        return Ok(None);
    };
    #[cfg_attr(not(feature = "postgres"), allow(unused_mut))]
    let (mut data, mut rows) = (Vec::new(), Vec::new());
    if same_connection(src, dst) {
        // Nothing to read: the page is copied inside the server.
    } else if src.backend == DbBackend::MySql {
        rows = super::rows::read_page(src, meta, storefront, after, &upto).await?;
    } else {
        #[cfg(feature = "postgres")]
        {
            data = Box::pin(pg_copy::read_page(src, meta, storefront, after, &upto)).await?;
        }
        #[cfg(not(feature = "postgres"))]
        return Err(pg_copy_unavailable());
    }
    Ok(Some(Page {
        after: after.cloned(),
        upto,
        data,
        rows,
    }))
}

/// Writes a page read by `read_page` to the target. Returns the rows written.
///
/// Rows already on the target are left alone, and a row the target refuses for a foreign
/// key or a unique key is skipped and its key logged (`capture::log_key`): the catch-up
/// writes its current state once what it depends on is there. (Logging it is needed: a
/// child refused because its parent was skipped has not changed, so no trigger logged it.)
pub(crate) async fn write_page(
    src: &Side,
    dst: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    page: &Page,
) -> Result<u64, TenancyError> {
    if same_connection(src, dst) {
        return copy_range_sql(src, dst, meta, storefront, page.after.as_ref(), &page.upto).await;
    }
    if src.backend == DbBackend::MySql {
        return super::rows::write_page(src, dst, meta, storefront, &page.rows).await;
    }
    if page.data.is_empty() {
        return Ok(0);
    }
    #[cfg(feature = "postgres")]
    return Box::pin(pg_copy::write_page(src, dst, meta, storefront, page)).await;
    #[cfg(not(feature = "postgres"))]
    Err(pg_copy_unavailable())
}

/// Writes the current source state of `keys` (per table) to `dst`, in one target
/// transaction: a key whose row is gone from the source is deleted on the target (children
/// before parents), every other key is upserted (parents before children). An upsert, not
/// delete-then-insert: deleting a parent on the target would cascade to, or be refused by,
/// its children there.
/// The transaction writes as the mover ([`Guard::Mover`]), through the target guard or the
/// fence of the old side after a cutover, and leaves the guard at `leave`: other writers
/// wait for the fence row and then find it as it was.
pub(crate) async fn apply(
    src: &Side,
    dst: &Side,
    tables: &[TableMeta],
    storefront: StorefrontId,
    keys: &BTreeMap<String, BTreeSet<Key>>,
    leave: Guard,
) -> Result<(), TenancyError> {
    if keys.values().all(BTreeSet::is_empty) {
        return Ok(());
    }
    if !same_connection(src, dst) {
        // Between two servers (or two PostgreSQL databases): which keys still have a row
        // on the source is read with the rows themselves.
        if src.backend == DbBackend::MySql {
            return super::rows::apply(src, dst, tables, storefront, keys, leave).await;
        }
        #[cfg(feature = "postgres")]
        return Box::pin(pg_copy::apply(src, dst, tables, storefront, keys, leave)).await;
        #[cfg(not(feature = "postgres"))]
        return Err(pg_copy_unavailable());
    }
    // Which keys still have a row on the source.
    let mut present: BTreeMap<String, BTreeSet<Key>> = BTreeMap::new();
    for meta in tables {
        let Some(set) = keys.get(&meta.name) else {
            continue;
        };
        let mut found = BTreeSet::new();
        for chunk in set.iter().collect::<Vec<_>>().chunks(500) {
            let (filter, values) = src.keyset(meta, None, storefront, key_list(chunk));
            let sql = format!(
                "SELECT {} FROM {} WHERE {filter}",
                src.q(&meta.pk),
                src.table(&meta.name),
            );
            for row in src.conn.query_all_raw(src.stmt(sql, values)).await? {
                found.insert(Key::read(&row, 0, meta.kind)?);
            }
        }
        present.insert(meta.name.clone(), found);
    }
    apply_sql(src, dst, tables, storefront, keys, &present, leave).await
}

/// `ON CONFLICT` / `ON DUPLICATE KEY` clause updating every column but the key and the
/// tenant column, and only a row of the same storefront: a key that another storefront's
/// row holds on this side (integer keys from two sequences can meet) is left alone, never
/// taken over, and [`check_not_foreign`] reports it.
pub(super) fn upsert_clause(side: &Side, meta: &TableMeta) -> String {
    let others: Vec<&String> = meta
        .columns
        .iter()
        .filter(|c| **c != meta.pk && **c != meta.tenant_column)
        .collect();
    let set = |f: &dyn Fn(&str) -> String| -> String {
        others
            .iter()
            .map(|c| format!("{} = {}", side.q(c), f(&side.q(c))))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let tc = side.q(&meta.tenant_column);
    // MySQL: the row already there, by its qualified name (an `INSERT ... SELECT` from a
    // table of the same name makes a bare column ambiguous).
    let here = side.table(&meta.name);
    if others.is_empty() {
        // Nothing to update: a row already there stays as it is.
        return match side.backend {
            DbBackend::MySql => format!(" ON DUPLICATE KEY UPDATE {here}.{tc} = {here}.{tc}"),
            _ => format!(" ON CONFLICT ({}) DO NOTHING", side.q(&meta.pk)),
        };
    }
    match side.backend {
        DbBackend::MySql => format!(
            " ON DUPLICATE KEY UPDATE {}",
            others
                .iter()
                .map(|c| {
                    let c = side.q(c);
                    format!("{here}.{c} = IF({here}.{tc} = VALUES({tc}), VALUES({c}), {here}.{c})")
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => {
            let excluded = if side.backend == DbBackend::Postgres {
                "EXCLUDED"
            } else {
                "excluded"
            };
            format!(
                " ON CONFLICT ({}) DO UPDATE SET {} WHERE {}.{tc} = {excluded}.{tc}",
                side.q(&meta.pk),
                set(&|c| format!("{excluded}.{c}")),
                side.q(&meta.name),
            )
        }
    }
}

/// Checks, inside the transaction that wrote them, that no key of `chunk` is held by
/// another storefront's row on `dst`: the upsert left such a row alone (it never takes one
/// over), so the storefront's row was not written, and the move stops naming the key
/// rather than lose the write.
pub(super) async fn check_not_foreign(
    txn: &impl ConnectionTrait,
    dst: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    chunk: &[&Key],
) -> Result<(), TenancyError> {
    if chunk.is_empty() {
        return Ok(());
    }
    let mut values: Vec<sea_orm::Value> = chunk.iter().map(|k| k.value()).collect();
    let list: Vec<String> = (1..=chunk.len()).map(|i| dst.p(i)).collect();
    values.push((*storefront.as_uuid()).into());
    // A locking read: the newest rows, not the snapshot of the transaction's first read
    // (MySQL's repeatable read), as the upsert saw them.
    let lock = match dst.backend {
        DbBackend::Postgres => " FOR SHARE",
        DbBackend::MySql => " LOCK IN SHARE MODE",
        _ => "",
    };
    let sql = format!(
        "SELECT {pk} FROM {} WHERE {pk} IN ({}) AND {} <> {}{lock}",
        dst.table(&meta.name),
        list.join(", "),
        dst.q(&meta.tenant_column),
        dst.p(chunk.len() + 1),
        pk = dst.q(&meta.pk),
    );
    let held = txn.query_all_raw(dst.stmt(sql, values)).await?;
    match held.first() {
        None => Ok(()),
        Some(row) => Err(foreign_keys(
            dst,
            meta,
            storefront,
            held.len(),
            &Key::read(row, 0, meta.kind)?.to_string(),
        )),
    }
}

/// MySQL: the keys of `chunk` that have a row of the storefront on `src` (read now) but
/// none on `dst` after the upsert: written nowhere, so the move stops, naming one.
async fn check_all_written(
    txn: &impl ConnectionTrait,
    src: &Side,
    dst: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    chunk: &[&Key],
) -> Result<(), TenancyError> {
    let (filter, values) = src.keyset(meta, Some("s"), storefront, key_list(chunk));
    let (pk, tc) = (src.q(&meta.pk), src.q(&meta.tenant_column));
    let sql = format!(
        "SELECT s.{pk} FROM {} s WHERE {filter} AND NOT EXISTS \
         (SELECT 1 FROM {} d WHERE d.{pk} = s.{pk} AND d.{tc} = s.{tc}) LOCK IN SHARE MODE",
        src.table(&meta.name),
        dst.table(&meta.name),
    );
    let missing = txn.query_all_raw(src.stmt(sql, values)).await?;
    match missing.first() {
        None => Ok(()),
        Some(row) => Err(TenancyError::Move {
            storefront: storefront.to_string(),
            phase: "catch-up".into(),
            reason: format!(
                "{} row(s) of `{}` could not be written to {}: another storefront's row holds one of their unique values there (one key: {})",
                missing.len(),
                meta.name,
                dst.placement,
                Key::read(row, 0, meta.kind)?
            ),
        }),
    }
}

/// The error of [`check_not_foreign`].
pub(super) fn foreign_keys(
    dst: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    n: usize,
    first: &str,
) -> TenancyError {
    TenancyError::Move {
        storefront: storefront.to_string(),
        phase: "catch-up".into(),
        reason: format!(
            "{n} key(s) of `{}` could not be written to {}: another storefront's rows hold them there \
             (keys handed out by two sequences met; one of them: {first})",
            meta.name, dst.placement,
        ),
    }
}

pub(super) fn gone<'a>(
    keys: &'a BTreeMap<String, BTreeSet<Key>>,
    present: &'a BTreeMap<String, BTreeSet<Key>>,
    table: &str,
) -> Vec<&'a Key> {
    let empty = BTreeSet::new();
    let here = present.get(table).unwrap_or(&empty);
    keys.get(table)
        .map(|set| set.iter().filter(|k| !here.contains(*k)).collect())
        .unwrap_or_default()
}

async fn apply_sql(
    src: &Side,
    dst: &Side,
    tables: &[TableMeta],
    storefront: StorefrontId,
    keys: &BTreeMap<String, BTreeSet<Key>>,
    present: &BTreeMap<String, BTreeSet<Key>>,
    leave: Guard,
) -> Result<(), TenancyError> {
    let txn = dst.conn.begin().await?;
    let entered = txn
        .execute_unprepared(&enter_sql(dst, storefront, leave))
        .await?;
    if entered.rows_affected() != 1 {
        return Err(sea_orm::DbErr::Custom(not_entered(dst, storefront, leave)).into());
    }
    for meta in tables.iter().rev() {
        for chunk in gone(keys, present, &meta.name).chunks(500) {
            let (filter, values) = dst.keyset(meta, None, storefront, key_list(chunk));
            let sql = format!("DELETE FROM {} WHERE {filter}", dst.table(&meta.name));
            txn.execute_raw(dst.stmt(sql, values)).await?;
        }
    }
    for meta in tables {
        let Some(set) = present.get(&meta.name) else {
            continue;
        };
        let cols = columns(src, meta, None);
        for chunk in set.iter().collect::<Vec<_>>().chunks(500) {
            let (filter, values) = src.keyset(meta, None, storefront, key_list(chunk));
            let sql = format!(
                "INSERT INTO {} ({cols}) SELECT {cols} FROM {} WHERE {filter}{}",
                dst.table(&meta.name),
                src.table(&meta.name),
                upsert_clause(dst, meta)
            );
            txn.execute_raw(src.stmt(sql, values)).await?;
            check_not_foreign(&txn, dst, meta, storefront, chunk).await?;
            if dst.backend == DbBackend::MySql {
                // MySQL's upsert also meets another storefront's row on a unique key that
                // is not the primary key, and keeps it (the `IF`): the row the source has
                // was then not written. PostgreSQL and SQLite refuse such a row instead.
                check_all_written(&txn, src, dst, meta, storefront, chunk).await?;
            }
        }
    }
    txn.execute_unprepared(&guard_sql(dst, storefront, leave))
        .await?;
    txn.commit().await?;
    Ok(())
}

/// Deletes every row of the storefront from `side`'s scoped tables, children first; as the
/// mover (leaving the guard at `leave`) where `side` is guarded.
pub(crate) async fn clear(
    side: &Side,
    tables: &[TableMeta],
    storefront: StorefrontId,
    as_mover_leaving: Option<Guard>,
) -> Result<(), TenancyError> {
    for meta in tables.iter().rev() {
        let sql = format!(
            "DELETE FROM {} WHERE {} = {}",
            side.table(&meta.name),
            side.q(&meta.tenant_column),
            side.p(1)
        );
        let stmt = side.stmt(sql, vec![(*storefront.as_uuid()).into()]);
        let done = match as_mover_leaving {
            Some(leave) => as_mover(side, storefront, leave, stmt).await,
            None => side.conn.execute_raw(stmt).await,
        };
        match done {
            Ok(_) => {}
            Err(e) if capture::missing_table(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Moves each integer key's sequence on `side` past the highest key there (PostgreSQL's
/// `serial` and identity columns): the copy and the replay write keys explicitly, which
/// leaves the side's sequence where it was, so the first insert once the side serves would
/// take a key already used. MySQL's `AUTO_INCREMENT` and SQLite's rowid follow explicit
/// keys by themselves. A sequence already past the highest key is left alone.
pub(crate) async fn advance_sequences(
    side: &Side,
    tables: &[TableMeta],
) -> Result<(), TenancyError> {
    if side.backend != DbBackend::Postgres {
        return Ok(());
    }
    for meta in tables.iter().filter(|t| t.kind == KeyKind::Int) {
        let table = side.table(&meta.name);
        let sql = format!(
            "SELECT setval(seq::regclass, top) FROM \
             (SELECT pg_get_serial_sequence($1, $2) AS seq, (SELECT MAX({pk}) FROM {table}) AS top) s \
             WHERE seq IS NOT NULL AND top IS NOT NULL \
               AND top > COALESCE(pg_sequence_last_value(seq::regclass), 0)",
            pk = side.q(&meta.pk),
        );
        side.conn
            .query_all_raw(side.stmt(sql, vec![table.clone().into(), meta.pk.clone().into()]))
            .await?;
    }
    Ok(())
}
