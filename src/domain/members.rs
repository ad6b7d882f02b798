//! Memberships: list, add by email, change role, remove or leave. A vault always keeps at
//! least one owner.
use sea_orm::{
    ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, PaginatorTrait, QueryFilter,
    QueryOrder, SqlErr, prelude::Expr,
};
use uuid::Uuid;

use super::{
    Actor, Role,
    access::{self, Action},
    dto,
    events::{self, EventKind},
    input, now,
};
use crate::error::{AppError, Result};
use entities::{memberships, users};

pub struct NewMember {
    pub email: input::Email,
    pub role: Role,
}

impl NewMember {
    pub fn parse(email: &str, role: &str) -> Result<Self> {
        let mut c = input::Checker::default();
        let email = c.check(input::Email::parse(email));
        let role = c.check(input::role(role));
        c.finish()?;
        Ok(Self {
            email: email.unwrap(),
            role: role.unwrap(),
        })
    }
}

pub fn parse_role(raw: &str) -> Result<Role> {
    input::role(raw).map_err(|e| AppError::validation(vec![e]))
}

pub async fn list(
    db: &impl ConnectionTrait,
    actor: &Actor,
    vault_id: Uuid,
) -> Result<Vec<dto::Member>> {
    access::require(db, vault_id, actor.user_id, Action::Read).await?;
    let rows = memberships::Entity::find()
        .filter(memberships::Column::VaultId.eq(vault_id))
        .find_also_related(users::Entity)
        .order_by_asc(memberships::Column::JoinedAt)
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .filter_map(|(m, u)| u.map(|u| dto::Member::new(&u, m.role, m.joined_at)))
        .collect())
}

pub async fn add(
    tx: &mut super::Tx,
    actor: &Actor,
    vault_id: Uuid,
    new: NewMember,
) -> Result<dto::Member> {
    let NewMember { email, role } = new;
    let seq = events::next_seq(tx, vault_id).await?;
    let actor_role = access::require(&**tx, vault_id, actor.user_id, Action::ManageVault).await?;
    let user = super::users::find_by_email(&**tx, &email.0)
        .await?
        .ok_or(AppError::NotFound("User not found"))?;
    let joined_at = now();
    let inserted = memberships::Entity::insert(memberships::ActiveModel {
        vault_id: Set(vault_id),
        user_id: Set(user.id),
        role: Set(role),
        joined_at: Set(joined_at),
    })
    .exec_without_returning(&**tx)
    .await;
    if let Err(e) = inserted {
        return Err(match e.sql_err() {
            Some(SqlErr::UniqueConstraintViolation(_)) => {
                AppError::Conflict("User is already a member".into())
            }
            _ => e.into(),
        });
    }
    let member = dto::Member::new(&user, role, joined_at);
    let change = events::Change::of_member(EventKind::MemberAdded, &member);
    events::append(tx, vault_id, seq, actor, actor_role, change).await?;
    Ok(member)
}

pub async fn change_role(
    tx: &mut super::Tx,
    actor: &Actor,
    vault_id: Uuid,
    user_id: Uuid,
    role: Role,
) -> Result<dto::Member> {
    let seq = events::next_seq(tx, vault_id).await?;
    let actor_role = access::require(&**tx, vault_id, actor.user_id, Action::ManageVault).await?;
    let (membership, user) = find(&**tx, vault_id, user_id).await?;
    if membership.role == Role::Owner && role != Role::Owner {
        ensure_other_owner(&**tx, vault_id).await?;
    }
    memberships::Entity::update_many()
        .col_expr(memberships::Column::Role, Expr::value(role))
        .filter(memberships::Column::VaultId.eq(vault_id))
        .filter(memberships::Column::UserId.eq(user_id))
        .exec(&**tx)
        .await?;
    let member = dto::Member::new(&user, role, membership.joined_at);
    let change = events::Change::of_member(EventKind::MemberUpdated, &member);
    events::append(tx, vault_id, seq, actor, actor_role, change).await?;
    Ok(member)
}

/// Removes a member: an owner may remove anyone, any member may remove itself.
pub async fn remove(
    tx: &mut super::Tx,
    actor: &Actor,
    vault_id: Uuid,
    user_id: Uuid,
) -> Result<dto::Member> {
    let seq = events::next_seq(tx, vault_id).await?;
    let action = if user_id == actor.user_id {
        Action::Read
    } else {
        Action::ManageVault
    };
    let actor_role = access::require(&**tx, vault_id, actor.user_id, action).await?;
    let (membership, user) = find(&**tx, vault_id, user_id).await?;
    if membership.role == Role::Owner {
        ensure_other_owner(&**tx, vault_id).await?;
    }
    memberships::Entity::delete_by_id((vault_id, user_id))
        .exec(&**tx)
        .await?;
    let member = dto::Member::new(&user, membership.role, membership.joined_at);
    let change = events::Change::of_member(EventKind::MemberRemoved, &member);
    events::append(tx, vault_id, seq, actor, actor_role, change).await?;
    Ok(member)
}

async fn find(
    db: &impl ConnectionTrait,
    vault_id: Uuid,
    user_id: Uuid,
) -> Result<(memberships::Model, users::Model)> {
    let found = memberships::Entity::find_by_id((vault_id, user_id))
        .find_also_related(users::Entity)
        .one(db)
        .await?;
    match found {
        Some((m, Some(u))) => Ok((m, u)),
        _ => Err(AppError::NotFound("Member not found")),
    }
}

async fn ensure_other_owner(db: &impl ConnectionTrait, vault_id: Uuid) -> Result<()> {
    let owners = memberships::Entity::find()
        .filter(memberships::Column::VaultId.eq(vault_id))
        .filter(memberships::Column::Role.eq(Role::Owner))
        .count(db)
        .await?;
    if owners > 1 {
        Ok(())
    } else {
        Err(AppError::Conflict(
            "A vault must keep at least one owner".into(),
        ))
    }
}
