//! `cart_items`: the lines of a cart.

use sea_orm::entity::prelude::*;
use serde::{Deserialize, Serialize};

#[tenancy_core::tenant_scoped]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel, Serialize, Deserialize)]
#[sea_orm(table_name = "cart_items")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub storefront_id: Uuid,
    pub cart_id: Uuid,
    pub sku: String,
    pub quantity: i32,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {
    #[sea_orm(
        belongs_to = "super::shopping_cart::Entity",
        from = "Column::CartId",
        to = "super::shopping_cart::Column::Id"
    )]
    ShoppingCart,
}

impl Related<super::shopping_cart::Entity> for Entity {
    fn to() -> RelationDef {
        Relation::ShoppingCart.def()
    }
}

impl ActiveModelBehavior for ActiveModel {}
