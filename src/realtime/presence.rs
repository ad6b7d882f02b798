//! Who is online in each vault (CONTRACT §7 "Presence"). A user counts once however many
//! sockets they have in the vault. Changes are batched into at most one `presence:diff` per
//! room per interval, so N arrivals cost O(N) messages, never a full list per join.
use std::{
    collections::{HashMap, HashSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::Serialize;
use serde_json::json;
use socketioxide::{SocketIo, socket::Sid};
use uuid::Uuid;

use super::vault_room;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PresenceUser {
    pub user_id: Uuid,
    pub user_name: String,
    pub role: &'static str,
}

#[derive(Default)]
struct Room {
    users: HashMap<Uuid, (PresenceUser, HashSet<Sid>)>,
    joins: Vec<PresenceUser>,
    leaves: Vec<Uuid>,
    flush_scheduled: bool,
}

#[derive(Clone)]
pub struct Presence {
    rooms: Arc<Mutex<HashMap<Uuid, Room>>>,
    io: SocketIo,
    interval: Duration,
}

impl Presence {
    pub fn new(io: SocketIo, interval: Duration) -> Self {
        Self {
            rooms: Arc::default(),
            io,
            interval,
        }
    }

    /// Adds a socket; returns the full list for the joining socket.
    pub fn join(&self, vault: Uuid, user: PresenceUser, sid: Sid) -> Vec<PresenceUser> {
        let mut rooms = self.rooms.lock().unwrap();
        let room = rooms.entry(vault).or_default();
        let entry = room
            .users
            .entry(user.user_id)
            .or_insert_with(|| (user.clone(), HashSet::new()));
        let first = entry.1.is_empty();
        entry.1.insert(sid);
        if first {
            if let Some(i) = room.leaves.iter().position(|id| *id == user.user_id) {
                room.leaves.swap_remove(i);
            } else {
                room.joins.push(user);
            }
            self.schedule(vault, room);
        }
        room.users.values().map(|(u, _)| u.clone()).collect()
    }

    /// Removes one socket; the user leaves when it was their last one in this vault.
    pub fn leave(&self, vault: Uuid, user_id: Uuid, sid: Sid) {
        let mut rooms = self.rooms.lock().unwrap();
        let Some(room) = rooms.get_mut(&vault) else {
            return;
        };
        let Some((_, sids)) = room.users.get_mut(&user_id) else {
            return;
        };
        sids.remove(&sid);
        if sids.is_empty() {
            Self::gone(room, user_id);
            self.schedule(vault, room);
        }
    }

    /// Removes a user with all their sockets (membership revoked).
    pub fn leave_user(&self, vault: Uuid, user_id: Uuid) {
        let mut rooms = self.rooms.lock().unwrap();
        if let Some(room) = rooms.get_mut(&vault)
            && room.users.contains_key(&user_id)
        {
            Self::gone(room, user_id);
            self.schedule(vault, room);
        }
    }

    /// Forgets a deleted vault.
    pub fn drop_vault(&self, vault: Uuid) {
        self.rooms.lock().unwrap().remove(&vault);
    }

    fn gone(room: &mut Room, user_id: Uuid) {
        room.users.remove(&user_id);
        if let Some(i) = room.joins.iter().position(|u| u.user_id == user_id) {
            room.joins.swap_remove(i);
        } else {
            room.leaves.push(user_id);
        }
    }

    fn schedule(&self, vault: Uuid, room: &mut Room) {
        if room.flush_scheduled {
            return;
        }
        room.flush_scheduled = true;
        let this = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(this.interval).await;
            this.flush(vault).await;
        });
    }

    async fn flush(&self, vault: Uuid) {
        let (joins, leaves) = {
            let mut rooms = self.rooms.lock().unwrap();
            let Some(room) = rooms.get_mut(&vault) else {
                return;
            };
            room.flush_scheduled = false;
            let diff = (
                std::mem::take(&mut room.joins),
                std::mem::take(&mut room.leaves),
            );
            if room.users.is_empty() {
                rooms.remove(&vault);
            }
            diff
        };
        if joins.is_empty() && leaves.is_empty() {
            return;
        }
        let diff = json!({ "vaultId": vault, "joins": joins, "leaves": leaves });
        if let Err(e) = self
            .io
            .to(vault_room(vault))
            .emit("presence:diff", &diff)
            .await
        {
            tracing::debug!(%vault, error = %e, "presence diff not delivered to every socket");
        }
    }
}
