//! `/api/auth`: register, login, logout, session (CONTRACT §3).
use poem::{
    Request, Response, Route, handler,
    http::StatusCode,
    post,
    web::{Data, Json},
};
use serde::Deserialize;
use serde_json::json;

use super::extract::{CurrentUser, JsonBody};
use crate::{
    domain::{dto, sessions, users},
    error::{AppError, Result},
    state::AppState,
};

pub fn routes(route: Route) -> Route {
    route
        .at("/auth/register", post(register))
        .at("/auth/login", post(login))
        .at("/auth/logout", post(logout))
        .at("/auth/session", poem::get(session))
}

#[derive(Deserialize)]
struct RegisterBody {
    email: String,
    name: String,
    password: String,
}

#[derive(Deserialize)]
struct LoginBody {
    email: String,
    password: String,
}

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

#[handler]
async fn login(
    req: &Request,
    state: Data<&AppState>,
    JsonBody(body): JsonBody<LoginBody>,
) -> Result<Response> {
    let email_key = format!("email:{}", body.email.trim().to_lowercase());
    let ip_key = format!("ip:{}", client_ip(req));
    let keys = [email_key.clone(), ip_key];
    if let Some(retry_after_secs) = state.throttle.retry_after(&keys) {
        tracing::warn!(key = %keys[1], "login throttled");
        return Err(AppError::RateLimited { retry_after_secs });
    }
    match users::check_credentials(&state.db, &state.passwords, &body.email, &body.password).await?
    {
        Some(user) => {
            state.throttle.reset(&email_key);
            tracing::info!(user_id = %user.id, "login");
            start_session(&state, &user, StatusCode::OK).await
        }
        None => {
            state.throttle.record_failure(&keys);
            tracing::info!(key = %keys[1], "login failed");
            Err(AppError::Unauthorized("Invalid email or password"))
        }
    }
}

#[handler]
async fn logout(state: Data<&AppState>, user: CurrentUser) -> Result<Response> {
    sessions::delete(&state.db, user.session_id).await?;
    crate::realtime::disconnect_session(&state, user.session_id).await;
    tracing::info!(user_id = %user.user.id, "logout");
    Ok(Response::builder()
        .status(StatusCode::NO_CONTENT)
        .header("set-cookie", cookie(&state, "", 0))
        .finish())
}

#[handler]
async fn session(user: CurrentUser) -> Json<serde_json::Value> {
    Json(json!({ "user": user.user, "expiresAt": user.expires_at }))
}

/// A fresh session (a new token at every login) and its cookie.
async fn start_session(
    state: &AppState,
    user: &entities::users::Model,
    status: StatusCode,
) -> Result<Response> {
    let (token, _) = sessions::create(&state.db, user.id, state.lifetimes()).await?;
    let max_age = state.settings.session.ttl.as_secs();
    Ok(Response::builder()
        .status(status)
        .header("set-cookie", cookie(state, &token, max_age))
        .content_type("application/json")
        .body(json!({ "user": dto::User::from(user) }).to_string()))
}

fn cookie(state: &AppState, token: &str, max_age: u64) -> String {
    let cfg = &state.settings.session;
    let secure = if cfg.secure { "; Secure" } else { "" };
    format!(
        "{}={token}; HttpOnly; SameSite=Lax; Path=/; Max-Age={max_age}{secure}",
        cfg.cookie_name
    )
}

fn client_ip(req: &Request) -> String {
    match req.remote_addr().as_socket_addr() {
        Some(addr) => addr.ip().to_string(),
        None => "unknown".into(),
    }
}
