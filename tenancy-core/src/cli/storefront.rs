//! `storefront list|create|show|drop`.

use sea_orm_migration::MigratorTrait;
use serde_json::json;

use super::{
    args::CreateArgs,
    render::{placement_detail, placement_json, Report},
    Context,
};
use crate::{Placement, StorefrontId, TenancyError, TenantType};

/// `storefront list`: every storefront in the directory.
pub(super) async fn list(cx: &Context) -> Result<Report, TenancyError> {
    let records = cx.tenancy.require_directory()?.list().await?;
    let json = records
        .iter()
        .map(|r| {
            json!({
                "storefront": r.storefront,
                "placement": placement_json(&r.placement),
                "state": r.state,
                "version": r.version,
                "migration": r.migration,
                "migration_error": r.migration_error,
            })
        })
        .collect();
    let rows = records.iter().map(|r| {
        vec![
            r.storefront.to_string(),
            r.placement.tenant_type().to_string(),
            placement_detail(&r.placement),
            format!("{:?}", r.state).to_lowercase(),
            r.migration.clone().unwrap_or_else(|| "-".into()),
        ]
    });
    Ok(Report::new(serde_json::Value::Array(json))
        .table(&["STOREFRONT", "TYPE", "WHERE", "STATE", "MIGRATION"], rows))
}

/// `storefront create`: provision where the flags say, else where the configuration does.
pub(super) async fn create<M: MigratorTrait>(
    cx: &Context,
    args: CreateArgs,
) -> Result<Report, TenancyError> {
    let id: StorefrontId = args.id.parse()?;
    let kind = args
        .kind
        .as_deref()
        .map(|k| k.parse::<TenantType>())
        .transpose()
        .map_err(|message| TenancyError::Config {
            key: "--type".into(),
            message,
        })?;
    let placement = match (kind, args.schema, args.url) {
        (_, Some(schema), _) => Placement::Schema { schema },
        (_, _, Some(url)) => Placement::Database { url },
        (kind, None, None) => cx.placement_for(id, kind).await?,
    };
    let record = cx
        .tenancy
        .create_storefront::<M>(id, placement.clone())
        .await?;
    Ok(Report::new(json!({
        "storefront": id,
        "placement": placement_json(&placement),
        "migration": record.migration,
    }))
    .line(format!(
        "created storefront {id} ({}, at {})",
        placement.tenant_type(),
        record.migration.as_deref().unwrap_or("-")
    )))
}

/// `storefront show`: one storefront's directory record and its latency summary.
pub(super) async fn show(cx: &Context, id: &str) -> Result<Report, TenancyError> {
    let id: StorefrontId = id.parse()?;
    let record = cx
        .tenancy
        .require_directory()?
        .get(id)
        .await?
        .ok_or_else(|| TenancyError::UnknownStorefront {
            storefront: id.to_string(),
        })?;
    let latency = cx.tenancy.stats().summary(id);
    let fields = [
        ("storefront", id.to_string()),
        ("type", record.placement.tenant_type().to_string()),
        ("where", placement_detail(&record.placement)),
        ("state", format!("{:?}", record.state).to_lowercase()),
        ("version", record.version.to_string()),
        (
            "migration",
            record.migration.clone().unwrap_or_else(|| "-".into()),
        ),
        (
            "last error",
            record.migration_error.clone().unwrap_or_else(|| "-".into()),
        ),
        ("updated", record.updated_at.to_string()),
    ];
    let report = Report::new(json!({
        "storefront": id,
        "placement": placement_json(&record.placement),
        "state": record.state,
        "version": record.version,
        "migration": record.migration,
        "migration_error": record.migration_error,
        "updated_at": record.updated_at,
        "latency": latency,
    }));
    Ok(fields.into_iter().fold(report, |r, (name, value)| {
        r.line(format!("{name:<10}  {value}"))
    }))
}

/// `storefront drop`: the id must be given twice.
pub(super) async fn drop(cx: &Context, id: &str, confirm: &str) -> Result<Report, TenancyError> {
    let id: StorefrontId = id.parse()?;
    cx.tenancy.drop_storefront(id, confirm).await?;
    Ok(Report::new(json!({ "dropped": id })).line(format!("dropped storefront {id}")))
}
