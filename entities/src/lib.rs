//! SeaORM entities, one module per table, in the shape `sea-orm-cli generate entity` writes.
//! Behaviour lives in the server's domain layer, not here.
pub mod events;
pub mod login_failures;
pub mod memberships;
pub mod nodes;
pub mod prelude;
pub mod presence;
pub mod sessions;
pub mod socket_slots;
pub mod sources;
pub mod users;
pub mod vaults;
