//! The joins' reads of the caller's role and the vault's latest `seq`
//! ([`access::roles_and_latest`]), batched: in a reconnect storm thousands of joins ask at
//! once, and handing each query to the database's worker costs more than the query itself.
//!
//! Whoever asks while no read is in flight starts one at once (no timer: a lone join waits for
//! nothing more than its own query). Who asks while one is in flight waits for the next, which
//! answers everyone who asked meanwhile in one query per [`CHUNK`] pairs.
//!
//! Freshness is exactly that of one query per join: a join is answered only by a query that
//! *started after* it asked (the queue is taken before each query begins), so a member removed
//! before the join asked is never admitted. The reads run in a task of their own, so a join
//! whose future is dropped never stops them, and an error reaches every join it answered.
use std::{
    collections::HashMap,
    mem,
    sync::{Arc, Mutex},
};

use sea_orm::DatabaseConnection;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::{
    domain::{Role, access},
    error::{AppError, Result},
    metrics::Metrics,
};

/// Pairs per query: two bound parameters each, well under either backend's limit.
const CHUNK: usize = 250;

type Answer = Result<Option<(Role, i64)>>;
type Waiter = ((Uuid, Uuid), oneshot::Sender<Answer>);

#[derive(Clone)]
pub struct JoinReads(Arc<Inner>);

struct Inner {
    db: DatabaseConnection,
    metrics: Arc<Metrics>,
    queue: Mutex<Queue>,
}

#[derive(Default)]
struct Queue {
    reading: bool,
    waiting: Vec<Waiter>,
}

impl JoinReads {
    pub fn new(db: DatabaseConnection, metrics: Arc<Metrics>) -> Self {
        Self(Arc::new(Inner {
            db,
            metrics,
            queue: Mutex::default(),
        }))
    }

    /// The caller's role in the vault and its latest `seq`, as of a moment after this call;
    /// `None` if the caller is not a member.
    pub async fn role_and_latest(&self, vault_id: Uuid, user_id: Uuid) -> Answer {
        let (tx, rx) = oneshot::channel();
        let start = {
            let mut queue = self.0.queue.lock().unwrap();
            queue.waiting.push(((vault_id, user_id), tx));
            !mem::replace(&mut queue.reading, true)
        };
        if start {
            tokio::spawn(self.clone().read_while_asked());
        }
        // The reader answers everyone it took before it lets go of the queue.
        rx.await.map_err(|_| AppError::Unavailable)?
    }

    /// Answers what is waiting, then what arrived meanwhile, until nothing is.
    async fn read_while_asked(self) {
        loop {
            let mut waiting = {
                let mut queue = self.0.queue.lock().unwrap();
                if queue.waiting.is_empty() {
                    queue.reading = false;
                    return;
                }
                mem::take(&mut queue.waiting)
            };
            while !waiting.is_empty() {
                let rest = waiting.split_off(waiting.len().min(CHUNK));
                self.answer(waiting).await;
                waiting = rest;
            }
        }
    }

    async fn answer(&self, chunk: Vec<Waiter>) {
        let mut pairs: Vec<_> = chunk.iter().map(|(key, _)| *key).collect();
        pairs.sort_unstable();
        pairs.dedup();
        self.0.metrics.join_access_reads.inc();
        match access::roles_and_latest(&self.0.db, &pairs).await {
            Ok(found) => {
                let found: HashMap<_, _> = found.into_iter().collect();
                for (key, reply) in chunk {
                    let _ = reply.send(Ok(found.get(&key).copied()));
                }
            }
            Err(err) => {
                // The cause is logged once, here; each join gets a copy that shows no more.
                if let AppError::Internal(cause) = &err {
                    tracing::error!(error = %cause, "the joins' access read failed");
                }
                for (_, reply) in chunk {
                    let copy = match err {
                        AppError::Unavailable => AppError::Unavailable,
                        _ => AppError::internal("the joins' access read failed (logged)"),
                    };
                    let _ = reply.send(Err(copy));
                }
            }
        }
    }
}
