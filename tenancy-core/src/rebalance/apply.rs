//! Carrying a plan out: each planned move is an online move (copy, capture, validation,
//! cutover) to a database of the same name on the receiving server, then, unless the
//! sources are kept, the source copy is deleted. A bounded number run at once.
//!
//! A run can be killed at any point and run again. Before it starts a move it writes the
//! move's target to the `tenancy_rebalance` table of the shared database; the next run
//! first finishes every move that table names (waiting out a killed run's lease, then
//! resuming the move from its last recorded step, cutting it over and completing it), and
//! only then surveys the fleet again and plans what is left. A move someone rolled back
//! meanwhile is left rolled back; a storefront with any other move in progress is not
//! moved (its load counts where it is).
//!
//! ```no_run
//! # async fn f(tenancy: tenancy_core::Tenancy) -> Result<(), tenancy_core::TenancyError> {
//! # struct Migrator;
//! # #[async_trait::async_trait]
//! # impl sea_orm_migration::MigratorTrait for Migrator {
//! #     fn migrations() -> Vec<Box<dyn sea_orm_migration::MigrationTrait>> { vec![] }
//! # }
//! use tenancy_core::{mover::MoveOptions, rebalance::Rebalancer, servers::{ServerConfig, Servers}};
//!
//! let servers = Servers::new(vec![
//!     ServerConfig::new("db1", "postgres://app@db1:5432/postgres"),
//!     ServerConfig::new("db2", "postgres://app@db2:5432/postgres"),
//! ])?;
//! let done = Rebalancer::new(&tenancy, servers, MoveOptions::default())
//!     .jobs(2)
//!     .rebalance::<Migrator>(0.15)
//!     .await?;
//! assert!(done.failed().is_empty());
//! # Ok(()) }
//! ```

use std::{sync::Arc, time::Duration};

use chrono::Utc;
use futures_util::StreamExt;
use sea_orm::{
    sea_query::{Alias, ColumnDef, Expr, ExprTrait, Query, Table},
    ConnectionTrait,
};
use sea_orm_migration::MigratorTrait;
use serde::Serialize;

use super::{Plan, PlannedMove};
use crate::{
    mover::{MoveOptions, MoveRecord, Mover, Phase},
    servers::{Servers, Survey},
    DatabaseUrl, Placement, StorefrontId, Tenancy, TenancyError,
};

/// The journal's table, in the shared database.
const JOURNAL: &str = "tenancy_rebalance";

/// What a running rebalance reports, for progress bars and logs.
#[derive(Clone, Debug)]
pub enum Event {
    /// A move of the plan begins (`resumed`: one a stopped run left behind).
    Begin {
        /// The storefront.
        storefront: StorefrontId,
        /// From this server...
        from: String,
        /// ...to this one.
        to: String,
        /// Whether it was left by a stopped run.
        resumed: bool,
    },
    /// A stopped run's mover still holds the move's lease: waiting for it to expire.
    Waiting {
        /// The storefront.
        storefront: StorefrontId,
        /// How long, at most.
        for_ms: u64,
    },
    /// The move's record was saved (phase, rows copied, changelog lag).
    Progress(Box<MoveRecord>),
    /// A move is over, one way or the other.
    Done(MoveOutcome),
}

/// How one move of a rebalance ended.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct MoveOutcome {
    /// The storefront.
    pub storefront: StorefrontId,
    /// The server it was on.
    pub from: String,
    /// The server it was to go to.
    pub to: String,
    /// Whether a stopped run had begun it.
    pub resumed: bool,
    /// The move's last phase (`completed`; `switched` when the source is kept;
    /// `rolled_back` when someone rolled it back), or `None` if it failed.
    pub phase: Option<Phase>,
    /// Why it failed.
    pub error: Option<String>,
}

/// What [`Rebalancer::rebalance`] or [`Rebalancer::drain`] did.
#[derive(Clone, Debug, Serialize)]
pub struct Rebalanced {
    /// Moves a stopped run had begun, finished first.
    pub resumed: Vec<MoveOutcome>,
    /// The plan made after them.
    pub plan: Plan,
    /// How each of the plan's moves ended.
    pub moves: Vec<MoveOutcome>,
    /// Storefronts the plan left where they are because another move of theirs is in
    /// progress.
    pub busy: Vec<(StorefrontId, String)>,
    /// A drain: the storefronts still on the drained server afterwards (busy, failed, or
    /// created there meanwhile); the drain is not done while any is.
    pub left: Vec<StorefrontId>,
}

