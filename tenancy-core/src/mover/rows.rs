//! Rows between two MySQL/MariaDB servers: a page of the bulk copy is read from the source
//! and written to the target as multi-row `INSERT`s, and a catch-up batch is replayed as
//! multi-row upserts, one statement per table and chunk, in one target transaction.
//!
//! Every column but a floating-point one travels as its bytes (`CAST(column AS BINARY)`,
//! bound back as a binary string): the target converts them into the column's own type
//! exactly as it would the text of a literal, so no value passes through a Rust type on the
//! way (dates, decimals, JSON and binary keys arrive as they left). `FLOAT` and `DOUBLE`
//! travel as binary floats (their text is rounded). Both sides have the same column types
//! and character sets (`side::tables` checks), writes are strict (no `IGNORE`, which would
//! turn a changed value into a warning), and sqlx sets `time_zone = '+00:00'` on every
//! connection, so `TIMESTAMP` values read and written agree.
//!
//! On one server the mover copies with `INSERT ... SELECT` instead ([`super::transfer`]).

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::{ConnectionTrait, TransactionTrait, Value};

use super::{
    capture::{self, enter_sql, guard_sql, not_entered, Guard},
    side::{Key, Side, TableMeta},
    transfer::{as_mover, foreign_keys, gone, upsert_clause},
};
use crate::{backend::Keyset, StorefrontId, TenancyError};

/// One row: the primary key, then every column's value as it travels.
pub(crate) struct Row {
    key: Key,
    values: Vec<Value>,
    /// About how many bytes the values take in a statement.
    bytes: usize,
}

/// Bound parameters per statement: below MySQL's limit of 65,535 placeholders.
const MAX_PARAMS: usize = 60_000;
/// Bytes of values per statement: well below MariaDB's default `max_allowed_packet`
/// (16 MiB), whatever the rows' width.
const MAX_BYTES: usize = 4 << 20;

/// How a column travels.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Travel {
    Bytes,
    Float,
    Double,
}

fn travel(meta: &TableMeta, i: usize) -> Travel {
    let t = meta
        .types
        .get(i)
        .map(|t| t.to_ascii_lowercase())
        .unwrap_or_default();
    if t.starts_with("float") {
        Travel::Float
    } else if t.starts_with("double") || t.starts_with("real") {
        Travel::Double
    } else {
        Travel::Bytes
    }
}

/// `SELECT pk, CAST(c1 AS BINARY), ... FROM table WHERE filter ORDER BY pk`.
fn select_sql(src: &Side, meta: &TableMeta, filter: &str) -> String {
    let casts: Vec<String> = meta
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| match travel(meta, i) {
            Travel::Bytes => format!("CAST({} AS BINARY)", src.q(c)),
            Travel::Float | Travel::Double => src.q(c),
        })
        .collect();
    let pk = src.q(&meta.pk);
    format!(
        "SELECT {pk}, {} FROM {} WHERE {filter} ORDER BY {pk}",
        casts.join(", "),
        src.table(&meta.name)
    )
}

/// Reads the rows `filter` selects.
async fn read(
    src: &Side,
    meta: &TableMeta,
    filter: &str,
    values: Vec<Value>,
) -> Result<Vec<Row>, TenancyError> {
    let rows = src
        .conn
        .query_all_raw(src.stmt(select_sql(src, meta, filter), values))
        .await?;
    rows.iter()
        .map(|row| {
            let key = Key::read(row, 0, meta.kind)?;
            let mut values = Vec::with_capacity(meta.columns.len());
            let mut bytes = 0;
            for i in 0..meta.columns.len() {
                let value = match travel(meta, i) {
                    Travel::Bytes => {
                        let v = row.try_get_by_index::<Option<Vec<u8>>>(i + 1)?;
                        bytes += v.as_ref().map_or(4, |v| v.len() + 8);
                        Value::Bytes(v)
                    }
                    Travel::Float => {
                        bytes += 12;
                        Value::Float(row.try_get_by_index::<Option<f32>>(i + 1)?)
                    }
                    Travel::Double => {
                        bytes += 16;
                        Value::Double(row.try_get_by_index::<Option<f64>>(i + 1)?)
                    }
                };
                values.push(value);
            }
            Ok(Row { key, values, bytes })
        })
        .collect()
}

/// The page `(after, upto]` of the storefront's rows of `meta` on the source.
pub(super) async fn read_page(
    src: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    after: Option<&Key>,
    upto: &Key,
) -> Result<Vec<Row>, TenancyError> {
    let (filter, values) = src.keyset(
        meta,
        None,
        storefront,
        Keyset::Page {
            after: after.map(Key::value),
            upto: Some(upto.value()),
        },
    );
    read(src, meta, &filter, values).await
}

