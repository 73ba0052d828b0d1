//! Storefront identity and placement types.
//!
//! A storefront (tenant) is named by a [`StorefrontId`], a validated UUID. Where its rows
//! live is its [`TenantType`]: in the shared database next to other storefronts' rows
//! (isolated by the tenant column), in its own schema, or in its own database.

use std::{fmt, str::FromStr};

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::TenancyError;

/// The id of a storefront: a UUID that is not the nil UUID.
///
/// ```
/// use tenancy_core::StorefrontId;
/// let id: StorefrontId = "0b5f6d0e-8f3c-4c2a-9a53-3e1f4b1f7d10".parse().unwrap();
/// assert_eq!(id.to_string(), "0b5f6d0e-8f3c-4c2a-9a53-3e1f4b1f7d10");
/// assert!("not-a-uuid".parse::<StorefrontId>().is_err());
/// assert!(StorefrontId::try_from(uuid::Uuid::nil()).is_err());
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct StorefrontId(Uuid);

impl StorefrontId {
    /// A new random storefront id (UUID v4).
    pub fn new_random() -> Self {
        Self(Uuid::new_v4())
    }

    /// The UUID.
    pub fn as_uuid(&self) -> &Uuid {
        &self.0
    }
}

impl TryFrom<Uuid> for StorefrontId {
    type Error = TenancyError;

    fn try_from(uuid: Uuid) -> Result<Self, TenancyError> {
        if uuid.is_nil() {
            return Err(TenancyError::InvalidStorefrontId {
                input: uuid.to_string(),
                reason: "the nil UUID is not a storefront".into(),
            });
        }
        Ok(Self(uuid))
    }
}

impl FromStr for StorefrontId {
    type Err = TenancyError;

    fn from_str(s: &str) -> Result<Self, TenancyError> {
        let uuid = Uuid::parse_str(s.trim()).map_err(|e| TenancyError::InvalidStorefrontId {
            input: s.to_owned(),
            reason: e.to_string(),
        })?;
        Self::try_from(uuid)
    }
}

impl<'de> Deserialize<'de> for StorefrontId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl From<StorefrontId> for Uuid {
    fn from(id: StorefrontId) -> Uuid {
        id.0
    }
}

impl fmt::Display for StorefrontId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0.hyphenated(), f)
    }
}

/// Where a storefront's rows live (the seed's `TenantType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TenantType {
    /// Rows in the shared database, isolated by the tenant column.
    Shared,
    /// Its own schema (PostgreSQL schema, MySQL database on the same server).
    Schema,
    /// Its own database, on any server.
    Database,
}

impl fmt::Display for TenantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TenantType::Shared => "shared",
            TenantType::Schema => "schema",
            TenantType::Database => "database",
        })
    }
}

impl FromStr for TenantType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim().to_ascii_lowercase().as_str() {
            "shared" => Ok(TenantType::Shared),
            "schema" => Ok(TenantType::Schema),
            "database" => Ok(TenantType::Database),
            other => Err(format!(
                "unknown tenant type `{other}` (expected shared, schema or database)"
            )),
        }
    }
}
