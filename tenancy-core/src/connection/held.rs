//! Statements run on a pooled PostgreSQL connection the framework holds itself, inside a
//! transaction of its own, through sqlx directly.
//!
//! Two things need it, alone or together:
//!
//! - row-level security: every storefront statement runs in a transaction that opens
//!   with the prelude (`SET LOCAL ROLE`, the storefront's setting), see [`crate::rls`];
//! - a transaction pooler in front of the server ([`crate::pooler`]): nothing may outlive
//!   a transaction, so statements are *unnamed* (sqlx's `persistent(false)`), parsed,
//!   bound and executed inside the one transaction that holds the server connection.
//!
//! [`Opening`] says which. [`single`] runs one statement of a connection, [`stream`] one
//! streamed statement, and [`HeldTransaction`] is a storefront's own transaction, with
//! savepoints for nested ones. Whatever fails or is abandoned midway, a connection whose
//! transaction was not seen to end is closed, never returned to the pool.

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use sea_orm::{
    sqlx::{self, pool::PoolConnection, PgPool, Postgres},
    AccessMode, DatabaseConnection, DbErr, IsolationLevel, Statement,
};
use sea_query_sqlx::SqlxValues;

use super::{
    traits::{Answer, Begin, Call},
    TenantStream,
};
use crate::{error::PREFIX, rls::reads_only, Registry};

/// How a held transaction opens and how its statements are sent.
#[derive(Clone, Debug)]
pub(crate) struct Opening {
    /// Sent after `BEGIN` in the same simple query (row-level security's prelude).
    pub prelude: Option<String>,
    /// Whether statements may be prepared as named, cached statements: not behind a
    /// transaction pooler, where the next transaction meets another server connection.
    pub named: bool,
}

impl Opening {
    /// The simple query that opens a transaction: `begin`, then the prelude.
    fn begin_sql(&self, begin: &str) -> String {
        match &self.prelude {
            Some(prelude) => format!("{begin}; {prelude}"),
            None => begin.to_owned(),
        }
    }
}

/// The `BEGIN` statement for a [`Begin`].
pub(crate) fn begin_statement(begin: &Begin) -> String {
    let (isolation, access) = match begin {
        Begin::Default => (None, None),
        Begin::Config(isolation, access) => (*isolation, *access),
        Begin::Options(options) => (options.isolation_level, options.access_mode),
    };
    let mut sql = String::from("BEGIN");
    if let Some(isolation) = isolation {
        sql.push_str(match isolation {
            IsolationLevel::RepeatableRead => " ISOLATION LEVEL REPEATABLE READ",
            IsolationLevel::ReadCommitted => " ISOLATION LEVEL READ COMMITTED",
            IsolationLevel::ReadUncommitted => " ISOLATION LEVEL READ UNCOMMITTED",
            IsolationLevel::Serializable => " ISOLATION LEVEL SERIALIZABLE",
        });
    }
    if let Some(access) = access {
        sql.push_str(match access {
            AccessMode::ReadOnly => " READ ONLY",
            AccessMode::ReadWrite => " READ WRITE",
        });
    }
    sql
}

/// The sqlx pool under a SeaORM PostgreSQL connection.
pub(crate) fn pool_of(conn: &DatabaseConnection) -> Result<PgPool, DbErr> {
    match &conn.inner {
        sea_orm::DatabaseConnectionType::SqlxPostgresPoolConnection(_) => {
            Ok(conn.get_postgres_connection_pool().clone())
        }
        _ => Err(crate::TenancyError::Unsupported {
            placement: "a held transaction".into(),
            backend: "this connection".into(),
            reason: "row-level security and transaction poolers run on a PostgreSQL \
                     connection pool"
                .into(),
        }
        .into()),
    }
}

/// A pooled connection inside a transaction: closed when dropped unless the transaction
/// was seen to end.
pub(crate) struct Held {
    conn: PoolConnection<Postgres>,
    ended: bool,
}

impl Held {
    /// Takes a connection from `pool` and opens a transaction on it with `sql` (one
    /// simple query: `BEGIN ...` and the prelude).
    async fn begin(pool: &PgPool, sql: String) -> Result<Held, DbErr> {
        let mut held = Held {
            conn: pool.acquire().await.map_err(begin_err)?,
            ended: false,
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *held.conn)
            .await
            .map_err(query_err)?;
        Ok(held)
    }

