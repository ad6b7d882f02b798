//! The nodes of one service on PostgreSQL (CONTRACT §9), and what they share besides the data:
//! who is online through which node, and how many sockets each user holds.
//!
//! Presence is kept in an UNLOGGED table, one row per (vault, user, node), written by the node
//! that has the user's sockets, in the same transaction that announces the change by NOTIFY.
//! A node reads the table when it opens a room and whenever it may have missed a notice, so
//! the table is the truth and the notices are news, as with the event log. Each node beats its
//! heart every few seconds; a node whose heart stopped (it was killed) is reaped by whichever
//! node sees it first: its rows go, and the leaves are announced, within 30 seconds.
//!
//! On SQLite there is one node: nothing is shared and nothing is written.
mod presence;
mod slots;

use std::{collections::HashMap, sync::Arc, time::Duration};

use dashmap::DashMap;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QuerySelect, TransactionTrait, sea_query::OnConflict,
};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use presence::split;
pub use presence::{PresenceChange, PresenceUser, WireUser};

use crate::{bus::Bus, domain::now, error::Result};
use entities::{nodes, presence as presence_rows, socket_slots};

/// How often a node says it is alive, and how long a silent node is given before it is reaped.
const HEARTBEAT: Duration = Duration::from_secs(5);
const DEAD_AFTER: Duration = Duration::from_secs(15);

#[derive(Clone)]
pub struct Cluster(Arc<Inner>);

/// A handle that does not keep the cluster (and its database pool) alive, for what sockets
/// hold: socketioxide's sockets and its `SocketIo` refer to each other, so a socket still
/// connected when the app is dropped would otherwise keep the pool open.
#[derive(Clone)]
pub struct WeakCluster(std::sync::Weak<Inner>);

impl WeakCluster {
    pub fn upgrade(&self) -> Option<Cluster> {
        self.0.upgrade().map(Cluster)
    }
}

struct Inner {
    node: Uuid,
    db: DatabaseConnection,
    bus: Bus,
    shared: bool,
    /// Presence changes waiting to be written, in order.
    outbox: mpsc::UnboundedSender<PresenceChange>,
    /// Sockets per user on this node (the whole count, on one node).
    sockets: DashMap<Uuid, usize>,
}

impl Cluster {
    /// Joins the service: registers this node and starts its heartbeat, its reaper and its
    /// presence writer, which stop with `stop` (and the node leaves the service).
    pub async fn join(db: DatabaseConnection, bus: Bus, stop: CancellationToken) -> Result<Self> {
        let shared = db.get_database_backend() == DbBackend::Postgres;
        let (outbox, queue) = mpsc::unbounded_channel();
        let cluster = Self(Arc::new(Inner {
            node: Uuid::new_v4(),
            db,
            bus,
            shared,
            outbox,
            sockets: DashMap::new(),
        }));
        if shared {
            cluster.beat().await?;
            tokio::spawn(cluster.clone().run(queue, stop));
            tracing::info!(node = %cluster.node(), "joined the service");
        }
        Ok(cluster)
    }

    pub fn node(&self) -> Uuid {
        self.0.node
    }

    pub fn downgrade(&self) -> WeakCluster {
        WeakCluster(Arc::downgrade(&self.0))
    }

    pub fn is_shared(&self) -> bool {
        self.0.shared
    }

    async fn run(
        self,
        mut queue: mpsc::UnboundedReceiver<PresenceChange>,
        stop: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(HEARTBEAT);
        loop {
            tokio::select! {
                Some(change) = queue.recv() => {
                    let mut batch = vec![change];
                    while let Ok(more) = queue.try_recv() {
                        batch.push(more);
                    }
                    if let Err(e) = self.write(&batch).await {
                        tracing::warn!(error = %e, "presence not shared");
                    }
                }
                _ = tick.tick() => {
                    if let Err(e) = self.beat().await {
                        tracing::warn!(error = %e, "heartbeat failed");
                    }
                    if let Err(e) = self.reap().await {
                        tracing::warn!(error = %e, "reaping dead nodes failed");
                    }
                }
                _ = stop.cancelled() => {
                    if let Err(e) = self.leave().await {
                        tracing::warn!(error = %e, "leaving the service failed");
                    }
                    return;
                }
            }
        }
    }

    async fn beat(&self) -> Result<()> {
        nodes::Entity::insert(nodes::ActiveModel {
            id: Set(self.0.node),
            heartbeat_at: Set(now()),
        })
        .on_conflict(
            OnConflict::column(nodes::Column::Id)
                .update_column(nodes::Column::HeartbeatAt)
                .to_owned(),
        )
        .exec_without_returning(&self.0.db)
        .await?;
        Ok(())
    }

    /// Removes the nodes whose heart stopped, with their presence and sockets, and announces
    /// their users' leaves. Nodes race to do it; the rows go to whichever deletes them first.
    async fn reap(&self) -> Result<()> {
        let dead_before =
            now() - chrono::Duration::from_std(DEAD_AFTER).unwrap_or(chrono::Duration::seconds(15));
        let dead: Vec<Uuid> = nodes::Entity::find()
            .select_only()
            .column(nodes::Column::Id)
            .filter(nodes::Column::HeartbeatAt.lt(dead_before))
            .into_tuple()
            .all(&self.0.db)
            .await?;
        for node in dead {
            tracing::warn!(%node, "a node stopped beating; its users leave");
            self.forget_node(node).await?;
        }
        Ok(())
    }

    async fn leave(&self) -> Result<()> {
        self.forget_node(self.0.node).await
    }

    async fn forget_node(&self, node: Uuid) -> Result<()> {
        let txn = self.0.db.begin().await?;
        let gone = nodes::Entity::delete_by_id(node).exec(&txn).await?;
        if gone.rows_affected == 0 {
            return Ok(());
        }
        let rows = presence_rows::Entity::find()
            .filter(presence_rows::Column::NodeId.eq(node))
            .all(&txn)
            .await?;
        presence_rows::Entity::delete_many()
            .filter(presence_rows::Column::NodeId.eq(node))
            .exec(&txn)
            .await?;
        socket_slots::Entity::delete_many()
            .filter(socket_slots::Column::NodeId.eq(node))
            .exec(&txn)
            .await?;
        let mut leaves: HashMap<Uuid, Vec<Uuid>> = HashMap::new();
        for row in rows {
            leaves.entry(row.vault_id).or_default().push(row.user_id);
        }
        let notices: Vec<PresenceChange> = leaves
            .into_iter()
            .flat_map(|(vault, leaves)| {
                split(&PresenceChange {
                    node,
                    vault,
                    joins: Vec::new(),
                    leaves,
                })
            })
            .collect();
        self.0.bus.announce_presence(&txn, &notices).await?;
        txn.commit().await?;
        Ok(())
    }
}
