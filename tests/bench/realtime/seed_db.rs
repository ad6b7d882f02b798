//! Writes a planned [`World`] into a server's database: this project's schema (SQLite or
//! PostgreSQL, through the `entities` crate) or the Node peer's (`/work/shared/peer/src/db.js`,
//! SQLite, plain SQL). One transaction; rows in chunks well under both databases' limits on
//! bound parameters.
use entities::{events, memberships, sessions, sources, users, vaults};
use sea_orm::{
    ActiveValue::Set, ConnectionTrait, Database, DatabaseTransaction, DbBackend, EntityTrait,
    Statement, TransactionTrait, Value,
};

use crate::{
    seed::{FILE_URL, World, iso, payload, source},
    server::die,
};

const CHUNK: usize = 400;

/// Which schema the database has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Schema {
    Ours,
    Peer,
}

pub async fn write(world: &World, db_url: &str, schema: Schema) {
    let db = Database::connect(db_url)
        .await
        .unwrap_or_else(|e| die(&format!("seed connection: {e}")));
    let txn = db
        .begin()
        .await
        .unwrap_or_else(|e| die(&format!("begin: {e}")));
    match schema {
        Schema::Ours => ours(world, &txn).await,
        Schema::Peer => peer(world, &txn).await,
    }
    txn.commit()
        .await
        .unwrap_or_else(|e| die(&format!("seed commit: {e}")));
    let _ = db.close().await;
}

async fn flush<A, E>(txn: &DatabaseTransaction, rows: &mut Vec<A>, what: &str)
where
    A: sea_orm::ActiveModelTrait<Entity = E> + Send,
    E: EntityTrait,
{
    if rows.is_empty() {
        return;
    }
    E::insert_many(std::mem::take(rows))
        .exec_without_returning(txn)
        .await
        .unwrap_or_else(|e| die(&format!("seed {what}: {e}")));
}

async fn ours(w: &World, txn: &DatabaseTransaction) {
    let at = w.at;
    let (mut us, mut ss) = (Vec::new(), Vec::new());
    for u in &w.users {
        us.push(users::ActiveModel {
            id: Set(u.id),
            email: Set(u.email.clone()),
            name: Set(u.name.clone()),
            password_hash: Set("bench: no password sign-in".into()),
            created_at: Set(at),
        });
        ss.push(sessions::ActiveModel {
            id: Set(uuid::Uuid::new_v4()),
            user_id: Set(u.id),
            token_hash: Set(u.token_hash.clone()),
            created_at: Set(at),
            expires_at: Set(at + chrono::Duration::days(7)),
            last_seen_at: Set(at),
        });
        if us.len() >= CHUNK {
            flush(txn, &mut us, "users").await;
            flush(txn, &mut ss, "sessions").await;
        }
    }
    flush(txn, &mut us, "users").await;
    flush(txn, &mut ss, "sessions").await;
    let e = w.shape.events;
    // Parents first: every vault, then the rows that reference one.
    let mut vs = Vec::new();
    for (v, &id) in w.vaults.iter().enumerate() {
        vs.push(vaults::ActiveModel {
            id: Set(id),
            name: Set(format!("Shape vault {v}")),
            description: Set(String::new()),
            last_seq: Set(e as i64),
            created_at: Set(at),
            updated_at: Set(at),
        });
        if vs.len() >= CHUNK {
            flush(txn, &mut vs, "vaults").await;
        }
    }
    flush(txn, &mut vs, "vaults").await;
    let (mut ms, mut srcs, mut evs) = (Vec::new(), Vec::new(), Vec::new());
    for (v, &id) in w.vaults.iter().enumerate() {
        for &u in &w.members[v] {
            ms.push(memberships::ActiveModel {
                vault_id: Set(id),
                user_id: Set(w.users[u].id),
                role: Set(memberships::Role::Contributor),
                joined_at: Set(at),
            });
        }
        if ms.len() >= CHUNK {
            flush(txn, &mut ms, "memberships").await;
        }
        let author = w.users[w.members[v][0]].id;
        for seq in 1..=e {
            let (sid, title) = source(v, seq);
            let t = w.time_of(seq);
            srcs.push(sources::ActiveModel {
                id: Set(sid),
                vault_id: Set(id),
                title: Set(title.clone()),
                file_url: Set(FILE_URL.into()),
                created_by: Set(Some(author)),
                created_seq: Set(seq as i64),
                version: Set(1),
                created_at: Set(t),
                updated_at: Set(t),
            });
            evs.push(events::ActiveModel {
                vault_id: Set(id),
                seq: Set(seq as i64),
                event_type: Set("source:created".into()),
                actor_id: Set(Some(author)),
                payload: Set(payload(w, v, seq, sid, &title)),
                created_at: Set(t),
            });
            if evs.len() >= CHUNK {
                flush(txn, &mut srcs, "sources").await;
                flush(txn, &mut evs, "events").await;
            }
        }
    }
    flush(txn, &mut ms, "memberships").await;
    flush(txn, &mut srcs, "sources").await;
    flush(txn, &mut evs, "events").await;
}

