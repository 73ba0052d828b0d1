//! [`Tenancy`], the framework handle, and the connections it hands out.
//!
//! A [`TenantConnection`] is what business code receives. It implements SeaORM's
//! `ConnectionTrait`, `TransactionTrait` and `StreamTrait`, so every ordinary SeaORM call
//! works with it unchanged; each statement is confined to the connection's storefront
//! before it reaches the database (see [`crate::rewrite`]).
//!
//! ```no_run
//! # async fn demo() -> Result<(), sea_orm::DbErr> {
//! use sea_orm::{ConnectionTrait, Database};
//! use tenancy_core::{StorefrontId, Tenancy};
//!
//! let shared = Database::connect("sqlite::memory:").await?;
//! let tenancy = Tenancy::new(shared);
//! let shop: StorefrontId = "0b5f6d0e-8f3c-4c2a-9a53-3e1f4b1f7d10".parse()?;
//! let db = tenancy.connection(shop);
//! // Customer::find().all(&db).await? sees only this storefront's customers.
//! # let _ = db.get_database_backend();
//! # Ok(()) }
//! ```

use std::{future::Future, pin::Pin, sync::Arc};

use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend, DbErr,
    ExecResult, IsolationLevel, QueryResult, QueryStream, Statement, StreamTrait, TransactionError,
    TransactionOptions, TransactionSession, TransactionStream, TransactionTrait,
};

use crate::{Registry, Rewriter, StorefrontId, TenancyError};

struct Inner {
    shared: DatabaseConnection,
    rewriter: Rewriter,
}

/// The framework handle: the shared database and the rewriter. Cheap to clone.
#[derive(Clone)]
pub struct Tenancy {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Tenancy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tenancy")
            .field("backend", &self.inner.shared.get_database_backend())
            .field("scoped_tables", &self.inner.rewriter.registry().tables())
            .finish()
    }
}

impl Tenancy {
    /// A handle over the shared database, knowing every table marked `#[tenant_scoped]`.
    pub fn new(shared: DatabaseConnection) -> Self {
        Self::with_registry(shared, Registry::from_entities())
    }

    /// A handle with an explicit registry of scoped tables.
    pub fn with_registry(shared: DatabaseConnection, registry: Registry) -> Self {
        Self {
            inner: Arc::new(Inner {
                shared,
                rewriter: Rewriter::new(registry),
            }),
        }
    }

    /// A connection confined to `storefront`.
    pub fn connection(&self, storefront: StorefrontId) -> TenantConnection {
        TenantConnection {
            inner: Arc::clone(&self.inner),
            storefront,
        }
    }

    /// The unconfined shared connection, for migrations and administration. Business code
    /// should never need it.
    pub fn shared(&self) -> &DatabaseConnection {
        &self.inner.shared
    }

    /// The registry of scoped tables.
    pub fn registry(&self) -> &Registry {
        self.inner.rewriter.registry()
    }

    /// Checks the shared database for tables that have a tenant column but are not
    /// registered as tenant-scoped (an entity missing `#[tenant_scoped]`, or one the linker
    /// dropped). Statements on such a table would not be confined, so call this at start-up.
    pub async fn verify_registry(&self) -> Result<(), TenancyError> {
        let db = &self.inner.shared;
        let columns: Vec<String> = {
            let mut c: Vec<String> = self
                .registry()
                .tables()
                .iter()
                .map(|(_, c)| c.to_string())
                .collect();
            if c.is_empty() {
                c.push("storefront_id".into());
            }
            c.sort();
            c.dedup();
            c
        };
        let mut unregistered = Vec::new();
        for column in columns {
            let stmt = match db.get_database_backend() {
                DbBackend::Postgres => Statement::from_sql_and_values(
                    DbBackend::Postgres,
                    "SELECT table_name::text FROM information_schema.columns \
                     WHERE table_schema = current_schema() AND column_name = $1",
                    [column.clone().into()],
                ),
                DbBackend::MySql => Statement::from_sql_and_values(
                    DbBackend::MySql,
                    "SELECT CAST(table_name AS CHAR) FROM information_schema.columns \
                     WHERE table_schema = DATABASE() AND column_name = ?",
                    [column.clone().into()],
                ),
                backend => Statement::from_sql_and_values(
                    backend,
                    "SELECT m.name FROM sqlite_master m, pragma_table_info(m.name) p \
                     WHERE m.type = 'table' AND p.name = ?",
                    [column.clone().into()],
                ),
            };
            for row in db.query_all_raw(stmt).await? {
                let table: String = row.try_get_by_index(0)?;
                if self.registry().tenant_column(&table).is_none() {
                    unregistered.push(table);
                }
            }
        }
        match unregistered.first() {
            None => Ok(()),
            Some(table) => Err(TenancyError::Refused {
                table: table.clone(),
                reason: format!(
                    "the table has a tenant column but no entity marked #[tenant_scoped] \
                     registers it (unregistered: {})",
                    unregistered.join(", ")
                ),
            }),
        }
    }
}

