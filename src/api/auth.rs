//! `/api/auth`: register, login, logout, session (CONTRACT §3).
use poem::{
    IntoResponse, Request, Response, handler,
    http::StatusCode,
    web::{Data, Json},
};
use serde::Deserialize;
use std::net::IpAddr;
use utoipa::ToSchema;

use super::{
    body::{SessionBody, UserBody},
    extract::{CurrentUser, JsonBody},
    openapi::ApiRoutes,
    throttle::Key,
};
use crate::{
    domain::{dto, sessions, users},
    error::{AppError, Result},
    settings::TrustedProxy,
    state::AppState,
};

pub fn routes(api: ApiRoutes) -> ApiRoutes {
    api.mount(register)
        .mount(login)
        .mount(logout)
        .mount(session)
}

#[derive(Deserialize, ToSchema)]
#[schema(as = Register)]
struct RegisterBody {
    /// Case-insensitive; stored lower-cased.
    #[schema(format = Email, max_length = 320)]
    email: String,
    /// Trimmed of white space before it is checked and stored, so it needs one other character;
    /// never U+0000.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00]*[^\\x00\\t\\n\\x0B\\f\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000][^\\x00]*$"
    )]
    name: String,
    #[schema(min_length = 8, max_length = 256)]
    password: String,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = Login)]
struct LoginBody {
    email: String,
    password: String,
}

/// Create an account and sign in
///
/// Open while `auth.allow_registration` is on. Sets the session cookie.
#[utoipa::path(post, path = "/api/auth/register", impl_for = register, operation_id = "register", tag = "auth",
    request_body = RegisterBody,
    security(()),
    responses(
        (status = 201, description = "Registered and signed in", body = UserBody,
            headers(("set-cookie" = String, description = "The new session's cookie"))),
        (status = 403, description = "Registration is closed"),
        (status = 409, description = "An account with this email exists"),
    )
)]
#[handler]
async fn register(
    state: Data<&AppState>,
    JsonBody(body): JsonBody<RegisterBody>,
) -> Result<Response> {
    if !state.settings.auth.allow_registration {
        return Err(AppError::Forbidden("Registration is closed"));
    }
    let new = users::NewUser::parse(&body.email, &body.name, &body.password)?;
    let user = users::create(&state.db, &state.passwords, new).await?;
    tracing::info!(user_id = %user.id, "user registered");
    start_session(&state, &user, StatusCode::CREATED).await
}

/// Sign in
///
/// A new session (and cookie) at every login. Failures are counted per email and per client
/// address; past `auth.max_failures` within `auth.failure_window`, 429.
#[utoipa::path(post, path = "/api/auth/login", impl_for = login, operation_id = "login", tag = "auth",
    request_body = LoginBody,
    security(()),
    responses(
        (status = 200, description = "Signed in", body = UserBody,
            headers(("set-cookie" = String, description = "The new session's cookie"))),
        (status = 401, description = "Unknown email or wrong password (the same message for both)"),
        (status = 429, description = "Too many failed logins for this email or client address",
            headers(("retry-after" = u64, description = "Seconds until a login may be tried again"))),
    )
)]
#[handler]
async fn login(
    req: &Request,
    state: Data<&AppState>,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Response> {
    let client = client_ip(req, &state.settings.server.trusted_proxies);
    let mut keys = vec![Key::email(&body.email)];
    keys.extend(client.map(Key::client));
    if let Some(retry_after_secs) = state.throttle.retry_after(&state.db, &keys).await? {
        tracing::warn!(client = ?client, "login throttled");
        return Err(AppError::RateLimited { retry_after_secs });
    }
    match users::check_credentials(&state.db, &state.passwords, &body.email, &body.password).await?
    {
        Some(user) => {
            state.throttle.reset(&state.db, &keys[0]).await?;
            tracing::info!(user_id = %user.id, "login");
            start_session(&state, &user, StatusCode::OK).await
        }
        None => {
            state.throttle.record_failure(&state.db, &keys).await?;
            tracing::info!(client = ?client, "login failed");
            Err(AppError::Unauthorized("Invalid email or password"))
        }
    }
}

/// Sign out
///
/// Deletes the session, clears the cookie and disconnects every socket opened with it.
#[utoipa::path(post, path = "/api/auth/logout", impl_for = logout, operation_id = "logout", tag = "auth",
    responses(
        (status = 204, description = "Signed out",
            headers(("set-cookie" = String, description = "Clears the session cookie"))),
    )
)]
#[handler]
async fn logout(state: Data<&AppState>, user: CurrentUser) -> Result<Response> {
    let mut tx = state.begin().await?;
    sessions::delete(&*tx, user.session_id).await?;
    tx.end_session(user.session_id, sessions::EndReason::Logout);
    tx.commit().await?;
    tracing::info!(user_id = %user.user.id, "logout");
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header("set-cookie", cookie(&state, "", 0))
        .finish())
}

