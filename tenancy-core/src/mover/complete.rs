//! Completion: once the retention window has passed, the old side's copy is deleted.

use std::time::Duration;

use chrono::Utc;

use super::{
    capture, move_err,
    side::{self, Side, TableMeta},
    transfer, HaltAt, MoveRecord, Mover, Phase,
};
use crate::{Placement, StorefrontId, TenancyError};

impl Mover {
    /// Deletes the storefront's copy on a side that no longer serves it.
    pub(super) async fn abandon(
        &self,
        side: &Side,
        other: &Side,
        tables: &[TableMeta],
        sf: StorefrontId,
    ) -> Result<(), TenancyError> {
        let delete_rows = matches!(side.placement, Placement::Shared)
            || side.backend == sea_orm::DbBackend::Sqlite;
        if !delete_rows {
            // Never a container that holds the other side's tables or the shared ones
            // (a move that should have been refused at its start).
            self.refuse_shared_sides(sf, other, side).await?;
            super::machine::refuse_foreign_rows(side, tables, sf).await?;
            // The schema or database is dropped whole (its triggers with it).
            return self.tenancy.drop_container(sf, &side.placement).await;
        }
        // The rows go behind the fence, deleted as the mover: a process that still writes
        // there is refused (and retries on the side that serves) instead of having its
        // write acknowledged and then deleted. The capture goes last. (A SQLite file is
        // attached to the mover's connection; it is unlinked once closed.)
        // The mover enters from the guard the side has: none on an old source, the target
        // guard on a target abandoned before its cutover.
        let guard = match capture::set_fence(side, sf, true).await {
            Ok(()) => capture::current_guard(side, sf).await?,
            Err(_) => None,
        };
        transfer::clear(side, tables, sf, guard).await?;
        capture::remove(side, sf, tables).await
    }

    /// Finishes a switched move: deletes the source copy and the target's capture. Refused
    /// before the retention window has passed, unless `force`. Once begun, the move can no
    /// longer be rolled back; a `complete` that stopped halfway is finished by calling it
    /// (or `resume`) again.
    pub async fn complete(
        &self,
        storefront: StorefrontId,
        force: bool,
    ) -> Result<MoveRecord, TenancyError> {
        let record = self.take(storefront).await?;
        let (id, token) = (record.id, record.lease);
        let result = self.complete_held(record, force).await;
        self.give_back(id, token, result).await
    }

    /// [`Self::complete`] of a move whose lease this mover holds.
    pub(super) async fn complete_held(
        &self,
        mut record: MoveRecord,
        force: bool,
    ) -> Result<MoveRecord, TenancyError> {
        let storefront = record.storefront;
        if !matches!(record.phase, Phase::Switched | Phase::Completing) {
            return Err(move_err(
                &record,
                "only a move that has cut over can be completed",
            ));
        }
        if let (Phase::Switched, Some(at)) = (record.phase, record.cutover_at) {
            let elapsed = (Utc::now() - at).to_std().unwrap_or_default();
            if !force && elapsed < self.opts.retention {
                return Err(move_err(
                    &record,
                    format!(
                        "the retention window ({}) has not passed: {} left (complete with force, `--force` on the command line, to complete now)",
                        plain(self.opts.retention),
                        plain(self.opts.retention - elapsed)
                    ),
                ));
            }
        }
        // No process may still write to the source when its copy goes. With the directory
        // watched, the cutover's barrier already saw every process let go of it. Without,
        // a directory cache entry lives one TTL and a connection's placement one more
        // (`TenantConnection` resolves again after that), so by the cutover plus twice the
        // TTL every process has let go. (All processes of a fleet share the configured
        // `directory_cache` and `directory_watch`.)
        if record.cutover_at.is_some() && self.tenancy.watch_options().enabled {
            // A cutover that stopped before its barrier: wait for it now.
            self.ensure_acknowledged(&mut record).await?;
        }
        if let (Some(at), false) = (record.cutover_at, self.tenancy.watch_options().enabled) {
            let settle = self.tenancy.directory_ttl() * 2 + Duration::from_millis(100);
            let since = (Utc::now() - at).to_std().unwrap_or_default();
            if since < settle {
                self.wait_holding(&record, settle - since).await?;
            }
        }
        // Recorded before anything is deleted: from here a rollback is refused.
        if record.phase == Phase::Switched {
            record.phase = Phase::Completing;
            record.error = None;
            self.save(&mut record).await?;
        }
        // A completion stopped after the source database was dropped: only the target's
        // capture may be left (it went first), and the record.
        if let Placement::Database { url } = &record.source {
            if record.phase == Phase::Completing
                && record.progress.deleting_source == Some(true)
                && !crate::backend::database::database_exists(
                    storefront,
                    &self.tenancy.direct_url(url),
                )
                .await?
            {
                let mut target = side::open_source(&self.tenancy, &record.target).await?;
                target.holder = record.epoch;
                let removed = async {
                    let tables = side::tables(&self.tenancy, &target, &target).await?;
                    capture::claim(&target, storefront).await?;
                    capture::remove(&target, storefront, &tables).await
                }
                .await;
                target.close().await;
                removed?;
                record.phase = Phase::Completed;
                record.error = None;
                self.save(&mut record).await?;
                return Ok(record);
            }
        }
        let run = self.open(record.clone()).await?;
        let sf = storefront;
        let result = async {
            capture::remove(&run.target, sf, &run.tables).await?;
            self.halt(&record, HaltAt::MidComplete)?;
            if record.progress.deleting_source != Some(true) {
                record.progress.deleting_source = Some(true);
                self.save(&mut record).await?;
            }
            self.abandon(&run.source, &run.target, &run.tables, sf)
                .await?;
            self.halt(&record, HaltAt::AfterAbandon)
        }
        .await;
        let sqlite_file = match (&run.source.placement, run.source.backend) {
            (Placement::Database { url }, sea_orm::DbBackend::Sqlite) => side::sqlite_file(url),
            _ => None,
        };
        run.close().await;
        result?;
        if let Some(file) = sqlite_file {
            crate::backend::database::remove_sqlite_file(&file);
        }
        record.phase = Phase::Completed;
        record.error = None;
        self.save(&mut record).await?;
        Ok(record)
    }
}

/// A duration as an operator writes one in the configuration: `24h`, `1h 30m`, `45s`
/// (whole seconds).
fn plain(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, s % 3600 / 60, s % 60);
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(format!("{h}h"));
    }
    if m > 0 {
        parts.push(format!("{m}m"));
    }
    if sec > 0 || parts.is_empty() {
        parts.push(format!("{sec}s"));
    }
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_the_configuration_writes_them() {
        assert_eq!(plain(Duration::from_secs(24 * 3600)), "24h");
        assert_eq!(plain(Duration::from_secs(5400)), "1h 30m");
        assert_eq!(plain(Duration::from_millis(45_900)), "45s");
        assert_eq!(plain(Duration::ZERO), "0s");
    }
}
