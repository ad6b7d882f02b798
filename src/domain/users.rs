//! Accounts: registration and credential checks.
use sea_orm::{ActiveValue::Set, ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, SqlErr};
use uuid::Uuid;

use super::{input, now, passwords::Passwords};
use crate::error::{AppError, Result};
use entities::users;

pub struct NewUser {
    pub email: input::Email,
    pub name: String,
    pub password: String,
}

impl NewUser {
    pub fn parse(email: &str, name: &str, password: &str) -> Result<Self> {
        let mut c = input::Checker::default();
        let email = c.check(input::Email::parse(email));
        let name = c.check(input::user_name(name));
        let password = c.check(input::new_password(password));
        c.finish()?;
        Ok(Self {
            email: email.unwrap(),
            name: name.unwrap(),
            password: password.unwrap(),
        })
    }
}

pub async fn create(
    db: &impl ConnectionTrait,
    passwords: &Passwords,
    new: NewUser,
) -> Result<users::Model> {
    if find_by_email(db, &new.email.0).await?.is_some() {
        return Err(AppError::Conflict(
            "An account with this email already exists".into(),
        ));
    }
    let hash = passwords.hash(new.password).await?;
    let model = users::Model {
        id: Uuid::new_v4(),
        email: new.email.0,
        name: new.name,
        password_hash: hash,
        created_at: now(),
    };
    let result = users::Entity::insert(users::ActiveModel {
        id: Set(model.id),
        email: Set(model.email.clone()),
        name: Set(model.name.clone()),
        password_hash: Set(model.password_hash.clone()),
        created_at: Set(model.created_at),
    })
    .exec_without_returning(db)
    .await;
    match result {
        Ok(_) => Ok(model),
        // Two registrations racing for one email: the unique index decides.
        Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => Err(
            AppError::Conflict("An account with this email already exists".into()),
        ),
        Err(e) => Err(e.into()),
    }
}

pub async fn find_by_email(db: &impl ConnectionTrait, email: &str) -> Result<Option<users::Model>> {
    // No stored email holds U+0000, and PostgreSQL would refuse to compare with it.
    if email.contains('\0') {
        return Ok(None);
    }
    Ok(users::Entity::find()
        .filter(users::Column::Email.eq(email.trim().to_lowercase()))
        .one(db)
        .await?)
}

/// The user if the credentials match; `None` for an unknown email or a wrong password alike.
pub async fn check_credentials(
    db: &impl ConnectionTrait,
    passwords: &Passwords,
    email: &str,
    password: &str,
) -> Result<Option<users::Model>> {
    if password.chars().count() > 256 {
        return Ok(None);
    }
    let user = find_by_email(db, email).await?;
    let ok = passwords
        .verify(
            password.to_string(),
            user.as_ref().map(|u| u.password_hash.clone()),
        )
        .await?;
    Ok(user.filter(|_| ok))
}
