//! Provisioning: creating and dropping storefronts in any placement.
//!
//! [`Tenancy::create_storefront`] creates the schema or database if missing, runs the
//! application's own [`MigratorTrait`] there, and only then records the storefront in the
//! directory, so a failure halfway leaves nothing registered (and what this call created
//! is dropped again). Running it again for a provisioned storefront is harmless.
//! [`Tenancy::drop_storefront`] needs the storefront id typed back as confirmation.

use sea_orm::{ConnectionTrait, DbBackend, TransactionTrait};
use sea_orm_migration::MigratorTrait;

use crate::{
    backend::{
        database::{
            connect_one, create_database, db_step_failed as db_step, drop_database,
            sqlite_schema_unsupported, step_failed as step,
        },
        redact, DatabaseUrl, Dialect, ErrorClass,
    },
    tenant::validate_identifier,
    Placement, StorefrontId, Tenancy, TenancyError, TenantRecord, TenantState,
};

/// The name of the last migration of `M`, the version a current storefront is at.
pub(crate) fn latest_migration<M: MigratorTrait>() -> Option<String> {
    M::migrations().last().map(|m| m.name().to_owned())
}

impl Tenancy {
    pub(crate) fn require_directory(&self) -> Result<&crate::Directory, TenancyError> {
        self.directory()
            .map(|d| d.as_ref())
            .ok_or_else(|| TenancyError::Unsupported {
                placement: "provisioning".into(),
                backend: "this Tenancy".into(),
                reason: "it has no directory (build it with TenancyOptions::new().directory(..))"
                    .into(),
            })
    }

    /// Creates `storefront` in `placement`: see the module docs. Returns its directory row.
    pub async fn create_storefront<M: MigratorTrait>(
        &self,
        storefront: StorefrontId,
        placement: Placement,
    ) -> Result<TenantRecord, TenancyError> {
        let directory = self.require_directory()?;
        let previous = directory.get(storefront).await?;
        if let Some(existing) = &previous {
            if existing.placement != placement {
                return Err(step(storefront, "provisioning")(TenancyError::Refused {
                    table: crate::directory::TABLE.into(),
                    reason: format!(
                        "the storefront is already placed in {}; move it instead of provisioning it again",
                        existing.placement
                    ),
                }));
            }
            if existing.state == TenantState::Active
                && existing.migration == latest_migration::<M>()
            {
                return Ok(existing.clone());
            }
        }
        let created = self.create_container(storefront, &placement).await?;
        let migrated = self.migrate_placement::<M>(storefront, &placement).await;
        let registered = match migrated {
            Ok(version) => {
                let put = directory
                    .put(storefront, &placement, TenantState::Active)
                    .await;
                match put {
                    Ok(()) => {
                        directory
                            .record_migration(storefront, version.as_deref())
                            .await
                    }
                    Err(e) => Err(e),
                }
            }
            Err(e) => Err(e),
        };
        match registered {
            Ok(()) => {
                directory
                    .get(storefront)
                    .await?
                    .ok_or_else(|| TenancyError::UnknownStorefront {
                        storefront: storefront.to_string(),
                    })
            }
            Err(e) => {
                if created {
                    // Best effort: the original error is what the caller needs to see.
                    let _ = self.drop_container(storefront, &placement).await;
                }
                if previous.is_none() {
                    let _ = directory.remove(storefront).await;
                } else {
                    let _ = directory
                        .record_migration_error(storefront, &e.to_string())
                        .await;
                }
                Err(e)
            }
        }
    }

    /// Creates the schema or database if missing. Returns whether it was created now.
    pub(crate) async fn create_container(
        &self,
        storefront: StorefrontId,
        placement: &Placement,
    ) -> Result<bool, TenancyError> {
        let shared = self.shared();
        let backend = shared.get_database_backend();
        match placement {
            Placement::Shared => Ok(false),
            Placement::Schema { schema } => {
                let (exists, create) = Dialect(backend).create_schema(schema)?;
                let existed = shared
                    .query_one_raw(exists)
                    .await
                    .map_err(db_step(storefront, "checking the schema"))?
                    .is_some();
                shared
                    .execute_unprepared(&create)
                    .await
                    .map_err(db_step(storefront, format!("creating schema {schema}")))?;
                Ok(!existed)
            }
            Placement::Database { url } => create_database(storefront, &self.direct_url(url)).await,
        }
    }

