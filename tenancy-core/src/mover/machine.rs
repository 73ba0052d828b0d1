//! The state machine: `start` and `resume` drive a move through prepare, capture, copy,
//! catch-up and validate to `ready` (and on into the cutover), saving the record after
//! every step so a crash resumes where it stopped.

use std::collections::{BTreeMap, BTreeSet};

use chrono::Utc;
use sea_orm_migration::MigratorTrait;

use super::{
    capture, move_err,
    side::{self, Key, KeyKind, Side, TableMeta},
    store, transfer, validate, HaltAt, MoveProgress, MoveRecord, Mover, Phase, Run, TableProgress,
};
use crate::{Placement, StorefrontId, TenancyError};

impl Mover {
    /// Starts moving `storefront` to `target` and runs the move until it is ready for the
    /// cutover (copied, caught up and validated).
    pub async fn start<M: MigratorTrait>(
        &self,
        storefront: StorefrontId,
        target: Placement,
    ) -> Result<MoveRecord, TenancyError> {
        let directory = self.tenancy.require_directory()?;
        if self.tenancy.registry().tables().is_empty() {
            // Fail closed: a move that knows no scoped table would copy nothing.
            return Err(TenancyError::Move {
                storefront: storefront.to_string(),
                phase: "start".into(),
                reason: "no tenant-scoped table is registered (link the entities crate, or pass its registry)".into(),
            });
        }
        // Before anything is recorded: a role the policies bind would copy no rows.
        crate::rls::refuse_bound_operator(
            self.tenancy.shared(),
            &crate::rls::current_schema(self.tenancy.shared()).await?,
            self.tenancy.row_level_security().is_some(),
            "moving a storefront",
        )
        .await?;
        store::install(self.tenancy.shared()).await?;
        if let Some(existing) = store::latest(self.tenancy.shared(), storefront).await? {
            if !existing.phase.is_finished() {
                return Err(move_err(
                    &existing,
                    format!(
                        "a move to {} is already in progress (resume or roll it back)",
                        existing.target
                    ),
                ));
            }
        }
        let current =
            directory
                .get(storefront)
                .await?
                .ok_or_else(|| TenancyError::UnknownStorefront {
                    storefront: storefront.to_string(),
                })?;
        if current.placement == target {
            return Err(TenancyError::Move {
                storefront: storefront.to_string(),
                phase: "start".into(),
                reason: format!("the storefront is already in {target}"),
            });
        }
        if current.placement.tenant_type() == target.tenant_type()
            && current.placement.tenant_type() == crate::TenantType::Shared
        {
            return Err(TenancyError::Move {
                storefront: storefront.to_string(),
                phase: "start".into(),
                reason: "shared to shared is not a move".into(),
            });
        }
        if let Some(schema) = target.schema() {
            crate::tenant::validate_identifier(schema)?;
        }
        self.refuse_same_tables(storefront, &current.placement, &target)
            .await?;
        let now = Utc::now();
        let mut record = MoveRecord {
            id: uuid::Uuid::new_v4(),
            storefront,
            source: current.placement.clone(),
            target,
            phase: Phase::Prepare,
            error: None,
            progress: MoveProgress {
                guarded: Some(true),
                ..MoveProgress::default()
            },
            created_at: now,
            updated_at: now,
            cutover_at: None,
            lease: Some(uuid::Uuid::new_v4()),
            epoch: 0,
        };
        // The starter's token: the version a new record has.
        record.epoch = super::epoch(&record, 0);
        self.claim(&record).await?;
        let (id, token) = (record.id, record.lease);
        let result = self.drive::<M>(&mut record, false).await;
        self.give_back(id, token, result).await
    }

