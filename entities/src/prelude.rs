pub use super::events::Entity as Events;
pub use super::login_failures::Entity as LoginFailures;
pub use super::memberships::Entity as Memberships;
pub use super::sessions::Entity as Sessions;
pub use super::sources::Entity as Sources;
pub use super::users::Entity as Users;
pub use super::vaults::Entity as Vaults;
