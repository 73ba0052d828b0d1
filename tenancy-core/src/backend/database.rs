//! Creating and dropping the containers a storefront lives in: a schema (a PostgreSQL
//! schema, a MySQL database on the shared server) or a database of its own (a database on
//! any server, or a SQLite file with its `-wal` and `-shm` companions).

use sea_orm::{ConnectionTrait, DatabaseConnection, DbBackend, Statement};

use super::{connect, DatabaseUrl, Dialect, PoolSpec};
use crate::{tenant::validate_identifier, StorefrontId, TenancyError};

/// The error of a failed step of provisioning for `storefront`.
pub(crate) fn step_failed(
    storefront: StorefrontId,
    what: impl Into<String>,
) -> impl FnOnce(TenancyError) -> TenancyError {
    let step = what.into();
    move |e| TenancyError::Step {
        storefront: storefront.to_string(),
        step,
        source: Box::new(e),
    }
}

/// [`step_failed`] for a database error.
pub(crate) fn db_step_failed(
    storefront: StorefrontId,
    what: impl Into<String>,
) -> impl FnOnce(sea_orm::DbErr) -> TenancyError {
    let f = step_failed(storefront, what);
    move |e| f(TenancyError::Db(e))
}

/// Schema placement on SQLite is refused: see the reason.
pub(crate) fn sqlite_schema_unsupported() -> TenancyError {
    TenancyError::Unsupported {
        placement: "schema".into(),
        backend: "SQLite".into(),
        reason: "a schema would be an ATTACHed file, which every pooled connection must attach again and SQLite caps at 10; use database placement (a file per storefront)".into(),
    }
}

impl Dialect {
    /// Whether schema `name` exists, and the DDL that creates it if missing.
    pub(crate) fn create_schema(self, name: &str) -> Result<(Statement, String), TenancyError> {
        validate_identifier(name)?;
        let exists = format!(
            "SELECT 1 FROM information_schema.schemata WHERE schema_name = {}",
            self.placeholder(1)
        );
        let create = match self.0 {
            DbBackend::Postgres => format!("CREATE SCHEMA IF NOT EXISTS {}", self.quote(name)),
            DbBackend::MySql => format!("CREATE DATABASE IF NOT EXISTS {}", self.quote(name)),
            _ => return Err(sqlite_schema_unsupported()),
        };
        Ok((
            Statement::from_sql_and_values(self.0, exists, [name.to_owned().into()]),
            create,
        ))
    }

    /// The DDL that drops schema `name` with everything in it.
    pub(crate) fn drop_schema(self, name: &str) -> Result<String, TenancyError> {
        validate_identifier(name)?;
        match self.0 {
            DbBackend::Postgres => Ok(format!(
                "DROP SCHEMA IF EXISTS {} CASCADE",
                self.quote(name)
            )),
            DbBackend::MySql => Ok(format!("DROP DATABASE IF EXISTS {}", self.quote(name))),
            _ => Err(sqlite_schema_unsupported()),
        }
    }
}

/// A one-connection pool on `url`, for provisioning and migrations.
pub(crate) async fn connect_one(url: &str) -> Result<DatabaseConnection, sea_orm::DbErr> {
    connect(url, PoolSpec::of(1)).await
}

/// The database named by `url` (checked to be a plain identifier) and a connection to its
/// server's maintenance database (`postgres` on PostgreSQL, none on MySQL).
async fn server_admin(
    storefront: StorefrontId,
    url: &DatabaseUrl,
) -> Result<(String, DatabaseConnection), TenancyError> {
    let name = url.database().ok_or_else(|| TenancyError::InvalidName {
        name: url.to_string(),
        reason: "the URL names no database".into(),
    })?;
    validate_identifier(&name)?;
    let admin_db = if url.backend() == DbBackend::Postgres {
        "postgres"
    } else {
        ""
    };
    let admin_url = url.with_database(admin_db);
    let admin = connect_one(admin_url.as_str())
        .await
        .map_err(db_step_failed(
            storefront,
            format!("connecting to {admin_url}"),
        ))?;
    Ok((name.to_owned(), admin))
}