/// Rows of one table, flushed as multi-row INSERTs.
struct Rows<'a> {
    txn: &'a DatabaseTransaction,
    head: &'static str,
    width: usize,
    values: Vec<Value>,
}

impl<'a> Rows<'a> {
    fn new(txn: &'a DatabaseTransaction, head: &'static str, width: usize) -> Self {
        Rows {
            txn,
            head,
            width,
            values: Vec::new(),
        }
    }

    async fn push(&mut self, row: Vec<Value>) {
        self.values.extend(row);
        if self.values.len() >= CHUNK * self.width {
            self.flush().await;
        }
    }

    async fn flush(&mut self) {
        if self.values.is_empty() {
            return;
        }
        let one = format!("({})", vec!["?"; self.width].join(","));
        let rows = vec![one; self.values.len() / self.width].join(",");
        let sql = format!("{} VALUES {rows}", self.head);
        let values = std::mem::take(&mut self.values);
        let stmt = Statement::from_sql_and_values(DbBackend::Sqlite, sql, values);
        self.txn
            .execute_raw(stmt)
            .await
            .unwrap_or_else(|e| die(&format!("seed ({}): {e}", self.head)));
    }
}

async fn peer(w: &World, txn: &DatabaseTransaction) {
    let at = iso(w.at);
    let expires = (w.at + chrono::Duration::days(7)).timestamp_millis();
    let s = |v: &str| Value::from(v.to_string());
    let mut us = Rows::new(
        txn,
        "INSERT INTO users (id, email, name, password_hash, created_at)",
        5,
    );
    let mut ss = Rows::new(
        txn,
        "INSERT INTO sessions (token_hash, user_id, created_at, expires_at)",
        4,
    );
    for u in &w.users {
        let id = u.id.to_string();
        us.push(vec![s(&id), s(&u.email), s(&u.name), s("-"), s(&at)])
            .await;
        ss.push(vec![s(&u.token_hash), s(&id), s(&at), expires.into()])
            .await;
    }
    us.flush().await;
    ss.flush().await;
    let e = w.shape.events;
    let mut vs = Rows::new(
        txn,
        "INSERT INTO vaults (id, name, description, last_seq, created_at, updated_at)",
        6,
    );
    let mut ms = Rows::new(
        txn,
        "INSERT INTO vault_members (vault_id, user_id, role, joined_at)",
        4,
    );
    let mut srcs = Rows::new(
        txn,
        "INSERT INTO sources (id, vault_id, title, file_url, created_by, created_at, updated_at, \
         version)",
        8,
    );
    let mut evs = Rows::new(
        txn,
        "INSERT INTO vault_events (vault_id, seq, type, payload)",
        4,
    );
    for (v, id) in w.vaults.iter().enumerate() {
        let id = id.to_string();
        let row = vec![
            s(&id),
            s(&format!("Shape vault {v}")),
            s(""),
            (e as i64).into(),
            s(&at),
            s(&at),
        ];
        vs.push(row).await;
        vs.flush().await; // before the rows that reference it
        for &u in &w.members[v] {
            let member = vec![
                s(&id),
                s(&w.users[u].id.to_string()),
                s("contributor"),
                s(&at),
            ];
            ms.push(member).await;
        }
        let author = w.users[w.members[v][0]].id.to_string();
        for seq in 1..=e {
            let (sid, title) = source(v, seq);
            let t = iso(w.time_of(seq));
            let row = vec![
                s(&sid.to_string()),
                s(&id),
                s(&title),
                s(FILE_URL),
                s(&author),
                s(&t),
                s(&t),
                1i64.into(),
            ];
            srcs.push(row).await;
            let body = payload(w, v, seq, sid, &title).to_string();
            let event = vec![s(&id), (seq as i64).into(), s("source:created"), s(&body)];
            evs.push(event).await;
        }
    }
    for rows in [&mut ms, &mut srcs, &mut evs] {
        rows.flush().await;
    }
}
