//! The per-user socket cap counted for the whole service: each node's sockets per user in
//! `socket_slots`, counted under a per-user advisory lock (in memory on one node).
use sea_orm::{
    ActiveValue::Set,
    ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, QueryFilter, QuerySelect,
    TransactionTrait,
    prelude::Expr,
    sea_query::{ExprTrait, OnConflict},
};
use uuid::Uuid;

use super::Cluster;
use crate::error::Result;
use entities::socket_slots;

impl Cluster {
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
