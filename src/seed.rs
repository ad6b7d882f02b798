//! Demo data (CONTRACT §1): four users and a `Demo Vault`. Idempotent: whatever exists is kept.
use sea_orm::{ActiveValue::Set, ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};

use crate::domain::{Actor, Role, passwords::Passwords, users, vaults};
use crate::error::Result;
use entities::{memberships, vaults as vault_entity};

pub const DEMO_PASSWORD: &str = "demo-password";
pub const DEMO_USERS: [(&str, &str, Option<Role>); 4] = [
    ("owner@demo.com", "Olivia Owner", Some(Role::Owner)),
    (
        "contributor@demo.com",
        "Carlos Contributor",
        Some(Role::Contributor),
    ),
    ("viewer@demo.com", "Vera Viewer", Some(Role::Viewer)),
    ("outsider@demo.com", "Oscar Outsider", None),
];

pub async fn run(db: &DatabaseConnection, passwords: &Passwords) -> Result<()> {
    let mut accounts = Vec::new();
    for (email, name, role) in DEMO_USERS {
        let user = match users::find_by_email(db, email).await? {
            Some(user) => user,
            None => {
                users::create(
                    db,
                    passwords,
                    users::NewUser::parse(email, name, DEMO_PASSWORD)?,
                )
                .await?
            }
        };
        accounts.push((user, role));
    }
    let existing = vault_entity::Entity::find()
        .filter(vault_entity::Column::Name.eq("Demo Vault"))
        .one(db)
        .await?;
    if existing.is_some() {
        return Ok(());
    }
    let owner = &accounts[0].0;
    let actor = Actor {
        user_id: owner.id,
        user_name: owner.name.clone(),
    };
    let new = vaults::NewVault::parse("Demo Vault", Some("Sources shared by the demo team"))?;
    let vault = vaults::create(db, &actor, new).await?;
    for (user, role) in accounts.iter().skip(1) {
        if let Some(role) = role {
            memberships::Entity::insert(memberships::ActiveModel {
                vault_id: Set(vault.id),
                user_id: Set(user.id),
                role: Set(*role),
                joined_at: Set(crate::domain::now()),
            })
            .exec_without_returning(db)
            .await?;
        }
    }
    tracing::info!(vault_id = %vault.id, "demo data seeded");
    Ok(())
}
