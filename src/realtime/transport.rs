//! Mounting socketioxide in poem. Polling goes through poem's tower compat; a WebSocket
//! upgrade is answered here (poem's `take_upgrade`) and the raw upgraded stream handed to
//! socketioxide, because the compat layer cannot pass an upgrade through.
use poem::{
    Endpoint, IntoResponse, Request, Response,
    endpoint::TowerCompatExt,
    http::{StatusCode, header},
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

impl Endpoint for SocketIoEndpoint {
    type Output = Response;

    async fn call(&self, req: Request) -> poem::Result<Response> {
        if !is_websocket_upgrade(&req) {
            return self.svc.clone().compat().call(req).await;
        }
        let Some(key) = req.header(header::SEC_WEBSOCKET_KEY).map(str::to_owned) else {
            return Ok(StatusCode::BAD_REQUEST.into_response());
        };
        let on_upgrade = req
            .take_upgrade()
            .map_err(|_| poem::Error::from_status(StatusCode::BAD_REQUEST))?;
        let mut parts = http::Request::builder()
            .method(req.method().clone())
            .uri(req.uri().clone())
            .version(req.version());
        if let Some(headers) = parts.headers_mut() {
            *headers = req.headers().clone();
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
