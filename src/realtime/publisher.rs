//! The [`Publisher`] that broadcasts committed events to vault rooms, in `seq` order.
//!
//! Transactions queue their events before committing (while they hold the vault's row lock),
//! so each vault's queue is in `seq` order; one task per vault sends each batch once its
//! commit is confirmed, so a slow commit or a long replay in one vault never holds up
//! another. Each broadcast is encoded once for the whole room. A per-vault lock keeps a
//! joining socket's replay and the live stream from interleaving.
use std::{
    sync::{Arc, Weak},
    time::Instant,
};

use dashmap::DashMap;
use futures_util::future::{FutureExt, Shared};
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

/// One transaction's events for one vault, sent once `committed` resolves; a dropped ticket
/// (rollback) resolves it with an error and they are discarded.
struct Pending {
    events: Vec<Event>,
    committed: Shared<oneshot::Receiver<()>>,
}

type QueueMap = DashMap<Uuid, mpsc::UnboundedSender<Pending>>;
type Queues = Arc<QueueMap>;

pub struct SocketPublisher {
    fanout: Fanout,
    queues: Queues,
}

impl Publisher for SocketPublisher {
    fn reserve(&self, events: Vec<Event>) -> Ticket {
        let (tx, rx) = oneshot::channel();
        let committed = rx.shared();
        let mut by_vault: Vec<(Uuid, Vec<Event>)> = Vec::new();
        for event in events {
            match by_vault
                .iter_mut()
                .find(|(vault, _)| *vault == event.vault_id)
            {
                Some((_, batch)) => batch.push(event),
                None => by_vault.push((event.vault_id, vec![event])),
            }
        }
        for (vault, events) in by_vault {
            let pending = Pending {
                events,
                committed: committed.clone(),
            };
            let _ = self.queue_of(vault).send(pending);
        }
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
    pub fn new(fanout: Fanout) -> Self {
        Self {
            fanout,
            queues: Queues::default(),
        }
    }

    /// The vault's queue, with its task started on the vault's first event. The task ends
    /// once the vault is deleted and its queue drained.
    fn queue_of(&self, vault: Uuid) -> mpsc::UnboundedSender<Pending> {
        self.queues
            .entry(vault)
            .or_insert_with(|| {
                let (queue, rx) = mpsc::unbounded_channel();
                tokio::spawn(run(self.fanout.clone(), Arc::downgrade(&self.queues), rx));
                queue
            })
            .clone()
    }
}

/// A vault's task. It holds the queue map weakly: it ends when the publisher is dropped too.
async fn run(fanout: Fanout, queues: Weak<QueueMap>, mut rx: mpsc::UnboundedReceiver<Pending>) {
    while let Some(pending) = rx.recv().await {
        if pending.committed.await.is_err() {
            continue;
        }
        let committed_at = Instant::now();
        for event in pending.events {
            if let ("vault:deleted", Some(queues)) = (event.kind, queues.upgrade()) {
                queues.remove(&event.vault_id);
            }
            fanout.deliver(event).await;
        }
        fanout
            .metrics
            .fanout_seconds
            .observe(committed_at.elapsed().as_secs_f64());
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
