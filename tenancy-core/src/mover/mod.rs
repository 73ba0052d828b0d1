//! Online moves: one live storefront from any placement to any other, losing no write.
//!
//! A move is a state machine persisted in the shared database (`tenancy_moves`), so the
//! process running it can die at any point and [`Mover::resume`] goes on from the last
//! recorded step. Every step is idempotent.
//!
//! | phase | what happens |
//! |---|---|
//! | `prepare` | the target schema/database is created and the application's migrations run there |
//! | `capture` | triggers on the source log the key of every row of the storefront that changes |
//! | `copy` | per table, parents first, keyset pages of `batch_size` rows on the primary key |
//! | `catch-up` | logged keys are replayed: the target row takes the source row's current state |
//! | `validate` | per table, counts and checksums over key-ordered chunks on both sides |
//! | `ready` | waiting for the cutover (the changelog keeps growing; cutover drains it) |
//! | `cutover` | the fence goes up on the source, the last changes are replayed and checked, the directory flips |
//! | `switched` | the target serves; the source is fenced and kept for `rollback` until `complete` |
//! | `completed` / `rolled-back` | done |
//!
//! ```no_run
//! # async fn demo(tenancy: tenancy_core::Tenancy, shop: tenancy_core::StorefrontId)
//! # -> Result<(), tenancy_core::TenancyError> {
//! use tenancy_core::{mover::{MoveOptions, Mover}, Placement};
//! # struct Migrator;
//! # #[async_trait::async_trait]
//! # impl sea_orm_migration::MigratorTrait for Migrator {
//! #     fn migrations() -> Vec<Box<dyn sea_orm_migration::MigrationTrait>> { vec![] }
//! # }
//! let mover = Mover::new(&tenancy, MoveOptions::default());
//! let target = Placement::Schema { schema: "shop_42".into() };
//! mover.start::<Migrator>(shop, target).await?; // copied, caught up, validated
//! mover.cutover::<Migrator>(shop).await?;       // a pause of milliseconds for the shop's writes
//! // ... later, once the retention window has passed:
//! mover.complete(shop, false).await?;           // the old copy is deleted
//! # Ok(()) }
//! ```

mod capture;
mod cascade;
mod side;
mod store;
mod transfer;
mod validate;

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use sea_orm_migration::MigratorTrait;
use serde::{Deserialize, Serialize};

pub(crate) use capture::is_retryable;
pub use capture::{is_fenced, FENCED};
pub use store::MOVES_TABLE;

use self::side::{Key, KeyKind, Side, TableMeta};
use crate::{config::MigrationConfig, Placement, StorefrontId, Tenancy, TenancyError, TenantState};

/// Where a move is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Phase {
    /// Creating and migrating the target.
    Prepare,
    /// Installing change capture on the source.
    Capture,
    /// Copying rows.
    Copy,
    /// Replaying captured changes.
    CatchUp,
    /// Comparing both sides.
    Validate,
    /// Validated; waiting for the cutover.
    Ready,
    /// Fenced; final catch-up, check and directory flip.
    Cutover,
    /// The target serves; the source is kept for rollback.
    Switched,
    /// The source copy was deleted.
    Completed,
    /// Rolling back.
    RollingBack,
    /// Rolled back: the source serves, the target is gone.
    RolledBack,
}

impl Phase {
    /// The phase's name as stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Prepare => "prepare",
            Phase::Capture => "capture",
            Phase::Copy => "copy",
            Phase::CatchUp => "catch-up",
            Phase::Validate => "validate",
            Phase::Ready => "ready",
            Phase::Cutover => "cutover",
            Phase::Switched => "switched",
            Phase::Completed => "completed",
            Phase::RollingBack => "rolling-back",
            Phase::RolledBack => "rolled-back",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        [
            Phase::Prepare,
            Phase::Capture,
            Phase::Copy,
            Phase::CatchUp,
            Phase::Validate,
            Phase::Ready,
            Phase::Cutover,
            Phase::Switched,
            Phase::Completed,
            Phase::RollingBack,
            Phase::RolledBack,
        ]
        .into_iter()
        .find(|p| p.as_str() == s)
    }

    /// Whether the move is over (completed or rolled back).
    pub fn is_finished(self) -> bool {
        matches!(self, Phase::Completed | Phase::RolledBack)
    }
}

