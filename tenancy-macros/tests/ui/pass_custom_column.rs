use sea_orm::entity::prelude::*;

#[tenancy_core::tenant_scoped(column = "shop_id")]
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "notes")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub shop_id: uuid::Uuid,
    pub body: String,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

fn main() {
    use tenancy_core::TenantScoped;
    assert_eq!(Entity::TABLE, "notes");
    assert_eq!(Entity::TENANT_COLUMN, "shop_id");
    let registry = tenancy_core::Registry::from_entities();
    assert_eq!(registry.tenant_column("notes"), Some("shop_id"));
}
