//! The one error type of the framework.
//!
//! Every failure the framework itself detects is a [`TenancyError`] variant that names what
//! was wrong (the table, the column, the input). Inside SeaORM call paths, which can only
//! return [`DbErr`], the error travels as `DbErr::Custom` whose message starts with
//! `tenancy:`; [`TenancyError::from_db_err`] recovers the message for matching in tests and
//! logs.

use sea_orm::DbErr;

/// What the framework refused or could not do.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TenancyError {
    /// A storefront id that is not a valid, non-nil UUID.
    #[error("invalid storefront id `{input}`: {reason}")]
    InvalidStorefrontId {
        /// The text that was given.
        input: String,
        /// Why it was rejected.
        reason: String,
    },

    /// A configuration value that is missing, malformed or inconsistent.
    #[error("configuration: `{key}`: {message}")]
    Config {
        /// The key, as a dotted path (`tenant_strategy.database_config.shared_database_url`).
        key: String,
        /// What is wrong.
        message: String,
    },

    /// A schema or database name that is not a plain identifier.
    #[error("invalid name `{name}`: {reason}")]
    InvalidName {
        /// The name.
        name: String,
        /// What is wrong with it.
        reason: String,
    },

    /// A storefront the directory does not know, with no default placement configured.
    #[error("unknown storefront {storefront}: it is not in the directory (provision it first)")]
    UnknownStorefront {
        /// The storefront.
        storefront: String,
    },

    /// A placement this backend cannot provide.
    #[error("{placement} placement is not supported on {backend}: {reason}")]
    Unsupported {
        /// The placement kind.
        placement: String,
        /// The backend.
        backend: String,
        /// Why.
        reason: String,
    },

    /// The global connection budget stayed exhausted for the whole wait.
    #[error("connection budget exhausted: all {budget} connections stayed in use for {waited_ms} ms while opening a pool for storefront {storefront}")]
    BudgetExhausted {
        /// The budget.
        budget: u32,
        /// How long the caller waited.
        waited_ms: u128,
        /// The storefront that needed a pool.
        storefront: String,
    },

    /// A destructive operation without its confirmation.
    #[error("refusing to {action} storefront {storefront}: the confirmation given is not its id (type the storefront id again to confirm)")]
    NotConfirmed {
        /// What was asked.
        action: String,
        /// The storefront.
        storefront: String,
    },

    /// A step of provisioning or a migration failed for one storefront.
    #[error("storefront {storefront}: {step} failed: {source}")]
    Step {
        /// The storefront.
        storefront: String,
        /// The step (create schema, migrate, register...).
        step: String,
        /// The underlying error.
        #[source]
        source: Box<TenancyError>,
    },

    /// A statement that names a table (or schema) a tenant connection may not reach, or uses
    /// one in a way that cannot be proven confined to one storefront. Nothing was sent to
    /// the database.
    #[error("refused statement naming `{table}`: {reason}")]
    Refused {
        /// The table (or qualified name) the statement names.
        table: String,
        /// What made the rewriter refuse it, and what to do instead.
        reason: String,
    },

    /// A statement of a kind tenant connections never run (only queries, INSERT, UPDATE and
    /// DELETE are admitted). Nothing was sent to the database.
    #[error("refused {kind} statement: {reason}")]
    RefusedStatement {
        /// The statement kind (`SET`, `CREATE TABLE`, `EXECUTE`...).
        kind: String,
        /// Why, and what to do instead.
        reason: String,
    },

    /// A statement that calls a function tenant connections may not call. Nothing was sent
    /// to the database.
    #[error("refused call of function `{function}`: {reason}")]
    RefusedFunction {
        /// The function, as written.
        function: String,
        /// Why, and what to do instead.
        reason: String,
    },

    /// A statement that uses syntax the rewriter cannot check (a literal or identifier the
    /// server might read differently, an unsupported placeholder, a construct outside the
    /// allow list). Nothing was sent to the database.
    #[error("refused statement: {reason}")]
    RefusedSyntax {
        /// What was refused, and what to write instead.
        reason: String,
    },

    /// SQL that could not be parsed with the backend's dialect, so it cannot be checked.
    #[error("refused statement: the SQL could not be parsed as {dialect} ({detail})")]
    Unparseable {
        /// The dialect.
        dialect: String,
        /// The parser's message.
        detail: String,
    },

    /// SQL that could not even be tokenized.
    #[error("refused statement: the SQL could not be tokenized ({detail})")]
    Untokenizable {
        /// The tokenizer's message.
        detail: String,
    },

    /// A write that would set the tenant column to another storefront (or to a value that
    /// cannot be checked).
    #[error("refused write to `{table}`.`{column}`: {reason}")]
    TenantColumnWrite {
        /// The table written to.
        table: String,
        /// The tenant column.
        column: String,
        /// What was wrong with the value.
        reason: String,
    },

    /// The statement's bound values do not match its placeholders.
    #[error("statement has {given} bound values but its SQL needs {needed}")]
    ParameterCount {
        /// Values the statement carried.
        given: usize,
        /// Values its placeholders need.
        needed: usize,
    },

    /// A storefront move that cannot go on in its current phase.
    #[error("move of storefront {storefront}: {phase}: {reason}")]
    Move {
        /// The storefront being moved.
        storefront: String,
        /// The phase the move is in (prepare, capture, copy, catch-up, validate, cutover...).
        phase: String,
        /// What stopped it.
        reason: String,
    },

    /// Validation found rows that differ between the source and the target of a move. The
    /// cutover is blocked until a new catch-up and validation pass.
    #[error("validation of storefront {storefront} failed on table `{table}`: {detail}; first differing keys: {}", keys.join(", "))]
    Validation {
        /// The storefront being moved.
        storefront: String,
        /// The table whose rows differ.
        table: String,
        /// The first differing primary keys (at most five).
        keys: Vec<String>,
        /// Counts and checksums on each side.
        detail: String,
    },

    /// A cutover (or a rollback after one) would not fence: the storefront's writers log
    /// changes faster than the catch-up replays them, so the backlog could not be drained
    /// within the pause budget. Nothing was fenced; the storefront is served where it was
    /// (the source for a cutover, the target for a rollback), and the step can be run
    /// again once the writers slow down.
    #[error(
        "{step} of storefront {storefront} cannot converge: after {tried_ms} ms of catch-up, \
         {lag} changes are pending; the writers log {writes_per_sec:.0}/s and the catch-up \
         replays {replays_per_sec:.0}/s, so draining them behind the fence would take about \
         {drain_ms} ms, over the {budget_ms} ms pause budget; nothing was fenced (run the \
         {step} again when the writers slow down, or raise migration_config.pause_budget)"
    )]
    CannotConverge {
        /// `cutover`, or `rollback` (after a cutover: the target's changes go back).
        step: &'static str,
        /// The storefront being moved.
        storefront: String,
        /// Changelog entries pending at the last measurement.
        lag: u64,
        /// Changes the storefront's writers logged per second, measured over the last pass.
        writes_per_sec: f64,
        /// Entries the catch-up replayed per second over the last pass.
        replays_per_sec: f64,
        /// The estimated pause: `lag` at the replay rate (`u64::MAX` when nothing replayed).
        drain_ms: u64,
        /// The pause budget.
        budget_ms: u64,
        /// How long the catch-up tried.
        tried_ms: u64,
    },

    /// Row-level security is switched on but not in place where this handle would rely on
    /// it: a policy or grant missing, or a role that no policy binds (or, for the operator,
    /// one the policies bind).
    #[error("row-level security is not in place in {database}: {problems} (run `tenancy rls apply`, or see the `rls` module)")]
    RowLevelSecurity {
        /// The database (its URL without a password) or schema.
        database: String,
        /// What is wrong, `; `-separated.
        problems: String,
    },

    /// The mover stopped at a halt point (a test hook that simulates a crash).
    #[error("move of storefront {storefront} halted at {point}")]
    Halted {
        /// The storefront being moved.
        storefront: String,
        /// Where it stopped.
        point: String,
    },

    /// An error from the database or SeaORM.
    #[error(transparent)]
    Db(#[from] DbErr),
}

/// The prefix of every framework error carried inside a [`DbErr`].
pub(crate) const PREFIX: &str = "tenancy: ";

impl From<TenancyError> for DbErr {
    fn from(err: TenancyError) -> Self {
        match err {
            TenancyError::Db(db) => db,
            other => DbErr::Custom(format!("{PREFIX}{other}")),
        }
    }
}

impl TenancyError {
    /// If `err` was raised by this framework (rather than by the database), its message
    /// without the `tenancy: ` prefix.
    ///
    /// ```
    /// use tenancy_core::TenancyError;
    /// let err: sea_orm::DbErr = TenancyError::Refused {
    ///     table: "customers".into(),
    ///     reason: "REPLACE can delete another storefront's row".into(),
    /// }
    /// .into();
    /// let message = TenancyError::from_db_err(&err).unwrap();
    /// assert!(message.contains("`customers`"));
    /// ```
    pub fn from_db_err(err: &DbErr) -> Option<&str> {
        match err {
            DbErr::Custom(message) => message.strip_prefix(PREFIX),
            _ => None,
        }
    }
}
