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
use socketioxide::{SendError, SocketError, TransportType, extract::SocketRef};

use super::link::Link;

/// Sends to every socket; returns those whose buffer was full.
pub fn send_all<T: Serialize + ?Sized>(
    sockets: &[SocketRef],
    event: &str,
    data: &T,
) -> Vec<SocketRef> {
    sockets
        .iter()
        .filter(|s| is_full(s.emit(event, data)))
        .cloned()
        .collect()
}

fn is_full(sent: Result<(), SendError>) -> bool {
    matches!(
        sent,
        Err(SendError::Socket(SocketError::InternalChannelFull))
    )
}

/// Why a waiting send gave up.
#[derive(Debug, PartialEq, Eq)]
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
pub async fn send_waiting<T: Serialize + ?Sized>(
    socket: &SocketRef,
    link: &Link,
    (event, data, bytes): (&str, &T, usize),
    pace: Pace,
) -> Result<(), Unsent> {
    let patience = pace.patience;
    while !pace.is_open(socket, link) {
        tokio::time::timeout(patience, link.wait_drained())
            .await
            .map_err(|_| Unsent::Stalled)?;
    }
    loop {
        match socket.emit(event, data) {
            Ok(()) => {
                link.queued_one(bytes);
                return Ok(());
            }
            Err(SendError::Socket(SocketError::InternalChannelFull)) => {}
            Err(_) => return Err(Unsent::Closed),
        }
        if link.is_killed() {
            return Err(Unsent::Closed);
        }
        // A write since the try left a permit behind, so no wake-up is missed.
        tokio::time::timeout(patience, link.wait_drained())
            .await
            .map_err(|_| Unsent::Stalled)?;
    }
}
