//! The seed's `CustomerRepository`, written as plain SeaORM code.
//!
//! Nothing here mentions a storefront: given a [`TenantConnection`](tenancy_core::TenantConnection)
//! the repository sees and writes only that storefront's customers, in whichever placement
//! it lives. Given a plain `DatabaseConnection` it would see everyone's, which is why
//! application code should only ever be handed tenant connections.

use chrono::Utc;
use sea_orm::{entity::prelude::*, ActiveValue::Set, ConnectionTrait, PaginatorTrait, QueryOrder};

use crate::customer::{self, ActiveModel, Column, Entity as Customer, Model};

/// What it takes to create a customer.
#[derive(Clone, Debug)]
pub struct NewCustomer {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub phone: Option<String>,
}

/// Customers of the storefront the connection is confined to.
pub struct CustomerRepository<'a, C> {
    db: &'a C,
}

impl<'a, C: ConnectionTrait> CustomerRepository<'a, C> {
    /// A repository over `db`.
    pub fn new(db: &'a C) -> Self {
        Self { db }
    }

    /// Creates a customer. The email must be unique within the storefront.
    pub async fn create(&self, new: NewCustomer) -> Result<Model, DbErr> {
        let now = Utc::now();
        ActiveModel {
            id: Set(Uuid::new_v4()),
            email: Set(new.email),
            first_name: Set(new.first_name),
            last_name: Set(new.last_name),
            phone: Set(new.phone),
            created_at: Set(now),
            updated_at: Set(now),
            deleted_at: Set(None),
            ..Default::default()
        }
        .insert(self.db)
        .await
    }

    /// A customer by id, unless soft-deleted.
    pub async fn get_by_id(&self, id: Uuid) -> Result<Option<Model>, DbErr> {
        Customer::find_by_id(id)
            .filter(Column::DeletedAt.is_null())
            .one(self.db)
            .await
    }

    /// A customer by email, unless soft-deleted.
    pub async fn get_by_email(&self, email: &str) -> Result<Option<Model>, DbErr> {
        Customer::find()
            .filter(Column::Email.eq(email))
            .filter(Column::DeletedAt.is_null())
            .one(self.db)
            .await
    }

    /// A page of customers (0-based), newest first, and the total count.
    pub async fn list(&self, page: u64, per_page: u64) -> Result<(Vec<Model>, u64), DbErr> {
        let paginator = Customer::find()
            .filter(Column::DeletedAt.is_null())
            .order_by_desc(Column::CreatedAt)
            .order_by_asc(Column::Id)
            .paginate(self.db, per_page);
        let total = paginator.num_items().await?;
        Ok((paginator.fetch_page(page).await?, total))
    }

    /// Changes a customer's name; `None` when there is no such customer.
    pub async fn rename(
        &self,
        id: Uuid,
        first_name: &str,
        last_name: &str,
    ) -> Result<Option<Model>, DbErr> {
        let Some(found) = self.get_by_id(id).await? else {
            return Ok(None);
        };
        let mut active: customer::ActiveModel = found.into();
        active.first_name = Set(first_name.to_owned());
        active.last_name = Set(last_name.to_owned());
        active.updated_at = Set(Utc::now());
        Ok(Some(active.update(self.db).await?))
    }

    /// Soft-deletes a customer; false when there was no such customer.
    pub async fn soft_delete(&self, id: Uuid) -> Result<bool, DbErr> {
        let result = Customer::update_many()
            .col_expr(Column::DeletedAt, Expr::value(Utc::now()))
            .filter(Column::Id.eq(id))
            .filter(Column::DeletedAt.is_null())
            .exec(self.db)
            .await?;
        Ok(result.rows_affected > 0)
    }

    /// Customers that are not soft-deleted.
    pub async fn count(&self) -> Result<u64, DbErr> {
        Customer::find()
            .filter(Column::DeletedAt.is_null())
            .count(self.db)
            .await
    }
}
