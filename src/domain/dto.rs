//! The JSON shapes of CONTRACT §3 and §5, built from entity models. Their `ToSchema` derives
//! are the OpenAPI document's schemas, so the constraints noted here are the ones `input`
//! enforces on the way in.
use std::borrow::Cow;

use chrono::{DateTime, Utc};
use sea_orm::Iterable;
use serde::Serialize;
use utoipa::{
    PartialSchema, ToSchema,
    openapi::{ObjectBuilder, RefOr, Type, schema::Schema},
};
use uuid::Uuid;

use super::{Role, role_name};
use entities::{sources, users, vaults};

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: Uuid,
    #[schema(format = Email, max_length = 320)]
    pub email: String,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
}

impl From<&users::Model> for User {
    fn from(m: &users::Model) -> Self {
        Self {
            id: m.id,
            email: m.email.clone(),
            name: m.name.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Vault {
    pub id: Uuid,
    #[schema(min_length = 1, max_length = 200)]
    pub name: String,
    #[schema(max_length = 2000)]
    pub description: String,
    #[serde(serialize_with = "super::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "super::timestamp::serialize")]
    pub updated_at: DateTime<Utc>,
}

impl From<&vaults::Model> for Vault {
    fn from(m: &vaults::Model) -> Self {
        Self {
            id: m.id,
            name: m.name.clone(),
            description: m.description.clone(),
            created_at: m.created_at,
            updated_at: m.updated_at,
        }
    }
}

/// A vault as listed for the caller: the vault's fields and the caller's role in it.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VaultWithRole {
    #[serde(flatten)]
    pub vault: Vault,
    #[schema(value_type = RoleName)]
    pub role: &'static str,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub user_id: Uuid,
    #[schema(format = Email, max_length = 320)]
    pub email: String,
    pub name: String,
    #[schema(value_type = RoleName)]
    pub role: &'static str,
    #[serde(serialize_with = "super::timestamp::serialize")]
    pub joined_at: DateTime<Utc>,
}

impl Member {
    pub fn new(user: &users::Model, role: Role, joined_at: DateTime<Utc>) -> Self {
        Self {
            user_id: user.id,
            email: user.email.clone(),
            name: user.name.clone(),
            role: role_name(role),
            joined_at,
        }
    }
}

#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    pub id: Uuid,
    pub vault_id: Uuid,
    #[schema(min_length = 1, max_length = 300)]
    pub title: String,
    #[schema(format = "uri", max_length = 2048, pattern = "^https?://")]
    pub file_url: String,
    /// The user who added it; `null` once that user is deleted.
    #[schema(required)]
    pub created_by: Option<Uuid>,
    #[serde(serialize_with = "super::timestamp::serialize")]
    pub created_at: DateTime<Utc>,
    #[serde(serialize_with = "super::timestamp::serialize")]
    pub updated_at: DateTime<Utc>,
    /// 1 when created, one more on every update.
    #[schema(minimum = 1)]
    pub version: i32,
}

impl From<&sources::Model> for Source {
    fn from(m: &sources::Model) -> Self {
        Self {
            id: m.id,
            vault_id: m.vault_id,
            title: m.title.clone(),
            file_url: m.file_url.clone(),
            created_by: m.created_by,
            created_at: m.created_at,
            updated_at: m.updated_at,
            version: m.version,
        }
    }
}

/// The `role` enum of the OpenAPI document, listed from the domain's [`Role`] (which lives in
/// the generated `entities` crate, so it cannot derive `ToSchema` itself).
pub struct RoleName;

impl PartialSchema for RoleName {
    fn schema() -> RefOr<Schema> {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(Role::iter().map(role_name)))
            .into()
    }
}

impl ToSchema for RoleName {
    fn name() -> Cow<'static, str> {
        "Role".into()
    }
}
