//! [`TenantTransaction`]: a transaction confined to one storefront.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
};

use sea_orm::{
    ConnectionTrait, DatabaseTransaction, DbBackend, DbErr, Statement, StreamTrait,
    TransactionError, TransactionSession,
};

use super::{
    fence, forget,
    held::HeldTransaction,
    refuse_global_join,
    traits::{connection_traits, Answer, Begin, Call},
    PlacementCache, TenantStream,
};
use crate::{pool::Lease, stats::QueryStats, tenancy::Inner, StorefrontId};

/// What a [`TenantTransaction`] runs on.
pub(crate) enum Txn {
    /// SeaORM's own transaction.
    Orm(DatabaseTransaction),
    /// A connection the framework holds (row-level security, transaction poolers).
    Held(HeldTransaction),
}

/// A transaction confined to one storefront; nested `begin` opens a savepoint.
pub struct TenantTransaction {
    stats: Arc<QueryStats>,
    inner: Arc<Inner>,
    storefront: StorefrontId,
    /// The connection's placement cache, forgotten if a fence refuses a statement here.
    placement: PlacementCache,
    schema: Option<String>,
    /// Runs in the storefront's own database.
    own_database: bool,
    txn: Txn,
    /// Keeps the tenant pool open while the transaction lives.
    _lease: Option<Arc<Lease>>,
    /// Set when a move's fence refused one of its statements (shared with nested ones).
    fenced: Arc<AtomicBool>,
    /// The directory cache's generation when the transaction's placement was resolved.
    began_at: u64,
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

    /// A transaction cannot be replayed, so a fenced statement fails it; the connection's
    /// placement is forgotten so that the caller's retry starts on the new placement. A
    /// serialization failure or a deadlock is marked the same way: a repeatable-read
    /// transaction whose snapshot predates a move's fence meets the fence as 40001, not as
    /// the fence's error, and any such transaction may run again whole.
    fn fenced<T>(&self, result: Result<T, DbErr>) -> Result<T, DbErr> {
        if let Err(e) = &result {
            use crate::backend::{classify, ErrorClass};
            if fence::is_retryable(e)
                || super::held::lost_unnamed(e)
                || matches!(
                    classify(e),
                    ErrorClass::SerializationFailure | ErrorClass::Deadlock
                )
            {
                forget(&self.inner, self.storefront, &self.placement);
                self.fenced
                    .store(true, std::sync::atomic::Ordering::Relaxed);
            }
        }
        result
    }

    /// Before each statement, without any I/O: if the directory has applied a change of
    /// this storefront since the transaction began (or forgot everything, or this
    /// process's lease has run out), the statement fails like a fenced one, for
    /// `transaction_retrying` to run the transaction again on the new placement: once a
    /// cutover has reported `switched`, no statement reads the old copy, in a transaction
    /// either. (A read of the directory here could wait for the very pool connection the
    /// transaction holds.)
    fn confirm(&self) -> Result<(), DbErr> {
        let Some(directory) = self.inner.directory.as_deref() else {
            return Ok(());
        };
        // A stopped watcher (`Tenancy::shutdown`) leaves the placement read from the table
        // when the transaction began: no lease can confirm it, and none can lapse.
        let unconfirmed = directory.lapsed() && !directory.stopped();
        if !unconfirmed && !directory.changed_since(self.storefront, self.began_at) {
            return Ok(());
        }
        forget(&self.inner, self.storefront, &self.placement);
        self.fenced.store(true, Ordering::Relaxed);
        Err(DbErr::Custom(format!(
            "{}{}: storefront {}'s placement changed (or could not be confirmed) while this \
             transaction was open; run it again (`transaction_retrying` does)",
            crate::error::PREFIX,
            fence::FENCED,
            self.storefront
        )))
    }

    fn confine(&self, stmt: Statement) -> Result<Statement, DbErr> {
        let confined =
            self.inner
                .rewriter
                .confine(stmt, &self.storefront, self.schema.as_deref())?;
        if self.own_database && confined.scoped {
            refuse_global_join(&confined)?;
        }
        Ok(confined.statement)
    }

