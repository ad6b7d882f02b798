//! Vault events: appended to the vault's log inside the mutation's transaction with the next
//! `seq`, and handed to a [`Publisher`] after commit. Log entries and broadcasts are the same
//! JSON objects (CONTRACT §6).
use sea_orm::{
    ActiveValue::Set,
    ConnectionTrait, EntityTrait,
    prelude::Expr,
    sea_query::{ExprTrait, Query},
};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use uuid::Uuid;

use super::{Actor, Role, Tx, now, role_name};
use crate::error::{AppError, Result};
use entities::{events, vaults};

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub vault_id: Uuid,
    pub seq: i64,
    pub kind: &'static str,
    /// The full broadcast object: `{vaultId, seq, …, actor, timestamp}`.
    pub payload: Value,
}

/// Receives committed events. The real-time layer implements it.
pub trait Publisher: Send + Sync + 'static {
    /// Queues events of a transaction about to commit; they are sent once the ticket is
    /// confirmed and dropped if it is not.
    fn reserve(&self, events: Vec<Event>) -> Ticket;
}

pub struct Ticket(Option<oneshot::Sender<()>>);

impl Ticket {
    pub fn new(tx: oneshot::Sender<()>) -> Self {
        Self(Some(tx))
    }
    pub fn confirm(mut self) {
        if let Some(tx) = self.0.take() {
            let _ = tx.send(());
        }
    }
}

/// A publisher that drops everything (for `migrate` and other commands with no sockets).
pub struct NoPublisher;

impl Publisher for NoPublisher {
    fn reserve(&self, _: Vec<Event>) -> Ticket {
        Ticket(None)
    }
}

/// Takes the next `seq` of a vault. The `UPDATE` locks the vault row until commit, which
/// serializes writers per vault on PostgreSQL; on a rollback the number is given back.
pub async fn next_seq(tx: &Tx, vault_id: Uuid) -> Result<i64> {
    let mut update = Query::update();
    update
        .table(vaults::Entity)
        .value(
            vaults::Column::LastSeq,
            Expr::col(vaults::Column::LastSeq).add(1),
        )
        .and_where(Expr::col(vaults::Column::Id).eq(vault_id))
        .returning_col(vaults::Column::LastSeq);
    let row = tx.query_one(&update).await?;
    match row {
        Some(row) => Ok(row.try_get_by_index::<i64>(0)?),
        None => Err(AppError::NotFound("Vault not found")),
    }
}

/// Builds an event, records it for publishing and (unless the vault is being deleted)
/// appends it to the log in the same transaction.
pub async fn append(
    tx: &mut Tx,
    vault_id: Uuid,
    seq: i64,
    kind: &'static str,
    actor: &Actor,
    role: Role,
    fields: Value,
) -> Result<()> {
    let timestamp = now();
    let mut payload = json!({
        "vaultId": vault_id,
        "seq": seq,
        "actor": { "userId": actor.user_id, "userName": actor.user_name, "role": role_name(role) },
        "timestamp": timestamp,
    });
    if let (Some(obj), Value::Object(extra)) = (payload.as_object_mut(), fields) {
        obj.extend(extra);
    }
    if kind != "vault:deleted" {
        events::Entity::insert(events::ActiveModel {
            vault_id: Set(vault_id),
            seq: Set(seq),
            event_type: Set(kind.to_string()),
            actor_id: Set(Some(actor.user_id)),
            payload: Set(payload.clone()),
            created_at: Set(timestamp),
        })
        .exec_without_returning(&**tx)
        .await?;
    }
    tx.record(Event {
        vault_id,
        seq,
        kind,
        payload,
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
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder, QuerySelect};
    super::access::require(db, vault_id, actor.user_id, super::access::Action::Read).await?;
    let latest = super::vaults::find(db, vault_id).await?.last_seq;
    let rows = events::Entity::find()
        .filter(events::Column::VaultId.eq(vault_id))
        .filter(events::Column::Seq.gt(since))
        .order_by_asc(events::Column::Seq)
        .limit(limit)
        .all(db)
        .await?;
    Ok((rows.into_iter().map(log_entry).collect(), latest))
}

/// The logged events with `since < seq <= latest`, oldest first, for a socket that rejoins. The
/// caller has checked membership; each payload is the broadcast object as it went out.
pub async fn replay(
    db: &impl ConnectionTrait,
    vault_id: Uuid,
    since: i64,
    latest: i64,
) -> Result<Vec<events::Model>> {
    use sea_orm::{ColumnTrait, QueryFilter, QueryOrder};
    Ok(events::Entity::find()
        .filter(events::Column::VaultId.eq(vault_id))
        .filter(events::Column::Seq.gt(since))
        .filter(events::Column::Seq.lte(latest))
        .order_by_asc(events::Column::Seq)
        .all(db)
        .await?)
}
