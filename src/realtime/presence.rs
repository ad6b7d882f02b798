//! Who is online in one vault (CONTRACT §7 "Presence"): each user once, however many sockets
//! they have in it. Changes wait for the room's next flush, at most one per
//! `realtime.presence_interval`, so N arrivals cost O(N) messages, never a full list per
//! join; a user who comes and goes within one interval is no news. Snapshots and diffs go
//! out in packets of at most [`PAGE`] users, so no packet grows with the room.
use std::collections::HashMap;

use serde::Serialize;
use serde_json::{Value, json};
use uuid::Uuid;

/// The most users in one `presence` or `presence:diff` packet.
pub const PAGE: usize = 50;

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PresenceUser {
    pub user_id: Uuid,
    pub user_name: String,
    pub role: &'static str,
}

#[derive(Default)]
pub struct Presence {
    online: HashMap<Uuid, Online>,
    /// Changes since the last flush, by user: true when they came online.
    changed: HashMap<Uuid, bool>,
}

struct Online {
    user: PresenceUser,
    sockets: usize,
}

impl Presence {
    /// One more socket of this user.
    pub fn join(&mut self, user: PresenceUser) {
        let id = user.user_id;
        let entry = self.online.entry(id).or_insert(Online { user, sockets: 0 });
        entry.sockets += 1;
        if entry.sockets == 1 {
            self.note(id, true);
        }
    }

    /// One socket less; the user leaves with their last one.
    pub fn leave(&mut self, user_id: Uuid) {
        let Some(entry) = self.online.get_mut(&user_id) else {
            return;
        };
        entry.sockets -= 1;
        if entry.sockets == 0 {
            self.online.remove(&user_id);
            self.note(user_id, false);
        }
    }

    fn note(&mut self, user_id: Uuid, online: bool) {
        match self.changed.get(&user_id) {
            // Back to how it was at the last flush: nothing to tell.
            Some(before) if *before != online => {
                self.changed.remove(&user_id);
            }
            _ => {
                self.changed.insert(user_id, online);
            }
        }
    }

    pub fn has_changes(&self) -> bool {
        !self.changed.is_empty()
    }

    /// The `presence` packets for a socket that joined: the whole list, in pages.
    pub fn snapshot(&self, vault_id: Uuid) -> Vec<Value> {
        let users: Vec<&PresenceUser> = self.online.values().map(|o| &o.user).collect();
        let pages: Vec<&[&PresenceUser]> = if users.is_empty() {
            vec![&[]]
        } else {
            users.chunks(PAGE).collect()
        };
        let last = pages.len() - 1;
        pages
            .into_iter()
            .enumerate()
            .map(|(i, page)| {
                let mut packet = json!({ "vaultId": vault_id, "users": page });
                if i < last {
                    packet["more"] = json!(true);
                }
                packet
            })
            .collect()
    }

    /// The `presence:diff` packets for the changes since the last flush, in pages.
    pub fn take_diff(&mut self, vault_id: Uuid) -> Vec<Value> {
        let changed = std::mem::take(&mut self.changed);
        let mut joins: Vec<&PresenceUser> = Vec::new();
        let mut leaves: Vec<Uuid> = Vec::new();
        for (id, online) in changed {
            match (online, self.online.get(&id)) {
                (true, Some(o)) => joins.push(&o.user),
                (false, _) => leaves.push(id),
                (true, None) => {}
            }
        }
        let pages = joins.len().max(leaves.len()).div_ceil(PAGE);
        (0..pages)
            .map(|i| {
                let range = |len: usize| (i * PAGE).min(len)..((i + 1) * PAGE).min(len);
                json!({
                    "vaultId": vault_id,
                    "joins": &joins[range(joins.len())],
                    "leaves": &leaves[range(leaves.len())],
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(n: u128) -> PresenceUser {
        PresenceUser {
            user_id: Uuid::from_u128(n),
            user_name: format!("user {n}"),
            role: "viewer",
        }
    }

    #[test]
    fn a_user_counts_once_and_leaves_with_the_last_socket() {
        let (mut p, vault) = (Presence::default(), Uuid::nil());
        p.join(user(1));
        p.join(user(1));
        assert_eq!(p.take_diff(vault).len(), 1);
        p.leave(user(1).user_id);
        assert!(!p.has_changes(), "one tab left, still online");
        p.leave(user(1).user_id);
        let diff = p.take_diff(vault);
        assert_eq!(diff[0]["leaves"], json!([user(1).user_id]));
    }

    #[test]
    fn coming_and_going_within_one_interval_is_no_news() {
        let mut p = Presence::default();
        p.join(user(1));
        p.leave(user(1).user_id);
        assert!(!p.has_changes());
    }

    #[test]
    fn large_snapshots_and_diffs_come_in_pages_of_fifty() {
        let (mut p, vault) = (Presence::default(), Uuid::nil());
        for n in 0..120 {
            p.join(user(n));
        }
        let diff = p.take_diff(vault);
        let sizes: Vec<usize> = diff
            .iter()
            .map(|d| d["joins"].as_array().unwrap().len())
            .collect();
        assert_eq!(sizes, [50, 50, 20]);
        let snapshot = p.snapshot(vault);
        assert_eq!(snapshot.len(), 3);
        assert_eq!(snapshot[0]["more"], true);
        assert!(snapshot[2].get("more").is_none());
        let total: usize = snapshot
            .iter()
            .map(|s| s["users"].as_array().unwrap().len())
            .sum();
        assert_eq!(total, 120);
        assert_eq!(Presence::default().snapshot(vault)[0]["users"], json!([]));
    }
}
