//! Which seqs a socket holds: the highest with none missing before it, whatever order they
//! arrive in (the socket task's `since` on a rejoin; the storm's and throughput's checks).
use std::collections::BTreeSet;

/// The highest seq held with none missing before it, given seqs in any order.
#[derive(Default, Clone)]
pub struct Contig {
    pub value: Option<i64>,
    ahead: BTreeSet<i64>,
}

impl Contig {
    pub fn from(value: i64) -> Self {
        Self {
            value: Some(value),
            ahead: BTreeSet::new(),
        }
    }

    /// The join's `latestSeq`: where a socket that joined without `since` starts.
    pub fn base(&mut self, latest: i64) {
        if self.value.is_none() {
            self.value = Some(latest);
            self.ahead.retain(|&s| s > latest);
            self.advance();
        }
    }

    /// Adds a seq; false when it was already held.
    pub fn add(&mut self, seq: i64) -> bool {
        match self.value {
            Some(v) if seq <= v => false,
            Some(v) if seq == v + 1 => {
                self.value = Some(seq);
                self.advance();
                true
            }
            _ => self.ahead.insert(seq),
        }
    }

    fn advance(&mut self) {
        while let Some(v) = self.value
            && self.ahead.remove(&(v + 1))
        {
            self.value = Some(v + 1);
        }
    }
}
