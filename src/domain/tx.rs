//! The unit of work every mutation goes through: open a write transaction, let the domain
//! function record what it changed, and commit; the transaction announces its own notices
//! (see [`crate::bus`]), so nothing leaves the process unless it committed. Dropping a `Tx`
//! without `commit` rolls it back and announces nothing.
use std::ops::Deref;

use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement};
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

    /// Runs statements that return nothing, in order. SQLite gets them as one batch: each
    /// statement sent alone is a round trip to the thread that owns the connection (two context
    /// switches), which cost more than the statements themselves. PostgreSQL's extended protocol
    /// takes one statement at a time.
    pub async fn write_all(&self, statements: impl IntoIterator<Item = Statement>) -> Result<()> {
        if self.txn.get_database_backend() != DbBackend::Sqlite {
            for statement in statements {
                self.txn.execute_raw(statement).await?;
            }
            return Ok(());
        }
        let (mut sql, mut values) = (String::new(), Vec::new());
        for statement in statements {
            if !sql.is_empty() {
                sql.push_str(";\n");
            }
            sql.push_str(&statement.sql);
            // SQLite's `?` placeholders are positional: each statement's values follow the
            // last one's, as the batch binds them.
            values.extend(statement.values.map(|v| v.0).unwrap_or_default());
        }
        if !sql.is_empty() {
            let batch = Statement::from_sql_and_values(DbBackend::Sqlite, sql, values);
            self.txn.execute_raw(batch).await?;
        }
        Ok(())
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
