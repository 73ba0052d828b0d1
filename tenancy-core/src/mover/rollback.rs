//! Rollback: before the cutover the target is dropped; after it, the target's changes are
//! replayed onto the source and the directory flips back.

use std::time::Duration;

use super::{
    capture,
    cutover::{differs_only_where_moving, Toward},
    move_err, side, transfer, validate, MoveRecord, Mover, Phase, Run,
};
use crate::{Placement, StorefrontId, TenancyError, TenantState};

impl Mover {
    /// Rolls the move back. Before the cutover the target is dropped; after it, the changes
    /// made on the target since the cutover are replayed onto the source, the directory
    /// flips back and then the target is dropped.
    pub async fn rollback(&self, storefront: StorefrontId) -> Result<MoveRecord, TenancyError> {
        let record = self.take(storefront).await?;
        let (id, token) = (record.id, record.lease);
        let result = self.rollback_held(record).await;
        self.give_back(id, token, result).await
    }

    /// [`Self::rollback`] of a move whose lease this mover holds.
    pub(super) async fn rollback_held(
        &self,
        mut record: MoveRecord,
    ) -> Result<MoveRecord, TenancyError> {
        let storefront = record.storefront;
        if record.phase == Phase::Completing {
            return Err(move_err(
                &record,
                "completing the move has begun (the target's change capture may be gone, so its writes could not be replayed onto the source): finish it with `complete`, then move the storefront back if needed",
            ));
        }
        let directory = self.tenancy.require_directory()?;
        let serving = directory.get(storefront).await?.map(|r| r.placement);
        let after_cutover =
            record.phase == Phase::Switched || serving.as_ref() == Some(&record.target);
        // Whether the target logged its changes was decided by the cutover and recorded.
        let enabled = record
            .progress
            .rollback_enabled
            .unwrap_or(self.opts.rollback_enabled);
        if after_cutover && !enabled {
            return Err(move_err(
                &record,
                "the move was cut over with rollback disabled (the target logged no changes to replay); move the storefront back instead",
            ));
        }
        record.phase = Phase::RollingBack;
        record.error = None;
        self.save(&mut record).await?;
        let mut warnings = Vec::new();
        let opened = self.open(record.clone()).await;
        match opened {
            Ok(mut run) => {
                let result = self.reverse(&mut run, after_cutover, &mut warnings).await;
                run.record.error = None;
                record = run.record.clone();
                let target_file = match (&run.target.placement, run.target.backend) {
                    (Placement::Database { url }, sea_orm::DbBackend::Sqlite) => {
                        side::sqlite_file(url)
                    }
                    _ => None,
                };
                run.close().await;
                if let (Ok(()), Some(file)) = (&result, target_file) {
                    crate::backend::database::remove_sqlite_file(&file);
                }
                if let Err(e) = result {
                    if after_cutover && matches!(e, TenancyError::CannotConverge { .. }) {
                        // Nothing was fenced: the target serves as before, and the move is
                        // still switched (to be rolled back later, or completed).
                        record.phase = Phase::Switched;
                    }
                    record.error = Some(e.to_string());
                    self.save(&mut record).await?;
                    return Err(e);
                }
            }
            Err(e) if !after_cutover => {
                // The target is unreachable: restore the source alone; the target's leftovers
                // are reported for the operator.
                warnings.push(format!(
                    "target not reachable, its storage was left behind: {e}"
                ));
                let source = side::open_source(&self.tenancy, &record.source).await?;
                let tables = side::tables(&self.tenancy, &source, &source).await?;
                let _ = capture::set_fence(&source, storefront, false).await;
                capture::remove(&source, storefront, &tables).await?;
                source.close().await;
                let epoch = directory
                    .flip(storefront, &record.source, TenantState::Active)
                    .await?;
                if record.cutover_at.is_some() {
                    // A rollback that had flipped back, resumed: the target served, so
                    // every process must have let go of it.
                    self.await_acknowledged(&mut record, epoch).await?;
                }
            }
            Err(e) => {
                record.error = Some(e.to_string());
                self.save(&mut record).await?;
                return Err(e);
            }
        }
        record.phase = Phase::RolledBack;
        record.error = (!warnings.is_empty()).then(|| warnings.join("; "));
        self.save(&mut record).await?;
        Ok(record)
    }

    /// Undoes the move on opened sides: after the cutover the target's changes go back
    /// to the source first.
    async fn reverse(
        &self,
        run: &mut Run,
        after_cutover: bool,
        warnings: &mut Vec<String>,
    ) -> Result<(), TenancyError> {
        let sf = run.record.storefront;
        let directory = self.tenancy.require_directory()?;
        if after_cutover {
            // The target serves: bring its changes back onto the (fenced) source until what is
            // left fits the pause budget, as before a cutover, and compare them while it
            // still serves; then fence it, replay the rest, check the rows changed since,
            // and flip back. An earlier attempt that stopped behind the target's fence left
            // nothing to converge with (no writes reach the target): it drains at once.
            let fenced = capture::fence_up(&run.target, sf).await?;
            if !fenced {
                self.converge(run, Toward::Source).await?;
            }
            let mut since = 0;
            if self.opts.validation_enabled && !fenced {
                let round = run.record.progress.round;
                if differs_only_where_moving(&run.target, &run.source, run, 0, round).await? {
                    since = round;
                }
                self.converge(run, Toward::Source).await?;
            }
            // A full lease for the fenced part.
            self.renew(&run.record).await?;
            capture::set_fence(&run.target, sf, true).await?;
            self.catch_up_back(run, true, None).await?;
            // The source takes inserts again: past the keys the target handed out.
            transfer::advance_sequences(&run.source, &run.tables).await?;
            if self.opts.validation_enabled {
                let changed = capture::keys_since(&run.target, sf, &run.kinds, since).await?;
                let checked =
                    validate::changed_rows(&run.target, &run.source, &run.tables, sf, &changed)
                        .await;
                if let Err(e) = checked {
                    if matches!(e, TenancyError::Validation { .. })
                        && self.renew(&run.record).await.is_ok()
                    {
                        // The target serves again while the operator looks at the
                        // difference; any other error (or a lost lease: another mover acts
                        // now) leaves it fenced.
                        let _ = capture::set_fence(&run.target, sf, false).await;
                    }
                    return Err(e);
                }
            }
        }
        let epoch = directory
            .flip(sf, &run.record.source, TenantState::Active)
            .await?;
        // The source takes the storefront's writes again from the flip on, as the target
        // does after a cutover: the pause ends here, not after the barrier below.
        capture::set_fence(&run.source, sf, false).await?;
        if run.record.cutover_at.is_some() {
            // The target served: stale caches may still point at it. Its fence stays up
            // (and it is kept) until every process has the source again: with the directory
            // watched, once every process has acknowledged the flip back (the barrier);
            // without, once the caches have expired (the directory's for one TTL, a
            // connection's for one more). Also when a rollback that had flipped back is
            // resumed.
            if self.tenancy.watch_options().enabled {
                self.await_acknowledged(&mut run.record, epoch).await?;
            } else {
                self.wait_holding(
                    &run.record,
                    self.tenancy.directory_ttl() * 2 + Duration::from_millis(100),
                )
                .await?;
            }
        }
        capture::remove(&run.source, sf, &run.tables).await?;
        if let Err(e) = self
            .abandon(&run.target, &run.source, &run.tables, sf)
            .await
        {
            warnings.push(format!("the target's storage was left behind: {e}"));
        }
        Ok(())
    }
}