    pub(crate) async fn drop_container(
        &self,
        storefront: StorefrontId,
        placement: &Placement,
    ) -> Result<(), TenancyError> {
        match placement {
            Placement::Shared => Ok(()),
            Placement::Schema { schema } => {
                let sql = Dialect(self.shared().get_database_backend()).drop_schema(schema)?;
                self.shared()
                    .execute_unprepared(&sql)
                    .await
                    .map_err(db_step(storefront, format!("dropping schema {schema}")))?;
                Ok(())
            }
            Placement::Database { url } => {
                if let Some(pools) = self.pools() {
                    pools.close(url).await;
                }
                drop_database(storefront, &self.direct_url(url)).await
            }
        }
    }

    /// Runs `M` in the storefront's schema or database (the shared database's migrations
    /// are the fleet's job). Returns the latest applied migration.
    pub(crate) async fn migrate_placement<M: MigratorTrait>(
        &self,
        storefront: StorefrontId,
        placement: &Placement,
    ) -> Result<Option<String>, TenancyError> {
        self.run_migrator::<M>(storefront, placement, None).await
    }

    /// Reverts the last `steps` migrations of `M` in the storefront's schema or database.
    pub async fn migrate_placement_down<M: MigratorTrait>(
        &self,
        storefront: StorefrontId,
        placement: &Placement,
        steps: u32,
    ) -> Result<Option<String>, TenancyError> {
        self.run_migrator::<M>(storefront, placement, Some(steps))
            .await?;
        self.applied_version(storefront, placement).await
    }

    /// `down`: `None` runs `up`, `Some(steps)` runs `down` that many steps.
    async fn run_migrator<M: MigratorTrait>(
        &self,
        storefront: StorefrontId,
        placement: &Placement,
        down: Option<u32>,
    ) -> Result<Option<String>, TenancyError> {
        let latest = latest_migration::<M>();
        match placement {
            Placement::Shared => Ok(latest),
            Placement::Schema { schema } => {
                validate_identifier(schema)?;
                let shared = self.shared();
                match shared.get_database_backend() {
                    DbBackend::Postgres => {
                        // DDL is transactional on PostgreSQL: the schema's migrations apply
                        // whole or not at all. `SET LOCAL` keeps the search path to this
                        // transaction, never to the pooled connection.
                        let rls_on = self.row_level_security().is_some();
                        crate::rls::refuse_bound_operator(
                            shared,
                            schema,
                            rls_on,
                            "migrating a schema",
                        )
                        .await?;
                        let txn = shared
                            .begin()
                            .await
                            .map_err(db_step(storefront, "migrating"))?;
                        txn.execute_unprepared(&format!("SET LOCAL search_path TO \"{schema}\""))
                            .await
                            .map_err(db_step(storefront, "migrating"))?;
                        let result = match down {
                            None => M::up(&txn, None).await,
                            Some(steps) => M::down(&txn, Some(steps)).await,
                        };
                        result
                            .map_err(db_step(storefront, format!("migrating schema {schema}")))?;
                        if let (None, Some(rls)) = (down, self.row_level_security()) {
                            // In the migrating transaction: the schema's tables are never
                            // visible without their policies.
                            crate::rls::apply_in(
                                &txn,
                                self.registry(),
                                rls.role_name(),
                                Some(schema),
                            )
                            .await
                            .map_err(step(
                                storefront,
                                format!("row-level security in schema {schema}"),
                            ))?;
                        }
                        txn.commit()
                            .await
                            .map_err(db_step(storefront, "migrating"))?;
                        Ok(latest)
                    }
                    DbBackend::MySql => {
                        let base = self.shared_url().ok_or_else(|| TenancyError::Unsupported {
                            placement: "schema".into(),
                            backend: "MySQL".into(),
                            reason: "migrating a schema needs the shared database URL (TenancyOptions::shared_url)".into(),
                        })?;
                        let url = DatabaseUrl::parse(base)?.with_database(schema);
                        let conn = connect_one(url.as_str())
                            .await
                            .map_err(db_step(storefront, format!("connecting to {url}")))?;
                        let result = match down {
                            None => M::up(&conn, None).await,
                            Some(steps) => M::down(&conn, Some(steps)).await,
                        };
                        let _ = conn.close().await;
                        result
                            .map_err(db_step(storefront, format!("migrating schema {schema}")))?;
                        Ok(latest)
                    }
                    _ => Err(sqlite_schema_unsupported()),
                }
            }
            Placement::Database { url } => {
                let url = &self.direct_url(url);
                let conn = connect_one(url).await.map_err(db_step(
                    storefront,
                    format!("connecting to {}", redact(url)),
                ))?;
                let rls_on = self.row_level_security().is_some();
                let schema = crate::rls::current_schema(&conn).await?;
                if let Err(e) = crate::rls::refuse_bound_operator(
                    &conn,
                    &schema,
                    rls_on,
                    "migrating a database",
                )
                .await
                {
                    let _ = conn.close().await;
                    return Err(e);
                }
                let result = match down {
                    None => M::up(&conn, None).await,
                    Some(steps) => M::down(&conn, Some(steps)).await,
                };
                let secured = match (&result, down, self.row_level_security()) {
                    (Ok(()), None, Some(rls)) => {
                        crate::rls::apply(&conn, self.registry(), rls.role_name(), None)
                            .await
                            .map(|_| ())
                    }
                    _ => Ok(()),
                };
                let _ = conn.close().await;
                result.map_err(db_step(storefront, format!("migrating {}", redact(url))))?;
                secured.map_err(step(
                    storefront,
                    format!("row-level security in {}", redact(url)),
                ))?;
                Ok(latest)
            }
        }
    }

