//! The `#[tenant_scoped]` attribute of storefront tenancy.
//!
//! This crate only generates code; use it through `tenancy_core`, which re-exports the
//! attribute as `tenancy_core::tenant_scoped` and defines what the generated code refers to.
//!
//! ```
//! use sea_orm::entity::prelude::*;
//!
//! #[tenancy_core::tenant_scoped]
//! #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
//! #[sea_orm(table_name = "customers")]
//! pub struct Model {
//!     #[sea_orm(primary_key, auto_increment = false)]
//!     pub id: Uuid,
//!     pub storefront_id: Uuid,
//!     pub email: String,
//! }
//! # #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)] pub enum Relation {}
//! # impl ActiveModelBehavior for ActiveModel {}
//! # fn main() {
//! assert_eq!(tenancy_core::Registry::from_entities().tenant_column("customers"), Some("storefront_id"));
//! # }
//! ```
//!
//! The attribute checks at compile time that the tenant column exists and is a non-null
//! `Uuid`, implements `tenancy_core::TenantScoped` for the module's `Entity`, and registers
//! the table so the SQL rewriter knows it is tenant-scoped without any hand-written list.
//! Place it above `#[derive(DeriveEntityModel)]` so it can read `#[sea_orm(table_name)]`.
#![forbid(unsafe_code)]

use proc_macro::TokenStream;
use quote::quote;
use syn::{
    parse::Parser, punctuated::Punctuated, spanned::Spanned, Error, Fields, ItemStruct, LitStr,
    Meta, Token, Type,
};

