#[tenancy_core::tenant_scoped(colum = "shop_id")]
#[sea_orm(table_name = "notes")]
pub struct Model {
    pub id: uuid::Uuid,
    pub shop_id: uuid::Uuid,
}

fn main() {}
