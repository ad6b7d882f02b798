//! The unit of work every mutation goes through: open a transaction, let the domain function
//! record its events, commit, and only then publish. Dropping a `Tx` without `commit` rolls it
//! back and publishes nothing, so no caller can emit early or forget a step.
use std::{ops::Deref, sync::Arc};

use sea_orm::{DatabaseConnection, DatabaseTransaction, TransactionTrait};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::events::{Event, Publisher};
use crate::error::{AppError, Result};

/// Opens transactions. On SQLite, writers are serialized in-process (one writer at a time is
/// all SQLite allows; waiting here beats `SQLITE_BUSY`).
#[derive(Clone)]
pub struct TxFactory {
    db: DatabaseConnection,
    sqlite_writer: Option<Arc<Mutex<()>>>,
    publisher: Arc<dyn Publisher>,
}

impl TxFactory {
    pub fn new(db: DatabaseConnection, publisher: Arc<dyn Publisher>) -> Self {
        let sqlite = db.get_database_backend() == sea_orm::DbBackend::Sqlite;
        Self {
            db,
            sqlite_writer: sqlite.then(|| Arc::new(Mutex::new(()))),
            publisher,
        }
    }

    pub async fn begin(&self) -> Result<Tx> {
        let guard = match &self.sqlite_writer {
            Some(lock) => Some(lock.clone().lock_owned().await),
            None => None,
        };
        let txn = self.db.begin().await?;
        Ok(Tx {
            txn,
            events: Vec::new(),
            publisher: self.publisher.clone(),
            _writer: guard,
        })
    }
}

pub struct Tx {
    txn: DatabaseTransaction,
    events: Vec<Event>,
    publisher: Arc<dyn Publisher>,
    _writer: Option<OwnedMutexGuard<()>>,
}

impl Tx {
    /// Buffers an event; it leaves the process only if the transaction commits.
    pub fn record(&mut self, event: Event) {
        self.events.push(event);
    }

    /// Commits, then hands the recorded events to the publisher, in `seq` order.
    ///
    /// The events are queued *before* the commit, while the vault row is still locked, so the
    /// publisher sees each vault's events in `seq` order even across concurrent writers; it
    /// sends them only once told the commit succeeded.
    pub async fn commit(self) -> Result<()> {
        let Tx {
            txn,
            events,
            publisher,
            _writer,
        } = self;
        let ticket = (!events.is_empty()).then(|| publisher.reserve(events));
        // Commit and confirm in their own task: if the caller goes away mid-commit (a client
        // hung up), a transaction that did commit still gets its events published.
        let done = tokio::spawn(async move {
            let result = txn.commit().await;
            if let (Ok(()), Some(ticket)) = (&result, ticket) {
                ticket.confirm();
            }
            drop(_writer);
            result
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
