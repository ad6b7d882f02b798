//! The people behind the sockets: `per_user` sockets per user (tabs sharing one session),
//! all viewers of the Demo Vault.
//!
//! Shortcut: signing up hundreds of users over REST costs an argon2 hash each. User 0 is
//! `viewer@demo.com` signed in over REST and user 1 registers over REST; the others are rows
//! written straight into the server's database with user 1's (valid argon2) password hash,
//! a viewer membership and a session whose `token_hash` is the SHA-256 of a random token,
//! exactly what the server writes itself (src/domain/sessions.rs).
use chrono::Utc;
use entities::{memberships, sessions, users};
use rand::RngCore;
use sea_orm::{
    ActiveValue::Set, ColumnTrait, Database, EntityTrait, QueryFilter, TransactionTrait,
};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::{rest, server::die};

/// Rows per INSERT (well under SQLite's and PostgreSQL's bound-parameter limits).
const CHUNK: usize = 500;

pub struct Population {
    cookies: Vec<String>,
    per_user: usize,
}

impl Population {
    /// Every socket as `viewer@demo.com`, one session.
    pub async fn one_user(http: &reqwest::Client, base: &str) -> Population {
        Population {
            cookies: vec![rest::login(http, base, "viewer@demo.com").await],
            per_user: usize::MAX,
        }
    }

    pub fn cookie_for(&self, socket: usize) -> String {
        let user = (socket / self.per_user).min(self.cookies.len() - 1);
        self.cookies[user].clone()
    }

    /// Distinct users among the first `sockets` sockets.
    pub fn users_for(&self, sockets: usize) -> usize {
        sockets.div_ceil(self.per_user).clamp(1, self.cookies.len())
    }

    /// `users` viewers of `vault`, `per_user` sockets each.
    pub async fn many(
        http: &reqwest::Client,
        base: &str,
        db_url: &str,
        vault: &str,
        users: usize,
        per_user: usize,
    ) -> Population {
        let mut cookies = vec![rest::login(http, base, "viewer@demo.com").await];
        if users < 2 {
            return Population { cookies, per_user };
        }
        let run = &Uuid::new_v4().simple().to_string()[..8];
        let email = |i: usize| format!("bench-{run}-{i:05}@bench.example");
        let name = |i: usize| format!("Bench User {i:05}");
        cookies.push(rest::register(http, base, &email(1), &name(1)).await);

        let db = Database::connect(db_url)
            .await
            .unwrap_or_else(|e| die(&format!("bench database connection: {e}")));
        let registered = users::Entity::find()
            .filter(users::Column::Email.eq(email(1)))
            .one(&db)
            .await
            .ok()
            .flatten()
            .unwrap_or_else(|| die("the registered bench user is not in the database"));
        let vault_id = Uuid::parse_str(vault).unwrap_or_else(|e| die(&format!("vault id: {e}")));
        let now = Utc::now();
        let mut user_rows = Vec::new();
        let mut member_rows = vec![membership(vault_id, registered.id, now)];
        let mut session_rows = Vec::new();
        for i in 2..users {
            let id = Uuid::new_v4();
            user_rows.push(users::ActiveModel {
                id: Set(id),
                email: Set(email(i)),
                name: Set(name(i)),
                password_hash: Set(registered.password_hash.clone()),
                created_at: Set(now),
            });
            member_rows.push(membership(vault_id, id, now));
            let (token, row) = session(id, now);
            session_rows.push(row);
            cookies.push(format!("{}={token}", rest::COOKIE_NAME));
        }
        let txn = db
            .begin()
            .await
            .unwrap_or_else(|e| die(&format!("begin: {e}")));
        for chunk in user_rows.chunks(CHUNK) {
            let q = users::Entity::insert_many(chunk.to_vec());
            q.exec_without_returning(&txn)
                .await
                .unwrap_or_else(|e| die(&format!("users: {e}")));
        }
        for chunk in member_rows.chunks(CHUNK) {
            let q = memberships::Entity::insert_many(chunk.to_vec());
            q.exec_without_returning(&txn)
                .await
                .unwrap_or_else(|e| die(&format!("memberships: {e}")));
        }
        for chunk in session_rows.chunks(CHUNK) {
            let q = sessions::Entity::insert_many(chunk.to_vec());
            q.exec_without_returning(&txn)
                .await
                .unwrap_or_else(|e| die(&format!("sessions: {e}")));
        }
        txn.commit()
            .await
            .unwrap_or_else(|e| die(&format!("commit: {e}")));
        let _ = db.close().await;
        Population { cookies, per_user }
    }
}

fn membership(
    vault_id: Uuid,
    user_id: Uuid,
    at: chrono::DateTime<Utc>,
) -> memberships::ActiveModel {
    memberships::ActiveModel {
        vault_id: Set(vault_id),
        user_id: Set(user_id),
        role: Set(memberships::Role::Viewer),
        joined_at: Set(at),
    }
}

/// A session row and its raw token (the cookie's value).
fn session(user_id: Uuid, at: chrono::DateTime<Utc>) -> (String, sessions::ActiveModel) {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    let token = hex::encode(bytes);
    let row = sessions::ActiveModel {
        id: Set(Uuid::new_v4()),
        user_id: Set(user_id),
        token_hash: Set(hex::encode(Sha256::digest(token.as_bytes()))),
        created_at: Set(at),
        expires_at: Set(at + chrono::Duration::days(7)),
        last_seen_at: Set(at),
    };
    (token, row)
}
