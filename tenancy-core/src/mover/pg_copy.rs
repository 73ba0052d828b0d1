//! COPY between two PostgreSQL databases (the `postgres` feature): a page of the bulk copy
//! travels as `COPY ... TO STDOUT` piped into `COPY ... FROM STDIN`, and catch-up replays a
//! batch of changed rows as JSON, one statement per table.

use std::collections::{BTreeMap, BTreeSet};

use futures_util::TryStreamExt;
use sea_orm::sqlx::{self, postgres::PgPoolCopyExt};

use super::{
    capture::{enter_sql, guard_sql, not_entered, Guard},
    side::{Key, Side, TableMeta},
    transfer::{columns, foreign_keys, gone, upsert_clause, Page},
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

/// Writes `data` into the guarded target as the mover: one transaction that lets its own
/// rows through the target guard and leaves the guard up.
async fn copy_in(
    dst: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    data: &[u8],
    format: Format,
) -> Result<u64, sqlx::Error> {
    let exec = |sql: String| sqlx::raw_sql(sqlx::AssertSqlSafe(sql));
    let pool = dst.conn.get_postgres_connection_pool();
    let mut tx = pool.begin().await?;
    let entered = exec(enter_sql(dst, storefront, Guard::Target))
        .execute(&mut *tx)
        .await?;
    if entered.rows_affected() != 1 {
        return Err(sqlx::Error::Protocol(not_entered(
            dst,
            storefront,
            Guard::Target,
        )));
    }
    let mut copy = tx.copy_in_raw(&copy_in_sql(dst, meta, format)).await?;
    if let Err(e) = copy.send(data).await {
        let _ = copy.abort("send failed").await;
        return Err(e);
    }
    let n = copy.finish().await?;
    exec(guard_sql(dst, storefront, Guard::Target))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(n)
}

/// COPY takes no parameters: the keyset filter is written with literals.
fn pg_filter(meta: &TableMeta, side: &Side, storefront: StorefrontId) -> String {
    format!(
        "{} = {}",
        side.q(&meta.tenant_column),
        side.storefront_literal(storefront)
    )
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

/// A refusal of rows the copy may skip (see `write_page`).
fn refused(e: &sqlx::Error) -> bool {
    matches!(sqlx_code(e).as_deref(), Some("23505" | "23503"))
}

/// The rows of the page `(after, upto]`, in binary COPY format.
pub(super) async fn read_page(
    src: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    after: Option<&Key>,
    upto: &Key,
) -> Result<Vec<u8>, TenancyError> {
    let filter = page_filter(src, meta, storefront, after, upto);
    copy_out(src, meta, &filter, Format::Binary).await
}

/// Writes a page read by [`read_page`]; see `transfer::write_page` for what is skipped.
pub(super) async fn write_page(
    src: &Side,
    dst: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    page: &Page,
) -> Result<u64, TenancyError> {
    let target_err = |e| sqlx_err(&format!("writing `{}` to the target", meta.name), e);
    match copy_in(dst, meta, storefront, &page.data, Format::Binary).await {
        Ok(n) => Ok(n),
        Err(e) if refused(&e) => {
            // Row by row, skipping the rows the target refuses: read again in text, whose
            // rows are lines.
            let filter = page_filter(src, meta, storefront, page.after.as_ref(), &page.upto);
            let data = copy_out(src, meta, &filter, Format::Text).await?;
            let mut written = 0;
            for line in data.split_inclusive(|b| *b == b'\n') {
                match copy_in(dst, meta, storefront, line, Format::Text).await {
                    Ok(n) => written += n,
                    Err(e) if refused(&e) => {
                        tracing::debug!(table = %meta.name, "copy deferred to catch-up: {e}");
                        let key = text_key(meta, line).ok_or_else(|| TenancyError::Move {
                            storefront: storefront.to_string(),
                            phase: "copy".into(),
                            reason: format!(
                                "a row of `{}` the target refused has a key the mover cannot read back to log it",
                                meta.name
                            ),
                        })?;
                        super::capture::log_key(src, storefront, &meta.name, &key).await?;
                    }
                    Err(e) => return Err(target_err(e)),
                }
            }
            Ok(written)
        }
        Err(e) => Err(target_err(e)),
    }
}

/// The primary key of one row in COPY's text format (tab-separated, backslash escapes).
fn text_key(meta: &TableMeta, line: &[u8]) -> Option<Key> {
    let index = meta.columns.iter().position(|c| *c == meta.pk)?;
    let line = std::str::from_utf8(line)
        .ok()?
        .trim_end_matches(['\n', '\r']);
    let field = line.split('\t').nth(index)?;
    if field == "\\N" {
        return None;
    }
    let mut text = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            text.push(c);
            continue;
        }
        match chars.next()? {
            'n' => text.push('\n'),
            'r' => text.push('\r'),
            't' => text.push('\t'),
            'b' => text.push('\u{8}'),
            'f' => text.push('\u{c}'),
            'v' => text.push('\u{b}'),
            other => text.push(other),
        }
    }
    Key::parse(&text, meta.kind)
}

