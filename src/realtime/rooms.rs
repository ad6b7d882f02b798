//! The vaults that have sockets on this node. Each has a room: its members here, the last
//! `seq` relayed to them and its presence, under one lock that joins, leaves, revocations and
//! the relay all take (never across an await, never two rooms' at once). A room exists only
//! while sockets are in it or joining it, so a notice for any other vault costs nothing.
//!
//! One task per room relays its vault's events in `seq` order ([`super::relay`]). A room is
//! registered before its task reads the vault's latest `seq`, so every event committed after
//! that read reaches the task as a notice.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard, Weak},
    time::Duration,
};

use sea_orm::DatabaseConnection;
use socketioxide::socket::Sid;
use tokio::sync::Notify;
use uuid::Uuid;

use super::{
    SocketRef, adapter,
    context::{JoinTicket, SocketCtx},
    history::History,
    inbox::Inbox,
    presence::{Presence, PresenceUser},
    relay::{self, Item},
};
use crate::{cluster::Cluster, domain::events::Event, error::Result, metrics::Metrics};

#[derive(Clone)]
pub struct Rooms(Arc<Shared>);

pub(super) struct Shared {
    map: Mutex<HashMap<Uuid, Entry>>,
    pub(super) db: DatabaseConnection,
    pub(super) cluster: Cluster,
    pub(super) presence_interval: Duration,
    pub(super) metrics: Arc<Metrics>,
    /// Every room's recent events, under one budget.
    pub(super) history: History,
    /// Where the fan-out encodes an event once for the whole room.
    pub(super) adapter: adapter::Handle,
}

/// A room in the map; its task ends once the room leaves the map (or the map goes).
struct Entry {
    room: Arc<Room>,
}

impl Drop for Entry {
    fn drop(&mut self) {
        self.room.inbox.close();
    }
}

pub(super) struct Room {
    pub(super) vault_id: Uuid,
    state: Mutex<RoomState>,
    ready: Notify,
    pub(super) presence_changed: Notify,
    /// What the room's task is handed ([`relay`]).
    pub(super) inbox: Inbox<Item>,
    /// Held by the join reading the log for this room, so that joins missing the same
    /// events read them once (see [`History::page`]).
    reading: tokio::sync::Mutex<()>,
}

#[derive(Default)]
pub(super) struct RoomState {
    /// The last `seq` relayed to the members; `None` until the task has read where the log is.
    pub(super) relayed: Option<i64>,
    /// The vault was deleted (or never existed): nobody may join.
    pub(super) gone: bool,
    pub(super) members: HashMap<Sid, Member>,
    entering: usize,
    pub(super) presence: Presence,
}

impl RoomState {
    /// The sockets in the room, to send to once the lock is released.
    pub(super) fn sockets(&self) -> Vec<SocketRef> {
        self.members.values().map(|m| m.socket.clone()).collect()
    }
}

pub(super) struct Member {
    pub(super) socket: SocketRef,
    pub(super) ctx: SocketCtx,
}

/// The outcome of trying to enter a room with a socket caught up to some `seq`.
pub enum Admission {
    /// In the room; the `presence` packets for the socket.
    Admitted {
        presence: Arc<[Arc<serde_json::value::RawValue>]>,
    },
    /// Events up to this `seq` were relayed since: the socket must read them first.
    Behind(i64),
    /// The vault is gone.
    Gone,
    /// The socket left the vault or disconnected meanwhile.
    Cancelled,
}

impl Rooms {
    pub fn new(
        db: DatabaseConnection,
        cluster: Cluster,
        presence_interval: Duration,
        history_budget: usize,
        metrics: Arc<Metrics>,
        adapter: adapter::Handle,
    ) -> Self {
        Self(Arc::new(Shared {
            map: Mutex::default(),
            db,
            cluster,
            presence_interval,
            history: History::new(history_budget, metrics.clone()),
            metrics,
            adapter,
        }))
    }

