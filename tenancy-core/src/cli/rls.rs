//! `rls apply|check`: PostgreSQL row-level security in the shared database and in every
//! storefront schema and database the directory knows.

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::{json, Value};

use super::{
    args::{RlsArgs, RlsCommand},
    render::Report,
    Context,
};
use crate::{
    backend::{database::connect_one, redact},
    rls::{self, RowLevelSecurity},
    Placement, TenancyError,
};

/// Where one pass of `apply` or `check` runs.
enum Place {
    /// The shared database's own schema.
    Shared,
    /// A storefront schema in the shared database.
    Schema(String),
    /// A storefront database (its URL).
    Database(String),
}

impl Place {
    /// How the output names it (a URL without its password).
    fn name(&self) -> String {
        match self {
            Place::Shared => "shared".into(),
            Place::Schema(schema) => format!("schema {schema}"),
            Place::Database(url) => redact(url),
        }
    }
}

pub(super) async fn run(cx: &Context, command: RlsCommand) -> Result<Report, TenancyError> {
    let (args, applying) = match command {
        RlsCommand::Apply(args) => (args, true),
        RlsCommand::Check(args) => (args, false),
    };
    let role = role(cx, &args)?;
    let role = role.as_ref().and_then(RowLevelSecurity::role_name);
    let mut places = vec![Place::Shared];
    let mut seen = std::collections::BTreeSet::new();
    for record in cx.tenancy.require_directory()?.list().await? {
        let place = match record.placement {
            Placement::Shared => continue,
            Placement::Schema { schema } => Place::Schema(schema),
            Placement::Database { url } => Place::Database(url),
        };
        // Storefronts may share a schema or a database: visit each once.
        if seen.insert(place.name()) {
            places.push(place);
        }
    }
    let bar = progress(cx.json, places.len());
    let (mut rows, mut json_rows, mut failed) = (Vec::new(), Vec::new(), false);
    for place in &places {
        bar.set_message(place.name());
        let outcome = if applying {
            apply_at(cx, place, role).await.map(|a| {
                let changed = if a.changed.is_empty() {
                    "-".to_owned()
                } else {
                    a.changed.join(", ")
                };
                rows.push(vec![place.name(), changed, a.unchanged.to_string()]);
                json_rows.push(json!({ "where": place.name(), "schema": a.schema,
                    "changed": a.changed, "unchanged": a.unchanged }));
            })
        } else {
            check_at(cx, place, role).await.map(|findings| {
                for f in &findings {
                    rows.push(vec![
                        place.name(),
                        format!("{}.{}", f.schema, f.table),
                        f.problem.clone(),
                    ]);
                }
                failed |= !findings.is_empty();
                json_rows.push(json!({ "where": place.name(), "findings": findings }));
            })
        };
        if let Err(e) = outcome {
            failed = true;
            let error = e.to_string();
            rows.push(if applying {
                vec![place.name(), format!("error: {error}"), "-".into()]
            } else {
                vec![place.name(), "-".into(), format!("error: {error}")]
            });
            json_rows.push(json!({ "where": place.name(), "error": error }));
        }
        bar.inc(1);
    }
    bar.finish_and_clear();
    let summary = match (applying, failed) {
        (true, false) => format!(
            "row-level security is in place in {} place(s)",
            places.len()
        ),
        (true, true) => "row-level security could not be applied everywhere".to_owned(),
        (false, false) => format!(
            "row-level security is in place in {} place(s): nothing to report",
            places.len()
        ),
        (false, true) => "row-level security is not in place everywhere".to_owned(),
    };
    let report = Report::new(json!({ "places": Value::Array(json_rows), "ok": !failed }));
    let report = if applying {
        report.table(&["WHERE", "CHANGED", "UNCHANGED"], rows)
    } else if rows.is_empty() {
        report
    } else {
        report.table(&["WHERE", "OBJECT", "PROBLEM"], rows)
    };
    Ok(report.line(summary).failed_if(failed))
}

/// `--role`, else the configuration's `row_level_security.role`.
fn role(cx: &Context, args: &RlsArgs) -> Result<Option<RowLevelSecurity>, TenancyError> {
    match &args.role {
        Some(role) => {
            RowLevelSecurity::new()
                .role(role)
                .map(Some)
                .map_err(|e| TenancyError::Config {
                    key: "--role".into(),
                    message: e.to_string(),
                })
        }
        None => {
            let configured = &cx.config.tenant_strategy.database_config.row_level_security;
            match &configured.role {
                None => Ok(None),
                Some(_) => {
                    let mut on = configured.clone();
                    on.enabled = true;
                    on.to_options()
                }
            }
        }
    }
}

/// A connection that reaches `place`, and the schema to name there (`None`: the
/// connection's own). A storefront database gets a connection of its own, for the caller
/// to close.
async fn reach<'a>(
    cx: &'a Context,
    place: &'a Place,
) -> Result<(sea_orm::DatabaseConnection, Option<&'a str>, bool), TenancyError> {
    Ok(match place {
        Place::Shared => (cx.tenancy.shared().clone(), None, false),
        Place::Schema(schema) => (cx.tenancy.shared().clone(), Some(schema.as_str()), false),
        Place::Database(url) => (connect_one(&cx.tenancy.direct_url(url)).await?, None, true),
    })
}

async fn apply_at(
    cx: &Context,
    place: &Place,
    role: Option<&str>,
) -> Result<rls::Applied, TenancyError> {
    let (conn, schema, own) = reach(cx, place).await?;
    let applied = rls::apply(&conn, cx.tenancy.registry(), role, schema).await;
    if own {
        let _ = conn.close().await;
    }
    applied
}

async fn check_at(
    cx: &Context,
    place: &Place,
    role: Option<&str>,
) -> Result<Vec<rls::Finding>, TenancyError> {
    let (conn, schema, own) = reach(cx, place).await?;
    let found = rls::check(&conn, cx.tenancy.registry(), role, schema).await;
    if own {
        let _ = conn.close().await;
    }
    found
}

fn progress(json: bool, len: usize) -> ProgressBar {
    let bar = if json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(len as u64)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}
