//! Socket.IO handlers: the authenticated handshake, one dispatcher for every client event,
//! and the disconnect.
use serde_json::{Value, json};
use socketioxide::{
    SendError, SocketError,
    extract::{Event, TryData},
    handler::ConnectHandler,
};

use super::{
    AckSender, SocketRef,
    context::{HasAck, RateVerdict, SocketCtx, SocketUser},
    join::{join, leave},
    link::Link,
    mutations::{create_source, delete_source, update_source},
};
use crate::{
    domain::{
        EventKind,
        sessions::{self, EndReason},
    },
    error::AppError,
    security::{authenticate, origins_allowed},
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
/// context comes back. Its slot is held by the context, which lives in the socket: a
/// connection that dies before socketioxide calls any handler of ours frees it all the same.
async fn handshake(state: &AppState, s: &SocketRef) -> Result<SocketCtx, Refusal> {
    let headers = &s.req_parts().headers;
    if !origins_allowed(headers, &state.settings.server.allowed_origins) {
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
    let slot = state.limits.take(user.user.id).await.map_err(|e| {
        e.log();
        Refusal("UNAVAILABLE")
    })?;
    let Some(slot) = slot else {
        tracing::warn!(user_id = %user.user.id, "too many sockets for one user");
        return Err(Refusal("TOO_MANY_CONNECTIONS"));
    };
    let offered = s
        .req_parts()
        .extensions
        .get::<std::sync::Arc<Link>>()
        .cloned();
    let link = state.links.register(s.id, offered);
    let user = SocketUser {
        user_id: user.user.id,
        name: user.user.name,
        session_id: user.session_id,
    };
    Ok(SocketCtx::new(user, link, slot))
}

/// An accepted socket's context, event handlers and disconnect bookkeeping.
fn set_up(state: &AppState, s: SocketRef, ctx: SocketCtx) {
    s.extensions.insert(ctx.clone());
    tracing::debug!(sid = %s.id, user_id = %ctx.user().user_id, "socket connected");

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
        if let Some(state) = weak.upgrade() {
            state.rooms.release(&s, &ctx);
        }
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

/// Every client event, through one handler per socket: the rate limit, then the payload and
/// the event's handler, then the reply rules. The result goes to the ack; a failure goes to
/// the `error` event when there is no ack, and always for a denied join or a server-only
/// event (CONTRACT §7). Events nobody handles are dropped, as Socket.IO does, but still count
/// towards the rate limit. A socket whose session ended is told so and disconnected.
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
    let server_only = EventKind::is_source_event(event);
    let session_id = ctx.user().session_id;
    // A drain lets a mutation that began before it commit before closing its socket.
    let _mutating = match event {
        "source:create" | "source:update" | "source:delete" => Some(state.drain.mutation().await),
        _ => None,
    };
    let result = match ctx.rate(state.settings.realtime.events_per_second) {
        RateVerdict::Disconnect => {
            tracing::warn!(sid = %s.id, user_id = %ctx.user().user_id, "socket flooding; disconnecting");
            super::dispatch::disconnect(&state.rooms, s);
            return;
        }
        RateVerdict::Limited => Err(AppError::RateLimited {
            retry_after_secs: 1,
        }),
        RateVerdict::Ok => match (event, data) {
            _ if server_only => Err(AppError::Forbidden("Insufficient permissions")),
            (event, None) if CLIENT_EVENTS.contains(&event) => {
                Err(AppError::field("payload", "is missing or malformed"))
            }
            ("vault:join", Some(value)) => join(state.clone(), s.clone(), ctx, value).await,
            ("vault:leave", Some(value)) => leave(state.clone(), s.clone(), ctx, value).await,
            ("source:create", Some(value)) => create_source(&state, &ctx, value).await,
            ("source:update", Some(value)) => update_source(&state, &ctx, value).await,
            ("source:delete", Some(value)) => delete_source(&state, &ctx, value).await,
            _ => return,
        },
    };
    if matches!(&result, Ok(reply) if reply["resync"] == true) {
        state.metrics.resyncs.inc();
    }
    let sent = match &result {
        Ok(value) => ack.send(value),
        Err(err) => {
            err.log();
            let body = err.body();
            let acked = if has_ack {
                ack.send(&json!({ "ok": false, "error": body }))
            } else {
                Ok(())
            };
            if !has_ack || event == "vault:join" || server_only {
                acked.and(s.emit("error", &body))
            } else {
                acked
            }
        }
    };
    if let Err(SendError::Socket(SocketError::InternalChannelFull)) = sent {
        // A reply that cannot be queued is not dropped in silence: the client reconnects.
        state.rooms.drop_consumer(&s);
    } else if matches!(result, Err(AppError::Unauthorized(_))) {
        tracing::info!(sid = %s.id, "socket's session ended; disconnecting");
        let session = [session_id];
        let reason = sessions::dead_among(&state.db, &session)
            .await
            .ok()
            .and_then(|dead| dead.first().map(|(_, reason)| *reason))
            .unwrap_or(EndReason::Revoked);
        super::dispatch::end_socket(&state.rooms, s, reason);
    }
}
