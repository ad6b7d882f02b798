//! Who is online in one vault (CONTRACT §7 "Presence"): each user once, however many sockets
//! they have in it, on this node or any other. Changes wait for the room's next flush, at most
//! one per `realtime.presence_interval`, so N arrivals cost O(N) messages, never a full list
//! per join; a user who comes and goes within one interval is no news. Snapshots and diffs go
//! out in packets of at most [`PAGE`] users, so no packet grows with the room, and a flush
//! sends one page (more changes wait for the next), so no socket gets a burst of them.
//! Packets are serialized once, not once per socket; the snapshot is kept until it changes.
//!
//! This node's own comings and goings are also kept apart, to be shared with the other nodes
//! ([`crate::cluster`]); theirs arrive as the set of nodes each user is online through.
use std::{
    collections::{HashMap, HashSet},
    sync::Arc,
};

use serde_json::{json, value::RawValue};
use uuid::Uuid;

use crate::domain::events::raw;

pub use crate::cluster::PresenceUser;

/// The most users in one `presence` or `presence:diff` packet.
pub const PAGE: usize = 50;

#[derive(Default)]
pub struct Presence {
    online: HashMap<Uuid, Online>,
    /// Changes since the last flush, by user: true when they came online.
    changed: HashMap<Uuid, bool>,
    /// This node's changes since the last flush: true when a user's first socket here joined.
    local: HashMap<Uuid, bool>,
    /// The snapshot's packets, until someone comes or goes.
    snapshot: Option<Arc<[Arc<RawValue>]>>,
}

struct Online {
    user: PresenceUser,
    /// Sockets in the vault on this node.
    sockets: usize,
    /// Other nodes the user is online through.
    nodes: HashSet<Uuid>,
}

impl Online {
    fn is_online(&self) -> bool {
        self.sockets > 0 || !self.nodes.is_empty()
    }
}

/// Records a change that undoes the last unflushed one as no change at all.
fn note(changes: &mut HashMap<Uuid, bool>, user_id: Uuid, online: bool) {
    match changes.get(&user_id) {
        Some(before) if *before != online => {
            changes.remove(&user_id);
        }
        _ => {
            changes.insert(user_id, online);
        }
    }
}

impl Presence {
    /// One more socket of this user, here.
    pub fn join(&mut self, user: PresenceUser) {
        let id = user.user_id;
        self.update(id, Some(user), |o| o.sockets += 1);
        if self.online.get(&id).is_some_and(|o| o.sockets == 1) {
            note(&mut self.local, id, true);
        }
    }

    /// One socket less, here; the user leaves with their last one anywhere.
    pub fn leave(&mut self, user_id: Uuid) {
        let before = self.online.get(&user_id).map_or(0, |o| o.sockets);
        self.update(user_id, None, |o| o.sockets = o.sockets.saturating_sub(1));
        if before == 1 {
            note(&mut self.local, user_id, false);
        }
    }

    /// The user came online through another node.
    pub fn remote_join(&mut self, node: Uuid, user: PresenceUser) {
        let id = user.user_id;
        self.update(id, Some(user), |o| {
            o.nodes.insert(node);
        });
    }

    /// The user's last socket on another node left.
    pub fn remote_leave(&mut self, node: Uuid, user_id: Uuid) {
        self.update(user_id, None, |o| {
            o.nodes.remove(&node);
        });
    }

    /// Sets what the other nodes say, as read from the presence table.
    pub fn remote_reset(&mut self, rows: Vec<(Uuid, PresenceUser)>) {
        let mut by_user: HashMap<Uuid, (PresenceUser, HashSet<Uuid>)> = HashMap::new();
        for (node, user) in rows {
            by_user
                .entry(user.user_id)
                .or_insert_with(|| (user, HashSet::new()))
                .1
                .insert(node);
        }
        let known: Vec<Uuid> = self.online.keys().copied().collect();
        for id in known {
            let nodes = by_user.get(&id).map(|(_, n)| n.clone()).unwrap_or_default();
            self.update(id, None, |o| o.nodes = nodes);
        }
        for (id, (user, nodes)) in by_user {
            self.update(id, Some(user), |o| o.nodes = nodes);
        }
    }

    /// Applies `change` to a user's entry (made from `user` if missing) and notes whether
    /// they came online or went offline.
    fn update(&mut self, id: Uuid, user: Option<PresenceUser>, change: impl FnOnce(&mut Online)) {
        let was = self.online.get(&id).is_some_and(Online::is_online);
        let entry = match (self.online.get_mut(&id), user) {
            (Some(entry), _) => entry,
            (None, Some(user)) => self.online.entry(id).or_insert(Online {
                user,
                sockets: 0,
                nodes: HashSet::new(),
            }),
            (None, None) => return,
        };
        change(entry);
        let now = entry.is_online();
        if !now {
            self.online.remove(&id);
        }
        if was != now {
            note(&mut self.changed, id, now);
            self.snapshot = None;
        }
    }

    pub fn has_changes(&self) -> bool {
        !self.changed.is_empty() || !self.local.is_empty()
    }

    /// The `presence` packets for a socket that joined: the whole list, in pages.
    pub fn snapshot(&mut self, vault_id: Uuid) -> Arc<[Arc<RawValue>]> {
        if let Some(packets) = &self.snapshot {
            return packets.clone();
        }
        let users: Vec<&PresenceUser> = self.online.values().map(|o| &o.user).collect();
        let pages: Vec<&[&PresenceUser]> = if users.is_empty() {
            vec![&[]]
        } else {
            users.chunks(PAGE).collect()
        };
        let last = pages.len() - 1;
        let packets: Arc<[Arc<RawValue>]> = pages
            .into_iter()
            .enumerate()
            .map(|(i, page)| {
                let mut packet = json!({ "vaultId": vault_id, "users": page });
                if i < last {
                    packet["more"] = json!(true);
                }
                raw(&packet)
            })
            .collect();
        self.snapshot = Some(packets.clone());
        packets
    }

