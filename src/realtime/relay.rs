//! A room's task ([`run`]): it relays the vault's events to the room in `seq` order and
//! remembers the last `seq` relayed: an event past the next expected one means notices were
//! missed, and the gap is read from the log (one read per node, never per socket) before it
//! goes on. The same task flushes the room's presence changes. What reaches it comes from
//! [`super::dispatch`], for both buses alike.
use std::{
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use serde_json::json;

use super::{
    SocketRef, adapter, fanout,
    rooms::{Room, Rooms, Shared},
};
use crate::{
    cluster::{Cluster, PresenceChange},
    domain::{
        events::{self, Event, EventKind},
        vaults,
    },
    error::AppError,
};

/// What a room's task is handed.
#[derive(Debug)]
pub enum Item {
    Event(Event),
    /// An event up to this `seq` was committed; read it from the log.
    Hint(i64),
    /// Users came online or left through another node.
    Presence(PresenceChange),
    /// Notices may have been missed: read the log up to its end, and presence again.
    Lost,
}

/// Events read from the log per query while catching up.
const PAGE: u64 = 500;

/// A room's task: it ends when the room is dropped (its inbox closes). It lives as long as
/// the room, so its future is kept small: what runs once or rarely is boxed while it runs.
pub(super) async fn run(shared: Weak<Shared>, room: Arc<Room>) {
    let Some(mut relay) = Box::pin(Relay::start(&shared, room)).await else {
        return;
    };
    let mut flush_at: Option<Instant> = None;
    loop {
        let due = flush_at.map(tokio::time::Instant::from_std);
        tokio::select! {
            items = relay.room.inbox.recv() => match items {
                Some(items) => {
                    for item in items {
                        relay.handle(item).await;
                    }
                }
                None => {
                    // The room is closing: its last leaves still go to the other nodes.
                    relay.flush_presence();
                    return;
                }
            },
            _ = relay.room.presence_changed.notified(), if flush_at.is_none() => {
                flush_at = Some(Instant::now() + relay.presence_interval);
            }
            _ = tokio::time::sleep_until(due.unwrap_or_else(tokio::time::Instant::now)), if due.is_some() => {
                flush_at = None;
                relay.flush_presence();
            }
        }
    }
}

struct Relay {
    shared: Weak<Shared>,
    room: Arc<Room>,
    db: sea_orm::DatabaseConnection,
    cluster: Cluster,
    adapter: adapter::Handle,
    presence_interval: Duration,
}

impl Relay {
    /// Reads where the vault's log stands and who is online through other nodes (the room
    /// is already registered, so nothing from here on goes unheard), then opens the room.
    async fn start(shared: &Weak<Shared>, room: Arc<Room>) -> Option<Self> {
        let relay = {
            let s = shared.upgrade()?;
            Self {
                shared: shared.clone(),
                room,
                db: s.db.clone(),
                cluster: s.cluster.clone(),
                adapter: s.adapter.clone(),
                presence_interval: s.presence_interval,
            }
        };
        let latest = relay.retry(|| relay.latest_seq()).await?;
        relay.reload_presence().await?;
        relay.room.set_ready(latest);
        Some(relay)
    }

    async fn reload_presence(&self) -> Option<()> {
        let vault = self.room.vault_id;
        let rows = self.retry(|| self.cluster.presence_of(vault)).await?;
        self.room.lock().presence.remote_reset(rows);
        self.room.presence_changed.notify_one();
        Some(())
    }

    fn rooms(&self) -> Option<Rooms> {
        Rooms::from_weak(&self.shared)
    }

    /// The vault's latest `seq`, `None` if it is gone.
    async fn latest_seq(&self) -> Result<Option<i64>, AppError> {
        match vaults::find(&self.db, self.room.vault_id).await {
            Ok(vault) => Ok(Some(vault.last_seq)),
            Err(AppError::NotFound(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Retries a read until it succeeds, or until the room is dropped.
    async fn retry<T, F, Fut>(&self, read: F) -> Option<T>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<T, AppError>>,
    {
        loop {
            match read().await {
                Ok(value) => return Some(value),
                Err(e) => {
                    tracing::warn!(vault_id = %self.room.vault_id, error = %e, "relay cannot read the log; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    self.shared.upgrade()?;
                }
            }
        }
    }

    fn relayed(&self) -> i64 {
        self.room.lock().relayed.unwrap_or(0)
    }

    /// The next event is relayed at once; a gap, a hint or lost notices read the log.
    async fn handle(&mut self, item: Item) {
        match item {
            Item::Event(event) if event.seq <= self.relayed() + 1 => self.deliver(event),
            Item::Presence(change) => {
                {
                    let mut st = self.room.lock();
                    for user in &change.joins {
                        st.presence.remote_join(change.node, user.user());
                    }
                    for user_id in change.leaves {
                        st.presence.remote_leave(change.node, user_id);
                    }
                }
                self.room.presence_changed.notify_one();
            }
            item => Box::pin(self.read_log_for(item)).await,
        }
    }

    async fn read_log_for(&mut self, item: Item) {
        match item {
            Item::Event(event) => {
                self.catch_up(event.seq - 1).await;
                self.deliver(event);
            }
            Item::Hint(seq) => self.catch_up(seq).await,
            Item::Presence(_) => {}
            Item::Lost => {
                match self.retry(|| self.latest_seq()).await {
                    Some(Some(latest)) => self.catch_up(latest).await,
                    Some(None) => self.vault_gone(),
                    None => {}
                }
                self.reload_presence().await;
            }
        }
    }

    /// Relays the logged events after the last relayed one, up to `upto`.
    async fn catch_up(&mut self, upto: i64) {
        loop {
            let after = self.relayed();
            if after >= upto {
                return;
            }
            let page = self
                .retry(|| events::page(&self.db, self.room.vault_id, after, upto, PAGE))
                .await;
            let Some(page) = page else { return };
            if let Some(rooms) = self.rooms() {
                rooms.shared().metrics.history.log_reads_by_rooms.inc();
            }
            if page.is_empty() {
                // Nothing logged there (the vault went with its log): skip ahead.
                tracing::debug!(vault_id = %self.room.vault_id, after, upto, "gap not in the log");
                self.room.lock().relayed = Some(upto);
                return;
            }
            for event in page.into_iter().filter_map(Event::from_log) {
                self.deliver(event);
            }
        }
    }

    /// Sends one event to the room and applies what it means for membership; the node's
    /// history holds it before the room's lock is released, so a join that finds itself
    /// behind reads it from memory.
    fn deliver(&self, event: Event) {
        let started = Instant::now();
        let Some(rooms) = self.rooms() else { return };
        let shared = rooms.shared();
        let (targets, revoked) = {
            let mut st = self.room.lock();
            if st.relayed.is_some_and(|r| event.seq <= r) {
                return;
            }
            st.relayed = Some(event.seq);
            let targets = st.sockets();
            let revoked = match (event.kind, event.member) {
                (EventKind::MemberRemoved, Some(user)) => {
                    st.evict(&self.room, |m| m.ctx.user().user_id == user)
                }
                (EventKind::VaultDeleted, _) => {
                    st.gone = true;
                    st.evict(&self.room, |_| true)
                }
                _ => Vec::new(),
            };
            match event.kind {
                EventKind::VaultDeleted => shared.history.forget(event.vault_id),
                _ => shared.history.keep(std::slice::from_ref(&event)),
            }
            (targets, revoked)
        };
        let slow = fanout::send_all(&self.adapter, &targets, event.kind.name(), &*event.payload);
        let reason = match event.kind {
            EventKind::VaultDeleted => "deleted",
            _ => "removed",
        };
        self.revoke(&revoked, reason);
        self.drop_consumers(&slow);
        shared.metrics.events_published.inc();
        (shared.metrics.fanout_seconds).observe(started.elapsed().as_secs_f64());
    }

    /// The vault was deleted while notices went unheard.
    fn vault_gone(&self) {
        if let Some(rooms) = self.rooms() {
            rooms.shared().history.forget(self.room.vault_id);
        }
        let revoked = {
            let mut st = self.room.lock();
            st.gone = true;
            st.evict(&self.room, |_| true)
        };
        self.revoke(&revoked, "deleted");
    }

    fn revoke(&self, sockets: &[SocketRef], reason: &str) {
        if sockets.is_empty() {
            return;
        }
        if let Some(rooms) = self.rooms() {
            for _ in sockets {
                rooms.shared().metrics.joined_rooms.dec();
            }
        }
        let notice = json!({ "vaultId": self.room.vault_id, "reason": reason });
        let slow = fanout::send_all(&self.adapter, sockets, "vault:revoked", &notice);
        self.drop_consumers(&slow);
    }

    /// Sends a page of the room's presence changes (more wait for the next flush), and shares
    /// this node's own changes with the other nodes.
    fn flush_presence(&self) {
        let (diff, (joins, leaves)) = {
            let mut st = self.room.lock();
            let packet = st.presence.take_diff(self.room.vault_id);
            if st.presence.has_diff() {
                self.room.presence_changed.notify_one();
            }
            // Only a diff has recipients; this node's own changes go to the other nodes.
            let diff = packet.map(|packet| (st.sockets(), packet));
            (diff, st.presence.take_local())
        };
        self.cluster.publish(self.room.vault_id, &joins, leaves);
        if let Some((targets, packet)) = diff {
            let slow = fanout::send_all(&self.adapter, &targets, "presence:diff", &*packet);
            self.drop_consumers(&slow);
        }
    }

    fn drop_consumers(&self, slow: &[SocketRef]) {
        if let (false, Some(rooms)) = (slow.is_empty(), self.rooms()) {
            for socket in slow {
                rooms.drop_consumer(socket);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A room costs its `Room` and its task, for as long as anyone is in it: with thousands of
    /// vaults of a few members each, this is paid per member or two.
    #[test]
    fn a_rooms_fixed_cost_stays_under_two_kilobytes() {
        let room = Arc::new(Room::new(uuid::Uuid::nil()));
        let task = run(Weak::new(), room);
        let (room, task) = (size_of::<Room>(), size_of_val(&task));
        eprintln!("Room: {room} bytes, its task's future: {task} bytes");
        assert!(room + task < 2048, "{room} + {task}");
    }
}
