//! Engine.IO long-polling, in front of engineioxide.
//!
//! engineioxide cuts a poll's answer at `max_payload` and keeps the packet that did not fit
//! for the next poll; if the session upgrades to WebSocket meanwhile, that packet is lost
//! (its WebSocket writer never looks at it; engineioxide 0.17.9, `transport/ws.rs`
//! `forward_to_socket`). So the engine is given a limit no answer reaches, and the
//! contract's limit on what a client may send is enforced here instead: a larger request is
//! refused with 413 and its socket disconnected, and the open packet tells the client the
//! real limit, which it uses to split what it sends.
use poem::{
    Endpoint, Request, Response, endpoint::TowerCompatExt, http::StatusCode,
    web::headers::HeaderMapExt,
};

use super::transport::{SocketIoEndpoint, detached, session_of};

/// The limit engineioxide works with: beyond any answer a session's buffer can hold.
pub const ENGINE_MAX_PAYLOAD: u64 = 1 << 30;

impl SocketIoEndpoint {
    pub(super) async fn polling(&self, mut req: Request) -> poem::Result<Response> {
        let Some(sid) = session_of(req.uri()) else {
            let (uri, headers) = detached(req.uri(), req.headers());
            *req.uri_mut() = uri;
            *req.headers_mut() = headers;
            let opened = self.svc.clone().compat().call(req).await?;
            return Ok(self.with_real_limit(opened).await);
        };
        let is_poll = req.method() == poem::http::Method::GET;
        if req.method() == poem::http::Method::POST {
            let declared = req
                .headers()
                .typed_get::<poem::web::headers::ContentLength>()
                .map(|c| c.0);
            let body = req.take_body();
            let bytes = match declared {
                Some(len) if len > self.max_payload => None,
                _ => body.into_bytes_limit(self.max_payload as usize).await.ok(),
            };
            let Some(bytes) = bytes else {
                tracing::warn!(%sid, "polling request over realtime.max_payload refused");
                if let Some(socket) = self.io.get_socket(sid) {
                    let _ = socket.disconnect();
                }
                return Ok(StatusCode::PAYLOAD_TOO_LARGE.into());
            };
            req.set_body(bytes);
        }
        let Some(link) = self.links.get(sid) else {
            return self.svc.clone().compat().call(req).await;
        };
        if link.is_killed() {
            return Ok(session_unknown());
        }
        let svc = self.svc.clone().compat();
        let answered = tokio::select! {
            resp = svc.call(req) => resp,
            _ = link.killed() => return Ok(session_unknown()),
        };
        // A poll takes everything the session's buffer holds; a post takes nothing from it.
        if is_poll {
            link.drained();
        }
        answered
    }

    /// The open packet with `maxPayload` set to `realtime.max_payload`.
    async fn with_real_limit(&self, opened: Response) -> Response {
        let (mut parts, body) = opened.into_parts();
        parts.headers.remove(poem::http::header::CONTENT_LENGTH);
        let Ok(text) = body.into_string().await else {
            return Response::from_parts(parts, poem::Body::empty());
        };
        let engine = format!(r#""maxPayload":{ENGINE_MAX_PAYLOAD}"#);
        let real = format!(r#""maxPayload":{}"#, self.max_payload);
        Response::from_parts(parts, text.replace(&engine, &real).into())
    }
}

/// Engine.IO's answer to a request for a session it does not have.
fn session_unknown() -> Response {
    Response::builder()
        .status(StatusCode::BAD_REQUEST)
        .content_type("application/json")
        .body(r#"{"code":1,"message":"Session ID unknown"}"#)
}
