//! The unit of work every mutation goes through: open a write transaction, let the domain
//! function record what it changed, and commit; the transaction announces its own notices
//! (see [`crate::bus`]), so nothing leaves the process unless it committed. Dropping a `Tx`
//! without `commit` rolls it back and announces nothing.
//!
//! A `Tx` from [`TxFactory::begin_direct`] runs on SQLite on the calling thread (see
//! [`crate::db::DirectTxn`]); it serves only statements sent through its own methods
//! ([`Tx::query_row`], [`Tx::write_all`]), not sea-orm's through `Deref`.
use std::ops::Deref;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, QueryResult, Statement};
use uuid::Uuid;

use super::{
    events::{Event, Notice},
    sessions::EndReason,
};
use crate::{
    bus::Bus,
    db::{DirectTxn, Writer, WriterGuard, reads::parse_timestamp},
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
        Ok(self.tx(Txn::Orm(txn), writer))
    }

    /// For mutations whose every statement goes through [`Tx`]'s own methods: on SQLite they
    /// run on the calling thread; on PostgreSQL this is [`TxFactory::begin`].
    pub async fn begin_direct(&self) -> Result<Tx> {
        match self.writer.begin_direct().await? {
            Some(direct) => Ok(self.tx(Txn::Direct(direct), None)),
            None => self.begin().await,
        }
    }

    fn tx(&self, txn: Txn, writer: WriterGuard) -> Tx {
        Tx {
            txn,
            notices: Vec::new(),
            bus: self.bus.clone(),
            _writer: writer,
        }
    }
}

pub struct Tx {
    txn: Txn,
    notices: Vec<Notice>,
    bus: Bus,
    _writer: WriterGuard,
}

enum Txn {
    Orm(DatabaseTransaction),
    /// Holds the writers' gate itself.
    Direct(DirectTxn),
}

/// A row from [`Tx::query_row`].
pub enum Row {
    Orm(QueryResult),
    Direct(Vec<rusqlite::types::Value>),
}

impl Row {
    pub fn i64(&self, idx: usize) -> Result<i64> {
        match self {
            Row::Orm(row) => Ok(row.try_get_by_index(idx)?),
            Row::Direct(row) => match row.get(idx) {
                Some(rusqlite::types::Value::Integer(i)) => Ok(*i),
                other => Err(AppError::internal(format!(
                    "column {idx}: {other:?} is no integer"
                ))),
            },
        }
    }

    /// A timestamp; on the direct connection, the text sqlx stores for one.
    pub fn timestamp(&self, idx: usize) -> Result<DateTime<Utc>> {
        match self {
            Row::Orm(row) => Ok(row.try_get_by_index(idx)?),
            Row::Direct(row) => match row.get(idx) {
                Some(rusqlite::types::Value::Text(s)) => {
                    parse_timestamp(s).map_err(|e| AppError::internal(format!("column {idx}: {e}")))
                }
                other => Err(AppError::internal(format!(
                    "column {idx}: {other:?} is no timestamp"
                ))),
            },
        }
    }

    pub fn text_or_null(&self, idx: usize) -> Result<Option<String>> {
        match self {
            Row::Orm(row) => Ok(row.try_get_by_index(idx)?),
            Row::Direct(row) => match row.get(idx) {
                Some(rusqlite::types::Value::Text(s)) => Ok(Some(s.clone())),
                Some(rusqlite::types::Value::Null) => Ok(None),
                other => Err(AppError::internal(format!(
                    "column {idx}: {other:?} is no text"
                ))),
            },
        }
    }
}

impl Tx {
    /// Records an event; it is announced only if the transaction commits.
    pub fn record(&mut self, event: Event) {
        self.notices.push(Notice::Event(event));
    }

    /// The backend statements are to be built for.
    pub fn backend(&self) -> DbBackend {
        match &self.txn {
            Txn::Orm(txn) => txn.get_database_backend(),
            Txn::Direct(_) => DbBackend::Sqlite,
        }
    }

    /// The first row a statement returns.
    pub async fn query_row(&self, statement: Statement) -> Result<Option<Row>> {
        Ok(match &self.txn {
            Txn::Orm(txn) => txn.query_one_raw(statement).await?.map(Row::Orm),
            Txn::Direct(txn) => txn.query_row(&statement)?.map(Row::Direct),
        })
    }

    /// Runs statements that return nothing, in order. Through sqlx, SQLite gets them as one
    /// batch: each statement sent alone is a round trip to the thread that owns the connection
    /// (two context switches), which cost more than the statements themselves. PostgreSQL's
    /// extended protocol takes one statement at a time.
    pub async fn write_all(&self, statements: impl IntoIterator<Item = Statement>) -> Result<()> {
        let txn = match &self.txn {
            Txn::Orm(txn) => txn,
            Txn::Direct(txn) => {
                for statement in statements {
                    txn.execute(&statement)?;
                }
                return Ok(());
            }
        };
        if txn.get_database_backend() != DbBackend::Sqlite {
            for statement in statements {
                txn.execute_raw(statement).await?;
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
            txn.execute_raw(batch).await?;
        }
        Ok(())
    }

    /// Announces, on commit, that a session ended, so its sockets go on every node.
    pub fn end_session(&mut self, session_id: Uuid, reason: EndReason) {
        self.notices.push(Notice::SessionEnded(session_id, reason));
    }

    /// Announces and commits. Through sea-orm it runs in its own task: if the caller goes away
    /// mid-commit (a client hung up), a transaction that commits still has its notices
    /// delivered. A direct one commits without awaiting anything.
    pub async fn commit(self) -> Result<()> {
        let Tx {
            txn,
            notices,
            bus,
            _writer,
        } = self;
        let txn = match txn {
            Txn::Orm(txn) => txn,
            Txn::Direct(txn) => {
                let gate = txn.commit()?;
                bus.committed(notices);
                drop(gate);
                return Ok(());
            }
        };
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
    /// # Panics
    /// On a transaction from [`TxFactory::begin_direct`]: such mutations send every statement
    /// through `Tx`'s own methods (a test of each one runs on SQLite).
    fn deref(&self) -> &DatabaseTransaction {
        match &self.txn {
            Txn::Orm(txn) => txn,
            Txn::Direct(_) => panic!("a direct transaction takes statements only through Tx"),
        }
    }
}
