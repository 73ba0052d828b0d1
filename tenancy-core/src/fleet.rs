//! Fleet migrations: the application's migrations on the shared database and on every
//! schema and database storefront.
//!
//! [`Tenancy::migrate_fleet`] runs with bounded parallelism, skips storefronts the
//! directory records as current (one query for the whole fleet, no connection to them),
//! continues past a failing storefront, records each storefront's outcome in the directory
//! (so a rerun resumes with what is left), and reports progress through a callback.

use std::time::{Duration, Instant};

use futures_util::{stream, StreamExt};
use sea_orm_migration::MigratorTrait;
use serde::Serialize;

use crate::{provision::latest_migration, Placement, StorefrontId, Tenancy, TenancyError};

/// What to migrate.
#[derive(Clone, Debug)]
pub struct FleetOptions {
    /// Storefronts migrated at once.
    pub jobs: usize,
    /// Only these storefronts (all when `None`).
    pub only: Option<Vec<StorefrontId>>,
    /// Also migrate the shared database first.
    pub include_shared: bool,
    /// Do not trust the directory's record of who is current: read each storefront's own
    /// `seaql_migrations` (one query per storefront) before skipping it.
    pub verify: bool,
    /// Storefronts migrated at once on any one server (`None`: only `jobs` bounds them).
    /// Schema storefronts count against the shared database's server; storefronts are
    /// taken from the servers in turn, so one slow server does not hold every job.
    pub jobs_per_server: Option<usize>,
}

impl Default for FleetOptions {
    fn default() -> Self {
        Self {
            jobs: 4,
            only: None,
            include_shared: true,
            verify: false,
            jobs_per_server: None,
        }
    }
}

/// One storefront's outcome.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "lowercase")]
pub enum Outcome {
    /// Already at the latest migration; not touched.
    Current,
    /// Migrations were applied; now at `version`.
    Migrated {
        /// The latest migration.
        version: Option<String>,
    },
    /// Failed with this error; the directory records it, and a rerun retries.
    Failed {
        /// The error.
        error: String,
    },
}

/// Progress of a fleet run.
#[derive(Clone, Debug)]
pub struct FleetProgress {
    /// Storefronts finished (any outcome).
    pub done: usize,
    /// Storefronts to do.
    pub total: usize,
    /// The one just finished.
    pub storefront: StorefrontId,
    /// Its outcome.
    pub outcome: Outcome,
}

/// The result of a fleet run.
#[derive(Clone, Debug, Serialize)]
pub struct FleetReport {
    /// The shared database's outcome, when it was included.
    pub shared: Option<Outcome>,
    /// Each storefront with a schema or database of its own, in id order.
    pub storefronts: Vec<(StorefrontId, Outcome)>,
    /// Wall time.
    #[serde(with = "millis")]
    pub elapsed: Duration,
}

mod millis {
    pub(super) fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u128(d.as_millis())
    }
}

impl FleetReport {
    /// The storefronts that failed, with their errors.
    pub fn failures(&self) -> Vec<(StorefrontId, &str)> {
        self.storefronts
            .iter()
            .filter_map(|(id, o)| match o {
                Outcome::Failed { error } => Some((*id, error.as_str())),
                _ => None,
            })
            .collect()
    }

    /// Count of storefronts with this kind of outcome.
    pub fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.storefronts.iter().filter(|(_, o)| f(o)).count()
    }

    /// True when nothing failed.
    pub fn is_success(&self) -> bool {
        !matches!(self.shared, Some(Outcome::Failed { .. })) && self.failures().is_empty()
    }
}

impl Tenancy {
    /// The latest migration recorded in the placement's own `seaql_migrations`.
    pub async fn applied_version(
        &self,
        storefront: StorefrontId,
        placement: &Placement,
    ) -> Result<Option<String>, TenancyError> {
        use sea_orm::{ConnectionTrait, Statement};
        let sql = |q: char, schema: Option<&str>| match schema {
            Some(s) => format!("SELECT MAX(version) FROM {q}{s}{q}.seaql_migrations"),
            None => "SELECT MAX(version) FROM seaql_migrations".to_owned(),
        };
        let backend = self.shared().get_database_backend();
        let q = crate::backend::Dialect(backend).quote_char();
        let row = match placement {
            Placement::Shared => {
                self.shared()
                    .query_one_raw(Statement::from_string(backend, sql(q, None)))
                    .await?
            }
            Placement::Schema { schema } => {
                crate::tenant::validate_identifier(schema)?;
                self.shared()
                    .query_one_raw(Statement::from_string(backend, sql(q, Some(schema))))
                    .await?
            }
            Placement::Database { url } => {
                let pools = self.pools().ok_or_else(|| TenancyError::Unsupported {
                    placement: "database".into(),
                    backend: "this Tenancy".into(),
                    reason: "it has no tenant pools".into(),
                })?;
                // Directly: a lease on a pooled URL is for storefront statements only.
                let lease = pools.lease(&self.direct_url(url), storefront).await?;
                let b = lease.get_database_backend();
                lease
                    .query_one_raw(Statement::from_string(b, sql(q, None)))
                    .await?
            }
        };
        Ok(match row {
            Some(row) => row.try_get_by_index::<Option<String>>(0)?,
            None => None,
        })
    }

