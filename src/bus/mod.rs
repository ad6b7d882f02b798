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
//!
//! Ended sessions reach this node's [`SessionCache`] from here, before anything else hears
//! of them: at commit on the node that ended them, and as soon as each listener hears the
//! notice. A listener that lost its connection makes the cache forget everything and trust
//! nothing until it listens again, since the notices it missed are gone.
mod postgres;

use sea_orm::{DatabaseConnection, DatabaseTransaction, DbBackend, DbErr};
use tokio::sync::mpsc;
use uuid::Uuid;

use crate::{
    cluster::PresenceChange,
    domain::{events::Notice, sessions::SessionCache},
};

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
pub struct Bus {
    kind: Kind,
    sessions: SessionCache,
}

#[derive(Clone)]
enum Kind {
    Local(mpsc::UnboundedSender<Heard>),
    Postgres,
}

impl Bus {
    /// The bus for this database, and what this node hears on it. On PostgreSQL the node is
    /// listening when this returns, so nothing committed afterwards can be missed.
    pub async fn start(
        db: &DatabaseConnection,
        sessions: SessionCache,
    ) -> Result<(Self, mpsc::UnboundedReceiver<Heard>), DbErr> {
        let (tx, rx) = mpsc::unbounded_channel();
        let kind = if db.get_database_backend() == DbBackend::Postgres {
            let pool = db.get_postgres_connection_pool().clone();
            postgres::listen(pool, tx, sessions.clone()).await?;
            Kind::Postgres
        } else {
            Kind::Local(tx)
        };
        Ok((Self { kind, sessions }, rx))
    }

    /// Runs inside the transaction, just before `COMMIT`.
    pub async fn announce(
        &self,
        txn: &DatabaseTransaction,
        notices: &[Notice],
    ) -> Result<(), DbErr> {
        match &self.kind {
            Kind::Local(_) => Ok(()),
            Kind::Postgres => postgres::announce(txn, notices).await,
        }
    }

    /// Runs inside a presence transaction: on PostgreSQL the other nodes hear of it.
    pub async fn announce_presence(
        &self,
        txn: &DatabaseTransaction,
        changes: &[PresenceChange],
    ) -> Result<(), DbErr> {
        match &self.kind {
            Kind::Local(_) => Ok(()),
            Kind::Postgres => postgres::announce_presence(txn, changes).await,
        }
    }

    /// Runs right after a successful `COMMIT`, before the caller hears that it committed.
    pub fn committed(&self, notices: Vec<Notice>) {
        for notice in &notices {
            if let Notice::SessionEnded(id, _) = notice {
                self.sessions.forget(*id);
            }
        }
        if let Kind::Local(tx) = &self.kind {
            for notice in notices {
                let _ = tx.send(Heard::Notice(notice));
            }
        }
    }
}
