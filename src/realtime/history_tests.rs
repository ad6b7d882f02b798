use serde_json::value::RawValue;

use super::*;

/// An event of `vault` whose payload is `size` bytes long.
fn event(vault: u128, seq: i64, size: usize) -> Event {
    let text = format!("\"{}\"", "x".repeat(size - 2));
    Event {
        vault_id: Uuid::from_u128(vault),
        seq,
        kind: EventKind::SourceCreated,
        member: None,
        payload: RawValue::from_string(text).unwrap().into(),
    }
}

fn history(budget: usize) -> History {
    History::new(budget, Arc::new(Metrics::new()))
}

fn seqs(lookup: Lookup) -> Result<Vec<i64>, i64> {
    match lookup {
        Lookup::Held(events) => Ok(events.iter().map(|e| e.seq).collect()),
        Lookup::Missing { upto } => Err(upto),
    }
}

fn v(n: u128) -> Uuid {
    Uuid::from_u128(n)
}

#[test]
fn a_range_comes_from_memory_as_far_as_it_is_held_without_a_hole() {
    let h = history(1 << 20);
    let events: Vec<Event> = [5, 6, 7, 8, 12, 13].map(|s| event(1, s, 10)).into();
    h.keep(&events);
    assert_eq!(seqs(h.lookup(v(1), 5, 13, 10)), Ok(vec![6, 7, 8]));
    assert_eq!(seqs(h.lookup(v(1), 4, 8, 2)), Ok(vec![5, 6]));
    assert_eq!(seqs(h.lookup(v(1), 7, 7, 10)), Err(7), "an empty range");
    assert_eq!(
        seqs(h.lookup(v(1), 8, 20, 10)),
        Err(11),
        "read 9..=11, then memory again"
    );
    assert_eq!(seqs(h.lookup(v(1), 2, 20, 10)), Err(4));
    assert_eq!(seqs(h.lookup(v(1), 13, 20, 10)), Err(20), "nothing after");
    assert_eq!(seqs(h.lookup(v(2), 0, 20, 10)), Err(20), "another vault");
}

#[test]
fn the_bytes_held_never_exceed_the_budget_however_many_vaults_and_events() {
    let budget = 64 * 1024;
    let h = history(budget);
    for seq in 1..=300 {
        for vault in 0..50 {
            h.keep(&[event(vault, seq, 1000)]);
            assert!(h.held().0 <= budget);
        }
    }
    let (bytes, events) = h.held();
    assert_eq!(events, budget / (1000 + OVERHEAD));
    assert_eq!(bytes, events * (1000 + OVERHEAD));
    assert_eq!(h.metrics.history.bytes.get(), bytes as i64);
    assert_eq!(h.metrics.history.events.get(), events as i64);
}

#[test]
fn the_least_recently_used_vault_loses_its_oldest_events_first() {
    let cost = 100 + OVERHEAD;
    let h = history(10 * cost);
    for seq in 1..=4 {
        for vault in 1..=2 {
            h.keep(&[event(vault, seq, 100)]);
        }
    }
    // Vault 1 was written first, but a join has just used it.
    assert!(matches!(h.lookup(v(1), 0, 4, 10), Lookup::Held(_)));
    h.keep(&[event(3, 1, 100), event(3, 2, 100), event(3, 3, 100)]);
    assert_eq!(h.held(), (10 * cost, 10));
    assert_eq!(
        seqs(h.lookup(v(2), 0, 4, 10)),
        Err(1),
        "vault 2's oldest went"
    );
    assert_eq!(seqs(h.lookup(v(2), 1, 4, 10)), Ok(vec![2, 3, 4]));
    assert_eq!(seqs(h.lookup(v(1), 0, 4, 10)), Ok(vec![1, 2, 3, 4]));
    h.keep(&[event(3, 4, 100), event(3, 5, 100), event(3, 6, 100)]);
    assert_eq!(
        seqs(h.lookup(v(2), 0, 4, 10)),
        Err(4),
        "then all of vault 2"
    );
    h.keep(&[event(3, 7, 100)]);
    assert_eq!(
        seqs(h.lookup(v(1), 0, 4, 10)),
        Err(1),
        "then vault 1's oldest"
    );
    assert_eq!(seqs(h.lookup(v(3), 0, 9, 10)), Ok((1..=7).collect()));
}

#[test]
fn an_event_held_twice_is_counted_once_and_a_forgotten_vault_frees_its_bytes() {
    let h = history(1 << 20);
    h.keep(&[event(1, 1, 50), event(1, 2, 50)]);
    h.keep(&[event(1, 2, 50), event(2, 1, 70)]);
    assert_eq!(h.held(), (3 * OVERHEAD + 170, 3));
    h.forget(v(1));
    assert_eq!(h.held(), (OVERHEAD + 70, 1));
    assert_eq!(seqs(h.lookup(v(1), 0, 2, 10)), Err(2));
}

#[test]
fn a_zero_budget_holds_nothing() {
    let h = history(0);
    h.keep(&[event(1, 1, 50)]);
    assert_eq!(h.held(), (0, 0));
    assert_eq!(seqs(h.lookup(v(1), 0, 1, 10)), Err(1));
}
