//! How a committed transaction's notices reach every node's relay.
//!
//! - SQLite (one node): the notices go through an in-process channel right after `COMMIT`,
//!   while the transaction still holds the writer gate, so they arrive in commit order.
//! - PostgreSQL (any number of nodes): the transaction itself calls `pg_notify`, which
//!   PostgreSQL delivers only if and when it commits, in commit order, to every listening
//!   node, this one included. A node that dies right after its commit loses nothing.
//!
//! Either way the event log stays the truth: a notice too large for NOTIFY arrives as a
//! [`Heard::Hint`], and a listener that lost its connection says [`Heard::Lost`]; the relay
//! then reads what it missed from the log.
mod postgres;

use sea_orm::{DatabaseConnection, DatabaseTransaction, DbBackend, DbErr};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{cluster::PresenceChange, domain::events::Notice};

/// What this node hears.
#[derive(Debug)]
pub enum Heard {
    Notice(Notice),
    /// An event was committed whose notice did not fit: read it from the log.
    Hint {
        vault_id: Uuid,
        seq: i64,
    },
    /// Users came online or left through another node (PostgreSQL only).
    Presence(PresenceChange),
    /// Notices may have been missed (the listener reconnected): catch up from the log.
    Lost,
}

#[derive(Clone)]
pub enum Bus {
    Local(mpsc::UnboundedSender<Heard>),
    Postgres,
}

impl Bus {
    /// The bus for this database, and what this node hears on it. On PostgreSQL the node is
    /// listening when this returns, so nothing committed afterwards can be missed.
    pub async fn start(
        db: &DatabaseConnection,
    ) -> Result<(Self, mpsc::UnboundedReceiver<Heard>), DbErr> {
        let (tx, rx) = mpsc::unbounded_channel();
        if db.get_database_backend() == DbBackend::Postgres {
            postgres::listen(db.get_postgres_connection_pool().clone(), tx).await?;
            Ok((Self::Postgres, rx))
        } else {
            Ok((Self::Local(tx), rx))
        }
    }

    /// Runs inside the transaction, just before `COMMIT`.
    pub async fn announce(
        &self,
        txn: &DatabaseTransaction,
        notices: &[Notice],
    ) -> Result<(), DbErr> {
        match self {
            Self::Local(_) => Ok(()),
            Self::Postgres => postgres::announce(txn, notices).await,
        }
    }

    /// Runs inside a presence transaction: on PostgreSQL the other nodes hear of it.
    pub async fn announce_presence(
        &self,
        txn: &DatabaseTransaction,
        changes: &[PresenceChange],
    ) -> Result<(), DbErr> {
        match self {
            Self::Local(_) => Ok(()),
            Self::Postgres => postgres::announce_presence(txn, changes).await,
        }
    }

    /// Runs right after a successful `COMMIT`.
    pub fn committed(&self, notices: Vec<Notice>) {
        if let Self::Local(tx) = self {
            for notice in notices {
                let _ = tx.send(Heard::Notice(notice));
            }
        }
    }
}
