//! The response bodies of the REST API as the handlers serialize them, and the path
//! parameters; their `ToSchema` / `IntoParams` derives are what `/api/openapi.json` documents.
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::domain::dto::{self, RoleName};

#[derive(Serialize, ToSchema)]
pub struct UserBody {
    pub user: dto::User,
}

#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SessionBody {
    pub user: dto::User,
    /// When the session expires unless it is used again (each use renews it).
    pub expires_at: DateTime<Utc>,
}

#[derive(Serialize, ToSchema)]
pub struct VaultList {
    pub vaults: Vec<dto::VaultWithRole>,
}

#[derive(Serialize, ToSchema)]
pub struct VaultBody {
    pub vault: dto::Vault,
}

#[derive(Serialize, ToSchema)]
pub struct VaultAndRole {
    pub vault: dto::Vault,
    /// The caller's role in the vault.
    #[schema(value_type = RoleName)]
    pub role: &'static str,
}

#[derive(Serialize, ToSchema)]
pub struct MemberList {
    pub members: Vec<dto::Member>,
}

#[derive(Serialize, ToSchema)]
pub struct MemberBody {
    pub member: dto::Member,
}

/// A page of sources, newest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourcePage {
    pub sources: Vec<dto::Source>,
    /// The `cursor` of the next page; `null` on the last page.
    #[schema(required)]
    pub next_cursor: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SourceBody {
    pub source: dto::Source,
}

/// A page of the vault's event log, oldest first.
#[derive(Serialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventPage {
    // Stored as the JSON that was broadcast; `LogEntry` describes it.
    #[schema(value_type = Vec<LogEntry>)]
    pub events: Vec<serde_json::Value>,
    /// The vault's latest `seq` (0 while the log is empty).
    #[schema(minimum = 0)]
    pub latest_seq: i64,
}

/// One entry of the event log (CONTRACT §6): the broadcast object plus its `type`. A deleted
/// vault has no log, so `vault:deleted` never appears here.
#[derive(ToSchema)]
#[serde(tag = "type")]
pub enum LogEntry {
    #[serde(rename = "source:created")]
    SourceCreated(SourceEvent),
    #[serde(rename = "source:updated")]
    SourceUpdated(SourceEvent),
    #[serde(rename = "source:deleted")]
    SourceDeleted(SourceDeletedEvent),
    #[serde(rename = "member:added")]
    MemberAdded(MemberEvent),
    #[serde(rename = "member:updated")]
    MemberUpdated(MemberEvent),
    #[serde(rename = "member:removed")]
    MemberRemoved(MemberEvent),
    #[serde(rename = "vault:updated")]
    VaultUpdated(VaultEvent),
}

/// What every event carries.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventMeta {
    pub vault_id: Uuid,
    /// Per vault, from 1, with no gaps.
    #[schema(minimum = 1)]
    pub seq: i64,
    pub actor: EventActor,
    pub timestamp: DateTime<Utc>,
}

/// Who made the change, with their role at that moment.
#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
#[schema(as = Actor)]
pub struct EventActor {
    pub user_id: Uuid,
    pub user_name: String,
    #[schema(value_type = RoleName)]
    pub role: &'static str,
}

#[derive(ToSchema)]
pub struct SourceEvent {
    #[serde(flatten)]
    pub meta: EventMeta,
    pub source: dto::Source,
}

#[derive(ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SourceDeletedEvent {
    #[serde(flatten)]
    pub meta: EventMeta,
    pub source_id: Uuid,
}

#[derive(ToSchema)]
pub struct MemberEvent {
    #[serde(flatten)]
    pub meta: EventMeta,
    pub member: dto::Member,
}

#[derive(ToSchema)]
pub struct VaultEvent {
    #[serde(flatten)]
    pub meta: EventMeta,
    pub vault: dto::Vault,
}

/// `{id}` of `/api/vaults/{id}/…`. A malformed id names no vault: 404, not 400.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct VaultId {
    /// The vault's id.
    pub id: Uuid,
}

/// `{id}` of `/api/sources/{id}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path)]
pub struct SourceId {
    /// The source's id.
    pub id: Uuid,
}

/// `{id}` and `{userId}` of `/api/vaults/{id}/members/{userId}`.
#[derive(IntoParams)]
#[into_params(parameter_in = Path, rename_all = "camelCase")]
pub struct MemberId {
    /// The vault's id.
    pub id: Uuid,
    /// The member's user id.
    pub user_id: Uuid,
}

/// Response descriptions several routes share.
pub mod why {
    pub const NOT_MEMBER: &str = "No such vault, or the caller is not a member of it";
    pub const NOT_OWNER: &str = "The caller is not an owner of the vault";
    pub const VIEWER: &str = "The caller is a viewer of the vault";
    pub const NO_SOURCE: &str = "No such source, or the caller is not a member of its vault";
    pub const LAST_OWNER: &str = "It would leave the vault without an owner";
}