/// `INSERT [IGNORE] INTO table (cols) VALUES (...), ...` for `rows`, and its values.
fn insert(
    dst: &Side,
    meta: &TableMeta,
    rows: &[&Row],
    head: &str,
    tail: &str,
) -> (String, Vec<Value>) {
    let cols: Vec<String> = meta.columns.iter().map(|c| dst.q(c)).collect();
    let one = format!("({})", vec!["?"; cols.len()].join(", "));
    let sql = format!(
        "{head} {} ({}) VALUES {}{tail}",
        dst.table(&meta.name),
        cols.join(", "),
        vec![one; rows.len()].join(", ")
    );
    let values = rows.iter().flat_map(|r| r.values.iter().cloned()).collect();
    (sql, values)
}

/// `rows` cut into statements of at most [`MAX_PARAMS`] values and about [`MAX_BYTES`]
/// bytes each (a row wider than that goes alone).
fn statements<'a>(meta: &TableMeta, rows: &'a [Row]) -> Vec<Vec<&'a Row>> {
    let per = (MAX_PARAMS / meta.columns.len().max(1)).max(1);
    let mut out: Vec<Vec<&Row>> = Vec::new();
    let mut bytes = 0;
    for row in rows {
        match out.last_mut() {
            Some(last) if last.len() < per && bytes + row.bytes <= MAX_BYTES => {
                bytes += row.bytes;
                last.push(row);
            }
            _ => {
                bytes = row.bytes;
                out.push(vec![row]);
            }
        }
    }
    out
}

/// `ON DUPLICATE KEY UPDATE pk = pk`: a row already there stays as it is, and anything
/// else the target refuses is an error (strict), not a warning as with `INSERT IGNORE`.
fn keep_existing(dst: &Side, meta: &TableMeta) -> String {
    let pk = dst.q(&meta.pk);
    format!(" ON DUPLICATE KEY UPDATE {pk} = {pk}")
}

/// Writes `chunk` in one statement as the mover, through the target guard.
async fn insert_as_mover(
    dst: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    chunk: &[&Row],
) -> Result<u64, sea_orm::DbErr> {
    let (sql, values) = insert(dst, meta, chunk, "INSERT INTO", &keep_existing(dst, meta));
    as_mover(dst, storefront, Guard::Target, dst.stmt(sql, values))
        .await
        .map(|r| r.rows_affected())
}

/// The keys of `keys` that have a row on `side`; with `foreign`, only rows of another
/// storefront, else only the storefront's own.
async fn held_on(
    conn: &impl ConnectionTrait,
    side: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    keys: &[&Key],
    foreign: bool,
) -> Result<BTreeSet<Key>, TenancyError> {
    let mut found = BTreeSet::new();
    for chunk in keys.chunks(1000) {
        let mut values: Vec<Value> = chunk.iter().map(|k| k.value()).collect();
        values.push((*storefront.as_uuid()).into());
        let list = vec!["?"; chunk.len()].join(", ");
        let sql = format!(
            "SELECT {pk} FROM {} WHERE {pk} IN ({list}) AND {} {} ? LOCK IN SHARE MODE",
            side.table(&meta.name),
            side.q(&meta.tenant_column),
            if foreign { "<>" } else { "=" },
            pk = side.q(&meta.pk),
        );
        for row in conn.query_all_raw(side.stmt(sql, values)).await? {
            found.insert(Key::read(&row, 0, meta.kind)?);
        }
    }
    Ok(found)
}