/// The rows of one chunk of keys as a JSON array of objects, one member per column holding
/// the value's text as the type's output function writes it (`format`; a cast to text would
/// strip a `char(n)`'s padding), which the target parses with the type's input function,
/// as `COPY` does, so every value arrives exactly; and, as a JSON array, the keys of the
/// rows found, spelled as the capture triggers log them (`to_jsonb(row) ->> pk`), so that
/// the keys not found (deleted since) are exactly the logged ones.
fn json_rows_sql(src: &Side, meta: &TableMeta, filter: &str) -> String {
    let fields: Vec<String> = meta
        .columns
        .iter()
        .map(|c| {
            let c = src.q(c);
            format!("CASE WHEN tenancy_src.{c} IS NULL THEN NULL ELSE format('%s', tenancy_src.{c}) END AS {c}")
        })
        .collect();
    format!(
        "SELECT json_agg(tenancy_row.*)::text, \
                json_agg(to_jsonb(tenancy_src.*) ->> {pk})::text \
         FROM (SELECT * FROM {table} WHERE {filter}) AS tenancy_src \
         CROSS JOIN LATERAL (SELECT {fields}) AS tenancy_row",
        fields = fields.join(", "),
        table = src.table(&meta.name),
        pk = string_literal(&meta.pk),
    )
}

/// `text` as a PostgreSQL string literal (standard conforming strings).
fn string_literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// The rows staged from `$1` (see [`json_rows_sql`]) in `dst`'s column types, each value
/// parsed by its type's input function (`json_to_record` with the target's own type
/// names, typmods and domains included); a `json` or `jsonb` document is parsed from its
/// text apart, as the record would keep it as a JSON string.
fn staged_sql(dst: &Side, meta: &TableMeta) -> String {
    let mut fields = Vec::new();
    let mut record = Vec::new();
    for ((c, json), ty) in meta.columns.iter().zip(&meta.json).zip(&meta.types) {
        let name = dst.q(c);
        if *json {
            fields.push(format!("(e.j ->> {})::{ty} AS {name}", string_literal(c)));
        } else {
            fields.push(format!("r.{name}"));
            record.push(format!("{name} {ty}"));
        }
    }
    format!(
        "SELECT {} FROM json_array_elements($1::json) AS e(j), json_to_record(e.j) AS r({})",
        fields.join(", "),
        record.join(", ")
    )
}

/// A chunk of rows read from the source, as JSON, with the keys it found.
struct Chunk {
    json: Option<String>,
    keys: Vec<String>,
}

/// Chunks above this many bytes of JSON are read again in halves (PostgreSQL caps a value
/// and a message at 1 GB).
const CHUNK_BYTES: usize = 64 << 20;