    /// Drops `storefront` and all its data in its placement, and removes it from the
    /// directory. `confirm` must be the storefront id, typed back.
    pub async fn drop_storefront(
        &self,
        storefront: StorefrontId,
        confirm: &str,
    ) -> Result<(), TenancyError> {
        if confirm.trim() != storefront.to_string() {
            return Err(TenancyError::NotConfirmed {
                action: "drop".into(),
                storefront: storefront.to_string(),
            });
        }
        let directory = self.require_directory()?;
        let record =
            directory
                .get(storefront)
                .await?
                .ok_or_else(|| TenancyError::UnknownStorefront {
                    storefront: storefront.to_string(),
                })?;
        match &record.placement {
            Placement::Shared => self.delete_shared_rows(storefront).await?,
            other => self.drop_container(storefront, other).await?,
        }
        directory.remove(storefront).await
    }

    /// Deletes the storefront's rows from every scoped table of the shared database,
    /// children before parents (tables whose delete is blocked by a foreign key are
    /// retried after the others).
    async fn delete_shared_rows(&self, storefront: StorefrontId) -> Result<(), TenancyError> {
        let db = self.connection(storefront);
        let backend = self.shared().get_database_backend();
        let q = crate::backend::Dialect(backend).quote_char();
        let mut pending: Vec<String> = self
            .registry()
            .tables()
            .into_iter()
            .map(|(t, _)| t.to_owned())
            .collect();
        let mut last_error = None;
        for _round in 0..=pending.len() {
            let mut blocked = Vec::new();
            for table in pending.drain(..) {
                let sql = format!("DELETE FROM {q}{table}{q}");
                match db.execute_unprepared(&sql).await {
                    Ok(_) => {}
                    Err(e) if table_missing(&e) => {}
                    Err(e) => {
                        last_error = Some(e);
                        blocked.push(table);
                    }
                }
            }
            if blocked.is_empty() {
                return Ok(());
            }
            pending = blocked;
        }
        Err(db_step(storefront, "deleting shared rows")(
            last_error
                .unwrap_or_else(|| sea_orm::DbErr::Custom("foreign keys form a cycle".into())),
        ))
    }
}

pub(crate) fn table_missing(e: &sea_orm::DbErr) -> bool {
    crate::backend::classify(e) == ErrorClass::MissingTable
}
