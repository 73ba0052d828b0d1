//! `move start|status|resume|cutover|rollback|complete`, with a progress bar per table.

use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use sea_orm_migration::MigratorTrait;
use serde_json::{json, Value};

use super::{
    args::{MoveCommand, MoveStartArgs},
    render::{placement_json, Report},
    Context,
};
use crate::{
    mover::{MoveOptions, MoveRecord, Mover},
    Placement, StorefrontId, TenancyError, TenantType,
};

/// Runs one `move` subcommand with the configuration's `migration_config`; every
/// subcommand but `status` prints the move's record when it returns.
pub(super) async fn run<M: MigratorTrait>(
    cx: &Context,
    command: MoveCommand,
) -> Result<Report, TenancyError> {
    let base = Mover::new(
        &cx.tenancy,
        MoveOptions::from_config(&cx.config.tenant_strategy.migration_config),
    );
    if let MoveCommand::Status { id } = command {
        return status(&base, id.as_deref()).await;
    }
    let (mover, multi) = move_bars(base, cx.json);
    let record = match command {
        MoveCommand::Status { .. } => unreachable!("answered above"),
        MoveCommand::Start(args) => start::<M>(cx, &mover, args).await,
        MoveCommand::Resume { id } => mover.resume::<M>(id.parse()?).await,
        MoveCommand::Cutover { id } => mover.cutover::<M>(id.parse()?).await,
        MoveCommand::Rollback { id } => mover.rollback(id.parse()?).await,
        MoveCommand::Complete { id, force } => mover.complete(id.parse()?, force).await,
    };
    let _ = multi.clear();
    let record = record?;
    Ok(Report::new(move_json(&record)).line(move_text(&record).trim_end()))
}

/// `move status`: one storefront's latest move, or every move.
async fn status(mover: &Mover, id: Option<&str>) -> Result<Report, TenancyError> {
    let records = match id {
        Some(id) => mover.status(id.parse()?).await?.into_iter().collect(),
        None => mover.list().await?,
    };
    let text = if records.is_empty() {
        "no moves".to_owned()
    } else {
        records.iter().map(move_text).collect::<Vec<_>>().join("\n")
    };
    Ok(Report::new(Value::Array(records.iter().map(move_json).collect())).line(text.trim_end()))
}

/// `move start`: to the flags' placement, else the configuration's for that type; on
/// through the cutover with `--cutover`.
async fn start<M: MigratorTrait>(
    cx: &Context,
    mover: &Mover,
    args: MoveStartArgs,
) -> Result<MoveRecord, TenancyError> {
    let id: StorefrontId = args.id.parse()?;
    let kind = args
        .to
        .parse::<TenantType>()
        .map_err(|message| TenancyError::Config {
            key: "--to".into(),
            message,
        })?;
    let target = match (kind, args.schema, args.url) {
        (TenantType::Schema, Some(schema), _) => Placement::Schema { schema },
        (TenantType::Database, _, Some(url)) => Placement::Database { url },
        (kind, _, _) => cx.placement_for(id, Some(kind)).await?,
    };
    let ready = mover.start::<M>(id, target).await?;
    if args.cutover {
        return mover.cutover::<M>(id).await;
    }
    Ok(ready)
}

fn move_json(r: &MoveRecord) -> Value {
    json!({
        "id": r.id,
        "storefront": r.storefront,
        "source": placement_json(&r.source),
        "target": placement_json(&r.target),
        "phase": r.phase,
        "error": r.error,
        "progress": r.progress,
        "created_at": r.created_at,
        "updated_at": r.updated_at,
        "cutover_at": r.cutover_at,
    })
}

fn move_text(r: &MoveRecord) -> String {
    let mut out = format!(
        "move {} of storefront {}: {} -> {}\n  phase: {}\n",
        r.id, r.storefront, r.source, r.target, r.phase
    );
    for t in &r.progress.tables {
        out.push_str(&format!(
            "  {:<20} {:>9} of {:>9} rows copied{}\n",
            t.table,
            t.copied,
            t.rows,
            if t.done { "" } else { " (copying)" }
        ));
    }
    out.push_str(&format!(
        "  changelog: {} replayed, lag {}\n",
        r.progress.applied, r.progress.lag
    ));
    if let Some(round) = r.progress.validated_round {
        out.push_str(&format!(
            "  validated: {} rows (from catch-up round {round})\n",
            r.progress.validated_rows
        ));
    }
    if let Some(ms) = r.progress.pause_ms {
        out.push_str(&format!("  cutover pause: {ms} ms\n"));
        if let Some(s) = r.progress.pause_steps {
            out.push_str(&format!(
                "    fence {} ms, drain {} ms, check {} ms; then flip {} ms, guard lifted after {} ms\n",
                s.fence_ms, s.drain_ms, s.check_ms, s.flip_ms, s.open_ms
            ));
        }
        match r.progress.acknowledged_ms {
            Some(ms) => out.push_str(&format!("  every process had it after: {ms} ms\n")),
            None if r.phase == crate::mover::Phase::Switched => {
                out.push_str("  waiting for every process to acknowledge the flip\n")
            }
            None => {}
        }
    }
    if let Some(e) = &r.error {
        out.push_str(&format!("  last error: {e}\n"));
    }
    out
}

/// Progress bars for a running move: one per table (rows copied) and one for the phase and
/// changelog lag. Hidden with `--json`.
fn move_bars(mover: Mover, json: bool) -> (Mover, indicatif::MultiProgress) {
    use std::{collections::HashMap, sync::Mutex};
    let multi = indicatif::MultiProgress::new();
    if json {
        multi.set_draw_target(indicatif::ProgressDrawTarget::hidden());
    }
    let status = multi.add(ProgressBar::new_spinner());
    status.set_style(
        ProgressStyle::with_template("{spinner} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    status.enable_steady_tick(Duration::from_millis(120));
    let style = ProgressStyle::with_template("  {prefix:<20} [{bar:30}] {pos:>9}/{len:9} rows")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ");
    let bars: Mutex<HashMap<String, ProgressBar>> = Mutex::new(HashMap::new());
    let m = multi.clone();
    let mover = mover.observe(move |r| {
        status.set_message(format!(
            "{}: phase {}, changelog lag {} ({} replayed)",
            r.storefront, r.phase, r.progress.lag, r.progress.applied
        ));
        let mut bars = bars.lock().unwrap_or_else(|e| e.into_inner());
        for t in &r.progress.tables {
            let bar = bars.entry(t.table.clone()).or_insert_with(|| {
                let b = m.add(ProgressBar::new(t.rows));
                b.set_style(style.clone());
                b.set_prefix(t.table.clone());
                b
            });
            bar.set_length(t.rows.max(t.copied));
            bar.set_position(t.copied);
            if t.done && !bar.is_finished() {
                bar.finish();
            }
        }
    });
    (mover, multi)
}