    /// Runs one call in the transaction.
    async fn run(&mut self, call: &Call, named: bool) -> Result<Answer, DbErr> {
        let stmt = call.statement();
        if let (Call::Unprepared(_), None) = (call, &stmt.values) {
            return sqlx::raw_sql(sqlx::AssertSqlSafe(stmt.sql.clone()))
                .execute(&mut *self.conn)
                .await
                .map(|r| Answer::Exec(r.into()))
                .map_err(exec_err);
        }
        let query = query(stmt, named);
        match call {
            Call::Execute(_) | Call::Unprepared(_) => query
                .execute(&mut *self.conn)
                .await
                .map(|r| Answer::Exec(r.into()))
                .map_err(exec_err),
            Call::QueryOne(_) => query
                .fetch_optional(&mut *self.conn)
                .await
                .map(|r| Answer::One(r.map(Into::into)))
                .map_err(query_err),
            Call::QueryAll(_) => query
                .fetch_all(&mut *self.conn)
                .await
                .map(|rows| Answer::All(rows.into_iter().map(Into::into).collect()))
                .map_err(query_err),
        }
    }

    /// A simple query inside the transaction (a savepoint's).
    async fn simple(&mut self, sql: &str) -> Result<(), DbErr> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&mut *self.conn)
            .await
            .map(|_| ())
            .map_err(exec_err)
    }

    /// Ends the transaction with `sql` (`COMMIT` or `ROLLBACK`); the connection goes back
    /// to the pool only if the server answered.
    async fn end(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        let result = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&mut *self.conn)
            .await;
        // The server answered: the transaction is over either way (a `COMMIT` refused by a
        // deferred constraint or a serialization failure ends it too).
        self.ended = matches!(result, Ok(_) | Err(sqlx::Error::Database(_)));
        result.map(|_| ())
    }

    /// [`Self::end`] as a task of its own.
    async fn finish(mut self, sql: &'static str) {
        if let Err(e) = self.end(sql).await {
            tracing::debug!(error = %e, "ending a held transaction failed; the connection is closed");
        }
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if !self.ended {
            self.conn.close_on_drop();
        }
    }
}

/// The sqlx query for a SeaORM statement: unnamed unless `named`.
fn query(
    stmt: &Statement,
    named: bool,
) -> sqlx::query::Query<'_, Postgres, SqlxValues> {
    let values = stmt
        .values
        .clone()
        .unwrap_or(sea_orm::sea_query::Values(Vec::new()));
    sqlx::query_with(sqlx::AssertSqlSafe(stmt.sql.as_str()), SqlxValues(values)).persistent(named)
}

/// Runs one statement (outside any transaction of the caller's) in a transaction of its
/// own. `BEGIN` and the prelude travel in one simple query. A read (see
/// [`reads_only`]) runs in a read-only transaction whose `ROLLBACK` is sent after the
/// answer is returned, before the connection goes back to the pool; anything else commits.
pub(crate) async fn single(
    conn: &DatabaseConnection,
    call: Call,
    opening: &Opening,
    registry: &Registry,
) -> Result<Answer, DbErr> {
    let pool = pool_of(conn)?;
    let read_only = reads_only(&call.statement().sql, registry);
    let begin = if read_only { "BEGIN READ ONLY" } else { "BEGIN" };
    let mut held = Held::begin(&pool, opening.begin_sql(begin)).await?;
    match held.run(&call, opening.named).await {
        Ok(answer) if read_only => {
            // Nothing to keep: end the transaction off the caller's path.
            tokio::spawn(held.finish("ROLLBACK"));
            Ok(answer)
        }
        Ok(answer) => {
            held.end("COMMIT").await.map_err(exec_err)?;
            Ok(answer)
        }
        Err(e) => {
            // The statement's own error is the one to report; a failed rollback only
            // means the connection is closed instead of reused.
            let _ = held.end("ROLLBACK").await;
            Err(e)
        }
    }
}

