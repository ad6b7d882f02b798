//! What the server keeps per connected socket: its user, the vaults it joined (with the role
//! read at join time, for bookkeeping only — permissions are always re-read), and its
//! event-rate window.
use std::{
    collections::HashMap,
    convert::Infallible,
    sync::{Arc, Mutex},
    time::Instant,
};

use socketioxide::{adapter::Adapter, handler::FromMessageParts, socket::Socket};
use uuid::Uuid;

use crate::domain::{Actor, Role};

/// What the server keeps about a connected socket (in its extensions).
#[derive(Clone)]
pub struct SocketCtx {
    pub user: SocketUser,
    vaults: Arc<Mutex<HashMap<Uuid, Role>>>,
    rate: Arc<Mutex<RateWindow>>,
}

#[derive(Clone, Debug)]
pub struct SocketUser {
    pub user_id: Uuid,
    pub name: String,
    pub session_id: Uuid,
}

pub(super) struct RateWindow {
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
    pub(super) fn new(user: SocketUser) -> Self {
        let rate = RateWindow {
            started: Instant::now(),
            count: 0,
            strikes: 0,
        };
        Self {
            user,
            vaults: Arc::default(),
            rate: Arc::new(Mutex::new(rate)),
        }
    }

    pub(super) fn actor(&self) -> Actor {
        Actor {
            user_id: self.user.user_id,
            user_name: self.user.name.clone(),
        }
    }

    pub(super) fn remember_vault(&self, vault: Uuid, role: Role) -> bool {
        self.vaults.lock().unwrap().insert(vault, role).is_none()
    }

    pub fn forget_vault(&self, vault: Uuid) -> Option<Role> {
        self.vaults.lock().unwrap().remove(&vault)
    }

    pub(super) fn joined_vaults(&self) -> Vec<Uuid> {
        self.vaults.lock().unwrap().keys().copied().collect()
    }

    /// A one-second window; a socket over the limit for three windows running is dropped.
    pub(super) fn rate(&self, per_second: u32) -> RateVerdict {
        let mut w = self.rate.lock().unwrap();
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
