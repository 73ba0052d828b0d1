//! Moving rows: the bulk copy (keyset pages on the primary key) and the replay of changed
//! keys (catch-up).
//!
//! When one connection reaches both sides (PostgreSQL schemas of one database, MySQL
//! databases of one server, SQLite files attached to one connection) rows never leave the
//! server: `INSERT ... SELECT`. Between two PostgreSQL databases (any servers) rows travel
//! as `COPY ... TO STDOUT` piped into `COPY ... FROM STDIN`, the fastest path PostgreSQL has.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::TryStreamExt;
use sea_orm::{
    sqlx::{self, postgres::PgPoolCopyExt},
    ConnectionTrait, DbBackend, TransactionTrait, Value,
};

use super::{
    capture::{self, FENCE},
    side::{same_connection, Key, Side, TableMeta},
};
use crate::{StorefrontId, TenancyError};

fn sqlx_err(what: &str, e: sqlx::Error) -> TenancyError {
    TenancyError::Db(sea_orm::DbErr::Custom(format!("{what}: {e}")))
}

fn sqlx_code(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
        _ => None,
    }
}

/// A write the copy may skip: the row is in the changelog (see `write_page`).
fn skippable(e: &sea_orm::DbErr) -> bool {
    let m = e.to_string().to_lowercase();
    m.contains("foreign key") || m.contains("23503") || m.contains("23505") || m.contains("unique")
}

fn columns(side: &Side, meta: &TableMeta, alias: Option<&str>) -> String {
    meta.columns
        .iter()
        .map(|c| match alias {
            Some(a) => format!("{a}.{}", side.q(c)),
            None => side.q(c),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The last key of the next page of at most `limit` keys after `after` on `side`.
pub(crate) async fn page_end(
    side: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    after: Option<&Key>,
    limit: u64,
) -> Result<Option<Key>, TenancyError> {
    let pk = side.q(&meta.pk);
    let mut values: Vec<Value> = vec![(*storefront.as_uuid()).into()];
    let mut filter = format!("{} = {}", side.q(&meta.tenant_column), side.p(1));
    if let Some(k) = after {
        values.push(k.value());
        filter.push_str(&format!(" AND {pk} > {}", side.p(2)));
    }
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
    let sql = format!(
        "SELECT {pk} FROM {} WHERE {} = {} ORDER BY {pk} DESC LIMIT 1",
        side.table(&meta.name),
        side.q(&meta.tenant_column),
        side.p(1)
    );
    let row = side
        .conn
        .query_one_raw(side.stmt(sql, vec![(*storefront.as_uuid()).into()]))
        .await?;
    row.map(|r| Key::read(&r, 0, meta.kind)).transpose()
}

fn insert_prefix(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => "INSERT INTO",
        DbBackend::MySql => "INSERT IGNORE INTO",
        _ => "INSERT OR IGNORE INTO",
    }
}

fn insert_suffix(backend: DbBackend) -> &'static str {
    match backend {
        DbBackend::Postgres => " ON CONFLICT DO NOTHING",
        _ => "",
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
    let pk = src.q(&meta.pk);
    let cols = columns(src, meta, None);
    let mut values: Vec<Value> = vec![(*storefront.as_uuid()).into(), upto.value()];
    let mut filter = format!(
        "{} = {} AND {pk} <= {}",
        src.q(&meta.tenant_column),
        src.p(1),
        src.p(2)
    );
    if let Some(k) = after {
        values.push(k.value());
        filter.push_str(&format!(" AND {pk} > {}", src.p(3)));
    }
    let sql = format!(
        "{} {} ({cols}) SELECT {cols} FROM {} WHERE {filter}{}",
        insert_prefix(src.backend),
        dst.table(&meta.name),
        src.table(&meta.name),
        insert_suffix(src.backend)
    );
    match src.conn.execute_raw(src.stmt(sql, values)).await {
        Ok(r) => Ok(r.rows_affected()),
        Err(e) if skippable(&e) => {
            // One row at a time, skipping the rows the target refuses.
            let keys = keys_in(src, meta, storefront, after, upto).await?;
            let mut written = 0;
            for key in keys {
                let sql = format!(
                    "{} {} ({cols}) SELECT {cols} FROM {} WHERE {} = {} AND {pk} = {}{}",
                    insert_prefix(src.backend),
                    dst.table(&meta.name),
                    src.table(&meta.name),
                    src.q(&meta.tenant_column),
                    src.p(1),
                    src.p(2),
                    insert_suffix(src.backend)
                );
                let values = vec![(*storefront.as_uuid()).into(), key.value()];
                match src.conn.execute_raw(src.stmt(sql, values)).await {
                    Ok(r) => written += r.rows_affected(),
                    Err(e) if skippable(&e) => {
                        tracing::debug!(table = %meta.name, key = %key, "copy deferred to catch-up: {e}");
                    }
                    Err(e) => return Err(e.into()),
                }
            }
            Ok(written)
        }
        Err(e) => Err(e.into()),
    }
}

async fn keys_in(
    side: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    after: Option<&Key>,
    upto: &Key,
) -> Result<Vec<Key>, TenancyError> {
    let pk = side.q(&meta.pk);
    let mut values: Vec<Value> = vec![(*storefront.as_uuid()).into(), upto.value()];
    let mut filter = format!(
        "{} = {} AND {pk} <= {}",
        side.q(&meta.tenant_column),
        side.p(1),
        side.p(2)
    );
    if let Some(k) = after {
        values.push(k.value());
        filter.push_str(&format!(" AND {pk} > {}", side.p(3)));
    }
    let sql = format!(
        "SELECT {pk} FROM {} WHERE {filter} ORDER BY {pk}",
        side.table(&meta.name)
    );
    side.conn
        .query_all_raw(side.stmt(sql, values))
        .await?
        .iter()
        .map(|r| Key::read(r, 0, meta.kind))
        .collect()
}

/// How rows travel between two PostgreSQL databases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Format {
    /// PostgreSQL's binary COPY format: no text conversion of uuids and timestamps on
    /// either side (COPY IN about 12% and COPY OUT about 40% faster than text, measured
    /// with psql on this project's bench rows). Needs the same column types on both sides,
    /// which `side::tables` checks before a move starts.
    Binary,
    /// The text format: its rows are lines, so a page the target refuses in part can be
    /// written row by row.
    Text,
}

fn copy_options(format: Format) -> &'static str {
    match format {
        Format::Binary => " (FORMAT binary)",
        Format::Text => "",
    }
}

