//! Without the `postgres` feature there is no held transaction: row-level security and
//! transaction poolers are PostgreSQL's, and a handle that asks for either fails here with
//! an error that says so.

use sea_orm::{DatabaseConnection, DbErr, Statement};

use super::{
    traits::{Answer, Begin, Call},
    TenantStream,
};
use crate::Registry;

/// How a held transaction opens and how its statements are sent.
#[derive(Clone, Debug)]
#[allow(
    dead_code,
    reason = "built, never read, without the `postgres` feature"
)]
pub(crate) struct Opening {
    pub prelude: Option<String>,
    pub named: bool,
}

fn unsupported() -> DbErr {
    crate::TenancyError::Unsupported {
        placement: "a held transaction".into(),
        backend: "this build".into(),
        reason: "row-level security and transaction poolers need the `postgres` feature".into(),
    }
    .into()
}

pub(crate) async fn single(
    _conn: &DatabaseConnection,
    _call: Call,
    _opening: &Opening,
    _registry: &Registry,
) -> Result<Answer, DbErr> {
    Err(unsupported())
}

pub(crate) async fn stream(
    _conn: &DatabaseConnection,
    _stmt: Statement,
    _opening: &Opening,
    _registry: &Registry,
    _keep: Box<dyn std::any::Any + Send>,
) -> Result<TenantStream<'static>, DbErr> {
    Err(unsupported())
}

pub(crate) fn lost_unnamed(_e: &DbErr) -> bool {
    false
}

/// Never built without the `postgres` feature.
pub(crate) enum HeldTransaction {}

impl HeldTransaction {
    pub(crate) async fn begin(
        _conn: &DatabaseConnection,
        _begin: &Begin,
        _opening: &Opening,
    ) -> Result<HeldTransaction, DbErr> {
        Err(unsupported())
    }

    pub(crate) async fn run(&self, _call: Call) -> Result<Answer, DbErr> {
        match *self {}
    }

    pub(crate) async fn stream(&self, _stmt: Statement) -> Result<TenantStream<'static>, DbErr> {
        match *self {}
    }

    pub(crate) async fn nested(&self) -> Result<HeldTransaction, DbErr> {
        match *self {}
    }

    pub(crate) async fn commit(self) -> Result<(), DbErr> {
        match self {}
    }

    pub(crate) async fn rollback(self) -> Result<(), DbErr> {
        match self {}
    }
}
