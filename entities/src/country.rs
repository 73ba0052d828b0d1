//! `countries`: a global table, shared by every storefront (not tenant-scoped).

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[tenancy_core::global_table]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "countries")]
pub struct Model {
    /// ISO 3166-1 alpha-2 code.
    #[sea_orm(primary_key, auto_increment = false)]
    pub code: String,
    pub name: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::customer_address::Entity")]
    CustomerAddress,
}

impl Related<super::customer_address::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CustomerAddress.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
