//! `/api/vaults/{id}/members`.
use poem::{
    Response, handler,
    http::StatusCode,
    web::{Data, Json, Path},
};
use serde::Deserialize;
use utoipa::ToSchema;

use super::{
    body::{MemberBody, MemberId, MemberList, VaultId, why},
    extract::{CurrentUser, JsonBody, path_id},
    openapi::ApiRoutes,
    vaults::created,
};
use crate::{
    domain::{dto::RoleName, members},
    error::Result,
    state::AppState,
};

pub fn routes(api: ApiRoutes) -> ApiRoutes {
    api.mount(list).mount(add).mount(change_role).mount(remove)
}

#[derive(Deserialize, ToSchema)]
#[schema(as = AddMember)]
struct AddBody {
    /// The email of an existing account (case-insensitive).
    #[schema(format = Email)]
    email: String,
    #[schema(value_type = RoleName)]
    role: String,
}

#[derive(Deserialize, ToSchema)]
#[schema(as = ChangeRole)]
struct RoleBody {
    #[schema(value_type = RoleName)]
    role: String,
}

/// A vault's members
#[utoipa::path(get, path = "/api/vaults/{id}/members", impl_for = list, operation_id = "listMembers", tag = "members",
    params(VaultId),
    responses(
        (status = 200, description = "Every member, with their role", body = MemberList),
        (status = 404, description = why::NOT_MEMBER),
    )
)]
#[handler]
async fn list(
    state: Data<&AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<MemberList>> {
    let members = members::list(&state.db, &user.actor(), path_id(&id, "Vault not found")?).await?;
    Ok(Json(MemberList { members }))
}

/// Add a member by email (owner)
#[utoipa::path(post, path = "/api/vaults/{id}/members", impl_for = add, operation_id = "addMember", tag = "members",
    params(VaultId),
    request_body = AddBody,
    responses(
        (status = 201, description = "Added", body = MemberBody, links(
            ("changeRole" = (operation_id = "changeMemberRole", parameters(("id" = "$request.path.id"), ("userId" = "$response.body#/member/userId")))),
            ("remove" = (operation_id = "removeMember", parameters(("id" = "$request.path.id"), ("userId" = "$response.body#/member/userId")))),
        )),
        (status = 403, description = why::NOT_OWNER),
        (status = 404, description = "No such vault (or the caller is not a member), or no account has this email"),
        (status = 409, description = "That user is already a member"),
    )
)]
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
    Ok(created(MemberBody { member }))
}

/// Change a member's role (owner)
#[utoipa::path(patch, path = "/api/vaults/{id}/members/{userId}", impl_for = change_role, operation_id = "changeMemberRole", tag = "members",
    params(MemberId),
    request_body = RoleBody,
    responses(
        (status = 200, description = "Changed", body = MemberBody),
        (status = 403, description = why::NOT_OWNER),
        (status = 404, description = "No such vault or member, or the caller is not a member"),
        (status = 409, description = why::LAST_OWNER),
    )
)]
#[handler]
async fn change_role(
    state: Data<&AppState>,
    user: CurrentUser,
    Path((id, user_id)): Path<(String, String)>,
    JsonBody(body): JsonBody<RoleBody>,
) -> Result<Json<MemberBody>> {
    let (id, user_id) = (
        path_id(&id, "Vault not found")?,
        path_id(&user_id, "Member not found")?,
    );
    let role = members::parse_role(&body.role)?;
    let mut tx = state.begin().await?;
    let member = members::change_role(&mut tx, &user.actor(), id, user_id, role).await?;
    tx.commit().await?;
    Ok(Json(MemberBody { member }))
}

/// Remove a member (owner), or leave the vault
///
/// The member's sockets receive `vault:revoked`.
#[utoipa::path(delete, path = "/api/vaults/{id}/members/{userId}", impl_for = remove, operation_id = "removeMember", tag = "members",
    params(MemberId),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "The caller is neither an owner nor that member"),
        (status = 404, description = "No such vault or member, or the caller is not a member"),
        (status = 409, description = why::LAST_OWNER),
    )
)]
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