    /// Refuses a target whose tables are the source's, however its URL spells them (a host
    /// name and its address, a pooler and its server, a schema named as the shared
    /// tables'), or which another storefront's placement names: the move would clear the
    /// storefront's live rows there, and completing it would drop them. A target that
    /// cannot be opened yet does not exist yet, so it is not the source.
    async fn refuse_same_tables(
        &self,
        storefront: StorefrontId,
        source: &Placement,
        target: &Placement,
    ) -> Result<(), TenancyError> {
        let refuse = |reason: String| refused_at_start(storefront, reason);
        let directory = self.tenancy.require_directory()?;
        if let Placement::Database { url } = target {
            let key = |p: &Placement| match p {
                Placement::Database { url } => Some(crate::servers::same_database_key(
                    &self.tenancy.direct_url(url),
                )),
                _ => None,
            };
            let wanted = crate::servers::same_database_key(&self.tenancy.direct_url(url));
            // A database another storefront's unfinished move copies from or into (a
            // source kept for rollback among them) is that storefront's too.
            for other in store::all(self.tenancy.shared()).await? {
                if other.storefront != storefront
                    && !other.phase.is_finished()
                    && (key(&other.source).as_ref() == Some(&wanted)
                        || key(&other.target).as_ref() == Some(&wanted))
                {
                    return Err(refuse(format!(
                        "{target} is in storefront {}'s unfinished move (phase {})",
                        other.storefront, other.phase
                    )));
                }
            }
            for other in directory.list().await? {
                if other.storefront == storefront {
                    continue;
                }
                if let Placement::Database { url: theirs } = &other.placement {
                    if crate::servers::same_database_key(&self.tenancy.direct_url(theirs)) == wanted
                    {
                        return Err(refuse(format!(
                            "{target} is storefront {}'s database",
                            other.storefront
                        )));
                    }
                }
            }
        }
        if let Placement::Schema { schema } = target {
            // (MySQL folds a schema's name as it may a database's.)
            let same = |theirs: &str| {
                theirs == schema
                    || theirs.eq_ignore_ascii_case(schema)
                        && self.tenancy.shared().get_database_backend() == sea_orm::DbBackend::MySql
            };
            for other in directory.list().await? {
                if other.storefront != storefront {
                    if let Some(theirs) = other.placement.schema() {
                        if same(theirs) {
                            return Err(refuse(format!(
                                "{target} is storefront {}'s schema",
                                other.storefront
                            )));
                        }
                    }
                }
            }
            for other in store::all(self.tenancy.shared()).await? {
                let theirs = [other.source.schema(), other.target.schema()];
                if other.storefront != storefront
                    && !other.phase.is_finished()
                    && theirs.into_iter().flatten().any(same)
                {
                    return Err(refuse(format!(
                        "{target} is in storefront {}'s unfinished move (phase {})",
                        other.storefront, other.phase
                    )));
                }
            }
        }
        let opened = side::open(&self.tenancy, source, target).await;
        let (source_side, target_side) = match opened {
            Ok(sides) => sides,
            // Only a target that does not exist yet may be unopenable: it is not the
            // source then. Anything else fails closed.
            Err(e) => {
                let missing = match target {
                    Placement::Database { url } => !crate::backend::database::database_exists(
                        storefront,
                        &self.tenancy.direct_url(url),
                    )
                    .await
                    .unwrap_or(false),
                    _ => false,
                };
                return if missing { Ok(()) } else { Err(e) };
            }
        };
        let checked = self
            .refuse_shared_sides(storefront, &source_side, &target_side)
            .await;
        source_side.close().await;
        target_side.close().await;
        checked
    }

    /// The check of [`Self::refuse_same_tables`] on open sides (also made by `prepare`
    /// before it clears anything on the target): the two sides' tables must differ, and
    /// neither side that a move may drop whole (a database, a schema) may hold the other
    /// side's tables or the shared tables.
    pub(super) async fn refuse_shared_sides(
        &self,
        storefront: StorefrontId,
        source: &Side,
        target: &Side,
    ) -> Result<(), TenancyError> {
        let refuse = |reason: String| refused_at_start(storefront, reason);
        if side::identity(source).await? == side::identity(target).await? {
            return Err(refuse(format!(
                "{} holds the same tables as {} (one database, spelled two ways): moving there would clear the storefront's live rows",
                target.placement, source.placement
            )));
        }
        let shared = side::open_source(&self.tenancy, &Placement::Shared).await?;
        let result = async {
            for (side, other) in [(target, source), (source, target)] {
                if matches!(side.placement, Placement::Shared) {
                    continue;
                }
                for (theirs, what) in [
                    (other, "the other side's tables"),
                    (&shared, "the shared tables"),
                ] {
                    if side::contains(side, theirs).await? {
                        return Err(refuse(format!(
                            "{} holds {what}: a move drops it whole once it is done with it",
                            side.placement
                        )));
                    }
                }
            }
            Ok(())
        }
        .await;
        shared.close().await;
        result
    }

