//! The permission matrix of CONTRACT §4, checked against the database on every call (roles are
//! never cached). A non-member is told the vault does not exist.
use sea_orm::{
    ActiveEnum, ConnectionTrait, DbBackend, EntityTrait,
    prelude::Expr,
    sea_query::{ExprTrait, Query, QueryStatementBuilder},
};
use uuid::Uuid;

use super::{Role, Tx};
use crate::{
    db::BuiltOnce,
    error::{AppError, Result},
};
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

/// For many (vault, user) pairs, in one query (one snapshot): what a socket joining the vault
/// may see, as of which event. Each pair that is a membership comes back with its role and the
/// vault's latest `seq`; the others are absent (see `realtime::join_reads`, which batches
/// joins into it). Row values (`(a, b) IN (VALUES …)`) need SQLite ≥ 3.15; keep `pairs` to a few
/// hundred, under either backend's limit on bound parameters.
pub async fn roles_and_latest(
    db: &impl ConnectionTrait,
    pairs: &[(Uuid, Uuid)],
) -> Result<Vec<((Uuid, Uuid), (Role, i64))>> {
    use memberships::Column as M;
    if pairs.is_empty() {
        return Ok(Vec::new());
    }
    let numbered = db.get_database_backend() == DbBackend::Postgres;
    let rows = (0..pairs.len())
        .map(|i| match numbered {
            true => format!("(${}, ${})", 2 * i + 1, 2 * i + 2),
            false => "(?, ?)".to_string(),
        })
        .collect::<Vec<_>>()
        .join(", ");
    let values = pairs.iter().flat_map(|&(v, u)| [v, u]);
    let select = Query::select()
        .column((memberships::Entity, M::VaultId))
        .column((memberships::Entity, M::UserId))
        .column((memberships::Entity, M::Role))
        .column((vaults::Entity, vaults::Column::LastSeq))
        .from(memberships::Entity)
        .inner_join(
            vaults::Entity,
            Expr::col((vaults::Entity, vaults::Column::Id))
                .equals((memberships::Entity, M::VaultId)),
        )
        .and_where(Expr::cust_with_values(
            format!("(memberships.vault_id, memberships.user_id) IN (VALUES {rows})"),
            values,
        ))
        .to_owned();
    let mut found = Vec::with_capacity(pairs.len());
    for row in db.query_all(&select).await? {
        let key = (row.try_get_by_index(0)?, row.try_get_by_index(1)?);
        let role = Role::try_from_value(&row.try_get_by_index::<String>(2)?)?;
        found.push((key, (role, row.try_get_by_index(3)?)));
    }
    Ok(found)
}

/// The caller's role if it may perform `action`; `NOT_FOUND` for non-members, `FORBIDDEN`
/// for members whose role does not allow it.
pub async fn require(
    db: &impl ConnectionTrait,
    vault_id: Uuid,
    user_id: Uuid,
    action: Action,
) -> Result<Role> {
    permitted(role_of(db, vault_id, user_id).await?, action)
}

/// `role` if it may perform `action`: `NOT_FOUND` for no role (not a member), `FORBIDDEN` for
/// one that does not allow it.
fn permitted(role: Option<Role>, action: Action) -> Result<Role> {
    let role = role.ok_or(AppError::NotFound("Vault not found"))?;
    if allows(role, action) {
        Ok(role)
    } else {
        Err(AppError::Forbidden("Insufficient permissions"))
    }
}

/// Takes the vault's next `seq` and checks the caller's role in one statement: the `UPDATE`
/// that bumps the vault's `last_seq` (locking its row until commit, which serializes writers
/// per vault and orders their commits) returns the caller's role beside the new `seq`. Errors
/// as [`require`]; a refused write rolls the bump back with its transaction.
pub async fn next_seq_requiring(
    tx: &Tx,
    vault_id: Uuid,
    user_id: Uuid,
    action: Action,
) -> Result<(i64, Role)> {
    static BUILT: BuiltOnce = BuiltOnce::new();
    let backend = tx.backend();
    let values = vec![1.into(), vault_id.into(), vault_id.into(), user_id.into()];
    let update = BUILT.statement(backend, values, || {
        use memberships::Column as M;
        let role = Query::select()
            .column(M::Role)
            .from(memberships::Entity)
            .and_where(Expr::col((memberships::Entity, M::VaultId)).eq(vault_id))
            .and_where(Expr::col((memberships::Entity, M::UserId)).eq(user_id))
            .to_owned();
        let mut update = super::events::seq_bump(vault_id);
        update.returning(Query::returning().exprs([
            Expr::col(vaults::Column::LastSeq),
            Expr::SubQuery(None, Box::new(role.into_sub_query_statement())),
        ]));
        backend.build(&update)
    });
    let row = tx
        .query_row(update)
        .await?
        .ok_or(AppError::NotFound("Vault not found"))?;
    let seq = row.i64(0)?;
    let role = row
        .text_or_null(1)?
        .and_then(|r| Role::try_from_value(&r).ok());
    Ok((seq, permitted(role, action)?))
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
