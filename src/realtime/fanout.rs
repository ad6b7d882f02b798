//! Putting packets into sockets' send buffers. Live fan-out never waits: a socket whose
//! buffer is full is a slow consumer, handed back to be dropped, and nobody else waits for
//! it. A socket's own replies (a replay, `vault:joined`, `presence`) wait for room, up to
//! `realtime.stall_timeout` without progress; a socket that reads nothing that long is a slow
//! consumer too.
//!
//! A socket's own replies also go out in a window: no more than [`Pace::window_bytes`] wait
//! unwritten, because a WebSocket's write buffer keeps the size of the largest burst it ever
//! held (tungstenite never shrinks it), for as long as the socket lives. On long-polling the
//! window is also counted in packets, to keep room in the buffer: engineioxide starts an
//! upgrade to WebSocket by queueing one packet, and stops draining the buffer for polls
//! meanwhile, so an upgrade that finds the buffer full waits until it times out
//! (engineioxide 0.17.9, `upgrade_handshake`).
use std::time::Duration;

use serde::Serialize;
use socketioxide::{SendError, SocketError, TransportType};

use super::{
    SocketRef,
    adapter::{self, Sent},
    link::Link,
};

/// Sends to every socket, the event encoded once; returns those whose buffer was full.
pub fn send_all<T: Serialize + ?Sized>(
    adapter: &adapter::Handle,
    sockets: &[SocketRef],
    event: &str,
    data: &T,
) -> Vec<SocketRef> {
    if sockets.is_empty() {
        return Vec::new();
    }
    // No adapter: the server is going away with its sockets.
    let Some(adapter) = adapter.get() else {
        return Vec::new();
    };
    let packet = match adapter.encode(event, data) {
        Ok(packet) => packet,
        Err(e) => {
            tracing::error!(event, error = %e, "cannot encode an event");
            return Vec::new();
        }
    };
    sockets
        .iter()
        .filter(|s| adapter.send(s.id, &packet) == Sent::Full)
        .cloned()
        .collect()
}

/// Why a waiting send gave up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unsent {
    /// No room for the whole stall timeout: a slow consumer.
    Stalled,
    /// The socket is gone.
    Closed,
}

/// How a socket's own replies are paced.
#[derive(Clone, Copy)]
pub struct Pace {
    /// How long to wait for room while nothing leaves the buffer.
    pub patience: Duration,
    /// The most packets queued unwritten on long-polling.
    pub polling_window: usize,
    /// The most bytes queued unwritten.
    pub window_bytes: usize,
}

impl Pace {
    fn is_open(&self, socket: &SocketRef, link: &Link) -> bool {
        let (packets, bytes) = link.queued();
        let polling = socket.transport_type() == TransportType::Polling;
        bytes < self.window_bytes && !(polling && packets >= self.polling_window)
    }
}

/// Sends one packet of about `bytes` to one socket, waiting for room in its window and its
/// buffer while its transport makes progress.
pub async fn send_waiting<T: Serialize + Sync + ?Sized>(
    socket: &SocketRef,
    link: &Link,
    (event, data, bytes): (&str, &T, usize),
    pace: Pace,
) -> Result<(), Unsent> {
    while !pace.is_open(socket, link) {
        drain(link, pace, &|| pace.is_open(socket, link)).await?;
    }
    // Each try happens once the wait is registered, so a drain right after it is not missed.
    // A try that finds room (or a closed socket) settles the outcome; a full buffer waits.
    let outcome = std::sync::OnceLock::new();
    let attempt = || match socket.emit(event, data) {
        Err(SendError::Socket(SocketError::InternalChannelFull)) => false,
        sent => {
            let _ = outcome.set(sent.map_err(|_| Unsent::Closed));
            true
        }
    };
    while !attempt() {
        if link.is_killed() {
            return Err(Unsent::Closed);
        }
        drain(link, pace, &attempt).await?;
        if outcome.get().is_some() {
            break;
        }
    }
    let sent = outcome
        .into_inner()
        .expect("an attempt succeeded or failed for good");
    if sent.is_ok() {
        link.queued_one(bytes);
    }
    sent
}

/// Waits for the transport to take something, unless `ready`; a slow consumer if it takes
/// nothing for the whole patience.
async fn drain(link: &Link, pace: Pace, ready: &(dyn Fn() -> bool + Sync)) -> Result<(), Unsent> {
    tokio::time::timeout(pace.patience, link.wait_drained_unless(ready))
        .await
        .map_err(|_| Unsent::Stalled)
}
