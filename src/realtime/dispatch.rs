//! Relaying what the bus hears to this node's sockets: one delivery path for both buses.
//! Each vault's events go to its room ([`super::relay`]), ended sessions send their sockets
//! `session:ended` and disconnect them, and when the listener may have missed notices every room catches up and every
//! session here is looked at again.
use serde_json::json;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{SocketIo, SocketRef, context::SocketCtx, relay::Item, rooms::Rooms};
use crate::{
    bus::Heard,
    domain::{
        events::{Event, Notice},
        sessions::{self, EndReason},
    },
};

/// Routes what this node hears until `stop`.
pub async fn dispatch(
    rooms: Rooms,
    io: SocketIo,
    mut heard: mpsc::UnboundedReceiver<Heard>,
    stop: CancellationToken,
) {
    loop {
        let next = tokio::select! {
            next = heard.recv() => next,
            _ = stop.cancelled() => None,
        };
        match next {
            None => return,
            Some(Heard::Notice(Notice::Event(event))) => {
                if let Some(lag) = lag_of(&event) {
                    rooms.shared().metrics.bus_lag_seconds.observe(lag);
                }
                rooms.route(event.vault_id, Item::Event(event))
            }
            Some(Heard::Hint { vault_id, seq }) => rooms.route(vault_id, Item::Hint(seq)),
            Some(Heard::Presence(change)) => {
                if change.node != rooms.shared().cluster.node() {
                    rooms.route(change.vault, Item::Presence(change));
                }
            }
            Some(Heard::Notice(Notice::SessionEnded(session_id, reason))) => {
                end_session(&rooms, &io, session_id, reason)
            }
            Some(Heard::Lost) => {
                rooms.shared().metrics.bus_listener_reconnects.inc();
                rooms.route_all(|| Item::Lost);
                // A logout announced meanwhile went unheard: look at every session here.
                sweep_sessions(&rooms, &io).await;
            }
        }
    }
}

/// Seconds since the event's timestamp, taken in its transaction just before the commit.
///
/// Read straight from the payload's text, for a metric of every relayed event: parsing the
/// whole payload for it was about 1% of a commit's CPU. The top-level `timestamp` is the only
/// key of that name an event payload has, and no string value can hold `"timestamp":"`
/// (its quotes would be escaped).
fn lag_of(event: &Event) -> Option<f64> {
    const KEY: &str = "\"timestamp\":\"";
    let text = event.payload.get();
    let start = text.find(KEY)? + KEY.len();
    let end = start + text[start..].find('"')?;
    let stamped = chrono::DateTime::parse_from_rfc3339(&text[start..end]).ok()?;
    let lag = chrono::Utc::now() - stamped.to_utc();
    Some(lag.num_microseconds()?.max(0) as f64 / 1e6)
}

/// Tells every socket of a session on this node that it ended, and why, then disconnects it
/// at the Socket.IO level: its client must not come back by itself (CONTRACT §7).
pub fn end_session(rooms: &Rooms, io: &SocketIo, session_id: Uuid, reason: EndReason) {
    for socket in io.sockets() {
        let ours = socket
            .extensions
            .get::<SocketCtx>()
            .is_some_and(|ctx| ctx.user().session_id == session_id);
        if ours {
            tracing::info!(sid = %socket.id, %session_id, reason = reason.name(), "session ended; disconnecting its socket");
            end_socket(rooms, socket, reason);
        }
    }
}

/// `session:ended`, then the disconnect; a socket too full for them is closed at its
/// transport instead.
pub fn end_socket(rooms: &Rooms, socket: SocketRef, reason: EndReason) {
    let told = socket.emit("session:ended", &json!({ "reason": reason.name() }));
    if told.is_err() {
        close_at_transport(rooms, &socket);
        return;
    }
    disconnect(rooms, socket);
}

/// Disconnects a socket; one whose buffer is too full for the disconnect packet is closed
/// at its transport instead.
pub fn disconnect(rooms: &Rooms, socket: SocketRef) {
    let Some(ctx) = socket.extensions.get::<SocketCtx>() else {
        return;
    };
    rooms.release(&socket, &ctx);
    if socket.clone().disconnect().is_err() {
        ctx.link().kill();
    }
}

/// Closes a socket at its transport, without a DISCONNECT or CLOSE packet, so that its client
/// reconnects by itself (CONTRACT §7 "Restarts"); it leaves its rooms here at once.
/// Whether it was open.
pub fn close_at_transport(rooms: &Rooms, socket: &SocketRef) -> bool {
    let Some(ctx) = socket
        .extensions
        .get::<SocketCtx>()
        .filter(|c| !c.is_closed())
    else {
        return false;
    };
    ctx.link().kill();
    rooms.release(socket, &ctx);
    true
}

/// Disconnects the sockets whose session expired or was deleted.
pub async fn sweep_sessions(rooms: &Rooms, io: &SocketIo) {
    let mut ids: Vec<Uuid> = io
        .sockets()
        .iter()
        .filter_map(|s| s.extensions.get::<SocketCtx>().map(|c| c.user().session_id))
        .collect();
    ids.sort_unstable();
    ids.dedup();
    match sessions::dead_among(&rooms.shared().db, &ids).await {
        Ok(dead) => {
            for (session_id, reason) in dead {
                end_session(rooms, io, session_id, reason);
            }
        }
        Err(e) => tracing::warn!(error = %e, "session sweep failed"),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::events::{EventKind, raw};

    fn event(payload: serde_json::Value) -> Event {
        Event {
            vault_id: Uuid::nil(),
            seq: 1,
            kind: EventKind::SourceCreated,
            member: None,
            payload: raw(&payload),
        }
    }

    #[test]
    fn the_lag_is_read_from_the_top_level_timestamp() {
        let two_seconds_ago = chrono::Utc::now() - chrono::Duration::seconds(2);
        let stamp = two_seconds_ago.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let decoy = r#"{"timestamp":"2000-01-01T00:00:00Z"}"#;
        let lag = lag_of(&event(json!({
            "actor": { "userName": decoy },
            "source": { "title": format!("\"timestamp\":\"{stamp}"), "createdAt": "2000-01-01T00:00:00Z" },
            "timestamp": stamp,
            "vaultId": Uuid::nil(),
        })))
        .expect("a lag");

        assert!((2.0..60.0).contains(&lag), "{lag}");
    }

    #[test]
    fn a_payload_without_a_timestamp_has_no_lag() {
        assert_eq!(lag_of(&event(json!({ "seq": 1 }))), None);
        assert_eq!(lag_of(&event(json!({ "timestamp": "yesterday" }))), None);
    }

    #[test]
    fn a_timestamp_ahead_of_this_clock_is_no_lag() {
        let ahead = (chrono::Utc::now() + chrono::Duration::seconds(30)).to_rfc3339();
        assert_eq!(lag_of(&event(json!({ "timestamp": ahead }))), Some(0.0));
    }
}
