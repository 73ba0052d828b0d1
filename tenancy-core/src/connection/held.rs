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
    /// to the pool only once a statement that ends it is known to have run.
    async fn end(&mut self, sql: &'static str) -> Result<(), sqlx::Error> {
        match end_with(&mut self.conn, sql).await {
            Ok(_) => {
                self.ended = true;
                Ok(())
            }
            Err(sqlx::Error::Database(e)) => {
                // Either `sql` was refused (a deferred constraint, a serialization failure:
                // the transaction is over), or this is the error of an earlier statement
                // whose caller stopped waiting, read before `sql` was even sent (the
                // transaction is still open, aborted). A `ROLLBACK` settles both.
                if end_with(&mut self.conn, "ROLLBACK").await.is_ok() {
                    self.ended = true;
                }
                Err(sqlx::Error::Database(e))
            }
            Err(e) => Err(e),
        }
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

async fn end_with(
    conn: &mut PoolConnection<Postgres>,
    sql: &'static str,
) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
        .execute(&mut **conn)
        .await
        .map(|_| ())
}

/// The sqlx query for a SeaORM statement: unnamed unless `named`.
fn query(stmt: &Statement, named: bool) -> sqlx::query::Query<'_, Postgres, SqlxValues> {
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
    let begin = if read_only {
        "BEGIN READ ONLY"
    } else {
        "BEGIN"
    };
    let mut held = Held::begin(&pool, opening.begin_sql(begin)).await?;
    let mut answer = held.run(&call, opening.named).await;
    if answer.as_ref().is_err_and(lost_unnamed) {
        // sqlx looked a type up between the statement's parse and its bind, which drops an
        // unnamed statement (sqlx #4305); the type is known on this connection now, so the
        // statement runs again here, in a new transaction.
        if held.end("ROLLBACK").await.is_ok() {
            held.ended = false;
            sqlx::raw_sql(sqlx::AssertSqlSafe(opening.begin_sql(begin)))
                .execute(&mut *held.conn)
                .await
                .map_err(query_err)?;
            answer = held.run(&call, opening.named).await;
        }
    }
    match answer {
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
    let begin = opening.begin_sql(if read_only {
        "BEGIN READ ONLY"
    } else {
        "BEGIN"
    });
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
    if !listening && stop_unheard {
        // Nobody waited for the first row: a read has nothing left to do.
        return (false, matches!(first, Some(Err(_))));
    }
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
    state: std::sync::Mutex<State>,
    named: bool,
}

/// Which savepoints are open, on the server's stack, outermost first.
#[derive(Default)]
struct State {
    /// The next savepoint's number (names are never reused, so an end never meets a
    /// sibling's savepoint of the same name).
    next: u64,
    live: Vec<u64>,
    /// A savepoint whose transaction was dropped without an end: rolled back (with every
    /// savepoint opened after it) before the next statement of the transaction.
    unwind: Option<u64>,
    /// Set when a savepoint's end was interrupted and whether it ran is unknown: every
    /// later statement of the transaction fails, and it can only roll back.
    poisoned: bool,
    /// Set before the transaction's own `COMMIT` or `ROLLBACK` is sent, never cleared:
    /// whatever becomes of that end (answered, failed, cut off), no statement of a nested
    /// transaction may follow it on the connection, where it would run outside any
    /// transaction.
    closing: bool,
}

impl State {
    /// Forgets `savepoint` and every savepoint opened after it.
    fn close(&mut self, savepoint: u64) {
        if let Some(at) = self.live.iter().position(|s| *s == savepoint) {
            self.live.truncate(at);
        }
    }
}

fn ended_err(what: &str) -> DbErr {
    DbErr::Custom(format!("{PREFIX}{what}"))
}