    pub(super) fn from_weak(weak: &Weak<Shared>) -> Option<Self> {
        weak.upgrade().map(Self)
    }

    pub(super) fn shared(&self) -> &Shared {
        &self.0
    }

    /// How many rooms this node keeps (idle vaults keep none).
    pub fn len(&self) -> usize {
        self.0.map.lock().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Hands an item to the vault's room task, if the vault has a room here.
    pub(super) fn route(&self, vault_id: Uuid, item: Item) {
        if let Some(entry) = self.0.map.lock().unwrap().get(&vault_id) {
            entry.room.inbox.send(item);
        }
    }

    pub(super) fn route_all(&self, item: impl Fn() -> Item) {
        for entry in self.0.map.lock().unwrap().values() {
            entry.room.inbox.send(item());
        }
    }

    /// Opens (or finds) the vault's room for a join; it stays while the join is in progress.
    pub fn enter(&self, vault_id: Uuid) -> Entering {
        let mut map = self.0.map.lock().unwrap();
        let entry = map.entry(vault_id).or_insert_with(|| {
            let room = Arc::new(Room::new(vault_id));
            tokio::spawn(relay::run(Arc::downgrade(&self.0), room.clone()));
            Entry { room }
        });
        entry.room.lock().entering += 1;
        Entering {
            rooms: self.clone(),
            room: entry.room.clone(),
        }
    }

    /// The socket leaves the vault (a `vault:leave`), cancelling a join in progress.
    pub fn leave(&self, vault_id: Uuid, socket: &SocketRef, ctx: &SocketCtx) {
        match self.room(vault_id) {
            Some(room) => {
                let left = {
                    let mut st = room.lock();
                    ctx.leave(vault_id) && st.remove(socket.id, &room)
                };
                self.left(vault_id, left);
            }
            // No room: the socket was at most about to join, and now is not.
            None => {
                ctx.leave(vault_id);
            }
        }
    }

    /// Takes a socket out of a vault's room, whatever it thinks (it is closing or rejoining).
    pub(super) fn remove(&self, vault_id: Uuid, sid: Sid) {
        if let Some(room) = self.room(vault_id) {
            let left = room.lock().remove(sid, &room);
            self.left(vault_id, left);
        }
    }

    fn left(&self, vault_id: Uuid, left: bool) {
        if left {
            self.0.metrics.joined_rooms.dec();
        }
        self.forget_if_idle(vault_id);
    }

    fn room(&self, vault_id: Uuid) -> Option<Arc<Room>> {
        let map = self.0.map.lock().unwrap();
        map.get(&vault_id).map(|e| e.room.clone())
    }

    /// Drops the room once nobody is in it or entering it; its task then ends.
    pub(super) fn forget_if_idle(&self, vault_id: Uuid) {
        let mut map = self.0.map.lock().unwrap();
        let idle = map.get(&vault_id).is_some_and(|e| {
            let st = e.room.lock();
            st.members.is_empty() && st.entering == 0
        });
        if idle {
            map.remove(&vault_id);
        }
    }

    /// Ends a socket's part in every room, once (its disconnect, or a drop): it leaves them,
    /// and its slot is freed.
    pub fn release(&self, socket: &SocketRef, ctx: &SocketCtx) {
        let Some((vaults, slot)) = ctx.close() else {
            return;
        };
        for vault_id in vaults {
            self.remove(vault_id, socket.id);
        }
        drop(slot);
    }

    /// Closes a slow consumer at its transport and releases it at once; it catches up with
    /// `since` when it reconnects.
    pub fn drop_consumer(&self, socket: &SocketRef) {
        let Some(ctx) = socket
            .extensions
            .get::<SocketCtx>()
            .filter(|c| !c.is_closed())
        else {
            return;
        };
        tracing::warn!(sid = %socket.id, user_id = %ctx.user().user_id, "slow consumer: send buffer full, dropping the connection");
        self.0.metrics.slow_consumers_closed.inc();
        ctx.link().kill();
        self.release(socket, &ctx);
    }
}

/// A join's hold on a room.
pub struct Entering {
    rooms: Rooms,
    room: Arc<Room>,
}

impl Entering {
    /// Waits until the room knows where the vault's log stands.
    pub async fn ready(&self) {
        loop {
            let notified = self.room.ready.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.room.lock().is_ready() {
                return;
            }
            notified.await;
        }
    }

