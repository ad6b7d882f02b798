//! The unit of work every mutation goes through: open a write transaction, let the domain
//! function record what it changed, and commit; the transaction announces its own notices
//! (see [`crate::bus`]), so nothing leaves the process unless it committed. Dropping a `Tx`
//! without `commit` rolls it back and announces nothing.
use std::ops::Deref;

use sea_orm::DatabaseTransaction;
use uuid::Uuid;

use super::{
    events::{Event, Notice},
    sessions::EndReason,
};
use crate::{
    bus::Bus,
    db::{Writer, WriterGuard},
    error::{AppError, Result},
};

#[derive(Clone)]
pub struct TxFactory {
    writer: Writer,
    bus: Bus,
}

impl TxFactory {
    pub fn new(writer: Writer, bus: Bus) -> Self {
        Self { writer, bus }
    }

    pub async fn begin(&self) -> Result<Tx> {
        let (txn, writer) = self.writer.begin().await?;
        Ok(Tx {
            txn,
            notices: Vec::new(),
            bus: self.bus.clone(),
            _writer: writer,
        })
    }
}

pub struct Tx {
    txn: DatabaseTransaction,
    notices: Vec<Notice>,
    bus: Bus,
    _writer: WriterGuard,
}

impl Tx {
    /// Records an event; it is announced only if the transaction commits.
    pub fn record(&mut self, event: Event) {
        self.notices.push(Notice::Event(event));
    }

    /// Announces, on commit, that a session ended, so its sockets go on every node.
    pub fn end_session(&mut self, session_id: Uuid, reason: EndReason) {
        self.notices.push(Notice::SessionEnded(session_id, reason));
    }

    /// Announces and commits. Runs in its own task: if the caller goes away mid-commit (a
    /// client hung up), a transaction that commits still has its notices delivered.
    pub async fn commit(self) -> Result<()> {
        let Tx {
            txn,
            notices,
            bus,
            _writer,
        } = self;
        let done = tokio::spawn(async move {
            bus.announce(&txn, &notices).await?;
            txn.commit().await?;
            bus.committed(notices);
            drop(_writer);
            Ok::<_, sea_orm::DbErr>(())
        });
        done.await.map_err(AppError::internal)??;
        Ok(())
    }
}

impl Deref for Tx {
    type Target = DatabaseTransaction;
    fn deref(&self) -> &DatabaseTransaction {
        &self.txn
    }
}
