//! The response bodies of the REST API as the handlers serialize them, and the path
//! parameters; their `ToSchema` / `IntoParams` derives are what `/api/openapi.json` documents.
use chrono::{DateTime, Utc};
use serde::Serialize;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::domain::{
    dto::{self, RoleName},
    timestamp,
};

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

impl SourcePage {
    /// The page as JSON: the same bytes as `serde_json::to_vec(self)`, written directly. A page
    /// is the hottest response there is, and serde_json checks every key, id and timestamp for
    /// characters to escape, one piece at a time; only the two free-text fields can need it,
    /// and those still go through serde_json.
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.sources.len() * 384);
        out.extend_from_slice(b"{\"sources\":[");
        for (i, source) in self.sources.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            source_json(&mut out, source);
        }
        out.extend_from_slice(b"],\"nextCursor\":");
        match &self.next_cursor {
            Some(cursor) => json_value(&mut out, cursor),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
        out
    }
}

/// One [`dto::Source`], its fields in the order its `Serialize` writes them.
fn source_json(out: &mut Vec<u8>, s: &dto::Source) {
    out.extend_from_slice(b"{\"id\":");
    uuid_json(out, &s.id);
    out.extend_from_slice(b",\"vaultId\":");
    uuid_json(out, &s.vault_id);
    out.extend_from_slice(b",\"title\":");
    json_value(out, &s.title);
    out.extend_from_slice(b",\"fileUrl\":");
    json_value(out, &s.file_url);
    out.extend_from_slice(b",\"createdBy\":");
    match &s.created_by {
        Some(id) => uuid_json(out, id),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(b",\"createdAt\":");
    timestamp_json(out, &s.created_at);
    out.extend_from_slice(b",\"updatedAt\":");
    timestamp_json(out, &s.updated_at);
    out.extend_from_slice(b",\"version\":");
    json_value(out, &s.version);
    out.push(b'}');
}

fn uuid_json(out: &mut Vec<u8>, id: &Uuid) {
    out.push(b'"');
    out.extend_from_slice(
        id.hyphenated()
            .encode_lower(&mut Uuid::encode_buffer())
            .as_bytes(),
    );
    out.push(b'"');
}

fn timestamp_json(out: &mut Vec<u8>, at: &DateTime<Utc>) {
    match timestamp::text(at, &mut [0; 32]) {
        Some(text) => {
            out.push(b'"');
            out.extend_from_slice(text.as_bytes());
            out.push(b'"');
        }
        None => json_value(out, at),
    }
}

fn json_value(out: &mut Vec<u8>, value: &impl Serialize) {
    // Strings, numbers and timestamps always serialize, and a Vec takes every write.
    serde_json::to_writer(out, value).expect("a plain value serializes into a Vec");
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

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn source(title: &str, created_by: Option<Uuid>, nano: u32) -> dto::Source {
        let at = Utc.timestamp_opt(1_765_000_000, nano).unwrap();
        dto::Source {
            id: Uuid::new_v4(),
            vault_id: Uuid::new_v4(),
            title: title.into(),
            file_url: "https://example.com/a.pdf?q=\"x\"&y=\\".into(),
            created_by,
            created_at: at,
            updated_at: at + chrono::Duration::microseconds(1),
            version: 7,
        }
    }

    #[test]
    fn a_page_is_written_as_serde_writes_it() {
        let titles = [
            "Plain",
            "Quotes \" and \\ backslashes / slashes",
            "Controls \u{1}\u{8}\t\n\u{c}\r\u{1f}\u{7f} end",
            "Unicode é ✓ 😀 \u{2028}\u{2029}",
        ];
        let sources: Vec<_> = titles
            .iter()
            .enumerate()
            .map(|(i, t)| {
                source(
                    t,
                    (i % 2 == 0).then(Uuid::new_v4),
                    [0, 5_000_000, 123_456_000, 7][i],
                )
            })
            .collect();
        for next_cursor in [None, Some("733132".to_string())] {
            for n in [0, 1, sources.len()] {
                let page = SourcePage {
                    sources: sources[..n].to_vec(),
                    next_cursor: next_cursor.clone(),
                };
                let ours = String::from_utf8(page.to_json()).unwrap();
                assert_eq!(ours, serde_json::to_string(&page).unwrap());
            }
        }
    }
}
