//! Server-side sessions. The cookie carries a random 256-bit token; the database keeps only its
//! SHA-256. Expiry slides with use up to an absolute lifetime. Live sessions already read are
//! answered from [`cache`] while the bus guarantees that none of them has ended.
pub mod cache;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::RngCore;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect,
    prelude::Expr, sea_query::Query,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::{Tx, dto, now};
use crate::error::Result;
pub use cache::SessionCache;
use entities::{sessions, users};

/// Why a session's sockets are sent away: the `reason` of `session:ended` (CONTRACT §7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    Logout,
    Expired,
    /// Deleted without a known reason (its notice may have been missed).
    Revoked,
}

impl EndReason {
    pub fn name(self) -> &'static str {
        match self {
            Self::Logout => "logout",
            Self::Expired => "expired",
            Self::Revoked => "revoked",
        }
    }

    /// A reason as named on the wire; an unknown or missing one counts as `revoked`.
    pub fn parse(name: Option<&str>) -> Self {
        match name {
            Some("logout") => Self::Logout,
            Some("expired") => Self::Expired,
            _ => Self::Revoked,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Lifetimes {
    pub ttl: Duration,
    pub absolute: Duration,
}

impl Lifetimes {
    /// A tenth of the sliding lifetime, at most a minute: a session in use never comes
    /// closer than that to its expiry.
    pub fn renew_every(&self) -> chrono::Duration {
        let tenth = chrono::Duration::from_std(self.ttl / 10).unwrap_or(chrono::Duration::MAX);
        tenth.min(chrono::Duration::seconds(60))
    }

    /// How long the session cookie is kept: as long as the session can possibly live. The
    /// server enforces the sliding expiry; the browser only has to keep the cookie that long.
    pub fn cookie_max_age(&self) -> u64 {
        self.absolute.as_secs()
    }

    fn expiry(&self, created_at: DateTime<Utc>, now: DateTime<Utc>) -> DateTime<Utc> {
        let sliding =
            now + chrono::Duration::from_std(self.ttl).unwrap_or(chrono::Duration::days(7));
        let absolute = created_at
            + chrono::Duration::from_std(self.absolute).unwrap_or(chrono::Duration::days(30));
        sliding.min(absolute)
    }
}

pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// Starts a session; returns the raw token for the cookie.
pub async fn create(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    life: Lifetimes,
) -> Result<(String, sessions::Model)> {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let at = now();
    let model = sessions::Model {
        id: Uuid::new_v4(),
        user_id,
        token_hash: hash_token(&token),
        created_at: at,
        expires_at: life.expiry(at, at),
        last_seen_at: at,
    };
    sessions::Entity::insert(sessions::ActiveModel {
        id: Set(model.id),
        user_id: Set(model.user_id),
        token_hash: Set(model.token_hash.clone()),
        created_at: Set(model.created_at),
        expires_at: Set(model.expires_at),
        last_seen_at: Set(model.last_seen_at),
    })
    .exec_without_returning(db)
    .await?;
    Ok((token, model))
}

/// The live session and its user for a raw token. The expiry slides with use, but is written
/// at most once per [`Lifetimes::renew_every`], so reads do not turn every request into a write.
pub async fn authenticate(
    db: &impl ConnectionTrait,
    token: &str,
    life: Lifetimes,
) -> Result<Option<(sessions::Model, users::Model)>> {
    let found = sessions::Entity::find()
        .filter(sessions::Column::TokenHash.eq(hash_token(token)))
        .find_also_related(users::Entity)
        .one(db)
        .await?;
    let Some((mut session, Some(user))) = found else {
        return Ok(None);
    };
    let at = now();
    if session.expires_at <= at {
        return Ok(None);
    }
    if at - session.last_seen_at >= life.renew_every() {
        let expires_at = life.expiry(session.created_at, at);
        sessions::Entity::update_many()
            .col_expr(sessions::Column::ExpiresAt, Expr::value(expires_at))
            .col_expr(sessions::Column::LastSeenAt, Expr::value(at))
            .filter(sessions::Column::Id.eq(session.id))
            .exec(db)
            .await?;
        session.expires_at = expires_at;
        session.last_seen_at = at;
    }
    Ok(Some((session, user)))
}

/// [`authenticate`], answered from `cache` when the session was read before, is still live and
/// is not due for renewal.
pub async fn authenticate_cached(
    db: &impl ConnectionTrait,
    cache: &SessionCache,
    token: &str,
    life: Lifetimes,
) -> Result<Option<cache::Known>> {
    let key = cache::key(token);
    if let Some(known) = cache.get(&key, now(), life.renew_every()) {
        return Ok(Some(known));
    }
    // Taken before the read: a logout heard meanwhile keeps what the read saw out of the cache.
    let ticket = cache.ticket();
    let Some((session, user)) = authenticate(db, token, life).await? else {
        return Ok(None);
    };
    let known = cache::Known {
        session_id: session.id,
        user: dto::User::from(&user),
        expires_at: session.expires_at,
        last_seen_at: session.last_seen_at,
    };
    cache.keep(ticket, key, known.clone());
    Ok(Some(known))
}

pub async fn delete(db: &impl ConnectionTrait, session_id: Uuid) -> Result<()> {
    sessions::Entity::delete_by_id(session_id).exec(db).await?;
    Ok(())
}

/// Deletes expired sessions; returns how many.
/// Deletes the sessions that expired more than `grace` ago: until then every node's socket
/// sweep still finds them, and tells their sockets they `expired` (not `revoked`).
pub async fn purge_expired(db: &impl ConnectionTrait, grace: Duration) -> Result<u64> {
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::zero());
    let res = sessions::Entity::delete_many()
        .filter(sessions::Column::ExpiresAt.lte(now() - grace))
        .exec(db)
        .await?;
    Ok(res.rows_affected)
}

/// Of the given session ids, those that are no longer valid, and why: expired, or deleted
/// (`Revoked`: a logout announces itself). The ids are looked up in chunks: a single
/// `IN (…)` would pass SQLite's 32,766 or PostgreSQL's 65,535 bind parameters once that many
/// sessions are connected.
pub async fn dead_among(db: &impl ConnectionTrait, ids: &[Uuid]) -> Result<Vec<(Uuid, EndReason)>> {
    const CHUNK: usize = 1000;
    let mut found = std::collections::HashMap::new();
    for chunk in ids.chunks(CHUNK) {
        let rows = sessions::Entity::find()
            .select_only()
            .column(sessions::Column::Id)
            .column(sessions::Column::ExpiresAt)
            .filter(sessions::Column::Id.is_in(chunk.iter().copied()))
            .into_tuple::<(Uuid, DateTime<Utc>)>()
            .all(db)
            .await?;
        found.extend(rows);
    }
    let now = now();
    Ok(ids
        .iter()
        .filter_map(|id| Some((*id, ended(found.get(id).copied(), now)?)))
        .collect())
}

/// Why a session whose row holds `expires` (none: the row is gone) has ended, if it has.
fn ended(expires: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Option<EndReason> {
    match expires {
        Some(expires) if expires > now => None,
        Some(_) => Some(EndReason::Expired),
        None => Some(EndReason::Revoked),
    }
}

/// Whether a session still exists and has not expired, read in a write transaction (so no
/// logout commits between the check and the write). Through [`Tx`]'s own methods, so it also
/// runs in a direct one.
pub async fn is_alive(tx: &Tx, session_id: Uuid) -> Result<bool> {
    use sea_orm::sea_query::ExprTrait;
    let select = Query::select()
        .column(sessions::Column::ExpiresAt)
        .from(sessions::Entity)
        .and_where(Expr::col(sessions::Column::Id).eq(session_id))
        .to_owned();
    let expires = match tx.query_row(tx.backend().build(&select)).await? {
        Some(row) => Some(row.timestamp(0)?),
        None => None,
    };
    Ok(ended(expires, now()).is_none())
}
