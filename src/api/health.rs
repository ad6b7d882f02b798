//! `/healthz` (the process is up), `/readyz` (the database answers and the node is not
//! draining) and `/metrics`.
use poem::{
    IntoResponse, Response, handler,
    web::{Data, Json},
};
use sea_orm::{DatabaseConnection, DbBackend};
use serde_json::json;

use crate::{error::AppError, state::AppState};

#[handler]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({ "status": "ok" }))
}

#[handler]
pub async fn readyz(state: Data<&AppState>) -> Response {
    if state.drain.is_draining() {
        return AppError::Unavailable.into_response();
    }
    let ping = tokio::time::timeout(std::time::Duration::from_secs(2), state.db.ping()).await;
    match ping {
        Ok(Ok(())) => Json(json!({ "status": "ready" })).into_response(),
        _ => AppError::Unavailable.into_response(),
    }
}

#[handler]
pub async fn metrics(state: Data<&AppState>) -> Response {
    let m = &state.metrics;
    m.open_rooms.set(state.rooms.len() as i64);
    let (size, idle) = pool_stats(&state.db);
    m.db_pool_in_use
        .set(i64::from(size).saturating_sub(idle as i64));
    m.db_pool_idle.set(idle as i64);
    m.db_pool_max
        .set(i64::from(state.settings.database.max_connections));
    Response::builder()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.render())
}

/// Connections open in the pool, and how many of them are idle.
fn pool_stats(db: &DatabaseConnection) -> (u32, usize) {
    match db.get_database_backend() {
        DbBackend::Postgres => {
            let pool = db.get_postgres_connection_pool();
            (pool.size(), pool.num_idle())
        }
        _ => {
            let pool = db.get_sqlite_connection_pool();
            (pool.size(), pool.num_idle())
        }
    }
}
