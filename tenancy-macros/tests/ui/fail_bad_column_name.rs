#[tenancy_core::tenant_scoped(column = "shop id; DROP")]
pub struct Model {
    pub id: uuid::Uuid,
}

fn main() {}
