//! Mounting socketioxide in poem. Polling goes through poem's tower compat; a WebSocket
//! upgrade is answered here (poem's `take_upgrade`) and the raw upgraded stream handed to
//! socketioxide, because the compat layer cannot pass an upgrade through.
use poem::{
    Endpoint, IntoResponse, Request, Response,
    endpoint::TowerCompatExt,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header},
};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tower::Service as _;

use super::{
    Service,
    killswitch::{KillSwitch, Killable},
};

pub struct SocketIoEndpoint {
    svc: Service,
}

impl SocketIoEndpoint {
    pub fn new(svc: Service) -> Self {
        Self { svc }
    }
}

fn is_websocket_upgrade(req: &Request) -> bool {
    let has = |name: header::HeaderName, token: &str| {
        req.headers().get_all(name).iter().any(|v| {
            v.to_str()
                .is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        })
    };
    req.method() == poem::http::Method::GET
        && has(header::CONNECTION, "upgrade")
        && has(header::UPGRADE, "websocket")
}

/// An Engine.IO request without `sid` opens a session, which keeps the request's parts.
fn opens_session(uri: &Uri) -> bool {
    !uri.query()
        .is_some_and(|q| q.split('&').any(|kv| kv.starts_with("sid=")))
}

/// The headers the socket handshake reads (`handlers::handshake`); a socket keeps no others.
const KEPT_HEADERS: [HeaderName; 3] = [header::HOST, header::ORIGIN, header::COOKIE];

/// The URI and the kept headers, copied into their own memory. Hyper parses them as slices
/// of the connection's read buffer (8 to 16 KiB), and engineioxide keeps the parts of a
/// session's opening request for the socket's whole life: sharing them would keep that
/// buffer alive for every connected socket, about half of a socket's memory.
fn detached(uri: &Uri, headers: &HeaderMap) -> (Uri, HeaderMap) {
    let uri = Uri::try_from(uri.to_string()).unwrap_or_else(|_| uri.clone());
    let mut copy = HeaderMap::with_capacity(KEPT_HEADERS.len());
    for name in KEPT_HEADERS {
        for value in headers.get_all(&name) {
            if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
                copy.append(name.clone(), value);
            }
        }
    }
    (uri, copy)
}

impl Endpoint for SocketIoEndpoint {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        if !is_websocket_upgrade(&req) {
            if opens_session(req.uri()) {
                let (uri, headers) = detached(req.uri(), req.headers());
                *req.uri_mut() = uri;
                *req.headers_mut() = headers;
            }
            return self.svc.clone().compat().call(req).await;
        }
        let Some(key) = req.header(header::SEC_WEBSOCKET_KEY).map(str::to_owned) else {
            return Ok(StatusCode::BAD_REQUEST.into_response());
        };
        let on_upgrade = req
            .take_upgrade()
            .map_err(|_| poem::Error::from_status(StatusCode::BAD_REQUEST))?;
        let (uri, headers) = detached(req.uri(), req.headers());
        let mut parts = http::Request::builder()
            .method(req.method().clone())
            .uri(uri)
            .version(req.version());
        if let Some(parts_headers) = parts.headers_mut() {
            *parts_headers = headers;
        }
        let mut http_req = parts
            .body(())
            .map_err(|_| poem::Error::from_status(StatusCode::BAD_REQUEST))?;
        let switch = KillSwitch::default();
        http_req.extensions_mut().insert(switch.clone());
        let mut svc = self.svc.clone();
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(stream) => {
                    if let Err(e) = svc.call((Killable::new(stream, switch), http_req)).await {
                        tracing::debug!(error = %e, "websocket handshake refused");
                    }
                }
                Err(e) => tracing::debug!(error = %e, "websocket upgrade failed"),
            }
        });
        Ok(Response::builder()
            .status(StatusCode::SWITCHING_PROTOCOLS)
            .header(header::CONNECTION, "upgrade")
            .header(header::UPGRADE, "websocket")
            .header(
                header::SEC_WEBSOCKET_ACCEPT,
                derive_accept_key(key.as_bytes()),
            )
            .finish())
    }
}
