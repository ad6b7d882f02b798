//! `/healthz` (the process is up), `/readyz` (the database answers and the node is not
//! draining) and `/metrics`.
use poem::{
    IntoResponse, Response, handler,
    web::{Data, Json},
};
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
    Response::builder()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(state.metrics.render())
}