    /// Records the new move and marks the storefront moving, in one transaction that only
    /// commits if the storefront was active: of two movers starting at once, one wins.
    async fn claim(&self, record: &MoveRecord) -> Result<(), TenancyError> {
        use sea_orm::TransactionTrait;
        let directory = self.tenancy.require_directory()?;
        let txn = self.tenancy.shared().begin().await?;
        if !directory.claim_for_move(&txn, record.storefront).await? {
            return Err(move_err(
                record,
                "another move of this storefront has just started (or the storefront is not active)",
            ));
        }
        store::insert(&txn, record, self.opts.lease).await?;
        txn.commit().await?;
        let _ = directory.get(record.storefront).await;
        Ok(())
    }

    /// Goes on with the storefront's move from where it stopped: up to `ready`, or through
    /// the cutover if it was cutting over, or through the rollback if it was rolling back.
    pub async fn resume<M: MigratorTrait>(
        &self,
        storefront: StorefrontId,
    ) -> Result<MoveRecord, TenancyError> {
        let mut record = self.take(storefront).await?;
        let (id, token) = (record.id, record.lease);
        let result = match record.phase {
            Phase::RollingBack => self.rollback_held(record).await,
            Phase::Completing => self.complete_held(record, true).await,
            Phase::Cutover => self.drive::<M>(&mut record, true).await,
            _ => self.drive::<M>(&mut record, false).await,
        };
        self.give_back(id, token, result).await
    }

    pub(super) async fn drive<M: MigratorTrait>(
        &self,
        record: &mut MoveRecord,
        through_cutover: bool,
    ) -> Result<MoveRecord, TenancyError> {
        let result = self.drive_inner::<M>(record, through_cutover).await;
        if let Err(e) = &result {
            if !matches!(e, TenancyError::Halted { .. }) {
                record.error = Some(e.to_string());
                let _ = self.save(record).await;
            }
        }
        result.map(|()| record.clone())
    }

    async fn drive_inner<M: MigratorTrait>(
        &self,
        record: &mut MoveRecord,
        through_cutover: bool,
    ) -> Result<(), TenancyError> {
        if record.phase == Phase::Prepare {
            self.prepare::<M>(record).await?;
        }
        if record.phase == Phase::Switched {
            // A cutover that stopped between the flip and lifting the target guard: lift it
            // (the target serves, so its guard must not refuse the storefront's writes).
            // Only the target is needed: the source may be gone or unreachable.
            let mut target = side::open_source(&self.tenancy, &record.target).await?;
            target.holder = record.epoch;
            let opened = match side::tables(&self.tenancy, &target, &target).await {
                Ok(tables) => match capture::claim(&target, record.storefront).await {
                    Ok(()) => self.open_target(record, &target, &tables).await,
                    Err(e) => Err(e),
                },
                Err(e) => Err(e),
            };
            target.close().await;
            opened?;
            if record.error.take().is_some() {
                self.save(record).await?;
            }
            // Stopped before every process had acknowledged the flip: wait for them now.
            return self.ensure_acknowledged(record).await;
        }
        if record.phase >= Phase::Switched {
            return Ok(());
        }
        let mut run = self.open(record.clone()).await?;
        let result = self.phases(&mut run, through_cutover).await;
        *record = run.record.clone();
        run.close().await;
        result
    }

    pub(super) async fn open(&self, record: MoveRecord) -> Result<Run, TenancyError> {
        let (mut source, mut target) = side::open(&self.tenancy, &record.source, &record.target)
            .await
            .map_err(|e| move_err(&record, e.to_string()))?;
        // This mover's fencing token goes into both sides' fence rows first: from here a
        // mover that held the move before (and lost its lease) can act on neither.
        source.holder = record.epoch;
        target.holder = record.epoch;
        let claimed = match capture::claim(&source, record.storefront).await {
            Ok(()) => capture::claim(&target, record.storefront).await,
            Err(e) => Err(e),
        };
        if let Err(e) = claimed {
            source.close().await;
            target.close().await;
            return Err(e);
        }
        let tables = side::tables(&self.tenancy, &source, &target)
            .await
            .map_err(|e| move_err(&record, e.to_string()))?;
        let kinds = tables.iter().map(|t| (t.name.clone(), t.kind)).collect();
        Ok(Run {
            record,
            source,
            target,
            tables,
            kinds,
        })
    }

