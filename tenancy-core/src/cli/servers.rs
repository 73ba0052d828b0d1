//! `plan rebalance`, `rebalance apply`, `server list` and `server drain`: the fleet's
//! servers and the moves between them, with a progress bar for the run and one line per
//! move in flight.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use sea_orm_migration::MigratorTrait;
use serde_json::json;

use super::{args::MovesArgs, render::Report, Context};
use crate::{
    mover::MoveOptions,
    rebalance::{Event, MoveOutcome, Plan, Rebalanced, Rebalancer},
    servers::Survey,
    TenancyError,
};

fn rebalancer(cx: &Context, moves: Option<&MovesArgs>) -> Result<Rebalancer, TenancyError> {
    let s = &cx.config.tenant_strategy;
    let servers = s.database_config.servers()?;
    if servers.is_empty() {
        return Err(TenancyError::Config {
            key: "tenant_strategy.database_config.servers".into(),
            message: "no server is configured: name each database server with its url and capacity"
                .into(),
        });
    }
    let jobs = moves
        .and_then(|m| m.jobs)
        .unwrap_or(s.migration_config.concurrent_moves as usize);
    Ok(Rebalancer::new(
        &cx.tenancy,
        servers,
        MoveOptions::from_config(&s.migration_config),
    )
    .jobs(jobs)
    .keep_sources(moves.is_some_and(|m| m.keep_sources)))
}

fn tolerance(cx: &Context, flag: Option<f64>) -> Result<f64, TenancyError> {
    let t = flag.unwrap_or(
        cx.config
            .tenant_strategy
            .migration_config
            .rebalance_tolerance,
    );
    if !(0.0..1.0).contains(&t) {
        return Err(TenancyError::Config {
            key: "--tolerance".into(),
            message: format!("{t} is not a fraction below 1 (0.15 means +-15%)"),
        });
    }
    Ok(t)
}

/// `server list`: each server's capacity, storefront databases and bytes.
pub(super) async fn list(cx: &Context) -> Result<Report, TenancyError> {
    let r = rebalancer(cx, None)?;
    let occupancy = r.servers().occupancy(&cx.tenancy).await?;
    let rows = occupancy.iter().map(|o| {
        vec![
            o.server.clone(),
            format!("{}", o.capacity),
            o.storefronts.to_string(),
            o.bytes
                .map_or_else(|| "not answering".to_owned(), |b| b.to_string()),
            if o.has_room { "yes" } else { "no" }.to_owned(),
        ]
    });
    Ok(Report::of(&occupancy).table(
        &["SERVER", "CAPACITY", "STOREFRONTS", "BYTES", "TAKES NEW"],
        rows,
    ))
}

/// `plan rebalance`: the moves, each with its reason, and every server's load before and
/// after.
pub(super) async fn plan(cx: &Context, flag: Option<f64>) -> Result<Report, TenancyError> {
    let tolerance = tolerance(cx, flag)?;
    let (plan, survey) = rebalancer(cx, None)?.plan(tolerance).await?;
    Ok(plan_report(&plan, &survey, tolerance))
}

fn plan_report(plan: &Plan, survey: &Survey, tolerance: f64) -> Report {
    let json = json!({
        "tolerance": tolerance,
        "plan": plan,
        "storefronts": survey.holdings.iter().map(|h| json!({
            "storefront": h.storefront,
            "server": h.server,
            "rows": h.rows,
            "bytes": h.bytes,
            "query_ms": h.query_ms,
            "movable": h.movable,
        })).collect::<Vec<_>>(),
        "busy": survey.busy.iter().map(|(sf, why)| json!({"storefront": sf, "reason": why})).collect::<Vec<_>>(),
    });
    let rows: u64 = survey.holdings.iter().map(|h| h.rows).sum();
    let mut report = Report::new(json)
        .line(format!(
            "{} storefront databases, {rows} rows; tolerance +-{:.0}%",
            survey.holdings.len(),
            tolerance * 100.0
        ))
        .table(
            &["SERVER", "STOREFRONTS", "LOAD NOW", "AFTER", "SHARE"],
            plan.before.iter().zip(&plan.after).map(|(b, a)| {
                vec![
                    b.server.clone(),
                    format!("{} -> {}", b.storefronts, a.storefronts),
                    format!("{:.1}%", b.load * 100.0),
                    format!("{:.1}%", a.load * 100.0),
                    format!("{:.1}%", b.target * 100.0),
                ]
            }),
        );
    if plan.moves.is_empty() && plan.balanced_after {
        report = report.line("no move: every server is within the tolerance");
    } else if plan.moves.is_empty() {
        report = report.line(
            "no single move brings the fleet closer: it stays outside the tolerance (too few or too large storefronts to share out evenly, storefronts that may not move, or servers full or not answering)",
        );
    } else {
        report = report
            .line(format!(
                "{} moves, {} bytes to copy{}",
                plan.moves.len(),
                plan.bytes,
                if plan.balanced_after {
                    ""
                } else {
                    " (still outside the tolerance after them)"
                }
            ))
            .table(
                &["STOREFRONT", "FROM", "TO", "BYTES", "REASON"],
                plan.moves.iter().map(|m| {
                    vec![
                        m.storefront.to_string(),
                        m.from.clone(),
                        m.to.clone(),
                        m.bytes.to_string(),
                        m.reason.clone(),
                    ]
                }),
            );
    }
    for (sf, why) in &survey.busy {
        report = report.line(format!("not moved: {sf}: {why}"));
    }
    report
}

