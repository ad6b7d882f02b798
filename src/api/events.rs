//! `/api/vaults/{id}/events`: the vault's event log, oldest first.
use poem::{
    Route, handler,
    web::{Data, Json, Path, Query},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    extract::{CurrentUser, path_id},
    sources::parse_limit,
};
use crate::{
    domain::events,
    error::{AppError, Result},
    state::AppState,
};

pub fn routes(route: Route) -> Route {
    route.at("/vaults/:id/events", poem::get(list))
}

#[derive(Deserialize)]
struct EventsQuery {
    since: Option<String>,
    limit: Option<String>,
}

#[handler]
async fn list(
    state: Data<&AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Value>> {
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
    Ok(Json(json!({ "events": events, "latestSeq": latest_seq })))
}
