//! Mounting socketioxide in poem. Polling goes through poem's tower compat; a WebSocket
//! upgrade is answered here (poem's `take_upgrade`) and the raw upgraded stream handed to
//! socketioxide, because the compat layer cannot pass an upgrade through. Both paths go
//! through the session's [`Link`]: a killed session's polls are refused and its WebSocket
//! fails, and every answered poll or written frame frees room for a waiting replay.
use poem::{
    Endpoint, IntoResponse, Request, Response,
    endpoint::TowerCompatExt,
    http::{HeaderMap, HeaderName, HeaderValue, StatusCode, Uri, header},
};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tower::Service as _;

use std::sync::Arc;

use socketioxide::socket::Sid;

use super::{
    Service,
    link::{Link, Linked, Links},
};

pub struct SocketIoEndpoint {
    svc: Service,
    links: Links,
}

impl SocketIoEndpoint {
    pub fn new(svc: Service, links: Links) -> Self {
        Self { svc, links }
    }

    /// A poll of an open session, through its link.
    async fn poll(&self, req: Request, link: Arc<Link>) -> poem::Result<Response> {
        if link.is_killed() {
            return Ok(session_unknown());
        }
        let svc = self.svc.clone().compat();
        let answered = tokio::select! {
            resp = svc.call(req) => resp,
            _ = link.killed() => return Ok(session_unknown()),
        };
        link.drained();
        answered
    }
}

/// How a WebSocket reaches its link.
enum WsLink {
    Upgrade(super::link::Registration),
    Open(Arc<Link>),
}

/// Engine.IO's answer to a request for a session it does not have.
fn session_unknown() -> Response {
    Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .content_type("application/json")
        .body(r#"{"code":1,"message":"Session ID unknown"}"#)
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
fn session_of(uri: &Uri) -> Option<Sid> {
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
        let sid = session_of(req.uri());
        if !is_websocket_upgrade(&req) {
            if let Some(link) = sid.and_then(|sid| self.links.get(sid)) {
                return self.poll(req, link).await;
            }
            if sid.is_none() {
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
            let Ok(upgraded) = on_upgrade.await.inspect_err(|e| {
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
