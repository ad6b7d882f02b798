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
    domain::{input, role_name, vaults},
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
    let mut c = input::Checker::default();
    let name = c.check(input::VaultName::parse(&body.name));
    let description = c.check(input::description(
        body.description.as_deref().unwrap_or(""),
    ));
    c.finish()?;
    let tx = state.begin().await?;
    let vault = vaults::create(&*tx, &user.actor(), name.unwrap(), description.unwrap()).await?;
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
    let mut c = input::Checker::default();
    let name = body
        .name
        .as_deref()
        .and_then(|n| c.check(input::VaultName::parse(n)));
    let description = body
        .description
        .as_deref()
        .and_then(|d| c.check(input::description(d)));
    c.finish()?;
    let mut tx = state.begin().await?;
    let vault = vaults::update(
        &mut tx,
        &user.actor(),
        id,
        vaults::VaultPatch { name, description },
    )
    .await?;
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