/// A storefront's own transaction on a held connection; nested `begin` opens a savepoint.
pub(crate) struct HeldTransaction {
    shared: Arc<Shared>,
    /// `None` for the transaction itself, else the savepoint this nested one opened.
    savepoint: Option<u64>,
    /// Committed or rolled back (the server answered).
    done: AtomicBool,
    /// Its end was sent; if it is dropped before the answer, whether it ran is unknown.
    ending: AtomicBool,
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
                state: std::sync::Mutex::new(State::default()),
                named: opening.named,
            }),
            savepoint: None,
            done: AtomicBool::new(false),
            ending: AtomicBool::new(false),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Locks the connection for a statement of this transaction: refused once the
    /// transaction (or this savepoint) has ended; a savepoint a dropped nested transaction
    /// left open is rolled back first.
    async fn lock(&self) -> Result<tokio::sync::OwnedMutexGuard<Held>, DbErr> {
        let mut held = Arc::clone(&self.shared.held).lock_owned().await;
        if held.ended {
            return Err(ended_err("this transaction has already ended"));
        }
        let unwind = {
            let state = self.state();
            if state.closing {
                return Err(ended_err("this transaction is ending or has ended"));
            }
            if state.poisoned {
                return Err(ended_err(
                    "a savepoint's end was interrupted in this transaction; it can only be rolled back",
                ));
            }
            state.unwind.filter(|u| state.live.contains(u))
        };
        if let Some(u) = unwind {
            let sql =
                format!("ROLLBACK TO SAVEPOINT tenancy_sp_{u}; RELEASE SAVEPOINT tenancy_sp_{u}");
            match held.simple(&sql).await {
                Ok(()) => {
                    let mut state = self.state();
                    state.close(u);
                    state.unwind = None;
                }
                Err(e) => {
                    self.state().poisoned = true;
                    return Err(e);
                }
            }
        }
        if let Some(savepoint) = self.savepoint {
            if !self.state().live.contains(&savepoint) {
                return Err(ended_err(
                    "this nested transaction has already ended (it, or one it is nested in, committed or rolled back)",
                ));
            }
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
        let mut held = self.lock().await?;
        let id = {
            let mut state = self.state();
            // Savepoints nest on the server: one opened beside a live sibling would sit
            // inside it, and the sibling's end would decide its work. Only the innermost
            // open transaction may open another.
            let innermost = match self.savepoint {
                None => state.live.is_empty(),
                Some(mine) => state.live.last() == Some(&mine),
            };
            if !innermost {
                return Err(ended_err(
                    "a nested transaction of this one is still open: end it before beginning another",
                ));
            }
            state.next += 1;
            state.next
        };
        held.simple(&format!("SAVEPOINT tenancy_sp_{id}")).await?;
        self.state().live.push(id);
        Ok(HeldTransaction {
            shared: Arc::clone(&self.shared),
            savepoint: Some(id),
            done: AtomicBool::new(false),
            ending: AtomicBool::new(false),
        })
    }

    /// Ends the transaction with `top` (`COMMIT` or `ROLLBACK`), or this savepoint with
    /// `nested`'s statement.
    async fn end(&self, top: &'static str, nested: fn(u64) -> String) -> Result<(), DbErr> {
        if self.savepoint.is_none() && top == "ROLLBACK" {
            // A rollback needs nothing of the transaction but its connection.
            let mut held = Arc::clone(&self.shared.held).lock_owned().await;
            self.state().closing = true;
            self.done.store(true, Ordering::Relaxed);
            if !held.ended {
                held.end("ROLLBACK").await.map_err(exec_err)?;
            }
            return Ok(());
        }
        let mut held = self.lock().await?;
        self.ending.store(true, Ordering::Relaxed);
        let result = match self.savepoint {
            None => {
                self.state().closing = true;
                // `SELECT 1` first: PostgreSQL answers `COMMIT` in an aborted transaction
                // with a rollback, and no error; the `SELECT` fails there instead, and
                // `end` rolls back and reports it.
                held.end(if top == "COMMIT" {
                    "SELECT 1; COMMIT"
                } else {
                    top
                })
                .await
                .map_err(exec_err)
            }
            Some(id) => {
                let r = held.simple(&nested(id)).await;
                let mut state = self.state();
                if r.is_ok() {
                    state.close(id);
                } else if state.live.contains(&id) {
                    // The end did not happen (an earlier statement's error answered it):
                    // the savepoint is rolled back before the enclosing transaction's next
                    // statement, so its work is never kept by accident.
                    let earlier = state.unwind.filter(|u| {
                        let at = state.live.iter().position(|s| s == u);
                        let mine = state.live.iter().position(|s| *s == id);
                        at < mine
                    });
                    state.unwind = Some(earlier.unwrap_or(id));
                }
                r
            }
        };
        // The server answered (either way): nothing is left in doubt.
        self.ending.store(false, Ordering::Relaxed);
        self.done.store(true, Ordering::Relaxed);
        result
    }

    /// Commits the transaction, or releases the savepoint.
    pub(crate) async fn commit(self) -> Result<(), DbErr> {
        self.end("COMMIT", |id| format!("RELEASE SAVEPOINT tenancy_sp_{id}"))
            .await
    }

    /// Rolls the transaction back, or back to the savepoint.
    pub(crate) async fn rollback(self) -> Result<(), DbErr> {
        self.end("ROLLBACK", |id| {
            format!("ROLLBACK TO SAVEPOINT tenancy_sp_{id}; RELEASE SAVEPOINT tenancy_sp_{id}")
        })
        .await
    }
}

impl Drop for HeldTransaction {
    /// Neither committed nor rolled back: a savepoint is rolled back before the enclosing
    /// transaction's next statement (if its end was cut off midway, the transaction can
    /// only roll back); the transaction itself is rolled back by a task (or, without a
    /// runtime, its connection is closed, which rolls it back on the server).
    fn drop(&mut self) {
        if self.done.load(Ordering::Relaxed) {
            return;
        }
        if let Some(id) = self.savepoint {
            let mut state = self.state();
            if self.ending.load(Ordering::Relaxed) {
                state.poisoned = true;
            } else if state.live.contains(&id) {
                let earlier = state.unwind.and_then(|u| {
                    let at = state.live.iter().position(|s| *s == u)?;
                    let mine = state.live.iter().position(|s| *s == id)?;
                    (at < mine).then_some(u)
                });
                state.unwind = Some(earlier.unwrap_or(id));
            }
            return;
        }
        self.state().closing = true;
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

/// `26000`, an unnamed prepared statement that no longer exists: what sqlx 0.9 meets when it
/// looks up an unknown type (an enum, a domain) of an unnamed statement's result between
/// its parse and its bind (sqlx #4305). The lookup is cached per connection, so the same
/// statement runs on a second try.
pub(crate) fn lost_unnamed(e: &DbErr) -> bool {
    let code = match e {
        DbErr::Exec(sea_orm::RuntimeErr::SqlxError(e))
        | DbErr::Query(sea_orm::RuntimeErr::SqlxError(e)) => match e.as_ref() {
            sqlx::Error::Database(d) => d.code().map(|c| c.into_owned()),
            _ => None,
        },
        _ => None,
    };
    code.as_deref() == Some("26000")
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
