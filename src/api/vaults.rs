//! `/api/vaults` and `/api/vaults/{id}`.
use poem::{
    IntoResponse, Response, handler,
    http::StatusCode,
    web::{Data, Json, Path},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::{
    body::{VaultAndRole, VaultBody, VaultId, VaultList, why},
    extract::{CurrentUser, JsonBody, path_id},
    openapi::ApiRoutes,
};
use crate::{
    domain::{role_name, vaults},
    error::Result,
    state::AppState,
};

pub fn routes(api: ApiRoutes) -> ApiRoutes {
    api.mount(list)
        .mount(create)
        .mount(get)
        .mount(update)
        .mount(delete)
}

#[derive(Deserialize, ToSchema)]
#[schema(as = CreateVault)]
struct CreateBody {
    /// Trimmed of white space before it is checked and stored, so it needs one other character;
    /// never U+0000.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00]*[^\\x00\\t\\n\\x0B\\f\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000][^\\x00]*$"
    )]
    name: String,
    /// Trimmed; never U+0000.
    #[schema(max_length = 2000, pattern = "^[^\\x00]*$")]
    description: Option<String>,
}

/// Absent fields are left as they are.
#[derive(Deserialize, ToSchema)]
#[schema(as = PatchVault)]
struct PatchBody {
    /// Trimmed of white space before it is checked and stored, so it needs one other character;
    /// never U+0000.
    #[schema(
        min_length = 1,
        max_length = 200,
        pattern = "^[^\\x00]*[^\\x00\\t\\n\\x0B\\f\\r \\x85\\xA0\\u1680\\u2000-\\u200A\\u2028\\u2029\\u202F\\u205F\\u3000][^\\x00]*$"
    )]
    name: Option<String>,
    /// Trimmed; never U+0000.
    #[schema(max_length = 2000, pattern = "^[^\\x00]*$")]
    description: Option<String>,
}

/// The caller's vaults
#[utoipa::path(get, path = "/api/vaults", impl_for = list, operation_id = "listVaults", tag = "vaults",
    responses((status = 200, description = "Every vault the caller belongs to, with their role", body = VaultList))
)]
#[handler]
async fn list(state: Data<&AppState>, user: CurrentUser) -> Result<Json<VaultList>> {
    let vaults = vaults::list_for(&state.db, user.user.id).await?;
    Ok(Json(VaultList { vaults }))
}

/// Create a vault
///
/// The caller becomes its owner.
#[utoipa::path(post, path = "/api/vaults", impl_for = create, operation_id = "createVault", tag = "vaults",
    request_body = CreateBody,
    responses((status = 201, description = "Created", body = VaultBody))
)]
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
    Ok(created(VaultBody { vault }))
}

/// A vault and the caller's role in it
#[utoipa::path(get, path = "/api/vaults/{id}", impl_for = get, operation_id = "getVault", tag = "vaults",
    params(VaultId),
    responses(
        (status = 200, description = "The vault", body = VaultAndRole),
        (status = 404, description = why::NOT_MEMBER),
    )
)]
#[handler]
async fn get(
    state: Data<&AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<VaultAndRole>> {
    let (vault, role) =
        vaults::get(&state.db, &user.actor(), path_id(&id, "Vault not found")?).await?;
    let role = role_name(role);
    Ok(Json(VaultAndRole { vault, role }))
}

/// Rename or describe a vault (owner)
#[utoipa::path(patch, path = "/api/vaults/{id}", impl_for = update, operation_id = "updateVault", tag = "vaults",
    params(VaultId),
    request_body = PatchBody,
    responses(
        (status = 200, description = "Updated", body = VaultBody),
        (status = 403, description = why::NOT_OWNER),
        (status = 404, description = why::NOT_MEMBER),
    )
)]
#[handler]
async fn update(
    state: Data<&AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<PatchBody>,
) -> Result<Json<VaultBody>> {
    let id = path_id(&id, "Vault not found")?;
    let patch = vaults::VaultPatch::parse(body.name.as_deref(), body.description.as_deref())?;
    let mut tx = state.begin().await?;
    let vault = vaults::update(&mut tx, &user.actor(), id, patch).await?;
    tx.commit().await?;
    Ok(Json(VaultBody { vault }))
}

/// Delete a vault (owner)
///
/// Its members' sockets receive `vault:revoked`.
#[utoipa::path(delete, path = "/api/vaults/{id}", impl_for = delete, operation_id = "deleteVault", tag = "vaults",
    params(VaultId),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = why::NOT_OWNER),
        (status = 404, description = why::NOT_MEMBER),
    )
)]
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

/// 201 with a JSON body.
pub fn created(body: impl Serialize + Send) -> Response {
    Json(body).with_status(StatusCode::CREATED).into_response()
}
