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
mod complete;
mod cutover;
mod machine;
#[cfg(test)]
mod model;
mod options;
#[cfg(feature = "postgres")]
mod pg_copy;
mod record;
mod rollback;
mod rows;
mod side;
mod store;
mod transfer;
mod validate;

use std::{collections::BTreeMap, sync::Arc};

use chrono::Utc;

pub use self::{
    options::{HaltAt, MoveOptions},
    record::{MoveProgress, MoveRecord, PauseSteps, Phase, TableProgress},
};
pub use crate::connection::fence::is_fenced;

use self::side::{KeyKind, Side, TableMeta};
use crate::{StorefrontId, Tenancy, TenancyError};

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
        store::save(self.tenancy.shared(), record, self.opts.lease).await?;
        self.observed(record);
        Ok(())
    }

    fn observed(&self, record: &MoveRecord) {
        if let Some(f) = &self.observer {
            f(record);
        }
    }

    fn halt(&self, record: &MoveRecord, point: HaltAt) -> Result<(), TenancyError> {
        if self.opts.halt_at.as_ref() == Some(&point) {
            if point == HaltAt::AfterFlip {
                return Err(move_err(
                    record,
                    "injected failure just after the directory flip (HaltAt::AfterFlip)",
                ));
            }
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

    /// Until when another mover holds the lease of move `id` (`None`: nobody does, or it
    /// has expired).
    pub(crate) async fn held_until(
        &self,
        id: uuid::Uuid,
    ) -> Result<Option<chrono::DateTime<Utc>>, TenancyError> {
        Ok(store::lease_until(self.tenancy.shared(), id)
            .await?
            .filter(|until| *until > Utc::now()))
    }

    /// The storefront's unfinished move, with its lease taken for this operation: a second
    /// mover (another process, the dashboard, the CLI) is refused while it is held.
    async fn take(&self, storefront: StorefrontId) -> Result<MoveRecord, TenancyError> {
        // (The fencing token is `epoch` of the version the lease was taken at.)
        let mut record = match self.status(storefront).await? {
            Some(r) if !r.phase.is_finished() => r,
            _ => {
                return Err(TenancyError::Move {
                    storefront: storefront.to_string(),
                    phase: "none".into(),
                    reason: "the storefront has no move in progress".into(),
                })
            }
        };
        let token = uuid::Uuid::new_v4();
        store::acquire(self.tenancy.shared(), &record, token, self.opts.lease).await?;
        // Read again under the lease: the record read before may be a step behind (the
        // previous holder went on and released in between).
        let fresh = store::latest(self.tenancy.shared(), storefront).await;
        record = match fresh {
            Ok(Some(r)) if r.id == record.id && !r.phase.is_finished() => r,
            other => {
                let _ = store::release(self.tenancy.shared(), record.id, token).await;
                other?;
                return Err(TenancyError::Move {
                    storefront: storefront.to_string(),
                    phase: "none".into(),
                    reason: "the storefront's move finished meanwhile".into(),
                });
            }
        };
        if record.phase != Phase::Prepare && record.progress.guarded != Some(true) {
            let _ = store::release(self.tenancy.shared(), record.id, token).await;
            return Err(move_err(
                &record,
                "this move was prepared by an earlier version of the framework, without the target guard: finish it or roll it back with that version (or delete its record and the target by hand, then start again)",
            ));
        }
        record.lease = Some(token);
        record.epoch = epoch(
            &record,
            store::version(self.tenancy.shared(), record.id).await?,
        );
        Ok(record)
    }

    /// Sleeps `wait` (the two-TTL waits of `complete` and `rollback`, a minute with the
    /// default cache) while keeping this mover's lease, renewed every quarter lease.
    async fn wait_holding(
        &self,
        record: &MoveRecord,
        wait: std::time::Duration,
    ) -> Result<(), TenancyError> {
        let step = (self.opts.lease / 4).max(std::time::Duration::from_millis(10));
        let until = std::time::Instant::now() + wait;
        loop {
            let left = until.saturating_duration_since(std::time::Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            tokio::time::sleep(left.min(step)).await;
            self.renew(record).await?;
        }
    }

    /// Renews this mover's lease without writing the record (behind a fence, where every
    /// query lengthens the pause, only once a quarter of the lease has gone by).
    async fn renew(&self, record: &MoveRecord) -> Result<(), TenancyError> {
        store::renew(self.tenancy.shared(), record, self.opts.lease).await
    }

    /// Gives the lease of move `id` back once an operation is over, however it ended. A
    /// process that dies (or whose future is dropped) keeps it: the next mover waits for it
    /// to expire.
    async fn give_back<T>(
        &self,
        id: uuid::Uuid,
        token: Option<uuid::Uuid>,
        result: Result<T, TenancyError>,
    ) -> Result<T, TenancyError> {
        if let Some(token) = token {
            let _ = store::release(self.tenancy.shared(), id, token).await;
        }
        result
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

/// A fencing token for a holder of `record`'s lease: the move's creation second, then the
/// record's version when the lease was taken. Every later holder of the move has a higher
/// one (the version grows with every write of the record), and so does every holder of a
/// later move of the storefront (a fence row an abandoned move left behind is claimed).
pub(crate) fn epoch(record: &MoveRecord, version: i64) -> i64 {
    let second = record.created_at.timestamp().max(0);
    (second << 32) | (version & 0xffff_ffff)
}
