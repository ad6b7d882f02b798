//! Login brute-force protection: failures counted per account and per client address within a
//! sliding window. In-process; each node counts its own.
use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use dashmap::DashMap;

pub struct LoginThrottle {
    max_failures: usize,
    window: Duration,
    failures: DashMap<String, VecDeque<Instant>>,
}

impl LoginThrottle {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            max_failures: max_failures as usize,
            window,
            failures: DashMap::new(),
        }
    }

    /// Seconds to wait if any of the keys is locked out.
    pub fn retry_after(&self, keys: &[String]) -> Option<u64> {
        let now = Instant::now();
        keys.iter()
            .filter_map(|key| {
                let mut entry = self.failures.get_mut(key)?;
                entry.retain(|t| now.duration_since(*t) < self.window);
                (entry.len() >= self.max_failures)
                    .then(|| {
                        entry
                            .front()
                            .map(|first| (self.window - now.duration_since(*first)).as_secs() + 1)
                    })
                    .flatten()
            })
            .max()
    }

    pub fn record_failure(&self, keys: &[String]) {
        let now = Instant::now();
        for key in keys {
            let mut entry = self.failures.entry(key.clone()).or_default();
            entry.push_back(now);
            while entry.len() > self.max_failures {
                entry.pop_front();
            }
        }
    }

    pub fn reset(&self, key: &str) {
        self.failures.remove(key);
    }

    /// Drops entries whose failures have all aged out.
    pub fn sweep(&self) {
        let now = Instant::now();
        self.failures.retain(|_, v| {
            v.back()
                .is_some_and(|t| now.duration_since(*t) < self.window)
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sixth_attempt_is_refused_and_a_reset_clears_the_account() {
        let t = LoginThrottle::new(5, Duration::from_secs(900));
        let keys = ["email:a".to_string(), "ip:1".to_string()];
        for _ in 0..5 {
            assert_eq!(t.retry_after(&keys), None);
            t.record_failure(&keys);
        }
        assert!(t.retry_after(&keys).is_some_and(|s| s > 0 && s <= 901));
        t.reset("email:a");
        assert!(t.retry_after(&keys[..1]).is_none());
        assert!(t.retry_after(&keys[1..]).is_some());
    }
}