/// A connection confined to one storefront. Use it wherever SeaORM takes a connection.
#[derive(Clone)]
pub struct TenantConnection {
    inner: Arc<Inner>,
    storefront: StorefrontId,
}

impl std::fmt::Debug for TenantConnection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantConnection")
            .field("storefront", &self.storefront)
            .finish()
    }
}

impl TenantConnection {
    /// The storefront this connection is confined to.
    pub fn storefront(&self) -> StorefrontId {
        self.storefront
    }

    fn confine(&self, stmt: Statement) -> Result<Statement, DbErr> {
        self.inner
            .rewriter
            .rewrite(stmt, &self.storefront)
            .map_err(DbErr::from)
    }
}

/// A transaction confined to one storefront; nested `begin` opens a savepoint.
pub struct TenantTransaction {
    inner: Arc<Inner>,
    storefront: StorefrontId,
    txn: DatabaseTransaction,
}

impl std::fmt::Debug for TenantTransaction {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantTransaction")
            .field("storefront", &self.storefront)
            .finish()
    }
}

impl TenantTransaction {
    /// The storefront this transaction is confined to.
    pub fn storefront(&self) -> StorefrontId {
        self.storefront
    }

    fn confine(&self, stmt: Statement) -> Result<Statement, DbErr> {
        self.inner
            .rewriter
            .rewrite(stmt, &self.storefront)
            .map_err(DbErr::from)
    }

    fn wrap(&self, txn: DatabaseTransaction) -> TenantTransaction {
        TenantTransaction {
            inner: Arc::clone(&self.inner),
            storefront: self.storefront,
            txn,
        }
    }

    /// Commits the transaction (or releases the savepoint).
    pub async fn commit(self) -> Result<(), DbErr> {
        self.txn.commit().await
    }

    /// Rolls the transaction back (or to the savepoint).
    pub async fn rollback(self) -> Result<(), DbErr> {
        self.txn.rollback().await
    }

    async fn run<F, T, E>(self, callback: F) -> Result<T, TransactionError<E>>
    where
        F: for<'c> FnOnce(
                &'c TenantTransaction,
            ) -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
            + Send,
        T: Send,
        E: std::fmt::Display + std::fmt::Debug + Send,
    {
        let result = callback(&self).await.map_err(TransactionError::Transaction);
        if result.is_ok() {
            self.commit().await.map_err(TransactionError::Connection)?;
        } else {
            self.rollback()
                .await
                .map_err(TransactionError::Connection)?;
        }
        result
    }
}

/// `ConnectionTrait` for a tenant wrapper: confine, then delegate to `$target`.
macro_rules! confined_connection {
    ($ty:ty, |$s:ident| $target:expr) => {
        #[async_trait::async_trait]
        impl ConnectionTrait for $ty {
            fn get_database_backend(&self) -> DbBackend {
                let $s = self;
                ConnectionTrait::get_database_backend(&$target)
            }

            async fn execute_raw(&self, stmt: Statement) -> Result<ExecResult, DbErr> {
                let stmt = self.confine(stmt)?;
                let $s = self;
                $target.execute_raw(stmt).await
            }

            async fn execute_unprepared(&self, sql: &str) -> Result<ExecResult, DbErr> {
                let backend = ConnectionTrait::get_database_backend(self);
                let stmt = self.confine(Statement::from_string(backend, sql))?;
                let $s = self;
                match &stmt.values {
                    // Rewritten: the tenant value is bound, so it runs as a prepared statement.
                    Some(_) => $target.execute_raw(stmt).await,
                    None => $target.execute_unprepared(&stmt.sql).await,
                }
            }

            async fn query_one_raw(&self, stmt: Statement) -> Result<Option<QueryResult>, DbErr> {
                let stmt = self.confine(stmt)?;
                let $s = self;
                $target.query_one_raw(stmt).await
            }

            async fn query_all_raw(&self, stmt: Statement) -> Result<Vec<QueryResult>, DbErr> {
                let stmt = self.confine(stmt)?;
                let $s = self;
                $target.query_all_raw(stmt).await
            }

            fn support_returning(&self) -> bool {
                let $s = self;
                $target.support_returning()
            }
        }
    };
}

