//! The node's memory of recent vault events, shared by every room: what the rooms relay and
//! what joins read from the log, held under one budget in bytes (`realtime.history_budget`).
//! Over budget, the least recently used vault loses its oldest events first, so memory never
//! grows with log length × open rooms. A join takes from here what it can and reads only the
//! rest from the log; joins of one room that miss take turns at the log ([`History::page`]),
//! so a reconnect storm reads each missing range once per room, not once per socket.
//!
//! Seqs are dense (a rolled-back `seq` is given back), so a range is known exactly when every
//! `seq` in it is held; what is held of a vault need not be one run.
use std::{
    collections::{BTreeMap, HashMap},
    sync::{Arc, Mutex},
};

use sea_orm::DatabaseConnection;
use serde_json::value::RawValue;
use uuid::Uuid;

use crate::{
    domain::events::{self, Event, EventKind},
    error::Result,
    metrics::Metrics,
};

/// What holding an event costs besides its payload: the map entry with the B-tree's slack
/// and the payload's allocation header (measured: see the test of that name).
pub const OVERHEAD: usize = 128;

pub struct History {
    held: Mutex<Held>,
    budget: usize,
    metrics: Arc<Metrics>,
}

#[derive(Default)]
struct Held {
    vaults: HashMap<Uuid, Vault>,
    /// Vaults by last use, oldest first.
    lru: BTreeMap<u64, Uuid>,
    clock: u64,
    bytes: usize,
    events: usize,
}

struct Vault {
    events: BTreeMap<i64, Kept>,
    used: u64,
}

/// An event without what its place says (its vault and `seq`).
struct Kept {
    kind: EventKind,
    member: Option<Uuid>,
    payload: Arc<RawValue>,
}

impl Kept {
    fn cost(&self) -> usize {
        self.payload.get().len() + OVERHEAD
    }
}

/// What memory holds of a range.
#[derive(Debug)]
pub enum Lookup {
    /// Its first events, in order (at least one).
    Held(Vec<Event>),
    /// Not its first event: the log must be read after the range's start, up to this `seq`
    /// (where what is held resumes, or the range's end).
    Missing { upto: i64 },
}

impl History {
    pub fn new(budget: usize, metrics: Arc<Metrics>) -> Self {
        Self {
            held: Mutex::default(),
            budget,
            metrics,
        }
    }

    /// Holds an event a room relayed (or a join read), evicting what the budget requires.
    pub fn keep(&self, events: &[Event]) {
        let mut held = self.held.lock().unwrap();
        for event in events {
            held.insert(event);
        }
        held.evict(self.budget);
        self.report(&held);
    }

    /// Drops what is held of a vault (it was deleted).
    pub fn forget(&self, vault_id: Uuid) {
        let mut held = self.held.lock().unwrap();
        if let Some(vault) = held.vaults.remove(&vault_id) {
            held.lru.remove(&vault.used);
            held.bytes -= vault.events.values().map(Kept::cost).sum::<usize>();
            held.events -= vault.events.len();
        }
        self.report(&held);
    }

    /// Up to `limit` events with `after < seq <= upto`, oldest first, as far as memory holds
    /// them without a hole.
    pub fn lookup(&self, vault_id: Uuid, after: i64, upto: i64, limit: usize) -> Lookup {
        let mut held = self.held.lock().unwrap();
        let Some(vault) = held.vaults.get(&vault_id).filter(|_| after < upto) else {
            return Lookup::Missing { upto };
        };
        let mut found = Vec::new();
        let mut resumes = upto;
        for (&seq, kept) in vault.events.range(after + 1..=upto) {
            if seq != after + 1 + found.len() as i64 {
                resumes = seq - 1;
                break;
            }
            if found.len() == limit {
                break;
            }
            found.push(Event {
                vault_id,
                seq,
                kind: kept.kind,
                member: kept.member,
                payload: kept.payload.clone(),
            });
        }
        if found.is_empty() {
            return Lookup::Missing { upto: resumes };
        }
        held.touch(vault_id);
        Lookup::Held(found)
    }

    /// A join's next page after `after` (up to `upto`, at most `limit`): from memory if held,
    /// else from the log, one read at a time per room (`reading` is the room's): a join that
    /// waited for another's read looks again first, and usually finds the events it needs.
    pub async fn page(
        &self,
        db: &DatabaseConnection,
        reading: &tokio::sync::Mutex<()>,
        vault_id: Uuid,
        (after, upto, limit): (i64, i64, usize),
    ) -> Result<Vec<Event>> {
        let mut missing = match self.lookup(vault_id, after, upto, limit) {
            Lookup::Held(events) => return Ok(self.served(events, false)),
            Lookup::Missing { upto } => upto,
        };
        let _turn = reading.lock().await;
        match self.lookup(vault_id, after, missing, limit) {
            Lookup::Held(events) => return Ok(self.served(events, false)),
            Lookup::Missing { upto } => missing = upto,
        }
        let page: Vec<Event> = events::page(db, vault_id, after, missing, limit as u64)
            .await?
            .into_iter()
            .filter_map(Event::from_log)
            .collect();
        self.metrics.history.log_reads_by_joins.inc();
        self.keep(&page);
        Ok(self.served(page, true))
    }

    fn served(&self, events: Vec<Event>, from_log: bool) -> Vec<Event> {
        let h = &self.metrics.history;
        let counter = if from_log {
            &h.from_log
        } else {
            &h.from_memory
        };
        counter.inc_by(events.len() as u64);
        events
    }

    fn report(&self, held: &Held) {
        let h = &self.metrics.history;
        h.bytes.set(held.bytes as i64);
        h.events.set(held.events as i64);
    }

    #[cfg(test)]
    fn held(&self) -> (usize, usize) {
        let held = self.held.lock().unwrap();
        (held.bytes, held.events)
    }
}

impl Held {
    fn insert(&mut self, event: &Event) {
        let kept = Kept {
            kind: event.kind,
            member: event.member,
            payload: event.payload.clone(),
        };
        let cost = kept.cost();
        let clock = self.clock + 1;
        let vault = self.vaults.entry(event.vault_id).or_insert_with(|| Vault {
            events: BTreeMap::new(),
            used: clock,
        });
        match vault.events.insert(event.seq, kept) {
            Some(old) => self.bytes -= old.cost(),
            None => self.events += 1,
        }
        self.bytes += cost;
        self.touch(event.vault_id);
    }

    /// Marks a vault as the most recently used.
    fn touch(&mut self, vault_id: Uuid) {
        self.clock += 1;
        if let Some(vault) = self.vaults.get_mut(&vault_id) {
            self.lru.remove(&vault.used);
            vault.used = self.clock;
            self.lru.insert(self.clock, vault_id);
        }
    }

    /// Drops the least recently used vault's oldest events until the budget holds.
    fn evict(&mut self, budget: usize) {
        while self.bytes > budget {
            let Some((&used, &vault_id)) = self.lru.first_key_value() else {
                return;
            };
            let vault = self
                .vaults
                .get_mut(&vault_id)
                .expect("listed vaults are held");
            if let Some((_, kept)) = vault.events.pop_first() {
                self.bytes -= kept.cost();
                self.events -= 1;
            }
            if vault.events.is_empty() {
                self.vaults.remove(&vault_id);
                self.lru.remove(&used);
            }
        }
    }
}

#[cfg(test)]
#[path = "history_tests.rs"]
mod tests;