/// Writes a page read by [`read_page`] as the mover (through the target guard). Rows
/// already on the target are left alone; if the target refuses a statement for a foreign
/// key whose parent comes later or a unique value, its rows are written one at a time and
/// a refused one is skipped and its key logged for the catch-up, which writes it once what
/// it depends on is there. Into shared tables, a key another storefront's row holds there
/// stops the move, naming it.
pub(super) async fn write_page(
    src: &Side,
    dst: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    rows: &[Row],
) -> Result<u64, TenancyError> {
    let mut written = 0;
    for chunk in statements(meta, rows) {
        match insert_as_mover(dst, meta, storefront, &chunk).await {
            // Not a proof that every row was written: sqlx connects with FOUND_ROWS, so a
            // row kept out by another one (same key, or another unique value) counts as 1
            // too. The check below looks.
            Ok(n) => written += n,
            Err(e) if super::transfer::skippable(&e) => {
                for row in &chunk {
                    match insert_as_mover(dst, meta, storefront, &[*row]).await {
                        Ok(n) => written += n,
                        Err(e) if super::transfer::skippable(&e) => {
                            tracing::debug!(table = %meta.name, key = %row.key, "copy deferred to catch-up: {e}");
                        }
                        Err(e) => return Err(e.into()),
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
        let keys: Vec<&Key> = chunk.iter().map(|r| &r.key).collect();
        if matches!(dst.placement, crate::Placement::Shared) {
            let held = held_on(&dst.conn, dst, meta, storefront, &keys, true).await?;
            if let Some(first) = held.iter().next() {
                return Err(foreign_keys(
                    dst,
                    meta,
                    storefront,
                    held.len(),
                    &first.to_string(),
                ));
            }
        }
        // What is not there now (refused, or kept out by another storefront's unique
        // value) is logged for the catch-up.
        let there = held_on(&dst.conn, dst, meta, storefront, &keys, false).await?;
        for key in keys.into_iter().filter(|k| !there.contains(*k)) {
            tracing::debug!(table = %meta.name, key = %key, "copy deferred to catch-up");
            capture::log_key(src, storefront, &meta.name, key).await?;
        }
    }
    Ok(written)
}

/// Replays `keys` onto `dst` (see `transfer::apply`): the source's current rows are read
/// first (the target transaction stays short), then, in one target transaction as the
/// mover, keys gone from the source are deleted (children first) and the rest upserted
/// (parents first). An upsert never takes over another storefront's row: a key or unique
/// value held by one stops the move, naming it.
pub(super) async fn apply(
    src: &Side,
    dst: &Side,
    tables: &[TableMeta],
    storefront: StorefrontId,
    keys: &BTreeMap<String, BTreeSet<Key>>,
    leave: Guard,
) -> Result<(), TenancyError> {
    let mut rows: Vec<(&TableMeta, Vec<Row>)> = Vec::new();
    let mut present: BTreeMap<String, BTreeSet<Key>> = BTreeMap::new();
    for meta in tables {
        let Some(set) = keys.get(&meta.name) else {
            continue;
        };
        let mut read_rows = Vec::new();
        for chunk in set.iter().collect::<Vec<_>>().chunks(1000) {
            let (filter, values) = src.keyset(
                meta,
                None,
                storefront,
                Keyset::Keys(chunk.iter().map(|k| k.value()).collect()),
            );
            read_rows.extend(read(src, meta, &filter, values).await?);
        }
        present.insert(
            meta.name.clone(),
            read_rows.iter().map(|r| r.key.clone()).collect(),
        );
        rows.push((meta, read_rows));
    }
    let txn = dst.conn.begin().await?;
    let entered = txn
        .execute_unprepared(&enter_sql(dst, storefront, leave))
        .await?;
    if entered.rows_affected() != 1 {
        return Err(sea_orm::DbErr::Custom(not_entered(dst, storefront, leave)).into());
    }
    for meta in tables.iter().rev() {
        for chunk in gone(keys, &present, &meta.name).chunks(1000) {
            let (filter, values) = dst.keyset(
                meta,
                None,
                storefront,
                Keyset::Keys(chunk.iter().map(|k| k.value()).collect()),
            );
            let sql = format!("DELETE FROM {} WHERE {filter}", dst.table(&meta.name));
            txn.execute_raw(dst.stmt(sql, values)).await?;
        }
    }
    for (meta, rows) in &rows {
        for chunk in statements(meta, rows) {
            let (sql, values) = insert(dst, meta, &chunk, "INSERT INTO", &upsert_clause(dst, meta));
            txn.execute_raw(dst.stmt(sql, values)).await?;
            let keys: Vec<&Key> = chunk.iter().map(|r| &r.key).collect();
            let held = held_on(&txn, dst, meta, storefront, &keys, true).await?;
            if let Some(first) = held.iter().next() {
                return Err(foreign_keys(
                    dst,
                    meta,
                    storefront,
                    held.len(),
                    &first.to_string(),
                ));
            }
            // The upsert also keeps another storefront's row met on a unique value that
            // is not the key (its `IF`): the source's row was then written nowhere.
            let there = held_on(&txn, dst, meta, storefront, &keys, false).await?;
            if let Some(missing) = keys.iter().find(|k| !there.contains(**k)) {
                let n = keys.iter().filter(|k| !there.contains(**k)).count();
                return Err(TenancyError::Move {
                    storefront: storefront.to_string(),
                    phase: "catch-up".into(),
                    reason: format!(
                        "{n} row(s) of `{}` could not be written to {}: another storefront's row holds one of their unique values there (one key: {missing})",
                        meta.name, dst.placement,
                    ),
                });
            }
        }
    }
    txn.execute_unprepared(&guard_sql(dst, storefront, leave))
        .await?;
    txn.commit().await?;
    Ok(())
}
