//! Socket.IO handlers: the authenticated handshake, `vault:join` / `vault:leave`, and the
//! source mutations, which run through the same domain functions and transaction as REST.
use serde::Deserialize;
use serde_json::{Value, json};
use socketioxide::{
    extract::{AckSender, Event, SocketRef, TryData},
    handler::ConnectHandler,
};
use uuid::Uuid;

use super::{
    context::{HasAck, RateVerdict, SocketCtx, SocketUser},
    mutations::{create_source, delete_source, update_source},
    presence::PresenceUser,
    session_room, user_room, vault_room,
};
use crate::{
    api::{check_origins, extract::authenticate},
    domain::{
        access, events,
        input::{self, from_json},
        role_name, vaults,
    },
    error::{AppError, Result},
    state::AppState,
};

/// Why a handshake was refused; its text is the client's `connect_error` message.
#[derive(Debug)]
pub struct Refusal(&'static str);

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

pub fn register(state: &AppState) {
    let weak = state.downgrade();
    let middleware = move |s: SocketRef| {
        let state = weak.upgrade();
        async move {
            let Some(state) = state else {
                return Err(Refusal("UNAVAILABLE"));
            };
            let ctx = handshake(&state, &s).await?;
            // socketioxide sends CONNECT before it runs the connect handler, and a client may
            // emit the moment it reads CONNECT: an event that arrived before its handler was
            // registered would be dropped. So the socket is set up here, in the middleware.
            set_up(&state, s, ctx);
            Ok(())
        }
    };
    let on_connect = |_: SocketRef| async {};
    state.io.ns("/", on_connect.with(middleware));
}

/// Checks the origin, the session cookie and the user's socket count; the accepted user's
/// context comes back.
async fn handshake(state: &AppState, s: &SocketRef) -> Result<SocketCtx, Refusal> {
    let headers = &s.req_parts().headers;
    let host = headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    let origins = headers
        .get_all("origin")
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{0}"));
    if !check_origins(origins, host, &state.settings.server.allowed_origins) {
        tracing::warn!(sid = %s.id, "socket handshake from a foreign origin refused");
        return Err(Refusal("FORBIDDEN"));
    }
    let user = authenticate(state, headers).await.map_err(|e| match e {
        AppError::Unauthorized(_) => Refusal("UNAUTHORIZED"),
        AppError::Unavailable => Refusal("UNAVAILABLE"),
        other => {
            other.log();
            Refusal("INTERNAL")
        }
    })?;
    {
        let mut count = state.socket_counts.entry(user.user.id).or_insert(0);
        if *count >= state.settings.realtime.max_sockets_per_user {
            tracing::warn!(user_id = %user.user.id, "too many sockets for one user");
            return Err(Refusal("TOO_MANY_CONNECTIONS"));
        }
        *count += 1;
    }
    Ok(SocketCtx::new(SocketUser {
        user_id: user.user.id,
        name: user.user.name,
        session_id: user.session_id,
    }))
}

/// An accepted socket's context, rooms, event handlers, disconnect bookkeeping and metrics.
fn set_up(state: &AppState, s: SocketRef, ctx: SocketCtx) {
    s.extensions.insert(ctx.clone());
    s.join([
        user_room(ctx.user.user_id),
        session_room(ctx.user.session_id),
    ]);
    state.metrics.connected_sockets.inc();
    tracing::debug!(sid = %s.id, user_id = %ctx.user.user_id, "socket connected");

    let weak = state.downgrade();
    s.on_fallback(
        move |s: SocketRef,
              Event(event): Event,
              TryData(data): TryData<Value>,
              HasAck(has_ack): HasAck,
              ack: AckSender| {
            let state = weak.upgrade();
            async move {
                if let Some(state) = state {
                    dispatch(state, s, &event, data.ok(), has_ack, ack).await;
                }
            }
        },
    );

    let weak = state.downgrade();
    s.on_disconnect(move |s: SocketRef| {
        let Some(state) = weak.upgrade() else {
            return std::future::ready(());
        };
        for vault in ctx.joined_vaults() {
            state.presence.leave(vault, ctx.user.user_id, s.id);
            state.metrics.joined_rooms.dec();
        }
        if let Some(mut count) = state.socket_counts.get_mut(&ctx.user.user_id) {
            *count = count.saturating_sub(1);
        }
        state
            .socket_counts
            .remove_if(&ctx.user.user_id, |_, n| *n == 0);
        state.metrics.connected_sockets.dec();
        std::future::ready(())
    });
}

/// The events a client may send.
const CLIENT_EVENTS: [&str; 5] = [
    "vault:join",
    "vault:leave",
    "source:create",
    "source:update",
    "source:delete",
];
/// Events only the server sends; a client sending one is refused.
const SERVER_ONLY: [&str; 3] = ["source:created", "source:updated", "source:deleted"];

/// Every client event, through one handler per socket: the rate limit, then the payload and
/// the event's handler, then the reply rules. The result goes to the ack; a failure goes to
/// the `error` event when there is no ack, and always for a denied join or a server-only
/// event (CONTRACT §7). Events nobody handles are dropped, as Socket.IO does, but still count
/// towards the rate limit.
async fn dispatch(
    state: AppState,
    s: SocketRef,
    event: &str,
    data: Option<Value>,
    has_ack: bool,
    ack: AckSender,
) {
    let Some(ctx) = s.extensions.get::<SocketCtx>() else {
        return;
    };
    let result = match ctx.rate(state.settings.realtime.events_per_second) {
        RateVerdict::Disconnect => {
            tracing::warn!(sid = %s.id, user_id = %ctx.user.user_id, "socket flooding; disconnecting");
            let _ = s.disconnect();
            return;
        }
        RateVerdict::Limited => Err(AppError::RateLimited {
            retry_after_secs: 1,
        }),
        RateVerdict::Ok => match (event, data) {
            (event, _) if SERVER_ONLY.contains(&event) => {
                Err(AppError::Forbidden("Insufficient permissions"))
            }
            (event, None) if CLIENT_EVENTS.contains(&event) => {
                Err(AppError::field("payload", "is missing or malformed"))
            }
            ("vault:join", Some(value)) => join(state, s.clone(), ctx, value).await,
            ("vault:leave", Some(value)) => leave(state, s.clone(), ctx, value).await,
            ("source:create", Some(value)) => create_source(state, s.clone(), ctx, value).await,
            ("source:update", Some(value)) => update_source(state, s.clone(), ctx, value).await,
            ("source:delete", Some(value)) => delete_source(state, s.clone(), ctx, value).await,
            _ => return,
        },
    };
    match result {
        Ok(value) => {
            let _ = ack.send(&value);
        }
        Err(err) => {
            err.log();
            let body = err.body();
            if has_ack {
                let _ = ack.send(&json!({ "ok": false, "error": body }));
            }
            if !has_ack || event == "vault:join" || SERVER_ONLY.contains(&event) {
                let _ = s.emit("error", &body);
            }
        }
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JoinPayload {
    vault_id: String,
    since: Option<i64>,
}

fn vault_id_of(value: Value) -> Result<(Uuid, Option<i64>)> {
    let payload = match value {
        Value::String(vault_id) => JoinPayload {
            vault_id,
            since: None,
        },
        object @ Value::Object(_) => from_json::<JoinPayload>(object)?,
        _ => {
            return Err(AppError::field(
                "vaultId",
                "must be a vault id or {vaultId, since}",
            ));
        }
    };
    if payload.since.is_some_and(|s| s < 0) {
        return Err(AppError::field("since", "must be a whole number"));
    }
    let id = input::id("vaultId", &payload.vault_id).map_err(|e| AppError::validation(vec![e]))?;
    Ok((id, payload.since))
}

async fn join(state: AppState, s: SocketRef, ctx: SocketCtx, value: Value) -> Result<Value> {
    let (vault_id, since) = vault_id_of(value)?;
    let denied = || AppError::Forbidden("Access denied to vault");
    let role = access::role_of(&state.db, vault_id, ctx.user.user_id)
        .await?
        .ok_or_else(denied)?;

    // Join first, then replay under the vault's emit lock: no live event can fall between
    // the replay and the live stream, and none can overtake the replay.
    let lock = state.vault_locks.get(vault_id);
    let guard = lock.lock().await;
    s.join(vault_room(vault_id));
    if ctx.remember_vault(vault_id, role) {
        state.metrics.joined_rooms.inc();
    }
    let latest = vaults::find(&state.db, vault_id)
        .await
        .map_err(|_| denied())?
        .last_seq;
    let max_replay = state.settings.realtime.max_replay as i64;
    let resync = since.is_some_and(|since| since > latest || latest - since > max_replay);
    if let (Some(since), false) = (since, resync) {
        for entry in events::replay(&state.db, vault_id, since, latest).await? {
            let _ = s.emit(entry.event_type, &entry.payload);
        }
    }
    drop(guard);

    let role = role_name(role);
    let _ = s.emit(
        "vault:joined",
        &json!({ "vaultId": vault_id, "role": role, "latestSeq": latest, "resync": resync }),
    );
    let me = PresenceUser {
        user_id: ctx.user.user_id,
        user_name: ctx.user.name.clone(),
        role,
    };
    let users = state.presence.join(vault_id, me, s.id);
    let _ = s.emit("presence", &json!({ "vaultId": vault_id, "users": users }));
    tracing::debug!(sid = %s.id, %vault_id, ?since, latest, resync, "joined vault");
    Ok(
        json!({ "ok": true, "vaultId": vault_id, "role": role, "latestSeq": latest, "resync": resync }),
    )
}

async fn leave(state: AppState, s: SocketRef, ctx: SocketCtx, value: Value) -> Result<Value> {
    let (vault_id, _) = vault_id_of(value)?;
    s.leave(vault_room(vault_id));
    if ctx.forget_vault(vault_id).is_some() {
        state.metrics.joined_rooms.dec();
        state.presence.leave(vault_id, ctx.user.user_id, s.id);
    }
    Ok(json!({ "ok": true }))
}
