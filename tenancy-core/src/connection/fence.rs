//! How a connection recognises a move's fence, and how long it waits for one to lift.
//!
//! During a cutover the mover raises a fence on the source: triggers refuse every write of
//! the storefront with an error carrying [`FENCED`]. A refused statement had no effect,
//! so the connection forgets the storefront's placement and runs it again, with the
//! [`Backoff`] below, until the directory names the new placement.

use std::time::{Duration, Instant};

use sea_orm::DbErr;

use crate::{
    backend::{classify, ErrorClass},
    Directory, StorefrontId,
};

/// The text every fence refusal carries (PostgreSQL, MySQL and SQLite alike).
pub(crate) const FENCED: &str = "tenancy_fenced";

/// The change-capture log the mover's triggers write.
pub(crate) const CHANGELOG: &str = "tenancy_changelog";

/// The table whose row for a storefront says whether its writes are fenced.
pub(crate) const FENCE: &str = "tenancy_fence";

/// The prefix of the table aliases in the capture triggers' statements (MySQL's cascade
/// triggers), which MariaDB can name as missing tables like the capture tables.
pub(crate) const CASCADE_ALIAS: &str = "tncap_alias_";

/// Whether `err` is a write refused by a fence (or a move's target guard): the trigger's
/// refusal code of the backend, carrying the fence's marker. An error of the server's with
/// another code never is, whatever its text says (a duplicate value that happens to contain
/// the marker is not retried for the fence wait).
pub fn is_fenced(err: &DbErr) -> bool {
    let marked = err.to_string().contains(FENCED);
    if crate::backend::from_server(err) {
        marked && classify(err) == ErrorClass::TriggerRefusal
    } else {
        // A refusal the crate passed on in its own words (the mover's COPY path).
        marked
    }
}

/// Whether a statement that failed with `err` had no effect because of a move and may run
/// again: a fence refusal, or MariaDB's spurious "table doesn't exist" for the capture
/// tables while the capture triggers are being created (MDEV-26048: a statement that began
/// before `CREATE TRIGGER` cannot open the new trigger's tables, or names one of the
/// trigger's table aliases as a table). The application never names those tables or
/// aliases itself, so the second case cannot hide one of its own errors.
pub(crate) fn is_retryable(err: &DbErr) -> bool {
    let m = err.to_string();
    is_fenced(err)
        || (classify(err) == ErrorClass::MissingTable
            && (m.contains(&format!(".{FENCE}'"))
                || m.contains(&format!(".{CHANGELOG}'"))
                || m.contains(&format!(".{CASCADE_ALIAS}"))))
}

/// The pauses between attempts of a fenced statement or transaction: 2 ms, doubling up to
/// 20 ms, for at most the tenancy's fence wait in all.
pub(crate) struct Backoff {
    started: Instant,
    limit: Duration,
    pause: Duration,
}

impl Backoff {
    /// A back-off that gives up once `limit` has passed since now.
    pub(crate) fn new(limit: Duration) -> Self {
        Self {
            started: Instant::now(),
            limit,
            pause: Duration::from_millis(2),
        }
    }

    /// Whether another attempt is allowed.
    pub(crate) fn may_retry(&self) -> bool {
        self.started.elapsed() < self.limit
    }

    /// Sleeps before the next attempt.
    pub(crate) async fn pause(&mut self) {
        tokio::time::sleep(self.pause).await;
        self.pause = (self.pause * 2).min(Duration::from_millis(20));
    }

    /// Sleeps before the next attempt, or less: until `directory` applies a change of
    /// `storefront` after generation `seen` (read before the refused attempt), which is how
    /// a cutover's flip reaches this process. Woken by that change, the pauses start again
    /// from the shortest: the next refusal (the target's guard, lifted just after the flip)
    /// is brief. Changes of other storefronts do not end the pause.
    pub(crate) async fn pause_or_change(
        &mut self,
        directory: Option<&Directory>,
        storefront: StorefrontId,
        mut seen: u64,
    ) {
        let Some(directory) = directory else {
            return self.pause().await;
        };
        let sleep = tokio::time::sleep(self.pause);
        tokio::pin!(sleep);
        loop {
            tokio::select! {
                () = &mut sleep => {
                    self.pause = (self.pause * 2).min(Duration::from_millis(20));
                    return;
                }
                () = directory.changed(seen) => {
                    if directory.changed_since(storefront, seen) {
                        self.pause = Duration::from_millis(2);
                        return;
                    }
                    seen = directory.generation();
                }
            }
        }
    }
}
