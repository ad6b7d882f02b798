//! Presence shared between nodes: the rows of the `presence` table, written with their
//! NOTIFY in one transaction by the node whose sockets they describe, and read by a node that
//! opens a room or may have missed a notice.
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, TransactionTrait};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Cluster;
use crate::{
    domain::{input, role_name},
    error::Result,
};
use entities::presence;

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

impl Cluster {
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
    pub(super) async fn write(&self, batch: &[PresenceChange]) -> Result<()> {
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
}

/// A change in notices small enough for NOTIFY.
pub(super) fn split(change: &PresenceChange) -> Vec<PresenceChange> {
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