/// `rebalance apply`.
pub(super) async fn apply<M: MigratorTrait>(
    cx: &Context,
    flag: Option<f64>,
    moves: MovesArgs,
) -> Result<Report, TenancyError> {
    let tolerance = tolerance(cx, flag)?;
    let (r, multi) = with_bars(rebalancer(cx, Some(&moves))?, cx.json);
    let done = r.rebalance::<M>(tolerance).await;
    let _ = multi.clear();
    Ok(run_report(&done?))
}

/// `server drain <name>`.
pub(super) async fn drain<M: MigratorTrait>(
    cx: &Context,
    name: &str,
    dry_run: bool,
    moves: MovesArgs,
) -> Result<Report, TenancyError> {
    let r = rebalancer(cx, Some(&moves))?;
    if dry_run {
        let (plan, survey) = r.drain_plan(name).await?;
        return Ok(plan_report(&plan, &survey, 0.0));
    }
    let capacity = r.servers().get(name)?.capacity;
    let (r, multi) = with_bars(r, cx.json);
    let done = r.drain::<M>(name).await;
    let _ = multi.clear();
    let mut report = run_report(&done?);
    if capacity > 0.0 {
        report = report.line(format!(
            "{name} still has capacity {capacity} in the configuration: new storefront databases may go there; give it capacity 0 to keep it empty"
        ));
    }
    Ok(report)
}

fn run_report(done: &Rebalanced) -> Report {
    let failed = done.failed();
    let row = |m: &MoveOutcome| {
        vec![
            m.storefront.to_string(),
            m.from.clone(),
            m.to.clone(),
            match (&m.phase, &m.error) {
                (_, Some(e)) => format!("FAILED: {e}"),
                (Some(p), None) => p.to_string(),
                (None, None) => "not begun (planned again)".into(),
            },
        ]
    };
    let mut report = Report::of(done);
    if !done.resumed.is_empty() {
        report = report
            .line(format!(
                "{} moves of a stopped run finished first",
                done.resumed.len()
            ))
            .table(
                &["STOREFRONT", "FROM", "TO", "OUTCOME"],
                done.resumed.iter().map(row),
            );
    }
    report = report
        .line(format!(
            "{} moves planned, {} bytes; {} failed",
            done.plan.moves.len(),
            done.plan.bytes,
            failed.len()
        ))
        .table(
            &["STOREFRONT", "FROM", "TO", "OUTCOME"],
            done.moves.iter().map(row),
        )
        .table(
            &["SERVER", "STOREFRONTS", "LOAD", "SHARE"],
            done.plan.after.iter().map(|a| {
                vec![
                    a.server.clone(),
                    a.storefronts.to_string(),
                    format!("{:.1}%", a.load * 100.0),
                    format!("{:.1}%", a.target * 100.0),
                ]
            }),
        );
    if !done.left.is_empty() {
        report = report.line(format!(
            "NOT EMPTY: {} storefronts are still on the server: {}",
            done.left.len(),
            done.left
                .iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ));
    }
    for (sf, why) in &done.busy {
        report = report.line(format!("not moved: {sf}: {why}"));
    }
    if !done.is_done() {
        report = report.line("run the same command again to resume what is left");
    }
    report.failed_if(!done.is_done())
}

/// A bar for the run (moves done of planned) and a line per move in flight: its phase,
/// rows copied and changelog lag. Hidden with `--json`.
fn with_bars(r: Rebalancer, json: bool) -> (Rebalancer, MultiProgress) {
    let multi = MultiProgress::new();
    if json {
        multi.set_draw_target(ProgressDrawTarget::hidden());
    }
    let total = multi.add(ProgressBar::new(0));
    total.set_style(
        ProgressStyle::with_template("{spinner} moves [{bar:30}] {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
    );
    total.enable_steady_tick(Duration::from_millis(120));
    let line = ProgressStyle::with_template("  {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_spinner());
    let lines: Arc<Mutex<HashMap<crate::StorefrontId, ProgressBar>>> = Arc::default();
    let m = multi.clone();
    let r = r.observe(move |event| {
        let mut lines = lines.lock().unwrap_or_else(|e| e.into_inner());
        match event {
            Event::Begin {
                storefront,
                from,
                to,
                resumed,
            } => {
                total.inc_length(1);
                let bar = m.add(ProgressBar::new_spinner());
                bar.set_style(line.clone());
                bar.set_message(format!(
                    "{storefront}: {from} -> {to}{}",
                    if *resumed { " (resumed)" } else { "" }
                ));
                lines.insert(*storefront, bar);
            }
            Event::Waiting { storefront, for_ms } => {
                if let Some(bar) = lines.get(storefront) {
                    bar.set_message(format!(
                        "{storefront}: waiting up to {for_ms} ms for a stopped run's lease"
                    ));
                }
            }
            Event::Progress(record) => {
                if let Some(bar) = lines.get(&record.storefront) {
                    let (copied, rows) = record
                        .progress
                        .tables
                        .iter()
                        .fold((0, 0), |(c, r), t| (c + t.copied, r + t.rows.max(t.copied)));
                    bar.set_message(format!(
                        "{}: {}, {copied}/{rows} rows copied, changelog lag {}",
                        record.storefront, record.phase, record.progress.lag
                    ));
                }
            }
            Event::Done(outcome) => {
                total.inc(1);
                if outcome.error.is_some() {
                    total.set_message(format!("(failed: {})", outcome.storefront));
                }
                if let Some(bar) = lines.remove(&outcome.storefront) {
                    bar.finish_and_clear();
                    m.remove(&bar);
                }
            }
        }
    });
    (r, multi)
}