/// Streams one statement's rows from a transaction of its own, held by a task that hands
/// the rows over a bounded channel and commits after the last. If the stream is dropped
/// early, a read is rolled back; a statement that may write is run to its end and
/// committed, as it would have been outside a transaction.
pub(crate) async fn stream(
    conn: &DatabaseConnection,
    stmt: Statement,
    opening: &Opening,
    registry: &Registry,
    keep: Box<dyn std::any::Any + Send>,
) -> Result<TenantStream<'static>, DbErr> {
    let pool = pool_of(conn)?;
    let read_only = reads_only(&stmt.sql, registry);
    let begin = opening.begin_sql(if read_only { "BEGIN READ ONLY" } else { "BEGIN" });
    let named = opening.named;
    let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
    let (tx, rx) = tokio::sync::mpsc::channel(64);
    tokio::spawn(async move {
        use futures_util::StreamExt;
        // Keeps a storefront database's pool open while the stream runs.
        let _keep = keep;
        let mut held = match Held::begin(&pool, begin).await {
            Ok(held) => held,
            Err(e) => {
                let _ = ready_tx.send(Err(e));
                return;
            }
        };
        let (listening, failed) = {
            let mut rows = query(&stmt, named).fetch(&mut *held.conn);
            let first = rows.next().await;
            let listening = ready_tx.send(Ok(())).is_ok();
            forward(first, &mut rows, &tx, listening, read_only).await
        };
        if !listening && read_only {
            let _ = held.end("ROLLBACK").await;
            return;
        }
        let end = if failed {
            held.end("ROLLBACK").await
        } else {
            held.end("COMMIT").await
        };
        if let (Err(e), true) = (end, listening) {
            let _ = tx.send(Err(exec_err(e))).await;
        }
    });
    ready_rx.await.map_err(|_| {
        DbErr::Custom(format!(
            "{PREFIX}the task streaming a storefront's rows stopped before its first row"
        ))
    })??;
    Ok(receiver_stream(rx))
}

/// Hands `first` and the rest of `rows` to `tx`. Returns whether the receiver still
/// listens and whether a row failed. A read stops as soon as nobody listens; anything
/// else runs to its end.
async fn forward<S>(
    first: Option<Result<sqlx::postgres::PgRow, sqlx::Error>>,
    rows: &mut S,
    tx: &tokio::sync::mpsc::Sender<Result<sea_orm::QueryResult, DbErr>>,
    mut listening: bool,
    stop_unheard: bool,
) -> (bool, bool)
where
    S: futures_util::Stream<Item = Result<sqlx::postgres::PgRow, sqlx::Error>> + Unpin,
{
    use futures_util::StreamExt;
    let mut failed = false;
    let mut next = first;
    while let Some(row) = next {
        failed |= row.is_err();
        let row = row.map(Into::into).map_err(query_err);
        if listening && tx.send(row).await.is_err() {
            listening = false;
            if stop_unheard {
                return (false, failed);
            }
        }
        next = rows.next().await;
    }
    (listening, failed)
}

fn receiver_stream(
    mut rx: tokio::sync::mpsc::Receiver<Result<sea_orm::QueryResult, DbErr>>,
) -> TenantStream<'static> {
    Box::pin(futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx)))
}

/// The state one held transaction and its savepoints share.
struct Shared {
    held: Arc<tokio::sync::Mutex<Held>>,
    /// The outermost savepoint depth a dropped nested transaction left open, to be rolled
    /// back before the next statement of an enclosing one.
    unwind: std::sync::Mutex<Option<u32>>,
    named: bool,
}

/// A storefront's own transaction on a held connection; nested `begin` opens a savepoint.
pub(crate) struct HeldTransaction {
    shared: Arc<Shared>,
    /// 0 for the transaction, n for the n-th nested savepoint.
    depth: u32,
    done: AtomicBool,
}

impl HeldTransaction {
    /// Opens a transaction on a connection of `conn`'s pool.
    pub(crate) async fn begin(
        conn: &DatabaseConnection,
        begin: &Begin,
        opening: &Opening,
    ) -> Result<HeldTransaction, DbErr> {
        let pool = pool_of(conn)?;
        let held = Held::begin(&pool, opening.begin_sql(&begin_statement(begin))).await?;
        Ok(HeldTransaction {
            shared: Arc::new(Shared {
                held: Arc::new(tokio::sync::Mutex::new(held)),
                unwind: std::sync::Mutex::new(None),
                named: opening.named,
            }),
            depth: 0,
            done: AtomicBool::new(false),
        })
    }

    /// Locks the connection, first rolling back a savepoint a dropped nested transaction
    /// left open.
    async fn lock(&self) -> Result<tokio::sync::OwnedMutexGuard<Held>, DbErr> {
        let mut held = Arc::clone(&self.shared.held).lock_owned().await;
        let unwind = {
            let mut unwind = self
                .shared
                .unwind
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            match *unwind {
                Some(depth) if depth > self.depth => unwind.take(),
                _ => None,
            }
        };
        if let Some(depth) = unwind {
            held.simple(&format!(
                "ROLLBACK TO SAVEPOINT tenancy_sp_{depth}; RELEASE SAVEPOINT tenancy_sp_{depth}"
            ))
            .await?;
        }
        Ok(held)
    }

