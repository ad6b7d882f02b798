//! The permission matrix of CONTRACT §4, checked against the database on every call (roles are
//! never cached). A non-member is told the vault does not exist.
use sea_orm::{ConnectionTrait, EntityTrait};
use uuid::Uuid;

use super::Role;
use crate::error::{AppError, Result};
use entities::{memberships, vaults};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Read,
    WriteSources,
    ManageVault,
}

pub fn allows(role: Role, action: Action) -> bool {
    match action {
        Action::Read => true,
        Action::WriteSources => matches!(role, Role::Owner | Role::Contributor),
        Action::ManageVault => role == Role::Owner,
    }
}

pub async fn role_of(
    db: &impl ConnectionTrait,
    vault_id: Uuid,
    user_id: Uuid,
) -> Result<Option<Role>> {
    Ok(memberships::Entity::find_by_id((vault_id, user_id))
        .one(db)
        .await?
        .map(|m| m.role))
}

/// The caller's role and the vault's latest `seq`, read in one query (one snapshot): what a
/// socket joining the vault may see, as of which event.
pub async fn role_and_latest(
    db: &impl ConnectionTrait,
    vault_id: Uuid,
    user_id: Uuid,
) -> Result<Option<(Role, i64)>> {
    let found = memberships::Entity::find_by_id((vault_id, user_id))
        .find_also_related(vaults::Entity)
        .one(db)
        .await?;
    Ok(found.and_then(|(m, v)| v.map(|v| (m.role, v.last_seq))))
}

/// The caller's role if it may perform `action`; `NOT_FOUND` for non-members, `FORBIDDEN`
/// for members whose role does not allow it.
pub async fn require(
    db: &impl ConnectionTrait,
    vault_id: Uuid,
    user_id: Uuid,
    action: Action,
) -> Result<Role> {
    let role = role_of(db, vault_id, user_id)
        .await?
        .ok_or(AppError::NotFound("Vault not found"))?;
    if allows(role, action) {
        Ok(role)
    } else {
        Err(AppError::Forbidden("Insufficient permissions"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_matrix_matches_the_contract() {
        let table = [
            (Role::Owner, [true, true, true]),
            (Role::Contributor, [true, true, false]),
            (Role::Viewer, [true, false, false]),
        ];
        for (role, expected) in table {
            let got =
                [Action::Read, Action::WriteSources, Action::ManageVault].map(|a| allows(role, a));
            assert_eq!(got, expected, "{role:?}");
        }
    }
}