    /// The vault's next events after `after`, up to `upto` (at most `limit`): from memory
    /// when held, else from the log, one read at a time for the room.
    pub async fn page(&self, after: i64, upto: i64, limit: usize) -> Result<Vec<Event>> {
        let shared = &self.rooms.0;
        let range = (after, upto, limit);
        (shared.history)
            .page(&shared.db, &self.room.reading, self.room.vault_id, range)
            .await
    }

    /// Puts the socket in the room if it has every event the room relayed (`caught_up`),
    /// and the join is still wanted; membership and presence change together, under the lock
    /// that revocations take.
    pub fn admit(
        &self,
        socket: &SocketRef,
        ctx: &SocketCtx,
        ticket: JoinTicket,
        caught_up: i64,
        me: PresenceUser,
    ) -> Admission {
        let mut st = self.room.lock();
        if st.gone {
            return Admission::Gone;
        }
        let relayed = st.relayed.unwrap_or(i64::MAX);
        if caught_up < relayed {
            return Admission::Behind(relayed);
        }
        if !ctx.admit(ticket) {
            return Admission::Cancelled;
        }
        let member = Member {
            socket: socket.clone(),
            ctx: ctx.clone(),
        };
        st.members.insert(socket.id, member);
        st.presence.join(me);
        self.room.presence_changed.notify_one();
        self.rooms.0.metrics.joined_rooms.inc();
        Admission::Admitted {
            presence: st.presence.snapshot(self.room.vault_id),
        }
    }
}

impl Drop for Entering {
    fn drop(&mut self) {
        self.room.lock().entering -= 1;
        self.rooms.forget_if_idle(self.room.vault_id);
    }
}

impl Room {
    pub(super) fn new(vault_id: Uuid) -> Self {
        Self {
            vault_id,
            state: Mutex::default(),
            ready: Notify::new(),
            presence_changed: Notify::new(),
            inbox: Inbox::new(),
            reading: tokio::sync::Mutex::default(),
        }
    }

    pub(super) fn lock(&self) -> MutexGuard<'_, RoomState> {
        self.state.lock().unwrap()
    }

    /// Opens the room at the vault's latest `seq` (`None`: the vault is gone).
    pub(super) fn set_ready(&self, latest: Option<i64>) {
        {
            let mut st = self.lock();
            match latest {
                Some(seq) => st.relayed = Some(st.relayed.unwrap_or(seq).max(seq)),
                None => st.gone = true,
            }
        }
        self.ready.notify_waiters();
    }
}

impl RoomState {
    fn is_ready(&self) -> bool {
        self.relayed.is_some() || self.gone
    }

    fn remove(&mut self, sid: Sid, room: &Room) -> bool {
        let Some(member) = self.members.remove(&sid) else {
            return false;
        };
        self.presence.leave(member.ctx.user().user_id);
        room.presence_changed.notify_one();
        true
    }

    /// Takes out the members for which `which` holds, telling their sockets they left.
    pub(super) fn evict(&mut self, room: &Room, which: impl Fn(&Member) -> bool) -> Vec<SocketRef> {
        let sids: Vec<Sid> = self
            .members
            .iter()
            .filter(|(_, m)| which(m))
            .map(|(sid, _)| *sid)
            .collect();
        let mut evicted = Vec::with_capacity(sids.len());
        for sid in sids {
            if let Some(member) = self.members.get(&sid) {
                member.ctx.leave(room.vault_id);
                evicted.push(member.socket.clone());
            }
            self.remove(sid, room);
        }
        evicted
    }
}
