//! `/api/vaults/{id}/members`.
use poem::{
    Response, Route, handler,
    http::StatusCode,
    web::{Data, Json, Path},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    extract::{CurrentUser, JsonBody, path_id},
    vaults::created,
};
use crate::{domain::members, error::Result, state::AppState};

pub fn routes(route: Route) -> Route {
    route
        .at("/vaults/:id/members", poem::get(list).post(add))
        .at(
            "/vaults/:id/members/:user_id",
            poem::patch(change_role).delete(remove),
        )
}

#[derive(Deserialize)]
struct AddBody {
    email: String,
    role: String,
}

#[derive(Deserialize)]
struct RoleBody {
    role: String,
}

#[handler]
async fn list(
    state: Data<&AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let members = members::list(&state.db, &user.actor(), path_id(&id, "Vault not found")?).await?;
    Ok(Json(json!({ "members": members })))
}

#[handler]
async fn add(
    state: Data<&AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<AddBody>,
) -> Result<Response> {
    let id = path_id(&id, "Vault not found")?;
    let new = members::NewMember::parse(&body.email, &body.role)?;
    let mut tx = state.begin().await?;
    let member = members::add(&mut tx, &user.actor(), id, new).await?;
    tx.commit().await?;
    Ok(created(json!({ "member": member })))
}

#[handler]
async fn change_role(
    state: Data<&AppState>,
    user: CurrentUser,
    Path((id, user_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<RoleBody>,
) -> Result<Json<Value>> {
    let (id, user_id) = (
        path_id(&id, "Vault not found")?,
        path_id(&user_id, "Member not found")?,
    );
    let role = members::parse_role(&body.role)?;
    let mut tx = state.begin().await?;
    let member = members::change_role(&mut tx, &user.actor(), id, user_id, role).await?;
    tx.commit().await?;
    Ok(Json(json!({ "member": member })))
}

#[handler]
async fn remove(
    state: Data<&AppState>,
    user: CurrentUser,
    Path((id, user_id)): Path<(String, String)>,
) -> Result<StatusCode> {
    let (id, user_id) = (
        path_id(&id, "Vault not found")?,
        path_id(&user_id, "Member not found")?,
    );
    let mut tx = state.begin().await?;
    members::remove(&mut tx, &user.actor(), id, user_id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}