/// Creates the database of `url` on its server if missing. Returns whether it was created.
pub(crate) async fn create_database(
    storefront: StorefrontId,
    url: &str,
) -> Result<bool, TenancyError> {
    let url = DatabaseUrl::parse(url)?;
    let dialect = Dialect(url.backend());
    if url.backend() == DbBackend::Sqlite {
        let path = url.sqlite_file().ok_or_else(|| TenancyError::InvalidName {
            name: url.to_string(),
            reason: "a SQLite database placement needs a file URL, e.g. sqlite://dir/shop.sqlite?mode=rwc".into(),
        })?;
        let existed = std::path::Path::new(path).exists();
        let conn = connect_one(url.as_str())
            .await
            .map_err(db_step_failed(storefront, format!("creating {path}")))?;
        let _ = conn.close().await;
        return Ok(!existed);
    }
    let (name, admin) = server_admin(storefront, &url).await?;
    let (exists, create) = if url.backend() == DbBackend::Postgres {
        (
            Statement::from_sql_and_values(
                url.backend(),
                "SELECT 1 FROM pg_database WHERE datname = $1",
                [name.clone().into()],
            ),
            format!("CREATE DATABASE {}", dialect.quote(&name)),
        )
    } else {
        dialect.create_schema(&name)?
    };
    let result = async {
        let existed = admin.query_one_raw(exists).await?.is_some();
        if !existed {
            admin.execute_unprepared(&create).await?;
        }
        Ok::<bool, sea_orm::DbErr>(!existed)
    }
    .await;
    let _ = admin.close().await;
    result.map_err(db_step_failed(
        storefront,
        format!("creating database {name}"),
    ))
}

/// Whether the database of `url` exists on its server (a SQLite file: whether it is there).
pub(crate) async fn database_exists(
    storefront: StorefrontId,
    url: &str,
) -> Result<bool, TenancyError> {
    let url = DatabaseUrl::parse(url)?;
    if url.backend() == DbBackend::Sqlite {
        return Ok(url
            .sqlite_file()
            .is_some_and(|path| std::path::Path::new(path).exists()));
    }
    let (name, admin) = server_admin(storefront, &url).await?;
    let exists = if url.backend() == DbBackend::Postgres {
        Statement::from_sql_and_values(
            url.backend(),
            "SELECT 1 FROM pg_database WHERE datname = $1",
            [name.clone().into()],
        )
    } else {
        Dialect(url.backend()).create_schema(&name)?.0
    };
    let result = admin.query_one_raw(exists).await;
    let _ = admin.close().await;
    Ok(result
        .map_err(db_step_failed(
            storefront,
            format!("looking for database {name}"),
        ))?
        .is_some())
}

/// Drops the database of `url` (a SQLite file with its `-wal` and `-shm`).
pub(crate) async fn drop_database(storefront: StorefrontId, url: &str) -> Result<(), TenancyError> {
    let url = DatabaseUrl::parse(url)?;
    if url.backend() == DbBackend::Sqlite {
        if let Some(path) = url.sqlite_file() {
            remove_sqlite_file(path);
        }
        return Ok(());
    }
    let (name, admin) = server_admin(storefront, &url).await?;
    let sql = if url.backend() == DbBackend::Postgres {
        format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            Dialect(url.backend()).quote(&name)
        )
    } else {
        Dialect(url.backend()).drop_schema(&name)?
    };
    let result = admin.execute_unprepared(&sql).await;
    let _ = admin.close().await;
    result.map_err(db_step_failed(
        storefront,
        format!("dropping database {name}"),
    ))?;
    Ok(())
}

/// Removes a SQLite database file and its `-wal` and `-shm` companions (those missing are
/// not an error).
pub(crate) fn remove_sqlite_file(path: &str) {
    for suffix in ["", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{path}{suffix}"));
    }
}
