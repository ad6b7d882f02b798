//! Write transactions. SQLite allows one writer at a time: a write transaction starts with
//! `BEGIN IMMEDIATE`, so it holds the write lock from its first statement (a deferred one that
//! read first could fail with `SQLITE_BUSY_SNAPSHOT` when another connection committed
//! meanwhile), and in-process writers queue at a gate instead of spinning in SQLite's busy
//! handler. PostgreSQL needs neither: row locks order its writers.
//!
//! On SQLite the writers also share one connection of their own. A connection empties its page
//! cache whenever it starts a transaction after another connection wrote, so a write made on
//! whichever pooled connection came first read every page it touched again (a system call
//! each); the one connection that makes every gated write keeps its pages. Mutations that
//! only run statements through `Tx`'s own methods (a new source) take a second one, behind
//! the same gate, on the calling thread (see [`super::direct`]).
use std::sync::Arc;

use sea_orm::{
    DatabaseConnection, DatabaseTransaction, SqliteTransactionMode, SqlxSqliteConnector,
    TransactionOptions, TransactionTrait, sqlx,
};
use tokio::sync::{Mutex, OwnedMutexGuard};

use super::{
    WalFull,
    direct::{Direct, DirectTxn},
    is_sqlite, prepare_sqlite,
};

#[derive(Clone)]
pub struct Writer {
    db: DatabaseConnection,
    gate: Option<Arc<Mutex<()>>>,
    direct: Option<Direct>,
}

/// Held until the transaction has committed or rolled back.
pub type WriterGuard = Option<OwnedMutexGuard<()>>;

impl Writer {
    /// Writes through `db`; on SQLite through a connection of their own, opened with `db`'s
    /// options (and, with `wal_full`, leaving checkpoints to the checkpointer as `db` does).
    pub async fn new(
        db: DatabaseConnection,
        wal_full: Option<&'static WalFull>,
    ) -> Result<Self, sea_orm::DbErr> {
        if !is_sqlite(&db) {
            return Ok(Self {
                db,
                gate: None,
                direct: None,
            });
        }
        let options = db.get_sqlite_connection_pool().connect_options();
        let path = options.get_filename().to_string_lossy().into_owned();
        // An in-memory database is the pool's own: another connection would open another.
        let direct = (!path.is_empty() && path != ":memory:")
            .then(|| Direct::open(&path, wal_full))
            .transpose()
            .map_err(|e| sea_orm::DbErr::Custom(format!("direct writer connection: {e}")))?;
        let pool = sqlx::pool::PoolOptions::<sqlx::Sqlite>::new()
            .max_connections(1)
            .min_connections(1)
            .test_before_acquire(false)
            .idle_timeout(None)
            .max_lifetime(None)
            .after_connect(move |conn, _| Box::pin(prepare_sqlite(conn, wal_full)))
            .connect_with((*options).clone())
            .await
            .map_err(|e| sea_orm::DbErr::Custom(format!("writer connection: {e}")))?;
        let gate = Arc::new(Mutex::new(()));
        if let Some(full) = wal_full {
            full.finish_behind(&gate);
        }
        Ok(Self {
            db: SqlxSqliteConnector::from_sqlx_sqlite_pool(pool),
            gate: Some(gate),
            direct,
        })
    }

    pub async fn begin(&self) -> Result<(DatabaseTransaction, WriterGuard), sea_orm::DbErr> {
        let Some(gate) = &self.gate else {
            return Ok((self.db.begin().await?, None));
        };
        let guard = gate.clone().lock_owned().await;
        let options = TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
            ..Default::default()
        };
        Ok((self.db.begin_with_options(options).await?, Some(guard)))
    }

    /// On SQLite, a transaction run on the calling thread (see [`super::direct`]); `None` on
    /// PostgreSQL, whose statements are network round trips anyway.
    pub async fn begin_direct(&self) -> Result<Option<DirectTxn>, sea_orm::DbErr> {
        let (Some(gate), Some(direct)) = (&self.gate, &self.direct) else {
            return Ok(None);
        };
        let guard = gate.clone().lock_owned().await;
        direct
            .begin(guard)
            .map(Some)
            .map_err(|e| sea_orm::DbErr::Custom(format!("BEGIN on the direct connection: {e}")))
    }
}
