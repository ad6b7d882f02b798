//! `source:create`, `source:update`, `source:delete` over the socket: the same domain
//! functions, checks and transaction as the REST routes. The transaction also checks that the
//! socket's session is still alive, so a socket whose disconnect went astray cannot write.
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

use super::context::SocketCtx;
use crate::{
    domain::{
        input::{self, from_json},
        sessions,
        sources::{self, NewSource, SourceFields, SourcePatch, SourcePatchFields},
        tx::Tx,
    },
    error::{AppError, Result},
    state::AppState,
};

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct CreateTarget {
    vault_id: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct SourceTarget {
    source_id: String,
}

/// Mutation payloads are JSON objects.
fn object(value: &Value) -> Result<Value> {
    match value {
        Value::Object(_) => Ok(value.clone()),
        _ => Err(AppError::field("body", "must be an object")),
    }
}

fn uuid_field(field: &str, raw: &str) -> Result<Uuid> {
    input::id(field, raw).map_err(|e| AppError::validation(vec![e]))
}

/// `tx`, for a socket whose session is still alive.
async fn alive(tx: Tx, ctx: &SocketCtx) -> Result<Tx> {
    if !sessions::is_alive(&tx, ctx.user().session_id).await? {
        return Err(AppError::Unauthorized("Session expired or revoked"));
    }
    Ok(tx)
}

pub(super) async fn create_source(
    state: &AppState,
    ctx: &SocketCtx,
    value: Value,
) -> Result<Value> {
    let fields: SourceFields = from_json(object(&value)?)?;
    let target: CreateTarget = from_json(value)?;
    let vault_id = uuid_field("vaultId", &target.vault_id)?;
    let new = NewSource::parse(&fields)?;
    // As over REST: a new source takes the direct transaction (see `TxFactory::begin_direct`).
    let mut tx = alive(state.begin_direct().await?, ctx).await?;
    let source = sources::create(&mut tx, &ctx.actor(), vault_id, new).await?;
    tx.commit().await?;
    Ok(json!({ "ok": true, "source": source }))
}

pub(super) async fn update_source(
    state: &AppState,
    ctx: &SocketCtx,
    value: Value,
) -> Result<Value> {
    let fields: SourcePatchFields = from_json(object(&value)?)?;
    let target: SourceTarget = from_json(value)?;
    let source_id = uuid_field("sourceId", &target.source_id)?;
    let patch = SourcePatch::parse(&fields)?;
    let mut tx = alive(state.begin().await?, ctx).await?;
    let source = sources::update(&mut tx, &ctx.actor(), source_id, patch).await?;
    tx.commit().await?;
    Ok(json!({ "ok": true, "source": source }))
}

pub(super) async fn delete_source(
    state: &AppState,
    ctx: &SocketCtx,
    value: Value,
) -> Result<Value> {
    let target: SourceTarget = from_json(object(&value)?)?;
    let source_id = uuid_field("sourceId", &target.source_id)?;
    let mut tx = alive(state.begin().await?, ctx).await?;
    let source = sources::delete(&mut tx, &ctx.actor(), source_id).await?;
    tx.commit().await?;
    Ok(json!({ "ok": true, "source": source }))
}
