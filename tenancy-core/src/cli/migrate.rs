//! `migrate up|down|status`: the application's migrations across the fleet.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use sea_orm_migration::MigratorTrait;
use serde_json::{json, Value};

use super::{args::FleetArgs, render::Report, storefronts, Context};
use crate::{
    directory::TenantRecord,
    fleet::{FleetOptions, Outcome},
    provision::latest_migration,
    Placement, StorefrontId, TenancyError,
};

/// `migrate up`: the shared database, then every storefront, `--jobs` at a time, with a
/// progress bar (hidden with `--json`).
pub(super) async fn up<M: MigratorTrait>(
    cx: &Context,
    args: FleetArgs,
) -> Result<Report, TenancyError> {
    let opts = FleetOptions {
        jobs: args.jobs,
        only: storefronts(&args.storefronts)?,
        include_shared: !args.no_shared,
        verify: args.verify,
        jobs_per_server: args.jobs_per_server,
    };
    let bar = if cx.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0)
    };
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} migrating [{bar:30}] {pos}/{len} storefronts {msg}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    let report = cx
        .tenancy
        .migrate_fleet::<M>(&opts, |p| {
            bar.set_length(p.total as u64);
            bar.set_position(p.done as u64);
            if let Outcome::Failed { .. } = p.outcome {
                bar.set_message(format!("(failed: {})", p.storefront));
            }
        })
        .await?;
    bar.finish_and_clear();
    let rows = report.storefronts.iter().map(|(id, o)| {
        let (outcome, detail) = match o {
            Outcome::Current => ("current", String::new()),
            Outcome::Migrated { version } => ("migrated", version.clone().unwrap_or_default()),
            Outcome::Failed { error } => ("FAILED", error.clone()),
        };
        vec![id.to_string(), outcome.to_owned(), detail]
    });
    let mut out = Report::of(&report).failed_if(!report.is_success());
    if let Some(shared) = &report.shared {
        out = out.line(format!("shared database: {}", outcome_word(shared)));
    }
    Ok(out
        .table(&["STOREFRONT", "OUTCOME", "DETAIL"], rows)
        .line(format!(
            "{} storefronts: {} migrated, {} current, {} failed ({} ms)",
            report.storefronts.len(),
            report.count(|o| matches!(o, Outcome::Migrated { .. })),
            report.count(|o| *o == Outcome::Current),
            report.failures().len(),
            report.elapsed.as_millis()
        )))
}

fn outcome_word(o: &Outcome) -> String {
    match o {
        Outcome::Current => "current".into(),
        Outcome::Migrated { version } => {
            format!("migrated ({})", version.as_deref().unwrap_or("-"))
        }
        Outcome::Failed { error } => format!("FAILED: {error}"),
    }
}

/// The directory's records of the storefronts `only` names (all when `None`).
async fn records(
    cx: &Context,
    only: Option<&[StorefrontId]>,
) -> Result<Vec<TenantRecord>, TenancyError> {
    let all = cx.tenancy.require_directory()?.list().await?;
    Ok(all
        .into_iter()
        .filter(|r| only.is_none_or(|o| o.contains(&r.storefront)))
        .collect())
}

/// `migrate down`: `steps` migrations reverted on every storefront schema and database
/// (shared storefronts live in the shared database), then on the shared database.
pub(super) async fn down<M: MigratorTrait>(
    cx: &Context,
    fleet: FleetArgs,
    steps: u32,
) -> Result<Report, TenancyError> {
    let only = storefronts(&fleet.storefronts)?;
    let directory = cx.tenancy.require_directory()?;
    let mut results = Vec::new();
    for record in records(cx, only.as_deref()).await? {
        if matches!(record.placement, Placement::Shared) {
            continue;
        }
        let reverted = cx
            .tenancy
            .migrate_placement_down::<M>(record.storefront, &record.placement, steps)
            .await;
        let (version, error) = match reverted {
            Ok(v) => (v, None),
            Err(e) => (None, Some(e.to_string())),
        };
        match &error {
            None => {
                directory
                    .record_migration(record.storefront, version.as_deref())
                    .await?
            }
            Some(e) => {
                directory
                    .record_migration_error(record.storefront, e)
                    .await?
            }
        }
        results
            .push(json!({ "storefront": record.storefront, "migration": version, "error": error }));
    }
    if !fleet.no_shared && only.is_none() {
        if let Err(e) = M::down(cx.tenancy.shared(), Some(steps)).await {
            results.push(json!({ "storefront": "shared", "error": e.to_string() }));
        }
    }
    let failed = results.iter().any(|r| !r["error"].is_null());
    let rows = results
        .iter()
        .map(|r| {
            ["storefront", "migration", "error"]
                .iter()
                .map(|k| {
                    r[k].as_str()
                        .unwrap_or(if *k == "error" { "" } else { "-" })
                })
                .map(str::to_owned)
                .collect()
        })
        .collect::<Vec<_>>();
    Ok(Report::new(Value::Array(results))
        .table(&["STOREFRONT", "NOW AT", "ERROR"], rows)
        .failed_if(failed))
}

/// `migrate status`: which migration each storefront is at, from the directory or, with
/// `--verify`, from its own migration table.
pub(super) async fn status<M: MigratorTrait>(
    cx: &Context,
    args: FleetArgs,
) -> Result<Report, TenancyError> {
    let only = storefronts(&args.storefronts)?;
    let latest = latest_migration::<M>();
    let mut rows = Vec::new();
    let mut out = Vec::new();
    for record in records(cx, only.as_deref()).await? {
        let applied = if args.verify {
            cx.tenancy
                .applied_version(record.storefront, &record.placement)
                .await
                .ok()
                .flatten()
        } else {
            record.migration.clone()
        };
        let status = if record.migration_error.is_some() {
            "failed"
        } else if applied == latest {
            "current"
        } else {
            "behind"
        };
        rows.push(vec![
            record.storefront.to_string(),
            record.placement.tenant_type().to_string(),
            applied.clone().unwrap_or_else(|| "-".into()),
            status.to_owned(),
        ]);
        out.push(json!({
            "storefront": record.storefront,
            "type": record.placement.tenant_type(),
            "migration": applied,
            "status": status,
            "error": record.migration_error,
        }));
    }
    Ok(Report::new(json!({ "latest": latest, "storefronts": out }))
        .line(format!(
            "latest migration: {}",
            latest.as_deref().unwrap_or("-")
        ))
        .table(&["STOREFRONT", "TYPE", "MIGRATION", "STATUS"], rows))
}