/// Reads the rows of `keys` (see [`json_rows_sql`]), in halves while a chunk is too large.
async fn read_chunks(
    src: &Side,
    meta: &TableMeta,
    storefront: StorefrontId,
    keys: &[&Key],
    out: &mut Vec<Chunk>,
) -> Result<(), TenancyError> {
    use sqlx::Row;
    let what = "reading the changed rows on the source";
    let list: Vec<String> = keys.iter().map(|k| k.pg_literal()).collect();
    let filter = format!(
        "{} AND {} IN ({})",
        pg_filter(meta, src, storefront),
        src.q(&meta.pk),
        list.join(", ")
    );
    // One simple query: its text changes with the keys, so preparing it would cost a round
    // trip more.
    let read = sqlx::raw_sql(sqlx::AssertSqlSafe(json_rows_sql(src, meta, &filter)))
        .fetch_one(src.conn.get_postgres_connection_pool())
        .await;
    let too_large = |e: &sqlx::Error| matches!(sqlx_code(e).as_deref(), Some("54000" | "53200"));
    let split = |keys: &[&Key]| keys.len() / 2;
    match read {
        Err(e) if keys.len() > 1 && too_large(&e) => {
            let (a, b) = keys.split_at(split(keys));
            Box::pin(read_chunks(src, meta, storefront, a, out)).await?;
            Box::pin(read_chunks(src, meta, storefront, b, out)).await
        }
        Err(e) => Err(sqlx_err(what, e)),
        Ok(row) => {
            let json: Option<String> = row.try_get(0).map_err(|e| sqlx_err(what, e))?;
            if keys.len() > 1 && json.as_ref().is_some_and(|j| j.len() > CHUNK_BYTES) {
                let (a, b) = keys.split_at(split(keys));
                Box::pin(read_chunks(src, meta, storefront, a, out)).await?;
                return Box::pin(read_chunks(src, meta, storefront, b, out)).await;
            }
            let found: Option<String> = row.try_get(1).map_err(|e| sqlx_err(what, e))?;
            let keys = match found {
                Some(text) => {
                    serde_json::from_str::<Vec<String>>(&text).map_err(|e| TenancyError::Move {
                        storefront: storefront.to_string(),
                        phase: "catch-up".into(),
                        reason: format!(
                            "table `{}`: the source's keys did not read back: {e}",
                            meta.name
                        ),
                    })?
                }
                None => Vec::new(),
            };
            out.push(Chunk { json, keys });
            Ok(())
        }
    }
}

/// `ON CONFLICT` for the replay: like [`upsert_clause`], but a row of the same storefront is
/// always *updated*, even with nothing to set, so that `RETURNING` names every key written
/// and a key it leaves out is one another storefront's row holds.
fn returning_upsert(dst: &Side, meta: &TableMeta) -> String {
    let has_others = meta
        .columns
        .iter()
        .any(|c| *c != meta.pk && *c != meta.tenant_column);
    if has_others {
        upsert_clause(dst, meta)
    } else {
        let tc = dst.q(&meta.tenant_column);
        format!(
            " ON CONFLICT ({}) DO UPDATE SET {tc} = EXCLUDED.{tc} WHERE {}.{tc} = EXCLUDED.{tc}",
            dst.q(&meta.pk),
            dst.q(&meta.name),
        )
    }
}

