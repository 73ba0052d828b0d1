//! The cutover: fence the source, drain the last changes behind the fence, check them,
//! flip the directory.

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use chrono::Utc;
use sea_orm_migration::MigratorTrait;

use super::{
    capture, move_err,
    side::{Side, TableMeta},
    transfer, validate, HaltAt, MoveRecord, Mover, Phase, Run,
};
use crate::{Placement, StorefrontId, TenancyError, TenantState};

/// How long one catch-up window of the convergence runs before the rates are measured.
const PASS_WINDOW: std::time::Duration = std::time::Duration::from_secs(2);

/// Which way a convergence replays the changes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Toward {
    /// Before a cutover: from the serving source onto the target.
    Target,
    /// Before a rollback after a cutover: from the serving target back onto the source.
    Source,
}

impl Mover {
    /// Runs the move through the cutover (first catching up and validating if needed).
    pub async fn cutover<M: MigratorTrait>(
        &self,
        storefront: StorefrontId,
    ) -> Result<MoveRecord, TenancyError> {
        let mut record = self.take(storefront).await?;
        let (id, token) = (record.id, record.lease);
        let result = self.drive::<M>(&mut record, true).await;
        self.give_back(id, token, result).await
    }

    /// Flips the directory to the target and records the move as switched, in one
    /// transaction of the shared database (both tables live there): no crash or lost
    /// reply can leave the directory pointing at the target while the move still says
    /// `cutover`, and a mover that lost its lease flips nothing.
    /// Returns the directory epoch the flip took.
    async fn switch(&self, record: &mut MoveRecord) -> Result<i64, TenancyError> {
        use sea_orm::TransactionTrait;
        let directory = self.tenancy.require_directory()?;
        record.updated_at = Utc::now();
        let txn = self.tenancy.shared().begin().await?;
        let epoch = directory
            .put_on(&txn, record.storefront, &record.target, TenantState::Active)
            .await?;
        super::store::save(&txn, record, self.opts.lease).await?;
        txn.commit().await?;
        let _ = directory.get(record.storefront).await;
        self.observed(record);
        Ok(epoch)
    }

    /// When the record has no barrier on it (a cutover that stopped between the flip and
    /// the barrier, or one from before the barrier existed), waits for every process to
    /// acknowledge the directory's current epoch (at least the flip's) and records it.
    pub(super) async fn ensure_acknowledged(
        &self,
        record: &mut MoveRecord,
    ) -> Result<(), TenancyError> {
        if record.progress.acknowledged_ms.is_some() {
            return Ok(());
        }
        let epoch = self.tenancy.require_directory()?.epoch().await?;
        self.await_acknowledged(record, epoch).await?;
        self.save(record).await
    }

    /// Waits until every process has acknowledged the flip at `epoch` (or its lease has run
    /// out), so that once the move reports `switched` no process serves the storefront
    /// from the side it left; records how long that took.
    pub(super) async fn await_acknowledged(
        &self,
        record: &mut MoveRecord,
        epoch: i64,
    ) -> Result<(), TenancyError> {
        let wait = self.tenancy.watch_options().barrier_wait;
        let barrier = crate::watch::barrier(self.tenancy.shared(), epoch, wait).await?;
        record.progress.acknowledged_ms =
            Some(u64::try_from(barrier.waited.as_millis()).unwrap_or(u64::MAX));
        tracing::info!(
            storefront = %record.storefront,
            epoch,
            waited_ms = barrier.waited.as_millis() as u64,
            behind = barrier.behind,
            "every process has the new placement"
        );
        Ok(())
    }

