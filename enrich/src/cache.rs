//! A bounded map with a time to live: lookups of entries older than the TTL miss,
//! and inserting into a full map evicts the least recently inserted entry.

use std::collections::VecDeque;

use rustc_hash::FxHashMap as HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Bounded, expiring cache.
#[derive(Debug)]
pub struct Cache<K, V> {
    /// key -> (inserted at, insertion number, value).
    map: HashMap<K, (Instant, u64, V)>,
    /// Insertions in order, by insertion number; stale when the key was re-inserted.
    order: VecDeque<(K, u64)>,
    next: u64,
    capacity: usize,
    ttl: Duration,
    evicted: u64,
}

impl<K: Hash + Eq + Clone, V> Cache<K, V> {
    /// A cache of at most `capacity` entries (at least 1), each valid for `ttl`.
    #[must_use]
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self { map: HashMap::default(), order: VecDeque::new(), next: 0, capacity: capacity.max(1), ttl, evicted: 0 }
    }

    /// The value of `key` if present and younger than the TTL at `now`.
    pub fn get(&self, key: &K, now: Instant) -> Option<&V> {
        self.map.get(key).filter(|(at, _, _)| now.duration_since(*at) < self.ttl).map(|(_, _, v)| v)
    }

    /// Inserts or replaces `key`, evicting the oldest entries beyond capacity.
    pub fn insert(&mut self, key: K, value: V, now: Instant) {
        let seq = self.next;
        self.next += 1;
        self.map.insert(key.clone(), (now, seq, value));
        self.order.push_back((key, seq));
        while self.map.len() > self.capacity {
            let Some((old, old_seq)) = self.order.pop_front() else { break };
            // Skip queue entries of keys re-inserted since: their newer entry counts.
            if self.map.get(&old).is_some_and(|(_, s, _)| *s == old_seq) {
                self.map.remove(&old);
                self.evicted += 1;
            }
        }
        // The queue also holds stale entries of re-inserted keys; keep it bounded.
        if self.order.len() > 4 * self.capacity {
            let map = &self.map;
            self.order.retain(|(k, s)| map.get(k).is_some_and(|(_, current, _)| current == s));
        }
    }

    /// Entries held (expired ones included until evicted).
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Entries evicted for room so far.
    #[must_use]
    pub fn evicted(&self) -> u64 {
        self.evicted
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_cache_evicts_the_oldest_insertion() {
        let t = Instant::now();
        let mut c = Cache::new(2, Duration::from_secs(60));
        c.insert(1, "a", t);
        c.insert(2, "b", t);
        c.insert(1, "a2", t + Duration::from_secs(1));
        c.insert(3, "c", t + Duration::from_secs(2));
        assert_eq!(c.len(), 2);
        assert!(c.get(&2, t).is_none(), "2 was the oldest once 1 was refreshed");
        assert_eq!(c.get(&1, t + Duration::from_secs(2)), Some(&"a2"));
        assert_eq!(c.evicted(), 1);
    }

    #[test]
    fn entries_expire() {
        let t = Instant::now();
        let mut c = Cache::new(8, Duration::from_secs(10));
        c.insert("k", 1, t);
        assert_eq!(c.get(&"k", t + Duration::from_secs(9)), Some(&1));
        assert_eq!(c.get(&"k", t + Duration::from_secs(10)), None);
    }

    #[test]
    fn the_order_queue_stays_bounded_under_refreshes() {
        let t = Instant::now();
        let mut c = Cache::new(4, Duration::from_secs(10));
        for i in 0..1000 {
            c.insert(i % 3, i, t);
        }
        assert!(c.order.len() <= 16);
        assert_eq!(c.len(), 3);
    }
}