impl std::fmt::Display for Phase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Copy progress of one table.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TableProgress {
    /// The table.
    pub table: String,
    /// The storefront's rows in it when the copy began.
    pub rows: u64,
    /// Rows written to the target by the copy.
    pub copied: u64,
    /// The copy of this table is finished.
    pub done: bool,
}

/// Everything a move has measured so far.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveProgress {
    /// Per table, in copy order.
    pub tables: Vec<TableProgress>,
    /// Catch-up rounds run.
    pub round: i64,
    /// Changelog entries replayed.
    pub applied: u64,
    /// Changelog entries not replayed yet, when last measured.
    pub lag: u64,
    /// The catch-up round at which the last full validation began.
    pub validated_round: Option<i64>,
    /// Rows compared by the last full validation.
    pub validated_rows: u64,
    /// How long the storefront's writes were fenced during the cutover, in milliseconds.
    pub pause_ms: Option<u64>,
}

/// One move, as persisted in `tenancy_moves`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MoveRecord {
    /// The move's id.
    pub id: uuid::Uuid,
    /// The storefront.
    pub storefront: StorefrontId,
    /// Where it was.
    pub source: Placement,
    /// Where it goes.
    pub target: Placement,
    /// Where the move is.
    pub phase: Phase,
    /// The last error, if the last attempt failed (the move can be resumed or rolled back).
    pub error: Option<String>,
    /// Measurements.
    pub progress: MoveProgress,
    /// When the move began.
    pub created_at: chrono::DateTime<Utc>,
    /// When the record last changed.
    pub updated_at: chrono::DateTime<Utc>,
    /// When the directory flipped to the target.
    pub cutover_at: Option<chrono::DateTime<Utc>>,
}

/// Where the mover stops on purpose, to test that every step resumes (a simulated crash).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HaltAt {
    /// After the phase finished and was recorded.
    After(Phase),
    /// In the copy, after this many batches.
    MidCopy(u64),
    /// In the catch-up, after this many batches.
    MidCatchUp(u64),
    /// In the cutover, with the fence raised and the changes drained, before the flip.
    MidCutover,
}

/// How a move runs.
#[derive(Clone, Debug)]
pub struct MoveOptions {
    /// Rows per copy batch (and per validation chunk, within 100..=10,000).
    pub batch_size: u64,
    /// Changelog entries replayed per catch-up batch.
    pub catch_up_batch: u64,
    /// Validate counts and checksums before the cutover, and the changed rows during it.
    pub validation_enabled: bool,
    /// Capture changes on the target after the cutover, so the move can be rolled back.
    pub rollback_enabled: bool,
    /// How long the source copy is kept after the cutover before `complete` may delete it.
    pub retention: Duration,
    /// Catch-up stops once fewer entries than this are pending.
    pub max_lag: u64,
    /// Stop on purpose at this point (tests).
    pub halt_at: Option<HaltAt>,
}

impl Default for MoveOptions {
    fn default() -> Self {
        Self::from_config(&MigrationConfig::default())
    }
}

impl MoveOptions {
    /// The options the configuration's `migration_config` section describes.
    pub fn from_config(config: &MigrationConfig) -> Self {
        Self {
            batch_size: u64::from(config.batch_size.max(1)),
            catch_up_batch: u64::from(config.batch_size.max(100)),
            validation_enabled: config.validation_enabled,
            rollback_enabled: config.rollback_enabled,
            retention: config.dual_write_duration,
            max_lag: u64::from(config.batch_size.max(1)),
            halt_at: None,
        }
    }
}

type Observer = Arc<dyn Fn(&MoveRecord) + Send + Sync>;

/// Runs moves. See the module docs.
#[derive(Clone)]
pub struct Mover {
    tenancy: Tenancy,
    opts: MoveOptions,
    observer: Option<Observer>,
}

impl std::fmt::Debug for Mover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mover").field("opts", &self.opts).finish()
    }
}

/// The two open sides and the tables of one move.
struct Run {
    record: MoveRecord,
    source: Side,
    target: Side,
    tables: Vec<TableMeta>,
    kinds: BTreeMap<String, KeyKind>,
}

impl Run {
    async fn close(self) {
        self.target.close().await;
        self.source.close().await;
    }
}

