//! The `tenancy_moves` table: one row per move, in the shared database, with the lease of
//! the mover acting on it (`owner`, `lease_until`) and a `version` every write bumps.
//!
//! Every write of a record is conditional on the writer holding the lease, so a mover
//! whose lease expired (it stalled, another mover took over) cannot change the record, nor
//! flip the directory (the flip is written in the same transaction).

use std::time::Duration;

use chrono::{DateTime, Utc};
use sea_orm::{
    sea_query::{Alias, ColumnDef, Expr, ExprTrait, Index, Query, Table},
    ConnectionTrait, DatabaseConnection, QueryResult,
};
use uuid::Uuid;

use super::{MoveProgress, MoveRecord, Phase};
use crate::{
    backend::{classify, ErrorClass},
    Placement, StorefrontId, TenancyError,
};

/// The moves table's name.
pub(crate) const MOVES_TABLE: &str = "tenancy_moves";

fn col(name: &str) -> Alias {
    Alias::new(name)
}

const COLUMNS: [&str; 10] = [
    "id",
    "storefront_id",
    "source",
    "target",
    "phase",
    "error",
    "progress",
    "created_at",
    "updated_at",
    "cutover_at",
];

pub(crate) async fn install(db: &DatabaseConnection) -> Result<(), TenancyError> {
    let table = Table::create()
        .table(col(MOVES_TABLE))
        .if_not_exists()
        .col(ColumnDef::new(col("id")).uuid().not_null().primary_key())
        .col(ColumnDef::new(col("storefront_id")).uuid().not_null())
        .col(ColumnDef::new(col("source")).text().not_null())
        .col(ColumnDef::new(col("target")).text().not_null())
        .col(ColumnDef::new(col("phase")).string_len(16).not_null())
        .col(ColumnDef::new(col("error")).text().null())
        .col(ColumnDef::new(col("progress")).text().not_null())
        .col(
            ColumnDef::new(col("created_at"))
                .timestamp_with_time_zone()
                .not_null(),
        )
        .col(
            ColumnDef::new(col("updated_at"))
                .timestamp_with_time_zone()
                .not_null(),
        )
        .col(
            ColumnDef::new(col("cutover_at"))
                .timestamp_with_time_zone()
                .null(),
        )
        .col(lease_columns()[0].clone())
        .col(lease_columns()[1].clone())
        .col(lease_columns()[2].clone())
        .to_owned();
    db.execute(&table).await?;
    // A table created before leases existed gets their columns, each one probed on its
    // own (an upgrade that stopped halfway, or ran in two processes at once, goes on).
    for (name, column) in ["owner", "lease_until", "version"]
        .into_iter()
        .zip(lease_columns())
    {
        let probe = Query::select()
            .column(col(name))
            .from(col(MOVES_TABLE))
            .limit(0)
            .to_owned();
        if db.query_all(&probe).await.is_ok() {
            continue;
        }
        let alter = Table::alter()
            .table(col(MOVES_TABLE))
            .add_column(column)
            .to_owned();
        if let Err(e) = db.execute(&alter).await {
            // Added meanwhile by another process: fine; anything else is an error.
            if db.query_all(&probe).await.is_err() {
                return Err(e.into());
            }
        }
    }
    let index = Index::create()
        .if_not_exists()
        .name("tenancy_moves_storefront")
        .table(col(MOVES_TABLE))
        .col(col("storefront_id"))
        .col(col("created_at"))
        .to_owned();
    match db.execute(&index).await {
        Ok(_) => Ok(()),
        // MySQL has no CREATE INDEX IF NOT EXISTS.
        Err(e) if classify(&e) == ErrorClass::DuplicateIndex => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn lease_columns() -> [ColumnDef; 3] {
    [
        ColumnDef::new(col("owner"))
            .string_len(36)
            .null()
            .to_owned(),
        ColumnDef::new(col("lease_until"))
            .timestamp_with_time_zone()
            .null()
            .to_owned(),
        ColumnDef::new(col("version"))
            .big_integer()
            .not_null()
            .default(0)
            .to_owned(),
    ]
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, TenancyError> {
    serde_json::to_string(value).map_err(|e| TenancyError::Move {
        storefront: String::new(),
        phase: "save".into(),
        reason: e.to_string(),
    })
}

/// Inserts a new move, leased to `r.lease` for `ttl`.
pub(crate) async fn insert<C: ConnectionTrait>(
    db: &C,
    r: &MoveRecord,
    ttl: Duration,
) -> Result<(), TenancyError> {
    let insert = Query::insert()
        .into_table(col(MOVES_TABLE))
        .columns(COLUMNS.into_iter().chain(["owner", "lease_until"]).map(col))
        .values_panic([
            r.id.into(),
            (*r.storefront.as_uuid()).into(),
            json(&r.source)?.into(),
            json(&r.target)?.into(),
            r.phase.as_str().into(),
            r.error.clone().into(),
            json(&r.progress)?.into(),
            r.created_at.into(),
            r.updated_at.into(),
            r.cutover_at.into(),
            r.lease.map(|l| l.to_string()).into(),
            until(ttl).into(),
        ])
        .to_owned();
    db.execute(&insert).await?;
    Ok(())
}

/// The move's version now (read right after taking its lease: the holder's epoch).
pub(crate) async fn version(db: &DatabaseConnection, id: Uuid) -> Result<i64, TenancyError> {
    let select = Query::select()
        .column(col("version"))
        .from(col(MOVES_TABLE))
        .and_where(Expr::col(col("id")).eq(id))
        .to_owned();
    match db.query_one(&select).await? {
        Some(row) => Ok(row.try_get("", "version")?),
        None => Ok(0),
    }
}

fn until(ttl: Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(ttl)
        .ok()
        .and_then(|ttl| Utc::now().checked_add_signed(ttl))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn lost_lease(r: &MoveRecord) -> TenancyError {
    TenancyError::Move {
        storefront: r.storefront.to_string(),
        phase: r.phase.to_string(),
        reason: "this mover lost its lease on the move (it stalled past the lease and another mover took over): it stops; see `move status`".into(),
    }
}

/// Renews the lease `r.lease` holds, writing nothing else: `Err` when it no longer holds
/// it.
pub(crate) async fn renew(
    db: &DatabaseConnection,
    r: &MoveRecord,
    ttl: Duration,
) -> Result<(), TenancyError> {
    let update = Query::update()
        .table(col(MOVES_TABLE))
        .value(col("lease_until"), until(ttl))
        .value(col("version"), Expr::col(col("version")).add(1))
        .and_where(Expr::col(col("id")).eq(r.id))
        .and_where(Expr::col(col("owner")).eq(r.lease.map(|l| l.to_string())))
        .to_owned();
    if db.execute(&update).await?.rows_affected() != 1 {
        return Err(lost_lease(r));
    }
    Ok(())
}

/// Takes the lease of move `id` for `token` if nobody holds it or it has expired; else
/// the error says until when it is held.
pub(crate) async fn acquire(
    db: &DatabaseConnection,
    r: &MoveRecord,
    token: Uuid,
    ttl: Duration,
) -> Result<(), TenancyError> {
    let now = Utc::now();
    let update = Query::update()
        .table(col(MOVES_TABLE))
        .value(col("owner"), token.to_string())
        .value(col("lease_until"), until(ttl))
        .value(col("version"), Expr::col(col("version")).add(1))
        .and_where(Expr::col(col("id")).eq(r.id))
        .and_where(
            Expr::col(col("owner"))
                .is_null()
                .or(Expr::col(col("lease_until")).is_null())
                .or(Expr::col(col("lease_until")).lt(now)),
        )
        .to_owned();
    if db.execute(&update).await?.rows_affected() == 1 {
        return Ok(());
    }
    let until = lease_until(db, r.id).await?;
    Err(TenancyError::Move {
        storefront: r.storefront.to_string(),
        phase: r.phase.to_string(),
        reason: format!(
            "another mover holds this move's lease until {} (a process, the dashboard or the CLI acting on it); a mover that died is replaced once its lease expires",
            until.map_or_else(|| "-".into(), |t| t.to_rfc3339())
        ),
    })
}

/// Until when move `id`'s lease is held (`None`: by nobody, or the move is unknown).
pub(crate) async fn lease_until(
    db: &DatabaseConnection,
    id: Uuid,
) -> Result<Option<DateTime<Utc>>, TenancyError> {
    let held = Query::select()
        .column(col("lease_until"))
        .from(col(MOVES_TABLE))
        .and_where(Expr::col(col("id")).eq(id))
        .and_where(Expr::col(col("owner")).is_not_null())
        .to_owned();
    Ok(match db.query_one(&held).await? {
        Some(row) => row.try_get("", "lease_until")?,
        None => None,
    })
}

/// Gives the lease back (nothing when `token` no longer holds it).
pub(crate) async fn release(
    db: &DatabaseConnection,
    id: Uuid,
    token: Uuid,
) -> Result<(), TenancyError> {
    let update = Query::update()
        .table(col(MOVES_TABLE))
        .value(col("owner"), Option::<String>::None)
        .value(col("lease_until"), Option::<DateTime<Utc>>::None)
        .value(col("version"), Expr::col(col("version")).add(1))
        .and_where(Expr::col(col("id")).eq(id))
        .and_where(Expr::col(col("owner")).eq(token.to_string()))
        .to_owned();
    db.execute(&update).await?;
    Ok(())
}

/// Writes the record and renews its lease for `ttl`, if `r.lease` still holds it; a mover
/// that lost its lease gets an error and writes nothing.
pub(crate) async fn save<C: ConnectionTrait>(
    db: &C,
    r: &MoveRecord,
    ttl: Duration,
) -> Result<(), TenancyError> {
    let token = r.lease.map(|l| l.to_string());
    let update = Query::update()
        .table(col(MOVES_TABLE))
        .value(col("phase"), r.phase.as_str())
        .value(col("error"), r.error.clone())
        .value(col("progress"), json(&r.progress)?)
        .value(col("updated_at"), r.updated_at)
        .value(col("cutover_at"), r.cutover_at)
        .value(col("lease_until"), until(ttl))
        .value(col("version"), Expr::col(col("version")).add(1))
        .and_where(Expr::col(col("id")).eq(r.id))
        .and_where(Expr::col(col("owner")).eq(token))
        .to_owned();
    if db.execute(&update).await?.rows_affected() != 1 {
        return Err(lost_lease(r));
    }
    Ok(())
}

fn parse(row: &QueryResult) -> Result<MoveRecord, TenancyError> {
    let bad = |what: String| TenancyError::Move {
        storefront: String::new(),
        phase: "load".into(),
        reason: format!("unreadable row in {MOVES_TABLE}: {what}"),
    };
    let id: Uuid = row.try_get("", "id")?;
    let storefront: Uuid = row.try_get("", "storefront_id")?;
    let source: String = row.try_get("", "source")?;
    let target: String = row.try_get("", "target")?;
    let phase: String = row.try_get("", "phase")?;
    let progress: String = row.try_get("", "progress")?;
    Ok(MoveRecord {
        id,
        storefront: StorefrontId::try_from(storefront)?,
        source: serde_json::from_str::<Placement>(&source).map_err(|e| bad(e.to_string()))?,
        target: serde_json::from_str::<Placement>(&target).map_err(|e| bad(e.to_string()))?,
        phase: Phase::parse(&phase).ok_or_else(|| bad(format!("unknown phase `{phase}`")))?,
        error: row.try_get("", "error")?,
        progress: serde_json::from_str::<MoveProgress>(&progress)
            .map_err(|e| bad(e.to_string()))?,
        created_at: row.try_get("", "created_at")?,
        updated_at: row.try_get("", "updated_at")?,
        cutover_at: row.try_get("", "cutover_at")?,
        lease: None,
        epoch: 0,
    })
}

/// The storefront's move in progress if it has one (there is at most one: starting one
/// claims the storefront), else its newest. Not by time alone: MySQL's `TIMESTAMP` keeps
/// whole seconds, so a move started in the second another ended would tie with it.
pub(crate) async fn latest(
    db: &DatabaseConnection,
    storefront: StorefrontId,
) -> Result<Option<MoveRecord>, TenancyError> {
    let select = Query::select()
        .columns(COLUMNS.map(col))
        .from(col(MOVES_TABLE))
        .and_where(Expr::col(col("storefront_id")).eq(*storefront.as_uuid()))
        .order_by(col("created_at"), sea_orm::Order::Desc)
        .to_owned();
    let moves = db
        .query_all(&select)
        .await?
        .iter()
        .map(parse)
        .collect::<Result<Vec<_>, _>>()?;
    let unfinished = moves.iter().position(|m| !m.phase.is_finished());
    Ok(moves.into_iter().nth(unfinished.unwrap_or(0)))
}

pub(crate) async fn all(db: &DatabaseConnection) -> Result<Vec<MoveRecord>, TenancyError> {
    let select = Query::select()
        .columns(COLUMNS.map(col))
        .from(col(MOVES_TABLE))
        .order_by(col("created_at"), sea_orm::Order::Desc)
        .to_owned();
    db.query_all(&select).await?.iter().map(parse).collect()
}