    async fn prepare<M: MigratorTrait>(&self, record: &mut MoveRecord) -> Result<(), TenancyError> {
        let sf = record.storefront;
        self.tenancy.create_container(sf, &record.target).await?;
        self.tenancy
            .migrate_placement::<M>(sf, &record.target)
            .await?;
        // The target guard goes up before anything is written there: until the cutover the
        // database refuses every write of the storefront on the target but the mover's.
        // Leftovers of an earlier, abandoned move (an existing schema or database, or rows
        // in the shared tables) would be kept by the copy, which leaves rows already on the
        // target alone: the storefront's rows there are cleared next. The target serves
        // nobody (the claim marked the storefront moving, the directory names the source).
        // Clearing is destructive: only while this mover holds the move (a mover that
        // stalled here past its lease must not clear a target another one cut over to),
        // and never a side the directory names.
        self.renew(record).await?;
        let directory = self.tenancy.require_directory()?;
        if directory
            .get(sf)
            .await?
            .is_some_and(|r| r.placement == record.target)
        {
            return Err(super::move_err(
                record,
                "the directory names the target already: it serves, and is not prepared again",
            ));
        }
        let (source, mut target) =
            side::open(&self.tenancy, &record.source, &record.target).await?;
        target.holder = record.epoch;
        let tables = side::tables(&self.tenancy, &source, &target).await;
        let cleared = match &tables {
            Ok(tables) => {
                async {
                    // Again, on the sides about to be written: the check at start may have
                    // seen a target that did not exist yet.
                    self.refuse_shared_sides(sf, &source, &target).await?;
                    refuse_foreign_rows(&target, tables, sf).await?;
                    capture::claim(&target, sf).await?;
                    capture::install(&target, sf, tables, capture::Guard::Target).await?;
                    capture::guard_target(&target, sf).await?;
                    transfer::clear(&target, tables, sf, Some(capture::Guard::Target)).await
                }
                .await
            }
            Err(_) => Ok(()),
        };
        target.close().await;
        source.close().await;
        tables?;
        cleared?;
        record.progress.guarded = Some(true);
        // The storefront was marked moving by the claim that recorded the move; writing the
        // directory again here (after slow migrations) could undo a rollback that ran
        // meanwhile.
        self.advance(record, Phase::Capture).await
    }

    async fn phases(&self, run: &mut Run, through_cutover: bool) -> Result<(), TenancyError> {
        loop {
            match run.record.phase {
                Phase::Capture => {
                    capture::install(
                        &run.source,
                        run.record.storefront,
                        &run.tables,
                        capture::Guard::Open,
                    )
                    .await?;
                    let mut tables = Vec::new();
                    for meta in &run.tables {
                        tables.push(TableProgress {
                            table: meta.name.clone(),
                            rows: count(&run.source, meta, run.record.storefront).await?,
                            copied: 0,
                            done: false,
                        });
                    }
                    run.record.progress.tables = tables;
                    self.advance(&mut run.record, Phase::Copy).await?;
                }
                Phase::Copy => {
                    self.copy(run).await?;
                    self.advance(&mut run.record, Phase::CatchUp).await?;
                }
                Phase::CatchUp => {
                    self.catch_up(run, false).await?;
                    let next = if self.opts.validation_enabled {
                        Phase::Validate
                    } else {
                        Phase::Ready
                    };
                    self.advance(&mut run.record, next).await?;
                }
                Phase::Validate => {
                    self.validate(run).await?;
                    self.advance(&mut run.record, Phase::Ready).await?;
                }
                Phase::Ready if through_cutover => {
                    run.record.phase = Phase::Cutover;
                    self.save(&mut run.record).await?;
                }
                Phase::Cutover => {
                    self.fence_and_switch(run).await?;
                    return Ok(());
                }
                _ => return Ok(()),
            }
        }
    }

