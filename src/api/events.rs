//! `/api/vaults/{id}/events`: the vault's event log, oldest first.
use poem::{
    handler,
    web::{Data, Json, Path, Query},
};
use serde::Deserialize;
use utoipa::IntoParams;

use super::{
    body::{EventPage, VaultId, why},
    extract::{CurrentUser, path_id},
    openapi::ApiRoutes,
    sources::parse_limit,
};
use crate::{
    domain::events,
    error::{AppError, Result},
    state::AppState,
};

pub fn routes(api: ApiRoutes) -> ApiRoutes {
    api.mount(list)
}

#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
struct EventsQuery {
    /// Only events with a greater `seq`.
    #[param(value_type = i64, required = false, minimum = 0, default = 0)]
    since: Option<String>,
    /// How many events at most.
    #[param(value_type = u32, required = false, minimum = 1, maximum = 1000, default = 100)]
    limit: Option<String>,
}

/// A vault's event log, oldest first
///
/// The same objects the vault's room received, each with its `type`.
#[utoipa::path(get, path = "/api/vaults/{id}/events", impl_for = list, operation_id = "listEvents", tag = "events",
    params(VaultId, EventsQuery),
    responses(
        (status = 200, description = "Events after `since`", body = EventPage),
        (status = 400, description = "`since` or `limit` is invalid"),
        (status = 404, description = why::NOT_MEMBER),
    )
)]
#[handler]
async fn list(
    state: Data<&AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<EventPage>> {
    let id = path_id(&id, "Vault not found")?;
    let since = match q.since.as_deref() {
        None | Some("") => 0,
        Some(s) => s
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| AppError::field("since", "must be a whole number"))?,
    };
    let limit = parse_limit(q.limit.as_deref(), 100, 1000)?;
    let (events, latest_seq) = events::list(&state.db, &user.actor(), id, since, limit).await?;
    Ok(Json(EventPage { events, latest_seq }))
}
