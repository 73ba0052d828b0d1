//! Creates the SmartSeller tables: countries (global) and six storefront-scoped tables.
//!
//! Scoped tables carry no foreign key to the global table: a storefront in its own schema
//! or database cannot reference the shared database's rows, so `country_code` is checked by
//! the application, not by the database.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[derive(DeriveIden)]
enum Countries {
    Table,
    Code,
    Name,
}

#[derive(DeriveIden)]
enum Customers {
    Table,
    Id,
    StorefrontId,
    Email,
    FirstName,
    LastName,
    Phone,
    CreatedAt,
    UpdatedAt,
    DeletedAt,
}

#[derive(DeriveIden)]
enum CustomerAddresses {
    Table,
    Id,
    StorefrontId,
    CustomerId,
    Line1,
    City,
    PostalCode,
    CountryCode,
    IsDefault,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum Orders {
    Table,
    Id,
    StorefrontId,
    CustomerId,
    Status,
    TotalCents,
    Currency,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum OrderItems {
    Table,
    Id,
    StorefrontId,
    OrderId,
    Sku,
    Quantity,
    UnitPriceCents,
    CreatedAt,
}

#[derive(DeriveIden)]
enum ShoppingCarts {
    Table,
    Id,
    StorefrontId,
    CustomerId,
    Status,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum CartItems {
    Table,
    Id,
    StorefrontId,
    CartId,
    Sku,
    Quantity,
    CreatedAt,
}

/// `UNIQUE (storefront_id, id)` on a parent, the target of its children's foreign keys.
fn tenant_key(
    name: &str,
    table: impl IntoIden,
    storefront: impl IntoIden,
    id: impl IntoIden,
) -> IndexCreateStatement {
    Index::create()
        .name(name)
        .table(table)
        .col(storefront)
        .col(id)
        .unique()
        .to_owned()
}

/// An index that leads with `storefront_id`.
fn tenant_index(name: &str, table: impl IntoIden, cols: Vec<DynIden>) -> IndexCreateStatement {
    let mut index = Index::create();
    index.name(name).table(table);
    for col in cols {
        index.col(col);
    }
    index.to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Countries::Table)
                    .if_not_exists()
                    .col(string_len(Countries::Code, 2).primary_key())
                    .col(string(Countries::Name))
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Customers::Table)
                    .if_not_exists()
                    .col(uuid(Customers::Id).primary_key())
                    .col(uuid(Customers::StorefrontId))
                    .col(string(Customers::Email))
                    .col(string(Customers::FirstName))
                    .col(string(Customers::LastName))
                    .col(string_null(Customers::Phone))
                    .col(timestamp_with_time_zone(Customers::CreatedAt))
                    .col(timestamp_with_time_zone(Customers::UpdatedAt))
                    .col(timestamp_with_time_zone_null(Customers::DeletedAt))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(tenant_key(
                "ux_customers_storefront_id",
                Customers::Table,
                Customers::StorefrontId,
                Customers::Id,
            ))
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_customers_storefront_email")
                    .table(Customers::Table)
                    .col(Customers::StorefrontId)
                    .col(Customers::Email)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(tenant_index(
                "ix_customers_storefront_created",
                Customers::Table,
                vec![
                    Customers::StorefrontId.into_iden(),
                    Customers::CreatedAt.into_iden(),
                ],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CustomerAddresses::Table)
                    .if_not_exists()
                    .col(uuid(CustomerAddresses::Id).primary_key())
                    .col(uuid(CustomerAddresses::StorefrontId))
                    .col(uuid(CustomerAddresses::CustomerId))
                    .col(string(CustomerAddresses::Line1))
                    .col(string(CustomerAddresses::City))
                    .col(string(CustomerAddresses::PostalCode))
                    .col(string_len(CustomerAddresses::CountryCode, 2))
                    .col(boolean(CustomerAddresses::IsDefault).default(false))
                    .col(timestamp_with_time_zone(CustomerAddresses::CreatedAt))
                    .col(timestamp_with_time_zone(CustomerAddresses::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_customer_addresses_customer")
                            .from(
                                CustomerAddresses::Table,
                                (
                                    CustomerAddresses::StorefrontId,
                                    CustomerAddresses::CustomerId,
                                ),
                            )
                            .to(Customers::Table, (Customers::StorefrontId, Customers::Id))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(tenant_index(
                "ix_customer_addresses_storefront_customer",
                CustomerAddresses::Table,
                vec![
                    CustomerAddresses::StorefrontId.into_iden(),
                    CustomerAddresses::CustomerId.into_iden(),
                ],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Orders::Table)
                    .if_not_exists()
                    .col(uuid(Orders::Id).primary_key())
                    .col(uuid(Orders::StorefrontId))
                    .col(uuid(Orders::CustomerId))
                    .col(string_len(Orders::Status, 32))
                    .col(big_integer(Orders::TotalCents))
                    .col(string_len(Orders::Currency, 3))
                    .col(timestamp_with_time_zone(Orders::CreatedAt))
                    .col(timestamp_with_time_zone(Orders::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_orders_customer")
                            .from(Orders::Table, (Orders::StorefrontId, Orders::CustomerId))
                            .to(Customers::Table, (Customers::StorefrontId, Customers::Id)),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(tenant_key(
                "ux_orders_storefront_id",
                Orders::Table,
                Orders::StorefrontId,
                Orders::Id,
            ))
            .await?;
        manager
            .create_index(tenant_index(
                "ix_orders_storefront_customer",
                Orders::Table,
                vec![
                    Orders::StorefrontId.into_iden(),
                    Orders::CustomerId.into_iden(),
                ],
            ))
            .await?;
        manager
            .create_index(tenant_index(
                "ix_orders_storefront_status_created",
                Orders::Table,
                vec![
                    Orders::StorefrontId.into_iden(),
                    Orders::Status.into_iden(),
                    Orders::CreatedAt.into_iden(),
                ],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(OrderItems::Table)
                    .if_not_exists()
                    .col(uuid(OrderItems::Id).primary_key())
                    .col(uuid(OrderItems::StorefrontId))
                    .col(uuid(OrderItems::OrderId))
                    .col(string_len(OrderItems::Sku, 64))
                    .col(integer(OrderItems::Quantity))
                    .col(big_integer(OrderItems::UnitPriceCents))
                    .col(timestamp_with_time_zone(OrderItems::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_order_items_order")
                            .from(
                                OrderItems::Table,
                                (OrderItems::StorefrontId, OrderItems::OrderId),
                            )
                            .to(Orders::Table, (Orders::StorefrontId, Orders::Id))
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(tenant_index(
                "ix_order_items_storefront_order",
                OrderItems::Table,
                vec![
                    OrderItems::StorefrontId.into_iden(),
                    OrderItems::OrderId.into_iden(),
                ],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(ShoppingCarts::Table)
                    .if_not_exists()
                    .col(uuid(ShoppingCarts::Id).primary_key())
                    .col(uuid(ShoppingCarts::StorefrontId))
                    .col(uuid_null(ShoppingCarts::CustomerId))
                    .col(string_len(ShoppingCarts::Status, 32))
                    .col(timestamp_with_time_zone(ShoppingCarts::CreatedAt))
                    .col(timestamp_with_time_zone(ShoppingCarts::UpdatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_shopping_carts_customer")
                            .from(
                                ShoppingCarts::Table,
                                (ShoppingCarts::StorefrontId, ShoppingCarts::CustomerId),
                            )
                            .to(Customers::Table, (Customers::StorefrontId, Customers::Id)),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(tenant_key(
                "ux_shopping_carts_storefront_id",
                ShoppingCarts::Table,
                ShoppingCarts::StorefrontId,
                ShoppingCarts::Id,
            ))
            .await?;
        manager
            .create_index(tenant_index(
                "ix_shopping_carts_storefront_customer",
                ShoppingCarts::Table,
                vec![
                    ShoppingCarts::StorefrontId.into_iden(),
                    ShoppingCarts::CustomerId.into_iden(),
                ],
            ))
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(CartItems::Table)
                    .if_not_exists()
                    .col(uuid(CartItems::Id).primary_key())
                    .col(uuid(CartItems::StorefrontId))
                    .col(uuid(CartItems::CartId))
                    .col(string_len(CartItems::Sku, 64))
                    .col(integer(CartItems::Quantity))
                    .col(timestamp_with_time_zone(CartItems::CreatedAt))
                    .foreign_key(
                        ForeignKey::create()
                            .name("fk_cart_items_cart")
                            .from(
                                CartItems::Table,
                                (CartItems::StorefrontId, CartItems::CartId),
                            )
                            .to(
                                ShoppingCarts::Table,
                                (ShoppingCarts::StorefrontId, ShoppingCarts::Id),
                            )
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(tenant_index(
                "ix_cart_items_storefront_cart",
                CartItems::Table,
                vec![
                    CartItems::StorefrontId.into_iden(),
                    CartItems::CartId.into_iden(),
                ],
            ))
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            CartItems::Table.into_iden(),
            ShoppingCarts::Table.into_iden(),
            OrderItems::Table.into_iden(),
            Orders::Table.into_iden(),
            CustomerAddresses::Table.into_iden(),
            Customers::Table.into_iden(),
            Countries::Table.into_iden(),
        ] {
            manager
                .drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}
