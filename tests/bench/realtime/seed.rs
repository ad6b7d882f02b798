//! The real shape's data: V vaults, each with S members online (distinct users) and an
//! E-event log, written straight into the server's database before any socket joins.
//!
//! Shortcut: E × V commits over REST would take minutes, so the rows go in directly, exactly
//! as the server writes them: a vault row with `last_seq = E`, E sources and E
//! `source:created` events whose payloads are the contract's objects (§6). Users get a
//! session row whose token hash is the SHA-256 of a random token (both servers' scheme); their
//! password hash is a placeholder because nobody signs in with a password.
//!
//! Who is where: P = max(V, S) users; vault v's members are users (v + j·⌊P/S⌋) mod P for
//! j < S, all contributors, so every user is in V·S/P vaults (5 at the defaults) and has one
//! socket (tab) per vault; member 0 commits into the vault.
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use rand::RngCore;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use uuid::Uuid;

#[derive(Debug, Clone, Copy)]
pub struct Shape {
    pub vaults: usize,
    /// Sockets (members online) per vault.
    pub sockets: usize,
    /// Events in each vault's log before the run.
    pub events: usize,
}

impl Shape {
    pub fn users(&self) -> usize {
        self.vaults.max(self.sockets).max(1)
    }

    pub fn total_sockets(&self) -> usize {
        self.vaults * self.sockets
    }

    pub fn label(&self) -> String {
        format!(
            "{} vaults × {} sockets, {}-event logs",
            self.vaults, self.sockets, self.events
        )
    }
}

pub struct User {
    pub id: Uuid,
    pub email: String,
    pub name: String,
    pub token: String,
    pub token_hash: String,
}

/// Everything the bench needs to know about the seeded world.
pub struct World {
    pub shape: Shape,
    pub users: Vec<User>,
    pub vaults: Vec<Uuid>,
    /// Per vault, its members' user indexes (member 0 commits).
    pub members: Vec<Vec<usize>>,
    pub at: DateTime<Utc>,
}

impl World {
    pub fn plan(shape: Shape) -> World {
        let run = &Uuid::new_v4().simple().to_string()[..8];
        let p = shape.users();
        let users = (0..p)
            .map(|i| {
                let mut bytes = [0u8; 32];
                rand::rng().fill_bytes(&mut bytes);
                let token = hex::encode(bytes);
                User {
                    id: Uuid::new_v4(),
                    email: format!("shape-{run}-{i:06}@bench.example"),
                    name: format!("Shape User {i:06}"),
                    token_hash: hex::encode(Sha256::digest(token.as_bytes())),
                    token,
                }
            })
            .collect();
        let step = (p / shape.sockets.max(1)).max(1);
        let members = (0..shape.vaults)
            .map(|v| (0..shape.sockets).map(|j| (v + j * step) % p).collect())
            .collect();
        World {
            shape,
            users,
            vaults: (0..shape.vaults).map(|_| Uuid::new_v4()).collect(),
            members,
            // Back-dated so that live commits sort after the seeded sources.
            at: Utc::now() - Duration::hours(1),
        }
    }

    pub fn cookie(&self, user: usize) -> String {
        format!("{}={}", crate::rest::COOKIE_NAME, self.users[user].token)
    }

    /// The session cookie of vault `v`'s committing member.
    pub fn writer_cookie(&self, v: usize) -> String {
        self.cookie(self.members[v][0])
    }

    /// (vault index, cookie) of every socket, vault by vault.
    pub fn sockets(&self) -> Vec<(usize, String)> {
        (0..self.vaults.len())
            .flat_map(|v| self.members[v].iter().map(move |&u| (v, self.cookie(u))))
            .collect()
    }

    /// When seeded event `seq` (and its source) was made.
    pub fn time_of(&self, seq: usize) -> DateTime<Utc> {
        self.at + Duration::milliseconds(seq as i64)
    }
}

pub fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// A seeded source: (id, title).
pub fn source(vault: usize, seq: usize) -> (Uuid, String) {
    (Uuid::new_v4(), format!("Seeded source {vault}/{seq}"))
}

pub const FILE_URL: &str = "https://example.com/paper.pdf";

/// The `source:created` payload of seq `seq` in vault `v` (CONTRACT §6).
pub fn payload(w: &World, v: usize, seq: usize, source_id: Uuid, title: &str) -> Value {
    let author = &w.users[w.members[v][0]];
    let t = iso(w.time_of(seq));
    json!({
        "vaultId": w.vaults[v],
        "seq": seq,
        "source": {
            "id": source_id,
            "vaultId": w.vaults[v],
            "title": title,
            "fileUrl": FILE_URL,
            "createdBy": author.id,
            "createdAt": t,
            "updatedAt": t,
            "version": 1,
        },
        "actor": { "userId": author.id, "userName": author.name, "role": "contributor" },
        "timestamp": t,
    })
}
