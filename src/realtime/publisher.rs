//! The [`Publisher`] that broadcasts committed events to vault rooms, in `seq` order.
//!
//! Transactions queue their events before committing (while they hold the vault's row lock),
//! so the queue is in `seq` order per vault; one task sends each batch once its commit is
//! confirmed. Each broadcast is encoded once for the whole room. A per-vault lock keeps a
//! joining socket's replay and the live stream from interleaving.
use std::{sync::Arc, time::Instant};

use dashmap::DashMap;
use serde_json::json;
use socketioxide::SocketIo;
use tokio::sync::{Mutex, mpsc, oneshot};
use uuid::Uuid;

use super::{
    context::SocketCtx, killswitch::KillSwitch, presence::Presence, user_room, vault_room,
};
use crate::{
    domain::{Event, Publisher, events::Ticket},
    metrics::Metrics,
};

/// One async lock per vault, held while events are emitted to its room.
#[derive(Clone, Default)]
pub struct VaultLocks(Arc<DashMap<Uuid, Arc<Mutex<()>>>>);

impl VaultLocks {
    pub fn get(&self, vault: Uuid) -> Arc<Mutex<()>> {
        self.0.entry(vault).or_default().clone()
    }
    fn forget(&self, vault: Uuid) {
        self.0.remove(&vault);
    }
}

struct Pending {
    events: Vec<Event>,
    committed: oneshot::Receiver<()>,
}

pub struct SocketPublisher {
    queue: mpsc::UnboundedSender<Pending>,
}

impl Publisher for SocketPublisher {
    fn reserve(&self, events: Vec<Event>) -> Ticket {
        let (tx, rx) = oneshot::channel();
        let _ = self.queue.send(Pending {
            events,
            committed: rx,
        });
        Ticket::new(tx)
    }
}

#[derive(Clone)]
pub struct Fanout {
    pub io: SocketIo,
    pub presence: Presence,
    pub locks: VaultLocks,
    pub metrics: Arc<Metrics>,
}

impl SocketPublisher {
    pub fn spawn(fanout: Fanout) -> Self {
        let (queue, mut rx) = mpsc::unbounded_channel::<Pending>();
        tokio::spawn(async move {
            while let Some(pending) = rx.recv().await {
                // A dropped sender means the transaction rolled back: nothing to send.
                if pending.committed.await.is_err() {
                    continue;
                }
                let committed_at = Instant::now();
                for event in pending.events {
                    fanout.deliver(event).await;
                }
                fanout
                    .metrics
                    .fanout_seconds
                    .observe(committed_at.elapsed().as_secs_f64());
            }
        });
        Self { queue }
    }
}

impl Fanout {
    async fn deliver(&self, event: Event) {
        let lock = self.locks.get(event.vault_id);
        let _guard = lock.lock().await;
        if let Err(e) = self
            .io
            .to(vault_room(event.vault_id))
            .emit(event.kind, &event.payload)
            .await
        {
            tracing::warn!(vault = %event.vault_id, seq = event.seq, error = %e, "broadcast did not reach every socket");
            self.drop_slow_consumers(&event);
        }
        self.metrics.events_published.inc();
        match event.kind {
            "member:removed" => {
                let user = event.payload["member"]["userId"]
                    .as_str()
                    .and_then(|s| Uuid::parse_str(s).ok());
                if let Some(user) = user {
                    self.revoke(event.vault_id, &user_room(user), "removed");
                    self.presence.leave_user(event.vault_id, user);
                }
            }
            "vault:deleted" => {
                self.revoke(event.vault_id, &vault_room(event.vault_id), "deleted");
                self.presence.drop_vault(event.vault_id);
                drop(_guard);
                self.locks.forget(event.vault_id);
            }
            _ => {}
        }
    }

    /// Finds the sockets whose send buffer is full by sending them the event again (a
    /// duplicate `seq` is allowed and dropped by clients) and drops those that cannot take
    /// it: they reconnect and catch up with `since`, and nobody else waits for them.
    fn drop_slow_consumers(&self, event: &Event) {
        for socket in self.io.to(vault_room(event.vault_id)).sockets() {
            if socket.emit(event.kind, &event.payload).is_ok() {
                continue;
            }
            tracing::warn!(sid = %socket.id, vault = %event.vault_id, "slow consumer: send buffer full, dropping the socket");
            socket.leave_all();
            match socket.req_parts().extensions.get::<KillSwitch>() {
                Some(switch) => switch.kill(),
                // Long-polling: the heartbeat closes it, as it can no longer be reached.
                None => {
                    let _ = socket.disconnect();
                }
            }
        }
    }

    /// Takes the sockets in `room` out of the vault's room and tells them why.
    fn revoke(&self, vault: Uuid, room: &str, reason: &str) {
        let notice = json!({ "vaultId": vault, "reason": reason });
        for socket in self.io.to(room.to_string()).sockets() {
            let Some(ctx) = socket.extensions.get::<SocketCtx>() else {
                continue;
            };
            if ctx.forget_vault(vault).is_some() {
                socket.leave(vault_room(vault));
                self.metrics.joined_rooms.dec();
                let _ = socket.emit("vault:revoked", &notice);
            }
        }
    }
}
