//! The last events a room relayed, in order, so that a socket that rejoins after a short
//! absence (a reconnect, or a whole storm of them after a restart) replays from memory
//! instead of reading the log once per socket.
use std::collections::VecDeque;

use crate::domain::events::Event;

/// How many events a room keeps.
pub const KEPT: usize = 256;

#[derive(Default)]
pub struct History {
    events: VecDeque<Event>,
}

impl History {
    /// The next event relayed; a gap starts the history over, so it is always contiguous.
    pub fn push(&mut self, event: Event) {
        if self
            .events
            .back()
            .is_some_and(|last| last.seq + 1 != event.seq)
        {
            self.events.clear();
        }
        if self.events.len() == KEPT {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }

    /// Up to `limit` events with `after < seq <= upto`, oldest first, if the history holds the
    /// first of them (else the log must be read).
    pub fn range(&self, after: i64, upto: i64, limit: usize) -> Option<Vec<Event>> {
        let first = self.events.front()?.seq;
        if after + 1 < first || after >= self.events.back()?.seq {
            return None;
        }
        let skip = usize::try_from(after + 1 - first).ok()?;
        Some(
            self.events
                .iter()
                .skip(skip)
                .take_while(|e| e.seq <= upto)
                .take(limit)
                .cloned()
                .collect(),
        )
    }
}

#[cfg(test)]
mod tests {
    use serde_json::value::RawValue;
    use uuid::Uuid;

    use super::*;
    use crate::domain::EventKind;

    fn event(seq: i64) -> Event {
        Event {
            vault_id: Uuid::nil(),
            seq,
            kind: EventKind::SourceCreated,
            member: None,
            payload: RawValue::from_string(format!("{{\"seq\":{seq}}}"))
                .unwrap()
                .into(),
        }
    }

    fn seqs(events: Option<Vec<Event>>) -> Option<Vec<i64>> {
        events.map(|e| e.iter().map(|e| e.seq).collect())
    }

    #[test]
    fn a_range_comes_from_memory_only_if_it_starts_inside() {
        let mut h = History::default();
        for seq in 5..=9 {
            h.push(event(seq));
        }
        assert_eq!(seqs(h.range(6, 8, 10)), Some(vec![7, 8]));
        assert_eq!(seqs(h.range(4, 9, 2)), Some(vec![5, 6]));
        assert_eq!(seqs(h.range(3, 9, 10)), None, "seq 4 is not kept");
        assert_eq!(seqs(h.range(9, 12, 10)), None, "nothing after the last");
    }

    #[test]
    fn it_keeps_the_last_events_and_starts_over_at_a_gap() {
        let mut h = History::default();
        for seq in 1..=(KEPT as i64 + 10) {
            h.push(event(seq));
        }
        assert_eq!(seqs(h.range(10, 11, 10)), Some(vec![11]));
        assert_eq!(h.range(9, 11, 10).map(|e| e.len()), None);
        h.push(event(KEPT as i64 + 20));
        assert_eq!(
            seqs(h.range(KEPT as i64 + 19, KEPT as i64 + 20, 10)),
            Some(vec![KEPT as i64 + 20])
        );
        assert_eq!(
            h.range(15, 20, 10).map(|e| e.len()),
            None,
            "the gap cleared it"
        );
    }
}
