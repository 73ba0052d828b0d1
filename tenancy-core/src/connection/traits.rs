//! SeaORM's `ConnectionTrait` and `TransactionTrait`, implemented once for both
//! [`TenantConnection`](super::TenantConnection) and
//! [`TenantTransaction`](super::TenantTransaction).
//!
//! Each type says only what differs: where a confined statement runs (`call`: the
//! connection resolves the placement and retries fenced statements; the transaction runs
//! on its own transaction and marks it fenced) and how a transaction begins (`open`).
//! Every statement of either type is timed and traced the same way.

use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseTransaction, DbErr, ExecResult, IsolationLevel,
    QueryResult, Statement, TransactionOptions, TransactionTrait,
};

/// One statement call of `ConnectionTrait`.
pub(crate) enum Call {
    /// `execute_raw`.
    Execute(Statement),
    /// `execute_unprepared`: runs unprepared unless confinement bound a parameter.
    Unprepared(Statement),
    /// `query_one_raw`.
    QueryOne(Statement),
    /// `query_all_raw`.
    QueryAll(Statement),
}

/// What a [`Call`] returns.
pub(crate) enum Answer {
    Exec(ExecResult),
    One(Option<QueryResult>),
    All(Vec<QueryResult>),
}

impl Call {
    /// The operation's name in traces.
    pub(crate) fn op(&self) -> &'static str {
        match self {
            Call::Execute(_) | Call::Unprepared(_) => "execute",
            Call::QueryOne(_) => "query_one",
            Call::QueryAll(_) => "query_all",
        }
    }

    /// The statement as the caller gave it.
    pub(crate) fn statement(&self) -> &Statement {
        match self {
            Call::Execute(s) | Call::Unprepared(s) | Call::QueryOne(s) | Call::QueryAll(s) => s,
        }
    }

    /// The same call with `stmt` (the confined statement) instead.
    pub(crate) fn with(&self, stmt: Statement) -> Call {
        match self {
            Call::Execute(_) => Call::Execute(stmt),
            Call::Unprepared(_) => Call::Unprepared(stmt),
            Call::QueryOne(_) => Call::QueryOne(stmt),
            Call::QueryAll(_) => Call::QueryAll(stmt),
        }
    }

    /// Runs the call on `conn`.
    pub(crate) async fn run<C: ConnectionTrait>(self, conn: &C) -> Result<Answer, DbErr> {
        Ok(match self {
            Call::Execute(stmt) => Answer::Exec(conn.execute_raw(stmt).await?),
            Call::Unprepared(stmt) => Answer::Exec(match &stmt.values {
                // Rewritten: the tenant value is bound, so it runs as a prepared statement.
                Some(_) => conn.execute_raw(stmt).await?,
                None => conn.execute_unprepared(&stmt.sql).await?,
            }),
            Call::QueryOne(stmt) => Answer::One(conn.query_one_raw(stmt).await?),
            Call::QueryAll(stmt) => Answer::All(conn.query_all_raw(stmt).await?),
        })
    }
}

fn mismatch() -> DbErr {
    DbErr::Custom("tenancy: a statement call returned another call's answer".into())
}

impl Answer {
    pub(crate) fn exec(self) -> Result<ExecResult, DbErr> {
        match self {
            Answer::Exec(r) => Ok(r),
            _ => Err(mismatch()),
        }
    }

    pub(crate) fn one(self) -> Result<Option<QueryResult>, DbErr> {
        match self {
            Answer::One(r) => Ok(r),
            _ => Err(mismatch()),
        }
    }

    pub(crate) fn all(self) -> Result<Vec<QueryResult>, DbErr> {
        match self {
            Answer::All(r) => Ok(r),
            _ => Err(mismatch()),
        }
    }
}

/// How `TransactionTrait` was asked to begin.
pub(crate) enum Begin {
    Default,
    Config(Option<IsolationLevel>, Option<AccessMode>),
    Options(TransactionOptions),
}

impl Begin {
    /// Begins on `conn` (a transaction, or a savepoint inside one).
    pub(crate) async fn on<C>(self, conn: &C) -> Result<DatabaseTransaction, DbErr>
    where
        C: TransactionTrait<Transaction = DatabaseTransaction>,
    {
        match self {
            Begin::Default => conn.begin().await,
            Begin::Config(isolation, access) => conn.begin_with_config(isolation, access).await,
            Begin::Options(options) => conn.begin_with_options(options).await,
        }
    }
}