/// `COPY (SELECT ...) TO STDOUT` on the source.
async fn copy_out(
    src: &Side,
    meta: &TableMeta,
    filter: &str,
    format: Format,
) -> Result<Vec<u8>, TenancyError> {
    let sql = format!(
        "COPY (SELECT {} FROM {} WHERE {filter} ORDER BY {}) TO STDOUT{}",
        columns(src, meta, None),
        src.table(&meta.name),
        src.q(&meta.pk),
        copy_options(format)
    );
    let pool = src.conn.get_postgres_connection_pool();
    let mut stream = pool
        .copy_out_raw(&sql)
        .await
        .map_err(|e| sqlx_err(&format!("reading `{}` from the source", meta.name), e))?;
    let mut data = Vec::new();
    while let Some(chunk) = stream
        .try_next()
        .await
        .map_err(|e| sqlx_err(&format!("reading `{}` from the source", meta.name), e))?
    {
        data.extend_from_slice(&chunk);
    }
    Ok(data)
}

fn copy_in_sql(dst: &Side, meta: &TableMeta, format: Format) -> String {
    format!(
        "COPY {} ({}) FROM STDIN{}",
        dst.table(&meta.name),
        columns(dst, meta, None),
        copy_options(format)
    )
}

async fn copy_in(
    dst: &Side,
    meta: &TableMeta,
    data: &[u8],
    format: Format,
) -> Result<u64, sqlx::Error> {
    let pool = dst.conn.get_postgres_connection_pool();
    let mut copy = pool.copy_in_raw(&copy_in_sql(dst, meta, format)).await?;
    if let Err(e) = copy.send(data).await {
        let _ = copy.abort("send failed").await;
        return Err(e);
    }
    copy.finish().await
}

fn pg_filter(meta: &TableMeta, side: &Side, storefront: StorefrontId) -> String {
    format!(
        "{} = {}",
        side.q(&meta.tenant_column),
        side.storefront_literal(storefront)
    )
}

/// A refusal of rows the copy may skip (see `write_page`).
fn refused(e: &sqlx::Error) -> bool {
    matches!(sqlx_code(e).as_deref(), Some("23505" | "23503"))
}

