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

use std::collections::{BTreeMap, BTreeSet};

use sea_orm::{ConnectionTrait, DbBackend};

use super::{
    cascade,
    side::{Key, KeyKind, Side, TableMeta},
};
use crate::{StorefrontId, TenancyError};

/// The text every fence refusal carries (PostgreSQL, MySQL and SQLite alike).
pub const FENCED: &str = "tenancy_fenced";

pub(crate) const CHANGELOG: &str = "tenancy_changelog";
pub(crate) const FENCE: &str = "tenancy_fence";

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

fn trigger_name(storefront: StorefrontId, table: &str, op: &str) -> String {
    let hex = storefront.as_uuid().simple().to_string();
    format!("tncap_{}_{}_{op}", &hex[..12], short_hash(table))
}

fn pg_function(storefront: StorefrontId) -> String {
    format!("tncap_{}", storefront.as_uuid().simple())
}

fn refusal(storefront: StorefrontId) -> String {
    format!(
        "{FENCED}: storefront {storefront} is being moved; retry after refreshing its placement"
    )
}

/// Runs DDL; a deadlock with application writers (DDL on one table while a writer's
/// foreign-key check waits on another) is retried.
async fn run(side: &Side, sql: &str) -> Result<(), TenancyError> {
    let mut attempt = 0;
    loop {
        match side.conn.execute_unprepared(sql).await {
            Ok(_) => return Ok(()),
            Err(e) if attempt < 20 && e.to_string().to_lowercase().contains("deadlock") => {
                attempt += 1;
                tokio::time::sleep(std::time::Duration::from_millis(20 * attempt)).await;
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// Creates the changelog and fence tables (if missing), the storefront's fence row (down)
/// and its triggers on every table. Running it again is harmless.
pub(crate) async fn install(
    side: &Side,
    storefront: StorefrontId,
    tables: &[TableMeta],
) -> Result<(), TenancyError> {
    let cl = side.table(CHANGELOG);
    let fence = side.table(FENCE);
    let sf = side.storefront_literal(storefront);
    let message = refusal(storefront);
    match side.backend {
        DbBackend::Postgres => {
            run(side, &format!(
                "CREATE TABLE IF NOT EXISTS {cl} (seq bigserial PRIMARY KEY, storefront_id uuid NOT NULL, \
                 table_name text NOT NULL, pk text NOT NULL, round bigint)"
            )).await?;
            run(side, &format!(
                "CREATE INDEX IF NOT EXISTS tenancy_changelog_pending ON {cl} (storefront_id, round, seq)"
            )).await?;
            run(side, &format!(
                "CREATE TABLE IF NOT EXISTS {fence} (storefront_id uuid PRIMARY KEY, fenced boolean NOT NULL)"
            )).await?;
            run(
                side,
                &format!("INSERT INTO {fence} VALUES ({sf}, false) ON CONFLICT DO NOTHING"),
            )
            .await?;
            let function = side.table(&pg_function(storefront));
            run(side, &format!(
                "CREATE OR REPLACE FUNCTION {function}() RETURNS trigger LANGUAGE plpgsql AS $tenancy$
DECLARE r record; f boolean;
BEGIN
  IF TG_OP = 'DELETE' THEN r := OLD; ELSE r := NEW; END IF;
  SELECT fenced INTO f FROM {fence} WHERE storefront_id = {sf} FOR SHARE;
  IF f THEN RAISE EXCEPTION '{message}' USING ERRCODE = '55006'; END IF;
  INSERT INTO {cl} (storefront_id, table_name, pk) VALUES ({sf}, TG_TABLE_NAME, to_jsonb(r) ->> TG_ARGV[0]);
  RETURN NULL;
END $tenancy$"
            )).await?;
            let hex = storefront.as_uuid().simple();
            for t in tables {
                let table = side.table(&t.name);
                let tc = side.q(&t.tenant_column);
                let pk = t.pk.replace('\'', "''");
                run(
                    side,
                    &format!(
                        "DROP TRIGGER IF EXISTS tncap_{hex}_iu ON {table}; \
                     CREATE TRIGGER tncap_{hex}_iu AFTER INSERT OR UPDATE ON {table} FOR EACH ROW \
                     WHEN (NEW.{tc} = {sf}) EXECUTE FUNCTION {function}('{pk}'); \
                     DROP TRIGGER IF EXISTS tncap_{hex}_d ON {table}; \
                     CREATE TRIGGER tncap_{hex}_d AFTER DELETE ON {table} FOR EACH ROW \
                     WHEN (OLD.{tc} = {sf}) EXECUTE FUNCTION {function}('{pk}')"
                    ),
                )
                .await?;
            }
        }
        DbBackend::MySql => {
            run(
                side,
                &format!(
                    "CREATE TABLE IF NOT EXISTS {cl} (seq BIGINT AUTO_INCREMENT PRIMARY KEY, \
                 storefront_id BINARY(16) NOT NULL, table_name VARCHAR(64) NOT NULL, \
                 pk VARBINARY(255) NOT NULL, round BIGINT NULL, \
                 KEY tenancy_changelog_pending (storefront_id, round, seq)) ENGINE=InnoDB"
                ),
            )
            .await?;
            run(
                side,
                &format!(
                    "CREATE TABLE IF NOT EXISTS {fence} (storefront_id BINARY(16) PRIMARY KEY, \
                 fenced TINYINT(1) NOT NULL) ENGINE=InnoDB"
                ),
            )
            .await?;
            run(
                side,
                &format!("INSERT IGNORE INTO {fence} VALUES ({sf}, 0)"),
            )
            .await?;
            for t in tables {
                let table = side.table(&t.name);
                let tc = side.q(&t.tenant_column);
                let pk = side.q(&t.pk);
                let name = t.name.replace('\'', "''");
                for (op, event, row) in [
                    ("i", "INSERT", "NEW"),
                    ("u", "UPDATE", "NEW"),
                    ("d", "DELETE", "OLD"),
                ] {
                    let trigger = side.table(&trigger_name(storefront, &t.name, op));
                    run(side, &format!("DROP TRIGGER IF EXISTS {trigger}")).await?;
                    run(
                        side,
                        &format!(
                            "CREATE TRIGGER {trigger} AFTER {event} ON {table} FOR EACH ROW BEGIN
  DECLARE f TINYINT DEFAULT 0;
  IF {row}.{tc} = {sf} THEN
    SELECT fenced INTO f FROM {fence} WHERE storefront_id = {sf} LOCK IN SHARE MODE;
    IF f THEN SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = '{message}'; END IF;
    INSERT INTO {cl} (storefront_id, table_name, pk) VALUES ({sf}, '{name}', {row}.{pk});
  END IF;
END"
                        ),
                    )
                    .await?;
                }
            }
            // Rows changed by foreign-key actions fire no trigger on MySQL: their parents'
            // BEFORE triggers log them (see `cascade`).
            let edges = cascade::edges(side, tables).await?;
            for t in tables {
                let table = side.table(&t.name);
                for (op, event, change) in [
                    ("cd", "DELETE", cascade::Change::Delete),
                    ("cu", "UPDATE", cascade::Change::Update),
                ] {
                    let trigger = side.table(&trigger_name(storefront, &t.name, op));
                    run(side, &format!("DROP TRIGGER IF EXISTS {trigger}")).await?;
                    if let Some(body) =
                        cascade::trigger_body(side, storefront, tables, &edges, t, change, &cl)?
                    {
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
        _ => {
            let q = side.q(&side.qualifier);
            run(
                side,
                &format!(
                "CREATE TABLE IF NOT EXISTS {cl} (seq INTEGER PRIMARY KEY AUTOINCREMENT, \
                 storefront_id BLOB NOT NULL, table_name TEXT NOT NULL, pk NOT NULL, round INTEGER)"
            ),
            )
            .await?;
            run(side, &format!(
                "CREATE INDEX IF NOT EXISTS {q}.tenancy_changelog_pending ON {CHANGELOG} (storefront_id, round, seq)"
            )).await?;
            run(side, &format!(
                "CREATE TABLE IF NOT EXISTS {fence} (storefront_id BLOB PRIMARY KEY, fenced INTEGER NOT NULL)"
            )).await?;
            run(
                side,
                &format!("INSERT OR IGNORE INTO {fence} VALUES ({sf}, 0)"),
            )
            .await?;
            for t in tables {
                let tc = side.q(&t.tenant_column);
                let pk = side.q(&t.pk);
                let plain = side.q(&t.name);
                let name = t.name.replace('\'', "''");
                for (op, event, row) in [
                    ("i", "INSERT", "NEW"),
                    ("u", "UPDATE", "NEW"),
                    ("d", "DELETE", "OLD"),
                ] {
                    let trigger = side.table(&trigger_name(storefront, &t.name, op));
                    run(side, &format!(
                        "CREATE TRIGGER IF NOT EXISTS {trigger} AFTER {event} ON {plain} FOR EACH ROW \
                         WHEN {row}.{tc} = {sf} BEGIN \
                         SELECT RAISE(ABORT, '{message}') WHERE (SELECT fenced FROM {FENCE} WHERE storefront_id = {sf}) = 1; \
                         INSERT INTO {CHANGELOG} (storefront_id, table_name, pk) VALUES ({sf}, '{name}', {row}.{pk}); \
                         END"
                    )).await?;
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
        _ => {
            for t in tables {
                for op in ["i", "u", "d", "cd", "cu"] {
                    let trigger = side.table(&trigger_name(storefront, &t.name, op));
                    run(side, &format!("DROP TRIGGER IF EXISTS {trigger}")).await?;
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
        "UPDATE {} SET fenced = {} WHERE storefront_id = {}",
        side.table(FENCE),
        side.p(1),
        side.p(2)
    );
    side.conn
        .execute_raw(side.stmt(sql, vec![value, (*storefront.as_uuid()).into()]))
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

/// Whether `err` is a write refused by a fence.
pub fn is_fenced(err: &sea_orm::DbErr) -> bool {
    err.to_string().contains(FENCED)
}

/// Whether a statement that failed with `err` had no effect because of a move and may run
/// again: a fence refusal, or MariaDB's spurious "table doesn't exist" for the capture
/// tables while the capture triggers are being created (MDEV-26048: a statement that began
/// before `CREATE TRIGGER` cannot open the new trigger's tables). The application never
/// names those tables itself, so the second case cannot hide one of its own errors.
pub(crate) fn is_retryable(err: &sea_orm::DbErr) -> bool {
    let m = err.to_string();
    m.contains(FENCED)
        || (m.contains("1146")
            && (m.contains(&format!(".{FENCE}'")) || m.contains(&format!(".{CHANGELOG}'"))))
}
