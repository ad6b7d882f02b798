//! The JSON shapes of CONTRACT §3 and §5, built from entity models.
use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use super::{Role, role_name};
use entities::{sources, users, vaults};

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct User {
    pub id: Uuid,
    pub email: String,
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

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Vault {
    pub id: Uuid,
    pub name: String,
    pub description: String,
    pub created_at: DateTime<Utc>,
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

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VaultWithRole {
    #[serde(flatten)]
    pub vault: Vault,
    pub role: &'static str,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub user_id: Uuid,
    pub email: String,
    pub name: String,
    pub role: &'static str,
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

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Source {
    pub id: Uuid,
    pub vault_id: Uuid,
    pub title: String,
    pub file_url: String,
    pub created_by: Option<Uuid>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
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
