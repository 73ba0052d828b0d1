//! The move as persisted in `tenancy_moves`: its phase, its progress, its record.

use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::{Placement, StorefrontId};

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
    /// Deleting the source copy: no rollback from here (the target's changes may no longer
    /// be logged); `complete` or `resume` finishes it.
    Completing,
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
            Phase::Completing => "completing",
            Phase::Completed => "completed",
            Phase::RollingBack => "rolling-back",
            Phase::RolledBack => "rolled-back",
        }
    }

    pub(super) fn parse(s: &str) -> Option<Self> {
        [
            Phase::Prepare,
            Phase::Capture,
            Phase::Copy,
            Phase::CatchUp,
            Phase::Validate,
            Phase::Ready,
            Phase::Cutover,
            Phase::Switched,
            Phase::Completing,
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

/// Where a cutover's pause went, in milliseconds. The writes of the storefront wait from
/// the fence to the guard's lift: [`MoveProgress::pause_ms`] is the first three steps, the
/// flip and the lift follow it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PauseSteps {
    /// Raising the source's fence (it waits for the writes in flight there to end).
    pub fence_ms: u64,
    /// Replaying the changes logged since the last catch-up onto the target.
    pub drain_ms: u64,
    /// Comparing the rows changed since the last check on both sides, and advancing the
    /// target's sequences.
    pub check_ms: u64,
    /// Flipping the directory (and recording the move as switched).
    pub flip_ms: u64,
    /// Lifting the target's guard: the target takes the storefront's writes from here on.
    pub open_ms: u64,
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
    /// Where the cutover's pause went, step by step.
    #[serde(default)]
    pub pause_steps: Option<PauseSteps>,
    /// How long after the flip every live process had acknowledged it, in milliseconds
    /// (see [`crate::watch`]).
    pub acknowledged_ms: Option<u64>,
    /// Whether the cutover left capture on the target, so the move can be rolled back after
    /// it (recorded by the cutover; a later mover's options do not change it).
    pub rollback_enabled: Option<bool>,
    /// Whether the move was started by a version with the target guard (one started by an
    /// earlier version is refused rather than run by rules it was not prepared for).
    pub guarded: Option<bool>,
    /// Whether `complete` has begun deleting the source copy (recorded first): only then
    /// may a source database found missing be taken as deleted.
    #[serde(default)]
    pub deleting_source: Option<bool>,
}

/// One move, as persisted in `tenancy_moves`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MoveRecord {
    /// The move's id.
    pub id: uuid::Uuid,
    /// The storefront.
    pub storefront: StorefrontId,
    /// Where it was (serialised with a database URL's password hidden).
    #[serde(serialize_with = "crate::tenant::serialize_redacted")]
    pub source: Placement,
    /// Where it goes (serialised with a database URL's password hidden).
    #[serde(serialize_with = "crate::tenant::serialize_redacted")]
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
    /// The lease this process holds on the move while it acts on it (never shown).
    #[serde(skip)]
    pub(crate) lease: Option<uuid::Uuid>,
    /// The record's version when this process took the lease: a fencing token, higher for
    /// every later holder, written into the sides' fence rows so that a mover that lost
    /// its lease cannot act on them (never shown).
    #[serde(skip)]
    pub(crate) epoch: i64,
}
