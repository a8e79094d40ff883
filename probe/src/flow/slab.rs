//! The flows' storage: a vector of slots reused lowest-first, addressed by keys that
//! need no hashing and go stale when their flow is removed.
//!
//! A hash map of flows never gives memory back and, once entries churn, touches
//! every bucket of a table up to twice the peak size. Here a new flow takes the
//! lowest free slot, so live flows gather at the front, [`Slab::shrink`] hands the
//! empty tail back, and memory follows the number of live flows.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// A flow's key: its slot in the low 32 bits, the slot's use count in the high 32.
pub type Key = u64;

struct Slot<T> {
    /// How many values this slot has held, wrapping; a key names one of them.
    uses: u32,
    value: Option<T>,
}

/// Values by [`Key`].
pub struct Slab<T> {
    slots: Vec<Slot<T>>,
    free: BinaryHeap<Reverse<u32>>,
    len: usize,
    /// Use count given to slots appended after [`Slab::shrink`] dropped some, so a
    /// stale key never names a value of a re-created slot.
    next_uses: u32,
}

impl<T> Default for Slab<T> {
    fn default() -> Self {
        Self { slots: Vec::new(), free: BinaryHeap::new(), len: 0, next_uses: 0 }
    }
}

fn key(index: usize, uses: u32) -> Key {
    (u64::from(uses) << 32) | index as u64
}

fn index(key: Key) -> usize {
    usize::try_from(key & u64::from(u32::MAX)).expect("slot indexes fit usize")
}

fn uses(key: Key) -> u32 {
    u32::try_from(key >> 32).expect("the high half fits u32")
}

impl<T> Slab<T> {
    /// Values held.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Slots allocated, in use or free.
    #[cfg(test)]
    pub fn slots(&self) -> usize {
        self.slots.len()
    }

    /// Stores `value` in the lowest free slot.
    ///
    /// # Panics
    /// Beyond 2^32 values held at once.
    pub fn insert(&mut self, value: T) -> Key {
        self.len += 1;
        if let Some(Reverse(i)) = self.free.pop() {
            let slot = &mut self.slots[i as usize];
            slot.uses = slot.uses.wrapping_add(1);
            slot.value = Some(value);
            return key(i as usize, slot.uses);
        }
        let i = self.slots.len();
        assert!(u32::try_from(i).is_ok(), "more than 2^32 flows");
        self.next_uses = self.next_uses.wrapping_add(1);
        self.slots.push(Slot { uses: self.next_uses, value: Some(value) });
        key(i, self.next_uses)
    }

    fn slot(&self, key: Key) -> Option<&Slot<T>> {
        self.slots.get(index(key)).filter(|s| s.uses == uses(key))
    }

    /// The value of `key`, unless it was removed.
    pub fn get(&self, key: Key) -> Option<&T> {
        self.slot(key).and_then(|s| s.value.as_ref())
    }

    /// The value of `key`, unless it was removed.
    pub fn get_mut(&mut self, key: Key) -> Option<&mut T> {
        self.slots.get_mut(index(key)).filter(|s| s.uses == uses(key)).and_then(|s| s.value.as_mut())
    }

    /// Whether `key` names a value held.
    pub fn contains(&self, key: Key) -> bool {
        self.get(key).is_some()
    }

    /// Drops the value of `key` where it lies (no move of a large value); its slot
    /// is free for the next insert. False when there was none.
    pub fn remove(&mut self, key: Key) -> bool {
        let i = index(key);
        let Some(slot) = self.slots.get_mut(i).filter(|s| s.uses == uses(key) && s.value.is_some()) else {
            return false;
        };
        slot.value = None;
        self.len -= 1;
        self.free.push(Reverse(u32::try_from(i).expect("slot indexes fit u32")));
        true
    }

    /// Every value held, with its key, in slot order.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = (Key, &mut T)> {
        self.slots.iter_mut().enumerate().filter_map(|(i, s)| s.value.as_mut().map(|v| (key(i, s.uses), v)))
    }

    /// Gives back the empty slots after the last value held, and the memory of a
    /// vector or free list much larger than what is held.
    pub fn shrink(&mut self) {
        let last = self.slots.iter().rposition(|s| s.value.is_some()).map_or(0, |i| i + 1);
        if last == self.slots.len() {
            return;
        }
        // Dropped slots may come back with a use count a stale key still holds:
        // continue from the highest count dropped.
        for s in &self.slots[last..] {
            if s.uses.wrapping_sub(self.next_uses) < u32::MAX / 2 {
                self.next_uses = s.uses;
            }
        }
        self.slots.truncate(last);
        let bound = u32::try_from(last).unwrap_or(u32::MAX);
        self.free.retain(|Reverse(i)| *i < bound);
        if self.slots.capacity() > 2 * self.slots.len() + 1024 {
            self.slots.shrink_to_fit();
        }
        if self.free.capacity() > 2 * self.free.len() + 1024 {
            self.free.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn removed_keys_go_stale_and_their_slots_are_reused() {
        let mut s = Slab::default();
        let a = s.insert("a");
        let b = s.insert("b");
        assert_eq!((s.get(a), s.get(b), s.len()), (Some(&"a"), Some(&"b"), 2));
        assert!(s.remove(a));
        assert!(!s.remove(a), "removed once");
        let c = s.insert("c");
        assert_eq!(index(c), index(a), "the freed slot is reused");
        assert_eq!(s.get(a), None, "the old key does not name the new value");
        assert_eq!(s.get(c), Some(&"c"));
        assert!(!s.contains(a) && s.contains(c));
        assert_eq!(s.len(), 2);
    }

    #[test]
    fn the_lowest_free_slot_is_taken_first() {
        let mut s = Slab::default();
        let keys: Vec<Key> = (0..10).map(|i| s.insert(i)).collect();
        s.remove(keys[7]);
        s.remove(keys[2]);
        s.remove(keys[5]);
        assert_eq!(index(s.insert(100)), 2);
        assert_eq!(index(s.insert(101)), 5);
        assert_eq!(index(s.insert(102)), 7);
        assert_eq!(index(s.insert(103)), 10);
    }

    #[test]
    fn shrink_drops_the_empty_tail_and_keeps_stale_keys_stale() {
        let mut s = Slab::default();
        let keys: Vec<Key> = (0..5000).map(|i| s.insert(i)).collect();
        for &k in &keys[10..] {
            s.remove(k);
        }
        s.shrink();
        assert_eq!(s.slots(), 10);
        assert!(s.slots.capacity() < 5000, "memory handed back");
        for &k in &keys[..10] {
            assert!(s.contains(k), "live values keep their keys");
        }
        // Slots past the old tail are created again; keys of their former values
        // must not name the new ones.
        let fresh: Vec<Key> = (0..4990).map(|i| s.insert(i)).collect();
        for &k in &keys[10..] {
            assert_eq!(s.get(k), None);
        }
        assert!(fresh.iter().all(|&k| s.contains(k)));
    }

    #[test]
    fn iteration_sees_every_value_with_its_key() {
        let mut s = Slab::default();
        let a = s.insert(1);
        let b = s.insert(2);
        let c = s.insert(3);
        s.remove(b);
        let seen: Vec<(Key, i32)> = s.iter_mut().map(|(k, v)| (k, *v)).collect();
        assert_eq!(seen, vec![(a, 1), (c, 3)]);
    }
}
