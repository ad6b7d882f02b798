//! Putting packets into sockets' send buffers. Live fan-out never waits: a socket whose
//! buffer is full is a slow consumer, handed back to be dropped, and nobody else waits for
//! it. A socket's own replies (a replay, `vault:joined`, `presence`) wait for room, up to
//! `realtime.stall_timeout` without progress; a socket that reads nothing that long is a slow
//! consumer too.
use std::time::Duration;

use serde::Serialize;
use socketioxide::{SendError, SocketError, extract::SocketRef};

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

/// Sends to one socket, waiting for room in its buffer while its transport makes progress.
pub async fn send_waiting<T: Serialize + ?Sized>(
    socket: &SocketRef,
    link: &Link,
    event: &str,
    data: &T,
    patience: Duration,
) -> Result<(), Unsent> {
    loop {
        match socket.emit(event, data) {
            Ok(()) => return Ok(()),
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
