//! Vaults: create, read, rename, delete. Deleting a vault removes its sources, memberships and
//! log (foreign-key cascades) and still broadcasts `vault:deleted` with a fresh `seq`.
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder,
    prelude::Expr,
};
use serde_json::json;
use uuid::Uuid;

use super::{
    Actor, Role,
    access::{self, Action},
    dto,
    events::{self, EventKind},
    input, now, role_name,
};
use crate::error::{AppError, Result};
use entities::{memberships, vaults};

pub struct NewVault {
    pub name: input::VaultName,
    pub description: String,
}

impl NewVault {
    pub fn parse(name: &str, description: Option<&str>) -> Result<Self> {
        let mut c = input::Checker::default();
        let name = c.check(input::VaultName::parse(name));
        let description = c.check(input::description(description.unwrap_or("")));
        c.finish()?;
        Ok(Self {
            name: name.unwrap(),
            description: description.unwrap(),
        })
    }
}

pub struct VaultPatch {
    pub name: Option<input::VaultName>,
    pub description: Option<String>,
}

impl VaultPatch {
    pub fn parse(name: Option<&str>, description: Option<&str>) -> Result<Self> {
        let mut c = input::Checker::default();
        let name = name.and_then(|n| c.check(input::VaultName::parse(n)));
        let description = description.and_then(|d| c.check(input::description(d)));
        c.finish()?;
        Ok(Self { name, description })
    }
}

pub async fn list_for(db: &impl ConnectionTrait, user_id: Uuid) -> Result<Vec<dto::VaultWithRole>> {
    let rows = memberships::Entity::find()
        .filter(memberships::Column::UserId.eq(user_id))
        .find_also_related(vaults::Entity)
        .order_by_asc(memberships::Column::JoinedAt)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(m, v)| {
            v.map(|v| dto::VaultWithRole {
                vault: dto::Vault::from(&v),
                role: role_name(m.role),
            })
        })
        .collect())
}

/// Creates a vault with the caller as its owner. A new vault has an empty log.
pub async fn create(db: &impl ConnectionTrait, actor: &Actor, new: NewVault) -> Result<dto::Vault> {
    let NewVault { name, description } = new;
    let at = now();
    let vault = vaults::Model {
        id: Uuid::new_v4(),
        name: name.0,
        description,
        last_seq: 0,
        created_at: at,
        updated_at: at,
    };
    vaults::Entity::insert(vaults::ActiveModel {
        id: Set(vault.id),
        name: Set(vault.name.clone()),
        description: Set(vault.description.clone()),
        last_seq: Set(0),
        created_at: Set(at),
        updated_at: Set(at),
    })
    .exec_without_returning(db)
    .await?;
    memberships::Entity::insert(memberships::ActiveModel {
        vault_id: Set(vault.id),
        user_id: Set(actor.user_id),
        role: Set(Role::Owner),
        joined_at: Set(at),
    })
    .exec_without_returning(db)
    .await?;
    Ok(dto::Vault::from(&vault))
}

pub async fn get(
    db: &impl ConnectionTrait,
    actor: &Actor,
    vault_id: Uuid,
) -> Result<(dto::Vault, Role)> {
    let role = access::require(db, vault_id, actor.user_id, Action::Read).await?;
    let vault = find(db, vault_id).await?;
    Ok((dto::Vault::from(&vault), role))
}

pub async fn find(db: &impl ConnectionTrait, vault_id: Uuid) -> Result<vaults::Model> {
    vaults::Entity::find_by_id(vault_id)
        .one(db)
        .await?
        .ok_or(AppError::NotFound("Vault not found"))
}

pub async fn update(
    tx: &mut super::Tx,
    actor: &Actor,
    vault_id: Uuid,
    patch: VaultPatch,
) -> Result<dto::Vault> {
    let seq = events::next_seq(tx, vault_id).await?;
    let role = access::require(&**tx, vault_id, actor.user_id, Action::ManageVault).await?;
    let mut update =
        vaults::Entity::update_many().col_expr(vaults::Column::UpdatedAt, Expr::value(now()));
    if let Some(name) = patch.name {
        update = update.col_expr(vaults::Column::Name, Expr::value(name.0));
    }
    if let Some(description) = patch.description {
        update = update.col_expr(vaults::Column::Description, Expr::value(description));
    }
    update
        .filter(vaults::Column::Id.eq(vault_id))
        .exec(&**tx)
        .await?;
    let vault = dto::Vault::from(&find(&**tx, vault_id).await?);
    let change = events::Change::new(EventKind::VaultUpdated, json!({ "vault": vault }));
    events::append(tx, vault_id, seq, actor, role, change).await?;
    Ok(vault)
}

pub async fn delete(tx: &mut super::Tx, actor: &Actor, vault_id: Uuid) -> Result<()> {
    let seq = events::next_seq(tx, vault_id).await?;
    let role = access::require(&**tx, vault_id, actor.user_id, Action::ManageVault).await?;
    let change = events::Change::new(EventKind::VaultDeleted, json!({}));
    events::append(tx, vault_id, seq, actor, role, change).await?;
    vaults::Entity::delete_by_id(vault_id).exec(&**tx).await?;
    Ok(())
}
