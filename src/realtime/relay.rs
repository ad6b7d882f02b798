//! Relaying what the bus hears to this node's sockets: one delivery path for both buses.
//!
//! [`dispatch`] routes each vault's events to its room, ends sessions, and asks every room to
//! catch up when the listener may have missed notices. Each room's task ([`run`]) relays in
//! `seq` order and remembers the last `seq` relayed: an event past the next expected one means
//! notices were missed, and the gap is read from the log (one read per node, never per
//! socket) before it goes on. The same task flushes the room's presence changes.
use std::{
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use serde_json::json;
use socketioxide::{SocketIo, extract::SocketRef};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use super::{
    context::SocketCtx,
    fanout, history,
    rooms::{Room, Rooms, Shared},
};
use crate::{
    bus::Heard,
    cluster::{Cluster, PresenceChange},
    domain::{
        events::{self, Event, EventKind, Notice},
        sessions, vaults,
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
                rooms.route(event.vault_id, Item::Event(event))
            }
            Some(Heard::Hint { vault_id, seq }) => rooms.route(vault_id, Item::Hint(seq)),
            Some(Heard::Presence(change)) => {
                if change.node != rooms.shared().cluster.node() {
                    rooms.route(change.vault, Item::Presence(change));
                }
            }
            Some(Heard::Notice(Notice::SessionEnded(session_id))) => {
                end_session(&rooms, &io, session_id)
            }
            Some(Heard::Lost) => {
                rooms.route_all(|| Item::Lost);
                // A logout announced meanwhile went unheard: look at every session here.
                sweep_sessions(&rooms, &io).await;
            }
        }
    }
}

/// Disconnects every socket of a session on this node.
pub fn end_session(rooms: &Rooms, io: &SocketIo, session_id: Uuid) {
    for socket in io.sockets() {
        let ours = socket
            .extensions
            .get::<SocketCtx>()
            .is_some_and(|ctx| ctx.user().session_id == session_id);
        if ours {
            tracing::info!(sid = %socket.id, %session_id, "session ended; disconnecting its socket");
            disconnect(rooms, socket);
        }
    }
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
            for session_id in dead {
                end_session(rooms, io, session_id);
            }
        }
        Err(e) => tracing::warn!(error = %e, "session sweep failed"),
    }
}

/// A room's task: it ends when the room is dropped (its queue closes).
pub(super) async fn run(
    shared: Weak<Shared>,
    room: Arc<Room>,
    mut queue: mpsc::UnboundedReceiver<Item>,
) {
    let Some(mut relay) = Relay::start(&shared, room).await else {
        return;
    };
    let mut flush_at: Option<Instant> = None;
    loop {
        let due = flush_at.map(tokio::time::Instant::from_std);
        tokio::select! {
            item = queue.recv() => match item {
                Some(item) => relay.handle(item).await,
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
                presence_interval: s.presence_interval,
            }
        };
        let latest = relay.retry(|| relay.latest_seq()).await?;
        let recent = match latest {
            Some(latest) => relay.recent_log(latest).await?,
            None => Vec::new(),
        };
        relay.reload_presence().await?;
        relay.room.set_ready(latest, recent);
        Some(relay)
    }

    /// The last events of the log, up to `latest`, for the room's history.
    async fn recent_log(&self, latest: i64) -> Option<Vec<Event>> {
        let kept = history::KEPT as i64;
        let vault = self.room.vault_id;
        let page = self
            .retry(|| events::page(&self.db, vault, latest - kept, latest, kept as u64))
            .await?;
        Some(page.into_iter().filter_map(Event::from_log).collect())
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

    async fn handle(&mut self, item: Item) {
        match item {
            Item::Event(event) => {
                if event.seq > self.relayed() + 1 {
                    self.catch_up(event.seq - 1).await;
                }
                self.deliver(event);
            }
            Item::Hint(seq) => self.catch_up(seq).await,
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

    /// Sends one event to the room and applies what it means for membership.
    fn deliver(&self, event: Event) {
        let started = Instant::now();
        let (targets, revoked) = {
            let mut st = self.room.lock();
            if st.relayed.is_some_and(|r| event.seq <= r) {
                return;
            }
            st.relayed = Some(event.seq);
            st.history.push(event.clone());
            let targets: Vec<SocketRef> = st.members.values().map(|m| m.socket.clone()).collect();
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
            (targets, revoked)
        };
        let slow = fanout::send_all(&targets, event.kind.name(), &*event.payload);
        let reason = match event.kind {
            EventKind::VaultDeleted => "deleted",
            _ => "removed",
        };
        self.revoke(&revoked, reason);
        self.drop_consumers(&slow);
        if let Some(rooms) = self.rooms() {
            let metrics = &rooms.shared().metrics;
            metrics.events_published.inc();
            metrics
                .fanout_seconds
                .observe(started.elapsed().as_secs_f64());
        }
    }

    /// The vault was deleted while notices went unheard.
    fn vault_gone(&self) {
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
        let slow = fanout::send_all(sockets, "vault:revoked", &notice);
        self.drop_consumers(&slow);
    }

    /// Sends a page of the room's presence changes (more wait for the next flush), and shares
    /// this node's own changes with the other nodes.
    fn flush_presence(&self) {
        let (targets, packet, (joins, leaves)) = {
            let mut st = self.room.lock();
            let packet = st.presence.take_diff(self.room.vault_id);
            if st.presence.has_diff() {
                self.room.presence_changed.notify_one();
            }
            let targets: Vec<SocketRef> = st.members.values().map(|m| m.socket.clone()).collect();
            (targets, packet, st.presence.take_local())
        };
        self.cluster.publish(self.room.vault_id, &joins, leaves);
        if let Some(packet) = packet {
            let slow = fanout::send_all(&targets, "presence:diff", &*packet);
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
