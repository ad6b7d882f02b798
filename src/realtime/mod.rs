//! The real-time layer (CONTRACT §7): Socket.IO on the HTTP port, authenticated vault rooms,
//! events after commit, replay with `since`, live revocation and presence.
//!
//! Committed changes arrive from the bus ([`crate::bus`]) and are relayed to each vault's
//! room on this node in `seq` order ([`dispatch`], [`relay`]); joins replay from the log and enter the
//! room under the same lock the relay takes ([`join`], [`rooms`]).
pub mod adapter;
pub mod context;
pub mod dispatch;
mod fanout;
pub mod handlers;
mod history;
mod inbox;
mod join;
pub mod join_reads;
pub mod limits;
pub mod link;
mod mutations;
mod polling;
pub mod presence;
pub mod relay;
pub mod rooms;
pub mod transport;

use socketioxide::service::SocketIoService;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use self::adapter::Adapter;
use crate::{bus::Heard, settings::RealtimeSettings, state::AppState};

pub type Service = SocketIoService<engineioxide::service::NotFoundService, Adapter>;
/// The Socket.IO server and its sockets, over our adapter ([`adapter`]).
pub type SocketIo = socketioxide::SocketIo<Adapter>;
pub type SocketRef = socketioxide::extract::SocketRef<Adapter>;
pub type AckSender = socketioxide::extract::AckSender<Adapter>;

/// Builds the Socket.IO engine with our limits; handlers are attached later by [`attach`].
/// The handle finds its adapter for the rooms' fan-out.
pub fn build(cfg: &RealtimeSettings) -> (Service, SocketIo, adapter::Handle) {
    let handle = adapter::Handle::default();
    let (svc, io) = socketioxide::SocketIo::builder()
        // The contract's limit is enforced in front of the engine (see `polling`).
        .max_payload(polling::ENGINE_MAX_PAYLOAD)
        .ws_max_message_size(cfg.ws_max_message_size)
        .ws_max_frame_size(cfg.ws_max_frame_size)
        .ws_read_buffer_size(cfg.ws_read_buffer_size)
        .max_buffer_size(cfg.max_buffer_size)
        .ping_interval(cfg.ping_interval)
        .ping_timeout(cfg.ping_timeout)
        .with_adapter::<Adapter>(handle.clone())
        .build_svc();
    (svc, io, handle)
}

/// Registers the namespace, starts relaying what the bus hears and the session sweep; both
/// stop with `stop`.
pub fn attach(state: &AppState, heard: mpsc::UnboundedReceiver<Heard>, stop: CancellationToken) {
    handlers::register(state);
    let (rooms, io) = (state.rooms.clone(), state.io.clone());
    tokio::spawn(dispatch::dispatch(
        rooms.clone(),
        io.clone(),
        heard,
        stop.clone(),
    ));
    let every = state.settings.realtime.session_check_interval;
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => dispatch::sweep_sessions(&rooms, &io).await,
                _ = stop.cancelled() => return,
            }
        }
    });
}