    /// Lets the target take the storefront's writes once the directory names it: with
    /// rollback enabled its guard is lifted (the triggers log every change, for a
    /// rollback); without, its capture is removed. Until then a process that already reads
    /// the new placement is refused with the fence error and retries, as on the source.
    ///
    /// Tried again (for up to the tenancy's fence wait) when it fails: until it succeeds
    /// no side takes the storefront's writes.
    pub(super) async fn open_target(
        &self,
        record: &MoveRecord,
        target: &Side,
        tables: &[TableMeta],
    ) -> Result<(), TenancyError> {
        let sf = record.storefront;
        let logging = record
            .progress
            .rollback_enabled
            .unwrap_or(self.opts.rollback_enabled);
        let mut backoff = crate::connection::fence::Backoff::new(self.tenancy.fence_wait());
        loop {
            let attempt = if logging {
                capture::unguard(target, sf).await
            } else {
                capture::remove(target, sf, tables).await
            };
            match attempt {
                Ok(()) => return Ok(()),
                Err(e) if backoff.may_retry() => {
                    tracing::warn!(storefront = %sf, "lifting the target guard failed, trying again: {e}");
                    backoff.pause().await;
                }
                Err(e) => {
                    return Err(move_err(
                        record,
                        format!("the directory names the target, but its guard could not be lifted (no side takes the storefront's writes until `resume` lifts it): {e}"),
                    ))
                }
            }
        }
    }

    /// Catches up until the pending changes can be replayed within the pause budget at the
    /// replay rate measured by the last pass; gives up after `converge_within`, once a
    /// window ends with the backlog no smaller than it began, with
    /// [`TenancyError::CannotConverge`], naming both rates, with nothing fenced.
    ///
    /// `Toward::Target` before a cutover (the source serves); `Toward::Source` before a
    /// rollback after one (the target serves, its changes go back onto the fenced source).
    pub(super) async fn converge(&self, run: &mut Run, toward: Toward) -> Result<(), TenancyError> {
        let started = Instant::now();
        let deadline = started
            .checked_add(self.opts.converge_within)
            .unwrap_or(started + Duration::from_secs(86_400 * 365));
        let budget_ms = u64::try_from(self.opts.pause_budget.as_millis()).unwrap_or(u64::MAX);
        // The replay rate of the last pass that replayed anything.
        let mut rate: Option<f64> = None;
        // Measured now: the record's may be hours old.
        let serving = match toward {
            Toward::Target => &run.source,
            Toward::Source => &run.target,
        };
        run.record.progress.lag = capture::lag(serving, run.record.storefront).await?;
        loop {
            let (applied_before, lag_before) =
                (run.record.progress.applied, run.record.progress.lag);
            let pass = Instant::now();
            // A bounded window, so the rates are measured often and the bound holds.
            let until = if pass < deadline {
                deadline.min(pass + PASS_WINDOW)
            } else {
                pass + PASS_WINDOW
            };
            match toward {
                Toward::Target => self.catch_up_until(run, false, Some(until)).await?,
                Toward::Source => self.catch_up_back(run, false, Some(until)).await?,
            }
            let seconds = pass.elapsed().as_secs_f64().max(1e-6);
            let applied = run.record.progress.applied - applied_before;
            let lag = run.record.progress.lag;
            if applied > 0 {
                rate = Some(applied as f64 / seconds);
            }
            let replays_per_sec = rate.unwrap_or(0.0);
            // Logged during the pass: what was replayed plus how much the backlog grew.
            let writes_per_sec = (applied + lag).saturating_sub(lag_before) as f64 / seconds;
            let drain_ms = match rate {
                _ if lag == 0 => 0,
                Some(r) => (lag as f64 / r * 1000.0).ceil() as u64,
                // Nothing replayed yet to measure: a backlog under `max_lag` is what the
                // catch-up itself calls small.
                None if lag < self.opts.max_lag => 0,
                None => u64::MAX,
            };
            if drain_ms <= budget_ms {
                return Ok(());
            }
            // Past the deadline it goes on only while the backlog shrinks, and by more than
            // a tenth of the replay rate (writers that take nine tenths of what the
            // catch-up replays would keep it going for ten times the backlog's drain).
            let shrinking = lag < lag_before && writes_per_sec < 0.9 * replays_per_sec;
            if Instant::now() >= deadline && !shrinking {
                return Err(TenancyError::CannotConverge {
                    step: match toward {
                        Toward::Target => "cutover",
                        Toward::Source => "rollback",
                    },
                    storefront: run.record.storefront.to_string(),
                    lag,
                    writes_per_sec,
                    replays_per_sec,
                    drain_ms,
                    budget_ms,
                    tried_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
                });
            }
            tracing::debug!(
                storefront = %run.record.storefront,
                lag, writes_per_sec, replays_per_sec, drain_ms,
                "the backlog does not fit the pause budget yet; catching up again"
            );
        }
    }

