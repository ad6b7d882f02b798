//! Shared application state, cloned cheaply into every handler.
use std::sync::Arc;

use crate::realtime::SocketIo;
use sea_orm::DatabaseConnection;

use crate::{
    api::throttle::LoginThrottle,
    domain::{
        passwords::Passwords,
        sessions::{Lifetimes, SessionCache},
        tx::TxFactory,
    },
    drain::Drain,
    error::Result,
    metrics::Metrics,
    realtime::{join_reads::JoinReads, limits::SocketLimits, link::Links, rooms::Rooms},
    settings::Settings,
};

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub settings: Settings,
    pub db: DatabaseConnection,
    /// On SQLite, the hottest reads without sqlx's worker thread (`None` on PostgreSQL).
    pub reads: Option<crate::db::Reads>,
    /// Sessions already read, answered without the database while the bus allows it.
    pub sessions: SessionCache,
    pub tx: TxFactory,
    pub passwords: Passwords,
    pub throttle: LoginThrottle,
    pub io: SocketIo,
    pub rooms: Rooms,
    /// The joins' role reads, batched while one is in flight.
    pub join_reads: JoinReads,
    pub links: Links,
    pub limits: SocketLimits,
    pub metrics: Arc<Metrics>,
    pub drain: Drain,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

/// A handle that does not keep the state alive: Socket.IO handlers live inside `io`, which
/// the state owns, so they hold this to avoid a reference cycle.
#[derive(Clone)]
pub struct WeakState(std::sync::Weak<Inner>);

impl WeakState {
    pub fn upgrade(&self) -> Option<AppState> {
        self.0.upgrade().map(AppState)
    }
}

impl AppState {
    pub fn new(inner: Inner) -> Self {
        Self(Arc::new(inner))
    }

    pub fn downgrade(&self) -> WeakState {
        WeakState(Arc::downgrade(&self.0))
    }

    pub async fn begin(&self) -> Result<crate::domain::Tx> {
        self.tx.begin().await
    }

    /// See [`crate::domain::TxFactory::begin_direct`].
    pub async fn begin_direct(&self) -> Result<crate::domain::Tx> {
        self.tx.begin_direct().await
    }

    pub fn lifetimes(&self) -> Lifetimes {
        Lifetimes {
            ttl: self.settings.session.ttl,
            absolute: self.settings.session.absolute_lifetime,
        }
    }
}