    /// Runs one call in the transaction.
    pub(crate) async fn run(&self, call: Call) -> Result<Answer, DbErr> {
        let mut held = self.lock().await?;
        held.run(&call, self.shared.named).await
    }

    /// Streams one statement's rows; the transaction's other statements wait until the
    /// stream is done or dropped.
    pub(crate) async fn stream(&self, stmt: Statement) -> Result<TenantStream<'static>, DbErr> {
        let mut held = self.lock().await?;
        let named = self.shared.named;
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            use futures_util::StreamExt;
            let mut rows = query(&stmt, named).fetch(&mut *held.conn);
            let first = rows.next().await;
            let listening = ready_tx.send(Ok::<(), DbErr>(())).is_ok();
            forward(first, &mut rows, &tx, listening, true).await;
        });
        ready_rx.await.map_err(|_| {
            DbErr::Custom(format!(
                "{PREFIX}the task streaming a transaction's rows stopped before its first row"
            ))
        })??;
        Ok(receiver_stream(rx))
    }

    /// Opens a nested transaction: a savepoint.
    pub(crate) async fn nested(&self) -> Result<HeldTransaction, DbErr> {
        let depth = self.depth + 1;
        let mut held = self.lock().await?;
        held.simple(&format!("SAVEPOINT tenancy_sp_{depth}")).await?;
        Ok(HeldTransaction {
            shared: Arc::clone(&self.shared),
            depth,
            done: AtomicBool::new(false),
        })
    }

    /// Commits the transaction, or releases the savepoint.
    pub(crate) async fn commit(self) -> Result<(), DbErr> {
        self.done.store(true, Ordering::Relaxed);
        let mut held = self.lock().await?;
        match self.depth {
            0 => held.end("COMMIT").await.map_err(exec_err),
            depth => held.simple(&format!("RELEASE SAVEPOINT tenancy_sp_{depth}")).await,
        }
    }

    /// Rolls the transaction back, or back to the savepoint.
    pub(crate) async fn rollback(self) -> Result<(), DbErr> {
        self.done.store(true, Ordering::Relaxed);
        let mut held = self.lock().await?;
        match self.depth {
            0 => held.end("ROLLBACK").await.map_err(exec_err),
            depth => {
                held.simple(&format!(
                    "ROLLBACK TO SAVEPOINT tenancy_sp_{depth}; RELEASE SAVEPOINT tenancy_sp_{depth}"
                ))
                .await
            }
        }
    }
}

impl Drop for HeldTransaction {
    /// Neither committed nor rolled back: a savepoint is rolled back before the enclosing
    /// transaction's next statement; the transaction itself is rolled back by a task (or,
    /// without a runtime, its connection is closed, which rolls it back on the server).
    fn drop(&mut self) {
        if self.done.load(Ordering::Relaxed) {
            return;
        }
        if self.depth > 0 {
            let mut unwind = self
                .shared
                .unwind
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            *unwind = Some(unwind.map_or(self.depth, |d| d.min(self.depth)));
            return;
        }
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            let held = Arc::clone(&self.shared.held);
            runtime.spawn(async move {
                let mut held = held.lock().await;
                if !held.ended {
                    if let Err(e) = held.end("ROLLBACK").await {
                        tracing::debug!(error = %e, "rolling back a dropped transaction failed; the connection is closed");
                    }
                }
            });
        }
    }
}

fn exec_err(e: sqlx::Error) -> DbErr {
    DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e.into()))
}

fn query_err(e: sqlx::Error) -> DbErr {
    DbErr::Query(sea_orm::RuntimeErr::SqlxError(e.into()))
}

/// As SeaORM reports a pool that timed out or closed, so that callers (and the pools'
/// budget) see the same errors here.
fn begin_err(e: sqlx::Error) -> DbErr {
    use sea_orm::ConnAcquireErr;
    match e {
        sqlx::Error::PoolTimedOut => DbErr::ConnectionAcquire(ConnAcquireErr::Timeout),
        sqlx::Error::PoolClosed => DbErr::ConnectionAcquire(ConnAcquireErr::ConnectionClosed),
        other => query_err(other),
    }
}