    /// Fences the source, drains and checks the last changes, flips the directory.
    pub(super) async fn fence_and_switch(&self, run: &mut Run) -> Result<(), TenancyError> {
        let sf = run.record.storefront;
        let directory = self.tenancy.require_directory()?;
        if directory
            .get(sf)
            .await?
            .is_some_and(|r| r.placement == run.record.target)
        {
            // The flip happened (a record from before flips were transactional): the move
            // is switched; running the cutover again would replay the fenced source over
            // the target's newer writes.
            run.record.cutover_at.get_or_insert_with(Utc::now);
            self.advance(&mut run.record, Phase::Switched).await?;
            self.open_target(&run.record, &run.target, &run.tables)
                .await?;
            return self.ensure_acknowledged(&mut run.record).await;
        }
        // Capture on the target is there since `prepare` (it carries the target guard), so
        // once the target serves every change there is logged. It is not installed again
        // here: on MySQL that drops and creates each trigger, a moment with none.
        // Open this process's pool for the target before the pause, so the first statement
        // after the flip does not wait for a new connection.
        if let (Placement::Database { url }, Some(pools)) =
            (&run.record.target, self.tenancy.pools())
        {
            let _ = pools.lease(url, sf).await;
        }
        // Bring the lag down before fencing, until what is left fits the pause budget.
        self.converge(run, Toward::Target).await?;
        // Check the rows changed since the full validation now, while writes flow, so that
        // behind the fence only rows changed after the last catch-up round need checking.
        if self.opts.validation_enabled {
            let round = run.record.progress.round;
            let since = run.record.progress.validated_round.unwrap_or(0);
            if differs_only_where_moving(&run.source, &run.target, run, since, round).await? {
                run.record.progress.validated_round = Some(round);
            }
        }
        // The check above ran while writes flowed: bring what they logged meanwhile within
        // the pause budget again before fencing.
        self.converge(run, Toward::Target).await?;
        // A full lease for the fenced part: behind the fence nothing is saved.
        self.renew(&run.record).await?;
        let fenced_at = Instant::now();
        capture::set_fence(&run.source, sf, true).await?;
        let ms = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        let mut steps = crate::mover::PauseSteps {
            fence_ms: ms(fenced_at.elapsed()),
            ..Default::default()
        };
        let result = async {
            let step = Instant::now();
            self.catch_up(run, true).await?;
            steps.drain_ms = ms(step.elapsed());
            let step = Instant::now();
            if self.opts.validation_enabled {
                let since = run.record.progress.validated_round.unwrap_or(0);
                let changed = capture::keys_since(&run.source, sf, &run.kinds, since).await?;
                validate::changed_rows(&run.source, &run.target, &run.tables, sf, &changed).await?;
            }
            // Inserts on the target will draw keys from its own sequences.
            transfer::advance_sequences(&run.target, &run.tables).await?;
            steps.check_ms = ms(step.elapsed());
            self.halt(&run.record, HaltAt::MidCutover)?;
            // The source stays fenced from here on: a process with a stale directory cache
            // is refused there, refreshes, and finds the target.
            run.record.phase = Phase::Switched;
            run.record.error = None;
            run.record.cutover_at = Some(Utc::now());
            run.record.progress.pause_ms =
                Some(u64::try_from(fenced_at.elapsed().as_millis()).unwrap_or(u64::MAX));
            run.record.progress.rollback_enabled = Some(self.opts.rollback_enabled);
            let step = Instant::now();
            let epoch = self.switch(&mut run.record).await?;
            steps.flip_ms = ms(step.elapsed());
            self.halt(&run.record, HaltAt::BeforeUnguard)?;
            let step = Instant::now();
            self.open_target(&run.record, &run.target, &run.tables)
                .await?;
            steps.open_ms = ms(step.elapsed());
            run.record.progress.pause_steps = Some(steps);
            tracing::info!(
                storefront = %sf,
                fence_ms = steps.fence_ms,
                drain_ms = steps.drain_ms,
                check_ms = steps.check_ms,
                flip_ms = steps.flip_ms,
                open_ms = steps.open_ms,
                "switched: the target takes the storefront's writes"
            );
            self.await_acknowledged(&mut run.record, epoch).await?;
            // Recorded so a resume does not wait again; if it is lost, a resume does.
            if let Err(e) = self.save(&mut run.record).await {
                tracing::warn!(storefront = %sf, "recording the barrier failed: {e}");
            }
            self.halt(&run.record, HaltAt::AfterFlip)?;
            self.halt(&run.record, HaltAt::After(Phase::Cutover))
        }
        .await;
        match result {
            Ok(()) => Ok(()),
            Err(e @ TenancyError::Halted { .. }) if run.record.phase == Phase::Cutover => Err(e),
            Err(e) => {
                // Which side serves is what the directory says, read back now: the source
                // may serve again only if the flip did not happen.
                let flipped = directory
                    .get(sf)
                    .await
                    .map(|r| r.is_some_and(|r| r.placement == run.record.target));
                match flipped {
                    // Switched (the record says so too: same transaction); the source stays
                    // fenced.
                    Ok(true) => run.record.phase = Phase::Switched,
                    Ok(false) if self.renew(&run.record).await.is_err() => {
                        // Another mover holds the move now (it may be cutting over): the
                        // fence is its to lower.
                        run.record.phase = Phase::Cutover;
                        run.record.cutover_at = None;
                    }
                    Ok(false) => {
                        // Serve from the source again while the operator looks at the problem.
                        run.record.phase = if matches!(e, TenancyError::Validation { .. }) {
                            Phase::CatchUp
                        } else {
                            Phase::Cutover
                        };
                        run.record.cutover_at = None;
                        run.record.progress.pause_ms = None;
                        run.record.progress.pause_steps = None;
                        run.record.progress.rollback_enabled = None;
                        let _ = capture::set_fence(&run.source, sf, false).await;
                    }
                    // Unknown: the fence stays up (no side takes writes rather than two);
                    // `resume` reads the directory again and finishes either way.
                    Err(_) => {
                        run.record.phase = Phase::Cutover;
                        run.record.cutover_at = None;
                    }
                }
                Err(e)
            }
        }
    }
}