impl Rebalanced {
    /// Whether every move succeeded and, for a drain, the server is empty.
    pub fn is_done(&self) -> bool {
        self.failed().is_empty() && self.left.is_empty()
    }

    /// The moves that failed (a rerun resumes them).
    pub fn failed(&self) -> Vec<&MoveOutcome> {
        self.resumed
            .iter()
            .chain(&self.moves)
            .filter(|m| m.error.is_some())
            .collect()
    }
}

type Observer = Arc<dyn Fn(&Event) + Send + Sync>;

/// Surveys the fleet, plans, and carries the plan out (see the module docs).
#[derive(Clone)]
pub struct Rebalancer {
    tenancy: Tenancy,
    servers: Servers,
    moves: MoveOptions,
    jobs: usize,
    keep_sources: bool,
    query_time: bool,
    observer: Option<Observer>,
}

impl Rebalancer {
    /// A rebalancer of `servers`' storefront databases whose moves run with `moves`; two
    /// at a time, deleting each source copy once cut over.
    pub fn new(tenancy: &Tenancy, servers: Servers, moves: MoveOptions) -> Self {
        Self {
            tenancy: tenancy.clone(),
            servers,
            moves,
            jobs: 2,
            keep_sources: false,
            query_time: false,
            observer: None,
        }
    }

