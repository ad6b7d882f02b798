//! Vault events: appended to the vault's log inside the mutation's transaction with the next
//! `seq`, and announced by that transaction (see [`super::tx`]). Log entries and broadcasts
//! are the same JSON objects (CONTRACT §6); a broadcast is serialized once, when it is made.
use std::sync::Arc;

use sea_orm::{
    ActiveValue::Set,
    ConnectionTrait, DbBackend, EntityTrait, QueryTrait, Statement,
    prelude::Expr,
    sea_query::{ExprTrait, Query, UpdateStatement},
};
use serde_json::{Value, json, value::RawValue};
use uuid::Uuid;

use super::{Actor, Role, Tx, now, role_name, sessions::EndReason};
use crate::{
    db::BuiltOnce,
    error::{AppError, Result},
};
use entities::{events, vaults};

/// The events of CONTRACT §6.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    SourceCreated,
    SourceUpdated,
    SourceDeleted,
    MemberAdded,
    MemberUpdated,
    MemberRemoved,
    VaultUpdated,
    VaultDeleted,
}

const KINDS: [(EventKind, &str); 8] = [
    (EventKind::SourceCreated, "source:created"),
    (EventKind::SourceUpdated, "source:updated"),
    (EventKind::SourceDeleted, "source:deleted"),
    (EventKind::MemberAdded, "member:added"),
    (EventKind::MemberUpdated, "member:updated"),
    (EventKind::MemberRemoved, "member:removed"),
    (EventKind::VaultUpdated, "vault:updated"),
    (EventKind::VaultDeleted, "vault:deleted"),
];

impl EventKind {
    pub fn name(self) -> &'static str {
        KINDS
            .iter()
            .find(|(k, _)| *k == self)
            .map_or("", |(_, n)| n)
    }

    pub fn parse(name: &str) -> Option<Self> {
        KINDS.iter().find(|(_, n)| *n == name).map(|(k, _)| *k)
    }

    /// The events a client may never send (CONTRACT §7 "Server-only events").
    pub fn is_source_event(name: &str) -> bool {
        matches!(
            Self::parse(name),
            Some(Self::SourceCreated | Self::SourceUpdated | Self::SourceDeleted)
        )
    }
}

/// One committed (or committing) change of a vault.
#[derive(Debug, Clone)]
pub struct Event {
    pub vault_id: Uuid,
    pub seq: i64,
    pub kind: EventKind,
    /// For `member:*`: the member's user id, so revocation needs no look into the payload.
    pub member: Option<Uuid>,
    /// The broadcast object `{vaultId, seq, …, actor, timestamp}`, serialized once.
    pub payload: Arc<RawValue>,
}

impl Event {
    /// An event as it was logged.
    pub fn from_log(model: events::Model) -> Option<Self> {
        let kind = EventKind::parse(&model.event_type)?;
        let member = model.payload["member"]["userId"]
            .as_str()
            .and_then(|id| id.parse().ok());
        Some(Self {
            vault_id: model.vault_id,
            seq: model.seq,
            kind,
            member,
            payload: raw(&model.payload),
        })
    }

    /// For `member:*`: the role the event gives its member.
    pub fn member_role(&self) -> Option<Role> {
        let payload: Value = serde_json::from_str(self.payload.get()).ok()?;
        super::input::role(payload["member"]["role"].as_str()?).ok()
    }
}

pub fn raw(value: &Value) -> Arc<RawValue> {
    // A `Value` always serializes, to valid JSON: no need to parse it again.
    Arc::from(serde_json::value::to_raw_value(value).expect("a Value always serializes"))
}

/// What a committed transaction announces to every node.
#[derive(Debug, Clone)]
pub enum Notice {
    Event(Event),
    /// A session was deleted (logout): its sockets are told why and disconnected wherever
    /// they are.
    SessionEnded(Uuid, EndReason),
}

/// Takes the next `seq` of a vault. The `UPDATE` locks the vault row until commit, which
/// serializes writers per vault (and so orders their commits); a rollback gives it back.
pub async fn next_seq(tx: &Tx, vault_id: Uuid) -> Result<i64> {
    let mut update = seq_bump(vault_id);
    update.returning_col(vaults::Column::LastSeq);
    let row = tx.query_one(&update).await?;
    match row {
        Some(row) => Ok(row.try_get_by_index::<i64>(0)?),
        None => Err(AppError::NotFound("Vault not found")),
    }
}

/// `UPDATE vaults SET last_seq = last_seq + 1` for one vault, without its `RETURNING`.
pub(super) fn seq_bump(vault_id: Uuid) -> UpdateStatement {
    let mut update = Query::update();
    update
        .table(vaults::Entity)
        .value(
            vaults::Column::LastSeq,
            Expr::col(vaults::Column::LastSeq).add(1),
        )
        .and_where(Expr::col(vaults::Column::Id).eq(vault_id));
    update
}

