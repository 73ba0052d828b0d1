//! The `tenancy_moves` table: one row per move, in the shared database.

use sea_orm::{
    sea_query::{Alias, ColumnDef, Expr, ExprTrait, Index, Query, Table},
    ConnectionTrait, DatabaseConnection, QueryResult,
};
use uuid::Uuid;

use super::{MoveProgress, MoveRecord, Phase};
use crate::{Placement, StorefrontId, TenancyError};

/// The moves table's name.
pub const MOVES_TABLE: &str = "tenancy_moves";

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
        .to_owned();
    db.execute(&table).await?;
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
        Err(e) if e.to_string().contains("Duplicate key name") => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn json<T: serde::Serialize>(value: &T) -> Result<String, TenancyError> {
    serde_json::to_string(value).map_err(|e| TenancyError::Move {
        storefront: String::new(),
        phase: "save".into(),
        reason: e.to_string(),
    })
}

pub(crate) async fn insert(db: &DatabaseConnection, r: &MoveRecord) -> Result<(), TenancyError> {
    let insert = Query::insert()
        .into_table(col(MOVES_TABLE))
        .columns(COLUMNS.map(col))
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
        ])
        .to_owned();
    db.execute(&insert).await?;
    Ok(())
}

pub(crate) async fn save(db: &DatabaseConnection, r: &MoveRecord) -> Result<(), TenancyError> {
    let update = Query::update()
        .table(col(MOVES_TABLE))
        .value(col("phase"), r.phase.as_str())
        .value(col("error"), r.error.clone())
        .value(col("progress"), json(&r.progress)?)
        .value(col("updated_at"), r.updated_at)
        .value(col("cutover_at"), r.cutover_at)
        .and_where(Expr::col(col("id")).eq(r.id))
        .to_owned();
    db.execute(&update).await?;
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
    })
}

pub(crate) async fn latest(
    db: &DatabaseConnection,
    storefront: StorefrontId,
) -> Result<Option<MoveRecord>, TenancyError> {
    let select = Query::select()
        .columns(COLUMNS.map(col))
        .from(col(MOVES_TABLE))
        .and_where(Expr::col(col("storefront_id")).eq(*storefront.as_uuid()))
        .order_by(col("created_at"), sea_orm::Order::Desc)
        .limit(1)
        .to_owned();
    db.query_one(&select).await?.as_ref().map(parse).transpose()
}

pub(crate) async fn all(db: &DatabaseConnection) -> Result<Vec<MoveRecord>, TenancyError> {
    let select = Query::select()
        .columns(COLUMNS.map(col))
        .from(col(MOVES_TABLE))
        .order_by(col("created_at"), sea_orm::Order::Desc)
        .to_owned();
    db.query_all(&select).await?.iter().map(parse).collect()
}