/// One page of the copy, read from the source and not yet written. Between PostgreSQL
/// databases the rows are in `data`; on one connection they never leave the server.
pub(crate) struct Page {
    after: Option<Key>,
    /// The page's last key: where the copy goes on once the page is written.
    pub upto: Key,
    data: Vec<u8>,
}

/// Whether reading the next page while writing this one pays: the sides are different
/// servers or databases (different connections), so the two run side by side, as the two
/// ends of a `psql | psql` pipe do.
pub(crate) fn pipelined(src: &Side, dst: &Side) -> bool {
    !same_connection(src, dst)
}

/// Reads the page after `after` (at most `limit` rows) from the source.
pub(crate) async fn read_page(
    src: &Side,
    dst: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    after: Option<&Key>,
    limit: u64,
) -> Result<Option<Page>, TenancyError> {
    let Some(upto) = page_end(src, meta, storefront, after, limit).await? else {
        return Ok(None);
    };
    let data = if same_connection(src, dst) {
        Vec::new()
    } else {
        copy_out(
            src,
            meta,
            &page_filter(src, meta, storefront, after, &upto),
            Format::Binary,
        )
        .await?
    };
    Ok(Some(Page {
        after: after.cloned(),
        upto,
        data,
    }))
}

/// Writes a page read by `read_page` to the target. Returns the rows written.
///
/// Rows already on the target are left alone, and a row the target refuses for a foreign
/// key or a unique key is skipped: capture was installed before the copy began, so any
/// such row changed after that moment (its parent was inserted later, or the row it
/// collides with was changed later), its key is in the changelog, and catch-up writes its
/// current state.
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
    if page.data.is_empty() {
        return Ok(0);
    }
    let target_err = |e| sqlx_err(&format!("writing `{}` to the target", meta.name), e);
    match copy_in(dst, meta, &page.data, Format::Binary).await {
        Ok(n) => Ok(n),
        Err(e) if refused(&e) => {
            // Row by row, skipping the rows the target refuses: read again in text, whose
            // rows are lines.
            let filter = page_filter(src, meta, storefront, page.after.as_ref(), &page.upto);
            let data = copy_out(src, meta, &filter, Format::Text).await?;
            let mut written = 0;
            for line in data.split_inclusive(|b| *b == b'\n') {
                match copy_in(dst, meta, line, Format::Text).await {
                    Ok(n) => written += n,
                    Err(e) if refused(&e) => {
                        tracing::debug!(table = %meta.name, "copy deferred to catch-up: {e}");
                    }
                    Err(e) => return Err(target_err(e)),
                }
            }
            Ok(written)
        }
        Err(e) => Err(target_err(e)),
    }
}

fn page_filter(
    src: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    after: Option<&Key>,
    upto: &Key,
) -> String {
    let pk = src.q(&meta.pk);
    let mut filter = format!(
        "{} AND {pk} <= {}",
        pg_filter(meta, src, storefront),
        upto.pg_literal()
    );
    if let Some(k) = after {
        filter.push_str(&format!(" AND {pk} > {}", k.pg_literal()));
    }
    filter
}

/// Writes the current source state of `keys` (per table) to `dst`, in one target
/// transaction: a key whose row is gone from the source is deleted on the target (children
/// before parents), every other key is upserted (parents before children). An upsert, not
/// delete-then-insert: deleting a parent on the target would cascade to, or be refused by,
/// its children there.
/// When `dst` is fenced (replaying onto the old side after a cutover), the fence is lowered
/// inside that transaction only: other writers still wait for it and then see it raised.
pub(crate) async fn apply(
    src: &Side,
    dst: &Side,
    tables: &[TableMeta],
    storefront: StorefrontId,
    keys: &BTreeMap<String, BTreeSet<Key>>,
    dst_fenced: bool,
) -> Result<(), TenancyError> {
    if keys.values().all(BTreeSet::is_empty) {
        return Ok(());
    }
    // Which keys still have a row on the source.
    let mut present: BTreeMap<String, BTreeSet<Key>> = BTreeMap::new();
    for meta in tables {
        let Some(set) = keys.get(&meta.name) else {
            continue;
        };
        let mut found = BTreeSet::new();
        for chunk in set.iter().collect::<Vec<_>>().chunks(500) {
            let (list, values) = bind_list(src, storefront, chunk);
            let sql = format!(
                "SELECT {pk} FROM {} WHERE {} = {} AND {pk} IN ({list})",
                src.table(&meta.name),
                src.q(&meta.tenant_column),
                src.p(1),
                pk = src.q(&meta.pk)
            );
            for row in src.conn.query_all_raw(src.stmt(sql, values)).await? {
                found.insert(Key::read(&row, 0, meta.kind)?);
            }
        }
        present.insert(meta.name.clone(), found);
    }
    if same_connection(src, dst) {
        apply_sql(src, dst, tables, storefront, keys, &present, dst_fenced).await
    } else {
        apply_pg(src, dst, tables, storefront, keys, &present, dst_fenced).await
    }
}

