//! `/api/vaults/{id}/sources` and `/api/sources/{id}`.
use poem::{
    Response, handler,
    http::StatusCode,
    web::{Data, Json, Path, Query},
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    body::{SourceBody, SourceId, SourcePage, VaultId, why},
    extract::{CurrentUser, JsonBody, path_id},
    openapi::ApiRoutes,
    vaults::created,
};
use crate::{
    domain::sources::{self, NewSource, SourceFields, SourcePatch, SourcePatchFields},
    error::{AppError, Result},
    state::AppState,
};

pub fn routes(api: ApiRoutes) -> ApiRoutes {
    api.mount(list)
        .mount(create)
        .mount(get)
        .mount(update)
        .mount(delete)
}

// Read as text, so that a bad `limit` is a field error naming it rather than poem's 400.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// How many sources per page.
    #[param(value_type = u32, required = false, minimum = 1, maximum = 200, default = 50)]
    limit: Option<String>,
    /// The previous page's `nextCursor`; none (or empty) for the first page. The pattern is
    /// what a cursor the server issues looks like; any other value is refused with 400.
    #[param(pattern = "^(73(3[0-9]){1,18})?$")]
    cursor: Option<String>,
}

/// A page of a vault's sources, newest first
#[utoipa::path(get, path = "/api/vaults/{id}/sources", impl_for = list, operation_id = "listSources", tag = "sources",
    params(VaultId, ListQuery),
    responses(
        (status = 200, description = "A page of sources", body = SourcePage),
        (status = 400, description = "`limit` or `cursor` is invalid"),
        (status = 404, description = why::NOT_MEMBER),
    )
)]
#[handler]
async fn list(
    state: Data<&AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Response> {
    let id = path_id(&id, "Vault not found")?;
    let limit = parse_limit(q.limit.as_deref(), 50, 200)?;
    let cursor = q
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(sources::decode_cursor)
        .transpose()?;
    let page = sources::list(
        &state.db,
        state.reads.as_ref(),
        &user.actor(),
        id,
        limit,
        cursor,
    )
    .await?;
    let body = SourcePage {
        sources: page.sources,
        next_cursor: page.next_cursor,
    };
    // What `Json` would answer, written without going through serde (see `to_json`).
    let json = http::HeaderValue::from_static("application/json; charset=utf-8");
    Ok(Response::builder()
        .header(http::header::CONTENT_TYPE, json)
        .body(body.to_json()))
}

/// Add a source (owner, contributor)
#[utoipa::path(post, path = "/api/vaults/{id}/sources", impl_for = create, operation_id = "createSource", tag = "sources",
    params(VaultId),
    request_body = SourceFields,
    responses(
        (status = 201, description = "Added", body = SourceBody),
        (status = 403, description = why::VIEWER),
        (status = 404, description = why::NOT_MEMBER),
    )
)]
#[handler]
async fn create(
    state: Data<&AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<SourceFields>,
) -> Result<Response> {
    let id = path_id(&id, "Vault not found")?;
    let new = NewSource::parse(&body)?;
    let mut tx = state.begin_direct().await?;
    let source = sources::create(&mut tx, &user.actor(), id, new).await?;
    tx.commit().await?;
    Ok(created(SourceBody { source }))
}

/// A source
#[utoipa::path(get, path = "/api/sources/{id}", impl_for = get, operation_id = "getSource", tag = "sources",
    params(SourceId),
    responses(
        (status = 200, description = "The source", body = SourceBody),
        (status = 404, description = why::NO_SOURCE),
    )
)]
#[handler]
async fn get(
    state: Data<&AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<SourceBody>> {
    let source = sources::get(&state.db, &user.actor(), path_id(&id, "Source not found")?).await?;
    Ok(Json(SourceBody { source }))
}

/// Update a source (owner, contributor)
///
/// With `version`, the update applies only if the source is still at that version.
#[utoipa::path(patch, path = "/api/sources/{id}", impl_for = update, operation_id = "updateSource", tag = "sources",
    params(SourceId),
    request_body = SourcePatchFields,
    responses(
        (status = 200, description = "Updated", body = SourceBody),
        (status = 403, description = why::VIEWER),
        (status = 404, description = why::NO_SOURCE),
        (status = 409, description = "`version` is stale: the source changed meanwhile"),
    )
)]
#[handler]
async fn update(
    state: Data<&AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<SourcePatchFields>,
) -> Result<Json<SourceBody>> {
    let id = path_id(&id, "Source not found")?;
    let patch = SourcePatch::parse(&body)?;
    let mut tx = state.begin().await?;
    let source = sources::update(&mut tx, &user.actor(), id, patch).await?;
    tx.commit().await?;
    Ok(Json(SourceBody { source }))
}

/// Delete a source (owner, contributor)
#[utoipa::path(delete, path = "/api/sources/{id}", impl_for = delete, operation_id = "deleteSource", tag = "sources",
    params(SourceId),
    responses(
        (status = 204, description = "Deleted"),
        (status = 403, description = why::VIEWER),
        (status = 404, description = why::NO_SOURCE),
    )
)]
#[handler]
async fn delete(
    state: Data<&AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode> {
    let id = path_id(&id, "Source not found")?;
    let mut tx = state.begin().await?;
    sources::delete(&mut tx, &user.actor(), id).await?;
    tx.commit().await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `limit`: a whole number from 1 to `max`.
pub fn parse_limit(raw: Option<&str>, default: u64, max: u64) -> Result<u64> {
    match raw {
        None | Some("") => Ok(default),
        Some(s) => s
            .parse::<u64>()
            .ok()
            .filter(|n| (1..=max).contains(n))
            .ok_or_else(|| {
                AppError::field("limit", format!("must be a whole number from 1 to {max}"))
            }),
    }
}
