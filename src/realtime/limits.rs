//! The per-user socket cap (`realtime.max_sockets_per_user`), counted for the whole service
//! ([`crate::cluster`]). A socket holds a [`Slot`] from its handshake until it is gone; the
//! slot frees itself when dropped, so a socket whose connection died before socketioxide ever
//! called a handler of ours still gives its slot back.
use std::sync::Arc;

use uuid::Uuid;

use crate::{
    cluster::{Cluster, WeakCluster},
    error::Result,
    metrics::Metrics,
};

#[derive(Clone)]
pub struct SocketLimits {
    max_per_user: usize,
    cluster: Cluster,
    metrics: Arc<Metrics>,
}

/// One connected socket, counted against its user.
pub struct Slot {
    user_id: Uuid,
    cluster: WeakCluster,
    metrics: Arc<Metrics>,
}

impl SocketLimits {
    pub fn new(max_per_user: usize, cluster: Cluster, metrics: Arc<Metrics>) -> Self {
        Self {
            max_per_user,
            cluster,
            metrics,
        }
    }

    /// A slot for one more socket of this user, unless they have the most allowed.
    pub async fn take(&self, user_id: Uuid) -> Result<Option<Slot>> {
        if !self.cluster.take_socket(user_id, self.max_per_user).await? {
            return Ok(None);
        }
        self.metrics.connected_sockets.inc();
        Ok(Some(Slot {
            user_id,
            cluster: self.cluster.downgrade(),
            metrics: self.metrics.clone(),
        }))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.connected_sockets.dec();
        // Without the cluster, the node is gone, and its slots with it.
        let Some(cluster) = self.cluster.upgrade() else {
            return;
        };
        let (shared, user_id) = (cluster.is_shared(), self.user_id);
        let release = async move {
            if let Err(e) = cluster.release_socket(user_id).await {
                tracing::warn!(%user_id, error = %e, "socket slot not given back");
            }
        };
        if shared {
            tokio::spawn(release);
        } else {
            // Counted in memory: done at once, so the next handshake sees it.
            futures_util::FutureExt::now_or_never(release);
        }
    }
}