/// The current session
#[utoipa::path(get, path = "/api/auth/session", impl_for = session, operation_id = "getSession", tag = "auth",
    responses((status = 200, description = "The signed-in user", body = SessionBody))
)]
#[handler]
async fn session(user: CurrentUser) -> Json<SessionBody> {
    Json(SessionBody {
        user: user.user,
        expires_at: user.expires_at,
    })
}

/// A fresh session (a new token at every login) and its cookie.
async fn start_session(
    state: &AppState,
    user: &entities::users::Model,
    status: StatusCode,
) -> Result<Response> {
    let (token, _) = sessions::create(&state.db, user.id, state.lifetimes()).await?;
    let max_age = state.lifetimes().cookie_max_age();
    let body = UserBody {
        user: dto::User::from(user),
    };
    Ok(Json(body)
        .with_status(status)
        .with_header("set-cookie", cookie(state, &token, max_age))
        .into_response())
}

fn cookie(state: &AppState, token: &str, max_age: u64) -> String {
    let cfg = &state.settings.session;
    let secure = if cfg.secure { "; Secure" } else { "" };
    format!(
        "{}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}{secure}",
        cfg.cookie_name
    )
}

fn client_ip(req: &Request, trusted: &[TrustedProxy]) -> Option<IpAddr> {
    let peer = req.remote_addr().as_socket_addr()?;
    let forwarded_for = req.headers().get_all("x-forwarded-for").iter();
    let hops = forwarded_for.filter_map(|v| v.to_str().ok());
    Some(client_addr(peer.ip(), hops, trusted))
}

/// The client: the TCP peer, or, while that is a trusted proxy, the hop before it in
/// `X-Forwarded-For`, read from the right. Hops left of the first untrusted one could be
/// made up by the client, so they are never believed.
fn client_addr<'a>(
    peer: IpAddr,
    forwarded_for: impl Iterator<Item = &'a str>,
    trusted: &[TrustedProxy],
) -> IpAddr {
    let hops: Vec<&str> = forwarded_for.flat_map(|v| v.split(',')).collect();
    let mut client = peer.to_canonical();
    for hop in hops.iter().rev() {
        if !trusted.iter().any(|proxy| proxy.contains(&client)) {
            break;
        }
        match hop.trim().parse::<IpAddr>() {
            Ok(ip) => client = ip.to_canonical(),
            Err(_) => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(peer: &str, forwarded_for: &[&str], trusted: &[&str]) -> String {
        let trusted: Vec<TrustedProxy> = trusted.iter().map(|t| t.parse().unwrap()).collect();
        client_addr(
            peer.parse().unwrap(),
            forwarded_for.iter().copied(),
            &trusted,
        )
        .to_string()
    }

    #[test]
    fn forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy() {
        assert_eq!(addr("203.0.113.9", &["198.51.100.1"], &[]), "203.0.113.9");
        assert_eq!(
            addr("203.0.113.9", &["198.51.100.1"], &["10.0.0.0/8"]),
            "203.0.113.9"
        );
    }

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_right() {
        let trusted = ["10.0.0.0/8", "192.0.2.7"];
        let forged_then_real = ["1.1.1.1, 198.51.100.4", "192.0.2.7"];
        assert_eq!(
            addr("10.1.2.3", &forged_then_real, &trusted),
            "198.51.100.4"
        );
        assert_eq!(
            addr("::ffff:10.1.2.3", &["198.51.100.4"], &trusted),
            "198.51.100.4"
        );
        // A hop that is no address stops the walk at the last proxy.
        assert_eq!(
            addr("10.1.2.3", &["198.51.100.4, junk"], &trusted),
            "10.1.2.3"
        );
    }
}
