//! `customers`: one storefront's customers; email is unique per storefront; soft delete.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[tenancy_core::tenant_scoped]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "customers")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub storefront_id: Uuid,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub phone: Option<String>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    /// Soft delete: set instead of deleting the row.
    pub deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(has_many = "super::customer_address::Entity")]
    CustomerAddress,
    #[sea_orm(has_many = "super::order::Entity")]
    Order,
    #[sea_orm(has_many = "super::shopping_cart::Entity")]
    ShoppingCart,
}

impl Related<super::customer_address::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::CustomerAddress.def()
    }
}

impl Related<super::order::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::Order.def()
    }
}

impl Related<super::shopping_cart::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ShoppingCart.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