/// Implements `ConnectionTrait` and `TransactionTrait` for `$ty`, which provides
/// `backend()`, `returning()`, `observed()`, `call(Call)` and `open(Begin)`.
macro_rules! connection_traits {
    ($ty:ty) => {
        impl $ty {
            async fn timed_call(
                &self,
                call: $crate::connection::traits::Call,
            ) -> Result<$crate::connection::traits::Answer, sea_orm::DbErr> {
                let (stats, storefront, placement) = self.observed();
                $crate::connection::timed(stats, storefront, placement, call.op(), self.call(call))
                    .await
            }
        }

        #[async_trait::async_trait]
        impl sea_orm::ConnectionTrait for $ty {
            fn get_database_backend(&self) -> sea_orm::DbBackend {
                self.backend()
            }

            async fn execute_raw(
                &self,
                stmt: sea_orm::Statement,
            ) -> Result<sea_orm::ExecResult, sea_orm::DbErr> {
                self.timed_call(Call::Execute(stmt)).await?.exec()
            }

            async fn execute_unprepared(
                &self,
                sql: &str,
            ) -> Result<sea_orm::ExecResult, sea_orm::DbErr> {
                let stmt = sea_orm::Statement::from_string(self.backend(), sql);
                self.timed_call(Call::Unprepared(stmt)).await?.exec()
            }

            async fn query_one_raw(
                &self,
                stmt: sea_orm::Statement,
            ) -> Result<Option<sea_orm::QueryResult>, sea_orm::DbErr> {
                self.timed_call(Call::QueryOne(stmt)).await?.one()
            }

            async fn query_all_raw(
                &self,
                stmt: sea_orm::Statement,
            ) -> Result<Vec<sea_orm::QueryResult>, sea_orm::DbErr> {
                self.timed_call(Call::QueryAll(stmt)).await?.all()
            }

            fn support_returning(&self) -> bool {
                self.returning()
            }
        }

        #[async_trait::async_trait]
        impl sea_orm::TransactionTrait for $ty {
            type Transaction = TenantTransaction;

            async fn begin(&self) -> Result<TenantTransaction, sea_orm::DbErr> {
                self.open(Begin::Default).await
            }

            async fn begin_with_config(
                &self,
                isolation_level: Option<sea_orm::IsolationLevel>,
                access_mode: Option<sea_orm::AccessMode>,
            ) -> Result<TenantTransaction, sea_orm::DbErr> {
                self.open(Begin::Config(isolation_level, access_mode)).await
            }

            async fn begin_with_options(
                &self,
                options: sea_orm::TransactionOptions,
            ) -> Result<TenantTransaction, sea_orm::DbErr> {
                self.open(Begin::Options(options)).await
            }

            async fn transaction<F, T, E>(
                &self,
                callback: F,
            ) -> Result<T, sea_orm::TransactionError<E>>
            where
                F: for<'c> FnOnce(
                        &'c TenantTransaction,
                    ) -> std::pin::Pin<
                        Box<dyn std::future::Future<Output = Result<T, E>> + Send + 'c>,
                    > + Send,
                T: Send,
                E: std::fmt::Display + std::fmt::Debug + Send,
            {
                let txn = self
                    .open(Begin::Default)
                    .await
                    .map_err(sea_orm::TransactionError::Connection)?;
                txn.run(callback).await
            }

            async fn transaction_with_config<F, T, E>(
                &self,
                callback: F,
                isolation_level: Option<sea_orm::IsolationLevel>,
                access_mode: Option<sea_orm::AccessMode>,
            ) -> Result<T, sea_orm::TransactionError<E>>
            where
                F: for<'c> FnOnce(
                        &'c TenantTransaction,
                    ) -> std::pin::Pin<
                        Box<dyn std::future::Future<Output = Result<T, E>> + Send + 'c>,
                    > + Send,
                T: Send,
                E: std::fmt::Display + std::fmt::Debug + Send,
            {
                let txn = self
                    .open(Begin::Config(isolation_level, access_mode))
                    .await
                    .map_err(sea_orm::TransactionError::Connection)?;
                txn.run(callback).await
            }
        }
    };
}

pub(crate) use connection_traits;
