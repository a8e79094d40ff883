//! A bounded map with a time to live: lookups of entries older than the TTL miss,
//! and inserting into a full map evicts the least recently inserted entry.

use std::borrow::Borrow;
use std::collections::VecDeque;

use rustc_hash::FxHashMap as HashMap;
use std::hash::Hash;
use std::time::{Duration, Instant};

/// Bounded, expiring cache.
#[derive(Debug)]
pub struct Cache<K, V> {
    /// key -> (first instant it misses, insertion number, value). The expiry is
    /// computed once at insertion so that a lookup compares instants instead of
    /// subtracting them; `None` when `inserted + ttl` does not fit in an `Instant`.
    map: HashMap<K, (Option<Instant>, u64, V)>,
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
    pub fn get<Q>(&self, key: &Q, now: Instant) -> Option<&V>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.get_with_expiry(key, now).map(|(v, _)| v)
    }

    /// As [`Cache::get`], with the first instant at which the entry will miss
    /// (`None`: never, within what an `Instant` can hold). Until then, and while
    /// [`Cache::generation`] stays the same, the lookup gives the same value.
    pub fn get_with_expiry<Q>(&self, key: &Q, now: Instant) -> Option<(&V, Option<Instant>)>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // An age is never below zero, so a zero TTL misses even for a `now` before
        // the insertion; any other TTL hits then.
        if self.ttl.is_zero() {
            return None;
        }
        let (expires, _, value) = self.map.get(key)?;
        expires.is_none_or(|e| now < e).then_some((value, *expires))
    }

    /// Inserts or replaces `key`, evicting the oldest entries beyond capacity.
    pub fn insert(&mut self, key: K, value: V, now: Instant) {
        let seq = self.next;
        self.next += 1;
        self.map.insert(key.clone(), (now.checked_add(self.ttl), seq, value));
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

    /// Insertions so far. Inserting is the only change a cache sees (evictions
    /// happen in it), so while this number stands every lookup answers as before,
    /// expiry aside.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.next
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

    #[test]
    fn an_entry_expires_exactly_one_ttl_after_its_insertion() {
        let earlier = Instant::now();
        let t = earlier + Duration::from_secs(1);
        let ttl = Duration::from_secs(10);
        let mut c = Cache::new(8, ttl);
        c.insert(1, "a", t);
        assert_eq!(c.get_with_expiry(&1, t), Some((&"a", Some(t + ttl))));
        assert_eq!(c.get(&1, t + ttl.saturating_sub(Duration::from_nanos(1))), Some(&"a"));
        assert_eq!(c.get(&1, t + ttl), None);
        assert_eq!(c.get(&1, earlier), Some(&"a"), "a clock behind the insertion: age zero");
    }

    #[test]
    fn a_zero_ttl_always_misses() {
        let earlier = Instant::now();
        let t = earlier + Duration::from_secs(1);
        let mut c = Cache::new(8, Duration::ZERO);
        c.insert(1, "a", t);
        assert_eq!(c.get(&1, t), None);
        assert_eq!(c.get(&1, earlier), None);
    }

    #[test]
    fn string_keys_are_looked_up_by_str() {
        let t = Instant::now();
        let mut c = Cache::new(8, Duration::from_secs(10));
        c.insert(String::from("/system.slice/a.scope"), 1, t);
        assert_eq!(c.get("/system.slice/a.scope", t), Some(&1));
    }

    #[test]
    fn every_insertion_changes_the_generation() {
        let t = Instant::now();
        let mut c = Cache::new(1, Duration::from_secs(10));
        let g0 = c.generation();
        c.insert(1, "a", t);
        let g1 = c.generation();
        c.insert(1, "a", t);
        let g2 = c.generation();
        c.insert(2, "b", t);
        assert!(g0 < g1 && g1 < g2 && g2 < c.generation());
    }
}
