//! Draining a node before it stops (CONTRACT §1, §7 "Restarts").
//!
//! From the first signal readiness fails and new Socket.IO sessions are refused, so a balancer
//! moves traffic elsewhere while everything already here keeps working. Mutations that began
//! before the drain commit first; then the node's sockets are closed at the transport (never
//! with a DISCONNECT or CLOSE packet, which would keep official clients from reconnecting),
//! spread evenly over `server.drain_period` so that their reconnects do not land on the
//! other nodes in one instant. A second signal, or `server.shutdown_timeout`, stops at once.
use std::{
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use poem::{Endpoint, IntoResponse, Request, Response, http::Method};
use tokio::{
    sync::{OwnedRwLockReadGuard, RwLock},
    time::Instant,
};
use tokio_util::sync::CancellationToken;

use crate::{realtime::dispatch, state::AppState};

/// The node's drain state, shared by every part that behaves differently while draining.
#[derive(Clone, Default)]
pub struct Drain(Arc<Inner>);

#[derive(Default)]
struct Inner {
    begun: CancellationToken,
    now: CancellationToken,
    /// Read-held by each mutation in flight; the drain takes it once for writing, which waits
    /// for every mutation that began before it (tokio's lock is fair: later ones queue behind).
    work: Arc<RwLock<()>>,
    in_flight: Arc<AtomicUsize>,
}

/// A mutation's hold on the drain; dropped when it has finished.
pub struct Mutation {
    _read: OwnedRwLockReadGuard<()>,
    in_flight: Arc<AtomicUsize>,
}

impl Drop for Mutation {
    fn drop(&mut self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Drain {
    /// Starts draining (again: nothing happens).
    pub fn begin(&self) {
        self.0.begun.cancel();
    }

    pub fn is_draining(&self) -> bool {
        self.0.begun.is_cancelled()
    }

    /// Resolves once draining has begun.
    pub async fn begun(&self) {
        self.0.begun.cancelled().await
    }

    /// Ends the drain and the server at once (a second signal).
    pub fn stop_now(&self) {
        self.0.now.cancel();
    }

    /// Resolves once [`Drain::stop_now`] was called.
    pub async fn stopped_now(&self) {
        self.0.now.cancelled().await
    }

    /// Held by a mutation while it runs, so the drain lets it commit before closing sockets.
    pub async fn mutation(&self) -> Mutation {
        let read = self.0.work.clone().read_owned().await;
        self.0.in_flight.fetch_add(1, Ordering::SeqCst);
        Mutation {
            _read: read,
            in_flight: self.0.in_flight.clone(),
        }
    }

    /// Mutations running now.
    pub fn mutations_in_flight(&self) -> usize {
        self.0.in_flight.load(Ordering::SeqCst)
    }

    /// Waits for the mutations that began before now.
    async fn settle(&self) {
        drop(self.0.work.write().await);
    }
}

/// Lets each REST mutation in flight finish before the drain closes sockets (reads need not).
pub async fn hold_mutations<E: Endpoint>(ep: Arc<E>, req: Request) -> poem::Result<Response> {
    let reads = [Method::GET, Method::HEAD, Method::OPTIONS];
    let guard = match req.data::<AppState>() {
        Some(state) if !reads.contains(req.method()) => Some(state.drain.mutation().await),
        _ => None,
    };
    let resp = ep.call(req).await.map(IntoResponse::into_response);
    drop(guard);
    resp
}

/// Closes this node's sockets at the transport, spread over `period`; returns once every
/// socket is closed.
pub async fn close_sockets(state: &AppState, period: Duration) {
    tracing::info!("draining started: readiness fails and new sockets are refused");
    state.drain.settle().await;
    let sockets = state.io.sockets();
    let total = sockets.len();
    state.metrics.draining_sockets.set(total as i64);
    tracing::info!(
        sockets = total,
        period_ms = period.as_millis() as u64,
        "closing sockets at the transport"
    );
    let start = Instant::now();
    let mut closed = 0;
    for (i, socket) in sockets.into_iter().enumerate() {
        // The i-th socket goes at (i + 1) / total of the period: the last at its end.
        tokio::time::sleep_until(start + period.mul_f64((i + 1) as f64 / total as f64)).await;
        if dispatch::close_at_transport(&state.rooms, &socket) {
            closed += 1;
        }
        state.metrics.draining_sockets.set((total - i - 1) as i64);
        if (i + 1) % (total / 10).max(1) == 0 && i + 1 < total {
            tracing::info!(closed, total, "draining: sockets closed so far");
        }
    }
    // Sessions that finished their Socket.IO handshake after the drain began.
    for socket in state.io.sockets() {
        if dispatch::close_at_transport(&state.rooms, &socket) {
            closed += 1;
        }
    }
    state.metrics.draining_sockets.set(0);
    tracing::info!(closed, "draining done: every socket closed");
}