/// What an event is about, besides its kind: the member for `member:*` events and the
/// kind-specific fields of the payload (`source`, `member`, `vault`, `sourceId`).
pub struct Change {
    kind: EventKind,
    member: Option<Uuid>,
    fields: Value,
}

impl Change {
    pub fn new(kind: EventKind, fields: Value) -> Self {
        Self {
            kind,
            member: None,
            fields,
        }
    }

    pub fn of_member(kind: EventKind, member: &super::dto::Member) -> Self {
        Self {
            kind,
            member: Some(member.user_id),
            fields: json!({ "member": member }),
        }
    }
}

/// Builds an event, records it for announcing and (unless the vault is being deleted)
/// appends it to the log in the same transaction.
pub async fn append(
    tx: &mut Tx,
    vault_id: Uuid,
    seq: i64,
    actor: &Actor,
    role: Role,
    change: Change,
) -> Result<()> {
    append_after(tx, None, vault_id, seq, actor, role, change).await
}

/// As [`append`], running the caller's own `write` (a statement that returns nothing) first,
/// in one batch with the log entry (see [`Tx::write_all`]).
pub async fn append_after(
    tx: &mut Tx,
    write: Option<Statement>,
    vault_id: Uuid,
    seq: i64,
    actor: &Actor,
    role: Role,
    change: Change,
) -> Result<()> {
    let timestamp = now();
    let mut payload = json!({
        "vaultId": vault_id,
        "seq": seq,
        "actor": { "userId": actor.user_id, "userName": actor.user_name, "role": role_name(role) },
        "timestamp": timestamp,
    });
    if let (Some(obj), Value::Object(extra)) = (payload.as_object_mut(), change.fields) {
        obj.extend(extra);
    }
    let raw = raw(&payload);
    let logged = (change.kind != EventKind::VaultDeleted).then(|| {
        static BUILT: BuiltOnce = BuiltOnce::new();
        let backend = tx.backend();
        let kind = change.kind.name();
        // SQLite keeps JSON as text, the text `raw` already holds: bound as such, the payload
        // is not serialized a second time.
        let payload = match backend {
            DbBackend::Sqlite => raw.get().into(),
            _ => payload.into(),
        };
        let values = vec![
            vault_id.into(),
            seq.into(),
            kind.into(),
            Some(actor.user_id).into(),
            payload,
            timestamp.into(),
        ];
        BUILT.statement(backend, values, || {
            events::Entity::insert(events::ActiveModel {
                vault_id: Set(vault_id),
                seq: Set(seq),
                event_type: Set(kind.to_string()),
                actor_id: Set(Some(actor.user_id)),
                payload: Set(serde_json::from_str(raw.get()).expect("valid JSON")),
                created_at: Set(timestamp),
            })
            .build(backend)
        })
    });
    tx.write_all(write.into_iter().chain(logged)).await?;
    tx.record(Event {
        vault_id,
        seq,
        kind: change.kind,
        member: change.member,
        payload: raw,
    });
    Ok(())
}

/// A log entry as served over REST: the broadcast object plus its `type`.
pub fn log_entry(model: events::Model) -> Value {
    let mut payload = model.payload;
    if let Some(obj) = payload.as_object_mut() {
        obj.insert("type".into(), Value::String(model.event_type));
    }
    payload
}

/// The vault's log after `since`, oldest first, and the latest `seq`.
pub async fn list(
    db: &impl ConnectionTrait,
    actor: &Actor,
    vault_id: Uuid,
    since: i64,
    limit: u64,
) -> Result<(Vec<Value>, i64)> {
    super::access::require(db, vault_id, actor.user_id, super::access::Action::Read).await?;
    let latest = super::vaults::find(db, vault_id).await?.last_seq;
    let rows = page(db, vault_id, since, i64::MAX, limit).await?;
    Ok((rows.into_iter().map(log_entry).collect(), latest))
}

/// Up to `limit` logged events with `after < seq <= upto`, oldest first. Callers that
/// replay to sockets page through a range with this, so no range is ever held whole.
pub async fn page(
    db: &impl ConnectionTrait,
    vault_id: Uuid,
    after: i64,
    upto: i64,
    limit: u64,
) -> Result<Vec<events::Model>> {
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};
    Ok(events::Entity::find()
        .filter(events::Column::VaultId.eq(vault_id))
        .filter(events::Column::Seq.gt(after))
        .filter(events::Column::Seq.lte(upto))
        .order_by_asc(events::Column::Seq)
        .limit(limit)
        .all(db)
        .await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_has_a_name_that_parses_back() {
        for (kind, name) in KINDS {
            assert_eq!(kind.name(), name);
            assert_eq!(EventKind::parse(name), Some(kind));
        }
        assert_eq!(EventKind::parse("vault:joined"), None);
    }
}
