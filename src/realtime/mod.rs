//! The real-time layer (CONTRACT §7): Socket.IO on the HTTP port, authenticated vault rooms,
//! events after commit, replay with `since`, live revocation and presence.
//!
//! Rooms: `vault:{id}` for a vault's members, `user:{id}` for every socket of a user and
//! `session:{id}` for every socket opened with one session, so revocation and logout reach
//! the right sockets by room (and, with a shared adapter, on any node).
pub mod context;
pub mod handlers;
pub mod killswitch;
mod mutations;
pub mod presence;
pub mod publisher;
pub mod transport;

use socketioxide::{SocketIo, service::SocketIoService};
use uuid::Uuid;

use crate::{settings::RealtimeSettings, state::AppState};

pub type Service = SocketIoService<engineioxide::service::NotFoundService>;

pub fn vault_room(id: Uuid) -> String {
    format!("vault:{id}")
}
pub fn user_room(id: Uuid) -> String {
    format!("user:{id}")
}
pub fn session_room(id: Uuid) -> String {
    format!("session:{id}")
}

/// Builds the Socket.IO engine with our limits; handlers are attached later by [`attach`].
pub fn build(cfg: &RealtimeSettings) -> (Service, SocketIo) {
    SocketIo::builder()
        .max_payload(cfg.max_payload)
        .ws_max_message_size(cfg.ws_max_message_size)
        .ws_max_frame_size(cfg.ws_max_frame_size)
        .ws_read_buffer_size(cfg.ws_read_buffer_size)
        .max_buffer_size(cfg.max_buffer_size)
        .ping_interval(cfg.ping_interval)
        .ping_timeout(cfg.ping_timeout)
        .build_svc()
}

/// Registers the namespace and starts the session-expiry sweep.
pub fn attach(state: &AppState) {
    handlers::register(state);
    let state = state.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.settings.realtime.session_check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            disconnect_dead_sessions(&state).await;
        }
    });
}

/// Disconnects every socket opened with a session (logout).
pub async fn disconnect_session(state: &AppState, session_id: Uuid) {
    if let Err(e) = state.io.to(session_room(session_id)).disconnect().await {
        tracing::warn!(%session_id, error = %e, "could not disconnect every socket of a session");
    }
}

/// Sessions that expired or were deleted while their sockets stayed connected.
async fn disconnect_dead_sessions(state: &AppState) {
    let mut ids: Vec<Uuid> = state
        .io
        .sockets()
        .iter()
        .filter_map(|s| {
            s.extensions
                .get::<context::SocketCtx>()
                .map(|ctx| ctx.user.session_id)
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    match crate::domain::sessions::dead_among(&state.db, &ids).await {
        Ok(dead) => {
            for session_id in dead {
                tracing::info!(%session_id, "session ended; disconnecting its sockets");
                disconnect_session(state, session_id).await;
            }
        }
        Err(e) => tracing::warn!(error = %e, "session sweep failed"),
    }
}
