//! Database errors sorted by what they mean, read from the server's error code (SQLSTATE
//! on PostgreSQL, the error number on MySQL/MariaDB, the extended result code on SQLite),
//! not from message text. SQLite reports a missing table with its generic code, so there
//! alone the message decides.

use std::{future::Future, time::Duration};

use sea_orm::DbErr;

use crate::TenancyError;

/// What a failed statement's error means to the crate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[cfg_attr(
    not(any(feature = "postgres", feature = "mysql", feature = "sqlite")),
    allow(dead_code, reason = "only a driver's error codes tell these apart")
)]
pub(crate) enum ErrorClass {
    /// The statement names a table that does not exist.
    MissingTable,
    /// The statement names a column its table does not have.
    MissingColumn,
    /// A unique or primary key refused the row.
    UniqueViolation,
    /// A foreign key refused the row.
    ForeignKeyViolation,
    /// The server chose this statement as a deadlock victim; running it again may succeed.
    Deadlock,
    /// A serializable or repeatable-read transaction saw a row change after its snapshot
    /// (PostgreSQL 40001, as when a move's fence is raised under it): the transaction must
    /// run again from the start.
    SerializationFailure,
    /// A lock was not granted in time (SQLite's busy timeout, a lock wait timeout): the
    /// statement had no effect and may run again.
    Busy,
    /// `CREATE INDEX` for a name already taken (MySQL has no `IF NOT EXISTS` for indexes).
    DuplicateIndex,
    /// A trigger refused the statement on purpose (PostgreSQL's `RAISE ... USING ERRCODE
    /// = '55006'`, MySQL's `SIGNAL SQLSTATE '45000'`, SQLite's `RAISE(ABORT, ...)`): how
    /// a move's fence and target guard refuse a write.
    TriggerRefusal,
    /// Anything else.
    Other,
}

/// Whether `err` carries a server's error (and so a code [`classify`] reads), as opposed to
/// a message built or re-wrapped by the crate.
pub(crate) fn from_server(err: &DbErr) -> bool {
    #[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
    {
        use sea_orm::RuntimeErr;
        matches!(
            err,
            DbErr::Exec(RuntimeErr::SqlxError(_))
                | DbErr::Query(RuntimeErr::SqlxError(_))
                | DbErr::Conn(RuntimeErr::SqlxError(_))
        )
    }
    #[cfg(not(any(feature = "postgres", feature = "mysql", feature = "sqlite")))]
    {
        let _ = err;
        false
    }
}

/// Sorts `err` by its server's error code.
pub(crate) fn classify(err: &DbErr) -> ErrorClass {
    #[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
    if let Some(class) = by_code(err) {
        return class;
    }
    // Errors that carry no driver error: a statement refused before it reached a server,
    // or a message re-wrapped by a caller.
    let m = err.to_string().to_lowercase();
    if m.contains("no such table") || m.contains("doesn't exist") || m.contains("does not exist") {
        ErrorClass::MissingTable
    } else {
        ErrorClass::Other
    }
}

#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
fn by_code(err: &DbErr) -> Option<ErrorClass> {
    use sea_orm::{sqlx::error::ErrorKind, RuntimeErr};

    let (DbErr::Exec(RuntimeErr::SqlxError(e))
    | DbErr::Query(RuntimeErr::SqlxError(e))
    | DbErr::Conn(RuntimeErr::SqlxError(e))) = err
    else {
        return None;
    };
    let db = e.as_database_error()?;
    match db.kind() {
        ErrorKind::UniqueViolation => return Some(ErrorClass::UniqueViolation),
        ErrorKind::ForeignKeyViolation => return Some(ErrorClass::ForeignKeyViolation),
        _ => {}
    }
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sea_orm::sqlx::mysql::MySqlDatabaseError>() {
        return Some(match my.number() {
            1146 => ErrorClass::MissingTable,
            1054 => ErrorClass::MissingColumn,
            1213 => ErrorClass::Deadlock,
            1205 => ErrorClass::Busy,
            1061 => ErrorClass::DuplicateIndex,
            1644 => ErrorClass::TriggerRefusal,
            _ => ErrorClass::Other,
        });
    }
    #[cfg(feature = "sqlite")]
    if db
        .try_downcast_ref::<sea_orm::sqlx::sqlite::SqliteError>()
        .is_some()
    {
        // SQLITE_ERROR (1) covers every prepare failure; only the text tells them apart.
        // SQLITE_BUSY (5) and SQLITE_LOCKED (6), with their extended codes, are lock waits.
        let code = db.code().and_then(|c| c.parse::<i32>().ok()).unwrap_or(0);
        return Some(if matches!(code & 0xff, 5 | 6) {
            ErrorClass::Busy
        } else if code == 1811 {
            // SQLITE_CONSTRAINT_TRIGGER: a trigger's RAISE(ABORT, ...).
            ErrorClass::TriggerRefusal
        } else if db.message().starts_with("no such table") {
            ErrorClass::MissingTable
        } else if db.message().starts_with("no such column") {
            ErrorClass::MissingColumn
        } else {
            ErrorClass::Other
        });
    }
    // PostgreSQL: SQLSTATE.
    Some(match db.code().as_deref() {
        // A missing schema (3F000) means its tables are missing too.
        Some("42P01" | "3F000") => ErrorClass::MissingTable,
        Some("42703") => ErrorClass::MissingColumn,
        Some("40P01") => ErrorClass::Deadlock,
        Some("40001") => ErrorClass::SerializationFailure,
        Some("55P03") => ErrorClass::Busy,
        Some("42P07") => ErrorClass::DuplicateIndex,
        Some("55006") => ErrorClass::TriggerRefusal,
        _ => ErrorClass::Other,
    })
}

/// Runs `attempt` again (up to 20 times, 20 ms × n apart) while it fails on a lock wait or
/// a deadlock: such a statement, or a transaction the attempt wraps, left nothing behind.
pub(crate) async fn retry_locked<T, F, Fut>(mut attempt: F) -> Result<T, TenancyError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, TenancyError>>,
{
    let mut tries = 0u64;
    loop {
        match attempt().await {
            Err(TenancyError::Db(e))
                if tries < 20
                    && matches!(classify(&e), ErrorClass::Busy | ErrorClass::Deadlock) =>
            {
                tries += 1;
                tracing::debug!(tries, "waited on a lock; running again: {e}");
                tokio::time::sleep(Duration::from_millis(20 * tries)).await;
            }
            result => return result,
        }
    }
}
