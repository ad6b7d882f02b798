//! Live sessions this node has read from the database, so that a request need not read its
//! session again. The database stays the truth; an entry is only a promise that nothing
//! ended the session since it was read, and the promise holds only while this node hears
//! every ended session:
//!
//! - a logout forgets its session here when it commits, and on every node that hears its
//!   notice (before that node's sockets of the session are disconnected);
//! - while the bus's listener is down, nothing is trusted or kept, and what was kept before
//!   is forgotten: the notices it missed are gone for good;
//! - a read that was overtaken by any of these (a logout or a lost listener between the
//!   moment it started and the moment it would be kept) is not kept: each of them moves the
//!   generation, and an entry is kept only under the generation its read started in;
//! - an entry is refused once its expiry has passed, and it is read again (renewing the
//!   session) once it is due for renewal.
use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::domain::dto;

/// The most sessions kept; past it, the cache starts over (each session is read once more).
const CAPACITY: usize = 50_000;

/// The SHA-256 of a session token: what the cache is keyed by (no token is kept in memory).
pub type Key = [u8; 32];

pub fn key(token: &str) -> Key {
    Sha256::digest(token.as_bytes()).into()
}

/// A session as it was read, with its user.
#[derive(Debug, Clone)]
pub struct Known {
    pub session_id: Uuid,
    pub user: dto::User,
    pub expires_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

/// Taken before a session is read from the database; keeping what was read needs it.
#[derive(Debug, Clone, Copy)]
pub struct Ticket(Option<u64>);

#[derive(Clone, Default)]
pub struct SessionCache(Arc<Mutex<Inner>>);

#[derive(Default)]
struct Inner {
    generation: u64,
    /// Whether every ended session is being heard (the bus's listener is up).
    listening: bool,
    entries: HashMap<Key, Known>,
    by_session: HashMap<Uuid, Key>,
}

impl SessionCache {
    /// A cache for a node that hears every ended session from the start.
    pub fn listening() -> Self {
        let cache = Self::default();
        cache.lock().listening = true;
        cache
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The critical sections cannot panic halfway; a poisoned lock still holds whole data.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The session kept for `key`, if it is still live at `now` and not due for renewal.
    pub fn get(
        &self,
        key: &Key,
        now: DateTime<Utc>,
        renew_every: chrono::Duration,
    ) -> Option<Known> {
        let inner = self.lock();
        if !inner.listening {
            return None;
        }
        inner
            .entries
            .get(key)
            .filter(|k| k.expires_at > now && now - k.last_seen_at < renew_every)
            .cloned()
    }

    /// Taken before reading a session from the database.
    pub fn ticket(&self) -> Ticket {
        let inner = self.lock();
        Ticket(inner.listening.then_some(inner.generation))
    }

    /// Keeps a session read under `ticket`, unless something may have ended it meanwhile.
    pub fn keep(&self, ticket: Ticket, key: Key, known: Known) {
        let mut inner = self.lock();
        if !inner.listening || ticket.0 != Some(inner.generation) {
            return;
        }
        if inner.entries.len() >= CAPACITY {
            inner.entries.clear();
            inner.by_session.clear();
        }
        if let Some(old) = inner.by_session.insert(known.session_id, key)
            && old != key
        {
            inner.entries.remove(&old);
        }
        inner.entries.insert(key, known);
    }

    /// A session ended (logout): it is never answered from here again.
    pub fn forget(&self, session_id: Uuid) {
        let mut inner = self.lock();
        inner.generation += 1;
        if let Some(key) = inner.by_session.remove(&session_id) {
            inner.entries.remove(&key);
        }
    }

    /// The listener lost its connection: notices may be missed until [`Self::listen_again`].
    pub fn deaf(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.listening = false;
        inner.entries.clear();
        inner.by_session.clear();
    }

    /// The listener listens again: what is read from now on may be kept.
    pub fn listen_again(&self) {
        let mut inner = self.lock();
        inner.generation += 1;
        inner.listening = true;
    }

    /// How many sessions are kept.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the cache is in use (the listener hears every ended session).
    pub fn is_listening(&self) -> bool {
        self.lock().listening
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(session_id: Uuid, now: DateTime<Utc>) -> Known {
        Known {
            session_id,
            user: dto::User {
                id: Uuid::new_v4(),
                email: "a@b.c".into(),
                name: "A".into(),
            },
            expires_at: now + chrono::Duration::hours(1),
            last_seen_at: now,
        }
    }

    const MINUTE: chrono::Duration = chrono::Duration::minutes(1);

    #[test]
    fn a_session_read_before_a_logout_is_not_kept_after_it() {
        let (cache, now, id) = (SessionCache::listening(), Utc::now(), Uuid::new_v4());
        let ticket = cache.ticket();
        // The logout commits (and is heard) while the read is on its way.
        cache.forget(id);
        cache.keep(ticket, key("t"), known(id, now));
        assert!(cache.get(&key("t"), now, MINUTE).is_none());
    }

    #[test]
    fn nothing_is_kept_or_answered_while_the_listener_is_down() {
        let (cache, now, id) = (SessionCache::listening(), Utc::now(), Uuid::new_v4());
        cache.keep(cache.ticket(), key("t"), known(id, now));
        assert!(cache.get(&key("t"), now, MINUTE).is_some());
        let before = cache.ticket();
        cache.deaf();
        assert!(cache.get(&key("t"), now, MINUTE).is_none(), "forgotten");
        cache.keep(cache.ticket(), key("t"), known(id, now));
        assert!(cache.is_empty(), "a read while deaf is not kept");
        cache.listen_again();
        cache.keep(before, key("t"), known(id, now));
        assert!(cache.is_empty(), "nor one that started before the loss");
        cache.keep(cache.ticket(), key("t"), known(id, now));
        assert!(cache.get(&key("t"), now, MINUTE).is_some());
    }

    #[test]
    fn an_expired_or_renewable_session_is_not_answered() {
        let (cache, now, id) = (SessionCache::listening(), Utc::now(), Uuid::new_v4());
        let mut k = known(id, now);
        k.expires_at = now + chrono::Duration::seconds(1);
        cache.keep(cache.ticket(), key("t"), k);
        assert!(cache.get(&key("t"), now, MINUTE).is_some());
        let later = now + chrono::Duration::seconds(2);
        assert!(cache.get(&key("t"), later, MINUTE).is_none(), "expired");
        let due = now + chrono::Duration::seconds(61);
        cache.keep(cache.ticket(), key("u"), known(Uuid::new_v4(), now));
        assert!(
            cache.get(&key("u"), due, MINUTE).is_none(),
            "due for renewal"
        );
    }
}