fn fence_sql(dst: &Side, storefront: StorefrontId, fenced: bool) -> String {
    let value = match (dst.backend, fenced) {
        (DbBackend::Postgres, true) => "true",
        (DbBackend::Postgres, false) => "false",
        (_, true) => "1",
        (_, false) => "0",
    };
    format!(
        "UPDATE {} SET fenced = {value} WHERE storefront_id = {}",
        dst.table(FENCE),
        dst.storefront_literal(storefront)
    )
}

/// `ON CONFLICT` / `ON DUPLICATE KEY` clause updating every non-key column.
fn upsert_clause(side: &Side, meta: &TableMeta) -> String {
    let others: Vec<&String> = meta.columns.iter().filter(|c| **c != meta.pk).collect();
    let set = |f: &dyn Fn(&str) -> String| -> String {
        others
            .iter()
            .map(|c| format!("{} = {}", side.q(c), f(&side.q(c))))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match side.backend {
        DbBackend::MySql => format!(
            " ON DUPLICATE KEY UPDATE {}",
            set(&|c| format!("VALUES({c})"))
        ),
        DbBackend::Postgres => format!(
            " ON CONFLICT ({}) DO UPDATE SET {}",
            side.q(&meta.pk),
            set(&|c| format!("EXCLUDED.{c}"))
        ),
        _ => format!(
            " ON CONFLICT ({}) DO UPDATE SET {}",
            side.q(&meta.pk),
            set(&|c| format!("excluded.{c}"))
        ),
    }
}

fn gone<'a>(
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
    dst_fenced: bool,
) -> Result<(), TenancyError> {
    let txn = dst.conn.begin().await?;
    if dst_fenced {
        txn.execute_unprepared(&fence_sql(dst, storefront, false))
            .await?;
    }
    for meta in tables.iter().rev() {
        for chunk in gone(keys, present, &meta.name).chunks(500) {
            let (list, values) = bind_list(dst, storefront, chunk);
            let sql = format!(
                "DELETE FROM {} WHERE {} = {} AND {} IN ({list})",
                dst.table(&meta.name),
                dst.q(&meta.tenant_column),
                dst.p(1),
                dst.q(&meta.pk)
            );
            txn.execute_raw(dst.stmt(sql, values)).await?;
        }
    }
    for meta in tables {
        let Some(set) = present.get(&meta.name) else {
            continue;
        };
        let cols = columns(src, meta, None);
        for chunk in set.iter().collect::<Vec<_>>().chunks(500) {
            let (list, values) = bind_list(src, storefront, chunk);
            let sql = format!(
                "INSERT INTO {} ({cols}) SELECT {cols} FROM {} WHERE {} = {} AND {} IN ({list}){}",
                dst.table(&meta.name),
                src.table(&meta.name),
                src.q(&meta.tenant_column),
                src.p(1),
                src.q(&meta.pk),
                upsert_clause(dst, meta)
            );
            txn.execute_raw(src.stmt(sql, values)).await?;
        }
    }
    if dst_fenced {
        txn.execute_unprepared(&fence_sql(dst, storefront, true))
            .await?;
    }
    txn.commit().await?;
    Ok(())
}

/// Placeholders 2.. for `keys` (placeholder 1 is the storefront).
fn bind_list(side: &Side, storefront: StorefrontId, keys: &[&Key]) -> (String, Vec<Value>) {
    let mut values: Vec<Value> = vec![(*storefront.as_uuid()).into()];
    let list: Vec<String> = keys
        .iter()
        .enumerate()
        .map(|(i, k)| {
            values.push(k.value());
            side.p(i + 2)
        })
        .collect();
    (list.join(", "), values)
}

