#[tenancy_core::tenant_scoped]
pub struct Model {
    pub id: uuid::Uuid,
    pub storefront_id: uuid::Uuid,
}

fn main() {}
