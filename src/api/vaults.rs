//! `/api/vaults` and `/api/vaults/{id}`.
use poem::{
    Response, Route, handler,
    http::StatusCode,
    web::{Data, Json, Path},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::extract::{CurrentUser, JsonBody, path_id};
use crate::{
    domain::{role_name, vaults},
    error::Result,
    state::AppState,
};

pub fn routes(route: Route) -> Route {
    route
        .at("/vaults", poem::get(list).post(create))
        .at("/vaults/:id", poem::get(get).patch(update).delete(delete))
}

#[derive(Deserialize)]
struct CreateBody {
    name: String,
    description: Option<String>,
}

#[derive(Deserialize)]
struct PatchBody {
    name: Option<String>,
    description: Option<String>,
}

#[handler]
async fn list(state: Data<&AppState>, user: CurrentUser) -> Result<Json<Value>> {
    Ok(Json(
        json!({ "vaults": vaults::list_for(&state.db, user.user.id).await? }),
    ))
}

#[handler]
async fn create(
    state: Data<&AppState>,
    user: CurrentUser,
    JsonBody(body): JsonBody<CreateBody>,
) -> Result<Response> {
    let new = vaults::NewVault::parse(&body.name, body.description.as_deref())?;
    let tx = state.begin().await?;
    let vault = vaults::create(&*tx, &user.actor(), new).await?;
    tx.commit().await?;
    Ok(created(json!({ "vault": vault })))
}

#[handler]
async fn get(
    state: Data<&AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let (vault, role) =
        vaults::get(&state.db, &user.actor(), path_id(&id, "Vault not found")?).await?;
    Ok(Json(json!({ "vault": vault, "role": role_name(role) })))
}

#[handler]
async fn update(
    state: Data<&AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PatchBody>,
) -> Result<Json<Value>> {
    let id = path_id(&id, "Vault not found")?;
    let patch = vaults::VaultPatch::parse(body.name.as_deref(), body.description.as_deref())?;
    let mut tx = state.begin().await?;
    let vault = vaults::update(&mut tx, &user.actor(), id, patch).await?;
    tx.commit().await?;
    Ok(Json(json!({ "vault": vault })))
}

#[handler]
async fn delete(
    state: Data<&AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let id = path_id(&id, "Vault not found")?;
    let mut tx = state.begin().await?;
    vaults::delete(&mut tx, &user.actor(), id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

pub fn created(body: Value) -> Response {
    Response::builder()
        .status(StatusCode::CREATED)
        .content_type("application/json")
        .body(body.to_string())
}