async fn apply_pg(
    src: &Side,
    dst: &Side,
    tables: &[TableMeta],
    storefront: StorefrontId,
    keys: &BTreeMap<String, BTreeSet<Key>>,
    present: &BTreeMap<String, BTreeSet<Key>>,
    dst_fenced: bool,
) -> Result<(), TenancyError> {
    let what = "replaying changes onto the target";
    // Read the source rows first: the target transaction stays short.
    let mut rows = Vec::new();
    for meta in tables {
        let Some(set) = present.get(&meta.name) else {
            continue;
        };
        for chunk in set.iter().collect::<Vec<_>>().chunks(1000) {
            let list: Vec<String> = chunk.iter().map(|k| k.pg_literal()).collect();
            let filter = format!(
                "{} AND {} IN ({})",
                pg_filter(meta, src, storefront),
                src.q(&meta.pk),
                list.join(", ")
            );
            rows.push((meta, copy_out(src, meta, &filter, Format::Text).await?));
        }
    }
    let pool = dst.conn.get_postgres_connection_pool();
    let mut tx = pool.begin().await.map_err(|e| sqlx_err(what, e))?;
    let exec = |sql: String| sqlx::raw_sql(sqlx::AssertSqlSafe(sql));
    if dst_fenced {
        exec(fence_sql(dst, storefront, false))
            .execute(&mut *tx)
            .await
            .map_err(|e| sqlx_err(what, e))?;
    }
    for meta in tables.iter().rev() {
        for chunk in gone(keys, present, &meta.name).chunks(1000) {
            let list: Vec<String> = chunk.iter().map(|k| k.pg_literal()).collect();
            let sql = format!(
                "DELETE FROM {} WHERE {} AND {} IN ({})",
                dst.table(&meta.name),
                pg_filter(meta, dst, storefront),
                dst.q(&meta.pk),
                list.join(", ")
            );
            exec(sql)
                .execute(&mut *tx)
                .await
                .map_err(|e| sqlx_err(what, e))?;
        }
    }
    for (i, (meta, data)) in rows.iter().enumerate() {
        if data.is_empty() {
            continue;
        }
        let stage = format!("tenancy_stage_{i}");
        exec(format!(
            "CREATE TEMP TABLE {stage} (LIKE {} INCLUDING DEFAULTS) ON COMMIT DROP",
            dst.table(&meta.name)
        ))
        .execute(&mut *tx)
        .await
        .map_err(|e| sqlx_err(what, e))?;
        let mut copy = tx
            .copy_in_raw(&format!(
                "COPY {stage} ({}) FROM STDIN",
                columns(dst, meta, None)
            ))
            .await
            .map_err(|e| sqlx_err(what, e))?;
        if let Err(e) = copy.send(data.as_slice()).await {
            let _ = copy.abort("send failed").await;
            return Err(sqlx_err(what, e));
        }
        copy.finish().await.map_err(|e| sqlx_err(what, e))?;
        let cols = columns(dst, meta, None);
        exec(format!(
            "INSERT INTO {} ({cols}) SELECT {cols} FROM {stage}{}",
            dst.table(&meta.name),
            upsert_clause(dst, meta)
        ))
        .execute(&mut *tx)
        .await
        .map_err(|e| sqlx_err(what, e))?;
    }
    if dst_fenced {
        exec(fence_sql(dst, storefront, true))
            .execute(&mut *tx)
            .await
            .map_err(|e| sqlx_err(what, e))?;
    }
    tx.commit().await.map_err(|e| sqlx_err(what, e))?;
    Ok(())
}

/// Deletes every row of the storefront from `side`'s scoped tables, children first.
pub(crate) async fn clear(
    side: &Side,
    tables: &[TableMeta],
    storefront: StorefrontId,
) -> Result<(), TenancyError> {
    for meta in tables.iter().rev() {
        let sql = format!(
            "DELETE FROM {} WHERE {} = {}",
            side.table(&meta.name),
            side.q(&meta.tenant_column),
            side.p(1)
        );
        match side
            .conn
            .execute_raw(side.stmt(sql, vec![(*storefront.as_uuid()).into()]))
            .await
        {
            Ok(_) => {}
            Err(e) if capture::missing_table(&e) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}
