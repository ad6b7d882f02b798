//! Builds the whole application from `Settings` and an already-bound listener, so the binary
//! and the tests run exactly the same app (tests bind port 0).
use std::{future::Future, net::SocketAddr, sync::Arc};

use poem::{EndpointExt, Route};
use sea_orm::DatabaseConnection;
use tokio::net::TcpListener;

use tokio_util::sync::CancellationToken;

use crate::{
    api::{self, health, methods, throttle::LoginThrottle},
    bus::Bus,
    cluster::Cluster,
    db,
    domain::{passwords::Passwords, sessions, tx::TxFactory},
    drain::Drain,
    metrics::Metrics,
    pages,
    realtime::{
        self, join_reads::JoinReads, limits::SocketLimits, link::Links, rooms::Rooms,
        transport::SocketIoEndpoint,
    },
    seed,
    settings::Settings,
    state::{AppState, Inner},
};

pub struct Application {
    listener: TcpListener,
    addr: SocketAddr,
    state: AppState,
    app: poem::endpoint::BoxEndpoint<'static>,
    /// Stops the background tasks once the server has stopped.
    stop: CancellationToken,
    /// The SQLite file this node serves, locked while it runs.
    sqlite_file: Option<std::fs::File>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database: {0}")]
    Database(#[from] sea_orm::DbErr),
    #[error("demo seed: {0}")]
    Seed(String),
    #[error("joining the service: {0}")]
    Cluster(String),
    #[error("listener: {0}")]
    Io(#[from] std::io::Error),
}

impl Application {
    /// Connects, migrates, seeds (when configured) and wires everything; does not serve yet.
    pub async fn build(settings: Settings, listener: TcpListener) -> Result<Self, StartupError> {
        let (db, wal_full) = db::connect_serving(&settings.database).await?;
        let sqlite_file = db::claim_sqlite_file(&settings.database)?;
        let startup = db::startup_lock(&db).await?;
        db::migrate(&db).await?;
        let passwords = Passwords::new();
        if settings.demo.seed {
            seed::run(&db, &passwords)
                .await
                .map_err(|e| StartupError::Seed(e.to_string()))?;
        }
        startup.release().await;
        let reads = db::Reads::open(&settings.database)?;
        let mut app = Self::with_db(settings, listener, db, reads, wal_full, passwords).await?;
        app.sqlite_file = sqlite_file;
        if let Some(full) = wal_full {
            db::spawn_checkpointer(app.state.db.clone(), full, app.stop.clone());
        }
        Ok(app)
    }

    async fn with_db(
        settings: Settings,
        listener: TcpListener,
        db: DatabaseConnection,
        reads: Option<db::Reads>,
        wal_full: Option<&'static db::WalFull>,
        passwords: Passwords,
    ) -> Result<Self, StartupError> {
        let addr = listener.local_addr()?;
        let (svc, io, adapter) = realtime::build(&settings.realtime);
        let metrics = Arc::new(Metrics::new());
        let sessions = sessions::SessionCache::listening();
        let (bus, heard) = Bus::start(&db, sessions.clone()).await?;
        let stop = CancellationToken::new();
        let cluster = Cluster::join(db.clone(), bus.clone(), stop.clone())
            .await
            .map_err(|e| StartupError::Cluster(e.to_string()))?;
        let links = Links::default();
        let rooms = Rooms::new(
            db.clone(),
            cluster.clone(),
            settings.realtime.presence_interval,
            settings.realtime.history_budget,
            metrics.clone(),
            adapter,
        );
        let drain = Drain::default();
        let endpoint = SocketIoEndpoint::new(
            svc,
            links.clone(),
            io.clone(),
            settings.realtime.max_payload,
            drain.clone(),
        );
        let state = AppState::new(Inner {
            tx: TxFactory::new(db::Writer::new(db.clone(), wal_full).await?, bus),
            throttle: LoginThrottle::new(settings.auth.max_failures, settings.auth.failure_window),
            limits: SocketLimits::new(
                settings.realtime.max_sockets_per_user,
                cluster,
                metrics.clone(),
            ),
            join_reads: JoinReads::new(db.clone(), metrics.clone()),
            settings,
            db,
            reads,
            sessions,
            passwords,
            io,
            rooms,
            links: links.clone(),
            metrics,
            drain,
        });
        realtime::attach(&state, heard, stop.clone());
        spawn_housekeeping(state.clone(), stop.clone());
        let app = Route::new()
            .at("/healthz", methods::get(health::healthz))
            .at("/readyz", methods::get(health::readyz))
            .at("/metrics", methods::get(health::metrics))
            .nest(
                "/api",
                api::routes(&state.settings).around(crate::drain::hold_mutations),
            )
            .nest_no_strip("/socket.io", endpoint)
            .nest("/", pages::routes())
            .around(crate::metrics::observe_http);
        let app = api::middleware(app, state.clone()).boxed();
        Ok(Self {
            listener,
            addr,
            state,
            app,
            stop,
            sqlite_file: None,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// The node's drain: tests begin it, or stop it at once, as the signals would.
    pub fn drain(&self) -> Drain {
        self.state.drain.clone()
    }

    /// Serves until `shutdown` resolves (or the drain begins), then drains (see
    /// [`crate::drain`]): sockets closed at the transport over `server.drain_period`, then no
    /// new connections and in-flight requests finish. `server.shutdown_timeout`, counted from
    /// the start of the drain, or [`Drain::stop_now`] ends it at once.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let Application {
            listener,
            state,
            app,
            stop,
            sqlite_file,
            ..
        } = self;
        let drain = state.drain.clone();
        let server = &state.settings.server;
        let (period, timeout) = (server.drain_period, server.shutdown_timeout);
        let draining = {
            let (state, drain) = (state.clone(), drain.clone());
            async move {
                tokio::select! {
                    _ = shutdown => drain.begin(),
                    _ = drain.begun() => {}
                }
                state.metrics.draining.set(1);
                crate::drain::close_sockets(&state, period).await;
                tracing::info!("no new connections; finishing in-flight requests");
            }
        };
        let serve = crate::serve::serve(listener, app, server.header_timeout, draining);
        let deadline = async {
            drain.begun().await;
            tokio::time::sleep(timeout).await;
        };
        let served = tokio::select! {
            served = serve => served,
            _ = deadline => {
                tracing::warn!("server.shutdown_timeout reached: stopping now");
                Ok(())
            }
            _ = drain.stopped_now() => {
                tracing::warn!("stopping now, without finishing the drain");
                Ok(())
            }
        };
        stop.cancel();
        drop(sqlite_file);
        served
    }
}

/// Periodic cleanup: expired sessions and stale login-throttle entries.
fn spawn_housekeeping(state: AppState, stop: CancellationToken) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(state.settings.session.cleanup_interval);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = stop.cancelled() => return,
            }
            let grace = state.settings.realtime.session_check_interval;
            match sessions::purge_expired(&state.db, grace).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(removed = n, "expired sessions purged"),
                Err(e) => tracing::warn!(error = %e, "session purge failed"),
            }
            if let Err(e) = state.throttle.sweep(&state.db).await {
                tracing::warn!(error = %e, "login throttle sweep failed");
            }
        }
    });
}