    async fn copy(&self, run: &mut Run) -> Result<(), TenancyError> {
        let sf = run.record.storefront;
        let mut batches = 0u64;
        for (i, meta) in run.tables.clone().iter().enumerate() {
            if run.record.progress.tables.get(i).is_some_and(|t| t.done) {
                continue;
            }
            // The target holds exactly what the copy wrote (catch-up has not started), so
            // its highest key is where the copy goes on after a crash.
            let cursor = transfer::max_key(&run.target, meta, sf).await?;
            let (src, dst) = (&run.source, &run.target);
            // The copy stops at the source's highest key now: capture is installed, so a row
            // inserted from here on is in the changelog and catch-up writes it. Without the
            // bound, a copy chasing fast writers that insert above its cursor need not end.
            let bound = transfer::max_key(src, meta, sf).await?;
            let batch = self.opts.batch_size;
            let pipelined = transfer::pipelined(src, dst);
            // An empty table has nothing to copy: every row it gets is in the changelog.
            let mut next = match &bound {
                Some(b) => {
                    transfer::read_page(src, dst, meta, sf, cursor.as_ref(), Some(b), batch).await?
                }
                None => None,
            };
            while let Some(page) = next {
                // Between databases, the next page is read while this one is written.
                let write = transfer::write_page(src, dst, meta, sf, &page);
                let read = transfer::read_page(
                    src,
                    dst,
                    meta,
                    sf,
                    Some(&page.upto),
                    bound.as_ref(),
                    batch,
                );
                let (n, following) = if pipelined {
                    side::both(write, read).await?
                } else {
                    (write.await?, read.await?)
                };
                if let Some(t) = run.record.progress.tables.get_mut(i) {
                    t.copied += n;
                }
                next = following;
                self.save(&mut run.record).await?;
                batches += 1;
                self.halt(&run.record, HaltAt::MidCopy(batches))?;
            }
            if let Some(t) = run.record.progress.tables.get_mut(i) {
                t.done = true;
            }
            self.save(&mut run.record).await?;
        }
        Ok(())
    }

    /// Replays the changelog of `from` onto `to`: everything pending when it begins (new
    /// writes keep coming while the storefront is live), and on until fewer than `max_lag`
    /// entries are pending; with `drain` (writers fenced), until none are.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn replay(
        &self,
        record: &mut MoveRecord,
        from: &Side,
        to: &Side,
        tables: &[TableMeta],
        kinds: &BTreeMap<String, KeyKind>,
        drain: bool,
        to_fenced: bool,
        until: Option<std::time::Instant>,
    ) -> Result<(), TenancyError> {
        let sf = record.storefront;
        let mut batches = 0u64;
        let mut round = record
            .progress
            .round
            .max(capture::last_round(from, sf).await?);
        let mut high = capture::newest_pending(from, sf).await?;
        let mut passes = 0;
        let mut renewed = std::time::Instant::now();
        loop {
            if renewed.elapsed() > self.opts.lease / 4 {
                // A long drain saves nothing: keep the lease.
                self.renew(record).await?;
                renewed = std::time::Instant::now();
            }
            let entries =
                capture::pending(from, sf, kinds, self.opts.catch_up_batch.max(1)).await?;
            if entries.is_empty() {
                break;
            }
            let mut keys: BTreeMap<String, BTreeSet<Key>> = BTreeMap::new();
            for e in &entries {
                keys.entry(e.table.clone())
                    .or_default()
                    .insert(e.key.clone());
            }
            // One target transaction per batch: a lock wait that timed out or a deadlock
            // left nothing behind, so the batch runs again (SQLite's single writer lock is
            // contended by the storefront's own writers while it is live).
            // Onto a guarded target before its cutover, or onto the fenced old side of a
            // rollback: as the mover, leaving the side as it was.
            let leave = if to_fenced {
                capture::Guard::Open
            } else {
                capture::Guard::Target
            };
            crate::backend::retry_locked(|| transfer::apply(from, to, tables, sf, &keys, leave))
                .await?;
            round += 1;
            capture::mark(from, &entries, round).await?;
            record.progress.round = round;
            record.progress.applied += entries.len() as u64;
            if !drain {
                // Draining happens behind the fence: every query there lengthens the pause.
                record.progress.lag = capture::lag(from, sf).await?;
                self.save(record).await?;
            }
            batches += 1;
            if !to_fenced {
                self.halt(record, HaltAt::MidCatchUp(batches))?;
            }
            if until.is_some_and(|t| std::time::Instant::now() >= t) {
                // The caller measures the rates over a bounded window.
                break;
            }
            if !drain && entries.last().is_some_and(|e| e.seq >= high) {
                // A pass over what was pending is done. Stop when the lag is small, or after
                // a few passes if writers outpace the replay (the fenced drain ends it).
                passes += 1;
                if record.progress.lag < self.opts.max_lag || passes >= 5 {
                    break;
                }
                high = capture::newest_pending(from, sf).await?;
            }
        }
        if !drain {
            record.progress.lag = capture::lag(from, sf).await?;
        }
        Ok(())
    }

    pub(super) async fn catch_up(&self, run: &mut Run, drain: bool) -> Result<(), TenancyError> {
        self.catch_up_until(run, drain, None).await
    }

    /// [`Self::catch_up`], stopping after the batch that passes `until`.
    pub(super) async fn catch_up_until(
        &self,
        run: &mut Run,
        drain: bool,
        until: Option<std::time::Instant>,
    ) -> Result<(), TenancyError> {
        let Run {
            record,
            source,
            target,
            tables,
            kinds,
        } = run;
        self.replay(record, source, target, tables, kinds, drain, false, until)
            .await
    }

    /// [`Self::catch_up_until`] the other way, for a rollback after the cutover: the
    /// target's changelog onto the fenced source.
    pub(super) async fn catch_up_back(
        &self,
        run: &mut Run,
        drain: bool,
        until: Option<std::time::Instant>,
    ) -> Result<(), TenancyError> {
        let Run {
            record,
            source,
            target,
            tables,
            kinds,
        } = run;
        self.replay(record, target, source, tables, kinds, drain, true, until)
            .await
    }

    async fn validate(&self, run: &mut Run) -> Result<(), TenancyError> {
        let sf = run.record.storefront;
        let start_round = run.record.progress.round;
        let mut total = 0;
        for meta in &run.tables {
            let result = validate::table(
                &run.source,
                &run.target,
                meta,
                sf,
                self.opts.batch_size.clamp(100, 10_000),
                &run.kinds,
                start_round,
            )
            .await?;
            match result {
                Ok(n) => total += n,
                Err(diff) => return Err(diff.into_error(sf)),
            }
            // A table of millions of rows takes a while: renew the lease between tables.
            self.save(&mut run.record).await?;
        }
        run.record.progress.validated_round = Some(start_round);
        run.record.progress.validated_rows = total;
        Ok(())
    }
}