    /// A transaction of `inner`'s tenancy, begun by a [`TenantConnection`](super::TenantConnection).
    #[allow(
        clippy::too_many_arguments,
        reason = "one call site: TenantConnection::open"
    )]
    pub(crate) fn new(
        inner: Arc<Inner>,
        storefront: StorefrontId,
        stats: Arc<QueryStats>,
        placement: PlacementCache,
        schema: Option<String>,
        own_database: bool,
        txn: Txn,
        lease: Option<Arc<Lease>>,
        began_at: u64,
    ) -> Self {
        Self {
            stats,
            inner,
            storefront,
            placement,
            schema,
            own_database,
            txn,
            _lease: lease,
            fenced: Arc::default(),
            began_at,
        }
    }

    /// Set once a fence refused one of its statements (shared with nested transactions).
    pub(crate) fn fenced_flag(&self) -> Arc<AtomicBool> {
        Arc::clone(&self.fenced)
    }

    fn backend(&self) -> DbBackend {
        match &self.txn {
            Txn::Orm(txn) => ConnectionTrait::get_database_backend(txn),
            Txn::Held(_) => DbBackend::Postgres,
        }
    }

    fn returning(&self) -> bool {
        match &self.txn {
            Txn::Orm(txn) => txn.support_returning(),
            Txn::Held(_) => true,
        }
    }

    /// What `timed` records for this transaction.
    fn observed(&self) -> (&QueryStats, StorefrontId, &PlacementCache) {
        (&self.stats, self.storefront, &self.placement)
    }

    /// Confines a statement and runs it in this transaction.
    async fn call(&self, call: Call) -> Result<Answer, DbErr> {
        self.confirm()?;
        let stmt = self.confine(call.statement().clone())?;
        let call = call.with(stmt);
        self.fenced(match &self.txn {
            Txn::Orm(txn) => call.run(txn).await,
            Txn::Held(txn) => txn.run(call).await,
        })
    }

    /// Begins a nested transaction (a savepoint).
    async fn open(&self, begin: Begin) -> Result<TenantTransaction, DbErr> {
        Ok(self.wrap(match &self.txn {
            Txn::Orm(txn) => Txn::Orm(begin.on(txn).await?),
            Txn::Held(txn) => Txn::Held(txn.nested().await?),
        }))
    }

    fn wrap(&self, txn: Txn) -> TenantTransaction {
        TenantTransaction {
            stats: Arc::clone(&self.stats),
            inner: Arc::clone(&self.inner),
            storefront: self.storefront,
            placement: Arc::clone(&self.placement),
            schema: self.schema.clone(),
            own_database: self.own_database,
            txn,
            _lease: self._lease.clone(),
            fenced: Arc::clone(&self.fenced),
            began_at: self.began_at,
        }
    }

    /// Commits the transaction (or releases the savepoint).
    pub async fn commit(self) -> Result<(), DbErr> {
        match self.txn {
            Txn::Orm(txn) => txn.commit().await,
            Txn::Held(txn) => txn.commit().await,
        }
    }

    /// Rolls the transaction back (or to the savepoint).
    pub async fn rollback(self) -> Result<(), DbErr> {
        match self.txn {
            Txn::Orm(txn) => txn.rollback().await,
            Txn::Held(txn) => txn.rollback().await,
        }
    }

    pub(crate) async fn run<F, T, E>(self, callback: F) -> Result<T, TransactionError<E>>
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

connection_traits!(TenantTransaction);

#[async_trait::async_trait]
impl TransactionSession for TenantTransaction {
    async fn commit(self) -> Result<(), DbErr> {
        TenantTransaction::commit(self).await
    }

    async fn rollback(self) -> Result<(), DbErr> {
        TenantTransaction::rollback(self).await
    }
}

impl StreamTrait for TenantTransaction {
    type Stream<'a> = TenantStream<'a>;

    fn get_database_backend(&self) -> DbBackend {
        self.backend()
    }

    fn stream_raw<'a>(
        &'a self,
        stmt: Statement,
    ) -> Pin<Box<dyn Future<Output = Result<TenantStream<'a>, DbErr>> + 'a + Send>> {
        Box::pin(async move {
            self.confirm()?;
            let stmt = self.confine(stmt)?;
            match &self.txn {
                Txn::Orm(txn) => Ok(Box::pin(txn.stream_raw(stmt).await?) as TenantStream<'a>),
                Txn::Held(txn) => txn.stream(stmt).await,
            }
        })
    }
}
