//! `/api/vaults/{id}/sources` and `/api/sources/{id}`.
use poem::{
    Response, Route, handler,
    http::StatusCode,
    web::{Data, Json, Path, Query},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    extract::{CurrentUser, JsonBody, path_id},
    vaults::created,
};
use crate::{
    domain::sources::{self, NewSource, SourceFields, SourcePatch, SourcePatchFields},
    error::{AppError, Result},
    state::AppState,
};

pub fn routes(route: Route) -> Route {
    route
        .at("/vaults/:id/sources", poem::get(list).post(create))
        .at("/sources/:id", poem::get(get).patch(update).delete(delete))
}

#[derive(Deserialize)]
struct ListQuery {
    limit: Option<String>,
    cursor: Option<String>,
}

#[handler]
async fn list(
    state: Data<&AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    let id = path_id(&id, "Vault not found")?;
    let limit = parse_limit(q.limit.as_deref(), 50, 200)?;
    let cursor = q
        .cursor
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(sources::decode_cursor)
        .transpose()?;
    let page = sources::list(&state.db, &user.actor(), id, limit, cursor).await?;
    Ok(Json(
        json!({ "sources": page.sources, "nextCursor": page.next_cursor }),
    ))
}

#[handler]
async fn create(
    state: Data<&AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<SourceFields>,
) -> Result<Response> {
    let id = path_id(&id, "Vault not found")?;
    let new = NewSource::parse(&body)?;
    let mut tx = state.begin().await?;
    let source = sources::create(&mut tx, &user.actor(), id, new).await?;
    tx.commit().await?;
    Ok(created(json!({ "source": source })))
}

#[handler]
async fn get(
    state: Data<&AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let source = sources::get(&state.db, &user.actor(), path_id(&id, "Source not found")?).await?;
    Ok(Json(json!({ "source": source })))
}

#[handler]
async fn update(
    state: Data<&AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    JsonBody(body): JsonBody<SourcePatchFields>,
) -> Result<Json<Value>> {
    let id = path_id(&id, "Source not found")?;
    let patch = SourcePatch::parse(&body)?;
    let mut tx = state.begin().await?;
    let source = sources::update(&mut tx, &user.actor(), id, patch).await?;
    tx.commit().await?;
    Ok(Json(json!({ "source": source })))
}

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
