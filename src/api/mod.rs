//! The HTTP API (CONTRACT §5): one module per resource, each ending in its routes, plus the
//! middleware every request passes (request log, `Origin` guard, body limit, JSON errors).
pub mod auth;
pub mod body;
pub mod events;
pub mod extract;
pub mod health;
pub mod members;
pub mod methods;
pub mod openapi;
pub mod sources;
pub mod throttle;
pub mod vaults;

use std::time::Instant;

use poem::{Endpoint, EndpointExt, IntoResponse, Request, Response, Route, http::StatusCode};
use tracing::Instrument;

use crate::{error::AppError, security::origins_allowed, settings::Settings, state::AppState};
use openapi::ApiRoutes;

/// The REST routes of CONTRACT §3 and §5, `/openapi.json` describing them, and `/docs`
/// rendering it.
pub fn routes(settings: &Settings) -> Route {
    let api = auth::routes(ApiRoutes::default());
    let api = vaults::routes(api);
    let api = members::routes(api);
    let api = sources::routes(api);
    let api = events::routes(api);
    api.into_route(&settings.session.cookie_name)
        .nest("/docs", crate::pages::docs::routes())
}

/// Wraps the whole app: request id and one log line per request, the `Origin` guard and the
/// contract's JSON for every error that reaches the top.
pub fn middleware(
    app: impl Endpoint + 'static,
    state: AppState,
) -> impl Endpoint<Output = Response> {
    app.catch_all_error(|err: poem::Error| async move { error_response(err) })
        .around(|ep, req| async move { origin_guard(ep, req).await })
        .around(|ep, req| async move { request_log(ep, req).await })
        .data(state)
        .map_to_response()
}

async fn request_log<E: Endpoint>(ep: std::sync::Arc<E>, req: Request) -> poem::Result<Response> {
    let started = Instant::now();
    let request_id = req
        .header("x-request-id")
        .filter(|id| id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
        .map(str::to_string)
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
    let (method, path) = (req.method().clone(), req.uri().path().to_string());
    if let Some(state) = req.data::<AppState>() {
        state.metrics.http_requests.inc();
    }
    let span = tracing::info_span!("http", %request_id, %method, %path);
    let mut resp = match ep.call(req).instrument(span).await {
        Ok(resp) => resp.into_response(),
        Err(err) => error_response(err),
    };
    let status = resp.status().as_u16();
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if !path.starts_with("/socket.io") && path != "/healthz" {
        tracing::info!(%request_id, %method, %path, status, ms = format!("{ms:.1}"), "request");
    }
    if let Ok(value) = request_id.parse() {
        resp.headers_mut().insert("x-request-id", value);
    }
    Ok(resp)
}

/// Refuses requests whose `Origin` is neither the server's own nor configured (CSRF, and the
/// HTTP half of cross-site WebSocket hijacking; the socket handshake checks it again).
async fn origin_guard<E: Endpoint>(ep: std::sync::Arc<E>, req: Request) -> poem::Result<Response> {
    // The Socket.IO handshake checks the same rule itself, to answer with a `connect_error`.
    let socket = req.uri().path().starts_with("/socket.io/");
    if let Some(state) = req.data::<AppState>().filter(|_| !socket)
        && !origins_allowed(req.headers(), &state.settings.server.allowed_origins)
    {
        tracing::warn!(origin = ?req.headers().get_all("origin").iter().collect::<Vec<_>>(), "foreign origin refused");
        return Ok(AppError::Forbidden("Origin not allowed").into_response());
    }
    ep.call(req).await.map(IntoResponse::into_response)
}

/// Any error as the contract's JSON. Errors we built keep their body; poem's own (unknown
/// route, bad path) are mapped by status. A wrong method is ours ([`methods`]) on every route.
pub fn error_response(err: poem::Error) -> Response {
    let resp = err.into_response();
    let is_json = resp
        .headers()
        .get("content-type")
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if is_json || resp.status().is_success() || resp.status().is_redirection() {
        return resp;
    }
    let app = match resp.status() {
        StatusCode::NOT_FOUND => AppError::NotFound("Not found"),
        StatusCode::METHOD_NOT_ALLOWED => AppError::MethodNotAllowed {
            allow: header_text(&resp, "allow"),
        },
        StatusCode::PAYLOAD_TOO_LARGE => AppError::PayloadTooLarge,
        StatusCode::UNSUPPORTED_MEDIA_TYPE => AppError::UnsupportedMediaType,
        StatusCode::UNAUTHORIZED => AppError::Unauthorized("Authentication required"),
        StatusCode::FORBIDDEN => AppError::Forbidden("Forbidden"),
        StatusCode::BAD_REQUEST => AppError::field("request", "is malformed"),
        StatusCode::SERVICE_UNAVAILABLE => AppError::Unavailable,
        s if s.is_client_error() => AppError::field("request", "is malformed"),
        _ => AppError::internal(format!("unhandled error status {}", resp.status())),
    };
    app.into_response()
}

fn header_text(resp: &Response, name: &str) -> String {
    let value = resp.headers().get(name).and_then(|v| v.to_str().ok());
    value.unwrap_or_default().to_string()
}
