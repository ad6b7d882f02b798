//! The per-user socket cap (`realtime.max_sockets_per_user`). A socket holds a [`Slot`] from
//! its handshake until it is gone; the slot frees itself when dropped, so a socket whose
//! connection died before socketioxide ever called a handler still gives its slot back.
use std::sync::Arc;

use dashmap::DashMap;
use uuid::Uuid;

use crate::metrics::Metrics;

#[derive(Clone)]
pub struct SocketLimits {
    max_per_user: usize,
    counts: Arc<DashMap<Uuid, usize>>,
    metrics: Arc<Metrics>,
}

/// One connected socket, counted against its user.
pub struct Slot {
    user_id: Uuid,
    counts: Arc<DashMap<Uuid, usize>>,
    metrics: Arc<Metrics>,
}

impl SocketLimits {
    pub fn new(max_per_user: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            max_per_user,
            counts: Arc::default(),
            metrics,
        }
    }

    /// A slot for one more socket of this user, unless they have the most allowed.
    pub fn take(&self, user_id: Uuid) -> Option<Slot> {
        let mut count = self.counts.entry(user_id).or_insert(0);
        if *count >= self.max_per_user {
            return None;
        }
        *count += 1;
        self.metrics.connected_sockets.inc();
        Some(Slot {
            user_id,
            counts: self.counts.clone(),
            metrics: self.metrics.clone(),
        })
    }

    /// The sockets this user has connected.
    pub fn count(&self, user_id: Uuid) -> usize {
        self.counts.get(&user_id).map_or(0, |c| *c)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(mut count) = self.counts.get_mut(&self.user_id) {
            *count = count.saturating_sub(1);
        }
        self.counts.remove_if(&self.user_id, |_, n| *n == 0);
        self.metrics.connected_sockets.dec();
    }
}