    /// The next `presence:diff` packet: up to a page of joins and a page of leaves since the
    /// last flush. What does not fit waits for the next flush.
    pub fn take_diff(&mut self, vault_id: Uuid) -> Option<Arc<RawValue>> {
        let mut page: HashMap<Uuid, bool> = HashMap::new();
        let (mut joins, mut leaves) = (0, 0);
        self.changed.retain(|id, online| {
            let count = if *online { &mut joins } else { &mut leaves };
            if *count == PAGE {
                return true;
            }
            *count += 1;
            page.insert(*id, *online);
            false
        });
        let (joins, leaves) = self.split(page);
        (!(joins.is_empty() && leaves.is_empty()))
            .then(|| raw(&json!({ "vaultId": vault_id, "joins": joins, "leaves": leaves })))
    }

    /// Whether changes wait for another flush.
    pub fn has_diff(&self) -> bool {
        !self.changed.is_empty()
    }

    /// This node's own changes since the last flush, for the other nodes.
    pub fn take_local(&mut self) -> (Vec<PresenceUser>, Vec<Uuid>) {
        let local = std::mem::take(&mut self.local);
        let (joins, leaves) = self.split(local);
        (joins.into_iter().cloned().collect(), leaves)
    }

    fn split(&self, changes: HashMap<Uuid, bool>) -> (Vec<&PresenceUser>, Vec<Uuid>) {
        let mut joins = Vec::new();
        let mut leaves = Vec::new();
        for (id, online) in changes {
            match (online, self.online.get(&id)) {
                (true, Some(o)) => joins.push(&o.user),
                (false, _) => leaves.push(id),
                (true, None) => {}
            }
        }
        (joins, leaves)
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    fn user(n: u128) -> PresenceUser {
        PresenceUser {
            user_id: Uuid::from_u128(n),
            user_name: format!("user {n}"),
            role: "viewer",
        }
    }

    fn json(packet: &RawValue) -> Value {
        serde_json::from_str(packet.get()).unwrap()
    }

    fn diff(p: &mut Presence) -> Option<Value> {
        p.take_diff(Uuid::nil()).map(|d| json(&d))
    }

    #[test]
    fn a_user_counts_once_and_leaves_with_the_last_socket() {
        let mut p = Presence::default();
        p.join(user(1));
        p.join(user(1));
        assert!(diff(&mut p).is_some());
        assert_eq!(p.take_local().0.len(), 1);
        p.leave(user(1).user_id);
        assert!(!p.has_changes(), "one tab left, still online");
        p.leave(user(1).user_id);
        assert_eq!(diff(&mut p).unwrap()["leaves"], json!([user(1).user_id]));
    }

    #[test]
    fn coming_and_going_within_one_interval_is_no_news() {
        let mut p = Presence::default();
        p.join(user(1));
        p.leave(user(1).user_id);
        assert!(!p.has_changes());
    }

    #[test]
    fn a_user_online_through_another_node_stays_online_when_they_leave_here() {
        let (mut p, node) = (Presence::default(), Uuid::from_u128(9));
        p.remote_join(node, user(1));
        p.join(user(1));
        let _ = diff(&mut p);
        assert_eq!(p.take_local().0, [user(1)], "this node tells the others");
        p.leave(user(1).user_id);
        assert!(
            diff(&mut p).is_none(),
            "still online through the other node"
        );
        assert_eq!(p.take_local().1, [user(1).user_id]);
        p.remote_reset(Vec::new());
        assert_eq!(diff(&mut p).unwrap()["leaves"], json!([user(1).user_id]));
    }

    #[test]
    fn snapshots_and_diffs_come_in_pages_of_fifty_a_diff_per_flush() {
        let mut p = Presence::default();
        for n in 0..120 {
            p.join(user(n));
        }
        let mut sizes = Vec::new();
        while let Some(d) = diff(&mut p) {
            sizes.push(d["joins"].as_array().unwrap().len());
        }
        assert_eq!(sizes, [50, 50, 20]);
        assert!(!p.has_diff());
        let snapshot: Vec<Value> = p.snapshot(Uuid::nil()).iter().map(|r| json(r)).collect();
        assert_eq!(snapshot.len(), 3);
        assert_eq!(snapshot[0]["more"], true);
        assert!(snapshot[2].get("more").is_none());
        let total: usize = snapshot
            .iter()
            .map(|s| s["users"].as_array().unwrap().len())
            .sum();
        assert_eq!(total, 120);
        let empty = Presence::default().snapshot(Uuid::nil());
        assert_eq!(json(&empty[0])["users"], json!([]));
    }

    #[test]
    fn the_snapshot_is_kept_until_someone_comes_or_goes() {
        let mut p = Presence::default();
        p.join(user(1));
        let first = p.snapshot(Uuid::nil());
        p.join(user(1));
        assert!(
            Arc::ptr_eq(&first, &p.snapshot(Uuid::nil())),
            "another tab is no change"
        );
        p.join(user(2));
        assert_eq!(
            json(&p.snapshot(Uuid::nil())[0])["users"]
                .as_array()
                .unwrap()
                .len(),
            2
        );
    }
}
