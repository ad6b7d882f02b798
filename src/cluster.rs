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
use std::{collections::HashMap, sync::Arc, time::Duration};

use dashmap::DashMap;
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DatabaseConnection, DbBackend, EntityTrait, QueryFilter,
    QuerySelect, TransactionTrait,
    prelude::Expr,
    sea_query::{ExprTrait, OnConflict},
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::{
    bus::Bus,
    domain::{input, now, role_name},
    error::Result,
};
use entities::{nodes, presence, socket_slots};

/// How often a node says it is alive, and how long a silent node is given before it is reaped.
const HEARTBEAT: Duration = Duration::from_secs(5);
const DEAD_AFTER: Duration = Duration::from_secs(15);
/// The most users in one presence notice, so that it always fits in NOTIFY.
const PER_NOTICE: usize = 40;

/// A user online in a vault, as presence shows them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PresenceUser {
    pub user_id: Uuid,
    pub user_name: String,
    pub role: &'static str,
}

/// Users who came online in a vault, or left it, through one node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PresenceChange {
    pub node: Uuid,
    pub vault: Uuid,
    pub joins: Vec<WireUser>,
    pub leaves: Vec<Uuid>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireUser {
    pub id: Uuid,
    pub name: String,
    pub role: String,
}

impl From<&PresenceUser> for WireUser {
    fn from(u: &PresenceUser) -> Self {
        Self {
            id: u.user_id,
            name: u.user_name.clone(),
            role: u.role.to_string(),
        }
    }
}

impl WireUser {
    pub fn user(&self) -> PresenceUser {
        PresenceUser {
            user_id: self.id,
            user_name: self.name.clone(),
            role: input::role(&self.role).map_or("viewer", role_name),
        }
    }
}

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

    /// Announces that users came online in a vault here, or left it.
    pub fn publish(&self, vault: Uuid, joins: &[PresenceUser], leaves: Vec<Uuid>) {
        if self.0.shared && !(joins.is_empty() && leaves.is_empty()) {
            let joins = joins.iter().map(WireUser::from).collect();
            let change = PresenceChange {
                node: self.0.node,
                vault,
                joins,
                leaves,
            };
            let _ = self.0.outbox.send(change);
        }
    }

    /// Writes presence changes and announces them, in one transaction.
    async fn write(&self, batch: &[PresenceChange]) -> Result<()> {
        let txn = self.0.db.begin().await?;
        for change in batch {
            if !change.leaves.is_empty() {
                presence::Entity::delete_many()
                    .filter(presence::Column::NodeId.eq(change.node))
                    .filter(presence::Column::VaultId.eq(change.vault))
                    .filter(presence::Column::UserId.is_in(change.leaves.clone()))
                    .exec(&txn)
                    .await?;
            }
            if !change.joins.is_empty() {
                let rows = change.joins.iter().map(|u| presence::ActiveModel {
                    vault_id: Set(change.vault),
                    user_id: Set(u.id),
                    node_id: Set(change.node),
                    user_name: Set(u.name.clone()),
                    role: Set(u.role.clone()),
                });
                presence::Entity::insert_many(rows)
                    .on_conflict_do_nothing()
                    .exec_without_returning(&txn)
                    .await?;
            }
        }
        let notices: Vec<PresenceChange> = batch.iter().flat_map(split).collect();
        self.0.bus.announce_presence(&txn, &notices).await?;
        txn.commit().await?;
        Ok(())
    }

    /// Who is online in a vault through the other nodes.
    pub async fn presence_of(&self, vault: Uuid) -> Result<Vec<(Uuid, PresenceUser)>> {
        if !self.0.shared {
            return Ok(Vec::new());
        }
        let rows = presence::Entity::find()
            .filter(presence::Column::VaultId.eq(vault))
            .filter(presence::Column::NodeId.ne(self.0.node))
            .all(&self.0.db)
            .await?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let user = WireUser {
                    id: r.user_id,
                    name: r.user_name,
                    role: r.role,
                };
                (r.node_id, user.user())
            })
            .collect())
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
        let rows = presence::Entity::find()
            .filter(presence::Column::NodeId.eq(node))
            .all(&txn)
            .await?;
        presence::Entity::delete_many()
            .filter(presence::Column::NodeId.eq(node))
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

    /// Takes a socket slot for a user, unless they hold `max` sockets on the whole service.
    pub async fn take_socket(&self, user: Uuid, max: usize) -> Result<bool> {
        if !self.0.shared {
            let mut count = self.0.sockets.entry(user).or_insert(0);
            let free = *count < max;
            if free {
                *count += 1;
            }
            return Ok(free);
        }
        let txn = self.0.db.begin().await?;
        // One user's handshakes queue here, on every node, so the count cannot be outrun.
        txn.execute_raw(sea_orm::Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
            [user.to_string().into()],
        ))
        .await?;
        let held: Option<i64> = socket_slots::Entity::find()
            .select_only()
            .column_as(socket_slots::Column::Sockets.sum(), "sum")
            .filter(socket_slots::Column::UserId.eq(user))
            .into_tuple()
            .one(&txn)
            .await?
            .flatten();
        if held.unwrap_or(0) >= max as i64 {
            return Ok(false);
        }
        socket_slots::Entity::insert(socket_slots::ActiveModel {
            user_id: Set(user),
            node_id: Set(self.0.node),
            sockets: Set(1),
        })
        .on_conflict(
            OnConflict::columns([socket_slots::Column::UserId, socket_slots::Column::NodeId])
                .value(
                    socket_slots::Column::Sockets,
                    Expr::col((socket_slots::Entity, socket_slots::Column::Sockets)).add(1),
                )
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await?;
        txn.commit().await?;
        Ok(true)
    }

    /// Gives a socket slot back.
    pub async fn release_socket(&self, user: Uuid) -> Result<()> {
        if !self.0.shared {
            if let Some(mut count) = self.0.sockets.get_mut(&user) {
                *count = count.saturating_sub(1);
            }
            self.0.sockets.remove_if(&user, |_, n| *n == 0);
            return Ok(());
        }
        socket_slots::Entity::update_many()
            .col_expr(
                socket_slots::Column::Sockets,
                Expr::col(socket_slots::Column::Sockets).sub(1),
            )
            .filter(socket_slots::Column::UserId.eq(user))
            .filter(socket_slots::Column::NodeId.eq(self.0.node))
            .exec(&self.0.db)
            .await?;
        Ok(())
    }
}

/// A change in notices small enough for NOTIFY.
fn split(change: &PresenceChange) -> Vec<PresenceChange> {
    let pages = change
        .joins
        .len()
        .max(change.leaves.len())
        .div_ceil(PER_NOTICE)
        .max(1);
    (0..pages)
        .map(|i| {
            let range = |len: usize| (i * PER_NOTICE).min(len)..((i + 1) * PER_NOTICE).min(len);
            PresenceChange {
                node: change.node,
                vault: change.vault,
                joins: change.joins[range(change.joins.len())].to_vec(),
                leaves: change.leaves[range(change.leaves.len())].to_vec(),
            }
        })
        .collect()
}
