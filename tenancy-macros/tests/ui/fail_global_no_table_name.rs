#[tenancy_core::global_table]
pub struct Model {
    pub code: String,
}

fn main() {}
