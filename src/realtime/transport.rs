//! Mounting socketioxide in poem. Polling goes through poem's tower compat ([`super::polling`]);
//! a WebSocket upgrade is answered here and the connection's TCP stream (see [`crate::serve`])
//! handed to socketioxide, because the compat layer cannot pass an upgrade through. Both go
//! through the session's [`Link`]: a killed session's polls are refused and its WebSocket
//! fails, and every answered poll or written frame frees room for a waiting replay.
use std::sync::Arc;

use poem::{
    Endpoint, IntoResponse, Request, Response,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header},
};
use socketioxide::socket::Sid;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tower::Service as _;

use crate::{drain::Drain, error::AppError, serve::Upgrade};

use super::{
    Service, SocketIo,
    link::{Link, Linked, Links, Registration},
};

pub struct SocketIoEndpoint {
    pub(super) svc: Service,
    pub(super) links: Links,
    pub(super) io: SocketIo,
    /// `realtime.max_payload`: the largest polling request accepted.
    pub(super) max_payload: u64,
    /// A draining node opens no new session.
    drain: Drain,
}

impl SocketIoEndpoint {
    pub fn new(svc: Service, links: Links, io: SocketIo, max_payload: u64, drain: Drain) -> Self {
        Self {
            svc,
            links,
            io,
            max_payload,
            drain,
        }
    }
}

/// How a WebSocket reaches its link.
enum WsLink {
    Upgrade(Registration),
    Open(Arc<Link>),
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

/// The session an Engine.IO request belongs to; a request without one opens a session, which
/// keeps the request's parts.
pub(super) fn session_of(uri: &Uri) -> Option<Sid> {
    uri.query()?
        .split('&')
        .find_map(|kv| kv.strip_prefix("sid="))
        .and_then(|sid| sid.parse().ok())
}

/// The headers the socket handshake reads (`handlers::handshake`); a socket keeps no others.
const KEPT_HEADERS: [HeaderName; 3] = [header::HOST, header::ORIGIN, header::COOKIE];

/// The URI and the kept headers, copied into their own memory. Hyper parses them as slices
/// of the connection's read buffer (8 to 16 KiB), and engineioxide keeps the parts of a
/// session's opening request for the socket's whole life: sharing them would keep that
/// buffer alive for every connected socket, about half of a socket's memory.
pub(super) fn detached(uri: &Uri, headers: &HeaderMap) -> (Uri, HeaderMap) {
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

impl SocketIoEndpoint {
    /// Whether a request for `sid` belongs here. While draining, nothing else does: neither a
    /// new session nor one this node does not know. A balancer that keeps each client on one
    /// node sends a reconnecting client's requests back here while the node drains; its new
    /// session lives on the node the refused handshake moved on to, and a 503 moves these
    /// requests there too, where a 400 (unknown session) would fail it until this node exits.
    fn serves(&self, sid: Option<Sid>) -> bool {
        sid.is_some_and(|sid| self.links.get(sid).is_some())
    }
}

impl Endpoint for SocketIoEndpoint {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        if self.drain.is_draining() && !self.serves(session_of(req.uri())) {
            // A 503, not a Socket.IO refusal: a balancer retries it on another node, and
            // clients count it as a failed attempt and reconnect later.
            return Ok(AppError::Unavailable.into_response());
        }
        if !is_websocket_upgrade(&req) {
            return self.polling(req).await;
        }
        let sid = session_of(req.uri());
        let Some(key) = req.header(header::SEC_WEBSOCKET_KEY).map(str::to_owned) else {
            return Ok(StatusCode::BAD_REQUEST.into_response());
        };
        let upgrade = req
            .extensions_mut()
            .remove::<Upgrade>()
            .ok_or_else(|| poem::Error::from_status(StatusCode::BAD_REQUEST))?;
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
        // An upgrade joins its session's link; a new WebSocket session brings its own, which
        // the handshake registers once the session has an id.
        let stream = match sid {
            Some(sid) => {
                let registration = self.links.register(sid, None);
                WsLink::Upgrade(registration)
            }
            None => {
                let link = Arc::new(Link::default());
                http_req.extensions_mut().insert(link.clone());
                WsLink::Open(link)
            }
        };
        let mut svc = self.svc.clone();
        tokio::spawn(async move {
            let Ok(upgraded) = upgrade.stream().await.inspect_err(|e| {
                tracing::debug!(error = %e, "websocket upgrade failed");
            }) else {
                return;
            };
            let stream = match stream {
                WsLink::Upgrade(registration) => Linked::upgrading(upgraded, registration),
                WsLink::Open(link) => Linked::new(upgraded, link),
            };
            if let Err(e) = svc.call((stream, http_req)).await {
                tracing::debug!(error = %e, "websocket handshake refused");
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
