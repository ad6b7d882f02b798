//! Request extractors: the signed-in user (the same session check the socket handshake uses),
//! JSON bodies (415/413/400 in the contract's format) and path ids.
use poem::{FromRequest, Request, RequestBody};
use serde::de::DeserializeOwned;
use uuid::Uuid;

pub use crate::security::CurrentUser;
use crate::{
    domain::input,
    error::{AppError, Result},
    security::authenticate,
    state::AppState,
};

fn state(req: &Request) -> &AppState {
    req.data::<AppState>()
        .expect("AppState is attached to every route")
}

impl<'a> FromRequest<'a> for CurrentUser {
    async fn from_request(req: &'a Request, _: &mut RequestBody) -> poem::Result<Self> {
        Ok(authenticate(state(req), req.headers()).await?)
    }
}

/// A JSON body, read up to `server.max_body_bytes`.
pub struct JsonBody<T>(pub T);

impl<'a, T: DeserializeOwned> FromRequest<'a> for JsonBody<T> {
    async fn from_request(req: &'a Request, body: &mut RequestBody) -> poem::Result<Self> {
        let is_json = req
            .content_type()
            .and_then(|ct| ct.split(';').next())
            .is_some_and(|ct| {
                let ct = ct.trim().to_ascii_lowercase();
                ct == "application/json"
                    || (ct.starts_with("application/") && ct.ends_with("+json"))
            });
        if !is_json {
            return Err(AppError::UnsupportedMediaType.into());
        }
        let limit = state(req).settings.server.max_body_bytes;
        let declared = req
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|len| len > limit) {
            return Err(AppError::PayloadTooLarge.into());
        }
        let bytes = body
            .take()?
            .into_bytes_limit(limit)
            .await
            .map_err(|e| match e {
                poem::error::ReadBodyError::PayloadTooLarge => AppError::PayloadTooLarge,
                _ => AppError::field("body", "could not be read"),
            })?;
        Ok(JsonBody(input::from_slice(&bytes)?))
    }
}

/// A path id; a malformed one names nothing that exists, so it is a 404.
pub fn path_id(raw: &str, what: &'static str) -> Result<Uuid> {
    Uuid::parse_str(raw).map_err(|_| AppError::NotFound(what))
}