fn move_err(record: &MoveRecord, reason: impl Into<String>) -> TenancyError {
    TenancyError::Move {
        storefront: record.storefront.to_string(),
        phase: record.phase.to_string(),
        reason: reason.into(),
    }
}

impl Mover {
    /// A mover for storefronts of `tenancy` (which must have a directory).
    pub fn new(tenancy: &Tenancy, opts: MoveOptions) -> Self {
        Self {
            tenancy: tenancy.clone(),
            opts,
            observer: None,
        }
    }

    /// Calls `f` with the record every time it is saved (progress bars, dashboards).
    pub fn observe(mut self, f: impl Fn(&MoveRecord) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(f));
        self
    }

    /// The options.
    pub fn options(&self) -> &MoveOptions {
        &self.opts
    }

    async fn save(&self, record: &mut MoveRecord) -> Result<(), TenancyError> {
        record.updated_at = Utc::now();
        store::save(self.tenancy.shared(), record).await?;
        if let Some(f) = &self.observer {
            f(record);
        }
        Ok(())
    }

    fn halt(&self, record: &MoveRecord, point: HaltAt) -> Result<(), TenancyError> {
        if self.opts.halt_at.as_ref() == Some(&point) {
            return Err(TenancyError::Halted {
                storefront: record.storefront.to_string(),
                point: format!("{point:?}"),
            });
        }
        Ok(())
    }

    async fn advance(&self, record: &mut MoveRecord, next: Phase) -> Result<(), TenancyError> {
        let finished = record.phase;
        record.phase = next;
        record.error = None;
        self.save(record).await?;
        self.halt(record, HaltAt::After(finished))
    }

    /// The storefront's latest move.
    pub async fn status(
        &self,
        storefront: StorefrontId,
    ) -> Result<Option<MoveRecord>, TenancyError> {
        store::install(self.tenancy.shared()).await?;
        store::latest(self.tenancy.shared(), storefront).await
    }

    /// Every move, newest first.
    pub async fn list(&self) -> Result<Vec<MoveRecord>, TenancyError> {
        store::install(self.tenancy.shared()).await?;
        store::all(self.tenancy.shared()).await
    }

    async fn active(&self, storefront: StorefrontId) -> Result<MoveRecord, TenancyError> {
        match self.status(storefront).await? {
            Some(r) if !r.phase.is_finished() => Ok(r),
            _ => Err(TenancyError::Move {
                storefront: storefront.to_string(),
                phase: "none".into(),
                reason: "the storefront has no move in progress".into(),
            }),
        }
    }

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
        let now = Utc::now();
        let mut record = MoveRecord {
            id: uuid::Uuid::new_v4(),
            storefront,
            source: current.placement.clone(),
            target,
            phase: Phase::Prepare,
            error: None,
            progress: MoveProgress::default(),
            created_at: now,
            updated_at: now,
            cutover_at: None,
        };
        store::insert(self.tenancy.shared(), &record).await?;
        self.drive::<M>(&mut record, false).await
    }

    /// Goes on with the storefront's move from where it stopped: up to `ready`, or through
    /// the cutover if it was cutting over, or through the rollback if it was rolling back.
    pub async fn resume<M: MigratorTrait>(
        &self,
        storefront: StorefrontId,
    ) -> Result<MoveRecord, TenancyError> {
        let mut record = self.active(storefront).await?;
        match record.phase {
            Phase::RollingBack => self.rollback(storefront).await,
            Phase::Cutover => self.drive::<M>(&mut record, true).await,
            _ => self.drive::<M>(&mut record, false).await,
        }
    }

    /// Runs the move through the cutover (first catching up and validating if needed).
    pub async fn cutover<M: MigratorTrait>(
        &self,
        storefront: StorefrontId,
    ) -> Result<MoveRecord, TenancyError> {
        let mut record = self.active(storefront).await?;
        self.drive::<M>(&mut record, true).await
    }

    async fn drive<M: MigratorTrait>(
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
        if record.phase >= Phase::Switched {
            return Ok(());
        }
        let mut run = self.open(record.clone()).await?;
        let result = self.phases(&mut run, through_cutover).await;
        *record = run.record.clone();
        run.close().await;
        result
    }

    async fn open(&self, record: MoveRecord) -> Result<Run, TenancyError> {
        let (source, target) = side::open(&self.tenancy, &record.source, &record.target)
            .await
            .map_err(|e| move_err(&record, e.to_string()))?;
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
        let directory = self.tenancy.require_directory()?;
        self.tenancy.create_container(sf, &record.target).await?;
        self.tenancy
            .migrate_placement::<M>(sf, &record.target)
            .await?;
        if record.target == Placement::Shared {
            // Leftovers of an earlier, abandoned move would collide with the copy.
            let (source, target) =
                side::open(&self.tenancy, &record.source, &record.target).await?;
            let tables = side::tables(&self.tenancy, &source, &target).await?;
            let cleared = transfer::clear(&target, &tables, sf).await;
            source.close().await;
            cleared?;
        }
        directory
            .put(sf, &record.source, TenantState::Moving)
            .await?;
        self.advance(record, Phase::Capture).await
    }

    async fn phases(&self, run: &mut Run, through_cutover: bool) -> Result<(), TenancyError> {
        loop {
            match run.record.phase {
                Phase::Capture => {
                    capture::install(&run.source, run.record.storefront, &run.tables).await?;
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
                    self.cut_over(run).await?;
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
            let batch = self.opts.batch_size;
            let pipelined = transfer::pipelined(src, dst);
            let mut next = transfer::read_page(src, dst, meta, sf, cursor.as_ref(), batch).await?;
            while let Some(page) = next {
                // Between databases, the next page is read while this one is written.
                let write = transfer::write_page(src, dst, meta, sf, &page);
                let read = transfer::read_page(src, dst, meta, sf, Some(&page.upto), batch);
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
    async fn replay(
        &self,
        record: &mut MoveRecord,
        from: &Side,
        to: &Side,
        tables: &[TableMeta],
        kinds: &BTreeMap<String, KeyKind>,
        drain: bool,
        to_fenced: bool,
    ) -> Result<(), TenancyError> {
        let sf = record.storefront;
        let mut batches = 0u64;
        let mut round = record
            .progress
            .round
            .max(capture::last_round(from, sf).await?);
        let mut high = capture::newest_pending(from, sf).await?;
        let mut passes = 0;
        loop {
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
            transfer::apply(from, to, tables, sf, &keys, to_fenced).await?;
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

    async fn catch_up(&self, run: &mut Run, drain: bool) -> Result<(), TenancyError> {
        let Run {
            record,
            source,
            target,
            tables,
            kinds,
        } = run;
        self.replay(record, source, target, tables, kinds, drain, false)
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
                Err(diff) => {
                    return Err(TenancyError::Validation {
                        storefront: sf.to_string(),
                        table: diff.table,
                        keys: diff.keys.iter().map(ToString::to_string).collect(),
                        detail: diff.detail,
                    })
                }
            }
        }
        run.record.progress.validated_round = Some(start_round);
        run.record.progress.validated_rows = total;
        Ok(())
    }

    async fn cut_over(&self, run: &mut Run) -> Result<(), TenancyError> {
        let sf = run.record.storefront;
        let directory = self.tenancy.require_directory()?;
        // Capture on the target first (no application writes reach it yet), so that once it
        // serves, every change there is logged for a rollback.
        if self.opts.rollback_enabled {
            capture::install(&run.target, sf, &run.tables).await?;
        }
        // Open this process's pool for the target before the pause, so the first statement
        // after the flip does not wait for a new connection.
        if let (Placement::Database { url }, Some(pools)) =
            (&run.record.target, self.tenancy.pools())
        {
            let _ = pools.lease(url, sf).await;
        }
        // Bring the lag down before fencing, so the pause is short.
        self.catch_up(run, false).await?;
        // Check the rows changed since the full validation now, while writes flow, so that
        // behind the fence only rows changed after the last catch-up round need checking.
        // A row may differ here only because it changed again after that round: then it has
        // a changelog entry newer than the round (read after the comparison, so it is seen),
        // and the fenced check covers it. Any other difference leaves the fenced check to
        // cover everything since the full validation (and fail).
        if self.opts.validation_enabled {
            let round = run.record.progress.round;
            let since = run.record.progress.validated_round.unwrap_or(0);
            let changed = capture::keys_since(&run.source, sf, &run.kinds, since).await?;
            let mut differing = BTreeMap::new();
            for meta in &run.tables {
                if let Some(keys) = changed.get(&meta.name) {
                    let diff =
                        validate::differing_keys(&run.source, &run.target, meta, sf, keys).await?;
                    if !diff.is_empty() {
                        differing.insert(meta.name.clone(), diff);
                    }
                }
            }
            let moving = if differing.is_empty() {
                BTreeMap::new()
            } else {
                capture::keys_since(&run.source, sf, &run.kinds, round).await?
            };
            let clean = differing.iter().all(|(table, keys)| {
                moving
                    .get(table)
                    .is_some_and(|still| keys.iter().all(|k| still.contains(k)))
            });
            if clean {
                run.record.progress.validated_round = Some(round);
            }
        }
        let fenced_at = Instant::now();
        capture::set_fence(&run.source, sf, true).await?;
        let result = async {
            self.catch_up(run, true).await?;
            if self.opts.validation_enabled {
                let since = run.record.progress.validated_round.unwrap_or(0);
                let changed = capture::keys_since(&run.source, sf, &run.kinds, since).await?;
                for meta in &run.tables {
                    if let Some(keys) = changed.get(&meta.name) {
                        if let Some(diff) =
                            validate::keys(&run.source, &run.target, meta, sf, keys).await?
                        {
                            return Err(TenancyError::Validation {
                                storefront: sf.to_string(),
                                table: diff.table,
                                keys: diff.keys.iter().map(ToString::to_string).collect(),
                                detail: diff.detail,
                            });
                        }
                    }
                }
            }
            self.halt(&run.record, HaltAt::MidCutover)?;
            directory
                .put(sf, &run.record.target, TenantState::Active)
                .await
        }
        .await;
        match result {
            Ok(()) => {
                run.record.progress.pause_ms =
                    Some(u64::try_from(fenced_at.elapsed().as_millis()).unwrap_or(u64::MAX));
                run.record.cutover_at = Some(Utc::now());
                // The source stays fenced: a process with a stale directory cache is refused
                // there, refreshes, and finds the target.
                self.advance(&mut run.record, Phase::Switched).await
            }
            Err(e @ TenancyError::Halted { .. }) => Err(e),
            Err(e) => {
                // Serve from the source again while the operator looks at the problem.
                let _ = capture::set_fence(&run.source, sf, false).await;
                if matches!(e, TenancyError::Validation { .. }) {
                    run.record.phase = Phase::CatchUp;
                }
                Err(e)
            }
        }
    }

    /// Rolls the move back. Before the cutover the target is dropped; after it, the changes
    /// made on the target since the cutover are replayed onto the source, the directory
    /// flips back and then the target is dropped.
    pub async fn rollback(&self, storefront: StorefrontId) -> Result<MoveRecord, TenancyError> {
        let mut record = self.active(storefront).await?;
        let directory = self.tenancy.require_directory()?;
        let serving = directory.get(storefront).await?.map(|r| r.placement);
        let after_cutover = serving.as_ref() == Some(&record.target);
        if after_cutover && !self.opts.rollback_enabled {
            return Err(move_err(
                &record,
                "the move was cut over with rollback disabled; move the storefront back instead",
            ));
        }
        record.phase = Phase::RollingBack;
        record.error = None;
        self.save(&mut record).await?;
        let mut warnings = Vec::new();
        let opened = self.open(record.clone()).await;
        match opened {
            Ok(mut run) => {
                let result = self.roll_back(&mut run, after_cutover, &mut warnings).await;
                run.record.error = None;
                record = run.record.clone();
                let target_file = match (&run.target.placement, run.target.backend) {
                    (Placement::Database { url }, sea_orm::DbBackend::Sqlite) => {
                        side::sqlite_file(url).map(str::to_owned)
                    }
                    _ => None,
                };
                run.close().await;
                if let (Ok(()), Some(file)) = (&result, target_file) {
                    for suffix in ["", "-wal", "-shm"] {
                        let _ = std::fs::remove_file(format!("{file}{suffix}"));
                    }
                }
                if let Err(e) = result {
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
                directory
                    .put(storefront, &record.source, TenantState::Active)
                    .await?;
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

    async fn roll_back(
        &self,
        run: &mut Run,
        after_cutover: bool,
        warnings: &mut Vec<String>,
    ) -> Result<(), TenancyError> {
        let sf = run.record.storefront;
        let directory = self.tenancy.require_directory()?;
        if after_cutover {
            // The target serves: fence it, replay its changes onto the (fenced) source, check
            // them, and flip back.
            capture::set_fence(&run.target, sf, true).await?;
            let Run {
                record,
                source,
                target,
                tables,
                kinds,
            } = run;
            self.replay(record, target, source, tables, kinds, true, true)
                .await?;
            if self.opts.validation_enabled {
                let changed = capture::keys_since(target, sf, kinds, 0).await?;
                for meta in tables.iter() {
                    if let Some(keys) = changed.get(&meta.name) {
                        if let Some(diff) = validate::keys(target, source, meta, sf, keys).await? {
                            let _ = capture::set_fence(target, sf, false).await;
                            return Err(TenancyError::Validation {
                                storefront: sf.to_string(),
                                table: diff.table,
                                keys: diff.keys.iter().map(ToString::to_string).collect(),
                                detail: diff.detail,
                            });
                        }
                    }
                }
            }
            directory
                .put(sf, &run.record.source, TenantState::Active)
                .await?;
            // Stale caches still point at the target: keep its fence up until they expire.
            tokio::time::sleep(self.tenancy.directory_ttl()).await;
        } else {
            directory
                .put(sf, &run.record.source, TenantState::Active)
                .await?;
        }
        capture::set_fence(&run.source, sf, false).await?;
        capture::remove(&run.source, sf, &run.tables).await?;
        if let Err(e) = self.abandon(&run.target, &run.tables, sf).await {
            warnings.push(format!("the target's storage was left behind: {e}"));
        }
        Ok(())
    }

    /// Deletes the storefront's copy on a side that no longer serves it.
    async fn abandon(
        &self,
        side: &Side,
        tables: &[TableMeta],
        sf: StorefrontId,
    ) -> Result<(), TenancyError> {
        match &side.placement {
            Placement::Shared => {
                capture::remove(side, sf, tables).await?;
                transfer::clear(side, tables, sf).await
            }
            other => {
                // The schema or database is dropped whole (its triggers with it).
                if side.backend == sea_orm::DbBackend::Sqlite {
                    // The file is attached to the mover's connection: detach is implicit on close.
                    capture::remove(side, sf, tables).await?;
                    transfer::clear(side, tables, sf).await?;
                    return Ok(());
                }
                self.tenancy.drop_container(sf, other).await
            }
        }
    }

    /// Finishes a switched move: deletes the source copy and the target's capture. Refused
    /// before the retention window has passed, unless `force`.
    pub async fn complete(
        &self,
        storefront: StorefrontId,
        force: bool,
    ) -> Result<MoveRecord, TenancyError> {
        let mut record = self.active(storefront).await?;
        if record.phase != Phase::Switched {
            return Err(move_err(
                &record,
                "only a move that has cut over can be completed",
            ));
        }
        if let Some(at) = record.cutover_at {
            let elapsed = (Utc::now() - at).to_std().unwrap_or_default();
            if !force && elapsed < self.opts.retention {
                return Err(move_err(
                    &record,
                    format!(
                        "the retention window ({}) has not passed: {} left (use force to complete now)",
                        humantime::format_duration(self.opts.retention),
                        humantime::format_duration(Duration::from_secs((self.opts.retention - elapsed).as_secs()))
                    ),
                ));
            }
        }
        let run = self.open(record.clone()).await?;
        let sf = storefront;
        let result = async {
            capture::remove(&run.target, sf, &run.tables).await?;
            self.abandon(&run.source, &run.tables, sf).await
        }
        .await;
        let sqlite_file = match (&run.source.placement, run.source.backend) {
            (Placement::Database { url }, sea_orm::DbBackend::Sqlite) => {
                side::sqlite_file(url).map(str::to_owned)
            }
            _ => None,
        };
        run.close().await;
        result?;
        if let Some(file) = sqlite_file {
            for suffix in ["", "-wal", "-shm"] {
                let _ = std::fs::remove_file(format!("{file}{suffix}"));
            }
        }
        record.phase = Phase::Completed;
        record.error = None;
        self.save(&mut record).await?;
        Ok(record)
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