    /// Migrates the fleet: see the module docs.
    pub async fn migrate_fleet<M: MigratorTrait>(
        &self,
        opts: &FleetOptions,
        progress: impl Fn(&FleetProgress) + Send + Sync,
    ) -> Result<FleetReport, TenancyError> {
        let started = Instant::now();
        let directory = self.require_directory()?;
        crate::rls::refuse_bound_operator(
            self.shared(),
            &crate::rls::current_schema(self.shared()).await?,
            self.row_level_security().is_some(),
            "migrating the fleet",
        )
        .await?;
        let latest = latest_migration::<M>();
        let shared = if opts.include_shared {
            let migrated = match M::up(self.shared(), None).await {
                Ok(()) => match self.row_level_security() {
                    // A migration may add a scoped table: it gets its policies at once.
                    Some(rls) => {
                        crate::rls::apply(self.shared(), self.registry(), rls.role_name(), None)
                            .await
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    }
                    None => Ok(()),
                },
                Err(e) => Err(e.to_string()),
            };
            Some(match migrated {
                Ok(()) => Outcome::Migrated {
                    version: latest.clone(),
                },
                Err(error) => Outcome::Failed { error },
            })
        } else {
            None
        };

        let mut todo = Vec::new();
        let mut current = Vec::new();
        for record in directory.list().await? {
            if matches!(record.placement, Placement::Shared) {
                continue;
            }
            if let Some(only) = &opts.only {
                if !only.contains(&record.storefront) {
                    continue;
                }
            }
            if record.migration == latest && record.migration_error.is_none() {
                current.push(record);
            } else {
                todo.push(record);
            }
        }
        if opts.verify {
            let checks = stream::iter(current)
                .map(|record| async move {
                    let applied = self
                        .applied_version(record.storefront, &record.placement)
                        .await;
                    (record, applied)
                })
                .buffer_unordered(opts.jobs.max(1))
                .collect::<Vec<_>>()
                .await;
            current = Vec::new();
            for (record, applied) in checks {
                match applied {
                    Ok(v) if v == latest => current.push(record),
                    _ => todo.push(record),
                }
            }
        }
        let current: Vec<StorefrontId> = current.into_iter().map(|r| r.storefront).collect();
        let total = todo.len() + current.len();
        let mut done = 0;
        let mut results = Vec::with_capacity(total);
        for id in current {
            done += 1;
            progress(&FleetProgress {
                done,
                total,
                storefront: id,
                outcome: Outcome::Current,
            });
            results.push((id, Outcome::Current));
        }

        let jobs = opts.jobs.max(1);
        // Each storefront's server, and the servers in turn.
        // (Schema storefronts are on the shared database's server, with any storefront
        // database there: one queue, one bound.)
        let address = |url: &str| {
            crate::DatabaseUrl::parse(&self.direct_url(url))
                .ok()
                .and_then(|u| u.server())
        };
        let shared_server = self
            .shared_url()
            .and_then(address)
            .unwrap_or_else(|| String::from("shared"));
        let server_of = |p: &Placement| match p {
            Placement::Database { url } => address(url).unwrap_or_else(|| url.clone()),
            _ => shared_server.clone(),
        };
        let mut queues: std::collections::BTreeMap<String, std::collections::VecDeque<_>> =
            Default::default();
        for record in todo {
            queues
                .entry(server_of(&record.placement))
                .or_default()
                .push_back(record);
        }
        // One stream per server, each with at most `jobs_per_server` in flight, merged; a
        // global semaphore keeps `jobs` in all. A slow server's queue waits on its own
        // bound, never in a slot another server's storefront could use.
        let per_server = opts.jobs_per_server.unwrap_or(jobs).max(1);
        let global = tokio::sync::Semaphore::new(jobs);
        let (global, directory) = (&global, &directory);
        let migrate_one = |record: crate::TenantRecord| async move {
            let _slot = global.acquire().await.ok();
            let id = record.storefront;
            let outcome = match self.migrate_placement::<M>(id, &record.placement).await {
                Ok(version) => match directory.record_migration(id, version.as_deref()).await {
                    Ok(()) => Outcome::Migrated { version },
                    Err(e) => Outcome::Failed {
                        error: e.to_string(),
                    },
                },
                Err(e) => {
                    let error = e.to_string();
                    let _ = directory.record_migration_error(id, &error).await;
                    Outcome::Failed { error }
                }
            };
            (id, outcome)
        };
        let mut runs = stream::select_all(queues.into_values().map(|queue| {
            stream::iter(queue)
                .map(migrate_one)
                .buffer_unordered(per_server)
                .boxed()
        }));
        while let Some((id, outcome)) = runs.next().await {
            done += 1;
            progress(&FleetProgress {
                done,
                total,
                storefront: id,
                outcome: outcome.clone(),
            });
            results.push((id, outcome));
        }
        results.sort_by_key(|(id, _)| *id);
        Ok(FleetReport {
            shared,
            storefronts: results,
            elapsed: started.elapsed(),
        })
    }
}
