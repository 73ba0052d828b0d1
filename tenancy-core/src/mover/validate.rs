//! Validation (the seed's DataValidator): per table, row counts and checksums over
//! key-ordered chunks on both sides; where a chunk differs, the rows are compared one by one
//! to name the first differing keys. On PostgreSQL every chunk of a side comes out of one
//! scan (`width_bucket` over chunk boundaries, see `table_pg`); on MySQL and SQLite each
//! chunk is its own range query.

use std::{
    collections::{BTreeMap, BTreeSet},
    hash::{Hash, Hasher},
};

use sea_orm::{ConnectionTrait, DbBackend};

use super::{
    side::{both, Key, Side, TableMeta},
    transfer::page_end,
};
use crate::{backend::Keyset, StorefrontId, TenancyError};

/// What validation found in one table.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Difference {
    pub table: String,
    pub keys: Vec<Key>,
    pub detail: String,
}

impl Difference {
    /// The error that blocks the cutover, naming the table and the first differing keys.
    pub(crate) fn into_error(self, storefront: StorefrontId) -> TenancyError {
        TenancyError::Validation {
            storefront: storefront.to_string(),
            table: self.table,
            keys: self.keys.iter().map(ToString::to_string).collect(),
            detail: self.detail,
        }
    }
}

/// A row's digest expression (PostgreSQL and MySQL), or its text (SQLite, hashed here).
fn row_expr(side: &Side, meta: &TableMeta) -> String {
    match side.backend {
        DbBackend::Postgres => "md5(x::text)".into(),
        DbBackend::MySql => format!(
            "MD5(CONCAT_WS('|', {}))",
            meta.columns
                .iter()
                .map(|c| format!("QUOTE(x.{})", side.q(c)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        _ => meta
            .columns
            .iter()
            .map(|c| format!("quote(x.{})", side.q(c)))
            .collect::<Vec<_>>()
            .join(" || '|' || "),
    }
}

fn hash_hex(text: &str) -> String {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    text.hash(&mut h);
    format!("{:016x}", h.finish())
}

/// Each row's key and digest.
async fn rows(
    side: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    range: &Keyset,
) -> Result<BTreeMap<Key, String>, TenancyError> {
    let (f, values) = side.keyset(meta, Some("x"), storefront, range.clone());
    let sql = format!(
        "SELECT x.{}, {} FROM {} AS x WHERE {f}",
        side.q(&meta.pk),
        row_expr(side, meta),
        side.table(&meta.name)
    );
    let mut out = BTreeMap::new();
    for row in side.conn.query_all_raw(side.stmt(sql, values)).await? {
        let key = Key::read(&row, 0, meta.kind)?;
        let text: Option<String> = row.try_get_by_index(1)?;
        let text = text.unwrap_or_default();
        let digest = if side.backend == DbBackend::Sqlite {
            hash_hex(&text)
        } else {
            text
        };
        out.insert(key, digest);
    }
    Ok(out)
}

/// A chunk's row count and checksum (MySQL: in the server; SQLite: hashed here).
async fn chunk(
    side: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    lo: Option<&Key>,
    hi: Option<&Key>,
) -> Result<(i64, String), TenancyError> {
    let range = Keyset::Page {
        after: lo.map(Key::value),
        upto: hi.map(Key::value),
    };
    let aggregate = match side.backend {
        DbBackend::MySql => {
            let h = row_expr(side, meta);
            format!(
                "COUNT(*), CAST(CONCAT(COALESCE(BIT_XOR(CAST(CONV(SUBSTRING({h}, 1, 16), 16, 10) AS UNSIGNED)), 0), '-', \
                 COALESCE(SUM(CAST(CONV(SUBSTRING({h}, 17, 16), 16, 10) AS UNSIGNED)), 0)) AS CHAR)"
            )
        }
        _ => {
            let rows = rows(side, meta, storefront, &range).await?;
            let mut h = std::collections::hash_map::DefaultHasher::new();
            for (k, d) in &rows {
                k.hash(&mut h);
                d.hash(&mut h);
            }
            return Ok((
                i64::try_from(rows.len()).unwrap_or(i64::MAX),
                format!("{:016x}", h.finish()),
            ));
        }
    };
    let (f, values) = side.keyset(meta, Some("x"), storefront, range);
    let sql = format!(
        "SELECT {aggregate} FROM {} AS x WHERE {f}",
        side.table(&meta.name)
    );
    let row = side.conn.query_one_raw(side.stmt(sql, values)).await?;
    match row {
        Some(r) => Ok((r.try_get_by_index(0)?, r.try_get_by_index(1)?)),
        None => Ok((0, String::new())),
    }
}

fn differing(a: &BTreeMap<Key, String>, b: &BTreeMap<Key, String>) -> Vec<Key> {
    let keys: BTreeSet<&Key> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// Compares one table on both sides. Keys whose rows changed after catch-up round
/// `since` (or are still pending) may differ legitimately: they are not reported, because
/// the cutover compares them again after the final catch-up. Returns the rows compared, or
/// the first difference.
pub(crate) async fn table(
    src: &Side,
    dst: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    chunk_size: u64,
    kinds: &BTreeMap<String, super::side::KeyKind>,
    since: i64,
) -> Result<Result<u64, Difference>, TenancyError> {
    if src.backend == DbBackend::Postgres && dst.backend == DbBackend::Postgres {
        table_pg(src, dst, meta, storefront, chunk_size, kinds, since).await
    } else {
        table_paged(src, dst, meta, storefront, chunk_size, kinds, since).await
    }
}

/// The keys of `meta`'s rows logged after round `since` (or still pending).
async fn moving(
    src: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    kinds: &BTreeMap<String, super::side::KeyKind>,
    since: i64,
) -> Result<BTreeSet<Key>, TenancyError> {
    let mut all = super::capture::keys_since(src, storefront, kinds, since).await?;
    Ok(all.remove(&meta.name).unwrap_or_default())
}

/// The keys in `range` whose rows differ between the sides for a reason the changelog
/// does not give: not in `in_flight`, nor logged after round `since` by the time both sides
/// were read (the changelog is read again only when something is left to explain).
#[allow(clippy::too_many_arguments)]
async fn unexplained(
    src: &Side,
    dst: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    range: &Keyset,
    kinds: &BTreeMap<String, super::side::KeyKind>,
    since: i64,
    in_flight: &mut BTreeSet<Key>,
) -> Result<Vec<Key>, TenancyError> {
    let (ra, rb) = both(
        rows(src, meta, storefront, range),
        rows(dst, meta, storefront, range),
    )
    .await?;
    let left = |in_flight: &BTreeSet<Key>| -> Vec<Key> {
        differing(&ra, &rb)
            .into_iter()
            .filter(|k| !in_flight.contains(k))
            .collect()
    };
    if left(in_flight).is_empty() {
        return Ok(Vec::new());
    }
    in_flight.extend(moving(src, meta, storefront, kinds, since).await?);
    Ok(left(in_flight))
}

/// The report of a chunk whose rows `keys` differ; `a` and `b` are its row count and
/// checksum on the source and on the target.
fn difference(
    meta: &TableMeta,
    keys: Vec<Key>,
    a: &(i64, String),
    b: &(i64, String),
) -> Difference {
    Difference {
        table: meta.name.clone(),
        detail: format!(
            "rows {} on the source and {} on the target in the chunk ({} differ); checksums {} vs {}",
            a.0,
            b.0,
            keys.len(),
            a.1,
            b.1
        ),
        keys: keys.into_iter().take(5).collect(),
    }
}

/// Per bucket of keys: row count and checksum.
type Buckets = BTreeMap<i32, (i64, String)>;

/// One side's buckets in one scan of the storefront's rows, leaving out `skip`.
async fn buckets(
    side: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    bucket: &str,
    skip: &str,
    textual: bool,
) -> Result<Buckets, TenancyError> {
    let digest = if textual {
        // Types without an extended hash function (json, point, ...) or PostgreSQL before 14:
        // md5 of the row's text.
        "bit_xor(('x' || substr(md5(x::text), 1, 16))::bit(64)::bigint)::text || '-' || \
         sum(('x' || substr(md5(x::text), 17, 16))::bit(64)::bigint >> 8)::text"
    } else {
        "bit_xor(hash_record_extended(x, 0))::text || '-' || \
         sum(hash_record_extended(x, 1) >> 8)::text"
    };
    let sql = format!(
        "SELECT {bucket} AS b, COUNT(*), COALESCE({digest}, '') FROM {} AS x \
         WHERE x.{} = $1{skip} GROUP BY 1",
        side.table(&meta.name),
        side.q(&meta.tenant_column),
    );
    let rows = side
        .conn
        .query_all_raw(side.stmt(sql, vec![(*storefront.as_uuid()).into()]))
        .await?;
    let mut out = Buckets::new();
    for r in rows {
        out.insert(
            r.try_get_by_index(0)?,
            (r.try_get_by_index(1)?, r.try_get_by_index(2)?),
        );
    }
    Ok(out)
}

/// PostgreSQL: keys every `chunk_size` rows on the source cut the key space into buckets;
/// each side then counts and hashes every bucket in *one* scan (`width_bucket` on the
/// key, `GROUP BY`), leaving out the keys already known to be moving. A page-by-page
/// comparison reads each page through the key index, and on a shared table whose rows
/// were not written in key order (random UUIDs) that is a random heap read per row: the
/// single scan is about twenty times faster. Only buckets that differ are read row by row.
async fn table_pg(
    src: &Side,
    dst: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    chunk_size: u64,
    kinds: &BTreeMap<String, super::side::KeyKind>,
    since: i64,
) -> Result<Result<u64, Difference>, TenancyError> {
    let pk = src.q(&meta.pk);
    let sql = format!(
        "SELECT {pk} FROM (SELECT {pk}, row_number() OVER (ORDER BY {pk}) AS n FROM {} \
         WHERE {} = $1) AS s WHERE n % {} = 0 ORDER BY {pk}",
        src.table(&meta.name),
        src.q(&meta.tenant_column),
        chunk_size.max(1)
    );
    let bounds = src
        .conn
        .query_all_raw(src.stmt(sql, vec![(*storefront.as_uuid()).into()]))
        .await?
        .iter()
        .map(|r| Key::read(r, 0, meta.kind))
        .collect::<Result<Vec<Key>, _>>()?;
    let bucket = if bounds.is_empty() {
        "0".to_owned()
    } else {
        let list: Vec<String> = bounds.iter().map(Key::pg_literal).collect();
        format!("width_bucket(x.{pk}, ARRAY[{}])", list.join(", "))
    };
    let mut in_flight = moving(src, meta, storefront, kinds, since).await?;
    let skip = if in_flight.is_empty() {
        String::new()
    } else {
        let list: Vec<String> = in_flight.iter().map(Key::pg_literal).collect();
        format!(
            " AND NOT EXISTS (SELECT 1 FROM unnest(ARRAY[{}]) AS m(k) WHERE m.k = x.{pk})",
            list.join(", ")
        )
    };
    let scan = |textual: bool| {
        both(
            buckets(src, meta, storefront, &bucket, &skip, textual),
            buckets(dst, meta, storefront, &bucket, &skip, textual),
        )
    };
    let (a, b) = match scan(false).await {
        // A column type without an extended hash (json), or a server before PostgreSQL 14
        // (no hash_record_extended).
        Err(TenancyError::Db(e))
            if ["could not identify", "hash_record_extended"]
                .iter()
                .any(|m| e.to_string().contains(m)) =>
        {
            scan(true).await?
        }
        other => other?,
    };
    let compared = u64::try_from(a.values().map(|(n, _)| n).sum::<i64>()).unwrap_or(0);
    let differ: BTreeSet<i32> = a
        .keys()
        .chain(b.keys())
        .filter(|k| a.get(*k) != b.get(*k))
        .copied()
        .collect();
    for i in differ {
        let at = |j: i32| usize::try_from(j).ok().and_then(|j| bounds.get(j));
        let range = Keyset::Bucket {
            from: at(i - 1).map(Key::value),
            below: at(i).map(Key::value),
        };
        let keys = unexplained(
            src,
            dst,
            meta,
            storefront,
            &range,
            kinds,
            since,
            &mut in_flight,
        )
        .await?;
        if !keys.is_empty() {
            let figures = |side: &Buckets| side.get(&i).cloned().unwrap_or_default();
            return Ok(Err(difference(meta, keys, &figures(&a), &figures(&b))));
        }
    }
    Ok(Ok(compared))
}

/// MySQL and SQLite: page by page, each page counted and hashed on both sides.
async fn table_paged(
    src: &Side,
    dst: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    chunk_size: u64,
    kinds: &BTreeMap<String, super::side::KeyKind>,
    since: i64,
) -> Result<Result<u64, Difference>, TenancyError> {
    let mut lo: Option<Key> = None;
    let mut compared = 0u64;
    let mut in_flight = BTreeSet::new();
    loop {
        let hi = page_end(src, meta, storefront, lo.as_ref(), None, chunk_size).await?;
        let (a, b) = both(
            chunk(src, meta, storefront, lo.as_ref(), hi.as_ref()),
            chunk(dst, meta, storefront, lo.as_ref(), hi.as_ref()),
        )
        .await?;
        if a != b {
            let range = Keyset::Page {
                after: lo.as_ref().map(Key::value),
                upto: hi.as_ref().map(Key::value),
            };
            let keys = unexplained(
                src,
                dst,
                meta,
                storefront,
                &range,
                kinds,
                since,
                &mut in_flight,
            )
            .await?;
            if !keys.is_empty() {
                return Ok(Err(difference(meta, keys, &a, &b)));
            }
        }
        compared += u64::try_from(a.0).unwrap_or(0);
        match hi {
            Some(k) => lo = Some(k),
            None => return Ok(Ok(compared)),
        }
    }
}

/// Compares the rows of the `changed` keys of every table on both sides (the cutover's
/// and the rollback's final check); the first table with a difference is the error.
pub(crate) async fn changed_rows(
    src: &Side,
    dst: &Side,
    tables: &[TableMeta],
    storefront: StorefrontId,
    changed: &BTreeMap<String, BTreeSet<Key>>,
) -> Result<(), TenancyError> {
    for meta in tables {
        let Some(keys) = changed.get(&meta.name) else {
            continue;
        };
        let diff = differing_keys(src, dst, meta, storefront, keys).await?;
        if !diff.is_empty() {
            return Err(Difference {
                table: meta.name.clone(),
                detail: format!(
                    "{} of {} changed rows differ after the final catch-up",
                    diff.len(),
                    keys.len()
                ),
                keys: diff.into_iter().take(5).collect(),
            }
            .into_error(storefront));
        }
    }
    Ok(())
}

/// Every key of `keys` whose row differs between the two sides (or is on one side only).
pub(crate) async fn differing_keys(
    src: &Side,
    dst: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    keys: &BTreeSet<Key>,
) -> Result<BTreeSet<Key>, TenancyError> {
    let all: Vec<&Key> = keys.iter().collect();
    let mut out = BTreeSet::new();
    for batch in all.chunks(500) {
        let range = Keyset::Keys(batch.iter().map(|k| k.value()).collect());
        let (ra, rb) = both(
            rows(src, meta, storefront, &range),
            rows(dst, meta, storefront, &range),
        )
        .await?;
        out.extend(differing(&ra, &rb));
    }
    Ok(out)
}
