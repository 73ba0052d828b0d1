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

impl TenantType {
    /// `shared`, `schema` or `database`: the label of metrics, traces and the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            TenantType::Shared => "shared",
            TenantType::Schema => "schema",
            TenantType::Database => "database",
        }
    }
}

impl fmt::Display for TenantType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
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

/// Where one storefront's rows are, concretely.
///
/// `Debug` and `Display` hide a database URL's password (`Serialize` keeps it: the
/// directory and the moves table store placements to connect with).
///
/// ```
/// use tenancy_core::Placement;
///
/// let p = Placement::Database { url: "postgres://app:s3cret@db/shop".into() };
/// assert!(!format!("{p:?} {p}").contains("s3cret"));
/// ```
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Placement {
    /// In the shared database, isolated by the tenant column.
    Shared,
    /// In its own schema of the shared database's server: a PostgreSQL schema, or a MySQL
    /// database on the same server.
    Schema {
        /// The schema name (a plain identifier).
        schema: String,
    },
    /// In its own database, at this URL (any server).
    Database {
        /// The connection URL.
        url: String,
    },
}

impl Placement {
    /// The kind of placement.
    pub fn tenant_type(&self) -> TenantType {
        match self {
            Placement::Shared => TenantType::Shared,
            Placement::Schema { .. } => TenantType::Schema,
            Placement::Database { .. } => TenantType::Database,
        }
    }

    /// The schema, for schema placement.
    pub fn schema(&self) -> Option<&str> {
        match self {
            Placement::Schema { schema } => Some(schema),
            _ => None,
        }
    }
}

impl Placement {
    /// The same placement with a database URL's password replaced by `***`, for output.
    pub fn redacted(&self) -> Placement {
        match self {
            Placement::Database { url } => Placement::Database {
                url: crate::backend::redact(url),
            },
            other => other.clone(),
        }
    }
}

/// Serialises a placement for output (an API, a report): as [`Placement`]'s own form, with
/// a database URL's password hidden. Records that are shown (a move, a directory row) use
/// it; the mover and the directory store placements by themselves, password and all.
pub(crate) fn serialize_redacted<S: serde::Serializer>(
    placement: &Placement,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    Serialize::serialize(&placement.redacted(), serializer)
}

impl fmt::Debug for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::Shared => f.write_str("Shared"),
            Placement::Schema { schema } => {
                f.debug_struct("Schema").field("schema", schema).finish()
            }
            Placement::Database { url } => f
                .debug_struct("Database")
                .field("url", &crate::backend::redact(url))
                .finish(),
        }
    }
}

impl fmt::Display for Placement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Placement::Shared => f.write_str("shared"),
            Placement::Schema { schema } => write!(f, "schema {schema}"),
            Placement::Database { url } => write!(f, "database {}", crate::backend::redact(url)),
        }
    }
}

/// Checks that `name` can be used as a schema or database name without quoting problems:
/// 1 to 63 ASCII letters, digits or `_`, not starting with a digit.
pub fn validate_identifier(name: &str) -> Result<(), TenancyError> {
    let ok = !name.is_empty()
        && name.len() <= 63
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(TenancyError::InvalidName {
            name: name.to_owned(),
            reason: "use 1 to 63 ASCII letters, digits or `_`, not starting with a digit".into(),
        })
    }
}

impl StorefrontId {
    /// The UUID with `_` for `-`, for names: `0b5f6d0e_8f3c_4c2a_9a53_3e1f4b1f7d10`.
    pub fn underscored(&self) -> String {
        self.0.hyphenated().to_string().replace('-', "_")
    }

    /// Fills a name or URL pattern: `{storefront_id}` becomes [`Self::underscored`].
    pub fn fill(&self, pattern: &str) -> String {
        pattern.replace("{storefront_id}", &self.underscored())
    }
}