    /// At most `jobs` moves at once (and databases measured at once).
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = jobs.max(1);
        self
    }

    /// Keep each source copy for `migration_config.dual_write_duration` (a `move
    /// rollback` can still undo the move; `move complete` deletes it), instead of
    /// deleting it once the move has cut over. A storefront whose source is kept is not
    /// moved again until its move is completed.
    pub fn keep_sources(mut self, keep: bool) -> Self {
        self.keep_sources = keep;
        self
    }

    /// Weigh each storefront's query time as well as its rows (half each): the time this
    /// process's [`Tenancy`] measured for it since it started (see
    /// [`Tenancy::stats`]). Off by default, and of no use in a process that serves no
    /// traffic (the CLI): there, rows alone weigh.
    pub fn weigh_query_time(mut self, on: bool) -> Self {
        self.query_time = on;
        self
    }

    /// Calls `f` with every [`Event`].
    pub fn observe(mut self, f: impl Fn(&Event) + Send + Sync + 'static) -> Self {
        self.observer = Some(Arc::new(f));
        self
    }

    /// The servers.
    pub fn servers(&self) -> &Servers {
        &self.servers
    }

    fn emit(&self, event: Event) {
        if let Some(f) = &self.observer {
            f(&event);
        }
    }

    /// Every storefront database measured (rows, bytes), with those that may not move.
    pub async fn survey(&self) -> Result<Survey, TenancyError> {
        let mut survey = self.servers.survey(&self.tenancy, self.jobs * 2).await?;
        for h in &mut survey.holdings {
            h.movable = !survey.busy.iter().any(|(sf, _)| *sf == h.storefront);
            if self.query_time {
                h.query_ms = self
                    .tenancy
                    .stats()
                    .summary(h.storefront)
                    .map(|s| s.mean_micros as f64 * s.count as f64 / 1000.0)
                    .unwrap_or(0.0);
            }
        }
        Ok(survey)
    }

    /// The servers as the planner takes them: a server that does not answer receives
    /// nothing.
    async fn weights(&self) -> Result<Vec<super::Server>, TenancyError> {
        let occupancy = self.servers.occupancy(&self.tenancy).await?;
        let mut weights = self.servers.weights();
        for (w, o) in weights.iter_mut().zip(&occupancy) {
            w.receives = o.bytes.is_some();
        }
        Ok(weights)
    }

    /// The moves that would bring every server within `tolerance` of its capacity share.
    pub async fn plan(&self, tolerance: f64) -> Result<(Plan, Survey), TenancyError> {
        let survey = self.survey().await?;
        let plan = super::plan(&self.weights().await?, &survey.holdings, tolerance)?;
        Ok((plan, survey))
    }

    /// The moves that would empty server `name`.
    pub async fn drain_plan(&self, name: &str) -> Result<(Plan, Survey), TenancyError> {
        self.servers.get(name)?;
        let survey = self.survey().await?;
        let plan = super::drain(&self.weights().await?, &survey.holdings, name)?;
        Ok((plan, survey))
    }

    /// Finishes what a stopped run left, then plans with `tolerance` and carries the plan
    /// out. Per-move failures are in the result (a rerun resumes them); an error means
    /// nothing could be planned.
    pub async fn rebalance<M: MigratorTrait>(
        &self,
        tolerance: f64,
    ) -> Result<Rebalanced, TenancyError> {
        let resumed = self.finish_stopped::<M>().await?;
        let (plan, survey) = self.plan(tolerance).await?;
        let moves = self.apply::<M>(&plan).await;
        Ok(Rebalanced {
            resumed,
            plan,
            moves,
            busy: survey.busy,
            left: Vec::new(),
        })
    }

    /// Finishes what a stopped run left, then moves every storefront off server `name`
    /// (to keep it empty, give it capacity 0 in the configuration).
    pub async fn drain<M: MigratorTrait>(&self, name: &str) -> Result<Rebalanced, TenancyError> {
        self.servers.get(name)?;
        let resumed = self.finish_stopped::<M>().await?;
        let (plan, survey) = self.drain_plan(name).await?;
        let moves = self.apply::<M>(&plan).await;
        let mut left = self.servers.storefronts_on(&self.tenancy, name).await?;
        // A source kept for rollback is still on the server.
        for m in self.mover().list().await? {
            if let Placement::Database { url } = &m.source {
                let on = self.servers.of_url(url, |u| self.tenancy.direct_url(u));
                if !m.phase.is_finished()
                    && on.is_some_and(|s| s.name == name)
                    && !left.contains(&m.storefront)
                {
                    left.push(m.storefront);
                }
            }
        }
        Ok(Rebalanced {
            resumed,
            plan,
            moves,
            busy: survey.busy,
            left,
        })
    }

    /// Carries `plan` out, `jobs` moves at a time; each move's outcome, in the plan's order.
    pub async fn apply<M: MigratorTrait>(&self, plan: &Plan) -> Vec<MoveOutcome> {
        // Owned moves: a borrowed one in the stream's futures would not be `Send` for every
        // lifetime, and the caller may run this in a task.
        let mut outcomes: Vec<(usize, MoveOutcome)> =
            futures_util::stream::iter(plan.moves.clone().into_iter().enumerate())
                .map(|(i, m)| async move { (i, self.carry::<M>(&m).await) })
                .buffer_unordered(self.jobs)
                .collect()
                .await;
        outcomes.sort_by_key(|(i, _)| *i);
        outcomes.into_iter().map(|(_, o)| o).collect()
    }

    /// Finishes every move the journal names (a run that stopped before it was done).
    pub async fn finish_stopped<M: MigratorTrait>(&self) -> Result<Vec<MoveOutcome>, TenancyError> {
        let entries = journal::all(self.tenancy.shared()).await?;
        let outcomes = futures_util::stream::iter(entries)
            .map(|entry| async move {
                self.emit(Event::Begin {
                    storefront: entry.storefront,
                    from: entry.from.clone(),
                    to: entry.to.clone(),
                    resumed: true,
                });
                let result = self
                    .settle::<M>(entry.storefront, &entry.target, entry.keep_source)
                    .await;
                self.finished(entry.storefront, &entry.from, &entry.to, true, result)
                    .await
            })
            .buffer_unordered(self.jobs)
            .collect()
            .await;
        Ok(outcomes)
    }

    /// One planned move, start to end.
    async fn carry<M: MigratorTrait>(&self, planned: &PlannedMove) -> MoveOutcome {
        let sf = planned.storefront;
        self.emit(Event::Begin {
            storefront: sf,
            from: planned.from.clone(),
            to: planned.to.clone(),
            resumed: false,
        });
        let result = async {
            let to = self.servers.get(&planned.to)?;
            let current = self
                .tenancy
                .require_directory()?
                .get(sf)
                .await?
                .ok_or_else(|| TenancyError::UnknownStorefront {
                    storefront: sf.to_string(),
                })?
                .placement;
            let Placement::Database { url } = &current else {
                return Err(TenancyError::Move {
                    storefront: sf.to_string(),
                    phase: "start".into(),
                    reason: format!("it is in {current} now, not in a database of its own"),
                });
            };
            let name =
                DatabaseUrl::parse(url)?
                    .database()
                    .ok_or_else(|| TenancyError::InvalidName {
                        name: crate::backend::redact(url),
                        reason: "the URL names no database".into(),
                    })?;
            let refuse = |reason: String| TenancyError::Move {
                storefront: sf.to_string(),
                phase: "start".into(),
                reason,
            };
            // The plan may be stale (a long run, another operator): it moves a storefront
            // only from the server it was planned from.
            let on = self
                .servers
                .of_url(url, |u| self.tenancy.direct_url(u))
                .map(|s| s.name.clone());
            if on.as_deref() != Some(planned.from.as_str()) {
                return Err(refuse(format!(
                    "it is on {} now, not on {} as planned",
                    on.as_deref().unwrap_or("a server the configuration does not name"),
                    planned.from
                )));
            }
            let target = to.database_url(&name);
            // Same name on the receiving server: it must be free there (a database of that
            // name would be another storefront's, or a leftover nobody vouches for).
            if crate::backend::database::database_exists(sf, &self.tenancy.direct_url(&target))
                .await?
            {
                return Err(refuse(format!(
                    "a database named {name} already exists on {}: drop it, or move the storefront by hand to another name",
                    planned.to
                )));
            }
            journal::put(
                self.tenancy.shared(),
                sf,
                &target,
                &planned.from,
                &planned.to,
                self.keep_sources,
            )
            .await?;
            self.mover()
                .start::<M>(sf, Placement::Database { url: target.clone() })
                .await?;
            self.settle::<M>(sf, &target, self.keep_sources).await
        }
        .await;
        self.finished(sf, &planned.from, &planned.to, false, result)
            .await
    }

    /// Records how a move ended: its journal entry goes once the move is over.
    async fn finished(
        &self,
        storefront: StorefrontId,
        from: &str,
        to: &str,
        resumed: bool,
        result: Result<Option<Phase>, TenancyError>,
    ) -> MoveOutcome {
        let result = match result {
            Ok(phase) => match journal::remove(self.tenancy.shared(), storefront).await {
                Ok(()) => Ok(phase),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let outcome = MoveOutcome {
            storefront,
            from: from.to_owned(),
            to: to.to_owned(),
            resumed,
            phase: result.as_ref().ok().copied().flatten(),
            error: result.err().map(|e| e.to_string()),
        };
        self.emit(Event::Done(outcome.clone()));
        outcome
    }

    fn mover(&self) -> Mover {
        let mover = Mover::new(&self.tenancy, self.moves.clone());
        match &self.observer {
            Some(f) => {
                let f = Arc::clone(f);
                mover.observe(move |r| f(&Event::Progress(Box::new(r.clone()))))
            }
            None => mover,
        }
    }

    /// Drives the storefront's move to `target` to its end: resumed, cut over and (unless
    /// the sources are kept) completed, waiting out a stopped mover's lease. `None` when
    /// its latest move is not to `target` (a run stopped before the move was recorded).
    async fn settle<M: MigratorTrait>(
        &self,
        storefront: StorefrontId,
        target: &str,
        keep_source: bool,
    ) -> Result<Option<Phase>, TenancyError> {
        let mover = self.mover();
        let wanted = Placement::Database {
            url: target.to_owned(),
        };
        // A lease is waited for at most this long in all: a mover that keeps renewing it
        // is alive (another run), and this run leaves the move to it.
        let mut patience = self.moves.lease * 2 + Duration::from_secs(5);
        loop {
            let Some(record) = mover.status(storefront).await? else {
                return Ok(None);
            };
            if record.target != wanted {
                return Ok(None);
            }
            let step = match record.phase {
                Phase::Completed | Phase::RolledBack => return Ok(Some(record.phase)),
                Phase::Switched if keep_source => {
                    // Until every process has acknowledged the flip, the move is not over.
                    if record.progress.acknowledged_ms.is_some()
                        || !self.tenancy.watch_options().enabled
                    {
                        return Ok(Some(record.phase));
                    }
                    mover.resume::<M>(storefront).await
                }
                Phase::Switched => mover.complete(storefront, true).await,
                Phase::Ready => mover.cutover::<M>(storefront).await,
                _ => mover.resume::<M>(storefront).await,
            };
            if let Err(e) = step {
                match mover.held_until(record.id).await? {
                    Some(until) if !patience.is_zero() => {
                        let wait = (until - Utc::now())
                            .to_std()
                            .unwrap_or_default()
                            .saturating_add(Duration::from_millis(100))
                            .min(patience);
                        patience = patience.saturating_sub(wait);
                        self.emit(Event::Waiting {
                            storefront,
                            for_ms: wait.as_millis() as u64,
                        });
                        tokio::time::sleep(wait).await;
                    }
                    _ => return Err(e),
                }
            }
        }
    }
}

/// The `tenancy_rebalance` table: one row per move a run has begun and not yet seen end.
mod journal {
    use super::*;

    pub(super) struct Entry {
        pub(super) storefront: StorefrontId,
        pub(super) target: String,
        pub(super) from: String,
        pub(super) to: String,
        pub(super) keep_source: bool,
    }

    /// The journal's columns, as written and read.
    const COLUMNS: [&str; 6] = [
        "storefront_id",
        "target",
        "from_server",
        "to_server",
        "keep_source",
        "created_at",
    ];

    fn col(name: &str) -> Alias {
        Alias::new(name)
    }

    async fn install(db: &impl ConnectionTrait) -> Result<(), TenancyError> {
        let table = Table::create()
            .table(col(JOURNAL))
            .if_not_exists()
            .col(
                ColumnDef::new(col("storefront_id"))
                    .uuid()
                    .not_null()
                    .primary_key(),
            )
            .col(ColumnDef::new(col("target")).text().not_null())
            .col(ColumnDef::new(col("from_server")).string_len(63).not_null())
            .col(ColumnDef::new(col("to_server")).string_len(63).not_null())
            .col(ColumnDef::new(col("keep_source")).boolean().not_null())
            .col(
                ColumnDef::new(col("created_at"))
                    .timestamp_with_time_zone()
                    .not_null(),
            )
            .to_owned();
        db.execute(&table).await?;
        // A journal made before `keep_source` existed gets the column (false: the sources
        // were deleted).
        let probe = Query::select()
            .column(col("keep_source"))
            .from(col(JOURNAL))
            .limit(0)
            .to_owned();
        if db.query_all(&probe).await.is_err() {
            let alter = Table::alter()
                .table(col(JOURNAL))
                .add_column(
                    ColumnDef::new(col("keep_source"))
                        .boolean()
                        .not_null()
                        .default(false),
                )
                .to_owned();
            db.execute(&alter).await?;
        }
        Ok(())
    }

    pub(super) async fn all(db: &impl ConnectionTrait) -> Result<Vec<Entry>, TenancyError> {
        install(db).await?;
        let select = Query::select()
            .columns(COLUMNS.map(col))
            .from(col(JOURNAL))
            .order_by(col("created_at"), sea_orm::Order::Asc)
            .to_owned();
        db.query_all(&select)
            .await?
            .iter()
            .map(|row| {
                let id: uuid::Uuid = row.try_get("", "storefront_id")?;
                Ok(Entry {
                    storefront: StorefrontId::try_from(id)?,
                    target: row.try_get("", "target")?,
                    from: row.try_get("", "from_server")?,
                    to: row.try_get("", "to_server")?,
                    keep_source: row.try_get("", "keep_source")?,
                })
            })
            .collect::<Result<_, TenancyError>>()
    }

    /// Records that a move of `storefront` to `target` begins. Refused while an entry of
    /// the storefront is there: another run is moving it (or a stopped run's move waits
    /// for the next run to finish it).
    pub(super) async fn put(
        db: &sea_orm::DatabaseConnection,
        storefront: StorefrontId,
        target: &str,
        from: &str,
        to: &str,
        keep_source: bool,
    ) -> Result<(), TenancyError> {
        install(db).await?;
        let insert = Query::insert()
            .into_table(col(JOURNAL))
            .columns(COLUMNS.map(col))
            .values([
                (*storefront.as_uuid()).into(),
                target.into(),
                from.into(),
                to.into(),
                keep_source.into(),
                Utc::now().into(),
            ])
            .map_err(|e| TenancyError::Db(sea_orm::DbErr::Custom(e.to_string())))?
            .to_owned();
        match db.execute(&insert).await {
            Ok(_) => Ok(()),
            Err(e)
                if crate::backend::classify(&e) == crate::backend::ErrorClass::UniqueViolation =>
            {
                Err(TenancyError::Move {
                    storefront: storefront.to_string(),
                    phase: "start".into(),
                    reason: "another rebalance or drain is moving it (or a stopped one's move waits: run the command again)".into(),
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    pub(super) async fn remove(
        db: &impl ConnectionTrait,
        storefront: StorefrontId,
    ) -> Result<(), TenancyError> {
        let delete = Query::delete()
            .from_table(col(JOURNAL))
            .and_where(Expr::col(col("storefront_id")).eq(*storefront.as_uuid()))
            .to_owned();
        db.execute(&delete).await?;
        Ok(())
    }
}
