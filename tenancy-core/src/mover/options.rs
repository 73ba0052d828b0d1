//! How a move runs: batch sizes, validation, rollback, retention, and where to halt in
//! tests.

use std::time::Duration;

use super::Phase;
use crate::config::MigrationConfig;

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
    /// In the cutover, just after the directory flipped: fails as a lost connection or a
    /// failed read-back would (an error other than a halt).
    AfterFlip,
    /// In the cutover, after the directory flipped and before the target guard was lifted
    /// (a crash there: neither side takes the storefront's writes until `resume`).
    BeforeUnguard,
    /// In `complete`, after its first destructive step.
    MidComplete,
    /// In `complete`, after the source copy was deleted and before that was recorded.
    AfterAbandon,
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
    /// How long a mover holds a move once it acts on it, renewed on every step; another
    /// mover (another process, the dashboard, the CLI) is refused until it expires, so a
    /// mover that died is replaced after at most this long.
    pub lease: Duration,
    /// The longest the cutover may expect to fence the storefront's writes: it fences
    /// only once the pending changes can be replayed within it, at the replay rate just
    /// measured (default 500 ms).
    pub pause_budget: Duration,
    /// How long the cutover keeps catching up while the backlog does not fit the pause
    /// budget before it gives up with [`TenancyError::CannotConverge`](crate::TenancyError::CannotConverge),
    /// fencing nothing (default 60 s).
    pub converge_within: Duration,
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
            lease: Duration::from_secs(60),
            pause_budget: config.pause_budget,
            converge_within: config.converge_within,
            halt_at: None,
        }
    }
}