confined_connection!(TenantConnection, |c| c.inner.shared);
confined_connection!(TenantTransaction, |t| t.txn);

/// `TransactionTrait` for a tenant wrapper whose `begin*` are `$begin` on `$target`.
macro_rules! confined_transactions {
    ($ty:ty, |$s:ident| $target:expr, |$s2:ident, $txn:ident| $wrap:expr) => {
        #[async_trait::async_trait]
        impl TransactionTrait for $ty {
            type Transaction = TenantTransaction;

            async fn begin(&self) -> Result<TenantTransaction, DbErr> {
                let $s = self;
                let $txn = $target.begin().await?;
                let $s2 = self;
                Ok($wrap)
            }

            async fn begin_with_config(
                &self,
                isolation_level: Option<IsolationLevel>,
                access_mode: Option<AccessMode>,
            ) -> Result<TenantTransaction, DbErr> {
                let $s = self;
                let $txn = $target
                    .begin_with_config(isolation_level, access_mode)
                    .await?;
                let $s2 = self;
                Ok($wrap)
            }

            async fn begin_with_options(
                &self,
                options: TransactionOptions,
            ) -> Result<TenantTransaction, DbErr> {
                let $s = self;
                let $txn = $target.begin_with_options(options).await?;
                let $s2 = self;
                Ok($wrap)
            }

            async fn transaction<F, T, E>(&self, callback: F) -> Result<T, TransactionError<E>>
            where
                F: for<'c> FnOnce(
                        &'c TenantTransaction,
                    )
                        -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
                    + Send,
                T: Send,
                E: std::fmt::Display + std::fmt::Debug + Send,
            {
                let txn = self.begin().await.map_err(TransactionError::Connection)?;
                txn.run(callback).await
            }

            async fn transaction_with_config<F, T, E>(
                &self,
                callback: F,
                isolation_level: Option<IsolationLevel>,
                access_mode: Option<AccessMode>,
            ) -> Result<T, TransactionError<E>>
            where
                F: for<'c> FnOnce(
                        &'c TenantTransaction,
                    )
                        -> Pin<Box<dyn Future<Output = Result<T, E>> + Send + 'c>>
                    + Send,
                T: Send,
                E: std::fmt::Display + std::fmt::Debug + Send,
            {
                let txn = self
                    .begin_with_config(isolation_level, access_mode)
                    .await
                    .map_err(TransactionError::Connection)?;
                txn.run(callback).await
            }
        }
    };
}

confined_transactions!(TenantConnection, |c| c.inner.shared, |c2, txn| {
    TenantTransaction {
        inner: Arc::clone(&c2.inner),
        storefront: c2.storefront,
        txn,
    }
});
confined_transactions!(TenantTransaction, |t| t.txn, |t2, txn| t2.wrap(txn));

#[async_trait::async_trait]
impl TransactionSession for TenantTransaction {
    async fn commit(self) -> Result<(), DbErr> {
        TenantTransaction::commit(self).await
    }

    async fn rollback(self) -> Result<(), DbErr> {
        TenantTransaction::rollback(self).await
    }
}

impl StreamTrait for TenantConnection {
    type Stream<'a> = QueryStream;

    fn get_database_backend(&self) -> DbBackend {
        self.inner.shared.get_database_backend()
    }

    fn stream_raw<'a>(
        &'a self,
        stmt: Statement,
    ) -> Pin<Box<dyn Future<Output = Result<QueryStream, DbErr>> + 'a + Send>> {
        Box::pin(async move {
            let stmt = self.confine(stmt)?;
            self.inner.shared.stream_raw(stmt).await
        })
    }
}

impl StreamTrait for TenantTransaction {
    type Stream<'a> = TransactionStream<'a>;

    fn get_database_backend(&self) -> DbBackend {
        StreamTrait::get_database_backend(&self.txn)
    }

    fn stream_raw<'a>(
        &'a self,
        stmt: Statement,
    ) -> Pin<Box<dyn Future<Output = Result<TransactionStream<'a>, DbErr>> + 'a + Send>> {
        Box::pin(async move {
            let stmt = self.confine(stmt)?;
            self.txn.stream_raw(stmt).await
        })
    }
}
