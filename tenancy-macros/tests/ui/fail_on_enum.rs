#[tenancy_core::tenant_scoped]
pub enum Model {
    A,
}

fn main() {}
