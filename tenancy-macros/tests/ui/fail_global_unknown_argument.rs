#[tenancy_core::global_table(writeable)]
#[sea_orm(table_name = "countries")]
pub struct Model {
    pub code: String,
}

fn main() {}