async fn count(side: &Side, meta: &TableMeta, sf: StorefrontId) -> Result<u64, TenancyError> {
    use sea_orm::ConnectionTrait;
    let sql = format!(
        "SELECT COUNT(*) FROM {} WHERE {} = {}",
        side.table(&meta.name),
        side.q(&meta.tenant_column),
        side.p(1)
    );
    let row = side
        .conn
        .query_one_raw(side.stmt(sql, vec![(*sf.as_uuid()).into()]))
        .await?;
    let n: i64 = match row {
        Some(r) => r.try_get_by_index(0)?,
        None => 0,
    };
    Ok(u64::try_from(n).unwrap_or(0))
}

/// A schema or database target must be the storefront's alone: one that holds another
/// storefront's rows is someone's container (a schema or database named twice), which the
/// move would share and a rollback or a later move would drop.
pub(super) async fn refuse_foreign_rows(
    target: &Side,
    tables: &[side::TableMeta],
    storefront: StorefrontId,
) -> Result<(), TenancyError> {
    if matches!(target.placement, Placement::Shared) {
        return Ok(());
    }
    for t in tables {
        let sql = format!(
            "SELECT {} FROM {} WHERE {} <> {} LIMIT 1",
            target.q(&t.tenant_column),
            target.table(&t.name),
            target.q(&t.tenant_column),
            target.storefront_literal(storefront)
        );
        if let Some(row) =
            sea_orm::ConnectionTrait::query_one_raw(&target.conn, target.stmt(sql, vec![])).await?
        {
            let other = row
                .try_get_by_index::<uuid::Uuid>(0)
                .map(|u| u.to_string())
                .unwrap_or_else(|_| "another storefront".into());
            return Err(TenancyError::Move {
                storefront: storefront.to_string(),
                phase: "prepare".into(),
                reason: format!(
                    "{} holds rows of {other} in {}: it is another storefront's, not this one's to take",
                    target.placement, t.name
                ),
            });
        }
    }
    Ok(())
}

/// A move refused before it began, and why.
fn refused_at_start(storefront: StorefrontId, reason: String) -> TenancyError {
    TenancyError::Move {
        storefront: storefront.to_string(),
        phase: "start".into(),
        reason,
    }
}
