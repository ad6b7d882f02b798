//! The checks HTTP and the Socket.IO handshake share: the `Origin` rule against cross-site
//! requests (CONTRACT §3) and the cookie session that names the caller.
use uuid::Uuid;

use crate::{
    domain::{Actor, dto, sessions},
    error::{AppError, Result},
    state::AppState,
};

/// An authenticated caller.
#[derive(Debug, Clone)]
pub struct CurrentUser {
    pub user: dto::User,
    pub session_id: Uuid,
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

impl CurrentUser {
    pub fn actor(&self) -> Actor {
        Actor {
            user_id: self.user.id,
            user_name: self.user.name.clone(),
        }
    }
}

/// Cookie header in, caller out.
pub async fn authenticate(state: &AppState, headers: &http::HeaderMap) -> Result<CurrentUser> {
    let token = session_token(headers, &state.settings.session.cookie_name)
        .ok_or(AppError::Unauthorized("Authentication required"))?;
    let known =
        sessions::authenticate_cached(&state.db, &state.sessions, &token, state.lifetimes())
            .await?
            .ok_or(AppError::Unauthorized("Session expired or revoked"))?;
    Ok(CurrentUser {
        user: known.user,
        session_id: known.session_id,
        expires_at: known.expires_at,
    })
}

/// The session token from any `Cookie` header.
pub fn session_token(headers: &http::HeaderMap, cookie_name: &str) -> Option<String> {
    headers
        .get_all(http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, value)| *name == cookie_name && !value.is_empty())
        .map(|(_, value)| value.to_string())
}

/// Every `Origin` header must be `http(s)://<Host>` or configured; none given passes.
pub fn origins_allowed(headers: &http::HeaderMap, allowed: &[String]) -> bool {
    let host = headers
        .get(http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or_default();
    headers
        .get_all(http::header::ORIGIN)
        .iter()
        .map(|v| v.to_str().unwrap_or("\u{0}"))
        .all(|origin| {
            let own = !host.is_empty()
                && (origin.strip_prefix("http://") == Some(host)
                    || origin.strip_prefix("https://") == Some(host));
            own || allowed.iter().any(|a| a == origin)
        })
}
