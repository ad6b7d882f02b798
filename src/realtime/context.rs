//! What the server keeps per connected socket: its user and session, its link, the vaults it
//! is joining or has joined, its socket slot and its event-rate window.
//!
//! Joins, leaves, revocations and the disconnect all meet here under one mutex: a join only
//! becomes a membership if, at that moment, the socket is still open and did not leave the
//! vault since the join began. Once closed, a socket can join nothing.
use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Instant,
};

use socketioxide::{adapter::Adapter, handler::FromMessageParts, socket::Socket};
use uuid::Uuid;

use super::{
    limits::Slot,
    link::{Link, Registration},
};
use crate::domain::Actor;

#[derive(Clone)]
pub struct SocketCtx(Arc<Inner>);

struct Inner {
    user: SocketUser,
    link: Registration,
    state: Mutex<State>,
    rate: Mutex<RateWindow>,
}

#[derive(Clone, Debug)]
pub struct SocketUser {
    pub user_id: Uuid,
    pub name: String,
    pub session_id: Uuid,
}

struct State {
    closed: bool,
    vaults: HashMap<Uuid, Membership>,
    joins: u64,
    slot: Option<Slot>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Membership {
    /// A join in progress, told apart from later ones by its number.
    Joining(u64),
    Joined,
}

/// A join in progress for one vault.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct JoinTicket {
    pub vault_id: Uuid,
    id: u64,
    /// The socket was already in the vault: the join begins by leaving it.
    pub rejoin: bool,
}

struct RateWindow {
    started: Instant,
    count: u32,
    strikes: u32,
}

pub(super) enum RateVerdict {
    Ok,
    Limited,
    Disconnect,
}

impl SocketCtx {
    pub(super) fn new(user: SocketUser, link: Registration, slot: Slot) -> Self {
        let rate = RateWindow {
            started: Instant::now(),
            count: 0,
            strikes: 0,
        };
        Self(Arc::new(Inner {
            user,
            link,
            state: Mutex::new(State {
                closed: false,
                vaults: HashMap::new(),
                joins: 0,
                slot: Some(slot),
            }),
            rate: Mutex::new(rate),
        }))
    }

    pub fn user(&self) -> &SocketUser {
        &self.0.user
    }

    pub fn link(&self) -> &Arc<Link> {
        self.0.link.link()
    }

    pub(super) fn actor(&self) -> Actor {
        Actor {
            user_id: self.0.user.user_id,
            user_name: self.0.user.name.clone(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.0.state.lock().unwrap()
    }

    /// Starts a join; `None` once the socket is closed. A later join of the same vault
    /// supersedes this one.
    pub(super) fn begin_join(&self, vault_id: Uuid) -> Option<JoinTicket> {
        let mut st = self.state();
        if st.closed {
            return None;
        }
        st.joins += 1;
        let id = st.joins;
        let before = st.vaults.insert(vault_id, Membership::Joining(id));
        Some(JoinTicket {
            vault_id,
            id,
            rejoin: before == Some(Membership::Joined),
        })
    }

    /// Turns the join into a membership, if it is still wanted. Called under the room's lock.
    pub(super) fn admit(&self, ticket: JoinTicket) -> bool {
        let mut st = self.state();
        let wanted =
            !st.closed && st.vaults.get(&ticket.vault_id) == Some(&Membership::Joining(ticket.id));
        if wanted {
            st.vaults.insert(ticket.vault_id, Membership::Joined);
        }
        wanted
    }

    /// Forgets a join that failed (if no later one replaced it).
    pub(super) fn abandon(&self, ticket: JoinTicket) {
        let mut st = self.state();
        if st.vaults.get(&ticket.vault_id) == Some(&Membership::Joining(ticket.id)) {
            st.vaults.remove(&ticket.vault_id);
        }
    }

    /// Leaves a vault, cancelling a join in progress; true if the socket was in it.
    pub(super) fn leave(&self, vault_id: Uuid) -> bool {
        self.state().vaults.remove(&vault_id) == Some(Membership::Joined)
    }

    /// Closes the socket's bookkeeping, once: the vaults it was in, and its slot (dropped
    /// by the caller, which frees it). `None` if it was closed already.
    pub(super) fn close(&self) -> Option<(Vec<Uuid>, Option<Slot>)> {
        let mut st = self.state();
        if st.closed {
            return None;
        }
        st.closed = true;
        let joined = st
            .vaults
            .drain()
            .filter(|(_, m)| *m == Membership::Joined)
            .map(|(v, _)| v)
            .collect();
        Some((joined, st.slot.take()))
    }

    pub fn is_closed(&self) -> bool {
        self.state().closed
    }

    /// A one-second window; a socket over the limit for three windows running is dropped.
    pub(super) fn rate(&self, per_second: u32) -> RateVerdict {
        let mut w = self.0.rate.lock().unwrap();
        if w.started.elapsed().as_secs_f64() >= 1.0 {
            w.strikes = if w.count > per_second {
                w.strikes + 1
            } else {
                0
            };
            w.started = Instant::now();
            w.count = 0;
        }
        w.count += 1;
        match w.count {
            n if n <= per_second => RateVerdict::Ok,
            n if n > per_second * 4 || w.strikes >= 2 => RateVerdict::Disconnect,
            _ => RateVerdict::Limited,
        }
    }
}

/// Whether the client asked for an acknowledgement.
pub struct HasAck(pub bool);

impl<A: Adapter> FromMessageParts<A> for HasAck {
    type Error = Infallible;
    fn from_message_parts(
        _: &Arc<Socket<A>>,
        _: &mut socketioxide_core::Value,
        ack: &Option<i64>,
    ) -> Result<Self, Infallible> {
        Ok(HasAck(ack.is_some()))
    }
}