/// Marks a SeaORM entity's `Model` as tenant-scoped (one row belongs to one storefront).
///
/// Arguments: `column = "name"` sets the tenant column (default `storefront_id`).
///
/// ```
/// mod order {
///     use sea_orm::entity::prelude::*;
///
///     #[tenancy_core::tenant_scoped(column = "shop_id")]
///     #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
///     #[sea_orm(table_name = "orders")]
///     pub struct Model {
///         #[sea_orm(primary_key, auto_increment = false)]
///         pub id: Uuid,
///         pub shop_id: Uuid,
///         pub total_cents: i64,
///     }
///     #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
///     pub enum Relation {}
///     impl ActiveModelBehavior for ActiveModel {}
/// }
///
/// use tenancy_core::{Registry, TenantScoped};
///
/// // The entity knows its table and tenant column...
/// assert_eq!(<order::Entity as TenantScoped>::TENANT_COLUMN, "shop_id");
/// // ...and is registered: the rewriter confines `orders` by `shop_id`, with no list to keep.
/// assert_eq!(Registry::from_entities().tenant_column("orders"), Some("shop_id"));
/// ```
///
/// A tenant column that is missing or not a `Uuid` is a compile error that says so:
///
/// ```compile_fail
/// use sea_orm::entity::prelude::*;
///
/// #[tenancy_core::tenant_scoped]
/// #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
/// #[sea_orm(table_name = "notes")]
/// pub struct Model {
///     #[sea_orm(primary_key)]
///     pub id: i32,
///     pub storefront_id: String, // error: the tenant column must be a `Uuid`
/// }
/// # #[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)] pub enum Relation {}
/// # impl ActiveModelBehavior for ActiveModel {}
/// ```
#[proc_macro_attribute]
pub fn tenant_scoped(args: TokenStream, item: TokenStream) -> TokenStream {
    match expand(args.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

fn expand(
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let column = parse_args(args)?;
    let model: ItemStruct = syn::parse2(item.clone()).map_err(|e| {
        Error::new(
            e.span(),
            "#[tenant_scoped] goes on the `Model` struct of a SeaORM entity",
        )
    })?;
    let table = table_name(&model, "tenant_scoped")?;
    let field = tenant_field(&model, &column)?;
    check_uuid_type(&field.ty, &column)?;
    let field_ident = field
        .ident
        .as_ref()
        .ok_or_else(|| Error::new(model.ident.span(), "expected named fields"))?;
    let model_ident = &model.ident;

    Ok(quote! {
        #item

        impl ::tenancy_core::TenantScoped for Entity {
            const TABLE: &'static str = #table;
            const TENANT_COLUMN: &'static str = #column;
        }

        ::tenancy_core::__private::inventory::submit! {
            ::tenancy_core::ScopedTable::new(#table, #column)
        }

        // The syntactic check above gives the friendly message; this one proves the type.
        const _: fn(&#model_ident) = |model: &#model_ident| {
            let _: &::tenancy_core::__private::Uuid = &model.#field_ident;
        };
    })
}

/// Parses `column = "..."`, the only argument.
fn parse_args(args: proc_macro2::TokenStream) -> syn::Result<String> {
    let mut column = "storefront_id".to_owned();
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    for meta in metas {
        match &meta {
            Meta::NameValue(nv) if nv.path.is_ident("column") => {
                let lit = match &nv.value {
                    syn::Expr::Lit(syn::ExprLit {
                        lit: syn::Lit::Str(s),
                        ..
                    }) => s.clone(),
                    other => {
                        return Err(Error::new(
                            other.span(),
                            "expected a string literal: column = \"storefront_id\"",
                        ))
                    }
                };
                let value = lit.value();
                if value.is_empty() || !value.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                {
                    return Err(Error::new(
                        lit.span(),
                        "the tenant column must be a plain SQL identifier (letters, digits, `_`)",
                    ));
                }
                column = value;
            }
            other => {
                return Err(Error::new(
                    other.span(),
                    "unknown argument to #[tenant_scoped]; the only one is `column = \"...\"`",
                ))
            }
        }
    }
    Ok(column)
}

/// Marks a SeaORM entity's `Model` as a global table: one set of rows that every storefront
/// reads (reference data such as `countries`). Tenant connections may read it; writes are
/// refused unless the attribute says `#[global_table(writable)]`.
///
/// Every table a tenant connection names must be registered, either by
/// `#[tenant_scoped]` or by this attribute: unknown tables are refused.
#[proc_macro_attribute]
pub fn global_table(args: TokenStream, item: TokenStream) -> TokenStream {
    match expand_global(args.into(), item.into()) {
        Ok(tokens) => tokens.into(),
        Err(err) => err.to_compile_error().into(),
    }
}

fn expand_global(
    args: proc_macro2::TokenStream,
    item: proc_macro2::TokenStream,
) -> syn::Result<proc_macro2::TokenStream> {
    let mut writable = false;
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse2(args)?;
    for meta in metas {
        match &meta {
            Meta::Path(p) if p.is_ident("writable") => writable = true,
            other => {
                return Err(Error::new(
                    other.span(),
                    "unknown argument to #[global_table]; the only one is `writable`",
                ))
            }
        }
    }
    let model: ItemStruct = syn::parse2(item.clone()).map_err(|e| {
        Error::new(
            e.span(),
            "#[global_table] goes on the `Model` struct of a SeaORM entity",
        )
    })?;
    let table = table_name(&model, "global_table")?;
    Ok(quote! {
        #item

        impl ::tenancy_core::Global for Entity {
            const TABLE: &'static str = #table;
            const WRITABLE: bool = #writable;
        }

        ::tenancy_core::__private::inventory::submit! {
            ::tenancy_core::GlobalTable::new(#table, #writable)
        }
    })
}

/// Reads `#[sea_orm(table_name = "...")]` from the struct.
fn table_name(model: &ItemStruct, attribute: &str) -> syn::Result<String> {
    for attr in &model.attrs {
        if !attr.path().is_ident("sea_orm") {
            continue;
        }
        let mut found = None;
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("table_name") {
                let lit: LitStr = meta.value()?.parse()?;
                found = Some(lit.value());
            } else if meta.input.peek(Token![=]) {
                // Skip other `key = value` pairs (schema_name, comment, ...).
                let _: syn::Expr = meta.value()?.parse()?;
            }
            Ok(())
        })?;
        if let Some(table) = found {
            return Ok(table);
        }
    }
    Err(Error::new(
        model.ident.span(),
        format!(
            "#[{attribute}] needs `#[sea_orm(table_name = \"...\")]` below it; \
             put #[{attribute}] above #[derive(DeriveEntityModel)]"
        ),
    ))
}

/// Finds the field whose column name (its ident, or `#[sea_orm(column_name)]`) is `column`.
fn tenant_field<'a>(model: &'a ItemStruct, column: &str) -> syn::Result<&'a syn::Field> {
    let Fields::Named(fields) = &model.fields else {
        return Err(Error::new(
            model.ident.span(),
            "#[tenant_scoped] needs a struct with named fields",
        ));
    };
    for field in &fields.named {
        if column_name(field)?.as_deref() == Some(column) {
            return Ok(field);
        }
    }
    Err(Error::new(
        model.ident.span(),
        format!(
            "tenant-scoped entity has no `{column}` column; add `pub {column}: Uuid` \
             or name the tenant column with #[tenant_scoped(column = \"...\")]"
        ),
    ))
}

fn column_name(field: &syn::Field) -> syn::Result<Option<String>> {
    for attr in &field.attrs {
        if !attr.path().is_ident("sea_orm") {
            continue;
        }
        let mut renamed = None;
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("column_name") {
                let lit: LitStr = meta.value()?.parse()?;
                renamed = Some(lit.value());
            } else if meta.input.peek(Token![=]) {
                let _: syn::Expr = meta.value()?.parse()?;
            } else if meta.input.peek(syn::token::Paren) {
                let _content;
                syn::parenthesized!(_content in meta.input);
            }
            Ok(())
        })?;
        if renamed.is_some() {
            return Ok(renamed);
        }
    }
    Ok(field.ident.as_ref().map(|i| i.to_string()))
}

/// The tenant column must be a non-null `Uuid`.
fn check_uuid_type(ty: &Type, column: &str) -> syn::Result<()> {
    let last = match ty {
        Type::Path(p) if p.qself.is_none() => p.path.segments.last(),
        _ => None,
    };
    match last {
        Some(seg) if seg.ident == "Uuid" && seg.arguments.is_empty() => Ok(()),
        Some(seg) if seg.ident == "Option" => Err(Error::new(
            ty.span(),
            format!(
                "the tenant column `{column}` must not be nullable: use `Uuid`, not `Option<Uuid>`"
            ),
        )),
        _ => Err(Error::new(
            ty.span(),
            format!("the tenant column `{column}` must be a `Uuid` (uuid::Uuid)"),
        )),
    }
}