/// Replays `keys` onto `dst` (see `transfer::apply`): the source's rows are read as JSON
/// and written on the target by one statement per table and chunk (parse, upsert, and the
/// check that no key is another storefront's), in one target transaction.
///
/// This is the path of every catch-up batch and of the fenced drain, so its round trips
/// are the cutover's pause: it used a temporary stage table filled by `COPY` before, which
/// cost a catalog write and, with sqlx writing the copy's data and its end as two packets,
/// a delayed acknowledgement (about 40 ms per batch on Linux).
pub(super) async fn apply(
    src: &Side,
    dst: &Side,
    tables: &[TableMeta],
    storefront: StorefrontId,
    keys: &BTreeMap<String, BTreeSet<Key>>,
    leave: Guard,
) -> Result<(), TenancyError> {
    use sqlx::Row;
    let what = "replaying changes onto the target";
    // Read the source rows first: the target transaction stays short.
    let mut rows = Vec::new();
    let mut present: BTreeMap<String, BTreeSet<Key>> = BTreeMap::new();
    for meta in tables {
        let Some(set) = keys.get(&meta.name) else {
            continue;
        };
        let found = present.entry(meta.name.clone()).or_default();
        for chunk in set.iter().collect::<Vec<_>>().chunks(1000) {
            let mut chunks = Vec::new();
            read_chunks(src, meta, storefront, chunk, &mut chunks).await?;
            for Chunk { json, keys } in chunks {
                for text in keys {
                    let key = Key::parse(&text, meta.kind).ok_or_else(|| TenancyError::Move {
                        storefront: storefront.to_string(),
                        phase: "catch-up".into(),
                        reason: format!(
                            "table `{}`: the source returned key `{text}`, which is not a {:?} key",
                            meta.name, meta.kind
                        ),
                    })?;
                    found.insert(key);
                }
                if let Some(json) = json {
                    rows.push((meta, json));
                }
            }
        }
    }
    let present = &present;
    let pool = dst.conn.get_postgres_connection_pool();
    let mut tx = pool.begin().await.map_err(|e| sqlx_err(what, e))?;
    let exec = |sql: String| sqlx::raw_sql(sqlx::AssertSqlSafe(sql));
    let entered = exec(enter_sql(dst, storefront, leave))
        .execute(&mut *tx)
        .await
        .map_err(|e| sqlx_err(what, e))?;
    if entered.rows_affected() != 1 {
        return Err(sqlx_err(
            what,
            sqlx::Error::Protocol(not_entered(dst, storefront, leave)),
        ));
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
    for (meta, json) in &rows {
        let table = dst.table(&meta.name);
        let cols = columns(dst, meta, None);
        let pk = dst.q(&meta.pk);
        // The upsert writes (inserts, or updates a row of the same storefront) and returns
        // every staged key but one another storefront's row holds here, whenever that row
        // committed (see `transfer::check_not_foreign`): the upsert never takes it over,
        // and the outer query names it.
        let sql = format!(
            "WITH staged AS ({staged}), \
             written AS (INSERT INTO {table} ({cols}) SELECT {cols} FROM staged{upsert} RETURNING {pk}) \
             SELECT s.{pk}::text FROM staged s WHERE NOT EXISTS (SELECT 1 FROM written w WHERE w.{pk} = s.{pk})",
            staged = staged_sql(dst, meta),
            upsert = returning_upsert(dst, meta),
        );
        let held = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(json.as_str())
            .fetch_all(&mut *tx)
            .await
            .map_err(|e| sqlx_err(what, e))?;
        if let Some(row) = held.first() {
            let first: String = row.try_get(0).map_err(|e| sqlx_err(what, e))?;
            return Err(foreign_keys(dst, meta, storefront, held.len(), &first));
        }
    }
    exec(guard_sql(dst, storefront, leave))
        .execute(&mut *tx)
        .await
        .map_err(|e| sqlx_err(what, e))?;
    tx.commit().await.map_err(|e| sqlx_err(what, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mover::side::KeyKind;

    #[test]
    fn a_refused_row_gives_back_its_key() {
        let meta = |kind| TableMeta {
            name: "t".into(),
            tenant_column: "storefront_id".into(),
            pk: "code".into(),
            kind,
            columns: vec!["storefront_id".into(), "code".into(), "name".into()],
            json: vec![false; 3],
            types: vec!["uuid".into(), "text".into(), "text".into()],
        };
        let line = b"0b5f6d0e-8f3c-4c2a-9a53-3e1f4b1f7d10\ta\\tb\\\\c\tx\n";
        assert_eq!(
            text_key(&meta(KeyKind::Text), line),
            Some(Key::Text("a\tb\\c".into()))
        );
        assert_eq!(
            text_key(&meta(KeyKind::Int), b"x\t42\ty\n"),
            Some(Key::Int(42))
        );
        assert_eq!(text_key(&meta(KeyKind::Int), b"x\t\\N\ty\n"), None);
    }
}
