//! The domain layer: every rule of the product lives here (permissions, validation, last-owner
//! protection, optimistic concurrency, the event log). REST and socket handlers both call these
//! functions with the acting user and a [`Tx`]; nothing here talks HTTP or Socket.IO.
pub mod access;
pub mod dto;
pub mod events;
pub mod input;
pub mod members;
pub mod passwords;
pub mod sessions;
pub mod sources;
pub mod timestamp;
pub mod tx;
pub mod users;
pub mod vaults;

use chrono::{DateTime, SubsecRound, Utc};
use uuid::Uuid;

pub use entities::memberships::Role;
pub use events::{Event, EventKind, Notice};
pub use tx::Tx;

/// Who is acting: taken from the session, never from the request body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub user_id: Uuid,
    pub user_name: String,
}

/// Microsecond precision, so a value reads back the same from PostgreSQL as it was written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Owner => "owner",
        Role::Contributor => "contributor",
        Role::Viewer => "viewer",
    }
}
