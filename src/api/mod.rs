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

/// One log line per request (Socket.IO's transport and the health probe excepted) and the
/// request id on every response. Every request pays for this, so it allocates nothing but the
/// response header: the id is made without a system call, the path is the request's own
/// (shared) `Uri`, and the span that ties a handler's own lines to the request carries the id
/// alone (the request line names the method and path).
async fn request_log<E: Endpoint>(ep: std::sync::Arc<E>, req: Request) -> poem::Result<Response> {
    let started = Instant::now();
    let id = RequestId::of(&req);
    let (method, uri) = (req.method().clone(), req.uri().clone());
    let logged = !uri.path().starts_with("/socket.io") && uri.path() != "/healthz";
    if let Some(state) = req.data::<AppState>() {
        state.metrics.http_requests.inc();
    }
    let called = if logged {
        let span = tracing::info_span!("http", request_id = id.as_str());
        ep.call(req).instrument(span).await
    } else {
        ep.call(req).await
    };
    let mut resp = match called {
        Ok(resp) => resp.into_response(),
        Err(err) => error_response(err),
    };
    if logged {
        let (status, path) = (resp.status().as_u16(), uri.path());
        // Tenths of a millisecond, without formatting a string for it.
        let ms = (started.elapsed().as_micros() / 100) as f64 / 10.0;
        tracing::info!(request_id = id.as_str(), %method, path, status, ms, "request");
    }
    if let Ok(value) = http::HeaderValue::from_str(id.as_str()) {
        resp.headers_mut().insert("x-request-id", value);
    }
    Ok(resp)
}

/// The client's `X-Request-Id` when it is short and plain, else a new one: this process's
/// random half and a counter, written as a UUID.
struct RequestId {
    text: [u8; 64],
    len: usize,
}

impl RequestId {
    fn of(req: &Request) -> Self {
        let given = req.header("x-request-id").filter(|id| {
            id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
        let mut made = uuid::Uuid::encode_buffer();
        let id = match given {
            Some(id) => id,
            None => {
                static PROCESS: std::sync::LazyLock<u64> = std::sync::LazyLock::new(rand::random);
                static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let id = uuid::Uuid::from_u64_pair(*PROCESS, n);
                &*id.hyphenated().encode_lower(&mut made)
            }
        };
        let mut text = [0; 64];
        text[..id.len()].copy_from_slice(id.as_bytes());
        Self {
            text,
            len: id.len(),
        }
    }

    fn as_str(&self) -> &str {
        // Only ASCII was copied in.
        std::str::from_utf8(&self.text[..self.len]).unwrap_or_default()
    }
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