/// Compares, while writes still flow on `from` (the serving side), the rows changed there
/// after round `since` with `to`'s: whether every row that differs changed again after
/// round `round` (the last catch-up's), so that the fenced check need only cover the rows
/// changed after `round`. A row may differ here only because it changed again: then it has
/// a changelog entry newer than `round` (read after the comparison, so it is seen). Any
/// other difference answers `false`, and the fenced check covers everything since `since`
/// (and fails).
pub(super) async fn differs_only_where_moving(
    from: &Side,
    to: &Side,
    run: &Run,
    since: i64,
    round: i64,
) -> Result<bool, TenancyError> {
    let sf = run.record.storefront;
    let changed = capture::keys_since(from, sf, &run.kinds, since).await?;
    let mut differing = BTreeMap::new();
    for meta in &run.tables {
        if let Some(keys) = changed.get(&meta.name) {
            let diff = validate::differing_keys(from, to, meta, sf, keys).await?;
            if !diff.is_empty() {
                differing.insert(meta.name.clone(), diff);
            }
        }
    }
    if differing.is_empty() {
        return Ok(true);
    }
    let moving = capture::keys_since(from, sf, &run.kinds, round).await?;
    Ok(differing.iter().all(|(table, keys)| {
        moving
            .get(table)
            .is_some_and(|still| keys.iter().all(|k| still.contains(k)))
    }))
}
